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
    /// Taken by a syscall on the worker, from the kernel's cached attributes (see
    /// [`Statx::cached`]).
    cached: bool,
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
            cached: false,
            // SAFETY: `statx` is plain old data; all-zero is a valid value.
            buf: Box::new(unsafe { std::mem::zeroed() }),
        }
    }

    /// Takes the attributes the kernel has cached (`AT_STATX_DONT_SYNC`) with a syscall on the
    /// worker's thread, instead of through the ring (where io_uring always runs `statx` on an
    /// io-wq thread) or the blocking pool. For an open fd that is the point: its inode is in
    /// memory, so the call does no I/O on a local filesystem, and `DONT_SYNC` keeps a network or
    /// FUSE filesystem from asking its server. A path would be looked up (and might read the
    /// disk): use it only with `AT_EMPTY_PATH` on an open fd.
    ///
    /// Only for an empty path (`AT_EMPTY_PATH`): with a path it does nothing. Not for an
    /// operation run with [`Credentials`](crate::Credentials): the worker's syscall runs as the
    /// server (harmless for an open fd, which needs no permission, but not what was asked).
    pub fn cached(mut self) -> Self {
        if self.path.as_bytes().is_empty() {
            self.cached = true;
            self.flags |= libc::AT_STATX_DONT_SYNC;
        }
        self
    }
}

// SAFETY: the SQE points at `self.path` (heap CString) and `self.buf` (heap box); the dirfd is
// kept open by `at`.
unsafe impl OpCode for Statx {
    type Output = io::Result<libc::statx>;

    fn uring_entry(&mut self) -> Option<Entry> {
        if self.cached {
            return None; // runs by its plan, on the worker
        }
        let buf: *mut libc::statx = &mut *self.buf;
        Some(
            opcode::Statx::new(types::Fd(self.at.raw()), self.path.as_ptr(), buf.cast())
                .flags(self.flags)
                .mask(self.mask)
                .build(),
        )
    }

    fn plan(&self) -> Plan {
        if self.cached {
            Plan::Now
        } else {
            Plan::Blocking
        }
    }

    fn traits(&self) -> OpTraits {
        // A restricted ring lets it run outside where it allows `STATX`.
        OpTraits::NONE
            .repeatable(true)
            .ring_equivalent(opcode::Statx::CODE)
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
