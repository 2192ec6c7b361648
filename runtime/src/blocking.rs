//! The blocking pool: threads for work that would block a worker (file and path syscalls on the
//! epoll driver, opcodes the ring lacks, and user closures through `spawn_blocking`).
//!
//! It runs jobs and knows nothing of what they are: the driver hands it operations as jobs of
//! its own (`driver::pooled`), users hand it closures. Threads are started on demand up to a
//! bound and exit after being idle for a while. Jobs queued when the runtime shuts down still
//! run.

use crate::sync::{thread, Condvar, Mutex, MutexGuard};
use crate::sys::{affinity::CpuSet, signals};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Work for a pool thread: any `FnOnce() + Send` closure, or a type of the runtime's own (which
/// the pool can give back whole when it refuses it).
pub(crate) trait Job: Send + 'static {
    /// Runs the job on a pool thread.
    fn run(self: Box<Self>);
}

impl<F: FnOnce() + Send + 'static> Job for F {
    fn run(self: Box<Self>) {
        (*self)()
    }
}

/// A queued job, and whether it is a user's (run with the signal mask its thread started with)
/// or the runtime's (run with asynchronous signals blocked, like the rest of the thread).
struct Queued {
    job: Box<dyn Job>,
    user: bool,
}

impl Queued {
    fn run(self, user_mask: &libc::sigset_t) {
        if self.user {
            signals::with_mask(user_mask, || self.job.run());
        } else {
            self.job.run();
        }
    }
}

struct State {
    queue: VecDeque<Queued>,
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

    /// Queues a job of the runtime's; gives it back if the pool is shut down or no thread can
    /// be started.
    pub(crate) fn spawn<J: Job>(self: &Arc<Self>, job: J) -> Result<(), J> {
        self.queue(job, false)
    }

    /// Queues a user's closure (it runs with the signal mask the user's threads have).
    pub(crate) fn spawn_user<J: Job>(self: &Arc<Self>, job: J) -> Result<(), J> {
        self.queue(job, true)
    }

    fn queue<J: Job>(self: &Arc<Self>, job: J, user: bool) -> Result<(), J> {
        let mut state = self.lock();
        if state.shutdown {
            return Err(job);
        }
        if state.idle > 0 {
            state.idle -= 1;
            state.notified += 1;
            self.work.notify_one();
        } else if state.threads < self.max_threads {
            // The new thread waits for the lock, so the job is queued before it looks.
            let pool = self.clone();
            let started = thread::Builder::new()
                .name(self.name.clone())
                .spawn(move || pool.thread_main());
            match started {
                Ok(_) => state.threads += 1,
                Err(e) if state.threads == 0 => {
                    crate::log::warning!("cannot start a blocking thread: {e}");
                    return Err(job);
                }
                // Some thread exists and will get to the job.
                Err(_) => {}
            }
        }
        state.queue.push_back(Queued {
            job: Box::new(job),
            user,
        });
        Ok(())
    }

    fn thread_main(self: Arc<Self>) {
        let user_mask = signals::block_async_for_this_thread();
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
