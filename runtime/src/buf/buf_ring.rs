//! Provided buffer rings: [`BufRing`] and the [`RingBuf`]s the kernel fills from it.
//!
//! With `IORING_REGISTER_PBUF_RING` (5.19) the application hands the kernel a ring of buffers;
//! a receive picks one only when data arrives, so ten thousand idle connections need no buffer
//! each. A multishot receive then yields one completion per chunk, naming the buffer by id.
//! When the application is done with a chunk, the buffer goes back into the ring.
//!
//! Two newer kernel features change what one completion means, and the ring's bookkeeping
//! follows both:
//!
//! - **Incremental consumption** (`IOU_PBUF_RING_INC`, 6.12): the kernel fills a buffer a piece
//!   at a time, each completion taking the bytes after the last one's, and flags
//!   `IORING_CQE_F_BUF_MORE` while it keeps the rest. Large buffers then serve many small
//!   receives, on any of the ring's sockets. The completion does not say where its piece
//!   starts: the ring counts what the kernel filled of each buffer, in the order the kernel
//!   posted the completions (a [`ReapHook`] records it when the driver reaps them, not when a
//!   stream is polled, as two sockets may share a buffer).
//! - **Bundles** (`IORING_RECVSEND_BUNDLE`, 6.10): one receive fills several buffers, the
//!   ring's entries after the one the completion names. The ring links each buffer to the one
//!   pushed after it, so it can follow them; a link stays valid while a buffer is out of the
//!   ring, because it is rewritten only when the buffer is pushed again. hoop asks for bundles
//!   only on 6.16 and later: before the June 2025 fixes a bundle could cut its last buffer short
//!   and go on in the next one, a gap no completion reports.
//!
//! The two are not combined: an incremental ring's receives take one buffer each. Kernels
//! before the fix for CVE-2026-53191 (6.12–6.18.35, 6.19–7.0.12, and whatever a distribution
//! did not backport) could drop or repeat `IORING_CQE_F_BUF_MORE` on a bundle that went on for
//! a second round, and a release number cannot tell whether the fix is there. With a wrong
//! flag, a buffer would go back to the ring while the kernel still fills it.
//!
//! A buffer goes back into the ring once the kernel is done with it *and* every piece of it the
//! application received has been dropped.
//!
//! Where a ring cannot be registered (the epoll driver, kernels before 5.19) the same type keeps
//! its buffers in a user-space free list and receives take one before each plain `recv`: the
//! API and the "buffers return when dropped" behaviour are the same.
//!
//! [`ReapHook`]: crate::op::ReapHook

use super::{AlignedBuf, IoBuf, IoBufMut};
use crate::driver::{self, opcode::no_runtime, DriverRef};
use io_uring::cqueue;
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

/// No buffer was pushed after this one yet.
const NO_NEXT: u16 = u16::MAX;

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
/// // 16 buffers of 64 KiB, each filled a piece at a time by small receives (6.12+), and
/// // receives that fill several buffers at once (6.10+); both fall back where the kernel
/// // lacks them.
/// let big = hoop_runtime::buf::BufRing::builder(16, 64 * 1024)
///     .incremental(true)
///     .bundles(true)
///     .build()
///     .unwrap();
/// assert_eq!(big.entries(), 16);
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
    /// Buffers holding no chunk the application still has.
    available: Cell<usize>,
    /// Buffers given back so far (a generation counter for `ENOBUFS` waits).
    returned: Cell<u64>,
    /// Streams waiting for a buffer to come back (after `ENOBUFS`).
    waiters: RefCell<Vec<Waker>>,
}

enum Mode {
    /// Registered with the ring: the kernel picks buffers.
    Kernel(KernelRing),
    /// Not registered: receives take a buffer from here first.
    User { free: RefCell<Vec<u16>> },
}

struct KernelRing {
    driver: DriverRef,
    bgid: u16,
    /// The `io_uring_buf` array shared with the kernel (page aligned).
    ring: ManuallyDrop<AlignedBuf>,
    /// Our copy of the tail; the kernel reads the one in the first entry.
    tail: Cell<u16>,
    /// Registered with `IOU_PBUF_RING_INC`.
    incremental: bool,
    /// Receives on it ask for bundles.
    bundles: bool,
    /// Per buffer id.
    bufs: Box<[Cell<BufState>]>,
    /// The buffer pushed last (`NO_NEXT` before the first push).
    last_pushed: Cell<u16>,
}

/// What the ring knows of one buffer of a registered ring.
#[derive(Clone, Copy)]
struct BufState {
    /// In the kernel's ring: pushed, and not yet used up by a completion.
    in_kernel: bool,
    /// Bytes the kernel filled since it was pushed (an incremental ring's current offset).
    consumed: u32,
    /// Received pieces of it not yet released: counted when their completion is reaped, so a
    /// piece still queued for a stream keeps the buffer out of the ring.
    pieces: u32,
    /// The buffer pushed right after it, where a bundle that used this one went on.
    next: u16,
}

/// Options of a [`BufRing`]: see [`BufRing::builder`].
#[derive(Clone, Debug)]
pub struct BufRingBuilder {
    entries: u16,
    buf_size: usize,
    incremental: bool,
    bundles: bool,
}

impl BufRingBuilder {
    /// Registers the ring for incremental consumption (`IOU_PBUF_RING_INC`, 6.12): each receive
    /// takes only the bytes it needs from the current buffer, the next one continues after
    /// them. Suits large buffers shared by many connections that receive small messages.
    /// Ignored where the kernel lacks it (each receive then takes a whole buffer). An
    /// incremental ring does not use bundles (see the module documentation).
    pub fn incremental(mut self, yes: bool) -> Self {
        self.incremental = yes;
        self
    }

    /// Lets one receive fill several buffers (`IORING_RECVSEND_BUNDLE`): a stream with more
    /// data waiting than one buffer holds gets it from one completion. On by default: receiving
    /// a bulk transfer into 4 KiB buffers, it takes a fifth less CPU per byte (`benches/
    /// recv_ring.rs`), and small messages never fill two buffers. Used on io_uring from 6.16
    /// on (earlier bundles could leave gaps), and not on an incremental ring; ignored
    /// elsewhere.
    pub fn bundles(mut self, yes: bool) -> Self {
        self.bundles = yes;
        self
    }

    /// Creates the ring, registered with the current worker's ring where possible. Fails
    /// outside a runtime or for bad sizes.
    pub fn build(self) -> io::Result<BufRing> {
        let BufRingBuilder {
            entries,
            buf_size,
            incremental,
            bundles,
        } = self;
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
        let mode = match register(&driver, entries, incremental) {
            Some((bgid, ring, incremental)) => {
                let bundles =
                    bundles && !incremental && driver.try_borrow().is_ok_and(|d| d.recv_bundles());
                let state = BufState {
                    in_kernel: false,
                    consumed: 0,
                    pieces: 0,
                    next: NO_NEXT,
                };
                Mode::Kernel(KernelRing {
                    driver,
                    bgid,
                    ring: ManuallyDrop::new(ring),
                    tail: Cell::new(0),
                    incremental,
                    bundles,
                    bufs: (0..entries).map(|_| Cell::new(state)).collect(),
                    last_pushed: Cell::new(NO_NEXT),
                })
            }
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
        if let Mode::Kernel(k) = &inner.mode {
            for bid in 0..entries {
                inner.push_to_kernel(k, bid);
            }
            k.publish_tail();
        }
        Ok(BufRing {
            inner: Rc::new(inner),
        })
    }
}

impl BufRing {
    /// `entries` buffers (a power of two, at most 32768) of `buf_size` bytes, registered with
    /// the current worker's ring where possible, with bundles where the kernel has them (see
    /// [`BufRingBuilder::bundles`]). Fails outside a runtime or for bad sizes.
    pub fn new(entries: u16, buf_size: usize) -> io::Result<BufRing> {
        BufRing::builder(entries, buf_size).build()
    }

    /// A ring of `entries` buffers of `buf_size` bytes with options (incremental consumption,
    /// off by default; bundles, on by default); [`BufRingBuilder::build`] creates it.
    pub fn builder(entries: u16, buf_size: usize) -> BufRingBuilder {
        BufRingBuilder {
            entries,
            buf_size,
            incremental: false,
            bundles: true,
        }
    }

    /// The buffer group id the kernel knows this ring by, if it is registered.
    pub fn bgid(&self) -> Option<u16> {
        match &self.inner.mode {
            Mode::Kernel(k) => {
                let here = driver::current()?;
                Rc::ptr_eq(&here, &k.driver).then_some(k.bgid)
            }
            Mode::User { .. } => None,
        }
    }

    /// True if the kernel picks buffers from this ring (io_uring, 5.19+).
    pub fn is_registered(&self) -> bool {
        matches!(self.inner.mode, Mode::Kernel(_))
    }

    /// True if the kernel consumes this ring's buffers a piece at a time (asked for, and
    /// io_uring on 6.12+).
    pub fn is_incremental(&self) -> bool {
        matches!(&self.inner.mode, Mode::Kernel(k) if k.incremental)
    }

    /// True if receives on this ring fill several buffers at once (asked for, not incremental,
    /// and io_uring on 6.16+).
    pub fn uses_bundles(&self) -> bool {
        matches!(&self.inner.mode, Mode::Kernel(k) if k.bundles)
    }

    /// Size of each buffer.
    pub fn buffer_size(&self) -> usize {
        self.inner.buf_size
    }

    /// Number of buffers.
    pub fn entries(&self) -> u16 {
        self.inner.entries
    }

    /// Buffers holding no received chunk the application still has (or that a stream has
    /// not yielded yet).
    pub fn available(&self) -> usize {
        self.inner.available.get()
    }

    /// Buffers the kernel (or, unregistered, a receive) can pick right now: in the kernel's
    /// ring and holding no chunk the application has. Once every chunk is dropped and no
    /// receive is in flight, this is [`entries`](Self::entries): no buffer was lost.
    pub fn buffers_in_ring(&self) -> usize {
        match &self.inner.mode {
            Mode::Kernel(k) => k
                .bufs
                .iter()
                .filter(|b| {
                    let b = b.get();
                    b.in_kernel && b.pieces == 0
                })
                .count(),
            Mode::User { free } => free.borrow().len(),
        }
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

    /// Records a receive completion of this ring's group as the driver reaps it (in the
    /// kernel's order): which buffers it filled, from which offset, and that the application
    /// now holds a piece of each. `bundle`: the receive asked for a bundle. `None` if it
    /// carried no data in a buffer hoop gave the kernel.
    pub(crate) fn note_completion(&self, res: i32, flags: u32, bundle: bool) -> Option<Landing> {
        let Mode::Kernel(k) = &self.inner.mode else {
            return None;
        };
        let bid = cqueue::buffer_select(flags)?;
        if bid >= self.inner.entries {
            crate::log::warning!("a completion named buffer {bid}, outside the ring; ignored");
            return None;
        }
        if res <= 0 {
            // No data, yet a buffer named: the kernel committed it before the receive failed
            // or found the end (io-wq commits up front). It keeps the buffer only if it says so
            // (`BUF_MORE`, incremental rings); otherwise the buffer goes back.
            if !cqueue::buffer_more(flags) {
                self.inner.kernel_done(k, bid);
            }
            return None;
        }
        let size = self.inner.buf_size as u32;
        let first_offset = if k.incremental {
            k.bufs[bid as usize].get().consumed
        } else {
            0
        };
        let (mut b, mut offset) = (bid, first_offset);
        let mut remaining = res as u32;
        let mut accepted = 0u32;
        for _ in 0..self.inner.entries {
            let mut state = k.bufs[b as usize].get();
            // Never trust a length beyond the buffers hoop gave the kernel.
            let take = remaining.min(size.saturating_sub(offset));
            if !state.in_kernel || take == 0 {
                crate::log::warning!("a receive claimed more than the buffers it was given");
                break;
            }
            self.inner.piece_taken(k, b);
            state = k.bufs[b as usize].get();
            accepted += take;
            remaining -= take;
            if remaining == 0 && k.incremental && cqueue::buffer_more(flags) {
                // The kernel keeps the rest of this buffer for the next receive.
                state.consumed = offset + take;
                k.bufs[b as usize].set(state);
                break;
            }
            state.consumed = 0;
            state.in_kernel = false;
            k.bufs[b as usize].set(state);
            if remaining == 0 || !bundle || state.next == NO_NEXT {
                break;
            }
            (b, offset) = (state.next, 0);
        }
        if remaining > 0 {
            crate::log::warning!("a receive claimed more than the buffers it was given");
        }
        (accepted > 0).then_some(Landing {
            bid,
            res: res as u32,
            offset: first_offset,
            len: accepted,
        })
    }

    /// The buffers a recorded completion filled, now the application's.
    pub(crate) fn received(&self, landing: Landing) -> Received {
        Received {
            ring: self.inner.clone(),
            bid: landing.bid,
            offset: landing.offset,
            remaining: landing.len,
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
            offset: 0,
            len: 0,
        }))
    }
}

/// What one receive completion filled, as recorded when it was reaped: `len` bytes from
/// `offset` in buffer `bid`, going on in the buffers pushed after it (a bundle). `bid` and the
/// completion's result `res` tell which completion it records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Landing {
    pub(crate) bid: u16,
    pub(crate) res: u32,
    offset: u32,
    len: u32,
}

fn register(
    driver: &DriverRef,
    entries: u16,
    incremental: bool,
) -> Option<(u16, AlignedBuf, bool)> {
    let mut d = driver.try_borrow_mut().ok()?;
    let ring =
        AlignedBuf::new(entries as usize * std::mem::size_of::<BufRingEntry>(), PAGE).ok()?;
    // SAFETY: the ring memory is page aligned, sized for `entries`, zeroed, and owned by the
    // `BufRing`, which unregisters the group before freeing it (or leaks it).
    match unsafe { d.register_buf_ring(ring.stable_ptr() as u64, entries, incremental) } {
        Ok((bgid, incremental)) => Some((bgid, ring, incremental)),
        Err(e) => {
            tracing::debug!(target: "hoop", error = %e, "buffer ring not registered; receives take buffers in user space");
            None
        }
    }
}

impl KernelRing {
    /// Makes every pushed entry visible to the kernel.
    fn publish_tail(&self) {
        // SAFETY: the tail field is a 2-byte aligned u16 inside the ring memory, written by us
        // and read by the kernel with acquire semantics; the release store orders the entry
        // writes before it.
        unsafe {
            let ptr = BufRingEntry::tail(self.ring.stable_ptr() as *const BufRingEntry) as *mut u16;
            AtomicU16::from_ptr(ptr).store(self.tail.get(), Ordering::Release);
        }
    }
}

impl Inner {
    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        // SAFETY: `bid < entries`, so the offset is inside `memory`.
        unsafe { (self.memory.stable_ptr() as *mut u8).add(bid as usize * self.buf_size) }
    }

    /// Writes entry `bid` at our tail (not yet visible to the kernel), whole.
    fn push_to_kernel(&self, k: &KernelRing, bid: u16) {
        let mask = self.entries - 1;
        let slot = (k.tail.get() & mask) as usize;
        let base = k.ring.stable_ptr() as *mut RawEntry;
        // SAFETY: `slot < entries`, inside the ring memory. The kernel only reads (and, for an
        // incremental ring, advances) entries between its head and the published tail, and this
        // one is past the published tail. The fields are written through raw pointers, never a
        // `&mut` to the entry: the first entry's `resv` field is the tail, which the kernel
        // reads concurrently.
        unsafe {
            let entry = base.add(slot);
            std::ptr::addr_of_mut!((*entry).addr).write(self.buf_ptr(bid) as u64);
            std::ptr::addr_of_mut!((*entry).len).write(self.buf_size as u32);
            std::ptr::addr_of_mut!((*entry).bid).write(bid);
        }
        k.tail.set(k.tail.get().wrapping_add(1));
        let mut state = k.bufs[bid as usize].get();
        state.in_kernel = true;
        state.consumed = 0;
        state.next = NO_NEXT;
        k.bufs[bid as usize].set(state);
        let prev = k.last_pushed.replace(bid);
        if prev != NO_NEXT {
            let mut p = k.bufs[prev as usize].get();
            p.next = bid;
            k.bufs[prev as usize].set(p);
        }
    }

    /// A completion gave the application a piece of `bid`.
    fn piece_taken(&self, k: &KernelRing, bid: u16) {
        let mut state = k.bufs[bid as usize].get();
        if state.pieces == 0 {
            self.available.set(self.available.get().saturating_sub(1));
        }
        state.pieces += 1;
        k.bufs[bid as usize].set(state);
    }

    /// The kernel took `bid` out of the ring without filling it.
    fn kernel_done(&self, k: &KernelRing, bid: u16) {
        let mut state = k.bufs[bid as usize].get();
        if !state.in_kernel {
            return;
        }
        state.in_kernel = false;
        state.consumed = 0;
        k.bufs[bid as usize].set(state);
        if state.pieces == 0 {
            self.refill(k, bid);
        }
    }

    /// The application released a piece of `bid` (or, unregistered, the whole buffer).
    fn release(&self, bid: u16) {
        match &self.mode {
            Mode::Kernel(k) => {
                let mut state = k.bufs[bid as usize].get();
                state.pieces = state.pieces.saturating_sub(1);
                k.bufs[bid as usize].set(state);
                if state.pieces > 0 {
                    return;
                }
                self.available.set(self.available.get() + 1);
                if state.in_kernel {
                    // The kernel still fills the rest of it (incremental).
                    return;
                }
                self.refill(k, bid);
            }
            Mode::User { free } => {
                free.borrow_mut().push(bid);
                self.available.set(self.available.get() + 1);
                self.returned_one();
            }
        }
    }

    /// Puts `bid`, which neither the kernel nor the application holds, back in the ring.
    fn refill(&self, k: &KernelRing, bid: u16) {
        self.push_to_kernel(k, bid);
        k.publish_tail();
        self.returned_one();
    }

    fn returned_one(&self) {
        self.returned.set(self.returned.get() + 1);
        // Woken outside the waiter list's borrow: a waker may register again at once. (hoop's
        // wakers only schedule their task; this also runs inside the driver, from `orphaned`.)
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Mode::Kernel(k) = &mut self.mode {
            let unregistered = k
                .driver
                .try_borrow_mut()
                .ok()
                .and_then(|mut d| d.unregister_buf_ring(k.bgid).ok());
            if unregistered.is_none() {
                // The kernel may still pick these buffers: never free them.
                crate::log::warning!("could not unregister a buffer ring; leaking it");
                return;
            }
            // SAFETY: the kernel forgot the ring; dropped once, here.
            unsafe { ManuallyDrop::drop(&mut k.ring) };
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
    /// Where the piece starts in its buffer (non-zero only in an incremental ring).
    offset: u32,
    len: usize,
}

impl RingBuf {
    /// The buffer id within its ring.
    pub fn bid(&self) -> u16 {
        self.bid
    }

    /// Where this chunk starts within its buffer: non-zero only for a later piece of a buffer
    /// an incremental ring fills a piece at a time.
    pub fn offset(&self) -> usize {
        self.offset as usize
    }

    fn ptr(&self) -> *mut u8 {
        // SAFETY: `offset + len <= buf_size` (see `BufRing::note_completion`), so the pointer
        // stays inside buffer `bid`.
        unsafe { self.ring.buf_ptr(self.bid).add(self.offset as usize) }
    }
}

impl Deref for RingBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `offset + len <= buf_size`: bytes of the ring's memory written by the kernel
        // (or a recv) before the completion that handed them out, which the kernel does not
        // write again (an incremental ring's next receive starts after them, a plain ring's
        // buffer is out of the ring) while this value holds its piece.
        unsafe { std::slice::from_raw_parts(self.ptr(), self.len) }
    }
}

impl Drop for RingBuf {
    fn drop(&mut self) {
        self.ring.release(self.bid);
    }
}

impl fmt::Debug for RingBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingBuf")
            .field("bid", &self.bid)
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}

// SAFETY: the received bytes are a fixed part of the ring's heap allocation, kept alive by the
// `Rc`; while this value holds its piece, neither the kernel nor a receive writes into those
// bytes, so an operation that owns this value may read them (a proxy or echo sends a received
// chunk without copying it).
unsafe impl IoBuf for RingBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr()
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
// exclusively this value's while it holds the buffer id (an unregistered ring: offset 0).
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

/// The buffers one receive filled, as [`RingBuf`]s in the order of the data: one, or several
/// for a bundle. Pieces not taken are released when this drops.
pub struct Received {
    ring: Rc<Inner>,
    bid: u16,
    offset: u32,
    remaining: u32,
}

impl Received {
    /// Bytes not yet taken.
    pub fn len(&self) -> usize {
        self.remaining as usize
    }

    /// True once every piece was taken.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }
}

impl Iterator for Received {
    type Item = RingBuf;

    fn next(&mut self) -> Option<RingBuf> {
        if self.remaining == 0 {
            return None;
        }
        let Mode::Kernel(k) = &self.ring.mode else {
            return None;
        };
        // The same walk as `BufRing::note_completion`, which counted each piece: the links it
        // followed are unchanged, as every buffer it named is held (not pushed again) until
        // its piece is released.
        let bid = self.bid;
        let take = self
            .remaining
            .min((self.ring.buf_size as u32).saturating_sub(self.offset));
        if bid >= self.ring.entries || take == 0 {
            // Unreachable while the walks agree; never index past the ring.
            self.remaining = 0;
            return None;
        }
        let piece = RingBuf {
            ring: self.ring.clone(),
            bid,
            offset: self.offset,
            len: take as usize,
        };
        self.remaining -= take;
        if self.remaining > 0 {
            self.bid = k.bufs[bid as usize].get().next;
            self.offset = 0;
        }
        Some(piece)
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        for piece in self.by_ref() {
            drop(piece);
        }
    }
}

impl fmt::Debug for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Received")
            .field("bid", &self.bid)
            .field("offset", &self.offset)
            .field("remaining", &self.remaining)
            .finish()
    }
}
