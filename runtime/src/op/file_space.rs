//! `IORING_OP_FTRUNCATE`, `IORING_OP_FALLOCATE`, `IORING_OP_FADVISE`: a file's size, allocation
//! and access-pattern hints.

use super::cvt;
use super::{OpCode, Plan};
use crate::fd::SharedFd;
use io_uring::{opcode, squeue::Entry, types};
use std::io;

/// `ftruncate(2)`.
pub struct Ftruncate {
    fd: SharedFd,
    len: u64,
}

impl Ftruncate {
    /// Sets the file's length to `len`.
    pub fn new(fd: &SharedFd, len: u64) -> Self {
        Ftruncate {
            fd: fd.clone(),
            len,
        }
    }
}

// SAFETY: no pointers; the SharedFd keeps the fd open.
unsafe impl OpCode for Ftruncate {
    type Output = io::Result<()>;

    fn uring_entry(&mut self) -> Option<Entry> {
        Some(opcode::Ftruncate::new(types::Fd(self.fd.raw()), self.len).build())
    }

    fn plan(&self) -> Plan {
        Plan::Blocking
    }

    fn perform(&mut self) -> io::Result<u32> {
        let len =
            i64::try_from(self.len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: plain syscall on an open fd.
        cvt(unsafe { libc::ftruncate(self.fd.raw(), len) } as libc::c_long)
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

/// `fallocate(2)`: allocate, keep the size, punch holes (`FALLOC_FL_*` in `mode`).
pub struct Fallocate {
    fd: SharedFd,
    offset: u64,
    len: u64,
    mode: i32,
}

impl Fallocate {
    /// Applies `mode` to `offset..offset + len`.
    pub fn new(fd: &SharedFd, offset: u64, len: u64, mode: i32) -> Self {
        Fallocate {
            fd: fd.clone(),
            offset,
            len,
            mode,
        }
    }
}

// SAFETY: no pointers; the SharedFd keeps the fd open.
unsafe impl OpCode for Fallocate {
    type Output = io::Result<()>;

    fn uring_entry(&mut self) -> Option<Entry> {
        Some(
            opcode::Fallocate::new(types::Fd(self.fd.raw()), self.len)
                .offset(self.offset)
                .mode(self.mode)
                .build(),
        )
    }

    fn plan(&self) -> Plan {
        Plan::Blocking
    }

    fn perform(&mut self) -> io::Result<u32> {
        // SAFETY: plain syscall on an open fd.
        cvt(unsafe {
            libc::fallocate(
                self.fd.raw(),
                self.mode,
                self.offset as i64,
                self.len as i64,
            )
        } as libc::c_long)
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

/// `posix_fadvise(2)`: tell the kernel how a range will be accessed (`POSIX_FADV_*`).
pub struct Fadvise {
    fd: SharedFd,
    offset: u64,
    len: u32,
    advice: i32,
}

impl Fadvise {
    /// Advises `advice` for `offset..offset + len` (`len` 0: to the end of the file).
    pub fn new(fd: &SharedFd, offset: u64, len: u32, advice: i32) -> Self {
        Fadvise {
            fd: fd.clone(),
            offset,
            len,
            advice,
        }
    }
}

// SAFETY: no pointers; the SharedFd keeps the fd open.
unsafe impl OpCode for Fadvise {
    type Output = io::Result<()>;

    fn uring_entry(&mut self) -> Option<Entry> {
        Some(
            opcode::Fadvise::new(types::Fd(self.fd.raw()), self.len as _, self.advice)
                .offset(self.offset)
                .build(),
        )
    }

    fn plan(&self) -> Plan {
        Plan::Blocking
    }

    fn perform(&mut self) -> io::Result<u32> {
        // SAFETY: plain syscall on an open fd. posix_fadvise returns the error number itself.
        let r = unsafe {
            libc::posix_fadvise(
                self.fd.raw(),
                self.offset as i64,
                self.len as i64,
                self.advice,
            )
        };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(0)
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

super::opaque_debug!(Fadvise, Ftruncate, Fallocate);
