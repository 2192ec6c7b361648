//! [`ReadDir`]: a directory's entries as a stream, fetched in batches by `getdents64`.

use crate::metadata::{FileType, Metadata, STATX_MASK};
use futures_core::Stream;
use hoop_runtime::fd::SharedFd;
use hoop_runtime::op::at::{c_path, At};
use hoop_runtime::op::dir_ops::{DirEntryRaw, GetDents};
use hoop_runtime::op::statx::Statx;
use hoop_runtime::op::Op;
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::future::poll_fn;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// Bytes of entries fetched per `getdents64` call.
const BATCH_BYTES: usize = 32 * 1024;

/// The entries of a directory (without `.` and `..`), in the order the filesystem gives them.
///
/// Use it as a `Stream`, or call [`ReadDir::next_entry`].
#[must_use = "streams do nothing unless polled"]
pub struct ReadDir {
    dir: SharedFd,
    path: Rc<Path>,
    ready: VecDeque<DirEntryRaw>,
    fetching: Option<Pin<Box<Op<GetDents>>>>,
    done: bool,
}

impl ReadDir {
    pub(crate) fn new(dir: SharedFd, path: &Path) -> Self {
        ReadDir {
            dir,
            path: Rc::from(path),
            ready: VecDeque::new(),
            fetching: None,
            done: false,
        }
    }

    /// The next entry, or `None` at the end.
    pub async fn next_entry(&mut self) -> io::Result<Option<DirEntry>> {
        poll_fn(|cx| self.poll_entry(cx)).await.transpose()
    }

    fn poll_entry(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<DirEntry>>> {
        loop {
            if let Some(raw) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(DirEntry {
                    dir: self.dir.clone(),
                    parent: self.path.clone(),
                    raw,
                })));
            }
            if self.done {
                return Poll::Ready(None);
            }
            let fetch = self
                .fetching
                .get_or_insert_with(|| Box::pin(Op::new(GetDents::new(&self.dir, BATCH_BYTES))));
            let batch = match fetch.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(b) => b,
            };
            self.fetching = None;
            match batch {
                Ok((0, _)) => self.done = true,
                // A batch may hold only `.` and `..`: then the loop simply asks again.
                Ok((_, entries)) => self.ready.extend(entries),
                Err(e) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(crate::error::with_path("readdir", &self.path)(
                        e,
                    ))));
                }
            }
        }
    }
}

impl Stream for ReadDir {
    type Item = io::Result<DirEntry>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_entry(cx)
    }
}

use std::future::Future;

impl std::fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadDir").field("path", &self.path).finish()
    }
}

/// An entry of a [`ReadDir`].
#[derive(Clone)]
pub struct DirEntry {
    dir: SharedFd,
    parent: Rc<Path>,
    raw: DirEntryRaw,
}

impl DirEntry {
    /// The entry's name.
    pub fn file_name(&self) -> &OsStr {
        &self.raw.name
    }

    /// The entry's full path (the directory's path joined with the name).
    pub fn path(&self) -> PathBuf {
        self.parent.join(&self.raw.name)
    }

    /// The inode number.
    pub fn ino(&self) -> u64 {
        self.raw.ino
    }

    /// The type from the directory listing, without a syscall, if the filesystem reported it.
    pub fn file_type_hint(&self) -> Option<FileType> {
        Some(FileType::from_dirent(self.raw.d_type)).filter(|t| *t != FileType::Unknown)
    }

    /// The entry's type (from the listing, or a `statx` if the filesystem did not report it).
    /// Symlinks are reported as symlinks.
    pub async fn file_type(&self) -> io::Result<FileType> {
        match self.file_type_hint() {
            Some(t) => Ok(t),
            None => Ok(self.metadata().await?.file_type()),
        }
    }

    /// The entry's metadata, without following a symlink (`statx` relative to the directory).
    pub async fn metadata(&self) -> io::Result<Metadata> {
        let path = self.path();
        let name: OsString = self.raw.name.clone();
        let c = c_path(Path::new(&name))?;
        let stx = Op::new(Statx::new(
            At::dir(&self.dir),
            c,
            libc::AT_SYMLINK_NOFOLLOW,
            STATX_MASK,
        ))
        .await
        .map_err(crate::error::with_path("stat", &path))?;
        Ok(Metadata::from_statx(stx))
    }
}

impl std::fmt::Debug for DirEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirEntry")
            .field("path", &self.path())
            .finish()
    }
}
