//! [`TaskHeader`]: the `Send + Sync` identity of a task, and its waker.

use super::current;
use crate::sync::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Wake;

/// What a waker needs to put a task back on its worker's run queue.
pub(crate) struct TaskHeader {
    /// Key of the task's slot in its executor's slab (checked against the slot's header on pop,
    /// so a stale wake of a finished task never polls the task that reused the slot).
    pub(crate) key: usize,
    /// Set while the task sits in a run queue or inbox, so a burst of wakes enqueues it once.
    scheduled: AtomicBool,
    /// Set by `JoinHandle::abort` (through the join state); read before every poll. Here and not
    /// only in the join state because the poll has just touched this header, while the join
    /// state is a separate allocation: a cache miss per poll with many tasks.
    aborted: AtomicBool,
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
    /// The header of task `key` of worker `owner`, scheduled (a new task is queued at once).
    pub(crate) fn new(key: usize, owner: u64, mailbox: Arc<dyn Mailbox>) -> Self {
        TaskHeader {
            key,
            scheduled: AtomicBool::new(true),
            aborted: AtomicBool::new(false),
            owner,
            mailbox,
        }
    }

    /// Called by the worker as it takes the task from its run queue to poll it: a wake from
    /// now on queues the task again. A read-modify-write, not a store: if an `abort`'s wake
    /// found the flag still set and so queued nothing, this reads from that wake's swap and
    /// so sees the abort flag stored before it (a plain store and a later load of the flag
    /// could be reordered, and the abort lost until the task's next wake).
    pub(crate) fn start_poll(&self) {
        self.scheduled.swap(false, Ordering::AcqRel);
    }

    /// True once [`TaskHeader::abort`] ran (read before every poll).
    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    /// Marks the task aborted without waking it (it is not queued or polled yet).
    pub(crate) fn mark_aborted(&self) {
        self.aborted.store(true, Ordering::Release);
    }

    /// Marks the task aborted and wakes it, so that its worker drops it.
    pub(crate) fn abort(self: Arc<Self>) {
        self.mark_aborted();
        self.schedule();
    }

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
