//! Owned-buffer stream I/O on a socket fd, shared by TCP and Unix streams and their halves.

use hoop_runtime::buf::BufRing;
use hoop_runtime::buf::{BufResult, IoBuf, IoBufMut};
use hoop_runtime::fd::{AsSharedFd, SharedFd};
use hoop_runtime::io::RecvStream;
use hoop_runtime::op::rw::{FdKind, CURRENT_POSITION};
use hoop_runtime::op::send_recv::{Recv, Send};
use hoop_runtime::op::send_zc::{SendZc, SendZcReport, SendvZc, ZcSent};
use hoop_runtime::op::vectored::{Readv, Writev};
use hoop_runtime::op::Op;
use std::io;

pub(crate) async fn read<B: IoBufMut>(fd: &SharedFd, buf: B) -> BufResult<usize, B> {
    Op::new(Recv::new(fd, buf, 0)).await
}

pub(crate) async fn peek<B: IoBufMut>(fd: &SharedFd, buf: B) -> BufResult<usize, B> {
    Op::new(Recv::new(fd, buf, libc::MSG_PEEK)).await
}

pub(crate) async fn write<B: IoBuf>(fd: &SharedFd, buf: B) -> BufResult<usize, B> {
    Op::new(Send::new(fd, buf, 0)).await
}

pub(crate) async fn readv<B: IoBufMut>(fd: &SharedFd, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
    Op::new(Readv::new(fd, bufs, CURRENT_POSITION, FdKind::Stream)).await
}

pub(crate) async fn writev<B: IoBuf>(fd: &SharedFd, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
    Op::new(Writev::new(fd, bufs, CURRENT_POSITION, FdKind::Stream)).await
}

/// Fills `buf` to its capacity; `UnexpectedEof` if the peer closes first.
pub(crate) async fn read_exact<B: IoBufMut>(fd: &SharedFd, buf: B) -> BufResult<(), B> {
    let total = buf.bytes_total();
    let mut done = 0;
    let mut slice = buf.slice(..);
    while done < total {
        let (res, s) = read(fd, slice).await;
        let buf = s.into_inner();
        match res {
            Ok(0) => return (Err(io::ErrorKind::UnexpectedEof.into()), buf),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
        slice = buf.slice(done..);
    }
    (Ok(()), slice.into_inner())
}

/// Writes all initialised bytes of `buf`.
pub(crate) async fn write_all<B: IoBuf>(fd: &SharedFd, buf: B) -> BufResult<(), B> {
    let total = buf.bytes_init();
    let mut done = 0;
    let mut slice = buf.slice(..total);
    while done < total {
        let (res, s) = write(fd, slice).await;
        let buf = s.into_inner();
        match res {
            Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
        slice = buf.slice(done..total);
    }
    (Ok(()), slice.into_inner())
}

pub(crate) async fn send_zc<B: IoBuf>(fd: &SharedFd, buf: B) -> BufResult<usize, B> {
    Op::new(SendZc::new(fd, buf)).await
}

pub(crate) async fn send_zc_reported<B: IoBuf>(fd: &SharedFd, buf: B) -> BufResult<ZcSent, B> {
    Op::new(SendZcReport::new(fd, buf)).await
}

pub(crate) async fn send_vectored_zc<B: IoBuf>(
    fd: &SharedFd,
    bufs: Vec<B>,
) -> BufResult<usize, Vec<B>> {
    Op::new(SendvZc::new(fd, bufs)).await
}

pub(crate) fn recv_stream(fd: &SharedFd, ring: &BufRing) -> RecvStream {
    RecvStream::new(fd, ring)
}

pub(crate) async fn send_file(
    fd: &SharedFd,
    file: &(impl AsSharedFd + ?Sized),
    offset: u64,
    len: u64,
) -> io::Result<u64> {
    hoop_runtime::io::send_file(file.as_shared_fd(), offset, len, fd).await
}

pub(crate) async fn send_file_cached(
    fd: &SharedFd,
    head: &[u8],
    file: &(impl AsSharedFd + ?Sized),
    offset: u64,
    len: u64,
) -> io::Result<u64> {
    hoop_runtime::io::send_file_cached(head, file.as_shared_fd(), offset, len, fd).await
}
