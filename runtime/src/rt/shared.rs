//! The part of a worker that other threads may touch: its inbox and its doorbell.
//!
//! Everything that crosses threads to reach a worker — a wake of one of its tasks, a `Send` future
//! spawned onto it, a finished blocking-pool operation — goes through [`WorkerShared::push`], which
//! appends to the inbox under a mutex and rings the doorbell (an eventfd the worker's driver always
//! listens to) unless it was already rung since the worker last emptied the inbox.

use crate::driver::{self, PoolDone};
use crate::sync::{AtomicBool, Mutex};
use crate::task::TaskHeader;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::{OnceLock, Weak};

/// A `Send` job that spawns a task on the worker that runs it.
pub(crate) type RemoteSpawn = Box<dyn FnOnce() + Send>;

/// Work handed to a worker from another thread.
pub(crate) enum Remote {
    /// A task of this worker was woken from another thread.
    Wake(Arc<TaskHeader>),
    /// A future to spawn on this worker.
    Spawn(RemoteSpawn),
    /// An operation the blocking pool finished for this worker.
    Done(PoolDone),
    /// The runtime is shutting down: the worker leaves its loop.
    Shutdown,
}

/// What a worker's inbox holds, behind its mutex.
struct Inbox {
    items: Vec<Remote>,
    /// Set when the worker is gone: pushes are refused so that nothing is dropped on a thread it
    /// does not belong to (the caller leaks what it cannot deliver, see [`WorkerShared::push`]).
    closed: bool,
}

impl Drop for Inbox {
    fn drop(&mut self) {
        // The last reference may go on any thread: an operation sent back by the blocking pool
        // must never be dropped away from its worker (and its worker is gone), so leak it.
        for item in self.items.drain(..) {
            if let Remote::Done(done) = item {
                std::mem::forget(done);
            }
        }
    }
}

/// Shared state of one worker, reachable from any thread through an `Arc`.
pub(crate) struct WorkerShared {
    /// Process-unique id, so a waker can tell whether it runs on its own worker's thread.
    pub(crate) id: u64,
    /// Index of the worker in its runtime (0 for the thread that built it).
    pub(crate) index: usize,
    inbox: Mutex<Inbox>,
    /// True once the doorbell was rung and the worker has not yet emptied the inbox; saves an
    /// eventfd write per wake when many wakes arrive in a burst.
    rung: AtomicBool,
    doorbell: OwnedFd,
    /// A duplicate of the worker's ring fd, once it has a ring that takes `MSG_RING` doorbells:
    /// it keeps the ring alive for as long as a sender may aim at it.
    ring: OnceLock<OwnedFd>,
    /// The budget of the worker's table of direct descriptors, once it is registered and `ring`
    /// published: other workers take a place in it, then send a descriptor with `MSG_RING`.
    fd_budget: OnceLock<Arc<crate::fd::SlotBudget>>,
    /// This value, for senders that queue a message holding it (see `ring`).
    me: Weak<WorkerShared>,
    /// Doorbells rung by eventfd (the others are counted by the sender's driver).
    eventfd_rings: std::sync::atomic::AtomicU64,
    /// True while the worker runs its loop: always for worker threads, only inside `block_on`
    /// for worker 0 (the building thread), whose tasks wait for the next `block_on` otherwise.
    running: AtomicBool,
    /// Tasks alive on the worker, as of its last tick (for `Handle::spawn`).
    load: std::sync::atomic::AtomicUsize,
    /// The worker whose `MSG_RING` rang the doorbell since the inbox was last taken (0: none,
    /// or an eventfd): pushers from elsewhere ring by eventfd rather than count on it.
    message_from: std::sync::atomic::AtomicU64,
    /// In loom models: the eventfd's counter and the worker's wait on it, modelled.
    #[cfg(loom)]
    model_doorbell: (Mutex<u64>, crate::sync::Condvar),
}

static NEXT_WORKER_ID: AtomicU64 = AtomicU64::new(1);

impl WorkerShared {
    pub(crate) fn new(index: usize) -> io::Result<Arc<Self>> {
        // Blocking on purpose: an io_uring read of a non-blocking eventfd fails with EAGAIN instead
        // of waiting; the epoll driver only reads it once epoll reports it readable.
        // SAFETY: eventfd has no memory arguments; the result is checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Arc::new_cyclic(|me| WorkerShared {
            id: NEXT_WORKER_ID.fetch_add(1, Ordering::Relaxed),
            index,
            inbox: Mutex::new(Inbox {
                items: Vec::new(),
                closed: false,
            }),
            rung: AtomicBool::new(false),
            // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
            doorbell: unsafe { OwnedFd::from_raw_fd(fd) },
            ring: OnceLock::new(),
            me: me.clone(),
            fd_budget: OnceLock::new(),
            eventfd_rings: Default::default(),
            load: Default::default(),
            running: AtomicBool::new(false),
            message_from: Default::default(),
            #[cfg(loom)]
            model_doorbell: (Mutex::new(0), crate::sync::Condvar::new()),
        }))
    }

    /// The eventfd the worker's driver listens to.
    pub(crate) fn doorbell_fd(&self) -> RawFd {
        self.doorbell.as_raw_fd()
    }

    /// Delivers `item` to the worker; gives it back if the worker is gone. From a worker's
    /// loop on io_uring the doorbell may be a `MSG_RING` that leaves with that worker's next
    /// batch of SQEs (see `driver::msg`): a task that wakes another worker and then blocks its
    /// own thread delays that wake-up until its worker runs again.
    pub(crate) fn push(&self, item: Remote) -> Result<(), Remote> {
        self.push_with(item, false)
    }

    /// As `push`, with the doorbell rung by eventfd at once (a caller about to block its
    /// thread, such as a runtime waiting for its workers to stop).
    pub(crate) fn push_now(&self, item: Remote) -> Result<(), Remote> {
        self.push_with(item, true)
    }

    fn push_with(&self, item: Remote, now: bool) -> Result<(), Remote> {
        {
            let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
            if inbox.closed {
                return Err(item);
            }
            inbox.items.push(item);
        }
        let was_rung = self.rung.swap(true, Ordering::AcqRel);
        if now {
            // Unconditionally: an earlier ring may be a message still waiting in a ring that
            // will not be entered before this caller blocks.
            self.ring_by_eventfd();
        } else if !was_rung {
            self.ring();
        } else {
            let by = self.message_from.load(Ordering::Acquire);
            if by != 0 && by != crate::rt::context::current_worker_id() {
                // Rung by a message from another worker, which may not have left yet (its
                // worker still polling tasks, or blocked in one): do not wait for it.
                self.ring_by_eventfd();
            }
        }
        Ok(())
    }

    /// Records the worker's ring for `MSG_RING` doorbells (a duplicate, close-on-exec).
    pub(crate) fn set_message_ring(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: F_DUPFD_CLOEXEC of an fd the caller's driver keeps open; no memory passed.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `dup` is a new fd owned by nobody else.
        let dup = unsafe { OwnedFd::from_raw_fd(dup) };
        // Set once per worker; a second call keeps the first.
        let _ = self.ring.set(dup);
        Ok(())
    }

    /// Makes the worker able to take direct descriptors from other workers' rings.
    pub(crate) fn set_fd_budget(&self, budget: Arc<crate::fd::SlotBudget>) {
        let _ = self.fd_budget.set(budget);
    }

    /// The ring fd to send a direct descriptor to and the budget to take its place from, if
    /// the worker takes them.
    pub(crate) fn fd_target(&self) -> Option<(RawFd, Arc<crate::fd::SlotBudget>)> {
        let budget = self.fd_budget.get()?;
        let ring = self.ring.get()?;
        Some((ring.as_raw_fd(), budget.clone()))
    }

    /// Marks the worker as running its loop or not (see `running`).
    pub(crate) fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Release);
    }

    /// Whether the worker runs its loop now.
    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Records how many tasks the worker has (once per tick).
    pub(crate) fn set_load(&self, tasks: usize) {
        if self.load.load(Ordering::Relaxed) != tasks {
            self.load.store(tasks, Ordering::Relaxed);
        }
    }

    /// Tasks alive on the worker as of its last tick, plus those sent to it since.
    pub(crate) fn load(&self) -> usize {
        self.load.load(Ordering::Relaxed)
    }

    /// Counts a task sent to the worker before its next tick counts it (so a burst of spawns
    /// does not all pick the same idle worker).
    pub(crate) fn add_load(&self) {
        self.load.fetch_add(1, Ordering::Relaxed);
    }

    /// Doorbells rung by eventfd so far.
    pub(crate) fn eventfd_rings(&self) -> u64 {
        self.eventfd_rings.load(Ordering::Relaxed)
    }

    fn ring(&self) {
        #[cfg(not(loom))]
        if self.ring.get().is_some() {
            if let Some(me) = self.me.upgrade() {
                let by = crate::rt::context::current_worker_id();
                self.message_from.store(by, Ordering::Release);
                if crate::driver::ring_by_message(me) {
                    return;
                }
            }
        }
        self.ring_by_eventfd();
    }

    fn ring_by_eventfd(&self) {
        self.message_from.store(0, Ordering::Release);
        self.eventfd_rings.fetch_add(1, Ordering::Relaxed);
        #[cfg(loom)]
        {
            *self.model_doorbell.0.lock().unwrap() += 1;
            self.model_doorbell.1.notify_all();
        }
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local to our own eventfd. The only possible failure is
        // EAGAIN when the counter is saturated, which means the worker is already woken.
        unsafe { libc::write(self.doorbell.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Takes everything in the inbox if the doorbell was rung since the last call. Called by the
    /// worker only; resetting `rung` before taking means a concurrent push either lands in this
    /// batch or rings again.
    pub(crate) fn take_inbox(&self, into: &mut Vec<Remote>) {
        // A plain load first: the swap is a locked instruction, and the inbox is empty on almost
        // every tick. A push this load misses rang the eventfd, which ends the next wait.
        if !self.rung.load(Ordering::Acquire) || !self.rung.swap(false, Ordering::AcqRel) {
            return;
        }
        self.message_from.store(0, Ordering::Release);
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        into.append(&mut inbox.items);
    }

    /// Waits for the doorbell as the parked worker does, and reads it (loom models only).
    #[cfg(loom)]
    pub(crate) fn park_on_doorbell(&self) {
        let mut count = self.model_doorbell.0.lock().unwrap();
        while *count == 0 {
            count = self.model_doorbell.1.wait(count).unwrap();
        }
        *count = 0;
    }

    /// Closes the inbox and returns what is still in it; later pushes are refused.
    pub(crate) fn close(&self) -> Vec<Remote> {
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        inbox.closed = true;
        std::mem::take(&mut inbox.items)
    }

    /// Rings the doorbell unconditionally (a wake of the `block_on` future).
    pub(crate) fn wake(&self) {
        self.rung.store(true, Ordering::Release);
        self.ring();
    }
}

impl driver::Inbox for WorkerShared {
    fn deliver(&self, done: PoolDone) -> Result<(), PoolDone> {
        self.push(Remote::Done(done)).map_err(|item| match item {
            Remote::Done(done) => done,
            _ => unreachable!("push gives back the item it was given"),
        })
    }

    fn has_mail(&self) -> bool {
        self.rung.load(Ordering::Acquire)
    }

    fn drain_done(&self, f: &mut dyn FnMut(PoolDone)) {
        let mut items = Vec::new();
        self.take_inbox(&mut items);
        for item in items {
            if let Remote::Done(done) = item {
                f(done);
            }
        }
    }
}

impl crate::task::Mailbox for WorkerShared {
    fn wake(&self, task: Arc<TaskHeader>) {
        // Refused when the worker is gone, and the task with it: dropping the header is fine.
        let _ = self.push(Remote::Wake(task));
    }
}

impl driver::Doorbell for WorkerShared {
    fn ring_fd(&self) -> Option<RawFd> {
        self.ring.get().map(|fd| fd.as_raw_fd())
    }

    fn ring_eventfd(&self) {
        self.ring_by_eventfd();
    }
}
