//! `IORING_OP_CLOSE`: close an fd asynchronously (a close can block: NFS flushes, last
//! reference to a deleted file on some filesystems).

use super::at::cvt;
use super::{OpCode, Plan};
use io_uring::{opcode, squeue::Entry, types};
use std::io;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};

/// Closes an fd it owns, exactly once: by the kernel if the operation ran (its completion, or
/// the orphaned completion of a dropped future, says so), otherwise by `Drop`.
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
        // error came from the kernel, which ran the close unless it cancelled it first (Linux
        // releases the fd even when close reports an error); an error without one came from
        // the runtime (no runtime, runtime gone, pool shut down) and the fd is still ours.
        self.submitted |= match &result {
            Ok(_) => true,
            Err(e) => !matches!(e.raw_os_error(), None | Some(libc::ECANCELED)),
        };
        result.map(drop)
    }

    fn orphaned(&mut self, res: i32, _flags: u32) {
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
