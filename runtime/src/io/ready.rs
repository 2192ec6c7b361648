//! Readiness of fds hoop did not create: a library's socket, a pipe, an eventfd, a timerfd.

use crate::op::poll::PollAdd;
use crate::op::{Interest, MultiOp, Op};
use std::os::fd::{AsRawFd, BorrowedFd};

/// Waits until `fd` is ready for `interest` (or in error, or hung up), with `IORING_OP_POLL_ADD`
/// on io_uring and epoll on the fallback driver.
///
/// The caller keeps `fd` open until the future completes or is dropped.
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
pub fn wait_ready(fd: BorrowedFd<'_>, interest: Interest) -> Op<PollAdd> {
    Op::new(PollAdd::new(fd.as_raw_fd(), interest))
}

/// A stream of readiness events of `fd` (multishot `POLL_ADD` on io_uring, re-armed when the
/// kernel ends it). On io_uring an item comes per wake-up of the fd; on epoll one comes per poll
/// while the fd is ready, so a consumer should drain the fd before asking for the next item.
pub fn ready_stream(fd: BorrowedFd<'_>, interest: Interest) -> ReadyStream {
    MultiOp::new(PollAdd::multishot(fd.as_raw_fd(), interest))
}

/// Stream returned by [`ready_stream`].
pub type ReadyStream = MultiOp<PollAdd>;
