//! Path operations relative to a directory: `IORING_OP_RENAMEAT`, `UNLINKAT`, `MKDIRAT`,
//! `SYMLINKAT`, `LINKAT`. Each keeps its path strings (heap `CString`s) and dirfds alive until
//! its completion.

use super::at::At;
use super::cvt;
use super::{OpCode, Plan};
use io_uring::{opcode, squeue::Entry, types};
use std::ffi::CString;
use std::io;

macro_rules! unit_output {
    () => {
        type Output = io::Result<()>;

        fn plan(&self) -> Plan {
            Plan::Blocking
        }

        fn complete(self, result: io::Result<u32>) -> io::Result<()> {
            result.map(drop)
        }
    };
}

/// `renameat2(2)`.
pub struct RenameAt {
    from_at: At,
    from: CString,
    to_at: At,
    to: CString,
    flags: u32,
}

impl RenameAt {
    /// Renames `from` (under `from_at`) to `to` (under `to_at`); `flags` are `RENAME_*`.
    pub fn new(from_at: At, from: CString, to_at: At, to: CString, flags: u32) -> Self {
        RenameAt {
            from_at,
            from,
            to_at,
            to,
            flags,
        }
    }
}

// SAFETY: the SQE and `perform` point at the op's heap CStrings; the dirfds are kept open.
unsafe impl OpCode for RenameAt {
    unit_output!();

    fn uring_entry(&mut self) -> Option<Entry> {
        Some(
            opcode::RenameAt::new(
                types::Fd(self.from_at.raw()),
                self.from.as_ptr(),
                types::Fd(self.to_at.raw()),
                self.to.as_ptr(),
            )
            .flags(self.flags)
            .build(),
        )
    }

    fn perform(&mut self) -> io::Result<u32> {
        // SAFETY: live CStrings and open dirfds.
        cvt(unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                self.from_at.raw(),
                self.from.as_ptr(),
                self.to_at.raw(),
                self.to.as_ptr(),
                self.flags,
            )
        })
    }
}

/// `unlinkat(2)`: removes a file, or an empty directory with `AT_REMOVEDIR`.
pub struct UnlinkAt {
    at: At,
    path: CString,
    flags: i32,
}

impl UnlinkAt {
    /// Removes `path` under `at`.
    pub fn new(at: At, path: CString, flags: i32) -> Self {
        UnlinkAt { at, path, flags }
    }
}

// SAFETY: the SQE and `perform` point at the op's heap CString; the dirfd is kept open.
unsafe impl OpCode for UnlinkAt {
    unit_output!();

    fn uring_entry(&mut self) -> Option<Entry> {
        Some(
            opcode::UnlinkAt::new(types::Fd(self.at.raw()), self.path.as_ptr())
                .flags(self.flags)
                .build(),
        )
    }

    fn perform(&mut self) -> io::Result<u32> {
        // SAFETY: a live CString and an open dirfd.
        cvt(
            unsafe { libc::unlinkat(self.at.raw(), self.path.as_ptr(), self.flags) }
                as libc::c_long,
        )
    }
}

/// `mkdirat(2)`.
pub struct MkDirAt {
    at: At,
    path: CString,
    mode: u32,
}

impl MkDirAt {
    /// Creates directory `path` under `at` with `mode` (before the umask).
    pub fn new(at: At, path: CString, mode: u32) -> Self {
        MkDirAt { at, path, mode }
    }
}

// SAFETY: the SQE and `perform` point at the op's heap CString; the dirfd is kept open.
unsafe impl OpCode for MkDirAt {
    unit_output!();

    fn uring_entry(&mut self) -> Option<Entry> {
        Some(
            opcode::MkDirAt::new(types::Fd(self.at.raw()), self.path.as_ptr())
                .mode(self.mode)
                .build(),
        )
    }

    fn perform(&mut self) -> io::Result<u32> {
        // SAFETY: a live CString and an open dirfd.
        cvt(unsafe { libc::mkdirat(self.at.raw(), self.path.as_ptr(), self.mode) } as libc::c_long)
    }
}

/// `symlinkat(2)`: creates `link` (under `at`) pointing to `target` (stored as is).
pub struct SymlinkAt {
    target: CString,
    at: At,
    link: CString,
}

impl SymlinkAt {
    /// Creates the symlink `link` under `at` with contents `target`.
    pub fn new(target: CString, at: At, link: CString) -> Self {
        SymlinkAt { target, at, link }
    }
}

// SAFETY: the SQE and `perform` point at the op's heap CStrings; the dirfd is kept open.
unsafe impl OpCode for SymlinkAt {
    unit_output!();

    fn uring_entry(&mut self) -> Option<Entry> {
        Some(
            opcode::SymlinkAt::new(
                types::Fd(self.at.raw()),
                self.target.as_ptr(),
                self.link.as_ptr(),
            )
            .build(),
        )
    }

    fn perform(&mut self) -> io::Result<u32> {
        // SAFETY: live CStrings and an open dirfd.
        cvt(
            unsafe { libc::symlinkat(self.target.as_ptr(), self.at.raw(), self.link.as_ptr()) }
                as libc::c_long,
        )
    }
}

/// `linkat(2)`: a hard link.
pub struct LinkAt {
    from_at: At,
    from: CString,
    to_at: At,
    to: CString,
    flags: i32,
}

impl LinkAt {
    /// Links `to` (under `to_at`) to the file `from` (under `from_at`); `flags` are `AT_*`.
    pub fn new(from_at: At, from: CString, to_at: At, to: CString, flags: i32) -> Self {
        LinkAt {
            from_at,
            from,
            to_at,
            to,
            flags,
        }
    }
}

// SAFETY: the SQE and `perform` point at the op's heap CStrings; the dirfds are kept open.
unsafe impl OpCode for LinkAt {
    unit_output!();

    fn uring_entry(&mut self) -> Option<Entry> {
        Some(
            opcode::LinkAt::new(
                types::Fd(self.from_at.raw()),
                self.from.as_ptr(),
                types::Fd(self.to_at.raw()),
                self.to.as_ptr(),
            )
            .flags(self.flags)
            .build(),
        )
    }

    fn perform(&mut self) -> io::Result<u32> {
        // SAFETY: live CStrings and open dirfds.
        cvt(unsafe {
            libc::linkat(
                self.from_at.raw(),
                self.from.as_ptr(),
                self.to_at.raw(),
                self.to.as_ptr(),
                self.flags,
            )
        } as libc::c_long)
    }
}

super::opaque_debug!(MkDirAt, SymlinkAt, LinkAt, RenameAt, UnlinkAt);
