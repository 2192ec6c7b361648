//! Readiness of fds hoop did not create: a library's socket, a pipe, an eventfd, a timerfd.

use crate::op::poll::{PollAdd, Ready};
use crate::op::{Interest, MultiOp, Op};
use futures_core::Stream;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Waits until `fd` is ready for `interest` (or in error, or hung up), with `IORING_OP_POLL_ADD`
/// on io_uring and epoll on the fallback driver.
///
/// The future borrows `fd`: it cannot be closed while the future lives (a closed fd whose number
/// was reused would be watched in its place).
///
/// ```compile_fail
/// # hoop_runtime::block_on(async {
/// use std::os::fd::AsFd;
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let ready = hoop_runtime::io::wait_ready(a.as_fd(), hoop_runtime::io::Interest::READABLE);
/// drop(a); // refused: `ready` borrows the fd
/// ready.await.unwrap();
/// # });
/// ```
///
/// ```
/// # hoop_runtime::block_on(async {
/// use hoop_runtime::io::{wait_ready, Interest};
/// use std::os::fd::AsFd;
/// let (r, w) = std::os::unix::net::UnixStream::pair().unwrap();
/// std::io::Write::write_all(&mut &w, b"x").unwrap();
/// let ready = wait_ready(r.as_fd(), Interest::READABLE).await.unwrap();
/// assert!(ready.is_readable());
/// # });
/// ```
pub fn wait_ready(fd: BorrowedFd<'_>, interest: Interest) -> WaitReady<'_> {
    WaitReady {
        op: Op::new(PollAdd::new(fd.as_raw_fd(), interest)),
        _fd: PhantomData,
    }
}

/// Future returned by [`wait_ready`]; it borrows the fd it waits on.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct WaitReady<'fd> {
    op: Op<PollAdd>,
    _fd: PhantomData<BorrowedFd<'fd>>,
}

impl Future for WaitReady<'_> {
    type Output = io::Result<Ready>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.op).poll(cx)
    }
}

/// A stream of readiness events of `fd` (multishot `POLL_ADD` on io_uring, re-armed when the
/// kernel ends it). On io_uring an item comes per wake-up of the fd; on epoll one comes per poll
/// while the fd is ready, so a consumer should drain the fd before asking for the next item.
/// The stream borrows `fd`, as [`wait_ready`]'s future does.
pub fn ready_stream(fd: BorrowedFd<'_>, interest: Interest) -> ReadyStream<'_> {
    ReadyStream {
        op: MultiOp::new(PollAdd::multishot(fd.as_raw_fd(), interest)),
        _fd: PhantomData,
    }
}

/// Stream returned by [`ready_stream`]; it borrows the fd it watches.
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct ReadyStream<'fd> {
    op: MultiOp<PollAdd>,
    _fd: PhantomData<BorrowedFd<'fd>>,
}

impl Stream for ReadyStream<'_> {
    type Item = io::Result<Ready>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.op).poll_next(cx)
    }
}
