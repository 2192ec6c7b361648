//! [`Dir`]: a directory capability. Every path given to it is resolved *beneath* it by the
//! kernel (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`), so `..`, absolute paths and
//! symlinks leading outside are refused — atomically, even if another process swaps a directory
//! for a symlink while the lookup runs.
//!
//! Operations on a final component (create, remove, rename, link, symlink, readlink, lstat) first
//! open the parent beneath the directory, then act on the last name relative to that parent fd,
//! after checking the name is a plain name (not `.`, `..` or empty).

use crate::error::with_path;
use crate::metadata::{Metadata, STATX_MASK};
use crate::openat::openat2;
use crate::read_dir::ReadDir;
use crate::xattr::{self, Target};
use crate::{File, OpenOptions};
use hoop_runtime::fd::SharedFd;
use hoop_runtime::op::at::{c_path, At};
use hoop_runtime::op::dir_ops::ReadLinkAt;
use hoop_runtime::op::path_ops::{LinkAt, MkDirAt, RenameAt, SymlinkAt, UnlinkAt};
use hoop_runtime::op::statx::Statx;
use hoop_runtime::op::{Op, OpCode};
use hoop_runtime::Credentials;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

/// How a [`Dir`] resolves paths, on top of the default `RESOLVE_BENEATH |
/// RESOLVE_NO_MAGICLINKS`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resolve {
    /// Refuse every symlink, even those that stay inside (`RESOLVE_NO_SYMLINKS`).
    pub no_symlinks: bool,
    /// Treat the directory as the root: `..` at the top and absolute symlinks stay inside instead
    /// of being refused (`RESOLVE_IN_ROOT`, replacing `RESOLVE_BENEATH`).
    pub in_root: bool,
    /// Refuse crossing into another mount (`RESOLVE_NO_XDEV`).
    pub no_xdev: bool,
}

impl Resolve {
    fn flags(self) -> u64 {
        let mut f = libc::RESOLVE_NO_MAGICLINKS;
        f |= if self.in_root {
            libc::RESOLVE_IN_ROOT
        } else {
            libc::RESOLVE_BENEATH
        };
        if self.no_symlinks {
            f |= libc::RESOLVE_NO_SYMLINKS;
        }
        if self.no_xdev {
            f |= libc::RESOLVE_NO_XDEV;
        }
        f
    }
}

/// An open directory that confines every path given to it.
///
/// ```
/// # hoop_runtime::block_on(async {
/// # let root = std::env::temp_dir().join(format!("hoop-doc-dir-{}", std::process::id()));
/// # std::fs::create_dir_all(&root).unwrap();
/// let dir = hoop_fs::Dir::open(&root).await.unwrap();
/// dir.create_dir("sub").await.unwrap();
/// let f = dir
///     .open_file("sub/a.txt", hoop_fs::OpenOptions::new().write(true).create(true))
///     .await
///     .unwrap();
/// f.write_all_at(b"inside".to_vec(), 0).await.0.unwrap();
/// // Escapes are refused by the kernel.
/// assert!(dir.metadata("../etc/passwd").await.is_err());
/// assert!(dir.metadata("/etc/passwd").await.is_err());
/// # std::fs::remove_dir_all(&root).unwrap();
/// # });
/// ```
#[derive(Clone)]
pub struct Dir {
    fd: SharedFd,
    path: Rc<Path>,
    resolve: Resolve,
    /// Every operation through this `Dir` runs as this user.
    creds: Option<Credentials>,
}

/// Where a final-component operation acts: a parent directory fd and a plain name.
struct Leaf {
    parent: At,
    name: std::ffi::CString,
}

impl Dir {
    /// Opens the directory at `path` (resolved normally: the confinement applies to the paths
    /// given to the `Dir` afterwards).
    pub async fn open(path: impl AsRef<Path>) -> io::Result<Dir> {
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
        Ok(Dir {
            fd,
            path: Rc::from(path),
            resolve: Resolve::default(),
            creds: None,
        })
    }

    /// The same directory with other resolve rules.
    pub fn with_resolve(mut self, resolve: Resolve) -> Dir {
        self.resolve = resolve;
        self
    }

    /// The same directory, with every operation run as `creds` (see [`Credentials`]): how a
    /// file server serves a share as the connected user.
    ///
    /// ```no_run
    /// # hoop_runtime::block_on(async {
    /// use hoop_fs::{Dir, OpenOptions};
    /// use hoop_runtime::Credentials;
    /// let share = Dir::open("/srv/share").await.unwrap();
    /// let as_alice = share.with_credentials(Credentials::new(1000, 1000, vec![]));
    /// // Permission checks are alice's, not the (root) server's.
    /// let f = as_alice.open_file("alice/notes.txt", OpenOptions::new().read(true)).await;
    /// # let _ = f;
    /// # });
    /// ```
    pub fn with_credentials(mut self, creds: Credentials) -> Dir {
        self.creds = Some(creds);
        self
    }

    fn op<T: OpCode>(&self, op: T) -> Op<T> {
        Op::new(op).with_credentials(self.creds.clone())
    }

    /// The path this directory was opened with (for messages; the fd is what counts).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn display(&self, rel: &Path) -> PathBuf {
        self.path.join(rel)
    }

    fn ctx<'a>(
        &self,
        op: &'static str,
        shown: &'a Path,
    ) -> impl FnOnce(io::Error) -> io::Error + 'a {
        move |e| {
            let e = match e.raw_os_error() {
                Some(libc::EXDEV) => io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    EscapeError {
                        source: e,
                        what: "leads outside the directory",
                    },
                ),
                Some(libc::ELOOP) => io::Error::new(
                    e.kind(),
                    EscapeError {
                        source: e,
                        what: "crosses a symlink the directory's rules refuse (or a loop)",
                    },
                ),
                _ => e,
            };
            with_path(op, shown)(e)
        }
    }

    async fn open_beneath(&self, rel: &Path, flags: i32) -> io::Result<SharedFd> {
        let at = At::dir(&self.fd);
        openat2(
            &at,
            rel,
            flags,
            0,
            self.resolve.flags(),
            self.creds.as_ref(),
        )
        .await
    }

    /// Splits `rel` into its parent (opened beneath this directory) and its final plain name.
    async fn leaf(&self, rel: &Path) -> io::Result<Leaf> {
        let name = match rel.components().next_back() {
            Some(Component::Normal(n)) => n.to_owned(),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the path must end in a file name (not `.`, `..`, `/` or empty)",
                ))
            }
        };
        let parent_path = rel.parent().unwrap_or(Path::new(""));
        let parent = if parent_path.as_os_str().is_empty() {
            if rel.is_absolute() {
                return Err(io::Error::from_raw_os_error(libc::EXDEV));
            }
            At::dir(&self.fd)
        } else {
            let fd = self
                .open_beneath(parent_path, libc::O_PATH | libc::O_DIRECTORY)
                .await?;
            At::dir(&fd)
        };
        Ok(Leaf {
            parent,
            name: c_path(Path::new(&name))?,
        })
    }

    /// Opens a file beneath this directory.
    pub async fn open_file(
        &self,
        rel: impl AsRef<Path>,
        options: &OpenOptions,
    ) -> io::Result<File> {
        let rel = rel.as_ref();
        let shown = self.display(rel);
        let file = options
            .open_at(
                At::dir(&self.fd),
                rel,
                self.resolve.flags(),
                self.creds.as_ref(),
            )
            .await
            .map_err(self.ctx("open", &shown))?;
        Ok(file.with_path(&shown))
    }

    /// Opens a subdirectory as a `Dir` with the same rules (still confined to it, not to `self`).
    pub async fn open_dir(&self, rel: impl AsRef<Path>) -> io::Result<Dir> {
        let rel = rel.as_ref();
        let shown = self.display(rel);
        let fd = self
            .open_beneath(rel, libc::O_RDONLY | libc::O_DIRECTORY)
            .await
            .map_err(self.ctx("opendir", &shown))?;
        Ok(Dir {
            fd,
            path: Rc::from(shown.as_path()),
            resolve: self.resolve,
            creds: self.creds.clone(),
        })
    }

    /// Metadata of `rel`, following symlinks that stay inside.
    pub async fn metadata(&self, rel: impl AsRef<Path>) -> io::Result<Metadata> {
        let rel = rel.as_ref();
        let shown = self.display(rel);
        let stx = async {
            let fd = self.open_beneath(rel, libc::O_PATH).await?;
            self.op(Statx::new(
                At::dir(&fd),
                c"".to_owned(),
                libc::AT_EMPTY_PATH,
                STATX_MASK,
            ))
            .await
        }
        .await
        .map_err(self.ctx("stat", &shown))?;
        Ok(Metadata::from_statx(stx))
    }

    /// Metadata of `rel` itself (a final symlink is not followed).
    pub async fn symlink_metadata(&self, rel: impl AsRef<Path>) -> io::Result<Metadata> {
        let rel = rel.as_ref();
        let shown = self.display(rel);
        let stx = async {
            let leaf = self.leaf(rel).await?;
            self.op(Statx::new(
                leaf.parent,
                leaf.name,
                libc::AT_SYMLINK_NOFOLLOW,
                STATX_MASK,
            ))
            .await
        }
        .await
        .map_err(self.ctx("lstat", &shown))?;
        Ok(Metadata::from_statx(stx))
    }

    /// Creates directory `rel` (mode `0o777` before the umask).
    pub async fn create_dir(&self, rel: impl AsRef<Path>) -> io::Result<()> {
        let rel = rel.as_ref();
        let shown = self.display(rel);
        async {
            let leaf = self.leaf(rel).await?;
            self.op(MkDirAt::new(leaf.parent, leaf.name, 0o777)).await
        }
        .await
        .map_err(self.ctx("mkdir", &shown))
    }

    async fn unlink(&self, rel: &Path, flags: i32, op: &'static str) -> io::Result<()> {
        let shown = self.display(rel);
        async {
            let leaf = self.leaf(rel).await?;
            self.op(UnlinkAt::new(leaf.parent, leaf.name, flags)).await
        }
        .await
        .map_err(self.ctx(op, &shown))
    }

    /// Removes file (or symlink) `rel`.
    pub async fn remove_file(&self, rel: impl AsRef<Path>) -> io::Result<()> {
        self.unlink(rel.as_ref(), 0, "unlink").await
    }

    /// Removes empty directory `rel`.
    pub async fn remove_dir(&self, rel: impl AsRef<Path>) -> io::Result<()> {
        self.unlink(rel.as_ref(), libc::AT_REMOVEDIR, "rmdir").await
    }

    /// Renames `rel` to `to_rel` beneath `to_dir` (which may be `self`).
    pub async fn rename(
        &self,
        rel: impl AsRef<Path>,
        to_dir: &Dir,
        to_rel: impl AsRef<Path>,
    ) -> io::Result<()> {
        let (rel, to_rel) = (rel.as_ref(), to_rel.as_ref());
        let shown = self.display(rel);
        async {
            let from = self.leaf(rel).await?;
            let to = to_dir.leaf(to_rel).await?;
            self.op(RenameAt::new(from.parent, from.name, to.parent, to.name, 0))
                .await
        }
        .await
        .map_err(self.ctx("rename", &shown))
    }

    /// Creates hard link `to_rel` beneath `to_dir` to the file `rel`.
    pub async fn hard_link(
        &self,
        rel: impl AsRef<Path>,
        to_dir: &Dir,
        to_rel: impl AsRef<Path>,
    ) -> io::Result<()> {
        let (rel, to_rel) = (rel.as_ref(), to_rel.as_ref());
        let shown = to_dir.display(to_rel);
        async {
            let from = self.leaf(rel).await?;
            let to = to_dir.leaf(to_rel).await?;
            self.op(LinkAt::new(from.parent, from.name, to.parent, to.name, 0))
                .await
        }
        .await
        .map_err(self.ctx("link", &shown))
    }

    /// Creates symlink `rel` with contents `target`. The target is stored as given; following it
    /// later through this `Dir` is still confined.
    pub async fn symlink(&self, target: impl AsRef<Path>, rel: impl AsRef<Path>) -> io::Result<()> {
        let (target, rel) = (target.as_ref(), rel.as_ref());
        let shown = self.display(rel);
        async {
            let leaf = self.leaf(rel).await?;
            self.op(SymlinkAt::new(c_path(target)?, leaf.parent, leaf.name))
                .await
        }
        .await
        .map_err(self.ctx("symlink", &shown))
    }

    /// The target of symlink `rel`.
    pub async fn read_link(&self, rel: impl AsRef<Path>) -> io::Result<PathBuf> {
        let rel = rel.as_ref();
        let shown = self.display(rel);
        async {
            let leaf = self.leaf(rel).await?;
            self.op(ReadLinkAt::new(leaf.parent, leaf.name))
                .await
                .map(PathBuf::from)
        }
        .await
        .map_err(self.ctx("readlink", &shown))
    }

    /// The entries of this directory.
    pub async fn read_dir(&self) -> io::Result<ReadDir> {
        // A fresh fd: getdents advances the fd's position, which must not be shared.
        let fd = self
            .open_beneath(Path::new("."), libc::O_RDONLY | libc::O_DIRECTORY)
            .await
            .map_err(self.ctx("opendir", &self.path))?;
        Ok(ReadDir::new(fd, &self.path))
    }

    /// The file whose attributes a call on `rel` touches: opened `O_PATH` (no read permission
    /// needed, no open side effects on a device) and reached through its `/proc/thread-self/fd` link,
    /// or — without procfs — opened for reading, non-blocking (a FIFO would wait for a writer).
    async fn xattr_target(&self, rel: &Path) -> io::Result<XattrFile> {
        let linked = xattr::proc_fd_links();
        let flags = if linked {
            libc::O_PATH
        } else {
            libc::O_RDONLY | libc::O_NONBLOCK
        };
        let fd = self.open_beneath(rel, flags).await?;
        Ok(XattrFile { fd, linked })
    }

    /// Extended attribute `name` of `rel`.
    pub async fn get_xattr(
        &self,
        rel: impl AsRef<Path>,
        name: impl AsRef<OsStr>,
    ) -> io::Result<Vec<u8>> {
        let rel = rel.as_ref();
        let shown = self.display(rel);
        async {
            let fd = self.xattr_target(rel).await?;
            xattr::get(fd.target(), name.as_ref(), self.creds.as_ref()).await
        }
        .await
        .map_err(self.ctx("getxattr", &shown))
    }

    /// Sets extended attribute `name` of `rel`.
    pub async fn set_xattr(
        &self,
        rel: impl AsRef<Path>,
        name: impl AsRef<OsStr>,
        value: impl Into<Vec<u8>>,
    ) -> io::Result<()> {
        let rel = rel.as_ref();
        let shown = self.display(rel);
        async {
            let fd = self.xattr_target(rel).await?;
            xattr::set(
                fd.target(),
                name.as_ref(),
                value.into(),
                self.creds.as_ref(),
            )
            .await
        }
        .await
        .map_err(self.ctx("setxattr", &shown))
    }

    /// Names of the extended attributes of `rel`.
    pub async fn list_xattr(&self, rel: impl AsRef<Path>) -> io::Result<Vec<OsString>> {
        let rel = rel.as_ref();
        let shown = self.display(rel);
        async {
            let fd = self.xattr_target(rel).await?;
            xattr::list(fd.target(), self.creds.as_ref()).await
        }
        .await
        .map_err(self.ctx("listxattr", &shown))
    }

    /// Removes extended attribute `name` of `rel`.
    pub async fn remove_xattr(
        &self,
        rel: impl AsRef<Path>,
        name: impl AsRef<OsStr>,
    ) -> io::Result<()> {
        let rel = rel.as_ref();
        let shown = self.display(rel);
        async {
            let fd = self.xattr_target(rel).await?;
            xattr::remove(fd.target(), name.as_ref(), self.creds.as_ref()).await
        }
        .await
        .map_err(self.ctx("removexattr", &shown))
    }
}

impl fmt::Debug for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dir")
            .field("path", &self.path)
            .field("resolve", &self.resolve)
            .finish()
    }
}

/// Why a `Dir` refused a path.
#[derive(Debug)]
struct EscapeError {
    source: io::Error,
    what: &'static str,
}

impl fmt::Display for EscapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused: the path {} ({})", self.what, self.source)
    }
}

impl std::error::Error for EscapeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The file an attribute call on a `Dir` path applies to (see `Dir::xattr_target`).
struct XattrFile {
    fd: SharedFd,
    linked: bool,
}

impl XattrFile {
    fn target(&self) -> Target<'_> {
        if self.linked {
            Target::Linked(&self.fd)
        } else {
            Target::Fd(&self.fd)
        }
    }
}
