//! Registered buffers: [`FixedBufPool`] and the [`FixedBuf`]s it lends.
//!
//! A buffer registered with the ring (`IORING_REGISTER_BUFFERS`) is pinned and mapped by the
//! kernel once, instead of on every operation; `READ_FIXED`/`WRITE_FIXED` then name it by index.
//! That saves the per-operation page pinning, which shows on large and O_DIRECT transfers.

use super::{AlignedBuf, IoBuf, IoBufMut};
use crate::driver::{self, opcode::no_runtime, DriverRef};
use std::cell::RefCell;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;
use std::task::{Poll, Waker};

/// Alignment of pool buffers: a page, which also satisfies every `O_DIRECT` alignment and lets
/// the memory be excluded from `fork()` children.
const PAGE: usize = 4096;

/// A set of equally sized, page-aligned buffers registered with the current worker's ring.
///
/// Buffers are lent with [`try_get`](Self::try_get) or [`get`](Self::get) and come back to the
/// pool when the [`FixedBuf`] is dropped. A pool belongs to the worker that created it (it is
/// `!Send`); on that worker, files use `READ_FIXED`/`WRITE_FIXED` with its buffers. Where the
/// buffers cannot be registered — the epoll driver, a kernel without sparse buffer tables
/// (< 5.19), or `RLIMIT_MEMLOCK` too small to pin them — the pool still works and the same calls
/// do plain reads and writes; [`is_registered`](Self::is_registered) tells which.
///
/// The memory is also marked `MADV_DONTFORK`, so a forked child never shares pages the kernel
/// may be writing into.
///
/// ```
/// # hoop_runtime::block_on(async {
/// use hoop_runtime::buf::FixedBufPool;
/// let pool = FixedBufPool::new(4, 64 * 1024).unwrap();
/// let mut buf = pool.try_get().unwrap();
/// buf.extend_from_slice(b"hello");
/// assert_eq!(&buf[..], b"hello");
/// assert_eq!(pool.available(), 3);
/// drop(buf);
/// assert_eq!(pool.available(), 4);
/// # });
/// ```
#[derive(Clone)]
pub struct FixedBufPool {
    inner: Rc<PoolInner>,
}

struct PoolInner {
    registration: Option<Registration>,
    free: RefCell<Vec<(u16, AlignedBuf)>>,
    waiters: RefCell<Vec<Waker>>,
    count: usize,
    buf_size: usize,
}

struct Registration {
    driver: DriverRef,
    base: u16,
}

impl FixedBufPool {
    /// Allocates `count` buffers of `size` bytes (rounded up to a page) and registers them with
    /// the current worker's ring. Fails outside a runtime, or for `count` of 0 or above 16384.
    pub fn new(count: usize, size: usize) -> io::Result<Self> {
        if count == 0 || count > 1 << 14 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "hoop: a fixed buffer pool holds 1 to 16384 buffers",
            ));
        }
        let driver = driver::current().ok_or_else(no_runtime)?;
        let mut bufs = Vec::with_capacity(count);
        for i in 0..count {
            bufs.push((i as u16, AlignedBuf::new(size, PAGE)?));
        }
        // Only once every allocation succeeded: an early return above must not give pages
        // still marked DONTFORK back to the allocator.
        for (_, buf) in &bufs {
            dont_fork(buf, true);
        }
        let buf_size = bufs[0].1.capacity();
        let registration = register(&driver, &bufs).map(|base| Registration { driver, base });
        bufs.reverse(); // lend index 0 first
        Ok(FixedBufPool {
            inner: Rc::new(PoolInner {
                registration,
                free: RefCell::new(bufs),
                waiters: RefCell::new(Vec::new()),
                count,
                buf_size,
            }),
        })
    }

    /// True if the buffers are registered with the ring (fixed-buffer opcodes are used).
    pub fn is_registered(&self) -> bool {
        self.inner.registration.is_some()
    }

    /// Size of each buffer.
    pub fn buffer_size(&self) -> usize {
        self.inner.buf_size
    }

    /// Number of buffers in the pool.
    pub fn len(&self) -> usize {
        self.inner.count
    }

    /// Always false: a pool has at least one buffer.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Buffers not lent out now.
    pub fn available(&self) -> usize {
        self.inner.free.borrow().len()
    }

    /// A free buffer (empty, full capacity), or `None` if all are lent out.
    pub fn try_get(&self) -> Option<FixedBuf> {
        let (slot, buf) = self.inner.free.borrow_mut().pop()?;
        Some(FixedBuf {
            buf: ManuallyDrop::new(buf),
            slot,
            pool: self.inner.clone(),
        })
    }

    /// A free buffer, waiting until one is returned if all are lent out.
    pub async fn get(&self) -> FixedBuf {
        poll_fn(|cx| match self.try_get() {
            Some(buf) => Poll::Ready(buf),
            None => {
                let mut waiters = self.inner.waiters.borrow_mut();
                if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    waiters.push(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await
    }
}

fn register(driver: &DriverRef, bufs: &[(u16, AlignedBuf)]) -> Option<u16> {
    let mut d = driver.try_borrow_mut().ok()?;
    let iovecs: Vec<libc::iovec> = bufs
        .iter()
        .map(|(_, b)| libc::iovec {
            iov_base: b.stable_ptr() as *mut _,
            iov_len: b.capacity(),
        })
        .collect();
    // SAFETY: the buffers are owned by the pool, which empties the slots before freeing them
    // and leaks them if that fails (`PoolInner::drop`).
    match unsafe { d.register_fixed(&iovecs) } {
        Ok(base) => Some(base),
        Err(e) => {
            tracing::debug!(target: "hoop", error = %e, "fixed buffers not registered; using plain reads and writes");
            None
        }
    }
}

/// Marks (or unmarks, before the memory goes back to the allocator) a page-aligned buffer as
/// not inherited by `fork()`.
fn dont_fork(buf: &AlignedBuf, on: bool) {
    let advice = if on {
        libc::MADV_DONTFORK
    } else {
        libc::MADV_DOFORK
    };
    // SAFETY: the range is exactly the buffer's own page-aligned, page-multiple allocation, so
    // the advice affects no other object; madvise does not touch the contents.
    unsafe { libc::madvise(buf.stable_ptr() as *mut _, buf.capacity(), advice) };
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        let bufs = std::mem::take(self.free.get_mut());
        if let Some(reg) = &self.registration {
            let freed = reg
                .driver
                .try_borrow_mut()
                .ok()
                .and_then(|mut d| d.unregister_fixed(reg.base, self.count).ok());
            if freed.is_none() {
                // The kernel may still name these buffers: never give them back to the allocator.
                crate::log::warning!("could not unregister fixed buffers; leaking them");
                std::mem::forget(bufs);
                return;
            }
        }
        for (_, buf) in &bufs {
            dont_fork(buf, false);
        }
    }
}

impl fmt::Debug for FixedBufPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedBufPool")
            .field("len", &self.len())
            .field("buffer_size", &self.buffer_size())
            .field("available", &self.available())
            .field("registered", &self.is_registered())
            .finish()
    }
}

/// A buffer lent by a [`FixedBufPool`]; it goes back to the pool when dropped.
///
/// It dereferences to its initialised bytes like a `Vec<u8>`; reads fill it from the start.
pub struct FixedBuf {
    buf: ManuallyDrop<AlignedBuf>,
    slot: u16,
    pool: Rc<PoolInner>,
}

impl FixedBuf {
    /// The index of this buffer in the ring's table, if it is registered with the ring of the
    /// worker running on this thread (only then may an SQE name it).
    pub fn fixed_index(&self) -> Option<u16> {
        let reg = self.pool.registration.as_ref()?;
        let here = driver::current()?;
        Rc::ptr_eq(&here, &reg.driver).then_some(reg.base + self.slot)
    }

    /// Bytes of memory the buffer holds.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Number of initialised bytes.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True if no byte is initialised.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Forgets the initialised bytes.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Appends `data`; panics if it does not fit in the capacity.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }
}

impl Drop for FixedBuf {
    fn drop(&mut self) {
        // SAFETY: `buf` is taken exactly once, here, and never used after.
        let mut buf = unsafe { ManuallyDrop::take(&mut self.buf) };
        buf.clear();
        self.pool.free.borrow_mut().push((self.slot, buf));
        // Woken outside the borrow: a waker may poll (and register) synchronously.
        let waiters = std::mem::take(&mut *self.pool.waiters.borrow_mut());
        for waker in waiters {
            waker.wake();
        }
    }
}

impl Deref for FixedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf
    }
}

impl DerefMut for FixedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

impl fmt::Debug for FixedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedBuf")
            .field("slot", &self.slot)
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

// SAFETY: forwarded to the owned `AlignedBuf`, whose allocation does not move with the value.
unsafe impl IoBuf for FixedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.buf.stable_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.buf.bytes_init()
    }
    fn bytes_total(&self) -> usize {
        self.buf.bytes_total()
    }
    fn fixed_index(&self) -> Option<u16> {
        FixedBuf::fixed_index(self)
    }
}

// SAFETY: forwarded to the owned `AlignedBuf`.
unsafe impl IoBufMut for FixedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.buf.stable_mut_ptr()
    }
    // SAFETY (contract): the caller's guarantee is passed on unchanged to the inner buffer.
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: forwarded to the caller.
        unsafe { self.buf.set_init(pos) }
    }
}
