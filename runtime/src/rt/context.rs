//! The thread-local "current worker": what `spawn`, operations and timers find without being
//! handed a runtime.
//!
//! Each layer below `rt` keeps its own current piece (the driver, the executor, the timers), so
//! none of them imports `rt`; [`enter`] sets them all, together with the whole [`Core`] that
//! `rt` itself uses.

use super::handle::Handle;
use super::shared::WorkerShared;
use crate::blocking::BlockingPool;
use crate::driver::{self, DriverRef, RuntimeInfo};
use crate::task::{self, Executor};
use crate::time::timers::{self, Timers};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

/// Everything one worker owns.
pub(crate) struct Core {
    pub(crate) shared: Arc<WorkerShared>,
    pub(crate) executor: Rc<Executor>,
    pub(crate) driver: DriverRef,
    pub(crate) timers: Rc<RefCell<Timers>>,
    pub(crate) pool: Arc<BlockingPool>,
    pub(crate) handle: Handle,
    pub(crate) info: RuntimeInfo,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
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
    task::current::id()
}

/// True if this thread is running a worker now.
pub(crate) fn is_entered() -> bool {
    current_worker_id() != 0
}

/// Makes `core` current until the guard drops, which restores whatever was current before (so a
/// runtime dropped inside another one's task can still shut down in its own context).
pub(crate) struct EnterGuard {
    previous: Option<Rc<Core>>,
    previous_executor: Option<(u64, Rc<Executor>)>,
    previous_driver: Option<DriverRef>,
    previous_timers: Option<Rc<RefCell<Timers>>>,
    previous_on_worker: bool,
}

pub(crate) fn enter(core: Rc<Core>) -> EnterGuard {
    let previous_executor = task::current::set(Some((core.shared.id, core.executor.clone())));
    let previous_driver = driver::set_current(Some(core.driver.clone()));
    let previous_timers = timers::set_current(Some(core.timers.clone()));
    let previous_on_worker = crate::sync::set_on_worker(true);
    let previous = CURRENT.with(|c| c.borrow_mut().replace(core));
    EnterGuard {
        previous,
        previous_executor,
        previous_driver,
        previous_timers,
        previous_on_worker,
    }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        // Leaving the worker's loop (`block_on` returned): SQEs queued by the last poll — a
        // `MSG_RING` doorbell among them — go out now, not at the next `block_on`.
        if let Some(driver) = with_core(|core| core.driver.clone()) {
            if let Ok(mut driver) = driver.try_borrow_mut() {
                driver.submit_now();
            }
        }
        drop(task::current::set(self.previous_executor.take()));
        drop(driver::set_current(self.previous_driver.take()));
        drop(timers::set_current(self.previous_timers.take()));
        crate::sync::set_on_worker(self.previous_on_worker);
        let previous = self.previous.take();
        let core = CURRENT
            .try_with(|c| std::mem::replace(&mut *c.borrow_mut(), previous))
            .ok()
            .flatten();
        drop(core);
    }
}
