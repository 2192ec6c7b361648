//! Path functions like `std::fs` and `tokio::fs`, each one operation through the driver.

use crate::error::with_path;
use crate::metadata::{Metadata, STATX_MASK};
use crate::openat::openat2;
use crate::read_dir::ReadDir;
use crate::xattr::{self, Target};
use crate::{File, OpenOptions};
use hoop_runtime::fd::SharedFd;
use hoop_runtime::op::at::{c_path, At};
use hoop_runtime::op::dir_ops::{ChmodAt, ReadLinkAt};
use hoop_runtime::op::link::{link3, reserved_slot};
use hoop_runtime::op::open::OpenAt2;
use hoop_runtime::op::path_ops::{LinkAt, MkDirAt, RenameAt, SymlinkAt, UnlinkAt};
use hoop_runtime::op::rw::{FdKind, Read, CURRENT_POSITION};
use hoop_runtime::op::statx::Statx;
use hoop_runtime::op::Op;
use hoop_runtime::IoBuf;
use std::ffi::{OsStr, OsString};
use std::fs::Permissions;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Reads a whole file.
///
/// ```
/// # hoop_runtime::block_on(async {
/// # let path = std::env::temp_dir().join(format!("hoop-doc-read-{}", std::process::id()));
/// hoop_fs::write(&path, b"contents").await.unwrap();
/// assert_eq!(hoop_fs::read(&path).await.unwrap(), b"contents");
/// # hoop_fs::remove_file(&path).await.unwrap();
/// # });
/// ```
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let path = path.as_ref();
    if let Some(slot) = reserved_slot() {
        if let Some(bytes) = read_linked(path, slot).await? {
            return Ok(bytes);
        }
    }
    let file = File::open(path).await?;
    let size_hint = file.metadata().await.map(|m| m.len() as usize).unwrap_or(0);
    let mut buf = Vec::with_capacity(size_hint.max(64) + 1);
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity());
        }
        let pos = buf.len();
        let (res, slice) = file
            .read_at(hoop_runtime::IoBuf::slice(buf, pos..), pos as u64)
            .await;
        buf = slice.into_inner();
        if res? == 0 {
            return Ok(buf);
        }
    }
}

/// What the linked read takes in its first read, and in the read after it that finds the end.
const FIRST_READ: usize = 32 * 1024;
const END_PROBE: usize = 4 * 1024;

/// [`read`] in one submission, on an io_uring worker with a direct-descriptor table: an open
/// into a reserved slot, a read of up to 32 KiB, and a read that finds the end of the file (a
/// short read is not the end of every file: `/proc` files come a page at a time), linked. A
/// longer file is read on from the slot. `None` where the chain could not go to the ring (the
/// caller takes the plain path, which reports the real error if there is one).
async fn read_linked(path: &Path, slot: SharedFd) -> io::Result<Option<Vec<u8>>> {
    let c = c_path(path).map_err(with_path("read", path))?;
    let open = OpenAt2::new(At::cwd(), c, libc::O_RDONLY, 0, 0).into_slot(&slot);
    let first = Read::new(
        &slot,
        Vec::with_capacity(FIRST_READ),
        CURRENT_POSITION,
        FdKind::File,
    );
    let probe = Read::new(
        &slot,
        Vec::with_capacity(END_PROBE),
        CURRENT_POSITION,
        FdKind::File,
    );
    // The probe runs whatever the first read gave (a hard link): a short read may not be the end.
    let (opened, (first, mut buf), (probed, more)) = link3(open, first, probe).hard(1).await;
    // Unsupported: the chain could not use the slot. ECANCELED: cancelled by the kernel with
    // nobody asking (io-wq before 6.14 under a signal storm), which a chain member is not
    // retried for. The plain path gives the real answer.
    let fallback = |e: &io::Error| {
        e.kind() == io::ErrorKind::Unsupported || e.raw_os_error() == Some(libc::ECANCELED)
    };
    match opened {
        Ok(_) => {}
        Err(e) if fallback(&e) => return Ok(None),
        Err(e) => return Err(with_path("open", path)(e)),
    }
    match (first, probed) {
        (Err(e), _) | (_, Err(e)) if fallback(&e) => return Ok(None),
        (Err(e), _) | (_, Err(e)) => return Err(with_path("read", path)(e)),
        (Ok(_), Ok(0)) => return Ok(Some(buf)),
        (Ok(_), Ok(_)) => {}
    }
    buf.extend_from_slice(&more);
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity());
        }
        let pos = buf.len();
        let op = Read::new(&slot, buf.slice(pos..), CURRENT_POSITION, FdKind::File);
        let (res, slice) = Op::new(op).await;
        buf = slice.into_inner();
        if res.map_err(with_path("read", path))? == 0 {
            return Ok(Some(buf));
        }
    }
}

/// Reads a whole file as UTF-8.
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let path = path.as_ref();
    let bytes = read(path).await?;
    String::from_utf8(bytes).map_err(|_| {
        with_path("read", path)(io::Error::new(
            io::ErrorKind::InvalidData,
            "file is not valid UTF-8",
        ))
    })
}

/// Creates or truncates a file and writes `contents` to it.
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let file = File::create(path).await?;
    file.write_all_at(contents.as_ref().to_vec(), 0).await.0
}

async fn statx(path: &Path, flags: i32, op: &'static str) -> io::Result<Metadata> {
    let c = c_path(path).map_err(with_path(op, path))?;
    let stx = Op::new(Statx::new(At::cwd(), c, flags, STATX_MASK))
        .await
        .map_err(with_path(op, path))?;
    Ok(Metadata::from_statx(stx))
}

/// Metadata of `path`, following symlinks.
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    statx(path.as_ref(), 0, "stat").await
}

/// Metadata of `path` itself, not following a final symlink.
pub async fn symlink_metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    statx(path.as_ref(), libc::AT_SYMLINK_NOFOLLOW, "lstat").await
}

/// True if `path` exists (following symlinks); errors other than "not found" are returned.
pub async fn try_exists(path: impl AsRef<Path>) -> io::Result<bool> {
    match metadata(path).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Renames `from` to `to`, replacing `to` if it exists (like `std::fs::rename`).
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    let ctx = with_path("rename", from);
    let op = RenameAt::new(
        At::cwd(),
        c_path(from).map_err(ctx)?,
        At::cwd(),
        c_path(to)?,
        0,
    );
    Op::new(op).await.map_err(with_path("rename", from))
}

pub(crate) async fn unlink(path: &Path, flags: i32, op: &'static str) -> io::Result<()> {
    let c = c_path(path).map_err(with_path(op, path))?;
    Op::new(UnlinkAt::new(At::cwd(), c, flags))
        .await
        .map_err(with_path(op, path))
}

/// Removes a file (or symlink).
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    unlink(path.as_ref(), 0, "unlink").await
}

/// Removes an empty directory.
pub async fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    unlink(path.as_ref(), libc::AT_REMOVEDIR, "rmdir").await
}

/// Creates a directory (mode `0o777` before the umask).
pub async fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    let c = c_path(path).map_err(with_path("mkdir", path))?;
    Op::new(MkDirAt::new(At::cwd(), c, 0o777))
        .await
        .map_err(with_path("mkdir", path))
}

/// Creates a hard link `link` to the file `original`.
pub async fn hard_link(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    let (original, link) = (original.as_ref(), link.as_ref());
    let op = LinkAt::new(At::cwd(), c_path(original)?, At::cwd(), c_path(link)?, 0);
    Op::new(op).await.map_err(with_path("link", link))
}

/// Creates a symlink `link` whose contents are `target`.
pub async fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    let (target, link) = (target.as_ref(), link.as_ref());
    let op = SymlinkAt::new(c_path(target)?, At::cwd(), c_path(link)?);
    Op::new(op).await.map_err(with_path("symlink", link))
}

/// The target of a symlink.
pub async fn read_link(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref();
    let c = c_path(path).map_err(with_path("readlink", path))?;
    let target = Op::new(ReadLinkAt::new(At::cwd(), c))
        .await
        .map_err(with_path("readlink", path))?;
    Ok(PathBuf::from(target))
}

/// The entries of a directory.
///
/// ```
/// # hoop_runtime::block_on(async {
/// let mut entries = hoop_fs::read_dir("/").await.unwrap();
/// let mut names = Vec::new();
/// while let Some(e) = entries.next_entry().await.unwrap() {
///     names.push(e.file_name().to_owned());
/// }
/// assert!(names.iter().any(|n| n == "proc"));
/// # });
/// ```
pub async fn read_dir(path: impl AsRef<Path>) -> io::Result<ReadDir> {
    let path = path.as_ref();
    let fd = openat2(
        &At::cwd(),
        path,
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        0,
        None,
    )
    .await
    .map_err(with_path("opendir", path))?;
    Ok(ReadDir::new(fd, path))
}

/// Copies the contents and permission bits of `from` to `to`; returns the bytes copied.
pub async fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<u64> {
    let (from, to) = (from.as_ref(), to.as_ref());
    let src = File::open(from).await?;
    let meta = src.metadata().await?;
    if !meta.is_file() {
        let e = io::Error::new(
            io::ErrorKind::InvalidInput,
            "the source is not a regular file",
        );
        return Err(with_path("copy", from)(e));
    }
    let dst = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(meta.mode() & 0o7777)
        .open(to)
        .await?;
    let mut buf = Vec::with_capacity(256 * 1024);
    let mut pos = 0u64;
    loop {
        buf.clear();
        let (res, b) = src.read_at(buf, pos).await;
        let n = res?;
        if n == 0 {
            break;
        }
        let (res, b) = dst.write_all_at(b, pos).await;
        res?;
        buf = b;
        pos += n as u64;
    }
    // On the open fd: `to` may have been swapped for a symlink since it was opened.
    dst.set_permissions(meta.permissions()).await?;
    Ok(pos)
}

/// Sets the permission bits of `path` (following symlinks).
pub async fn set_permissions(path: impl AsRef<Path>, perm: Permissions) -> io::Result<()> {
    let path = path.as_ref();
    let c = c_path(path).map_err(with_path("chmod", path))?;
    Op::new(ChmodAt::new(At::cwd(), c, perm.mode()))
        .await
        .map_err(with_path("chmod", path))
}

/// The value of extended attribute `name` of `path` (following symlinks).
pub async fn get_xattr(path: impl AsRef<Path>, name: impl AsRef<OsStr>) -> io::Result<Vec<u8>> {
    let path = path.as_ref();
    xattr::get(Target::Path(path), name.as_ref(), None)
        .await
        .map_err(with_path("getxattr", path))
}

/// Sets extended attribute `name` of `path`.
pub async fn set_xattr(
    path: impl AsRef<Path>,
    name: impl AsRef<OsStr>,
    value: impl Into<Vec<u8>>,
) -> io::Result<()> {
    let path = path.as_ref();
    xattr::set(Target::Path(path), name.as_ref(), value.into(), None)
        .await
        .map_err(with_path("setxattr", path))
}

/// Names of the extended attributes of `path`.
pub async fn list_xattr(path: impl AsRef<Path>) -> io::Result<Vec<OsString>> {
    let path = path.as_ref();
    xattr::list(Target::Path(path), None)
        .await
        .map_err(with_path("listxattr", path))
}

/// Removes extended attribute `name` of `path`.
pub async fn remove_xattr(path: impl AsRef<Path>, name: impl AsRef<OsStr>) -> io::Result<()> {
    let path = path.as_ref();
    xattr::remove(Target::Path(path), name.as_ref(), None)
        .await
        .map_err(with_path("removexattr", path))
}
