//! [`FsError`]: an OS error with the operation and path that caused it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The payload of an `io::Error` from a path operation: "open /srv/x: No such file or directory".
/// The error's `kind()` is the OS error's kind; [`os_error`] gives back its errno.
#[derive(Debug)]
pub struct FsError {
    op: &'static str,
    path: PathBuf,
    source: io::Error,
}

impl FsError {
    /// The operation that failed ("open", "stat", "rename", …).
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// The path it failed on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The OS error.
    pub fn os_error(&self) -> &io::Error {
        &self.source
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path.display(), self.source)
    }
}

impl std::error::Error for FsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Adds the operation and path to an error (once: an error that already carries them is kept).
pub(crate) fn with_path<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> io::Error + 'a {
    move |e| {
        if e.get_ref().is_some_and(|inner| inner.is::<FsError>()) {
            return e;
        }
        io::Error::new(
            e.kind(),
            FsError {
                op,
                path: path.to_path_buf(),
                source: e,
            },
        )
    }
}

/// The errno of an error from this crate, looking through the [`FsError`] wrapper.
///
/// ```
/// # hoop_runtime::block_on(async {
/// let err = hoop_fs::metadata("/no/such/path").await.unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// assert_eq!(hoop_fs::os_error(&err), Some(libc::ENOENT));
/// assert!(err.to_string().starts_with("stat /no/such/path: "));
/// # });
/// ```
pub fn os_error(e: &io::Error) -> Option<i32> {
    if let Some(code) = e.raw_os_error() {
        return Some(code);
    }
    // Walk the chain of wrapped errors down to the OS error.
    let mut cur: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|i| i as _);
    while let Some(err) = cur {
        if let Some(io_err) = err.downcast_ref::<io::Error>() {
            if let Some(code) = io_err.raw_os_error() {
                return Some(code);
            }
            cur = io_err.get_ref().map(|i| i as _);
            continue;
        }
        cur = err.source();
    }
    None
}
