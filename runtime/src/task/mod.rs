//! Tasks: the executor's unit of work, their wakers and their join handles.
//!
//! A task is a `'static` future (not necessarily `Send`) owned by the executor of the worker that
//! spawned it. Its waker is an `Arc<TaskHeader>`, which is `Send + Sync`: a wake on the owning
//! thread pushes the task on the local run queue, a wake from any other thread goes through the
//! worker's inbox and doorbell (see [`crate::rt`]).

mod executor;
mod header;
mod join;
mod yield_now;

pub(crate) use executor::Executor;
pub(crate) use header::TaskHeader;
pub use join::{JoinError, JoinHandle};
pub(crate) use join::{JoinGuard, JoinState};
pub use yield_now::yield_now;

use std::future::Future;

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
    crate::rt::context::with_core(|core| core.executor.spawn(&core.shared, future))
        .expect("hoop::spawn called outside a hoop runtime")
}
