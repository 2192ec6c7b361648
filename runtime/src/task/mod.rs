//! Tasks: the executor's unit of work, their wakers and their join handles.
//!
//! A task is a `'static` future (not necessarily `Send`) owned by the executor of the worker that
//! spawned it. Its waker is an `Arc<TaskHeader>`, which is `Send + Sync`: a wake on the owning
//! thread pushes the task on the local run queue, a wake from any other thread goes through the
//! worker's inbox and doorbell (see [`crate::rt`]).

pub(crate) mod current;
mod executor;
mod header;
mod join;
mod yield_now;

pub(crate) use executor::Executor;
pub(crate) use header::{Mailbox, TaskHeader};
pub use join::{JoinError, JoinHandle};
pub(crate) use join::{JoinGuard, JoinState};
pub use yield_now::yield_now;
