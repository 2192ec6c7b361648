//! Operations for sockets that may be direct descriptors (see [`SharedFd::direct_slot`]):
//! `IORING_OP_SHUTDOWN`, which names either kind, and `IORING_OP_FIXED_FD_INSTALL` (6.8), which
//! gives a direct descriptor an fd number.

use super::{cvt, OpCode, Plan};
use crate::fd::SharedFd;
use io_uring::{opcode, squeue, squeue::Entry, types};
use std::io;
use std::net::Shutdown as How;
use std::os::fd::{FromRawFd, OwnedFd};

/// `shutdown(2)` of a socket's read side, write side or both, through the ring (a direct
/// descriptor has no fd for the syscall).
pub struct Shutdown {
    fd: SharedFd,
    how: i32,
}

impl Shutdown {
    /// Shuts down `how` of the socket `fd`.
    pub fn new(fd: &SharedFd, how: How) -> Self {
        let how = match how {
            How::Read => libc::SHUT_RD,
            How::Write => libc::SHUT_WR,
            How::Both => libc::SHUT_RDWR,
        };
        Shutdown {
            fd: fd.clone(),
            how,
        }
    }
}

// SAFETY: no pointers; the fd is kept open by the SharedFd.
unsafe impl OpCode for Shutdown {
    type Output = io::Result<()>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let (fd, fixed) = super::sqe_fd(&self.fd);
        Some(opcode::Shutdown::new(fd, self.how).build().flags(fixed))
    }

    fn plan(&self) -> Plan {
        Plan::Now
    }

    fn perform(&mut self) -> io::Result<u32> {
        // SAFETY: shutdown on an fd the SharedFd keeps open; no memory is passed.
        cvt(unsafe { libc::shutdown(self.fd.raw(), self.how) } as libc::c_long)
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

/// Gives a direct descriptor an fd number in the process's table (`IORING_OP_FIXED_FD_INSTALL`,
/// Linux 6.8), close-on-exec; the slot stays until its `SharedFd` goes. A plain fd is
/// duplicated.
pub struct InstallFd {
    fd: SharedFd,
}

impl InstallFd {
    /// Installs `fd` as a new fd.
    pub fn new(fd: &SharedFd) -> Self {
        InstallFd { fd: fd.clone() }
    }
}

// SAFETY: no pointers; the slot or fd is kept open by the SharedFd.
unsafe impl OpCode for InstallFd {
    type Output = io::Result<OwnedFd>;

    fn uring_entry(&mut self) -> Option<Entry> {
        // Only a slot of this ring's table (a descriptor of another ring takes the plan path,
        // which refuses it).
        let (fd, fixed) = super::sqe_fd(&self.fd);
        fixed.contains(squeue::Flags::FIXED_FILE).then(|| {
            // Flags 0: close-on-exec, like every fd hoop makes.
            opcode::FixedFdInstall::new(types::Fixed(fd.0 as u32), 0).build()
        })
    }

    fn plan(&self) -> Plan {
        Plan::Now
    }

    fn perform(&mut self) -> io::Result<u32> {
        if self.fd.direct_slot().is_some() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "hoop: giving a direct descriptor an fd needs Linux 6.8 (IORING_OP_FIXED_FD_INSTALL)",
            ));
        }
        // SAFETY: F_DUPFD_CLOEXEC on an fd the SharedFd keeps open; no memory is passed.
        cvt(unsafe { libc::fcntl(self.fd.raw(), libc::F_DUPFD_CLOEXEC, 0) } as libc::c_long)
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<OwnedFd> {
        if result.is_ok() {
            // The connection lives on in the new fd: closing the slot must not shut it down.
            self.fd.keep_connection();
        }
        // SAFETY: a successful install or dup returns a new fd that nobody else owns.
        result.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    fn orphaned(&mut self, res: i32, _flags: u32) {
        super::close_orphan_fd(res);
    }
}

super::opaque_debug!(Shutdown, InstallFd);
