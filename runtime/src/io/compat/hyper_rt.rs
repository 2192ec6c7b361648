//! hyper 1.x runtime traits (the `hyper` feature): [`Compat`] as hyper's I/O, [`HyperExecutor`]
//! for its background tasks, [`HyperTimer`] for its timeouts.

use super::{Compat, CompatSource};
use crate::time::{sleep_until, Sleep};
use std::future::Future;
use std::io::{self, IoSlice};
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

impl<S: CompatSource + Unpin> hyper::rt::Read for Compat<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let this = self.get_mut();
        let got = ready!(this.poll_fill_buf(cx))?;
        let n = got.len().min(buf.remaining());
        buf.put_slice(&got[..n]);
        this.consume(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: CompatSource + Unpin> hyper::rt::Write for Compat<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_shutdown(cx)
    }
}

/// hyper's executor on hoop: [`spawn`](crate::spawn)s hyper's background futures (HTTP/2
/// streams, client connections) on the current worker. They need not be `Send`.
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperExecutor;

impl<F: Future + 'static> hyper::rt::Executor<F> for HyperExecutor {
    fn execute(&self, fut: F) {
        crate::spawn(fut).detach();
    }
}

/// hyper's timer on hoop: the worker's timers (header-read timeouts, HTTP/2 keep-alive).
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperTimer;

impl hyper::rt::Timer for HyperTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(
            Instant::now()
                .checked_add(duration)
                .unwrap_or_else(crate::time::far_future),
        )
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(ThreadSleep {
            deadline,
            timer: None,
        })
    }
}

/// A [`Sleep`] that hyper may treat as `Send + Sync`, as its trait demands, although hoop's
/// timers belong to one worker thread. The worker's timer is only touched on the thread that
/// made it: polled elsewhere, the sleep leaks that timer entry and registers on the current
/// worker; dropped elsewhere, it leaks it. (On hoop, hyper polls and drops its sleeps on the
/// worker that runs the connection, so neither happens in practice.)
struct ThreadSleep {
    deadline: Instant,
    timer: Option<(ThreadId, ManuallyDrop<Sleep>)>,
}

// SAFETY: the only `!Send` part is `timer`, whose `Sleep` (an `Rc` to the worker's timer store)
// is accessed — polled or dropped — only on the thread recorded beside it; on any other thread
// it is forgotten without being touched (see `poll` and `drop`).
unsafe impl Send for ThreadSleep {}
// SAFETY: no method takes `&self`, so shared references give access to nothing.
unsafe impl Sync for ThreadSleep {}

impl hyper::rt::Sleep for ThreadSleep {}

impl Future for ThreadSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let here = thread::current().id();
        if let Some((owner, _)) = &self.timer {
            if *owner != here {
                // Leak the other thread's timer entry rather than touch its `Rc` here.
                let _ = self.timer.take();
            }
        }
        if self.timer.is_none() {
            let deadline = self.deadline;
            self.timer = Some((here, ManuallyDrop::new(sleep_until(deadline))));
        }
        let (_, sleep) = self.timer.as_mut().expect("just set");
        // Polled on the thread that made it (checked above).
        Pin::new(&mut **sleep).poll(cx)
    }
}

impl Drop for ThreadSleep {
    fn drop(&mut self) {
        if let Some((owner, sleep)) = &mut self.timer {
            if *owner == thread::current().id() {
                // SAFETY: dropped once, on the thread that made it; `timer` is not used again.
                unsafe { ManuallyDrop::drop(sleep) };
            }
        }
    }
}
