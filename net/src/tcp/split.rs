//! Owned read and write halves of a [`TcpStream`], for a reader task and a writer task.

use super::TcpStream;
use crate::stream_io;
use hoop_runtime::buf::{BufResult, BufRing, IoBuf, IoBufMut};
use hoop_runtime::fd::AsSharedFd;
use hoop_runtime::io::RecvStream;
use std::fmt;
use std::io;
use std::net::Shutdown;
use std::rc::Rc;

/// The reading half of a [`TcpStream`] (see [`TcpStream::into_split`]).
pub struct OwnedReadHalf {
    stream: Rc<TcpStream>,
}

/// The writing half of a [`TcpStream`]. Call [`shutdown`](Self::shutdown) to send FIN; the
/// connection closes when both halves are dropped.
pub struct OwnedWriteHalf {
    stream: Rc<TcpStream>,
}

impl OwnedReadHalf {
    pub(crate) fn new(stream: Rc<TcpStream>) -> Self {
        OwnedReadHalf { stream }
    }

    /// Reads into `buf`; `Ok(0)` when the peer closed.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        stream_io::read(self.stream.shared_fd(), buf).await
    }

    /// A stream of received chunks in buffers of `ring` (multishot receive with provided
    /// buffers on io_uring): no buffer is tied up while the connection is idle. See
    /// [`RecvStream`](hoop_runtime::io::RecvStream).
    pub fn recv_stream(&self, ring: &BufRing) -> RecvStream {
        stream_io::recv_stream(self.stream.shared_fd(), ring)
    }

    /// Fills `buf` to its capacity.
    pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
        stream_io::read_exact(self.stream.shared_fd(), buf).await
    }

    /// Puts the halves back together; gives them back if they are not of the same stream.
    pub fn reunite(
        self,
        write: OwnedWriteHalf,
    ) -> Result<TcpStream, (OwnedReadHalf, OwnedWriteHalf)> {
        if !Rc::ptr_eq(&self.stream, &write.stream) {
            return Err((self, write));
        }
        drop(write);
        match Rc::try_unwrap(self.stream) {
            Ok(stream) => Ok(stream),
            Err(_) => unreachable!("only the two halves hold the stream"),
        }
    }
}

impl OwnedWriteHalf {
    pub(crate) fn new(stream: Rc<TcpStream>) -> Self {
        OwnedWriteHalf { stream }
    }

    /// Writes some of `buf`.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        stream_io::write(self.stream.shared_fd(), buf).await
    }

    /// Writes all of `buf`.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        stream_io::write_all(self.stream.shared_fd(), buf).await
    }

    /// Sends `buf` without copying it into the kernel (`IORING_OP_SEND_ZC`); the buffer comes
    /// back only after the kernel's notification that it no longer references it. Worth it for
    /// large buffers (tens of KiB and up) on real NICs; small messages and loopback are faster
    /// with [`write`](Self::write), which stays the default. A plain send on the epoll driver.
    pub async fn send_zc<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        stream_io::send_zc(self.stream.shared_fd(), buf).await
    }

    /// As [`send_zc`](Self::send_zc), and says whether the kernel copied the data after all
    /// ([`ZcSent::copied`](hoop_runtime::op::send_zc::ZcSent::copied), from
    /// `IORING_SEND_ZC_REPORT_USAGE`, 6.2): a sender can drop back to plain sends on a route
    /// where zero copy never happens (loopback, devices without scatter-gather).
    pub async fn send_zc_reported<B: IoBuf>(
        &self,
        buf: B,
    ) -> BufResult<hoop_runtime::op::send_zc::ZcSent, B> {
        stream_io::send_zc_reported(self.stream.shared_fd(), buf).await
    }

    /// Sends the initialised bytes of `bufs`, in order, in one zero-copy `sendmsg`
    /// (`IORING_OP_SENDMSG_ZC`): a reply's header and payload leave together, and the buffers
    /// come back after the kernel's notification. May send only part of them, like
    /// any stream write. A plain `sendmsg` on the epoll driver and before 6.1.
    pub async fn send_vectored_zc<B: IoBuf>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        stream_io::send_vectored_zc(self.stream.shared_fd(), bufs).await
    }

    /// Sends `len` bytes of `file` from `offset`; returns the bytes sent (fewer only if the file
    /// ends first). 256 KiB reads and sends (page-cached data never leaves the worker thread):
    /// the fastest way measured, see [`hoop_runtime::io::send_file`]; for a transfer that never
    /// passes through user space, [`hoop_runtime::io::splice_file`].
    pub async fn send_file(
        &self,
        file: &(impl AsSharedFd + ?Sized),
        offset: u64,
        len: u64,
    ) -> io::Result<u64> {
        stream_io::send_file(self.stream.shared_fd(), file, offset, len).await
    }

    /// Shuts the write side down (sends FIN).
    pub fn shutdown(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }
}

impl fmt::Debug for OwnedReadHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OwnedReadHalf").field(&self.stream).finish()
    }
}

impl fmt::Debug for OwnedWriteHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OwnedWriteHalf").field(&self.stream).finish()
    }
}
