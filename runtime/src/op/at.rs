//! [`At`]: where a relative path starts (the current directory or an open directory), and path
//! conversion for syscalls.

use crate::fd::SharedFd;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The anchor of a path operation: `AT_FDCWD`, or a directory fd kept open by the operation.
#[derive(Clone, Debug, Default)]
pub struct At {
    dir: Option<SharedFd>,
}

impl At {
    /// Relative paths start at the process's current directory.
    pub fn cwd() -> Self {
        At { dir: None }
    }

    /// Relative paths start at this open directory.
    pub fn dir(fd: &SharedFd) -> Self {
        At {
            dir: Some(fd.clone()),
        }
    }

    /// The raw dirfd for the syscall.
    pub fn raw(&self) -> i32 {
        self.dir.as_ref().map_or(libc::AT_FDCWD, SharedFd::raw)
    }
}

/// A path as the kernel wants it; an interior NUL byte is an `InvalidInput` error.
pub fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "path contains an interior NUL byte",
        )
    })
}
