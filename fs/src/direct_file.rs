//! [`DirectFile`]: a file opened into a direct descriptor.

use crate::File;
use hoop_runtime::buf::{BufResult, IoBuf, IoBufMut};
use hoop_runtime::fd::{AsSharedFd, SharedFd};
use hoop_runtime::op::direct::InstallFd;
use hoop_runtime::op::Op;
use std::fmt;
use std::io;

/// A file opened into a *direct descriptor* ([`OpenOptions::open_direct`]): a slot in the
/// opening worker's io_uring table of registered files, not an fd in the process's table.
///
/// Each read and write names the slot, so the kernel skips the fd-table lookup and reference
/// count of every operation. It belongs to the worker that opened it, has no `AsRawFd`, and
/// offers the positioned I/O and syncs of [`File`] (its `metadata` and other fd-based calls need
/// an fd: [`into_file`](Self::into_file) gives one, on Linux 6.8 and later). It is closed
/// through the ring when dropped. Where the worker has no table (the epoll driver, Linux before
/// 6.0, a restricted ring, `Builder::direct_descriptors(0)`) or it is full, the open gives a
/// plain fd and the same methods work: [`is_direct`](Self::is_direct) tells which.
///
/// [`OpenOptions::open_direct`]: crate::OpenOptions::open_direct
pub struct DirectFile {
    // A `File` whose fd may be a slot; only the calls that name the fd through the ring are
    // exposed (`File`'s `AsFd` would need an fd number).
    file: File,
}

impl DirectFile {
    pub(crate) fn new(file: File) -> Self {
        DirectFile { file }
    }

    /// True if this is a direct descriptor; false if the open gave a plain fd.
    pub fn is_direct(&self) -> bool {
        self.file.shared_fd().direct_slot().is_some()
    }

    /// As [`File::read_at`].
    pub async fn read_at<B: IoBufMut>(&self, buf: B, pos: u64) -> BufResult<usize, B> {
        self.file.read_at(buf, pos).await
    }

    /// As [`File::read_exact_at`].
    pub async fn read_exact_at<B: IoBufMut>(&self, buf: B, pos: u64) -> BufResult<(), B> {
        self.file.read_exact_at(buf, pos).await
    }

    /// As [`File::write_at`].
    pub async fn write_at<B: IoBuf>(&self, buf: B, pos: u64) -> BufResult<usize, B> {
        self.file.write_at(buf, pos).await
    }

    /// As [`File::write_all_at`].
    pub async fn write_all_at<B: IoBuf>(&self, buf: B, pos: u64) -> BufResult<(), B> {
        self.file.write_all_at(buf, pos).await
    }

    /// As [`File::sync_all`].
    pub async fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all().await
    }

    /// As [`File::sync_data`].
    pub async fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data().await
    }

    /// A [`File`] with an fd for the same open file (`IORING_OP_FIXED_FD_INSTALL`, Linux 6.8;
    /// `Unsupported` before). A plain fd is handed over as it is.
    pub async fn into_file(self) -> io::Result<File> {
        if !self.is_direct() {
            return Ok(self.file);
        }
        let owned = Op::new(InstallFd::new(self.file.shared_fd())).await?;
        // The slot closes when `self` drops; the new fd keeps the file open.
        Ok(File::from_shared(SharedFd::new(owned), None))
    }

    /// The file as the runtime's operations hold it (for building operations on it).
    pub fn shared_fd(&self) -> &SharedFd {
        self.file.shared_fd()
    }
}

impl AsSharedFd for DirectFile {
    fn as_shared_fd(&self) -> &SharedFd {
        self.file.shared_fd()
    }
}

impl fmt::Debug for DirectFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectFile")
            .field("fd", self.file.shared_fd())
            .finish()
    }
}
