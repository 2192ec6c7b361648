//! [`File`]: an open file with positioned, owned-buffer I/O.

use crate::error::with_path;
use crate::metadata::{Metadata, STATX_MASK};
use crate::xattr::{self, Target};
use crate::OpenOptions;
use hoop_runtime::buf::{AlignedBuf, BufResult, FixedBuf, IoBuf, IoBufMut};
use hoop_runtime::fd::{AsSharedFd, SharedFd};
use hoop_runtime::op::at::At;
use hoop_runtime::op::close::Close;
use hoop_runtime::op::dir_ops::ChmodAt;
use hoop_runtime::op::file_space::{Fadvise, Fallocate, Ftruncate};
use hoop_runtime::op::fixed::{ReadFixed, WriteFixed};
use hoop_runtime::op::fsync::Fsync;
use hoop_runtime::op::rw::{FdKind, Read, Write};
use hoop_runtime::op::statx::Statx;
use hoop_runtime::op::vectored::{Readv, Writev};
use hoop_runtime::op::{Op, OpCode};
use hoop_runtime::Credentials;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::rc::Rc;

/// Access-pattern advice for [`File::fadvise`] (`posix_fadvise(2)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advice {
    /// No special pattern.
    Normal,
    /// Sequential access: read ahead more.
    Sequential,
    /// Random access: no read-ahead.
    Random,
    /// Will be needed soon: start reading it in.
    WillNeed,
    /// Not needed soon: drop it from the page cache.
    DontNeed,
    /// Accessed once.
    NoReuse,
}

impl Advice {
    fn raw(self) -> i32 {
        match self {
            Advice::Normal => libc::POSIX_FADV_NORMAL,
            Advice::Sequential => libc::POSIX_FADV_SEQUENTIAL,
            Advice::Random => libc::POSIX_FADV_RANDOM,
            Advice::WillNeed => libc::POSIX_FADV_WILLNEED,
            Advice::DontNeed => libc::POSIX_FADV_DONTNEED,
            Advice::NoReuse => libc::POSIX_FADV_NOREUSE,
        }
    }
}

/// An open file. All I/O is positioned (`*_at`): a file has no cursor shared between tasks.
///
/// ```
/// # hoop_runtime::block_on(async {
/// # let path = std::env::temp_dir().join(format!("hoop-doc-file-{}", std::process::id()));
/// let file = hoop_fs::File::options()
///     .read(true)
///     .write(true)
///     .create(true)
///     .open(&path)
///     .await
///     .unwrap();
/// let (res, buf) = file.write_all_at(b"hello world".to_vec(), 0).await;
/// res.unwrap();
/// let mut buf = buf; // the buffer came back: reuse it
/// buf.clear(); // reads fill from the start, up to the capacity
/// let (res, buf) = file.read_at(buf, 6).await;
/// assert_eq!(res.unwrap(), 5);
/// assert_eq!(buf, b"world");
/// file.close().await.unwrap();
/// # std::fs::remove_file(&path).unwrap();
/// # });
/// ```
pub struct File {
    fd: SharedFd,
    /// For error messages; `None` for files made from an fd.
    path: Option<Rc<Path>>,
    /// The identity the file was opened as; its later operations run as the same user.
    creds: Option<Credentials>,
}

/// Refuses offsets the kernel cannot take: it reads them as signed, and `u64::MAX` is the
/// runtime's "current position" sentinel, which would silently use the fd's position.
fn check_offset(pos: u64) -> io::Result<()> {
    if pos > i64::MAX as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "file offset past i64::MAX",
        ));
    }
    Ok(())
}

impl File {
    pub(crate) fn from_shared(fd: SharedFd, path: Option<&Path>) -> Self {
        File {
            fd,
            path: path.map(Rc::from),
            creds: None,
        }
    }

    pub(crate) fn with_credentials(mut self, creds: Option<Credentials>) -> Self {
        self.creds = creds;
        self
    }

    fn op<T: OpCode>(&self, op: T) -> Op<T> {
        Op::new(op).with_credentials(self.creds.clone())
    }

    /// Opens a file for reading.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Creates (or truncates) a file for writing.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// Options to open a file with.
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    fn ctx(&self, op: &'static str) -> impl FnOnce(io::Error) -> io::Error + '_ {
        let path = self.path.as_deref().unwrap_or(Path::new("<fd>"));
        with_path(op, path)
    }

    pub(crate) fn with_path(mut self, path: &Path) -> Self {
        self.path = Some(Rc::from(path));
        self
    }

    /// The file's fd as the runtime's operations hold it (for building operations on it, such
    /// as `hoop_runtime::io::send_file`).
    pub fn shared_fd(&self) -> &SharedFd {
        &self.fd
    }

    /// Reads up to `buf.bytes_total()` bytes at `pos`; `Ok(0)` at end of file.
    pub async fn read_at<B: IoBufMut>(&self, buf: B, pos: u64) -> BufResult<usize, B> {
        if let Err(e) = check_offset(pos) {
            return (Err(e).map_err(self.ctx("read")), buf);
        }
        let (res, buf) = self.op(Read::new(&self.fd, buf, pos, FdKind::File)).await;
        (res.map_err(self.ctx("read")), buf)
    }

    /// Fills `buf` to its capacity from `pos`, reading again after short reads;
    /// `UnexpectedEof` if the file ends first.
    pub async fn read_exact_at<B: IoBufMut>(&self, buf: B, pos: u64) -> BufResult<(), B> {
        if let Err(e) = check_offset(pos) {
            return (Err(e).map_err(self.ctx("read")), buf);
        }
        let total = buf.bytes_total();
        let mut done = 0;
        let mut slice = buf.slice(..);
        while done < total {
            let (res, s) = self
                .op(Read::new(&self.fd, slice, pos + done as u64, FdKind::File))
                .await;
            let buf = s.into_inner();
            match res {
                Ok(0) => {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file ended before the buffer was full",
                    );
                    return (Err(e).map_err(self.ctx("read")), buf);
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e).map_err(self.ctx("read")), buf),
            }
            slice = buf.slice(done..);
        }
        (Ok(()), slice.into_inner())
    }

    /// Writes `buf`'s initialised bytes at `pos` (possibly only some of them).
    pub async fn write_at<B: IoBuf>(&self, buf: B, pos: u64) -> BufResult<usize, B> {
        if let Err(e) = check_offset(pos) {
            return (Err(e).map_err(self.ctx("write")), buf);
        }
        let (res, buf) = self.op(Write::new(&self.fd, buf, pos, FdKind::File)).await;
        (res.map_err(self.ctx("write")), buf)
    }

    /// Writes all of `buf`'s initialised bytes at `pos`, writing again after short writes. A full
    /// disk gives `StorageFull` (`ENOSPC`), never a silent short write.
    pub async fn write_all_at<B: IoBuf>(&self, buf: B, pos: u64) -> BufResult<(), B> {
        if let Err(e) = check_offset(pos) {
            return (Err(e).map_err(self.ctx("write")), buf);
        }
        let total = buf.bytes_init();
        let mut done = 0;
        let mut slice = buf.slice(..total);
        while done < total {
            let (res, s) = self
                .op(Write::new(&self.fd, slice, pos + done as u64, FdKind::File))
                .await;
            let buf = s.into_inner();
            match res {
                Ok(0) => {
                    let e = io::Error::from(io::ErrorKind::WriteZero);
                    return (Err(e).map_err(self.ctx("write")), buf);
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e).map_err(self.ctx("write")), buf),
            }
            slice = buf.slice(done..total);
        }
        (Ok(()), slice.into_inner())
    }

    /// Reads up to the buffer's capacity at `pos` into a registered buffer
    /// (`IORING_OP_READ_FIXED`), replacing its contents; saving the kernel the per-call page pinning. Where the pool
    /// is not registered (epoll driver, old kernel, memlock limit) this is a plain read.
    ///
    /// ```
    /// # hoop_runtime::block_on(async {
    /// # let path = std::env::temp_dir().join(format!("hoop-doc-fixed-{}", std::process::id()));
    /// # std::fs::write(&path, b"registered").unwrap();
    /// let pool = hoop_runtime::buf::FixedBufPool::new(2, 4096).unwrap();
    /// let file = hoop_fs::File::open(&path).await.unwrap();
    /// let (res, buf) = file.read_fixed_at(pool.try_get().unwrap(), 0).await;
    /// assert_eq!(&buf[..res.unwrap()], b"registered");
    /// # std::fs::remove_file(&path).unwrap();
    /// # });
    /// ```
    pub async fn read_fixed_at(&self, mut buf: FixedBuf, pos: u64) -> BufResult<usize, FixedBuf> {
        if let Err(e) = check_offset(pos) {
            return (Err(e).map_err(self.ctx("read")), buf);
        }
        buf.clear();
        let (res, buf) = match buf.fixed_index() {
            Some(index) => self.op(ReadFixed::new(&self.fd, buf, index, pos)).await,
            None => self.op(Read::new(&self.fd, buf, pos, FdKind::File)).await,
        };
        (res.map_err(self.ctx("read")), buf)
    }

    /// Writes a registered buffer's initialised bytes at `pos` (`IORING_OP_WRITE_FIXED`; a
    /// plain write where the pool is not registered). May write only some of them.
    pub async fn write_fixed_at(&self, buf: FixedBuf, pos: u64) -> BufResult<usize, FixedBuf> {
        if let Err(e) = check_offset(pos) {
            return (Err(e).map_err(self.ctx("write")), buf);
        }
        let (res, buf) = match buf.fixed_index() {
            Some(index) => self.op(WriteFixed::new(&self.fd, buf, index, pos)).await,
            None => self.op(Write::new(&self.fd, buf, pos, FdKind::File)).await,
        };
        (res.map_err(self.ctx("write")), buf)
    }

    /// An empty buffer of at least `capacity` bytes aligned for `O_DIRECT` I/O on this file:
    /// memory aligned to the `STATX_DIOALIGN` memory alignment and capacity rounded to the
    /// offset alignment. Where the kernel or filesystem does not report them, a 4 KiB alignment
    /// (which satisfies every common device) is used.
    ///
    /// Direct I/O also needs the file offset aligned; reads and writes of the buffer's full
    /// capacity at multiples of [`AlignedBuf::align`] are.
    pub async fn direct_io_buf(&self, capacity: usize) -> io::Result<AlignedBuf> {
        let align = match self.metadata().await?.dio_alignment() {
            Some((mem, offset)) => mem.max(offset) as usize,
            None => 4096,
        };
        AlignedBuf::new(capacity, align.max(1))
    }

    /// Reads at `pos` into several buffers in turn (`preadv`); returns the total read.
    pub async fn readv_at<B: IoBufMut>(&self, bufs: Vec<B>, pos: u64) -> BufResult<usize, Vec<B>> {
        if let Err(e) = check_offset(pos) {
            return (Err(e).map_err(self.ctx("read")), bufs);
        }
        let (res, bufs) = self.op(Readv::new(&self.fd, bufs, pos, FdKind::File)).await;
        (res.map_err(self.ctx("read")), bufs)
    }

    /// Writes several buffers' initialised bytes in order at `pos` (`pwritev`); returns the total
    /// written, which may be short.
    pub async fn writev_at<B: IoBuf>(&self, bufs: Vec<B>, pos: u64) -> BufResult<usize, Vec<B>> {
        if let Err(e) = check_offset(pos) {
            return (Err(e).map_err(self.ctx("write")), bufs);
        }
        let (res, bufs) = self
            .op(Writev::new(&self.fd, bufs, pos, FdKind::File))
            .await;
        (res.map_err(self.ctx("write")), bufs)
    }

    /// Flushes data and metadata to storage (`fsync`).
    pub async fn sync_all(&self) -> io::Result<()> {
        self.op(Fsync::new(&self.fd, false))
            .await
            .map_err(self.ctx("fsync"))
    }

    /// Flushes data, and only the metadata needed to read it (`fdatasync`).
    pub async fn sync_data(&self) -> io::Result<()> {
        self.op(Fsync::new(&self.fd, true))
            .await
            .map_err(self.ctx("fdatasync"))
    }

    /// Truncates or extends the file to `len` bytes.
    pub async fn set_len(&self, len: u64) -> io::Result<()> {
        self.op(Ftruncate::new(&self.fd, len))
            .await
            .map_err(self.ctx("ftruncate"))
    }

    /// `fallocate(2)` on `offset..offset + len`: `mode` 0 allocates (extending the size),
    /// `libc::FALLOC_FL_KEEP_SIZE` allocates without changing the size, and
    /// `libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE` deallocates (reads give zeros).
    pub async fn fallocate(&self, offset: u64, len: u64, mode: i32) -> io::Result<()> {
        self.op(Fallocate::new(&self.fd, offset, len, mode))
            .await
            .map_err(self.ctx("fallocate"))
    }

    /// Tells the kernel how `offset..offset + len` will be accessed (`len` 0: to the end).
    pub async fn fadvise(&self, offset: u64, len: u32, advice: Advice) -> io::Result<()> {
        self.op(Fadvise::new(&self.fd, offset, len, advice.raw()))
            .await
            .map_err(self.ctx("fadvise"))
    }

    /// Sets the permission bits of the open file (`fchmod`: no path is resolved again).
    pub async fn set_permissions(&self, perm: std::fs::Permissions) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        self.op(ChmodAt::fd(&self.fd, perm.mode()))
            .await
            .map_err(self.ctx("chmod"))
    }

    /// Metadata of the open file (`statx` with `AT_EMPTY_PATH`).
    pub async fn metadata(&self) -> io::Result<Metadata> {
        let stx = self.op(self.statx()).await.map_err(self.ctx("stat"))?;
        Ok(Metadata::from_statx(stx))
    }

    /// The `statx` of the open file itself.
    fn statx(&self) -> Statx {
        Statx::new(
            At::dir(&self.fd),
            c"".to_owned(),
            libc::AT_EMPTY_PATH,
            STATX_MASK,
        )
    }

    /// Metadata of the open file as the kernel has it cached, taken by one `statx` on the
    /// worker's thread (`AT_STATX_DONT_SYNC`): no hop to an io-wq or pool thread, which
    /// [`metadata`](File::metadata) pays (io_uring runs every `statx` on io-wq).
    ///
    /// On a local filesystem the result is the same as `metadata()`'s: the inode of an open file
    /// is in memory. On a network or FUSE filesystem the attributes may be as old as the client's
    /// cache (a size that is stale by then makes a read of "the whole file" come up short), and
    /// the call never waits for the server. What a file server takes per request.
    ///
    /// ```
    /// # hoop::block_on(async {
    /// let file = hoop::fs::File::open("Cargo.toml").await?;
    /// assert_eq!(file.cached_metadata().await?.len(), std::fs::metadata("Cargo.toml")?.len());
    /// # Ok::<(), std::io::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// A file opened with [`Credentials`] takes the usual way (the worker's syscall would run
    /// as the server), and so does a process whose seccomp filter refuses the `statx` syscall.
    pub async fn cached_metadata(&self) -> io::Result<Metadata> {
        if self.creds.is_some() {
            return self.metadata().await;
        }
        match self.op(self.statx().cached()).await {
            Ok(stx) => Ok(Metadata::from_statx(stx)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                self.metadata().await
            }
            Err(e) => Err(self.ctx("stat")(e)),
        }
    }

    /// The value of extended attribute `name` (e.g. `"user.comment"`).
    pub async fn get_xattr(&self, name: impl AsRef<OsStr>) -> io::Result<Vec<u8>> {
        xattr::get(Target::Fd(&self.fd), name.as_ref(), self.creds.as_ref())
            .await
            .map_err(self.ctx("getxattr"))
    }

    /// Sets extended attribute `name` to `value`.
    pub async fn set_xattr(
        &self,
        name: impl AsRef<OsStr>,
        value: impl Into<Vec<u8>>,
    ) -> io::Result<()> {
        xattr::set(
            Target::Fd(&self.fd),
            name.as_ref(),
            value.into(),
            self.creds.as_ref(),
        )
        .await
        .map_err(self.ctx("setxattr"))
    }

    /// Names of the file's extended attributes.
    pub async fn list_xattr(&self) -> io::Result<Vec<OsString>> {
        xattr::list(Target::Fd(&self.fd), self.creds.as_ref())
            .await
            .map_err(self.ctx("listxattr"))
    }

    /// Removes extended attribute `name`.
    pub async fn remove_xattr(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
        xattr::remove(Target::Fd(&self.fd), name.as_ref(), self.creds.as_ref())
            .await
            .map_err(self.ctx("removexattr"))
    }

    /// Closes the file asynchronously and reports the close's error. If an operation still holds
    /// the fd, it is closed when that operation ends instead (and this returns `Ok`).
    pub async fn close(self) -> io::Result<()> {
        let ctx_path = self.path.clone();
        match self.fd.try_unwrap() {
            Ok(fd) => Op::new(Close::new(fd)).await.map_err(with_path(
                "close",
                ctx_path.as_deref().unwrap_or(Path::new("<fd>")),
            )),
            Err(_) => Ok(()),
        }
    }

    /// The path the file was opened with, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Converts into a `std::fs::File` (fails with `WouldBlock` if an operation still holds the
    /// fd, giving back nothing: the caller keeps the `File` only by not calling this then).
    pub fn into_std(self) -> Result<std::fs::File, File> {
        let (path, creds) = (self.path, self.creds);
        match self.fd.try_unwrap() {
            Ok(fd) => Ok(std::fs::File::from(fd)),
            Err(fd) => Err(File { fd, path, creds }),
        }
    }
}

impl From<std::fs::File> for File {
    fn from(f: std::fs::File) -> Self {
        File::from(OwnedFd::from(f))
    }
}

impl From<OwnedFd> for File {
    fn from(fd: OwnedFd) -> Self {
        File::from_shared(SharedFd::new(fd), None)
    }
}

impl AsSharedFd for File {
    fn as_shared_fd(&self) -> &SharedFd {
        &self.fd
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_plain_fd()
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("fd", &self.fd.raw())
            .field("path", &self.path)
            .finish()
    }
}

impl hoop_runtime::io::CompatSource for File {
    fn compat_fd(&self) -> &SharedFd {
        &self.fd
    }
    fn compat_kind(&self) -> FdKind {
        FdKind::File
    }
}

impl File {
    /// Wraps the file for the ecosystem's poll-based I/O traits (`futures::io`, `tokio::io` with
    /// that feature), reading and writing at the file's position, which starts where the fd's
    /// is (0 for a file just opened) and moves with `AsyncSeek`. See
    /// [`Compat`](hoop_runtime::io::Compat).
    pub fn compat(self) -> hoop_runtime::io::Compat<File> {
        hoop_runtime::io::Compat::new(self)
    }
}
