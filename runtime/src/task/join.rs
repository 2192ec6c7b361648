//! [`JoinHandle`] and [`JoinError`]: awaiting a task's output, aborting it, learning it panicked.

use super::header::TaskHeader;
use crate::sync::{AtomicBool, Mutex};
use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// Why a task produced no output.
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Cancelled,
    Panic(Box<dyn Any + Send + 'static>),
}

impl JoinError {
    pub(crate) fn cancelled() -> Self {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    pub(crate) fn panic(payload: Box<dyn Any + Send + 'static>) -> Self {
        JoinError {
            repr: Repr::Panic(payload),
        }
    }

    /// True if the task was aborted, or dropped because its runtime shut down.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// True if the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic payload, to resume the panic with `std::panic::resume_unwind`.
    ///
    /// Returns `Err(self)` if the task did not panic.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(p) => Ok(p),
            Repr::Cancelled => Err(self),
        }
    }

    fn panic_message(&self) -> Option<&str> {
        match &self.repr {
            Repr::Panic(p) => p
                .downcast_ref::<&'static str>()
                .copied()
                .or_else(|| p.downcast_ref::<String>().map(String::as_str)),
            Repr::Cancelled => None,
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => f.write_str("JoinError::Cancelled"),
            Repr::Panic(_) => write!(f, "JoinError::Panic({:?})", self.panic_message()),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => f.write_str("task was cancelled"),
            Repr::Panic(_) => match self.panic_message() {
                Some(m) => write!(f, "task panicked: {m}"),
                None => f.write_str("task panicked"),
            },
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> Self {
        std::io::Error::other(e.to_string())
    }
}

/// State shared between a task (or blocking job) and its [`JoinHandle`].
pub(crate) struct JoinState<T> {
    aborted: AtomicBool,
    slot: Mutex<Slot<T>>,
}

struct Slot<T> {
    output: Option<Result<T, JoinError>>,
    /// The joiner's waker.
    waker: Option<Waker>,
    /// The task, so that `abort` reaches it (none for blocking jobs).
    task: Option<Arc<TaskHeader>>,
    /// True once the output was set (it may since have been taken by the handle).
    finished: bool,
}

impl<T> JoinState<T> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(JoinState {
            aborted: AtomicBool::new(false),
            slot: Mutex::new(Slot {
                output: None,
                waker: None,
                task: None,
                finished: false,
            }),
        })
    }

    /// Records the task (once it exists on its worker), passing on an abort that came first.
    pub(crate) fn set_task(&self, task: Arc<TaskHeader>) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        // Under the lock `abort` takes after its store: either it finds the task, or this load
        // sees its store.
        if self.aborted.load(Ordering::Acquire) {
            task.mark_aborted();
        }
        slot.task = Some(task);
    }

    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    fn finish(&self, output: Result<T, JoinError>) {
        let waker = {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            if slot.finished {
                return;
            }
            slot.finished = true;
            slot.output = Some(output);
            slot.task = None;
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Completes a [`JoinState`] exactly once: with the task's output, or with "cancelled" when the
/// task is dropped unfinished (abort, runtime shutdown).
pub(crate) struct JoinGuard<T> {
    state: Arc<JoinState<T>>,
}

impl<T> JoinGuard<T> {
    pub(crate) fn new(state: Arc<JoinState<T>>) -> Self {
        JoinGuard { state }
    }

    pub(crate) fn state(&self) -> &JoinState<T> {
        &self.state
    }

    pub(crate) fn shared(&self) -> Arc<JoinState<T>> {
        self.state.clone()
    }

    pub(crate) fn finish(&self, output: Result<T, JoinError>) {
        self.state.finish(output);
    }
}

impl<T> Drop for JoinGuard<T> {
    fn drop(&mut self) {
        self.state.finish(Err(JoinError::cancelled()));
    }
}

/// An owned permission to await a spawned task's output.
///
/// Awaiting it gives `Ok(output)`, or a [`JoinError`] if the task panicked or was cancelled.
/// Dropping it detaches the task, which keeps running. It is `Send` when the output is, so a task
/// spawned on one worker can be awaited from another.
///
/// ```
/// # hoop_runtime::block_on(async {
/// let task = hoop_runtime::spawn(async { 6 * 7 });
/// assert_eq!(task.await.unwrap(), 42);
///
/// let stuck = hoop_runtime::spawn(std::future::pending::<()>());
/// stuck.abort();
/// assert!(stuck.await.unwrap_err().is_cancelled());
/// # });
/// ```
#[must_use = "dropping a JoinHandle detaches the task; await it or call .detach()"]
pub struct JoinHandle<T> {
    state: Arc<JoinState<T>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(state: Arc<JoinState<T>>) -> Self {
        JoinHandle { state }
    }

    /// Cancels the task: it is dropped the next time its worker would poll it, and awaiting the
    /// handle gives a cancelled [`JoinError`] (unless it had already finished). A blocking-pool
    /// job that already started runs to its end.
    pub fn abort(&self) {
        self.state.aborted.store(true, Ordering::Release);
        let task = self
            .state
            .slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .task
            .clone();
        if let Some(task) = task {
            task.abort();
        }
    }

    /// True once the task has finished (its output may already have been taken).
    pub fn is_finished(&self) -> bool {
        self.state
            .slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .finished
    }

    /// Lets the task run on without anyone awaiting it (the same as dropping the handle).
    pub fn detach(self) {}
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.state.slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(out) = slot.output.take() {
            return Poll::Ready(out);
        }
        if slot.finished {
            // Polled again after it returned Ready: behave like a cancelled task, never panic.
            return Poll::Ready(Err(JoinError::cancelled()));
        }
        match &slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
