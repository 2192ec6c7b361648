//! [`Handle`]: a `Send + Sync` reference to a runtime, to spawn work on any of its workers from
//! any thread.

use super::context;
use super::shared::{Remote, WorkerShared};
use crate::driver::RuntimeInfo;
use crate::task::{JoinError, JoinGuard, JoinHandle, JoinState};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// A cloneable, `Send + Sync` handle to a runtime's workers.
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

struct Inner {
    workers: Vec<Arc<WorkerShared>>,
    info: RuntimeInfo,
    /// Where `spawn` starts looking, so equal loads take turns.
    next: std::sync::atomic::AtomicUsize,
}

impl Handle {
    pub(crate) fn new(workers: Vec<Arc<WorkerShared>>, info: RuntimeInfo) -> Self {
        Handle {
            inner: Arc::new(Inner {
                workers,
                info,
                next: Default::default(),
            }),
        }
    }

    /// The handle of the runtime running the current thread, if any.
    pub fn try_current() -> Option<Handle> {
        context::with_core(|core| core.handle.clone())
    }

    /// The handle of the runtime running the current thread.
    ///
    /// # Panics
    ///
    /// Panics outside a hoop runtime.
    #[track_caller]
    pub fn current() -> Handle {
        Self::try_current().expect("hoop::Handle::current called outside a hoop runtime")
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.inner.workers.len()
    }

    /// What the runtime chose: backend, reason, setup flags.
    pub fn info(&self) -> &RuntimeInfo {
        &self.inner.info
    }

    /// Spawns a `Send` future on the least loaded worker (the fewest tasks alive as of its last
    /// tick; equal loads take turns), from any thread, and returns a handle to await its output
    /// from anywhere. Worker 0 (the thread that built the runtime) is chosen only while it runs
    /// `block_on`, or if no worker runs: a task there waits for the next `block_on`.
    ///
    /// ```
    /// let rt = hoop_runtime::Runtime::builder().workers(2).build().unwrap();
    /// let handle = rt.handle().clone();
    /// let sum = rt.block_on(async move {
    ///     let parts: Vec<_> = (0..4u64).map(|i| handle.spawn(async move { i * 10 })).collect();
    ///     let mut sum = 0;
    ///     for p in parts {
    ///         sum += p.await.unwrap();
    ///     }
    ///     sum
    /// });
    /// assert_eq!(sum, 60);
    /// ```
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_on(self.least_loaded(), future)
    }

    /// Spawns, on the least loaded worker, the future `make` builds there: the way to spread
    /// work whose future is not `Send` (it holds hoop I/O objects or timers, which belong to
    /// their worker); only `make` and the output cross threads.
    #[track_caller]
    pub fn spawn_with<M, F>(&self, make: M) -> JoinHandle<F::Output>
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_on_with(self.least_loaded(), make)
    }

    /// The worker with the fewest tasks alive as of its last tick, among those running their
    /// loop (worker 0 runs only inside `block_on`); equal loads take turns.
    fn least_loaded(&self) -> usize {
        let workers = &self.inner.workers;
        let start = self
            .inner
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let target = (0..workers.len())
            .map(|i| (start + i) % workers.len())
            .min_by_key(|&i| (!workers[i].is_running(), workers[i].load()))
            .unwrap_or(0);
        workers[target].add_load();
        target
    }

    /// Spawns a `Send` future on worker `worker` (0-based), from any thread. The wake-up reaches
    /// that worker even while it is parked in the kernel.
    ///
    /// ```
    /// let rt = hoop_runtime::Runtime::builder().workers(2).build().unwrap();
    /// let handle = rt.handle().clone();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// // From a thread of its own: worker 1 runs its loop whether or not `block_on` runs.
    /// std::thread::spawn(move || {
    ///     let task = handle.spawn_on(1, async move {
    ///         tx.send(hoop_runtime::worker_index()).unwrap();
    ///     });
    ///     task.detach();
    /// })
    /// .join()
    /// .unwrap();
    /// assert_eq!(rx.recv().unwrap(), Some(1));
    /// # drop(rt);
    /// ```
    ///
    /// # Panics
    ///
    /// Panics if `worker >= self.workers()`.
    #[track_caller]
    pub fn spawn_on<F>(&self, worker: usize, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_on_with(worker, move || future)
    }

    /// Spawns, on worker `worker`, the future that `make` builds there. The future itself need
    /// not be `Send` (it may hold hoop I/O objects, which belong to their worker); only `make`
    /// and the output cross threads. A task aborted before it reaches its worker never runs
    /// `make` (it is dropped there).
    ///
    /// # Panics
    ///
    /// Panics if `worker >= self.workers()`.
    #[track_caller]
    pub fn spawn_on_with<M, F>(&self, worker: usize, make: M) -> JoinHandle<F::Output>
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_remote(worker, make, || {})
    }

    /// [`Handle::spawn_on_with`], with `aborted` run on the worker instead of `make` when the
    /// task was aborted on its way there: for what `make` would have taken over that its drop
    /// does not release (a descriptor in the worker's table, which only that worker can adopt).
    #[track_caller]
    pub(crate) fn spawn_remote<M, F>(
        &self,
        worker: usize,
        make: M,
        aborted: impl FnOnce() + Send + 'static,
    ) -> JoinHandle<F::Output>
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        let count = self.workers();
        let shared = self
            .inner
            .workers
            .get(worker)
            .unwrap_or_else(|| panic!("worker {worker} out of range: the runtime has {count}"));
        let state = JoinState::new();
        let guard = JoinGuard::new(state.clone());
        let spawn = Box::new(move || {
            if guard.state().is_aborted() {
                // Aborted on its way here: `make` never runs (what it holds is dropped with it,
                // on this worker), and the guard reports "cancelled".
                aborted();
                return;
            }
            // `make` is user code running in the worker's loop: its panic is the task's, not
            // the worker's.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(make)) {
                Ok(future) => {
                    context::with_core(|core| core.executor.spawn_with(future, guard));
                }
                Err(payload) => guard.finish(Err(JoinError::panic(payload))),
            }
        });
        // A refused spawn (worker gone) drops the closure, and its guard reports "cancelled".
        let _ = shared.push(Remote::Spawn(spawn));
        JoinHandle::new(state)
    }

    pub(crate) fn shared(&self) -> &[Arc<WorkerShared>] {
        &self.inner.workers
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.workers())
            .field("driver", &self.inner.info.driver)
            .finish()
    }
}
