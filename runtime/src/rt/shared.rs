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
        Ok(Arc::new(WorkerShared {
            id: NEXT_WORKER_ID.fetch_add(1, Ordering::Relaxed),
            index,
            inbox: Mutex::new(Inbox {
                items: Vec::new(),
                closed: false,
            }),
            rung: AtomicBool::new(false),
            // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
            doorbell: unsafe { OwnedFd::from_raw_fd(fd) },
            #[cfg(loom)]
            model_doorbell: (Mutex::new(0), crate::sync::Condvar::new()),
        }))
    }

    /// The eventfd the worker's driver listens to.
    pub(crate) fn doorbell_fd(&self) -> RawFd {
        self.doorbell.as_raw_fd()
    }

    /// Delivers `item` to the worker; gives it back if the worker is gone.
    pub(crate) fn push(&self, item: Remote) -> Result<(), Remote> {
        {
            let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
            if inbox.closed {
                return Err(item);
            }
            inbox.items.push(item);
        }
        if !self.rung.swap(true, Ordering::AcqRel) {
            self.ring();
        }
        Ok(())
    }

    fn ring(&self) {
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

    /// Rings the doorbell unconditionally (used by shutdown requests).
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
