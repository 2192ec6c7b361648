//! Extended attributes by path or by fd, with the buffer-size dance (`ERANGE`: ask the size,
//! grow, retry) done here.

use hoop_runtime::fd::SharedFd;
use hoop_runtime::op::at::c_path;
use hoop_runtime::op::xattr::{GetXattr, ListXattr, RemoveXattr, SetXattr, XattrTarget};
use hoop_runtime::op::Op;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// What an attribute call applies to.
pub(crate) enum Target<'a> {
    Path(&'a Path),
    Fd(&'a SharedFd),
}

impl Target<'_> {
    fn op_target(&self) -> io::Result<XattrTarget> {
        Ok(match self {
            Target::Path(p) => XattrTarget::Path(c_path(p)?),
            Target::Fd(fd) => XattrTarget::Fd((*fd).clone()),
        })
    }
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "attribute name contains a NUL byte",
        )
    })
}

/// Attribute values and lists are capped by the kernel at 64 KiB; start small.
const FIRST_GUESS: usize = 256;

pub(crate) async fn get(target: Target<'_>, name: &OsStr) -> io::Result<Vec<u8>> {
    let name = c_name(name)?;
    let mut cap = FIRST_GUESS;
    loop {
        let op = GetXattr::new(target.op_target()?, name.clone(), Vec::with_capacity(cap));
        match Op::new(op).await {
            (Ok(_), buf) => return Ok(buf),
            (Err(e), _) if e.raw_os_error() == Some(libc::ERANGE) => {
                let size_query = GetXattr::new(target.op_target()?, name.clone(), Vec::new());
                let (size, _) = Op::new(size_query).await;
                cap = size?.max(cap * 2);
            }
            (Err(e), _) => return Err(e),
        }
    }
}

pub(crate) async fn set(target: Target<'_>, name: &OsStr, value: Vec<u8>) -> io::Result<()> {
    Op::new(SetXattr::new(target.op_target()?, c_name(name)?, value, 0)).await
}

pub(crate) async fn list(target: Target<'_>) -> io::Result<Vec<OsString>> {
    let mut cap = FIRST_GUESS;
    loop {
        match Op::new(ListXattr::new(target.op_target()?, Vec::with_capacity(cap))).await {
            (Ok(_), buf) => {
                return Ok(buf
                    .split(|&b| b == 0)
                    .filter(|n| !n.is_empty())
                    .map(|n| OsString::from_vec(n.to_vec()))
                    .collect())
            }
            (Err(e), _) if e.raw_os_error() == Some(libc::ERANGE) => {
                let (size, _) = Op::new(ListXattr::new(target.op_target()?, Vec::new())).await;
                cap = size?.max(cap * 2);
            }
            (Err(e), _) => return Err(e),
        }
    }
}

pub(crate) async fn remove(target: Target<'_>, name: &OsStr) -> io::Result<()> {
    Op::new(RemoveXattr::new(target.op_target()?, c_name(name)?)).await
}
