//! The executor of the worker running on this thread: what a waker on that thread pushes its task
//! to. Set by `rt` while a worker runs; the task layer knows nothing more of workers.

use super::executor::Executor;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

thread_local! {
    static EXECUTOR: RefCell<Option<Rc<Executor>>> = const { RefCell::new(None) };
    /// Its worker's id, readable without touching `EXECUTOR` (every wake checks it).
    static ID: Cell<u64> = const { Cell::new(0) };
}

/// Makes `current` (a worker id and its executor) this thread's; returns what it replaces.
pub(crate) fn set(current: Option<(u64, Rc<Executor>)>) -> Option<(u64, Rc<Executor>)> {
    let (id, executor) = match current {
        Some((id, e)) => (id, Some(e)),
        None => (0, None),
    };
    let previous_id = ID.try_with(|c| c.replace(id)).unwrap_or(0);
    let previous = EXECUTOR.try_with(|c| c.replace(executor)).ok().flatten();
    previous.map(|e| (previous_id, e))
}

/// Id of the worker running on this thread (0 if none).
pub(crate) fn id() -> u64 {
    ID.try_with(Cell::get).unwrap_or(0)
}

/// Runs `f` with this thread's executor, if a worker runs here.
pub(crate) fn with<R>(f: impl FnOnce(&Executor) -> R) -> Option<R> {
    EXECUTOR
        .try_with(|c| c.borrow().as_ref().map(|e| f(e)))
        .ok()
        .flatten()
}
