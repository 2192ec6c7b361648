//! Provided buffer rings: [`BufRing`] and the [`RingBuf`]s the kernel fills from it.
//!
//! With `IORING_REGISTER_PBUF_RING` (5.19) the application hands the kernel a ring of buffers;
//! a receive picks one only when data arrives, so ten thousand idle connections need no buffer
//! each. A multishot receive then yields one completion per chunk, naming the buffer by id.
//! When the application is done with a chunk, the buffer goes back into the ring.
//!
//! Where a ring cannot be registered (the epoll driver, kernels before 5.19) the same type keeps
//! its buffers in a user-space free list and receives take one before each plain `recv`: the
//! API and the "buffers return when dropped" behaviour are the same.

use super::{AlignedBuf, IoBuf, IoBufMut};
use crate::driver::{self, opcode::no_runtime, DriverRef};
use io_uring::types::BufRingEntry;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::task::{Context, Poll, Waker};

const PAGE: usize = 4096;

/// The kernel's `struct io_uring_buf`; in the first entry, `resv` is the ring's tail.
#[repr(C)]
struct RawEntry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

const _: () = assert!(std::mem::size_of::<RawEntry>() == std::mem::size_of::<BufRingEntry>());

/// A ring of equally sized receive buffers shared by any number of receive streams of one
/// worker (see `hoop::net::TcpStream::recv_stream`).
///
/// ```
/// # hoop_runtime::block_on(async {
/// let ring = hoop_runtime::buf::BufRing::new(64, 4096).unwrap();
/// assert_eq!(ring.available(), 64);
/// # });
/// ```
#[derive(Clone)]
pub struct BufRing {
    inner: Rc<Inner>,
}

struct Inner {
    mode: Mode,
    /// `entries * buf_size` bytes; buffer `bid` starts at `bid * buf_size`. Freed only once the
    /// kernel no longer knows the ring (see `Drop`).
    memory: ManuallyDrop<AlignedBuf>,
    buf_size: usize,
    entries: u16,
    /// Buffers not held by the application (in the kernel ring or the free list).
    available: Cell<usize>,
    /// Buffers given back so far (a generation counter for `ENOBUFS` waits).
    returned: Cell<u64>,
    /// Streams waiting for a buffer to come back (after `ENOBUFS`).
    waiters: RefCell<Vec<Waker>>,
}

enum Mode {
    /// Registered with the ring: the kernel picks buffers.
    Kernel {
        driver: DriverRef,
        bgid: u16,
        /// The `io_uring_buf` array shared with the kernel (page aligned).
        ring: ManuallyDrop<AlignedBuf>,
        /// Our copy of the tail; the kernel reads the one in the first entry.
        tail: Cell<u16>,
    },
    /// Not registered: receives take a buffer from here first.
    User { free: RefCell<Vec<u16>> },
}

impl BufRing {
    /// `entries` buffers (a power of two, at most 32768) of `buf_size` bytes, registered with
    /// the current worker's ring where possible. Fails outside a runtime or for bad sizes.
    pub fn new(entries: u16, buf_size: usize) -> io::Result<BufRing> {
        if !entries.is_power_of_two() || entries > 32768 || buf_size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "hoop: a buffer ring has a power-of-two number of entries (at most 32768) of a non-zero size",
            ));
        }
        if buf_size > u32::MAX as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "hoop: ring buffers are at most 4 GiB",
            ));
        }
        let driver = driver::current().ok_or_else(no_runtime)?;
        let total = buf_size
            .checked_mul(entries as usize)
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let memory = AlignedBuf::new(total, PAGE)?;
        let mode = match register(&driver, entries) {
            Some((bgid, ring)) => Mode::Kernel {
                driver,
                bgid,
                ring: ManuallyDrop::new(ring),
                tail: Cell::new(0),
            },
            None => Mode::User {
                free: RefCell::new((0..entries).rev().collect()),
            },
        };
        let inner = Inner {
            mode,
            memory: ManuallyDrop::new(memory),
            buf_size,
            entries,
            available: Cell::new(entries as usize),
            returned: Cell::new(0),
            waiters: RefCell::new(Vec::new()),
        };
        if let Mode::Kernel { .. } = inner.mode {
            for bid in 0..entries {
                inner.push_to_kernel(bid);
            }
            inner.publish_tail();
        }
        Ok(BufRing {
            inner: Rc::new(inner),
        })
    }

    /// The buffer group id the kernel knows this ring by, if it is registered.
    pub fn bgid(&self) -> Option<u16> {
        match &self.inner.mode {
            Mode::Kernel { bgid, driver, .. } => {
                let here = driver::current()?;
                Rc::ptr_eq(&here, driver).then_some(*bgid)
            }
            Mode::User { .. } => None,
        }
    }

    /// True if the kernel picks buffers from this ring (io_uring, 5.19+).
    pub fn is_registered(&self) -> bool {
        matches!(self.inner.mode, Mode::Kernel { .. })
    }

    /// Size of each buffer.
    pub fn buffer_size(&self) -> usize {
        self.inner.buf_size
    }

    /// Number of buffers.
    pub fn entries(&self) -> u16 {
        self.inner.entries
    }

    /// Buffers not held by the application right now.
    pub fn available(&self) -> usize {
        self.inner.available.get()
    }

    /// How many buffers were given back so far: a generation to wait on with
    /// [`poll_returned_since`](Self::poll_returned_since).
    pub fn returned_count(&self) -> u64 {
        self.inner.returned.get()
    }

    /// Ready once a buffer was given back after generation `gen`. A receive that met an empty
    /// ring (`ENOBUFS`) with no buffer returned since it was armed waits here before it is armed
    /// again: exhaustion never spins, and a buffer returned at any point after the arming is
    /// never missed.
    pub fn poll_returned_since(&self, gen: u64, cx: &mut Context<'_>) -> Poll<()> {
        if self.returned_count() > gen {
            return Poll::Ready(());
        }
        let mut waiters = self.inner.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// The chunk the kernel put in buffer `bid` (`len` bytes), now owned by the application.
    /// Only for ids a completion of this ring's group just handed out (crate-private: a wrong or
    /// repeated id would give the kernel a buffer the application is reading).
    pub(crate) fn take_filled(&self, bid: u16, len: usize) -> RingBuf {
        assert!(bid < self.inner.entries, "buffer id {bid} out of the ring");
        let inner = &self.inner;
        inner.available.set(inner.available.get().saturating_sub(1));
        RingBuf {
            ring: self.inner.clone(),
            bid,
            len: len.min(inner.buf_size),
        }
    }

    /// Gives buffer `bid` back to the kernel without handing it to the application (a
    /// completion nobody will read). Only for ids the kernel just handed out.
    pub(crate) fn recycle(&self, bid: u16) {
        if bid < self.inner.entries {
            // Never handed out, so never counted as taken.
            self.inner.give_back(bid, false);
        }
    }

    /// For an unregistered ring: takes a free buffer to receive into, or `None` if all are out.
    pub fn try_take(&self) -> Option<RingBufMut> {
        let Mode::User { free } = &self.inner.mode else {
            return None;
        };
        let bid = free.borrow_mut().pop()?;
        let inner = &self.inner;
        inner.available.set(inner.available.get().saturating_sub(1));
        Some(RingBufMut(RingBuf {
            ring: self.inner.clone(),
            bid,
            len: 0,
        }))
    }
}

fn register(driver: &DriverRef, entries: u16) -> Option<(u16, AlignedBuf)> {
    let mut d = driver.try_borrow_mut().ok()?;
    let ring =
        AlignedBuf::new(entries as usize * std::mem::size_of::<BufRingEntry>(), PAGE).ok()?;
    // SAFETY: the ring memory is page aligned, sized for `entries`, zeroed, and owned by the
    // `BufRing`, which unregisters the group before freeing it (or leaks it).
    match unsafe { d.register_buf_ring(ring.stable_ptr() as u64, entries) } {
        Ok(bgid) => Some((bgid, ring)),
        Err(e) => {
            tracing::debug!(target: "hoop", error = %e, "buffer ring not registered; receives take buffers in user space");
            None
        }
    }
}

impl Inner {
    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        // SAFETY: `bid < entries`, so the offset is inside `memory`.
        unsafe { (self.memory.stable_ptr() as *mut u8).add(bid as usize * self.buf_size) }
    }

    /// Writes entry `bid` at our tail (not yet visible to the kernel).
    fn push_to_kernel(&self, bid: u16) {
        let Mode::Kernel { ring, tail, .. } = &self.mode else {
            return;
        };
        let mask = self.entries - 1;
        let slot = (tail.get() & mask) as usize;
        let base = ring.stable_ptr() as *mut RawEntry;
        // SAFETY: `slot < entries`, inside the ring memory. The kernel only reads entries
        // between its head and the published tail, and this one is past the published tail.
        // The fields are written through raw pointers, never a `&mut` to the entry: the first
        // entry's `resv` field is the tail, which the kernel reads concurrently.
        unsafe {
            let entry = base.add(slot);
            std::ptr::addr_of_mut!((*entry).addr).write(self.buf_ptr(bid) as u64);
            std::ptr::addr_of_mut!((*entry).len).write(self.buf_size as u32);
            std::ptr::addr_of_mut!((*entry).bid).write(bid);
        }
        tail.set(tail.get().wrapping_add(1));
    }

    /// Makes every pushed entry visible to the kernel.
    fn publish_tail(&self) {
        let Mode::Kernel { ring, tail, .. } = &self.mode else {
            return;
        };
        // SAFETY: the tail field is a 2-byte aligned u16 inside the ring memory, written by us
        // and read by the kernel with acquire semantics; the release store orders the entry
        // writes before it.
        unsafe {
            let ptr = BufRingEntry::tail(ring.stable_ptr() as *const BufRingEntry) as *mut u16;
            AtomicU16::from_ptr(ptr).store(tail.get(), Ordering::Release);
        }
    }

    /// Puts `bid` back in the ring; `taken` if the application held it (it counted as not
    /// available).
    fn give_back(&self, bid: u16, taken: bool) {
        match &self.mode {
            Mode::Kernel { .. } => {
                self.push_to_kernel(bid);
                self.publish_tail();
            }
            Mode::User { free } => free.borrow_mut().push(bid),
        }
        if taken {
            self.available.set(self.available.get() + 1);
        }
        self.returned.set(self.returned.get() + 1);
        // Woken outside the borrow: a waker may poll (and register) synchronously.
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Mode::Kernel {
            driver, bgid, ring, ..
        } = &mut self.mode
        {
            let unregistered = driver
                .try_borrow_mut()
                .ok()
                .and_then(|mut d| d.unregister_buf_ring(*bgid).ok());
            if unregistered.is_none() {
                // The kernel may still pick these buffers: never free them.
                crate::log::warning!("could not unregister a buffer ring; leaking it");
                return;
            }
            // SAFETY: the kernel forgot the ring; dropped once, here.
            unsafe { ManuallyDrop::drop(ring) };
        }
        // SAFETY: no kernel ring refers to the buffers any more (or never did); the `RingBuf`s
        // that could be reading them hold this `Inner`, which is being dropped, so none is left.
        unsafe { ManuallyDrop::drop(&mut self.memory) };
    }
}

impl fmt::Debug for BufRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufRing")
            .field("entries", &self.entries())
            .field("buffer_size", &self.buffer_size())
            .field("available", &self.available())
            .field("registered", &self.is_registered())
            .finish()
    }
}

/// A chunk received into a [`BufRing`] buffer; the buffer returns to the ring when this is
/// dropped. Dereferences to the received bytes.
pub struct RingBuf {
    ring: Rc<Inner>,
    bid: u16,
    len: usize,
}

impl RingBuf {
    /// The buffer id within its ring.
    pub fn bid(&self) -> u16 {
        self.bid
    }
}

impl Deref for RingBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the buffer is `buf_size >= len` bytes of the ring's memory, written by the
        // kernel (or a recv) up to `len`, and owned by this value until it drops.
        unsafe { std::slice::from_raw_parts(self.ring.buf_ptr(self.bid), self.len) }
    }
}

impl Drop for RingBuf {
    fn drop(&mut self) {
        self.ring.give_back(self.bid, true);
    }
}

impl fmt::Debug for RingBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingBuf")
            .field("bid", &self.bid)
            .field("len", &self.len)
            .finish()
    }
}

// SAFETY: the received bytes are a fixed part of the ring's heap allocation, kept alive by the
// `Rc`; the buffer id is this value's until it drops, so neither the kernel nor a receive writes
// into it while an operation that owns this value reads it (a proxy or echo sends a received
// chunk without copying it).
unsafe impl IoBuf for RingBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ring.buf_ptr(self.bid)
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.len
    }
}

/// An empty buffer taken from an unregistered [`BufRing`] to receive into (an owned
/// [`IoBufMut`]); [`RingBufMut::into_filled`] turns it into the received [`RingBuf`].
pub struct RingBufMut(RingBuf);

impl RingBufMut {
    /// The received chunk.
    pub fn into_filled(self) -> RingBuf {
        self.0
    }
}

impl fmt::Debug for RingBufMut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

// SAFETY: the memory is a fixed part of the ring's heap allocation, kept alive by the `Rc`, and
// exclusively this value's while it holds the buffer id.
unsafe impl IoBuf for RingBufMut {
    fn stable_ptr(&self) -> *const u8 {
        self.0.ring.buf_ptr(self.0.bid)
    }
    fn bytes_init(&self) -> usize {
        self.0.len
    }
    fn bytes_total(&self) -> usize {
        self.0.ring.buf_size
    }
}

// SAFETY: as above; the whole buffer is writable.
unsafe impl IoBufMut for RingBufMut {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.0.ring.buf_ptr(self.0.bid)
    }
    // SAFETY (contract): callers only pass `pos` after writing the first `pos` bytes; the
    // length is clamped to the capacity and never shrinks.
    unsafe fn set_init(&mut self, pos: usize) {
        self.0.len = self.0.len.max(pos.min(self.0.ring.buf_size));
    }
}
