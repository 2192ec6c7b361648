//! [`Runtime`]: n workers, each a thread with its own executor, driver and timers.
//!
//! Worker 0 is the thread that builds the runtime and calls [`Runtime::block_on`] or
//! [`Runtime::run`]; workers 1..n are threads the runtime starts, which serve spawns sent to them
//! through a [`Handle`] until the runtime is dropped. Every worker uses the same backend: the
//! first one chooses (see [`DriverChoice`]) and the others follow its choice.

mod builder;
pub(crate) mod context;
mod handle;
mod move_fd;
pub(crate) mod shared;
mod spawn;
mod worker;

pub use builder::{Builder, DEFAULT_MAX_IN_FLIGHT};
pub use handle::Handle;
pub use spawn::{spawn, spawn_blocking};

use crate::blocking::BlockingPool;
use crate::driver::{
    select_backend, DriverChoice, DriverConfig, DriverKind, IoDriver, RuntimeInfo, Selection,
};
use crate::sys::{affinity::CpuSet, signals};
use crate::task::Executor;
use crate::time::timers::Timers;
use context::Core;
use shared::{Remote, WorkerShared};
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle as ThreadHandle;
use std::time::Duration;

/// A thread-per-core runtime. `!Send`: it lives on the thread that built it, which is worker 0.
pub struct Runtime {
    local: Rc<Core>,
    threads: Vec<ThreadHandle<()>>,
    handle: Handle,
    pool: Arc<BlockingPool>,
    shutdown_timeout: Duration,
    /// The building thread's affinity before it was pinned as worker 0, given back on drop.
    unpin: Option<CpuSet>,
    /// `SIGPIPE` stays blocked on the building thread (worker 0) for the runtime's whole life:
    /// without `DEFER_TASKRUN` (before 6.1) its ring's task work also runs on that thread's
    /// syscalls outside `block_on`. Declared last: restored after everything else is dropped.
    _sigpipe: signals::Blocked,
}

struct WorkerConfig {
    driver: DriverConfig,
    pin: Option<usize>,
    shutdown_timeout: Duration,
}

impl Runtime {
    /// A runtime with the default [`Builder`] settings.
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// A builder to configure a runtime.
    pub fn builder() -> Builder {
        Builder::new()
    }

    fn from_builder(b: &Builder) -> io::Result<Runtime> {
        // Pinned workers keep their blocking-pool threads on every CPU the process may use:
        // inherited, a worker's pin would confine them to its own core. (io-wq threads cannot
        // be widened this way: see `Builder::pin_cpus`.)
        let process_cpus = if b.pin_cpus {
            CpuSet::of_current_thread().ok()
        } else {
            None
        };
        let cpus = process_cpus.as_ref().map_or_else(Vec::new, CpuSet::cpus);
        let cpu_of = |i: usize| (!cpus.is_empty()).then(|| cpus[i % cpus.len()]);
        let pool = BlockingPool::new(
            b.max_blocking_threads,
            b.blocking_keep_alive,
            format!("{}-blocking", b.thread_name),
            process_cpus,
        );
        let shared = (0..b.workers)
            .map(WorkerShared::new)
            .collect::<io::Result<Vec<_>>>()?;
        let driver_config = b.driver_config();

        // Worker 0 chooses the backend; the others are told to use the same.
        let selection = select_backend(
            b.driver,
            &driver_config,
            shared[0].doorbell_fd(),
            b.uring_fault,
        )?;
        let kind = selection.kind();
        let info = RuntimeInfo {
            driver: kind,
            reason: selection.reason.clone(),
            uring_setup: selection.setup.clone(),
            workers: b.workers,
            kernel: crate::driver::kernel_release(),
        };
        tracing::info!(
            target: "hoop",
            workers = info.workers,
            driver = %info.driver,
            reason = %info.reason,
            setup = %info.uring_setup,
            "runtime started"
        );
        let handle = Handle::new(shared.clone(), info.clone());
        let unpin = match cpu_of(0) {
            Some(cpu) => {
                CpuSet::single(cpu).apply_to_current_thread()?;
                process_cpus
            }
            None => None,
        };
        let local = assemble(selection, &shared[0], &pool, &handle, &b.driver_config());

        let forced = match kind {
            DriverKind::IoUring => DriverChoice::IoUring,
            DriverKind::Epoll => DriverChoice::Epoll,
        };
        let (tx, rx) = mpsc::channel::<io::Result<()>>();
        let mut threads = Vec::new();
        for (i, worker_shared) in shared.iter().enumerate().skip(1) {
            let (tx, ws) = (tx.clone(), worker_shared.clone());
            let (thread_pool, thread_handle) = (pool.clone(), handle.clone());
            let config = WorkerConfig {
                driver: driver_config.clone(),
                pin: cpu_of(i),
                shutdown_timeout: b.shutdown_timeout,
            };
            let thread = std::thread::Builder::new()
                .name(format!("{}-worker-{i}", b.thread_name))
                .spawn(move || worker_thread(forced, config, ws, thread_pool, thread_handle, tx));
            match thread {
                Ok(t) => threads.push(t),
                Err(e) => {
                    let rt =
                        Runtime::partial(local, threads, handle, pool, b.shutdown_timeout, unpin);
                    drop(rt);
                    return Err(e);
                }
            }
        }
        drop(tx);
        let mut first_error = None;
        for _ in 1..b.workers {
            match rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error
                        .get_or_insert(io::Error::other("a worker thread died while starting"));
                }
            }
        }
        let rt = Runtime::partial(local, threads, handle, pool, b.shutdown_timeout, unpin);
        match first_error {
            Some(e) => Err(e),
            None => Ok(rt),
        }
    }

    fn partial(
        local: Rc<Core>,
        threads: Vec<ThreadHandle<()>>,
        handle: Handle,
        pool: Arc<BlockingPool>,
        shutdown_timeout: Duration,
        unpin: Option<CpuSet>,
    ) -> Runtime {
        Runtime {
            local,
            threads,
            handle,
            pool,
            shutdown_timeout,
            unpin,
            _sigpipe: signals::Blocked::new(),
        }
    }

    /// Runs `future` on worker 0 (this thread) until it completes, serving the worker's other
    /// tasks meanwhile.
    ///
    /// # Panics
    ///
    /// Panics if called from inside a hoop runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        worker::block_on(&self.local, future)
    }

    /// Runs `make(i)` on every worker `i` and returns the outputs in worker order: the way to
    /// start a thread-per-core server (each worker binding its own `SO_REUSEPORT` listener).
    /// A panic on any worker is resumed here.
    pub fn run<M, F>(&self, make: M) -> Vec<F::Output>
    where
        M: Fn(usize) -> F + Send + Sync + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        let make = Arc::new(make);
        let remote: Vec<_> = (1..self.handle.workers())
            .map(|i| {
                let make = make.clone();
                self.handle.spawn_on_with(i, move || make(i))
            })
            .collect();
        self.block_on(async move {
            let mut out = Vec::with_capacity(remote.len() + 1);
            out.push(make(0).await);
            for (i, h) in remote.into_iter().enumerate() {
                match h.await {
                    Ok(v) => out.push(v),
                    Err(e) => match e.try_into_panic() {
                        Ok(p) => std::panic::resume_unwind(p),
                        Err(e) => panic!("worker {} did not finish: {e}", i + 1),
                    },
                }
            }
            out
        })
    }

    /// A `Send + Sync` handle to spawn on any worker from any thread.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// What the runtime chose: backend, reason, setup flags.
    pub fn info(&self) -> &RuntimeInfo {
        self.handle.info()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for (i, shared) in self.handle.shared().iter().enumerate().skip(1) {
            if shared.push_now(Remote::Shutdown).is_err() {
                tracing::debug!(target: "hoop", worker = i, "worker already stopped");
            }
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        worker::shutdown(&self.local, self.shutdown_timeout);
        self.pool.shutdown(self.shutdown_timeout);
        if let Some(cpus) = self.unpin {
            if let Err(e) = cpus.apply_to_current_thread() {
                crate::log::warning!("cannot restore the thread's CPU affinity: {e}");
            }
        }
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("info", self.info())
            .finish()
    }
}

fn assemble(
    selection: Selection,
    shared: &Arc<WorkerShared>,
    pool: &Arc<BlockingPool>,
    handle: &Handle,
    config: &DriverConfig,
) -> Rc<Core> {
    let mut driver = IoDriver::new(selection, pool.clone(), shared.clone(), config);
    if let Some(fd) = driver.message_ring_fd() {
        if let Err(e) = shared.set_message_ring(fd) {
            tracing::debug!(target: "hoop", error = %e, "no MSG_RING doorbell for this worker");
        } else if handle.workers() > 1 && driver.prepare_direct_table() {
            // Other workers may move direct descriptors here (`Handle::spawn_on_with_fd`): the
            // table must exist before the first arrives.
            if let Some(budget) = driver.direct_budget() {
                shared.set_fd_budget(budget);
            }
        }
    }
    Rc::new(Core {
        shared: shared.clone(),
        executor: Rc::new(Executor::new(shared.id, shared.clone())),
        driver: Rc::new(RefCell::new(driver)),
        timers: Rc::new(RefCell::new(Timers::default())),
        pool: pool.clone(),
        handle: handle.clone(),
        info: handle.info().clone(),
    })
}

fn worker_thread(
    driver: DriverChoice,
    config: WorkerConfig,
    shared: Arc<WorkerShared>,
    pool: Arc<BlockingPool>,
    handle: Handle,
    ready: mpsc::Sender<io::Result<()>>,
) {
    signals::block_sigpipe_for_this_thread();
    let started = (|| {
        if let Some(cpu) = config.pin {
            CpuSet::single(cpu).apply_to_current_thread()?;
        }
        let selection = select_backend(driver, &config.driver, shared.doorbell_fd(), None)?;
        Ok(assemble(selection, &shared, &pool, &handle, &config.driver))
    })();
    match started {
        Ok(core) => {
            // Running from now on, for `Handle::spawn` (before `ready`: the builder's first
            // spawn may follow at once).
            core.shared.set_running(true);
            let _ = ready.send(Ok(()));
            drop(ready);
            worker::serve(core, config.shutdown_timeout);
        }
        Err(e) => {
            shared.close();
            let _ = ready.send(Err(e));
        }
    }
}

/// Runs `future` to completion on a new single-worker runtime (default backend selection).
///
/// The quickest way to run async code; build a [`Runtime`] to choose workers and backend.
///
/// # Panics
///
/// Panics if the runtime cannot be built (for example when the process is out of fds) or if
/// called from inside a hoop runtime.
///
/// ```
/// let answer = hoop_runtime::block_on(async { 6 * 7 });
/// assert_eq!(answer, 42);
/// ```
#[track_caller]
pub fn block_on<F: Future>(future: F) -> F::Output {
    let rt = Builder::new()
        .workers(1)
        .build()
        .unwrap_or_else(|e| panic!("hoop: cannot build a runtime: {e}"));
    rt.block_on(future)
}

/// What the current runtime chose (backend, reason, setup flags); `None` outside a runtime.
pub fn runtime_info() -> Option<RuntimeInfo> {
    context::with_core(|core| core.info.clone())
}

/// Index of the worker running the current task (0-based); `None` outside a runtime.
pub fn worker_index() -> Option<usize> {
    context::with_core(|core| core.shared.index)
}
