//! The blocking pool: threads for work that would block a worker (file and path syscalls on the
//! epoll driver, opcodes the ring lacks, and user closures through [`spawn_blocking`]).
//!
//! Threads are started on demand up to a bound and exit after being idle for a while. Jobs queued
//! when the runtime shuts down still run; operations whose worker is gone are leaked rather than
//! dropped on a foreign thread (see `driver::SendOp`).

use crate::driver::SendOp;
use crate::rt::affinity::CpuSet;
use crate::rt::shared::WorkerShared;
use crate::sync::{thread, Condvar, Mutex, MutexGuard};
use crate::task::{JoinError, JoinGuard, JoinHandle, JoinState};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Work for a pool thread.
pub(crate) enum Job {
    /// A driver operation; its completion goes back to the worker.
    Op(SendOp, u64, Arc<WorkerShared>),
    /// A user closure from `spawn_blocking`.
    Closure(Box<dyn FnOnce() + Send>),
}

impl Job {
    /// Runs the job; a user closure with `user_mask`, the signal mask its thread started with.
    fn run(self, user_mask: &libc::sigset_t) {
        match self {
            Job::Op(op, user_data, worker) => op.run(user_data, &worker),
            Job::Closure(f) => crate::rt::signals::with_mask(user_mask, f),
        }
    }
}

struct State {
    queue: VecDeque<Job>,
    threads: usize,
    /// Threads waiting for work that no job has claimed yet. A job that wakes one takes it out
    /// of this count at once, so the next job (pushed before the woken thread runs) does not
    /// count on the same thread and starts another: counting a thread as idle until it wakes
    /// up queued a burst behind it, and a job waiting for a later one deadlocked.
    idle: usize,
    /// Wake-ups sent to idle threads and not yet taken by one.
    notified: usize,
    shutdown: bool,
}

/// A bounded, elastic pool of threads.
pub(crate) struct BlockingPool {
    state: Mutex<State>,
    work: Condvar,
    exited: Condvar,
    max_threads: usize,
    keep_alive: Duration,
    name: String,
    /// Where pool threads run when the workers are pinned: the building thread's affinity
    /// before it was pinned. Otherwise they inherit the spawning worker's (unpinned) affinity.
    cpus: Option<CpuSet>,
}

impl BlockingPool {
    pub(crate) fn new(
        max_threads: usize,
        keep_alive: Duration,
        name: String,
        cpus: Option<CpuSet>,
    ) -> Arc<Self> {
        Arc::new(BlockingPool {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                threads: 0,
                idle: 0,
                notified: 0,
                shutdown: false,
            }),
            work: Condvar::new(),
            exited: Condvar::new(),
            max_threads: max_threads.max(1),
            keep_alive,
            name,
            cpus,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a job; gives it back if the pool is shut down or no thread can be started.
    pub(crate) fn spawn(self: &Arc<Self>, job: Job) -> Result<(), Job> {
        let mut state = self.lock();
        if state.shutdown {
            return Err(job);
        }
        state.queue.push_back(job);
        if state.idle > 0 {
            state.idle -= 1;
            state.notified += 1;
            self.work.notify_one();
            return Ok(());
        }
        if state.threads < self.max_threads {
            let pool = self.clone();
            let started = thread::Builder::new()
                .name(self.name.clone())
                .spawn(move || pool.thread_main());
            match started {
                Ok(_) => state.threads += 1,
                Err(e) if state.threads == 0 => {
                    crate::log::warning!("cannot start a blocking thread: {e}");
                    let job = state.queue.pop_back().expect("pushed above");
                    return Err(job);
                }
                // Some thread exists and will get to the job.
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// Runs `op` on the pool; its completion goes to `worker`'s inbox under `user_data`.
    /// Gives the op back if the pool refuses it.
    pub(crate) fn spawn_op(
        self: &Arc<Self>,
        op: SendOp,
        user_data: u64,
        worker: Arc<WorkerShared>,
    ) -> Result<(), SendOp> {
        self.spawn(Job::Op(op, user_data, worker))
            .map_err(|job| match job {
                Job::Op(op, ..) => op,
                Job::Closure(_) => unreachable!("spawn gives back the job it was given"),
            })
    }

    fn thread_main(self: Arc<Self>) {
        let user_mask = crate::rt::signals::block_async_for_this_thread();
        if let Some(cpus) = &self.cpus {
            // Started by a pinned worker: run beside it, not on its core.
            if let Err(e) = cpus.apply_to_current_thread() {
                crate::log::warning!("blocking thread stays on its worker's CPU: {e}");
            }
        }
        let mut state = self.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                job.run(&user_mask);
                state = self.lock();
                continue;
            }
            if state.shutdown {
                break;
            }
            state.idle += 1;
            let deadline = Instant::now() + self.keep_alive;
            let woken = loop {
                let now = Instant::now();
                let (s, wait) = self
                    .work
                    .wait_timeout(state, deadline.saturating_duration_since(now))
                    .unwrap_or_else(|e| e.into_inner());
                state = s;
                if state.notified > 0 {
                    // A job's wake-up (maybe meant for another thread: it is the same work);
                    // `spawn` already took this thread out of `idle`.
                    state.notified -= 1;
                    break true;
                }
                if state.shutdown || wait.timed_out() {
                    state.idle -= 1;
                    break false;
                }
                // A spurious wake-up: keep waiting.
            };
            if !woken && !state.shutdown && state.queue.is_empty() {
                break;
            }
        }
        state.threads -= 1;
        self.exited.notify_all();
    }

    /// Stops accepting jobs, lets queued ones finish, and waits up to `timeout` for the threads.
    pub(crate) fn shutdown(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        state.shutdown = true;
        self.work.notify_all();
        while state.threads > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .exited
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Threads currently alive (busy or idle).
    pub(crate) fn threads(&self) -> usize {
        self.lock().threads
    }
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
    let pool = crate::rt::context::with_core(|core| core.pool.clone())
        .expect("hoop::spawn_blocking called outside a hoop runtime");
    let state = JoinState::new();
    let guard = JoinGuard::new(state.clone());
    let job = Job::Closure(Box::new(move || {
        if guard.state().is_aborted() {
            return; // the guard reports the cancellation
        }
        let out = catch_unwind(AssertUnwindSafe(f)).map_err(JoinError::panic);
        guard.finish(out);
    }));
    // A refused job is dropped here, and its guard reports "cancelled" to the handle.
    let _ = pool.spawn(job);
    JoinHandle::new(state)
}
