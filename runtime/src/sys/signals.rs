//! Signal masks of the threads that run hoop.
//!
//! Blocking-pool threads block every asynchronous signal while they run the runtime's
//! syscalls: a signal handled there made a pool syscall fail with `EINTR` on files that do not
//! restart (FIFOs, NFS, FUSE) — `Interrupted` for the caller of an `open` or `read_at`.
//! Process-directed signals go to the other threads instead. The faults the kernel forces
//! (`SIGSEGV`, `SIGBUS`, `SIGFPE`, `SIGILL`, `SIGTRAP`, `SIGSYS`) stay unblocked: blocked, one
//! would kill the process instead of reaching its handler. `spawn_blocking` closures run with the
//! mask the thread started with.
//!
//! `SIGPIPE` is blocked on every thread while it runs hoop: a write to a closed pipe or socket
//! then fails with `EPIPE` instead of killing the process, whichever way it is made (`send`
//! takes `MSG_NOSIGNAL`, but `write`/`writev` on a socket or a pipe, `splice` into a socket and
//! the ring's inline issue of those have no such flag, and the signal goes to the submitting
//! thread). Rust programs ignore `SIGPIPE` anyway; this matters in hosts that keep the default
//! action (C programs, `-Zon-broken-pipe=kill`).
//!
//! A `SIGPIPE` raised by a write is directed at the writing thread; blocked, it stays pending
//! there. Threads hoop starts (workers, blocking pool) keep it blocked for their whole life;
//! the thread that builds a `Runtime` (its worker 0) keeps it blocked until the runtime is
//! dropped — without `DEFER_TASKRUN` its ring's task work runs on that thread's syscalls outside
//! `block_on` too — and then gets its mask back, with a `SIGPIPE` left pending taken first, so
//! that unblocking does not deliver it (a process-directed `SIGPIPE` pending at that moment is
//! taken too). Two runtimes built on one thread and dropped out of order leave it unblocked
//! while the second still runs.

use std::mem::MaybeUninit;

fn sigpipe_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set; sigaddset adds a valid signal number to it.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
        set.assume_init()
    }
}

/// Blocks `SIGPIPE` on the calling thread; true if it was blocked already.
fn block_on_this_thread() -> bool {
    let set = sigpipe_set();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: valid sets; pthread_sigmask changes only the calling thread's mask.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, old.as_mut_ptr());
        libc::sigismember(old.as_ptr(), libc::SIGPIPE) == 1
    }
}

/// For worker threads: `SIGPIPE` stays blocked until the thread ends.
pub(crate) fn block_sigpipe_for_this_thread() {
    block_on_this_thread();
}

/// Signals a blocked one of which the kernel turns into a kill (it forces them when raised by
/// a fault).
pub(crate) const FORCED: [libc::c_int; 6] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGTRAP,
    libc::SIGSYS,
];

/// For blocking-pool threads: blocks every asynchronous signal; returns the mask the thread had,
/// for [`with_mask`].
pub(crate) fn block_async_for_this_thread() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initialises the set, sigdelset removes valid signal numbers from it;
    // pthread_sigmask changes this thread's mask only (the kernel leaves SIGKILL and SIGSTOP
    // out) and fills `old`.
    unsafe {
        libc::sigfillset(set.as_mut_ptr());
        for sig in FORCED {
            libc::sigdelset(set.as_mut_ptr(), sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, set.as_ptr(), old.as_mut_ptr());
        old.assume_init()
    }
}

/// Runs `f` with this thread's signal mask set to `mask`, then puts the current one back (also
/// if `f` panics).
pub(crate) fn with_mask<R>(mask: &libc::sigset_t, f: impl FnOnce() -> R) -> R {
    struct Restore(libc::sigset_t);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: a mask read by pthread_sigmask below; this thread's only.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
        }
    }
    let mut now = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `mask` is a valid set; the call fills `now` with the mask it replaces.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, now.as_mut_ptr()) };
    // SAFETY: initialised by the call above.
    let _restore = Restore(unsafe { now.assume_init() });
    f()
}

/// Blocks `SIGPIPE` on the calling thread until dropped.
pub(crate) struct Blocked {
    was_blocked: bool,
}

impl Blocked {
    pub(crate) fn new() -> Self {
        Blocked {
            was_blocked: block_on_this_thread(),
        }
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        if self.was_blocked {
            return;
        }
        let set = sigpipe_set();
        // SAFETY: valid sets and a zero timeout; sigtimedwait only takes a pending SIGPIPE
        // (blocked here, as it must be), and pthread_sigmask changes this thread's mask only.
        unsafe {
            let mut pending = MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigpending(pending.as_mut_ptr());
            if libc::sigismember(pending.as_ptr(), libc::SIGPIPE) == 1 {
                let zero = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                libc::sigtimedwait(&set, std::ptr::null_mut(), &zero);
            }
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
    }
}
