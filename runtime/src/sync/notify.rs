//! [`Notify`]: wakes tasks waiting for an event, on any worker or thread.

use super::Mutex;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Wakes one waiting task ([`notify_one`](Notify::notify_one), which is kept as a permit if
/// none waits) or every waiting task ([`notify_waiters`](Notify::notify_waiters)).
///
/// A [`Notified`] future waits from its first poll on: unlike tokio's, a `notify_waiters` between
/// `notified()` and the first poll is not seen (a `notify_one` is, as the permit). Poll it before
/// checking the condition it waits for, or use `notify_one`.
///
/// ```
/// use std::sync::Arc;
/// let rt = hoop_runtime::Runtime::builder().workers(2).build().unwrap();
/// let handle = rt.handle().clone();
/// rt.block_on(async move {
///     let ready = Arc::new(hoop_runtime::sync::Notify::new());
///     let signal = ready.clone();
///     handle.spawn_on(1, async move { signal.notify_one() });
///     ready.notified().await; // the permit, if the notification came first
/// });
/// ```
pub struct Notify {
    state: Mutex<State>,
}

impl Default for Notify {
    fn default() -> Self {
        Notify {
            state: Mutex::new(State::default()),
        }
    }
}

#[derive(Default)]
struct State {
    /// A `notify_one` that found nobody waiting.
    permit: bool,
    waiters: Vec<Waiter>,
    next_id: u64,
}

struct Waiter {
    id: u64,
    waker: Waker,
    notified: Option<By>,
}

/// Which call notified a waiter.
#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    One,
    All,
}

impl Notify {
    /// A `Notify` with no permit and no waiter.
    pub fn new() -> Self {
        Notify::default()
    }

    fn lock(&self) -> crate::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the longest-waiting task, or stores a permit that the next `notified()` takes at
    /// once (at most one permit is stored).
    pub fn notify_one(&self) {
        let waker = {
            let mut state = self.lock();
            match state.waiters.iter_mut().find(|w| w.notified.is_none()) {
                Some(w) => {
                    w.notified = Some(By::One);
                    Some(w.waker.clone())
                }
                None => {
                    state.permit = true;
                    None
                }
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Wakes every task waiting now; stores no permit.
    pub fn notify_waiters(&self) {
        let wakers: Vec<Waker> = {
            let mut state = self.lock();
            state
                .waiters
                .iter_mut()
                .filter(|w| w.notified.is_none())
                .map(|w| {
                    w.notified = Some(By::All);
                    w.waker.clone()
                })
                .collect()
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Waits for a notification.
    pub fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            id: None,
            done: false,
        }
    }
}

/// The future of [`Notify::notified`].
#[must_use = "futures do nothing unless awaited"]
pub struct Notified<'a> {
    notify: &'a Notify,
    id: Option<u64>,
    done: bool,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(());
        }
        let mut state = this.notify.lock();
        match this.id {
            None => {
                if state.permit {
                    state.permit = false;
                    this.done = true;
                    return Poll::Ready(());
                }
                state.next_id += 1;
                let id = state.next_id;
                state.waiters.push(Waiter {
                    id,
                    waker: cx.waker().clone(),
                    notified: None,
                });
                this.id = Some(id);
                Poll::Pending
            }
            Some(id) => {
                let at = state
                    .waiters
                    .iter()
                    .position(|w| w.id == id)
                    .expect("a registered waiter stays until its future ends");
                if state.waiters[at].notified.is_some() {
                    state.waiters.remove(at);
                    this.id = None;
                    this.done = true;
                    return Poll::Ready(());
                }
                state.waiters[at].waker.clone_from(cx.waker());
                Poll::Pending
            }
        }
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        let handed_on = {
            let mut state = self.notify.lock();
            let Some(at) = state.waiters.iter().position(|w| w.id == id) else {
                return;
            };
            let w = state.waiters.remove(at);
            w.notified == Some(By::One)
        };
        // A `notify_one` meant for this future: not lost with it.
        if handed_on {
            self.notify.notify_one();
        }
    }
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notify").finish_non_exhaustive()
    }
}

impl fmt::Debug for Notified<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notified")
            .field("waiting", &self.id.is_some())
            .finish()
    }
}
