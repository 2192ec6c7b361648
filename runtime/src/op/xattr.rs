//! Extended attributes: `IORING_OP_GETXATTR`/`FGETXATTR`/`SETXATTR`/`FSETXATTR` on the ring;
//! listing and removal, which io_uring lacks, on the blocking pool.

use super::cvt;
use super::{OpCode, OpTraits, Plan};
use crate::fd::SharedFd;
use io_uring::{opcode, squeue::Entry, types};
use std::ffi::CString;
use std::io;

/// What an xattr operation applies to.
#[derive(Debug)]
pub enum XattrTarget {
    /// A path, resolved like `getxattr(2)` (following symlinks, relative to the current directory).
    Path(CString),
    /// An open file.
    Fd(SharedFd),
    /// A file opened with `O_PATH` — which needs no read permission and has no open side
    /// effects (a device) — named by its `/proc/thread-self/fd/N` link, since the fd calls
    /// refuse `O_PATH` fds. The op keeps the fd open, so the number names this file until it
    /// ends; every thread that may make the call (the worker, io-wq, the pool) shares the fd
    /// table (`thread-self`, unlike `self`, works after the main thread exited).
    Linked {
        /// The `O_PATH` fd.
        fd: SharedFd,
        /// `/proc/thread-self/fd/N`.
        link: CString,
    },
}

impl XattrTarget {
    /// The target for an `O_PATH` fd (see [`XattrTarget::Linked`]).
    pub fn linked(fd: SharedFd) -> Self {
        let link = CString::new(format!("/proc/thread-self/fd/{}", fd.raw()))
            .expect("no NUL in a formatted number");
        XattrTarget::Linked { fd, link }
    }

    /// What the call takes: a path or an fd.
    fn resolved(&self) -> Resolved<'_> {
        match self {
            XattrTarget::Path(p) | XattrTarget::Linked { link: p, .. } => Resolved::Path(p),
            XattrTarget::Fd(fd) => Resolved::Fd(fd),
        }
    }
}

/// An [`XattrTarget`] as the syscall takes it.
enum Resolved<'a> {
    Path(&'a CString),
    Fd(&'a SharedFd),
}

/// The buffer after the kernel wrote `result` bytes into its spare capacity.
fn filled(mut buf: Vec<u8>, result: io::Result<u32>) -> (io::Result<usize>, Vec<u8>) {
    match result {
        Ok(n) => {
            let n = (n as usize).min(buf.capacity());
            // SAFETY: the kernel wrote `n` bytes from the start, never more than the capacity it
            // was given (the buffer was empty, so all of them are new).
            unsafe { buf.set_len(n) };
            (Ok(n), buf)
        }
        Err(e) => (Err(e), buf),
    }
}

/// `getxattr(2)` / `fgetxattr(2)` into a buffer of the buffer's capacity; `ERANGE` if too small.
/// A zero-capacity buffer asks for the value's size.
pub struct GetXattr {
    target: XattrTarget,
    name: CString,
    buf: Vec<u8>,
}

impl GetXattr {
    /// Reads attribute `name` into `buf` (up to its capacity).
    pub fn new(target: XattrTarget, name: CString, mut buf: Vec<u8>) -> Self {
        buf.clear();
        GetXattr { target, name, buf }
    }
}

// SAFETY: the SQE and `perform` point at the op's heap CStrings and Vec allocation, within its
// capacity; the fd is kept open by the SharedFd.
unsafe impl OpCode for GetXattr {
    type Output = (io::Result<usize>, Vec<u8>);

    fn uring_entry(&mut self) -> Option<Entry> {
        let (name, value, len) = (
            self.name.as_ptr(),
            self.buf.as_mut_ptr().cast(),
            self.buf.capacity() as u32,
        );
        Some(match self.target.resolved() {
            Resolved::Path(p) => opcode::GetXattr::new(name, value, p.as_ptr(), len).build(),
            Resolved::Fd(fd) => {
                opcode::FGetXattr::new(types::Fd(fd.raw()), name, value, len).build()
            }
        })
    }

    fn plan(&self) -> Plan {
        Plan::Blocking
    }

    fn perform(&mut self) -> io::Result<u32> {
        let (name, value, len) = (
            self.name.as_ptr(),
            self.buf.as_mut_ptr().cast(),
            self.buf.capacity(),
        );
        // SAFETY: live CStrings and `len` writable bytes of the Vec's allocation.
        cvt(unsafe {
            match self.target.resolved() {
                Resolved::Path(p) => libc::getxattr(p.as_ptr(), name, value, len),
                Resolved::Fd(fd) => libc::fgetxattr(fd.raw(), name, value, len),
            }
        } as libc::c_long)
    }

    fn complete(self, result: io::Result<u32>) -> (io::Result<usize>, Vec<u8>) {
        filled(self.buf, result)
    }
}

/// `setxattr(2)` / `fsetxattr(2)`; `flags` are `XATTR_CREATE` / `XATTR_REPLACE`.
pub struct SetXattr {
    target: XattrTarget,
    name: CString,
    value: Vec<u8>,
    flags: i32,
}

impl SetXattr {
    /// Sets attribute `name` to `value`.
    pub fn new(target: XattrTarget, name: CString, value: Vec<u8>, flags: i32) -> Self {
        SetXattr {
            target,
            name,
            value,
            flags,
        }
    }
}

// SAFETY: the SQE and `perform` point at the op's heap CStrings and Vec; the fd is kept open.
unsafe impl OpCode for SetXattr {
    type Output = io::Result<()>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let (name, value, len) = (
            self.name.as_ptr(),
            self.value.as_ptr().cast(),
            self.value.len() as u32,
        );
        Some(match self.target.resolved() {
            Resolved::Path(p) => opcode::SetXattr::new(name, value, p.as_ptr(), len)
                .flags(self.flags)
                .build(),
            Resolved::Fd(fd) => opcode::FSetXattr::new(types::Fd(fd.raw()), name, value, len)
                .flags(self.flags)
                .build(),
        })
    }

    fn plan(&self) -> Plan {
        Plan::Blocking
    }

    fn perform(&mut self) -> io::Result<u32> {
        let (name, value, len) = (
            self.name.as_ptr(),
            self.value.as_ptr().cast(),
            self.value.len(),
        );
        // SAFETY: live CStrings and `len` initialised bytes of the value.
        cvt(unsafe {
            match self.target.resolved() {
                Resolved::Path(p) => libc::setxattr(p.as_ptr(), name, value, len, self.flags),
                Resolved::Fd(fd) => libc::fsetxattr(fd.raw(), name, value, len, self.flags),
            }
        } as libc::c_long)
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

/// `listxattr(2)` / `flistxattr(2)` (no io_uring opcode: the blocking pool on every driver).
pub struct ListXattr {
    target: XattrTarget,
    buf: Vec<u8>,
}

impl ListXattr {
    /// Lists attribute names into `buf` (NUL-separated), up to its capacity.
    pub fn new(target: XattrTarget, mut buf: Vec<u8>) -> Self {
        buf.clear();
        ListXattr { target, buf }
    }
}

// SAFETY: `perform` points at the op's heap CString and Vec allocation within its capacity.
unsafe impl OpCode for ListXattr {
    type Output = (io::Result<usize>, Vec<u8>);

    fn uring_entry(&mut self) -> Option<Entry> {
        None
    }

    fn plan(&self) -> Plan {
        Plan::Blocking
    }

    fn traits(&self) -> OpTraits {
        OpTraits::NONE.ring_equivalent(match self.target.resolved() {
            Resolved::Path(_) => opcode::GetXattr::CODE,
            Resolved::Fd(_) => opcode::FGetXattr::CODE,
        })
    }

    fn perform(&mut self) -> io::Result<u32> {
        let (list, len) = (self.buf.as_mut_ptr().cast(), self.buf.capacity());
        // SAFETY: `len` writable bytes of the Vec's allocation, a live CString.
        cvt(unsafe {
            match self.target.resolved() {
                Resolved::Path(p) => libc::listxattr(p.as_ptr(), list, len),
                Resolved::Fd(fd) => libc::flistxattr(fd.raw(), list, len),
            }
        } as libc::c_long)
    }

    fn complete(self, result: io::Result<u32>) -> (io::Result<usize>, Vec<u8>) {
        filled(self.buf, result)
    }
}

/// `removexattr(2)` / `fremovexattr(2)` (the blocking pool on every driver).
pub struct RemoveXattr {
    target: XattrTarget,
    name: CString,
}

impl RemoveXattr {
    /// Removes attribute `name`.
    pub fn new(target: XattrTarget, name: CString) -> Self {
        RemoveXattr { target, name }
    }
}

// SAFETY: `perform` points at the op's heap CStrings; the fd is kept open.
unsafe impl OpCode for RemoveXattr {
    type Output = io::Result<()>;

    fn uring_entry(&mut self) -> Option<Entry> {
        None
    }

    fn plan(&self) -> Plan {
        Plan::Blocking
    }

    fn traits(&self) -> OpTraits {
        OpTraits::NONE.ring_equivalent(match self.target.resolved() {
            Resolved::Path(_) => opcode::SetXattr::CODE,
            Resolved::Fd(_) => opcode::FSetXattr::CODE,
        })
    }

    fn perform(&mut self) -> io::Result<u32> {
        // SAFETY: live CStrings and an open fd.
        cvt(unsafe {
            match self.target.resolved() {
                Resolved::Path(p) => libc::removexattr(p.as_ptr(), self.name.as_ptr()),
                Resolved::Fd(fd) => libc::fremovexattr(fd.raw(), self.name.as_ptr()),
            }
        } as libc::c_long)
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

super::opaque_debug!(GetXattr, SetXattr, ListXattr, RemoveXattr);
