//! An anonymous pipe with owned-buffer reads and writes.

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::fd::SharedFd;
use crate::op::rw::{FdKind, Read, Write, CURRENT_POSITION};
use crate::op::Op;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Creates a pipe: bytes written to the [`PipeWriter`] are read from the [`PipeReader`].
///
/// The fds are `O_NONBLOCK` and close-on-exec on both drivers, and must stay non-blocking while
/// hoop uses them: the flag belongs to the open file, shared with every duplicate, and a read or
/// write hoop tries on the worker's thread would wait there if another holder (a child process
/// given a duplicate, say) cleared it. Give a child a pipe of its own instead.
///
/// On io_uring the ring still waits for data itself (the kernel arms its poll for a
/// non-blocking pipe as for a blocking one; a kernel that answers `EAGAIN` instead gets a
/// `POLL_ADD` and a retry), and a read or write that the fd's recent results say can complete at
/// once, with nothing else queued for the kernel, is a plain `read`/`write` on the worker.
pub fn pipe() -> io::Result<(PipeReader, PipeWriter)> {
    let mut fds = [0 as RawFd; 2];
    let flags = libc::O_CLOEXEC | libc::O_NONBLOCK;
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just created both fds and nobody else owns them.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let (r, w) = (SharedFd::new(r), SharedFd::new(w));
    r.mark_nonblocking_stream();
    w.mark_nonblocking_stream();
    Ok((PipeReader { fd: r }, PipeWriter { fd: w }))
}

/// The read end of a [`pipe`].
#[derive(Debug)]
pub struct PipeReader {
    fd: SharedFd,
}

/// The write end of a [`pipe`].
#[derive(Debug)]
pub struct PipeWriter {
    fd: SharedFd,
}

impl PipeReader {
    /// Reads into `buf` (up to its capacity); `Ok(0)` means every writer is gone.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        Op::new(Read::new(&self.fd, buf, CURRENT_POSITION, FdKind::Stream)).await
    }

    /// The pipe's fd as the runtime's operations hold it (for building operations on it, such
    /// as [`Splice`](crate::op::splice::Splice)).
    pub fn shared_fd(&self) -> &SharedFd {
        &self.fd
    }
}

impl PipeWriter {
    /// Writes `buf`'s initialised bytes (possibly only some of them).
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        Op::new(Write::new(&self.fd, buf, CURRENT_POSITION, FdKind::Stream)).await
    }

    /// The pipe's fd as the runtime's operations hold it (for building operations on it, such
    /// as [`Splice`](crate::op::splice::Splice)).
    pub fn shared_fd(&self) -> &SharedFd {
        &self.fd
    }

    /// Writes all of `buf`'s initialised bytes.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        let total = buf.bytes_init();
        let mut slice = buf.slice(..total);
        let mut done = 0;
        while done < total {
            let (res, s) = Op::new(Write::new(
                &self.fd,
                slice,
                CURRENT_POSITION,
                FdKind::Stream,
            ))
            .await;
            let buf = s.into_inner();
            match res {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => done += n,
                Err(e) => return (Err(e), buf),
            }
            slice = buf.slice(done..total);
        }
        (Ok(()), slice.into_inner())
    }
}

impl AsRawFd for PipeReader {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}

impl AsRawFd for PipeWriter {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}

impl AsFd for PipeReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_plain_fd()
    }
}

impl AsFd for PipeWriter {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_plain_fd()
    }
}

impl super::AsyncReadOwned for PipeReader {
    async fn read<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
        PipeReader::read(self, buf).await
    }
}

impl super::AsyncWriteOwned for PipeWriter {
    async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        PipeWriter::write(self, buf).await
    }

    /// A pipe has no "shutdown"; drop the writer to signal the end.
    async fn shutdown(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl super::CompatSource for PipeReader {
    fn compat_fd(&self) -> &SharedFd {
        &self.fd
    }
    fn compat_kind(&self) -> FdKind {
        FdKind::Stream
    }
}

impl super::CompatSource for PipeWriter {
    fn compat_fd(&self) -> &SharedFd {
        &self.fd
    }
    fn compat_kind(&self) -> FdKind {
        FdKind::Stream
    }
}
