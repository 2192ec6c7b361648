//! `IORING_OP_OPENAT2`: open a path relative to a directory, with `RESOLVE_*` confinement.

use super::at::At;
use super::cvt;
use super::{close_orphan_fd, OpCode, OpTraits, Plan};
use crate::fd::SharedFd;
use io_uring::{opcode, squeue::Entry, types};
use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// Opens `path` under `at` with `openat2(2)`; the fd comes back as a [`SharedFd`]. If the
/// future is dropped, an fd the kernel returns anyway is closed.
pub struct OpenAt2 {
    at: At,
    path: CString,
    how: types::OpenHow,
    raw_how: libc::open_how,
}

impl OpenAt2 {
    /// `flags` are `O_*` flags (`O_CLOEXEC` is always added), `mode` the creation mode,
    /// `resolve` the `RESOLVE_*` flags.
    pub fn new(at: At, path: CString, flags: i32, mode: u32, resolve: u64) -> Self {
        let flags = (flags | libc::O_CLOEXEC) as u64;
        let mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) as u64 != 0 {
            u64::from(mode)
        } else {
            0
        };
        // SAFETY: `open_how` is plain old data; all-zero is a valid value.
        let mut raw_how: libc::open_how = unsafe { std::mem::zeroed() };
        raw_how.flags = flags;
        raw_how.mode = mode;
        raw_how.resolve = resolve;
        OpenAt2 {
            at,
            path,
            how: types::OpenHow::new()
                .flags(flags)
                .mode(mode)
                .resolve(resolve),
            raw_how,
        }
    }
}

// SAFETY: the SQE points at `self.path` (a heap CString) and `self.how` (inside the boxed op);
// `perform` passes the same, plus the raw dirfd kept open by `at`.
unsafe impl OpCode for OpenAt2 {
    type Output = io::Result<SharedFd>;

    fn uring_entry(&mut self) -> Option<Entry> {
        Some(opcode::OpenAt2::new(types::Fd(self.at.raw()), self.path.as_ptr(), &self.how).build())
    }

    fn plan(&self) -> Plan {
        Plan::Blocking
    }

    fn traits(&self) -> OpTraits {
        // Not with O_EXCL: a create that ran would fail with EEXIST the second time.
        OpTraits::NONE.repeatable(self.raw_how.flags & libc::O_EXCL as u64 == 0)
    }

    fn perform(&mut self) -> io::Result<u32> {
        // SAFETY: pointers to a live CString and open_how; the size is the struct's.
        cvt(unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.at.raw(),
                self.path.as_ptr(),
                &self.raw_how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        })
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<SharedFd> {
        // SAFETY: a successful openat2 returns a new fd that nobody else owns.
        result.map(|fd| SharedFd::new(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }

    fn orphaned(&mut self, res: i32, _flags: u32) {
        close_orphan_fd(res);
    }
}

super::opaque_debug!(OpenAt2);
