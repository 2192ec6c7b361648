//! The functions that walk or build a tree of directories: they hold each directory open and act
//! on names inside it (`openat(O_NOFOLLOW|O_DIRECTORY)`, `unlinkat(dirfd, name)`,
//! `mkdirat(dirfd, name)`), never on a path rebuilt from what they saw. A directory swapped for
//! a symlink while they run cannot send them outside the tree (the pattern of CVE-2022-21658 in
//! `std::fs::remove_dir_all`).

use crate::error::with_path;
use crate::functions::{create_dir, metadata, symlink_metadata, unlink};
use crate::openat::openat2;
use crate::read_dir::ReadDir;
use crate::FileType;
use hoop_runtime::fd::SharedFd;
use hoop_runtime::op::at::{c_path, At};
use hoop_runtime::op::path_ops::{MkDirAt, UnlinkAt};
use hoop_runtime::op::Op;
use std::ffi::OsStr;
use std::future::Future;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;

/// Opens the directory `name` under `at` for reading its entries, refusing a symlink in its
/// place.
async fn open_dir(at: &At, name: &Path) -> io::Result<SharedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
    openat2(at, name, flags, 0, 0, None).await
}

/// Opens the directory `name` under `at` only as an anchor for `*at` calls (`O_PATH`: no read
/// permission needed, as `mkdir` inside it needs none), refusing a symlink in its place.
async fn enter_dir(at: &At, name: &Path) -> io::Result<SharedFd> {
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;
    openat2(at, name, flags, 0, 0, None).await
}

/// True for the errors of opening a directory that has since become something else: a symlink
/// (`ELOOP`) or a file (`ENOTDIR`).
fn not_a_dir_now(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR))
}

async fn unlink_at(dir: &SharedFd, name: &OsStr, flags: i32) -> io::Result<()> {
    Op::new(UnlinkAt::new(At::dir(dir), c_path(Path::new(name))?, flags)).await
}

/// Removes a directory and everything in it. Symlinks are removed, never followed (a symlink
/// given as `path` is removed itself); a file as `path` is an error (`NotADirectory`), as with
/// `std::fs::remove_dir_all`. The walk holds each directory open and removes entries by name
/// inside it, so a directory swapped for a symlink during the walk cannot make it remove
/// anything outside the tree. Entries removed by someone else meanwhile are not an error.
pub async fn remove_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    let meta = symlink_metadata(path).await?;
    if meta.is_symlink() {
        return unlink(path, 0, "unlink").await;
    }
    if !meta.is_dir() {
        let e = io::Error::from_raw_os_error(libc::ENOTDIR);
        return Err(with_path("rmdir", path)(e));
    }
    match open_dir(&At::cwd(), path).await {
        Ok(dir) => remove_contents(dir, path.to_path_buf()).await?,
        // Swapped for a symlink (or a file) since the check: remove that, follow nothing.
        Err(e) if not_a_dir_now(&e) => return unlink(path, 0, "unlink").await,
        Err(e) => return Err(with_path("opendir", path)(e)),
    }
    unlink(path, libc::AT_REMOVEDIR, "rmdir").await
}

/// Empties the open directory `dir` (`path` names it in errors only).
fn remove_contents(dir: SharedFd, path: PathBuf) -> Pin<Box<dyn Future<Output = io::Result<()>>>> {
    Box::pin(async move {
        let mut entries = ReadDir::new(dir.clone(), &path);
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().to_owned();
            let is_dir = match entry.file_type().await {
                Ok(t) => t == FileType::Dir,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            remove_entry(&dir, &name, is_dir)
                .await
                .map_err(with_path("remove", &path.join(&name)))?;
        }
        Ok(())
    })
}

/// Removes `name` from `dir`, as a directory tree if `is_dir`. If the entry changed type since
/// the listing (a directory swapped for a symlink, or the reverse), it is removed as what it is
/// now.
async fn remove_entry(dir: &SharedFd, name: &OsStr, is_dir: bool) -> io::Result<()> {
    let res = if is_dir {
        match open_dir(&At::dir(dir), Path::new(name)).await {
            Ok(child) => match remove_contents(child, PathBuf::from(name)).await {
                Ok(()) => unlink_at(dir, name, libc::AT_REMOVEDIR).await,
                Err(e) => Err(e),
            },
            Err(e) if not_a_dir_now(&e) => unlink_at(dir, name, 0).await,
            Err(e) => Err(e),
        }
    } else {
        match unlink_at(dir, name, 0).await {
            // Became a directory: walk it (by fd, like any other).
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                return Box::pin(remove_entry(dir, name, true)).await;
            }
            res => res,
        }
    };
    match res {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        res => res,
    }
}

/// Creates a directory and its missing parents; an existing directory is fine. Errors are
/// those of `std::fs::create_dir_all` (e.g. `AlreadyExists` if a file is in the way).
///
/// The part of `path` that already exists is resolved once, as given (symlinks in it are
/// followed, as with any path). Each directory this function creates is then entered by fd,
/// refusing a symlink in its place (`ELOOP`), so a directory swapped for a symlink while the
/// tree is built cannot make it create directories elsewhere.
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    // One mkdir for the common cases: the parent exists, or the whole tree does.
    match create_dir(path).await {
        Ok(()) => return Ok(()),
        Err(_) if is_dir(path).await => return Ok(()),
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    // The deepest existing ancestor, and the names to create below it.
    let mut base = path;
    let mut missing = Vec::new();
    loop {
        match (base.parent(), base.components().next_back()) {
            (Some(parent), Some(Component::Normal(name))) => {
                missing.push(name);
                base = parent;
                if base.as_os_str().is_empty() || is_dir(base).await {
                    break;
                }
            }
            (_, Some(Component::ParentDir)) => {
                let e = io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "`..` in the part of the path that does not exist yet",
                );
                return Err(with_path("mkdir", path)(e));
            }
            _ => {
                let e = io::Error::other("failed to create whole tree");
                return Err(with_path("mkdir", path)(e));
            }
        }
    }
    let base = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    let mut dir = openat2(
        &At::cwd(),
        base,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        0,
        None,
    )
    .await
    .map_err(with_path("opendir", base))?;
    for name in missing.into_iter().rev() {
        let c = c_path(Path::new(name))?;
        match Op::new(MkDirAt::new(At::dir(&dir), c, 0o777)).await {
            // Created concurrently by someone else: fine if it is a directory (the open below
            // checks, without following a symlink).
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(with_path("mkdir", path)(e));
            }
            _ => {}
        }
        dir = enter_dir(&At::dir(&dir), Path::new(name))
            .await
            .map_err(with_path("mkdir", path))?;
    }
    Ok(())
}

async fn is_dir(p: &Path) -> bool {
    metadata(p).await.is_ok_and(|m| m.is_dir())
}
