//! Waiting for a future on a thread outside the runtime, by parking the thread (the `blocking_*`
//! methods of the channels).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    /// Set while this thread runs a hoop worker (by `rt`'s context).
    static ON_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread as running a worker (or not); returns the previous mark, to restore.
pub(crate) fn set_on_worker(on: bool) -> bool {
    ON_WORKER.try_with(|c| c.replace(on)).unwrap_or(false)
}

fn on_worker() -> bool {
    ON_WORKER.try_with(|c| c.get()).unwrap_or(false)
}

/// Runs `future` to completion on this thread, parking it while the future waits.
///
/// # Panics
///
/// Panics on a hoop worker's thread: parking it would stop every task of the worker, the one
/// that would wake this future maybe among them.
#[track_caller]
pub(crate) fn wait<F: Future>(what: &str, future: F) -> F::Output {
    assert!(
        !on_worker(),
        "hoop: {what} called on a runtime worker's thread (it would block the worker); use the async method"
    );
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}
