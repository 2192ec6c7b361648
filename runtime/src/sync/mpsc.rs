//! A bounded multi-producer, single-consumer channel: [`channel`], [`Sender`], [`Receiver`].
//!
//! A full channel makes [`Sender::send`] wait (back-pressure) until the receiver takes a value;
//! the receiver sees the end (`None`) once every sender is gone and the queue is empty.
//!
//! ```
//! let rt = hoop_runtime::Runtime::builder().workers(2).build().unwrap();
//! let handle = rt.handle().clone();
//! let total = rt.block_on(async move {
//!     let (tx, mut rx) = hoop_runtime::sync::mpsc::channel(4);
//!     for i in 0..3u64 {
//!         let tx = tx.clone();
//!         handle.spawn(async move {
//!             for j in 0..10 {
//!                 tx.send(i * 100 + j).await.unwrap();
//!             }
//!         });
//!     }
//!     drop(tx);
//!     let mut total = 0;
//!     while let Some(v) = rx.recv().await {
//!         total += v;
//!     }
//!     total
//! });
//! assert_eq!(total, 3 * 45 + 10 * 300);
//! ```

use super::Mutex;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// Makes a channel that holds at most `capacity` values (at least 1).
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Mutex::new(State {
        queue: VecDeque::new(),
        capacity: capacity.max(1),
        senders: 1,
        receiver_gone: false,
        receiver: None,
        blocked: Vec::new(),
        next_id: 0,
    }));
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

struct State<T> {
    queue: VecDeque<T>,
    capacity: usize,
    senders: usize,
    receiver_gone: bool,
    /// The receiver's waker while it waits for a value.
    receiver: Option<Waker>,
    /// Sends waiting for room, by id. All are woken when room frees (each re-checks): a woken
    /// send that was dropped meanwhile cannot swallow the wake-up another needs.
    blocked: Vec<(u64, Waker)>,
    next_id: u64,
}

fn lock<T>(m: &Mutex<State<T>>) -> crate::sync::MutexGuard<'_, State<T>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn wake_all(wakers: Vec<(u64, Waker)>) {
    for (_, w) in wakers {
        w.wake();
    }
}

/// Sends values; cloneable, one per producer.
pub struct Sender<T> {
    shared: Arc<Mutex<State<T>>>,
}

/// Receives the values in the order they were sent.
pub struct Receiver<T> {
    shared: Arc<Mutex<State<T>>>,
}

/// The receiver is gone: the value comes back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

/// Why [`Sender::try_send`] did not send: the value comes back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The channel holds `capacity` values.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

/// Why [`Receiver::try_recv`] has no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing queued, and a sender may still send.
    Empty,
    /// Nothing queued, and every sender is gone.
    Disconnected,
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the channel's receiver is gone")
    }
}

impl<T> std::error::Error for SendError<T> {}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "Full(..)",
            TrySendError::Closed(_) => "Closed(..)",
        })
    }
}

impl<T> Sender<T> {
    /// Sends `value`, waiting while the channel is full; gives it back if the receiver is gone.
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut value = Some(value);
        let mut wait = Waiting {
            shared: &self.shared,
            id: None,
        };
        poll_fn(|cx| {
            let v = value.take().expect("polled after it completed");
            match wait.try_send(v, Some(cx.waker())) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(TrySendError::Closed(v)) => Poll::Ready(Err(SendError(v))),
                Err(TrySendError::Full(v)) => {
                    value = Some(v);
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Sends `value` if there is room now.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        Waiting {
            shared: &self.shared,
            id: None,
        }
        .try_send(value, None)
    }

    /// Sends from a thread outside the runtime, waiting (parked) while the channel is full.
    ///
    /// # Panics
    ///
    /// Panics on a runtime worker's thread (use [`send`](Self::send) there).
    #[track_caller]
    pub fn blocking_send(&self, value: T) -> Result<(), SendError<T>> {
        super::park::wait("mpsc::Sender::blocking_send", self.send(value))
    }

    /// True if the receiver is gone.
    pub fn is_closed(&self) -> bool {
        lock(&self.shared).receiver_gone
    }
}

/// A send's place among the blocked ones; taken out when the send ends or is dropped.
struct Waiting<'a, T> {
    shared: &'a Mutex<State<T>>,
    id: Option<u64>,
}

impl<T> Waiting<'_, T> {
    fn try_send(&mut self, value: T, waker: Option<&Waker>) -> Result<(), TrySendError<T>> {
        let receiver = {
            let mut state = lock(self.shared);
            if state.receiver_gone {
                return Err(TrySendError::Closed(value));
            }
            if state.queue.len() >= state.capacity {
                if let Some(waker) = waker {
                    let id = *self.id.get_or_insert_with(|| {
                        state.next_id += 1;
                        state.next_id
                    });
                    match state.blocked.iter_mut().find(|(i, _)| *i == id) {
                        Some((_, w)) if w.will_wake(waker) => {}
                        Some((_, w)) => w.clone_from(waker),
                        None => state.blocked.push((id, waker.clone())),
                    }
                }
                return Err(TrySendError::Full(value));
            }
            if let Some(id) = self.id.take() {
                state.blocked.retain(|(i, _)| *i != id);
            }
            state.queue.push_back(value);
            state.receiver.take()
        };
        if let Some(w) = receiver {
            w.wake();
        }
        Ok(())
    }
}

impl<T> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            lock(self.shared).blocked.retain(|(i, _)| *i != id);
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        lock(&self.shared).senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let receiver = {
            let mut state = lock(&self.shared);
            state.senders -= 1;
            if state.senders > 0 {
                return;
            }
            state.receiver.take()
        };
        if let Some(w) = receiver {
            w.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// The next value; `None` once every sender is gone and nothing is queued.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next value (for poll-based code).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let (value, blocked) = {
            let mut state = lock(&self.shared);
            match state.queue.pop_front() {
                Some(v) => (Some(v), std::mem::take(&mut state.blocked)),
                // Closed: nothing can be sent any more, whatever senders remain.
                None if state.senders == 0 || state.receiver_gone => return Poll::Ready(None),
                None => {
                    match &mut state.receiver {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        slot => *slot = Some(cx.waker().clone()),
                    }
                    return Poll::Pending;
                }
            }
        };
        wake_all(blocked);
        Poll::Ready(value)
    }

    /// The next value if one is queued.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let (value, blocked) = {
            let mut state = lock(&self.shared);
            match state.queue.pop_front() {
                Some(v) => (v, std::mem::take(&mut state.blocked)),
                None if state.senders == 0 || state.receiver_gone => {
                    return Err(TryRecvError::Disconnected)
                }
                None => return Err(TryRecvError::Empty),
            }
        };
        wake_all(blocked);
        Ok(value)
    }

    /// Waits for the next value on a thread outside the runtime.
    ///
    /// # Panics
    ///
    /// Panics on a runtime worker's thread (use [`recv`](Self::recv) there).
    #[track_caller]
    pub fn blocking_recv(&mut self) -> Option<T> {
        super::park::wait("mpsc::Receiver::blocking_recv", self.recv())
    }

    /// Refuses further sends; values already queued can still be received, then `recv` gives
    /// `None`.
    pub fn close(&mut self) {
        let blocked = {
            let mut state = lock(&self.shared);
            state.receiver_gone = true;
            std::mem::take(&mut state.blocked)
        };
        wake_all(blocked);
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // Queued values are dropped here, outside the lock.
        let (queue, blocked) = {
            let mut state = lock(&self.shared);
            state.receiver_gone = true;
            state.receiver = None;
            (
                std::mem::take(&mut state.queue),
                std::mem::take(&mut state.blocked),
            )
        };
        wake_all(blocked);
        drop(queue);
    }
}

impl<T> futures_core::Stream for Receiver<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("mpsc::Sender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("mpsc::Receiver").finish_non_exhaustive()
    }
}
