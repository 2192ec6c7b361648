//! Signal masks of the threads that run hoop.
//!
//! Blocking-pool threads block every signal that can be blocked, for their whole life: they only
//! run syscalls for the runtime (and `spawn_blocking` closures), and a signal handled there made
//! a pool syscall fail with `EINTR` on files that do not restart (FIFOs, NFS, FUSE) —
//! `Interrupted` for the caller of an `open` or `read_at`. Process-directed signals go to the
//! other threads instead; thread-directed ones wait (faults that the kernel forces, like
//! `SIGSEGV`, still take their default action).
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
//! the thread that calls `block_on` gets its mask back afterwards, with a `SIGPIPE` left
//! pending by the runtime's writes taken first, so that unblocking does not deliver it.

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

/// For blocking-pool threads: every signal that can be blocked stays blocked.
pub(crate) fn block_all_for_this_thread() {
    let mut all = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initialises the set; pthread_sigmask changes this thread's mask only
    // (SIGKILL and SIGSTOP are silently left out by the kernel).
    unsafe {
        libc::sigfillset(all.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_BLOCK, all.as_ptr(), std::ptr::null_mut());
    }
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
