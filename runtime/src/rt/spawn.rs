//! Spawning from inside a runtime: tasks on the current worker, closures on the blocking pool.
//! Here, not in `task/` or `blocking`, because both find the current worker through `rt`'s
//! context; the layers below know nothing of it.

use super::context;
use crate::task::{JoinError, JoinGuard, JoinHandle, JoinState};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Spawns a task on the current worker and returns a handle to await its output.
///
/// The future need not be `Send`: it stays on this worker's thread for its whole life. The task
/// starts running when the current task yields; dropping the [`JoinHandle`] detaches it.
///
/// # Panics
///
/// Panics when called outside a hoop runtime.
///
/// ```
/// # hoop_runtime::block_on(async {
/// let shared = std::rc::Rc::new(5); // not Send, and that is fine
/// let s = shared.clone();
/// let handle = hoop_runtime::spawn(async move { *s * 2 });
/// assert_eq!(handle.await.unwrap(), 10);
/// # });
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    context::with_core(|core| core.executor.spawn(future))
        .expect("hoop::spawn called outside a hoop runtime")
}

/// Runs a blocking closure on the blocking pool and returns a handle to its result.
///
/// Use it for CPU-heavy work or for calls into libraries that block, so that the worker keeps
/// serving its other tasks. The handle's `abort` only prevents a job that has not started yet.
///
/// # Panics
///
/// Panics when called outside a hoop runtime.
///
/// ```
/// # hoop_runtime::block_on(async {
/// let sum = hoop_runtime::spawn_blocking(|| (1..=100u64).sum::<u64>()).await.unwrap();
/// assert_eq!(sum, 5050);
/// # });
/// ```
#[track_caller]
pub fn spawn_blocking<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let pool = context::with_core(|core| core.pool.clone())
        .expect("hoop::spawn_blocking called outside a hoop runtime");
    let state = JoinState::new();
    let guard = JoinGuard::new(state.clone());
    let job = move || {
        if guard.state().is_aborted() {
            return; // the guard reports the cancellation
        }
        let out = catch_unwind(AssertUnwindSafe(f)).map_err(JoinError::panic);
        guard.finish(out);
    };
    // A refused job is dropped here, and its guard reports "cancelled" to the handle.
    let _ = pool.spawn_user(job);
    JoinHandle::new(state)
}
