//! [`Incoming`]: connections from multishot accept, with back-off when fds run out.

use super::TcpStream;
use futures_core::Stream;
use hoop_runtime::fd::SharedFd;
use hoop_runtime::op::accept::AcceptMulti;
use hoop_runtime::op::MultiOp;
use hoop_runtime::time::{sleep, Sleep};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Stream of accepted connections; see [`super::TcpListener::incoming`].
///
/// Errors that only mean "not now" — out of fds (`EMFILE`, `ENFILE`) or memory — pause the stream
/// (5 ms, doubling up to 1 s) instead of being yielded, so an accept loop never spins; a
/// connection reset before it was accepted (`ECONNABORTED`) is skipped. Other errors are yielded.
#[must_use = "streams do nothing unless polled"]
pub struct Incoming {
    accept: Pin<Box<MultiOp<AcceptMulti>>>,
    backoff: Option<Pin<Box<Sleep>>>,
    next_backoff: Duration,
}

impl Incoming {
    pub(crate) fn new(listener: &SharedFd) -> Self {
        Incoming {
            accept: Box::pin(MultiOp::new(AcceptMulti::new(listener))),
            backoff: None,
            next_backoff: FIRST_BACKOFF,
        }
    }
}

impl Stream for Incoming {
    type Item = io::Result<TcpStream>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(sleep) = &mut self.backoff {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.backoff = None;
            }
            let item = match self.accept.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(item)) => item,
            };
            match item {
                Ok(fd) => {
                    self.next_backoff = FIRST_BACKOFF;
                    return Poll::Ready(Some(Ok(TcpStream::from_shared(fd))));
                }
                Err(e) => match e.raw_os_error() {
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS) => {
                        let pause = self.next_backoff;
                        tracing::warn!(
                            target: "hoop",
                            error = %e,
                            pause_ms = pause.as_millis() as u64,
                            "accept: out of resources; pausing the listener"
                        );
                        self.next_backoff = (pause * 2).min(MAX_BACKOFF);
                        self.backoff = Some(Box::pin(sleep(pause)));
                    }
                    Some(libc::ECONNABORTED | libc::EINTR) => {}
                    _ => return Poll::Ready(Some(Err(e))),
                },
            }
        }
    }
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming").finish_non_exhaustive()
    }
}
