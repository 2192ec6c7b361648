//! [`Op`]: the future of one operation, a thin owner of the driver's dispatch.

use super::OpCode;
use crate::creds::Credentials;
use crate::driver::Dispatch;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A future that runs one [`OpCode`] and resolves to its output.
///
/// Building it does nothing; the first poll submits. Dropping it before completion cancels the
/// operation; the operation's data lives on in the driver until the kernel is done with it. It is
/// `!Send` (it holds its worker's driver): an operation belongs to the worker that started it.
///
/// The operation is kept inline until it is handed to the kernel or the blocking pool, where it
/// moves to the heap (the kernel needs an address that outlives the future). Operations completed
/// by a syscall on the worker's thread — page-cache reads, and socket I/O on the epoll driver —
/// allocate nothing.
#[must_use = "operations do nothing unless awaited"]
pub struct Op<T: OpCode> {
    dispatch: Dispatch<T>,
}

impl<T: OpCode> Op<T> {
    /// Wraps an operation; nothing happens until the first poll.
    pub fn new(op: T) -> Self {
        Op {
            dispatch: Dispatch::new(op, false),
        }
    }

    /// Runs the operation with another user's filesystem credentials (see [`Credentials`]).
    pub fn with_credentials(mut self, creds: Option<Credentials>) -> Self {
        self.dispatch.set_credentials(creds);
        self
    }
}

impl<T: OpCode> Future for Op<T> {
    type Output = T::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        // Completed outside the driver borrow: `complete` may drop fds and buffers whose
        // destructors use the driver.
        match self.get_mut().dispatch.poll_final(cx) {
            Poll::Ready((op, res)) => Poll::Ready(op.complete(res)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: OpCode> std::fmt::Debug for Op<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Op")
            .field("state", &self.dispatch.phase())
            .finish()
    }
}
