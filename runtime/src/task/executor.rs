//! The per-worker executor: a slab of `!Send` tasks and a local run queue.
//!
//! Invariants: a task's future is only ever polled and dropped on its worker's thread; a header is
//! on the run queue at most once (its `scheduled` flag); the executor never holds a `RefCell`
//! borrow while it polls a future, so tasks may spawn and wake freely.

use super::header::{Mailbox, TaskHeader};
use super::join::{JoinError, JoinGuard, JoinHandle, JoinState};
use slab::Slab;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

type BoxedTask = Pin<Box<dyn Future<Output = ()>>>;

struct TaskSlot {
    header: Arc<TaskHeader>,
    /// `None` while the task is being polled (taken out so the slab is not borrowed meanwhile).
    future: Option<BoxedTask>,
}

/// The tasks of one worker.
pub(crate) struct Executor {
    /// The worker's id and inbox, which every task header carries.
    owner: u64,
    mailbox: Arc<dyn Mailbox>,
    tasks: RefCell<Slab<TaskSlot>>,
    run_queue: RefCell<VecDeque<Arc<TaskHeader>>>,
    spawned: Cell<u64>,
    polled: Cell<u64>,
}

impl Executor {
    /// The executor of worker `owner`, whose wakes from other threads go to `mailbox`.
    pub(crate) fn new(owner: u64, mailbox: Arc<dyn Mailbox>) -> Self {
        Executor {
            owner,
            mailbox,
            tasks: Default::default(),
            run_queue: Default::default(),
            spawned: Default::default(),
            polled: Default::default(),
        }
    }

    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let state = JoinState::new();
        self.spawn_with(future, JoinGuard::new(state.clone()));
        JoinHandle::new(state)
    }

    /// Spawns `future`, whose output goes to `guard` (made by the caller, possibly on another
    /// thread for a remote spawn).
    pub(crate) fn spawn_with<F>(&self, future: F, guard: JoinGuard<F::Output>)
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let join = guard.shared();
        let header = {
            let mut tasks = self.tasks.borrow_mut();
            let entry = tasks.vacant_entry();
            let header = Arc::new(TaskHeader::new(
                entry.key(),
                self.owner,
                self.mailbox.clone(),
            ));
            entry.insert(TaskSlot {
                header: header.clone(),
                future: Some(Box::pin(run_task(future, guard, header.clone()))),
            });
            header
        };
        join.set_task(header.clone());
        self.spawned.set(self.spawned.get() + 1);
        self.run_queue.borrow_mut().push_back(header);
    }

    /// Pushes a woken task of this worker on the run queue.
    pub(crate) fn push_local(&self, header: Arc<TaskHeader>) {
        self.run_queue.borrow_mut().push_back(header);
    }

    pub(crate) fn has_runnable(&self) -> bool {
        !self.run_queue.borrow().is_empty()
    }

    pub(crate) fn task_count(&self) -> usize {
        self.tasks.borrow().len()
    }

    pub(crate) fn counters(&self) -> (u64, u64) {
        (self.spawned.get(), self.polled.get())
    }

    /// Polls at most `budget` runnable tasks; returns true if runnable tasks remain.
    pub(crate) fn run(&self, budget: usize) -> bool {
        for _ in 0..budget {
            let Some(header) = self.run_queue.borrow_mut().pop_front() else {
                return false;
            };
            self.poll_task(header);
        }
        self.has_runnable()
    }

    fn poll_task(&self, header: Arc<TaskHeader>) {
        let future = {
            let mut tasks = self.tasks.borrow_mut();
            match tasks.get_mut(header.key) {
                Some(slot) if Arc::ptr_eq(&slot.header, &header) => slot.future.take(),
                _ => None, // a stale wake of a finished task
            }
        };
        let Some(mut future) = future else { return };
        // Cleared before polling so that a wake during the poll schedules the task again.
        header.start_poll();
        self.polled.set(self.polled.get() + 1);
        crate::coop::reset();
        let waker = Waker::from(header.clone());
        let done = future
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready();
        let mut tasks = self.tasks.borrow_mut();
        if done {
            tasks.remove(header.key);
        } else if let Some(slot) = tasks.get_mut(header.key) {
            slot.future = Some(future);
        }
    }

    /// Drops every task (runtime shutdown). Futures are dropped outside the slab borrow, so their
    /// destructors may wake or even spawn; tasks spawned meanwhile are dropped in the next round.
    pub(crate) fn drop_all(&self) {
        loop {
            let drained: Vec<TaskSlot> = self.tasks.borrow_mut().drain().collect();
            if drained.is_empty() {
                break;
            }
            for task in drained {
                // One at a time, each caught: a second panicking destructor while the first
                // unwinds would abort the process, and the shutdown must go on to drain the
                // driver either way.
                let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(task)));
                if dropped.is_err() {
                    crate::log::warning!("a task's destructor panicked while the worker shut down");
                }
            }
        }
        self.run_queue.borrow_mut().clear();
    }
}

/// The body of every task: polls the user's future, and turns abort and panics into the
/// [`JoinError`] its handle sees. A panic is caught here so it never unwinds through the worker.
async fn run_task<F: Future>(future: F, guard: JoinGuard<F::Output>, header: Arc<TaskHeader>) {
    // The future is dropped at the end of this block, before the result is published: its
    // destructors (cancellations, closes) run before the joiner observes completion.
    let output = {
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(|cx| {
            // The header's flag, not the join state's: see `TaskHeader::aborted`.
            if header.is_aborted() {
                return Poll::Ready(Err(JoinError::cancelled()));
            }
            match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
                Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
                Ok(Poll::Pending) => Poll::Pending,
                Err(payload) => Poll::Ready(Err(JoinError::panic(payload))),
            }
        })
        .await
    };
    guard.finish(output);
}
