//! Operations: each kernel operation is written once, as an [`OpCode`], and runs on every driver.
//!
//! On the io_uring driver an operation becomes one SQE; on the epoll driver it is performed by a
//! plain syscall, either at once ([`Plan::Now`]), when its fd is ready ([`Plan::Readiness`]), or on
//! the blocking pool ([`Plan::Blocking`]). The io_uring driver also takes the epoll path for an
//! opcode its kernel lacks (`IORING_REGISTER_PROBE`).
//!
//! The contract ([`OpCode`], [`Plan`], [`OpTraits`]) belongs to the driver, which runs every
//! operation through one dispatch; this module implements it, one file per kernel operation.
//! [`Op`] is the future of an operation, [`MultiOp`] the stream of a multishot one: both are thin
//! (one dispatch poll per poll), lazy (nothing happens before the first poll), never panic, and
//! own the operation's data until its final completion, also when dropped (see
//! `driver::lifecycle`).

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

mod future;
mod stream;

pub mod accept;
pub mod at;
pub mod close;
pub mod connect;
pub mod dir_ops;
pub mod direct;
pub mod fd_passing;
pub mod file_space;
pub mod fixed;
pub mod fsync;
pub mod link;
pub mod msg;
mod msghdr;
pub mod nop;
pub mod open;
pub mod open_walk;
pub mod path_ops;
pub mod poll;
pub mod recv_multi;
pub mod rw;
pub(crate) mod send_fd;
pub mod send_recv;
pub mod send_zc;
mod sockaddr;
pub mod splice;
pub mod statx;
pub mod vectored;
pub mod xattr;

pub use crate::driver::opcode::{Inline, Interest, OpCode, OpTraits, Plan, ReapHook};
pub(crate) use crate::driver::sqe_fd;
pub use future::Op;
pub use stream::{AfterFinal, MultiOp, MultishotOp};

use std::io;

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

/// A syscall's result as a completion result (what `perform` returns).
pub(crate) fn cvt(r: libc::c_long) -> io::Result<u32> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as u32)
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

#[cfg(test)]
mod tests {
    /// An io_uring runtime for unit tests that look at the SQEs ops build; `None` (a recorded
    /// skip) where io_uring is denied, as in the seccomp pass of `.ci/run`.
    pub(crate) fn uring_runtime() -> Option<crate::Runtime> {
        let rt = crate::Runtime::builder()
            .driver(crate::DriverChoice::IoUring)
            .build();
        if rt.is_err() {
            crate::diagnostics::record_skip("io_uring unavailable");
        }
        rt.ok()
    }
}
