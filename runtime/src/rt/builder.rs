//! [`Builder`]: how many workers, pinned or not, ring size, backend, blocking pool bounds.

use super::Runtime;
use crate::driver::DriverChoice;
use crate::driver::{DriverConfig, OpClass};
use std::io;
use std::time::Duration;

/// Configures and builds a [`Runtime`].
///
/// ```
/// use hoop_runtime::{DriverChoice, Runtime};
/// let rt = Runtime::builder().workers(2).entries(128).driver(DriverChoice::Auto).build().unwrap();
/// let per_worker = rt.run(|worker| async move { worker * 10 });
/// assert_eq!(per_worker, vec![0, 10]);
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    pub(crate) workers: usize,
    pub(crate) pin_cpus: bool,
    pub(crate) entries: u32,
    pub(crate) driver: DriverChoice,
    pub(crate) thread_name: String,
    pub(crate) max_blocking_threads: usize,
    pub(crate) blocking_keep_alive: Duration,
    pub(crate) shutdown_timeout: Duration,
    /// Test hook: make io_uring setup fail with this errno.
    pub(crate) uring_fault: Option<i32>,
    pub(crate) restrict: Option<Vec<OpClass>>,
    pub(crate) max_in_flight: usize,
    pub(crate) io_wq_max_workers: Option<[u32; 2]>,
    pub(crate) msg_ring: bool,
    pub(crate) direct_descriptors: u32,
    pub(crate) spin: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pin_cpus: false,
            entries: 256,
            driver: DriverChoice::Auto,
            thread_name: "hoop".into(),
            max_blocking_threads: 512,
            blocking_keep_alive: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
            uring_fault: None,
            restrict: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            io_wq_max_workers: None,
            msg_ring: true,
            direct_descriptors: DEFAULT_DIRECT_DESCRIPTORS,
            spin: Duration::ZERO,
        }
    }
}

impl Builder {
    /// A builder with the defaults: one worker per available core, not pinned, 256 SQ entries,
    /// `DriverChoice::Auto`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of workers (at least 1). Worker 0 is the thread that calls `block_on`/`run`; the
    /// others are threads the runtime starts.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Pins worker `i` to the `i`-th CPU the process may run on (wrapping around). Worker 0 is
    /// the building thread, which gets pinned too and gets its former affinity back when the
    /// runtime is dropped.
    ///
    /// Blocking-pool threads (file and path syscalls on the epoll driver, [`spawn_blocking`])
    /// run on every CPU the process may use, not on the core of the worker that started them.
    /// io-wq threads (io_uring's own workers for `statx`, `openat` and I/O that must wait) stay
    /// on their worker's CPU: they inherit the pinned thread's requested affinity, which the
    /// kernel (since 6.2) intersects with any mask given for them, so
    /// `IORING_REGISTER_IOWQ_AFF` can narrow it but not widen it.
    ///
    /// [`spawn_blocking`]: crate::spawn_blocking
    pub fn pin_cpus(mut self, pin: bool) -> Self {
        self.pin_cpus = pin;
        self
    }

    /// Submission queue entries per ring (rounded up to a power of two; the completion queue is
    /// twice as large). More entries are flushed in batches when the SQ fills.
    pub fn entries(mut self, n: u32) -> Self {
        self.entries = n.max(1);
        self
    }

    /// The backend: `Auto` (default), `IoUring` or `Epoll`.
    pub fn driver(mut self, driver: DriverChoice) -> Self {
        self.driver = driver;
        self
    }

    /// Prefix of the worker and blocking thread names.
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Upper bound on blocking-pool threads (default 512).
    pub fn max_blocking_threads(mut self, n: usize) -> Self {
        self.max_blocking_threads = n.max(1);
        self
    }

    /// How long an idle blocking thread waits for work before exiting (default 10 s).
    pub fn blocking_keep_alive(mut self, d: Duration) -> Self {
        self.blocking_keep_alive = d;
        self
    }

    /// How long dropping the runtime waits for cancelled operations to complete before leaking
    /// their memory (default 10 s).
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.shutdown_timeout = d;
        self
    }

    /// Builds the runtime: one ring (or epoll instance) per worker, created on its own thread.
    pub fn build(&self) -> io::Result<Runtime> {
        Runtime::from_builder(self)
    }
}

/// The default bound on operations in flight per worker.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 65_536;

/// The default of [`Builder::direct_descriptors`].
const DEFAULT_DIRECT_DESCRIPTORS: u32 = 16_384;

impl Builder {
    /// Creates every io_uring disabled, registers an allowlist of opcodes — the runtime's own
    /// (cancel, poll, nop, close) plus those of `classes`, as far as the kernel has them — and
    /// only then enables it (`IORING_REGISTER_RESTRICTIONS`, Linux 5.10). An operation outside
    /// the list fails with `EACCES` instead of reaching the kernel code behind it, also one that
    /// would run outside the ring (no opcode, or one the kernel lacks: the blocking pool or a
    /// syscall on the worker): a sandboxed server narrows what its rings can be made to do.
    /// Registered buffers, buffer rings and personalities stay allowed. With [`DriverChoice::IoUring`], a kernel that cannot restrict rings makes `build`
    /// fail; with [`DriverChoice::Auto`] it falls back to epoll (no io_uring at all). No effect on
    /// epoll.
    pub fn restrict_to(mut self, classes: &[OpClass]) -> Self {
        self.restrict = Some(classes.to_vec());
        self
    }

    /// Bounds the operations each worker has in the kernel or on the blocking pool at once
    /// (default [`DEFAULT_MAX_IN_FLIGHT`]). Past it, a new operation waits until one finishes,
    /// so a flood of clients cannot make the kernel allocate without limit; waits are counted in
    /// [`WorkerMetrics::ops_throttled`](crate::WorkerMetrics::ops_throttled). Dropped operations
    /// count until their final completion. Set it well above what one task needs at once: tasks
    /// that wait for each other's operations (a reader and the writer that feeds it) could
    /// otherwise wait forever. On epoll, sockets waiting for readiness take no slot.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Bounds the kernel threads (io-wq) that run a worker's operations io_uring cannot
    /// complete inline — path operations such as `statx`/`openat`, buffered writes that must
    /// wait, `splice` — to `bounded` for work on regular files and block devices and
    /// `unbounded` for the rest (`IORING_REGISTER_IOWQ_MAX_WORKERS`, Linux 5.15; 0 keeps the
    /// kernel's default, which is up to 4 per CPU for bounded work and the process's
    /// `RLIMIT_NPROC` for unbounded). io-wq threads belong to the worker thread, so the bound is
    /// per worker: a server facing a flood of slow path operations (a hung network filesystem)
    /// keeps a known number of kernel threads per core instead of up to four per CPU, the rest
    /// waiting in the kernel's queue. Throughput of fast operations does not suffer on this
    /// machine: `statx` of 10k files ran as fast with one io-wq thread as with the default.
    /// A kernel without the call logs a warning and keeps its default. No effect on epoll (see
    /// [`Builder::max_blocking_threads`]).
    pub fn io_wq_max_workers(mut self, bounded: u32, unbounded: u32) -> Self {
        self.io_wq_max_workers = Some([bounded, unbounded]);
        self
    }

    /// Whether an io_uring worker wakes another through its ring (`IORING_OP_MSG_RING`, Linux
    /// 5.18; for the default `DEFER_TASKRUN` rings 6.3) rather than by writing its eventfd
    /// (default true). The message rides in the sender's next batch of SQEs and needs no
    /// syscall of its own; the target reaps it like any completion. Epoll workers, threads
    /// outside the runtime, restricted rings and older kernels always use the eventfd, which
    /// every worker keeps listening to. Turn it off to compare the two paths.
    pub fn msg_ring(mut self, on: bool) -> Self {
        self.msg_ring = on;
        self
    }

    /// Slots in each io_uring worker's table of direct descriptors (registered files), which
    /// `accept_direct` fills (default 16384; 0 turns them off). The table is registered on first
    /// use and capped by the soft `RLIMIT_NOFILE`, as the kernel requires; where it cannot be
    /// registered (epoll, Linux before 6.0, a restricted ring, a limit too low) direct accepts
    /// give plain fds. Raise `RLIMIT_NOFILE` for servers that hold many connections.
    pub fn direct_descriptors(mut self, slots: u32) -> Self {
        self.direct_descriptors = slots;
        self
    }

    /// How long a worker with nothing to run polls its inbox and its ring before it sleeps
    /// (default zero: it sleeps at once). A sleeping worker is woken by another core's message
    /// or write, which costs tens of microseconds when the core has gone idle (on a virtual
    /// machine, an idle vCPU is woken through the hypervisor); a spinning worker picks the
    /// message up at once. Worth it for workers that hand each other work at a high rate, at the
    /// price of up to this much CPU each time a worker runs out of work.
    pub fn spin_before_park(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }

    pub(crate) fn driver_config(&self) -> DriverConfig {
        DriverConfig {
            entries: self.entries,
            restrict: self
                .restrict
                .as_deref()
                .map(crate::driver::restrict::allowlist),
            max_in_flight: self.max_in_flight,
            io_wq_max_workers: self.io_wq_max_workers,
            messages: self.msg_ring,
            direct_descriptors: self.direct_descriptors,
            spin: self.spin,
        }
    }

    /// Fault injection for tests: io_uring setup fails with `errno` as if the kernel said so.
    #[doc(hidden)]
    pub fn uring_setup_fault(mut self, errno: i32) -> Self {
        self.uring_fault = Some(errno);
        self
    }

    /// The backend this builder asks for.
    pub fn driver_choice(&self) -> DriverChoice {
        self.driver
    }
}
