//! Operations: each kernel operation is written once, as an [`OpCode`], and runs on every driver.
//!
//! On the io_uring driver an operation becomes one SQE; on the epoll driver it is performed by a
//! plain syscall, either at once ([`Plan::Now`]), when its fd is ready ([`Plan::Readiness`]), or on
//! the blocking pool ([`Plan::Blocking`]). The io_uring driver also takes the epoll path for an
//! opcode its kernel lacks (`IORING_REGISTER_PROBE`).
//!
//! [`Op`] is the future that drives an operation; [`MultiOp`] the stream that drives a multishot
//! one. Both are lazy (nothing happens before the first poll), never panic, and own the operation's
//! data until its final completion, also when dropped (see `driver::lifecycle`).

/// `Debug` for operation structs: their name only (their fields are raw pointers into buffers
/// the kernel may be using, which `Debug` must not read).
macro_rules! opaque_debug {
    ($($name:ident $(<$($g:ident),*>)?),* $(,)?) => {$(
        impl$(<$($g),*>)? std::fmt::Debug for $name$(<$($g),*>)? {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    )*};
}
pub(crate) use opaque_debug;

pub(crate) mod budget;
mod multi;
mod single;

pub mod accept;
pub mod at;
pub mod close;
pub mod connect;
pub mod dir_ops;
pub mod fd_passing;
pub mod file_space;
pub mod fixed;
pub mod fsync;
pub mod msg;
mod msghdr;
pub mod nop;
pub mod open;
pub mod open_walk;
pub mod path_ops;
pub mod poll;
pub mod recv_multi;
pub mod rw;
pub mod send_recv;
pub mod send_zc;
mod sockaddr;
pub mod splice;
pub mod statx;
pub mod vectored;
pub mod xattr;

pub use multi::{AfterFinal, MultiOp, MultishotOp};
pub use single::Op;

use io_uring::squeue::Entry;
use std::any::Any;
use std::io;
use std::os::fd::RawFd;

/// How the epoll driver (and the io_uring driver, for an opcode the kernel lacks) runs an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// `perform` never blocks and needs no readiness: run it inline.
    Now,
    /// `perform` is a non-blocking syscall on `fd` that fails with `EWOULDBLOCK` until the fd is
    /// ready for `interest`.
    Readiness {
        /// The fd to wait on.
        fd: RawFd,
        /// What to wait for.
        interest: Interest,
    },
    /// `perform` may block (file and path syscalls): run it on the blocking pool.
    Blocking,
}

/// Readiness a [`Plan::Readiness`] operation waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Interest(u32);

impl Interest {
    /// Readable, or hung up, or in error (`POLLIN`).
    pub const READABLE: Interest = Interest(libc::POLLIN as u32);
    /// Writable, or in error (`POLLOUT`).
    pub const WRITABLE: Interest = Interest(libc::POLLOUT as u32);
    /// Urgent data (`POLLPRI`).
    pub const PRIORITY: Interest = Interest(libc::POLLPRI as u32);

    /// Both interests.
    pub const fn add(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }

    /// True if this includes readability.
    pub const fn is_readable(self) -> bool {
        self.0 & (libc::POLLIN as u32) != 0
    }

    /// True if this includes writability.
    pub const fn is_writable(self) -> bool {
        self.0 & (libc::POLLOUT as u32) != 0
    }

    /// The `poll(2)` event mask.
    pub const fn poll_mask(self) -> u32 {
        self.0
    }
}

/// One kernel operation, with everything the kernel touches while it runs.
///
/// # Safety
///
/// Implementors promise that:
/// - every pointer placed in the SQE built by [`uring_entry`](OpCode::uring_entry), or passed to a
///   syscall by [`perform`](OpCode::perform), points into `self` or into memory `self` owns. The
///   driver keeps `self` in one heap allocation from the first `uring_entry` until the final
///   completion (also when the future is dropped), so such pointers stay valid for the kernel;
/// - `perform` touches only plain data (raw fds, raw pointers and lengths captured when the op was
///   built, integers): it may run on a blocking-pool thread while the op's owner waits, so it must
///   not touch `Rc`s, thread-locals or anything else tied to the owner's thread;
/// - `orphaned` releases what a completion created (an fd, a buffer id) and nothing else.
pub unsafe trait OpCode: 'static {
    /// What awaiting the operation gives.
    type Output;

    /// The SQE for the io_uring driver (its user data is set by the driver), or `None` for an
    /// operation io_uring has no opcode for (it then takes the `plan()` path on io_uring too).
    fn uring_entry(&mut self) -> Option<Entry>;

    /// How the epoll driver runs it.
    fn plan(&self) -> Plan;

    /// For an operation io_uring has no opcode for (`uring_entry` is `None`): the opcode whose
    /// place on a restricted ring's allowlist it takes (`getdents` stands for `OPENAT2`, a path
    /// operation). `None` (the default) refuses it on every restricted ring.
    fn ring_equivalent(&self) -> Option<u8> {
        None
    }

    /// The syscall for the epoll driver and the blocking pool; the `u32` is what a CQE's result
    /// would have been.
    fn perform(&mut self) -> io::Result<u32>;

    /// True if submitting the operation again is harmless even if a first attempt ran in part
    /// (file reads at an offset, `statx`, an open that cannot fail because it ran before).
    /// Only such operations are resubmitted after a `-ECANCELED` nobody asked for (io-wq gives
    /// it before 6.14 when it cannot start a worker thread under a pending signal): for the
    /// others, the same errno may come from a filesystem after the operation ran (a FUSE
    /// `FLUSH` of a close, a write that was applied), and running it again would repeat it.
    fn repeatable(&self) -> bool {
        false
    }

    /// True for an operation armed as multishot (one SQE, many completions): it runs only as a
    /// [`MultiOp`] stream, and [`Op`] refuses it with `InvalidInput` (a single-shot future would
    /// drop every completion but the last: accepted fds, selected buffers).
    fn multishot(&self) -> bool {
        false
    }

    /// Refuses an operation whose arguments the kernel must not see (flags that would let a
    /// result claim more than the buffer holds): it then completes with this error, never
    /// reaching the kernel or the pool.
    fn check(&self) -> io::Result<()> {
        Ok(())
    }

    /// Builds the output from the result, giving back owned buffers.
    fn complete(self, result: io::Result<u32>) -> Self::Output;

    /// A completion flagged `IORING_CQE_F_MORE` before the final one of a single-shot operation
    /// (the result of a zero-copy send, whose final completion is the buffer's release).
    fn more(&mut self, _res: i32, _flags: u32) {}

    /// Called for each completion that arrives after the future was dropped; closes an fd the
    /// operation returned, recycles a provided buffer it selected. It runs inside the driver and
    /// must not use it.
    fn orphaned(&mut self, _res: i32, _flags: u32) {}

    /// A non-blocking attempt the driver may make on the owner's thread instead of submitting:
    /// `Some(result)` if the operation completed (a file read served from the page cache), `None`
    /// if it would block or cannot be tried (then it is submitted as usual). io_uring's own
    /// inline attempt costs more than this one syscall, so the driver tries it when no other
    /// such operation is in flight (queue depth 1), leaving deeper queues to the ring's
    /// batching; the epoll driver tries it before the blocking pool, which it then skips.
    fn try_nowait(&mut self) -> Option<io::Result<u32>> {
        None
    }

    /// True if [`OpCode::try_nowait`] can complete this operation (it counts towards the queue
    /// depth that decides whether the next one is tried).
    fn has_nowait(&self) -> bool {
        false
    }

    /// Socket and pipe I/O whose [`OpCode::try_nowait`] is its non-blocking syscall: true when
    /// the fd's last results suggest it would complete now (the last read filled its buffer,
    /// the last write went out whole). The io_uring driver then makes that syscall on the
    /// worker's thread instead of submitting, if nothing else waits in the submission queue:
    /// the operation would need an `io_uring_enter` of its own, which costs more than the one
    /// syscall (a pipe ping-pong ran at 0.38x tokio through the ring). With SQEs already queued
    /// the operation joins their batch. The epoll driver has its own readiness path.
    fn stream_hint(&self) -> bool {
        false
    }

    /// True if the operation waits for a device (I/O on an `O_DIRECT` file). The io_uring driver
    /// submits such an operation at once instead of with the rest of the tick's batch: a
    /// device queue left short while the worker polls other tasks costs more than the extra
    /// `io_uring_enter` (`benches/direct.rs`: 0.83x fio's IOPS batched, 1.0x submitted at once).
    fn device_io(&self) -> bool {
        false
    }

    /// The hoop-owned fd a [`Plan::Readiness`] operation waits on, if it is one: its epoll
    /// registration is then kept between operations and dropped when the fd closes. Foreign fds
    /// (`None`) are registered only while an operation waits on them.
    fn shared_fd(&self) -> Option<&crate::fd::SharedFd> {
        None
    }

    /// After the operation failed with `EAGAIN`: the fd and readiness to wait for before trying
    /// again (on either driver, single-shot and multishot), or `None` to give the caller
    /// `WouldBlock` because nothing the operation can wait on would help. By default, its
    /// [`Plan::Readiness`]. When [`OpCode::shared_fd`] is `Some`, the fd returned here must be
    /// that fd: the epoll driver keeps the registration until it closes.
    fn wait_for(&self) -> Option<(RawFd, Interest)> {
        match self.plan() {
            Plan::Readiness { fd, interest } => Some((fd, interest)),
            _ => None,
        }
    }
}

/// The `try_nowait` of a stream operation: the result of its non-blocking syscall `res`, or
/// `None` if it would block, which also clears `fd`'s hint for that direction so the next
/// operation goes straight to the ring (which waits for readiness).
pub(crate) fn stream_attempt(
    res: io::Result<u32>,
    fd: &crate::fd::SharedFd,
    write: bool,
) -> Option<io::Result<u32>> {
    match res {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            fd.set_stream_hint(write, false);
            None
        }
        res => Some(res),
    }
}

/// Closes `res` if it is an fd: the `orphaned` of operations that return one (open, accept).
pub fn close_orphan_fd(res: i32) {
    if res >= 0 {
        // SAFETY: the kernel created this fd for an operation whose future is gone; nobody else
        // knows its number, so closing it cannot affect another owner.
        unsafe { libc::close(res) };
    }
}

/// The object-safe face of an [`OpCode`] the driver and the blocking pool work with.
pub(crate) trait DynOp: 'static {
    fn perform(&mut self) -> io::Result<u32>;
    fn orphaned(&mut self, res: i32, flags: u32);
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<T: OpCode> DynOp for T {
    fn perform(&mut self) -> io::Result<u32> {
        OpCode::perform(self)
    }
    fn orphaned(&mut self, res: i32, flags: u32) {
        OpCode::orphaned(self, res, flags)
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Gives back the concrete op a driver slot held.
pub(crate) fn downcast<T: OpCode>(data: Box<dyn DynOp>) -> Box<T> {
    data.into_any()
        .downcast::<T>()
        .unwrap_or_else(|_| unreachable!("a slot only ever holds the op type its future made"))
}

/// The error an operation gives when polled outside any hoop runtime.
pub(crate) fn no_runtime() -> io::Error {
    io::Error::other("hoop: operation polled outside a hoop runtime")
}

/// The error an operation gives when its runtime shut down before it completed.
pub(crate) fn runtime_gone() -> io::Error {
    io::Error::other("hoop: the runtime this operation was started on has shut down")
}
