//! `IORING_OP_CLOSE`: close an fd asynchronously (a close can block: NFS flushes, last
//! reference to a deleted file on some filesystems).

use super::at::cvt;
use super::{OpCode, Plan};
use io_uring::{opcode, squeue::Entry, types};
use std::io;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};

/// Closes an fd it owns, never twice: by the kernel if the operation ran (its completion, or
/// the orphaned completion of a dropped future, says so), otherwise by `Drop`. Where a result
/// cannot tell whether the kernel released the fd, it is left alone (a leak at worst).
pub struct Close {
    fd: RawFd,
    submitted: bool,
}

impl Close {
    /// Takes ownership of `fd`.
    pub fn new(fd: OwnedFd) -> Self {
        Close {
            fd: fd.into_raw_fd(),
            submitted: false,
        }
    }
}

// SAFETY: no pointers; the op owns the fd number until the close completes.
unsafe impl OpCode for Close {
    type Output = io::Result<()>;

    fn uring_entry(&mut self) -> Option<Entry> {
        Some(opcode::Close::new(types::Fd(self.fd)).build())
    }

    fn plan(&self) -> Plan {
        Plan::Blocking
    }

    fn perform(&mut self) -> io::Result<u32> {
        self.submitted = true;
        // SAFETY: the op owns the fd; after this call it is gone whatever the result (Linux
        // releases the fd even when close reports an error).
        cvt(unsafe { libc::close(self.fd) } as libc::c_long)
    }

    fn complete(mut self, result: io::Result<u32>) -> io::Result<()> {
        // `perform` (pool, inline) already said whether it ran. Otherwise a result with an OS
        // error came from the kernel, which may have released the fd even when it reports one
        // (Linux does on close errors; io-wq detaches the fd before a filesystem's flush, which
        // may answer ECANCELED): the fd is considered gone, and at worst leaks — never closed
        // twice, which could close a number reused meanwhile. An error without an OS error
        // came from the runtime (no runtime, runtime gone after the shutdown cancelled the
        // close, pool shut down) before anything ran: the fd is still this op's to close.
        self.submitted |= match &result {
            Ok(_) => true,
            Err(e) => e.raw_os_error().is_some(),
        };
        result.map(drop)
    }

    fn orphaned(&mut self, res: i32, _flags: u32) {
        // The future was dropped, so the driver asked for this cancel: `-ECANCELED` means the
        // close was cancelled before it ran.
        self.submitted |= res != -libc::ECANCELED;
    }
}

impl Drop for Close {
    fn drop(&mut self) {
        if !self.submitted {
            // SAFETY: never handed to the kernel or the pool, so this op still owns the fd.
            unsafe { libc::close(self.fd) };
        }
    }
}

super::opaque_debug!(Close);

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd};

    fn is_open(fd: RawFd) -> bool {
        // SAFETY: F_GETFD on a number only reads the fd table.
        unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
    }

    fn fresh_fd() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    /// A result the kernel gave (any OS error, `ECANCELED` included: a flush may answer it after
    /// io-wq detached the fd) means the fd may be gone: never closed again. An error made by the
    /// runtime before anything ran (no OS error) leaves the fd to `Drop`.
    #[test]
    fn closes_only_what_the_kernel_did_not() {
        for (err, closed_by_drop) in [
            (io::Error::from_raw_os_error(libc::ECANCELED), false),
            (io::Error::from_raw_os_error(libc::EIO), false),
            (io::Error::other("the runtime shut down"), true),
        ] {
            let fd = fresh_fd();
            let raw = fd.as_raw_fd();
            let _ = Close::new(fd).complete(Err(err));
            assert_eq!(!is_open(raw), closed_by_drop, "fd {raw}");
            if is_open(raw) {
                // SAFETY: the op left it alone; this test owns it.
                drop(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
    }
}
