//! [`yield_now`]: let the other tasks and the driver run.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Yields to the executor once: the task goes to the back of the run queue, and completions are
/// processed before it runs again if the tick's budget is spent.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// Future returned by [`yield_now`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
