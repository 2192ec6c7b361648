//! [`TaskHeader`]: the `Send + Sync` identity of a task, and its waker.

use super::current;
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
    /// Set by `JoinHandle::abort` (through the join state); read before every poll. Here and not
    /// only in the join state because the poll has just touched this header, while the join
    /// state is a separate allocation: a cache miss per poll with many tasks.
    pub(crate) aborted: AtomicBool,
    /// Id of the worker that owns the task.
    pub(crate) owner: u64,
    /// Where a wake from another thread goes: the owner's inbox.
    pub(crate) mailbox: Arc<dyn Mailbox>,
}

/// A worker's inbox as the task layer sees it: where wakes from other threads go.
pub(crate) trait Mailbox: Send + Sync + 'static {
    /// Queues `task` for its worker and wakes the worker; drops it if the worker is gone (the
    /// task went with it).
    fn wake(&self, task: Arc<TaskHeader>);
}

impl TaskHeader {
    fn schedule(self: Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        if current::id() == self.owner {
            let pushed = current::with(|executor| executor.push_local(self.clone()));
            if pushed.is_some() {
                return;
            }
        }
        // Another thread, or the worker's context is being torn down: go through the inbox.
        let mailbox = self.mailbox.clone();
        mailbox.wake(self);
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
