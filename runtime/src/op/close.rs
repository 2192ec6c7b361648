//! `IORING_OP_CLOSE`: close an fd asynchronously (a close can block: NFS flushes, last
//! reference to a deleted file on some filesystems).

use super::cvt;
use super::{OpCode, Plan};
use io_uring::{opcode, squeue::Entry, types};
use std::io;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};

/// Closes an fd it owns, never twice: once the fd is handed to the kernel (an SQE built, or the
/// syscall made on the pool or inline) the kernel owns it, whatever the result — an error, a
/// cancel, a shutdown before it ran (a leak at worst, never a close of a number reused
/// meanwhile); only an operation that never got that far closes it in `Drop`.
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
        // Handed to the kernel from here: whatever comes back (a cancel, an error, nothing before
        // the runtime shuts down), the fd may be gone — io-wq detaches it before the flush, and
        // a cancel cannot stop a close that started — so `Drop` never closes it again.
        self.submitted = true;
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

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        // `uring_entry` or `perform` marked it if the kernel got the fd; an error before either
        // (no runtime, the pool shut down) leaves the fd to `Drop`.
        result.map(drop)
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

    /// Once the SQE was built the kernel may own the fd, whatever comes back (`ECANCELED`
    /// included: a flush may answer it after io-wq detached the fd): never closed again. An
    /// error before that (no runtime, pool shut down) leaves the fd to `Drop`.
    #[test]
    fn closes_only_what_never_reached_the_kernel() {
        for (handed, err) in [
            (true, io::Error::from_raw_os_error(libc::ECANCELED)),
            (true, io::Error::other("the runtime shut down")),
            (false, io::Error::other("no runtime")),
        ] {
            let fd = fresh_fd();
            let raw = fd.as_raw_fd();
            let mut op = Close::new(fd);
            if handed {
                let _ = op.uring_entry();
            }
            let _ = op.complete(Err(err));
            assert_eq!(is_open(raw), handed, "fd {raw}");
            if is_open(raw) {
                // SAFETY: the op left it alone; this test owns it.
                drop(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
    }
}
