//! Per-worker counters, readable at run time with [`metrics`].

use crate::rt::context;

/// A snapshot of the current worker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerMetrics {
    /// Worker index.
    pub worker: usize,
    /// Tasks spawned on this worker.
    pub tasks_spawned: u64,
    /// Task polls.
    pub tasks_polled: u64,
    /// Tasks alive.
    pub tasks_alive: usize,
    /// SQEs queued (operations, cancels, the doorbell read), or 0 on epoll.
    pub ops_submitted: u64,
    /// Completions processed (CQEs and blocking-pool answers).
    pub ops_completed: u64,
    /// Operations cancelled because their future was dropped.
    pub ops_cancelled: u64,
    /// Times an operation waited for a slot ([`Builder::max_in_flight`](crate::Builder::max_in_flight)).
    pub ops_throttled: u64,
    /// Operations waiting for a completion now.
    pub ops_in_flight: usize,
    /// Operations sent to the blocking pool.
    pub ops_blocking: u64,
    /// Operations completed by a non-blocking attempt on the worker's thread instead of the
    /// ring or the pool (file reads served from the page cache at queue depth 1, or on epoll).
    pub ops_inline: u64,
    /// `io_uring_enter` (or `epoll_wait`) calls.
    pub enters: u64,
    /// Times the SQ was full and flushed early.
    pub sq_full: u64,
    /// Times the completion queue was found overflowed (`IORING_SQ_CQ_OVERFLOW`): completions
    /// waited in the kernel's backlog until the next enter flushed them. None is lost.
    pub cq_overflows: u64,
    /// Pending timers.
    pub timers: usize,
    /// Blocking-pool threads alive (shared by all workers).
    pub blocking_threads: usize,
    /// Other workers' doorbells this worker rang through its ring (`MSG_RING`).
    pub doorbells_by_message: u64,
    /// This worker's doorbell rung through its eventfd (by any thread).
    pub doorbells_by_eventfd: u64,
    /// Times the worker, spinning before it would have slept
    /// ([`Builder::spin_before_park`](crate::Builder::spin_before_park)), found mail from
    /// another thread (a wake, a spawn) and did not sleep.
    pub spin_hits: u64,
    /// Linked chains ([`op::link`](crate::op::link)) put in the ring as a whole (the others ran
    /// one operation at a time).
    pub chains: u64,
    /// Non-blocking syscalls made on the worker's thread that found their fd not ready
    /// (`EAGAIN`), after which the operation waited for readiness: on epoll, and on io_uring for
    /// operations the ring lacks. (On a ring, a receive's failed first attempt happens inside
    /// the kernel and is not counted.)
    pub ops_would_block: u64,
}

/// The current worker's counters; `None` outside a runtime.
///
/// ```
/// # hoop_runtime::block_on(async {
/// hoop_runtime::io::nop().await.unwrap();
/// let m = hoop_runtime::metrics().unwrap();
/// assert!(m.ops_completed >= 1);
/// # });
/// ```
pub fn metrics() -> Option<WorkerMetrics> {
    context::with_core(|core| {
        let (tasks_spawned, tasks_polled) = core.executor.counters();
        let d = core.driver.borrow().snapshot();
        WorkerMetrics {
            worker: core.shared.index,
            tasks_spawned,
            tasks_polled,
            tasks_alive: core.executor.task_count(),
            ops_submitted: d.stats.submitted,
            ops_completed: d.stats.completed,
            ops_cancelled: d.stats.cancelled,
            ops_throttled: d.stats.throttled,
            ops_in_flight: d.in_flight,
            ops_blocking: d.stats.blocking_ops,
            ops_inline: d.stats.inline,
            enters: d.stats.enters,
            sq_full: d.stats.sq_full,
            cq_overflows: d.stats.cq_overflows,
            timers: core.timers.borrow().len(),
            blocking_threads: core.pool.threads(),
            doorbells_by_message: d.stats.messages,
            doorbells_by_eventfd: core.shared.eventfd_rings(),
            spin_hits: d.stats.spin_hits,
            ops_would_block: d.stats.would_block,
            chains: d.stats.chains,
        }
    })
}
