//! [`TaskHeader`]: the `Send + Sync` identity of a task, and its waker.

use crate::rt::context;
use crate::rt::shared::{Remote, WorkerShared};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Wake;

/// What a waker needs to put a task back on its worker's run queue.
pub(crate) struct TaskHeader {
    /// Key of the task's slot in its executor's slab (checked against the slot's header on pop,
    /// so a stale wake of a finished task never polls the task that reused the slot).
    pub(crate) key: usize,
    /// Set while the task sits in a run queue or inbox, so a burst of wakes enqueues it once.
    pub(crate) scheduled: AtomicBool,
    /// The worker that owns the task.
    pub(crate) worker: Arc<WorkerShared>,
}

impl TaskHeader {
    fn schedule(self: Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        if context::current_worker_id() == self.worker.id {
            let pushed = context::with_core(|core| core.executor.push_local(self.clone()));
            if pushed.is_some() {
                return;
            }
        }
        // Another thread, or the worker's context is being torn down: go through the inbox. A
        // refused push means the worker is gone and the task with it; dropping the header is fine.
        let worker = self.worker.clone();
        let _ = worker.push(Remote::Wake(self));
    }
}

impl Wake for TaskHeader {
    fn wake(self: Arc<Self>) {
        self.schedule();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.clone().schedule();
    }
}
