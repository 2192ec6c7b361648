//! `IORING_OP_FSYNC`: flush a file's data (and metadata) to storage.

use super::cvt;
use super::{OpCode, Plan};
use crate::fd::SharedFd;
use io_uring::{opcode, squeue::Entry, types};
use std::io;

/// `fsync(2)`, or `fdatasync(2)` when `data_only`.
pub struct Fsync {
    fd: SharedFd,
    data_only: bool,
}

impl Fsync {
    /// Syncs `fd`; `data_only` skips metadata not needed to read the data back.
    pub fn new(fd: &SharedFd, data_only: bool) -> Self {
        Fsync {
            fd: fd.clone(),
            data_only,
        }
    }
}

// SAFETY: no pointers; the SharedFd keeps the fd open.
unsafe impl OpCode for Fsync {
    type Output = io::Result<()>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let flags = if self.data_only {
            types::FsyncFlags::DATASYNC
        } else {
            types::FsyncFlags::empty()
        };
        let (fd, fixed) = super::sqe_fd(&self.fd);
        Some(opcode::Fsync::new(fd).flags(flags).build().flags(fixed))
    }

    fn plan(&self) -> Plan {
        Plan::Blocking
    }

    fn perform(&mut self) -> io::Result<u32> {
        let fd = self.fd.raw();
        // SAFETY: plain syscalls on an open fd.
        let r = unsafe {
            if self.data_only {
                libc::fdatasync(fd)
            } else {
                libc::fsync(fd)
            }
        };
        cvt(r as libc::c_long)
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

super::opaque_debug!(Fsync);
