//! `IORING_OP_STATX`: metadata of a path or an open fd.

use super::at::At;
use super::cvt;
use super::{OpCode, OpTraits, Plan};
use io_uring::{opcode, squeue::Entry, types};
use std::ffi::CString;
use std::io;

/// `statx(2)` of `path` under `at` (an empty path with `AT_EMPTY_PATH` means the dirfd itself).
pub struct Statx {
    at: At,
    path: CString,
    flags: i32,
    mask: u32,
    buf: Box<libc::statx>,
}

impl Statx {
    /// `flags` are `AT_*` flags (`AT_SYMLINK_NOFOLLOW`, `AT_EMPTY_PATH`), `mask` the `STATX_*`
    /// fields wanted.
    pub fn new(at: At, path: CString, flags: i32, mask: u32) -> Self {
        Statx {
            at,
            path,
            flags,
            mask,
            // SAFETY: `statx` is plain old data; all-zero is a valid value.
            buf: Box::new(unsafe { std::mem::zeroed() }),
        }
    }
}

// SAFETY: the SQE points at `self.path` (heap CString) and `self.buf` (heap box); the dirfd is
// kept open by `at`.
unsafe impl OpCode for Statx {
    type Output = io::Result<libc::statx>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let buf: *mut libc::statx = &mut *self.buf;
        Some(
            opcode::Statx::new(types::Fd(self.at.raw()), self.path.as_ptr(), buf.cast())
                .flags(self.flags)
                .mask(self.mask)
                .build(),
        )
    }

    fn plan(&self) -> Plan {
        Plan::Blocking
    }

    fn traits(&self) -> OpTraits {
        OpTraits::NONE.repeatable(true)
    }

    fn perform(&mut self) -> io::Result<u32> {
        let buf: *mut libc::statx = &mut *self.buf;
        // SAFETY: a live CString and a live, writable statx buffer.
        cvt(unsafe {
            libc::statx(
                self.at.raw(),
                self.path.as_ptr(),
                self.flags,
                self.mask,
                buf,
            )
        } as libc::c_long)
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<libc::statx> {
        result.map(|_| *self.buf)
    }
}

super::opaque_debug!(Statx);
