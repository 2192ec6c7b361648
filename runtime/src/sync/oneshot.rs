//! A channel for one value: [`channel`], [`Sender`], [`Receiver`].
//!
//! ```
//! let rt = hoop_runtime::Runtime::builder().workers(2).build().unwrap();
//! let handle = rt.handle().clone();
//! let answer = rt.block_on(async move {
//!     let (tx, rx) = hoop_runtime::sync::oneshot::channel();
//!     handle.spawn_on(1, async move { tx.send(6 * 7).unwrap() });
//!     rx.await.unwrap()
//! });
//! assert_eq!(answer, 42);
//! ```

use super::Mutex;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// Makes a channel for one value.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Mutex::new(State {
        value: None,
        receiver: None,
        sender_gone: false,
        receiver_gone: false,
    }));
    (
        Sender {
            inner: inner.clone(),
        },
        Receiver { inner },
    )
}

struct State<T> {
    value: Option<T>,
    /// The receiver's waker while it waits.
    receiver: Option<Waker>,
    sender_gone: bool,
    receiver_gone: bool,
}

fn lock<T>(m: &Mutex<State<T>>) -> crate::sync::MutexGuard<'_, State<T>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends the value; see [`channel`].
pub struct Sender<T> {
    inner: Arc<Mutex<State<T>>>,
}

/// Receives the value: a future resolving to it, or to [`RecvError`] if the sender was dropped
/// without sending.
pub struct Receiver<T> {
    inner: Arc<Mutex<State<T>>>,
}

/// The sender was dropped without sending a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvError;

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the oneshot sender was dropped without sending")
    }
}

impl std::error::Error for RecvError {}

/// Why [`Receiver::try_recv`] has no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Not sent yet.
    Empty,
    /// The sender was dropped without sending (or the value was already taken).
    Closed,
}

impl<T> Sender<T> {
    /// Sends `value`, waking the receiver; gives it back if the receiver is gone.
    pub fn send(self, value: T) -> Result<(), T> {
        let waker = {
            let mut state = lock(&self.inner);
            if state.receiver_gone {
                return Err(value);
            }
            state.value = Some(value);
            state.receiver.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// True if the receiver was dropped (a value sent now would come back).
    pub fn is_closed(&self) -> bool {
        lock(&self.inner).receiver_gone
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = lock(&self.inner);
            state.sender_gone = true;
            state.receiver.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// The value if it was sent, without waiting.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut state = lock(&self.inner);
        match state.value.take() {
            Some(v) => Ok(v),
            None if state.sender_gone => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Waits for the value on a thread outside the runtime.
    ///
    /// # Panics
    ///
    /// Panics on a runtime worker's thread (await the receiver there).
    #[track_caller]
    pub fn blocking_recv(self) -> Result<T, RecvError> {
        super::park::wait("oneshot::Receiver::blocking_recv", self)
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = lock(&self.inner);
        if let Some(v) = state.value.take() {
            return Poll::Ready(Ok(v));
        }
        if state.sender_gone {
            return Poll::Ready(Err(RecvError));
        }
        match &mut state.receiver {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // The value, if any, is dropped here, outside the lock.
        let value = {
            let mut state = lock(&self.inner);
            state.receiver_gone = true;
            state.receiver = None;
            state.value.take()
        };
        drop(value);
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("oneshot::Sender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("oneshot::Receiver").finish_non_exhaustive()
    }
}
