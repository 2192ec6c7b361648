//! The thread-local "current worker": what `spawn`, operations and timers find without being
//! handed a runtime.

use super::handle::Handle;
use super::shared::WorkerShared;
use crate::blocking::BlockingPool;
use crate::driver::{DriverRef, RuntimeInfo};
use crate::task::Executor;
use crate::time::timers::Timers;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

/// Everything one worker owns.
pub(crate) struct Core {
    pub(crate) shared: Arc<WorkerShared>,
    pub(crate) executor: Executor,
    pub(crate) driver: DriverRef,
    pub(crate) timers: Rc<RefCell<Timers>>,
    pub(crate) pool: Arc<BlockingPool>,
    pub(crate) handle: Handle,
    pub(crate) info: RuntimeInfo,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
    /// The current worker's id, readable without touching `CURRENT` (wakers check it).
    static CURRENT_ID: Cell<u64> = const { Cell::new(0) };
}

/// Runs `f` with the current worker, if this thread is running one.
pub(crate) fn with_core<R>(f: impl FnOnce(&Core) -> R) -> Option<R> {
    CURRENT
        .try_with(|c| c.borrow().as_ref().map(|core| f(core)))
        .ok()
        .flatten()
}

/// Id of the worker running on this thread (0 if none).
pub(crate) fn current_worker_id() -> u64 {
    CURRENT_ID.try_with(Cell::get).unwrap_or(0)
}

/// True if this thread is running a worker now.
pub(crate) fn is_entered() -> bool {
    current_worker_id() != 0
}

/// Makes `core` current until the guard drops, which restores whatever was current before (so a
/// runtime dropped inside another one's task can still shut down in its own context).
pub(crate) struct EnterGuard {
    previous: Option<Rc<Core>>,
    previous_id: u64,
    previous_driver: Option<DriverRef>,
}

pub(crate) fn enter(core: Rc<Core>) -> EnterGuard {
    let id = core.shared.id;
    let previous_driver = crate::driver::set_current(Some(core.driver.clone()));
    let previous = CURRENT.with(|c| c.borrow_mut().replace(core));
    let previous_id = CURRENT_ID.with(|c| c.replace(id));
    EnterGuard {
        previous,
        previous_id,
        previous_driver,
    }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let _ = CURRENT_ID.try_with(|c| c.set(self.previous_id));
        drop(crate::driver::set_current(self.previous_driver.take()));
        let previous = self.previous.take();
        let core = CURRENT
            .try_with(|c| std::mem::replace(&mut *c.borrow_mut(), previous))
            .ok()
            .flatten();
        drop(core);
    }
}
