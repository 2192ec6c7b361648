//! The I/O driver of one worker: an io_uring or an epoll backend, chosen at run time; the
//! dispatch that runs every operation on it; the op lifecycle both backends share; and the
//! hand-off to the blocking pool.
//!
//! Invariants:
//! - an operation's data is freed only after its final completion was seen (CQE without
//!   `F_MORE`, or the blocking pool's answer), or it is leaked;
//! - data of dropped operations is dropped outside the driver's `RefCell` borrow (the
//!   `graveyard`), because destructors of fds may need the driver;
//! - shutdown cancels and drains every in-flight operation, or — if the kernel does not answer
//!   within the runtime's shutdown timeout — leaks their memory and the ring with it.
//!
//! Layering: the driver imports the blocking pool, `fd`, `creds`, `coop` and `log`, never `op`,
//! `rt` or `task` (checked by `layers.rs`). Operations reach it through [`opcode::OpCode`] and [`Dispatch`]; the worker
//! through [`IoDriver`]'s methods and [`Inbox`].

mod direct_table;
mod dispatch;
mod enter;
mod epoll;
mod fixed_table;
pub(crate) mod lifecycle;
#[cfg(test)]
mod lifecycle_props;
mod msg;
mod old_kernel;
pub(crate) mod opcode;
mod pooled;
pub mod restrict;
mod select;
mod uring;

pub(crate) use dispatch::{Dispatch, Event};
pub(crate) use msg::Doorbell;
pub(crate) use pooled::{Inbox, PoolDone};
pub use restrict::OpClass;
pub(crate) use select::{select_backend, Selection};
#[allow(deprecated)]
pub use select::{Driver, DriverChoice, DriverKind, RuntimeInfo};
pub(crate) use uring::MESSAGE as MESSAGE_USER_DATA;

use crate::blocking::BlockingPool;
use crate::creds::Credentials;
use epoll::{EpollDriver, Waiter};
use lifecycle::{Arrival, Completion, Life, Slots};
use opcode::DynOp;
use pooled::{OpJob, SendOp};
use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};
use uring::UringDriver;

/// See [`RuntimeInfo::kernel`].
pub(crate) fn kernel_release() -> (u32, u32) {
    old_kernel::effective()
}

/// Shared handle to a worker's driver, held by every in-flight operation.
pub(crate) type DriverRef = Rc<RefCell<IoDriver>>;

/// Which kernel interface a worker drives. Private to the driver: everything outside asks
/// [`IoDriver`] instead.
// One instance per worker: its size does not matter, and boxing the ring would add a pointer
// chase to every operation.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Uring(UringDriver),
    Epoll(EpollDriver),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Closed {
    /// Every operation completed: all data was released normally.
    Drained,
    /// The kernel did not answer in time: in-flight data and the ring were leaked.
    Abandoned,
}

/// Counters a worker's driver keeps (see [`crate::metrics`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DriverStats {
    /// Operations that waited for a slot because `max_in_flight` were in flight.
    pub(crate) throttled: u64,
    pub(crate) submitted: u64,
    pub(crate) completed: u64,
    pub(crate) cancelled: u64,
    pub(crate) enters: u64,
    pub(crate) sq_full: u64,
    pub(crate) cq_overflows: u64,
    pub(crate) blocking_ops: u64,
    /// Operations completed by their non-blocking inline attempt (page-cache reads).
    pub(crate) inline: u64,
    /// Doorbells of other workers rung by `MSG_RING` from this ring.
    pub(crate) messages: u64,
    /// Parks avoided: mail from another thread arrived while the worker spun.
    pub(crate) spin_hits: u64,
    /// Linked chains put in the ring as a whole.
    pub(crate) chains: u64,
    /// Non-blocking syscalls that found their fd not ready before a readiness wait.
    pub(crate) would_block: u64,
}

thread_local! {
    /// The driver of the worker running on this thread, set while the worker runs.
    static CURRENT: RefCell<Option<DriverRef>> = const { RefCell::new(None) };
}

/// The driver of the worker running on this thread: where operations started here go.
pub(crate) fn current() -> Option<DriverRef> {
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// Makes `driver` this thread's current driver; returns the one it replaces (to restore).
pub(crate) fn set_current(driver: Option<DriverRef>) -> Option<DriverRef> {
    CURRENT.try_with(|c| c.replace(driver)).ok().flatten()
}

/// Rings `target`'s doorbell through a `MSG_RING` from this thread's ring, if this thread runs
/// an io_uring worker that can send one now; false if the caller must use the eventfd.
pub(crate) fn ring_by_message(target: std::sync::Arc<dyn Doorbell>) -> bool {
    let Some(driver) = current() else {
        return false;
    };
    // Busy: called from inside a driver callback (a waker run by `reap`).
    let Ok(mut d) = driver.try_borrow_mut() else {
        return false;
    };
    let d = &mut *d;
    if d.closed.is_some() {
        return false;
    }
    match &mut d.backend {
        Backend::Uring(ring) => {
            let sent = ring.send_doorbell(target, &mut d.ops, &mut d.graveyard, &mut d.stats);
            d.stats.messages += u64::from(sent);
            sent
        }
        Backend::Epoll(_) => false,
    }
}

/// The table of direct descriptors of the worker running on this thread, registered on first
/// use; `None` outside a worker, on epoll, and where the kernel or the ring refuses it (the
/// caller then makes a plain fd).
pub(crate) fn direct_table() -> Option<crate::fd::DirectTable> {
    let driver = current()?;
    let owner: std::rc::Weak<dyn std::any::Any> = Rc::downgrade(&driver) as _;
    let mut d = driver.try_borrow_mut().ok()?;
    if d.closed.is_some() {
        return None;
    }
    match &mut d.backend {
        Backend::Uring(ring) => ring.direct_table(owner),
        Backend::Epoll(_) => None,
    }
}

/// How an SQE names `fd`, and the SQE flag that goes with it: a plain fd by its number; a direct
/// descriptor by its slot, flagged `IOSQE_FIXED_FILE`, on the ring whose table holds it. On any
/// other ring (a descriptor kept past its runtime and used on a new one on the same thread) it
/// names fd -1, which fails with `EBADF` instead of reaching that ring's slot of the same number.
pub(crate) fn sqe_fd(fd: &crate::fd::SharedFd) -> (io_uring::types::Fd, io_uring::squeue::Flags) {
    use io_uring::{squeue::Flags, types::Fd};
    match fd.direct() {
        None => (Fd(fd.raw()), Flags::empty()),
        Some((slot, table)) if current().is_some_and(|d| table.is_owned_by(&d)) => {
            (Fd(*slot as i32), Flags::FIXED_FILE)
        }
        Some(_) => (Fd(-1), Flags::empty()),
    }
}

/// Counters and gauges of one driver, for [`crate::metrics`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DriverSnapshot {
    pub(crate) stats: DriverStats,
    /// Operations holding a slot now.
    pub(crate) in_flight: usize,
}

/// A worker's I/O driver.
pub(crate) struct IoDriver {
    ops: Slots,
    backend: Backend,
    closed: Option<Closed>,
    pool: Arc<BlockingPool>,
    /// Where the pool sends results: this worker's inbox.
    inbox: Arc<dyn Inbox>,
    /// Data of operations whose final completion arrived after their future was dropped; dropped
    /// by the worker loop once the driver is no longer borrowed.
    graveyard: Vec<Box<dyn DynOp>>,
    /// Operations on the blocking pool (they must come back before the driver closes).
    pooled: usize,
    /// The operations `shutdown` asked the kernel to cancel: their `-ECANCELED` is the
    /// shutdown's, reported as "runtime shut down"; any other `-ECANCELED` is an op's own.
    shutdown_cancels: std::collections::HashSet<u64>,
    stats: DriverStats,
    /// See `DriverConfig::spin`.
    spin: Duration,
    /// How well the page cache has been answering this worker's inline attempts: up by one per
    /// hit, down by four per miss, within `0..=PAGE_CACHE_HOT_MAX` (see `Inline::PageCache`).
    page_cache_score: u8,
}

/// The top of `IoDriver::page_cache_score`: a miss in a run of hits (a read that would start
/// readahead answers `EAGAIN` to `RWF_NOWAIT`) does not end the run.
pub(crate) const PAGE_CACHE_HOT_MAX: u8 = 16;

/// How a worker's driver is set up (from the [`Builder`](crate::Builder)).
#[derive(Clone, Debug)]
pub(crate) struct DriverConfig {
    pub(crate) entries: u32,
    /// The opcode allowlist of a restricted ring.
    pub(crate) restrict: Option<Vec<u8>>,
    pub(crate) max_in_flight: usize,
    /// `[bounded, unbounded]` io-wq threads (`Builder::io_wq_max_workers`).
    pub(crate) io_wq_max_workers: Option<[u32; 2]>,
    /// Ring other workers' doorbells with `MSG_RING` where possible (`Builder::msg_ring`).
    pub(crate) messages: bool,
    /// Slots in the table of direct descriptors (`Builder::direct_descriptors`); 0: none.
    pub(crate) direct_descriptors: u32,
    /// How long a worker with nothing to do polls before it sleeps (`Builder::spin_before_park`).
    pub(crate) spin: Duration,
}

impl IoDriver {
    pub(crate) fn new(
        selection: Selection,
        pool: Arc<BlockingPool>,
        inbox: Arc<dyn Inbox>,
        config: &DriverConfig,
    ) -> Self {
        IoDriver {
            spin: config.spin,
            page_cache_score: PAGE_CACHE_HOT_MAX,
            ops: Slots::new(config.max_in_flight),
            backend: selection.backend,
            closed: None,
            pool,
            inbox,
            graveyard: Vec::new(),
            pooled: 0,
            shutdown_cancels: std::collections::HashSet::new(),
            stats: DriverStats::default(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// True if `res` for `user_data` is the cancellation `shutdown` asked for.
    fn cancelled_by_shutdown(&self, user_data: u64, res: i32) -> bool {
        res == -libc::ECANCELED && self.shutdown_cancels.contains(&user_data)
    }

    pub(crate) fn is_abandoned(&self) -> bool {
        self.closed == Some(Closed::Abandoned)
    }

    pub(crate) fn kind(&self) -> DriverKind {
        match self.backend {
            Backend::Uring(_) => DriverKind::IoUring,
            Backend::Epoll(_) => DriverKind::Epoll,
        }
    }

    /// Makes room in the ring for a linked chain of `n` SQEs (see `UringDriver::room_for`);
    /// false on epoll or if the chain cannot fit.
    pub(crate) fn room_for_chain(&mut self, n: usize) -> bool {
        match &mut self.backend {
            Backend::Uring(ring) => {
                ring.room_for(n, &mut self.ops, &mut self.graveyard, &mut self.stats)
            }
            Backend::Epoll(_) => false,
        }
    }

    /// Counts a chain put in the ring as a whole.
    pub(crate) fn count_chain(&mut self) {
        self.stats.chains += 1;
    }

    /// The budget of this worker's table of direct descriptors, for other workers that send it
    /// descriptors.
    pub(crate) fn direct_budget(&self) -> Option<std::sync::Arc<crate::fd::SlotBudget>> {
        match &self.backend {
            Backend::Uring(ring) => ring.direct_budget(),
            Backend::Epoll(_) => None,
        }
    }

    /// Registers the table of direct descriptors now, so that other workers can send it
    /// descriptors (`MSG_RING` with `IORING_MSG_SEND_FD`); false where it cannot be.
    pub(crate) fn prepare_direct_table(&mut self) -> bool {
        match &mut self.backend {
            Backend::Uring(ring) => ring.prepare_direct_table(),
            Backend::Epoll(_) => false,
        }
    }

    /// The worker's ring fd, if it has a ring that accepts `MSG_RING` doorbells (to be
    /// duplicated by the worker's doorbell, which keeps the ring alive for senders).
    pub(crate) fn message_ring_fd(&self) -> Option<std::os::fd::RawFd> {
        match &self.backend {
            Backend::Uring(ring) => ring.message_ring_fd(),
            Backend::Epoll(_) => None,
        }
    }

    /// The counters, and what is in flight now.
    pub(crate) fn snapshot(&self) -> DriverSnapshot {
        DriverSnapshot {
            stats: self.stats,
            in_flight: self.ops.len(),
        }
    }

    /// Registers buffers for `READ_FIXED`/`WRITE_FIXED`; returns the first slot's index.
    /// `Unsupported` on epoll.
    ///
    /// # Safety
    ///
    /// The memory the iovecs name stays allocated until `unregister_fixed` of the range
    /// succeeded.
    pub(crate) unsafe fn register_fixed(&mut self, iovecs: &[libc::iovec]) -> io::Result<u16> {
        match &mut self.backend {
            // SAFETY: forwarded to the caller.
            Backend::Uring(ring) => unsafe { ring.register_fixed(iovecs) },
            Backend::Epoll(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    /// Empties the slots `register_fixed` gave.
    pub(crate) fn unregister_fixed(&mut self, base: u16, n: usize) -> io::Result<()> {
        match &mut self.backend {
            Backend::Uring(ring) => ring.unregister_fixed(base, n),
            Backend::Epoll(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    /// Registers a provided-buffer ring of `entries` at `addr` under a fresh group id, as an
    /// incremental ring if asked and the kernel can (see `UringDriver::register_buf_ring`).
    /// `Unsupported` on epoll.
    ///
    /// # Safety
    ///
    /// `addr` is page aligned memory for `entries` `io_uring_buf`s that stays allocated, with
    /// the buffers it names, until `unregister_buf_ring` of the returned id succeeded.
    pub(crate) unsafe fn register_buf_ring(
        &mut self,
        addr: u64,
        entries: u16,
        incremental: bool,
    ) -> io::Result<(u16, bool)> {
        match &mut self.backend {
            // SAFETY: forwarded to the caller.
            Backend::Uring(ring) => unsafe { ring.register_buf_ring(addr, entries, incremental) },
            Backend::Epoll(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    /// True if receives into provided buffers may take several at once (bundles).
    pub(crate) fn recv_bundles(&self) -> bool {
        match &self.backend {
            Backend::Uring(ring) => ring.recv_bundles(),
            Backend::Epoll(_) => false,
        }
    }

    /// Unregisters a provided-buffer ring.
    pub(crate) fn unregister_buf_ring(&mut self, bgid: u16) -> io::Result<()> {
        match &mut self.backend {
            Backend::Uring(ring) => ring.unregister_buf_ring(bgid),
            Backend::Epoll(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    /// Queues an SQE (io_uring backend only), flushing the SQ when full.
    fn push(&mut self, entry: io_uring::squeue::Entry) -> io::Result<()> {
        let Backend::Uring(ring) = &mut self.backend else {
            return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        };
        self.stats.submitted += 1;
        // Slots freed since the last SQE close before it runs: an accept in this batch may need
        // one of them.
        ring.close_dropped_slots(&mut self.ops, &mut self.graveyard, &mut self.stats);
        ring.push(entry, &mut self.ops, &mut self.graveyard, &mut self.stats)
    }

    /// Submits the queued SQEs now rather than at the end of the tick (see
    /// `OpTraits::device_io`). A failed enter is left to the tick's own, which reports it.
    pub(crate) fn submit_now(&mut self) {
        if let Backend::Uring(ring) = &mut self.backend {
            ring.submit_now(&mut self.stats);
        }
    }

    /// Hands an operation to the blocking pool under `user_data`'s slot.
    fn submit_blocking<T: opcode::OpCode>(
        &mut self,
        user_data: u64,
        data: Box<T>,
        creds: Option<Credentials>,
    ) -> Result<(), (Box<dyn DynOp>, io::Error)> {
        let job = OpJob {
            op: SendOp(data, creds),
            user_data,
            inbox: self.inbox.clone(),
        };
        match self.pool.spawn(job) {
            Ok(()) => {
                self.pooled += 1;
                self.stats.blocking_ops += 1;
                Ok(())
            }
            Err(job) => Err((
                job.op.0,
                io::Error::other("hoop: the blocking pool is shut down"),
            )),
        }
    }

    /// A blocking-pool operation came back.
    pub(crate) fn pool_done(&mut self, done: PoolDone) {
        self.pooled = self.pooled.saturating_sub(1);
        self.stats.completed += 1;
        if let Arrival::Orphan(Some(data)) =
            self.ops
                .complete_blocking(done.user_data, done.completion, done.op.0)
        {
            self.graveyard.push(data);
        }
    }

    /// The final completion of `user_data` and the data a pool job brought back, if it arrived;
    /// otherwise registers `waker`.
    fn take_completion(
        &mut self,
        user_data: u64,
        waker: &Waker,
    ) -> Option<(Completion, Option<Box<dyn DynOp>>)> {
        let slot = self.ops.get_mut(user_data)?;
        match &mut slot.life {
            Life::Completed(c) => {
                let c = *c;
                let slot = self.ops.remove(user_data)?;
                Some((c, slot.returned))
            }
            Life::Waiting(w) => {
                if !w.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    *w = Some(waker.clone());
                }
                None
            }
            Life::Ignored(_) => None,
        }
    }

    /// Completions of `user_data` flagged `F_MORE` that arrived so far (for single-shot ops
    /// with two completions, such as zero-copy sends).
    fn take_more(&mut self, user_data: u64) -> std::collections::VecDeque<Completion> {
        self.ops
            .get_mut(user_data)
            .map(|slot| std::mem::take(&mut slot.more))
            .unwrap_or_default()
    }

    /// The next completion of a multishot operation and whether it is the last of its arming.
    fn next_multishot(&mut self, user_data: u64, waker: &Waker) -> Option<(Completion, bool)> {
        let slot = self.ops.get_mut(user_data)?;
        if let Some(c) = slot.more.pop_front() {
            return Some((c, false));
        }
        self.take_completion(user_data, waker)
            .map(|(c, _)| (c, true))
    }

    /// The future of `user_data` was dropped: keep `data` until the final completion, cancel the
    /// operation. Returns data that may be freed now (the caller drops it after the borrow).
    fn ignore(&mut self, user_data: u64, data: Option<Box<dyn DynOp>>) -> Option<Box<dyn DynOp>> {
        if self.closed == Some(Closed::Abandoned) {
            std::mem::forget(data);
            return None;
        }
        let in_ring = self.ops.get_mut(user_data).is_some_and(|s| s.in_ring);
        let (freed, in_flight) = self.ops.ignore(user_data, data);
        if in_flight && self.closed.is_none() && in_ring {
            self.stats.cancelled += 1;
            if let Backend::Uring(ring) = &mut self.backend {
                ring.cancel(
                    user_data,
                    &mut self.ops,
                    &mut self.graveyard,
                    &mut self.stats,
                );
            }
        }
        freed
    }

    /// Data of ignored operations that completed; to be dropped outside the driver borrow.
    pub(crate) fn take_graveyard(&mut self) -> Vec<Box<dyn DynOp>> {
        std::mem::take(&mut self.graveyard)
    }

    /// True if a new operation may start now; otherwise registers `waker` for when a slot
    /// frees (the bound on in-flight operations, [`Builder::max_in_flight`]).
    ///
    /// [`Builder::max_in_flight`]: crate::Builder::max_in_flight
    pub(crate) fn admit(&mut self, waker: &Waker) -> bool {
        let admitted = self.ops.admit(waker);
        if !admitted {
            self.stats.throttled += 1;
        }
        admitted
    }

    /// Submits what is queued and processes completions, waiting up to `timeout` (`None`: until
    /// something arrives) if `timeout` is not zero.
    pub(crate) fn turn(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.is_abandoned() {
            // No doorbell any more (it was leaked with the ring's other memory): a wait could
            // never be woken from another thread.
            return Err(io::Error::other(
                "hoop: this worker's driver failed earlier",
            ));
        }
        let timeout = match timeout {
            Some(Duration::ZERO) => timeout,
            _ if self.spin.is_zero() => timeout,
            _ => self.spin_before_park(timeout),
        };
        match &mut self.backend {
            Backend::Uring(ring) => {
                ring.turn(timeout, &mut self.ops, &mut self.graveyard, &mut self.stats)
            }
            Backend::Epoll(epoll) => {
                if epoll.turn(timeout)? {
                    self.stats.enters += 1;
                }
                Ok(())
            }
        }
    }

    /// Polls for up to the spin budget (never past `timeout`) for mail in the inbox or a
    /// completion before the worker sleeps; returns the wait that is left (none if something
    /// arrived). A sleeping worker is woken by another core's write or message, which on a
    /// virtual machine means waking an idle vCPU: tens of microseconds that a spinning worker
    /// does not pay. What this worker queued leaves first, so that a peer it woke need not wait
    /// for the spin to end.
    fn spin_before_park(&mut self, timeout: Option<Duration>) -> Option<Duration> {
        let budget = timeout.map_or(self.spin, |t| t.min(self.spin));
        self.submit_now();
        let start = Instant::now();
        loop {
            for _ in 0..64 {
                if self.inbox.has_mail() {
                    self.stats.spin_hits += 1;
                    return Some(Duration::ZERO);
                }
                if self.has_completions() {
                    return Some(Duration::ZERO);
                }
                std::hint::spin_loop();
            }
            // Readiness costs a syscall to learn: asked between rounds of the cheap checks.
            if let Backend::Epoll(epoll) = &mut self.backend {
                if epoll.poll_now().unwrap_or(true) {
                    return Some(Duration::ZERO);
                }
            }
            let spun = start.elapsed();
            if spun >= budget {
                return timeout.map(|t| t.saturating_sub(spun));
            }
        }
    }

    /// True if completions wait to be reaped (or, on a `DEFER_TASKRUN` ring, to be run).
    fn has_completions(&mut self) -> bool {
        match &mut self.backend {
            Backend::Uring(ring) => ring.has_completions(),
            // Readiness needs a syscall to learn: see `spin_before_park`.
            Backend::Epoll(_) => false,
        }
    }

    /// Cancels every in-flight operation and waits for all completions until `deadline`; past it,
    /// leaks what the kernel may still touch. Inbox items are processed meanwhile (pool answers).
    pub(crate) fn shutdown(&mut self, deadline: Instant) {
        if self.closed.is_some() {
            return;
        }
        if let Backend::Uring(ring) = &mut self.backend {
            // Pool jobs cannot be interrupted: their slots wait for the job's answer.
            for user_data in self.ops.in_flight_ring_keys() {
                self.shutdown_cancels.insert(user_data);
                ring.cancel(
                    user_data,
                    &mut self.ops,
                    &mut self.graveyard,
                    &mut self.stats,
                );
            }
            ring.cancel_doorbell(&mut self.ops, &mut self.graveyard, &mut self.stats);
        }
        // Messages and cancels queued so far leave before the drain check can end the loop.
        self.submit_now();
        let inbox = self.inbox.clone();
        loop {
            inbox.drain_done(&mut |done| self.pool_done(done));
            if self.ops.in_flight() == 0 && self.pooled == 0 && !self.ring_busy() {
                self.closed = Some(Closed::Drained);
                // Nothing runs on the ring any more: its direct descriptors close now, rather
                // than when the last copy of the ring fd goes.
                if let Backend::Uring(ring) = &mut self.backend {
                    ring.release_direct_table();
                }
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                self.abandon();
                break;
            }
            let wait = (deadline - now).min(Duration::from_millis(10));
            if let Err(e) = self.turn(Some(wait)) {
                crate::log::warning!("driver failed during shutdown: {e}");
                self.abandon();
                break;
            }
        }
    }

    fn ring_busy(&self) -> bool {
        match &self.backend {
            Backend::Uring(ring) => ring.doorbell_armed(),
            Backend::Epoll(_) => false,
        }
    }

    /// Marks the driver unusable after a fatal error, leaking what the kernel may still touch.
    pub(crate) fn fail(&mut self) {
        if self.closed.is_none() {
            self.abandon();
        }
    }

    fn abandon(&mut self) {
        crate::log::warning!(
            "shutdown timed out with {} operations in flight; leaking their memory",
            self.ops.in_flight() + self.pooled
        );
        self.ops.leak_all();
        if let Backend::Uring(ring) = &mut self.backend {
            ring.leak_doorbell();
        }
        self.closed = Some(Closed::Abandoned);
    }
}

impl Drop for IoDriver {
    /// A driver dropped without a completed shutdown (a worker unwinding from a panic) cannot
    /// know what the kernel still uses: it leaks in-flight memory rather than free it.
    fn drop(&mut self) {
        if self.closed.is_none()
            && (self.ops.in_flight() > 0 || self.pooled > 0 || self.ring_busy())
        {
            self.abandon();
        }
    }
}
