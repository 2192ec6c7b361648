//! Extended attributes by path or by fd, with the buffer-size dance (`ERANGE`: ask the size,
//! grow, retry) done here.

use hoop_runtime::fd::SharedFd;
use hoop_runtime::op::at::c_path;
use hoop_runtime::op::xattr::{GetXattr, ListXattr, RemoveXattr, SetXattr, XattrTarget};
use hoop_runtime::op::{Op, OpCode};
use hoop_runtime::Credentials;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// What an attribute call applies to.
pub(crate) enum Target<'a> {
    Path(&'a Path),
    Fd(&'a SharedFd),
    /// An `O_PATH` fd, reached through `/proc/thread-self/fd` (see `XattrTarget::Linked`).
    Linked(&'a SharedFd),
}

impl Target<'_> {
    fn op_target(&self) -> io::Result<XattrTarget> {
        Ok(match self {
            Target::Path(p) => XattrTarget::Path(c_path(p)?),
            Target::Fd(fd) => XattrTarget::Fd((*fd).clone()),
            Target::Linked(fd) => XattrTarget::linked((*fd).clone()),
        })
    }
}

/// True if this thread sees its fds under `/proc/thread-self/fd` (procfs mounted).
pub(crate) fn proc_fd_links() -> bool {
    static LINKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *LINKS.get_or_init(|| {
        Path::new("/proc/thread-self/fd").is_dir() && std::fs::read_link("/proc/self/exe").is_ok()
    })
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "attribute name contains a NUL byte",
        )
    })
}

fn op<T: OpCode>(op: T, creds: Option<&Credentials>) -> Op<T> {
    Op::new(op).with_credentials(creds.cloned())
}

/// Attribute values and lists are capped by the kernel at 64 KiB; start small.
const FIRST_GUESS: usize = 256;

pub(crate) async fn get(
    target: Target<'_>,
    name: &OsStr,
    creds: Option<&Credentials>,
) -> io::Result<Vec<u8>> {
    let name = c_name(name)?;
    let mut cap = FIRST_GUESS;
    loop {
        let get = GetXattr::new(target.op_target()?, name.clone(), Vec::with_capacity(cap));
        match op(get, creds).await {
            (Ok(_), buf) => return Ok(buf),
            (Err(e), _) if e.raw_os_error() == Some(libc::ERANGE) => {
                let size_query = GetXattr::new(target.op_target()?, name.clone(), Vec::new());
                let (size, _) = op(size_query, creds).await;
                cap = size?.max(cap * 2);
            }
            (Err(e), _) => return Err(e),
        }
    }
}

pub(crate) async fn set(
    target: Target<'_>,
    name: &OsStr,
    value: Vec<u8>,
    creds: Option<&Credentials>,
) -> io::Result<()> {
    op(
        SetXattr::new(target.op_target()?, c_name(name)?, value, 0),
        creds,
    )
    .await
}

pub(crate) async fn list(
    target: Target<'_>,
    creds: Option<&Credentials>,
) -> io::Result<Vec<OsString>> {
    let mut cap = FIRST_GUESS;
    loop {
        match op(
            ListXattr::new(target.op_target()?, Vec::with_capacity(cap)),
            creds,
        )
        .await
        {
            (Ok(_), buf) => {
                return Ok(buf
                    .split(|&b| b == 0)
                    .filter(|n| !n.is_empty())
                    .map(|n| OsString::from_vec(n.to_vec()))
                    .collect())
            }
            (Err(e), _) if e.raw_os_error() == Some(libc::ERANGE) => {
                let (size, _) = op(ListXattr::new(target.op_target()?, Vec::new()), creds).await;
                cap = size?.max(cap * 2);
            }
            (Err(e), _) => return Err(e),
        }
    }
}

pub(crate) async fn remove(
    target: Target<'_>,
    name: &OsStr,
    creds: Option<&Credentials>,
) -> io::Result<()> {
    op(RemoveXattr::new(target.op_target()?, c_name(name)?), creds).await
}
