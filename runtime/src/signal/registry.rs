//! The process-wide part of [`signal`](super): one `sigaction` handler per signal number, and a
//! fixed table of listeners the handler wakes.
//!
//! Why a handler and not `signalfd`: a signalfd sees a signal only while every thread of the
//! process blocks it. hoop does not own every thread (the program's own, a library's), and a
//! process-directed signal goes to any thread that does not block it; with the default action
//! that is the end of the process (`SIGINT`, `SIGTERM`). A handler catches the signal on whichever
//! thread the kernel picks, and tells each listener through its own eventfd, which its worker
//! reads like any other fd (on the ring, or by epoll readiness).
//!
//! The handler may only do async-signal-safe things: it reads atomics and calls `write(2)`. A
//! listener's slot names its signal and its eventfd; the handler marks a slot busy while it
//! uses the fd, and a listener that goes away waits for its slot to be idle before the eventfd
//! may close, so the handler never writes to an fd number that was closed (and perhaps reused).

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering::SeqCst};
use std::sync::{Mutex, OnceLock};

/// Listeners at once, in the whole process.
pub(super) const SLOTS: usize = 1024;

/// A slot nobody holds.
const FREE: RawFd = -1;
/// A slot being filled in: taken, not yet seen by the handler.
const FILLING: RawFd = -2;

struct Slot {
    /// The eventfd to write to, or `FREE`/`FILLING`.
    fd: AtomicI32,
    /// The signal number the listener waits for.
    signo: AtomicI32,
    /// The process that registered it: a child made by `fork` inherits the table (and the
    /// eventfds, shared with the parent), and must neither wake nor wait for the parent's.
    pid: AtomicI32,
    /// Handlers that are using this slot's fd right now.
    busy: AtomicU32,
}

static LISTENERS: [Slot; SLOTS] = [const {
    Slot {
        fd: AtomicI32::new(FREE),
        signo: AtomicI32::new(0),
        pid: AtomicI32::new(0),
        busy: AtomicU32::new(0),
    }
}; SLOTS];

/// Signal numbers run from 1 to `SIGRTMAX` (64 on Linux).
pub(super) const NSIG: usize = 65;

/// Signals whose handler is installed (it stays installed for the life of the process).
static INSTALLED: [AtomicBool; NSIG] = [const { AtomicBool::new(false) }; NSIG];

/// The disposition each signal had before hoop's handler replaced it: set before the handler is
/// installed, read (never written) by the handler, which calls a previous handler function too.
static PREVIOUS: [OnceLock<libc::sigaction>; NSIG] = [const { OnceLock::new() }; NSIG];

/// Signals whose previous handler was one-shot (`SA_RESETHAND`) and has run: not called again.
static PREVIOUS_SPENT: [AtomicBool; NSIG] = [const { AtomicBool::new(false) }; NSIG];

/// Serialises installations (never taken by the handler).
static INSTALLING: Mutex<()> = Mutex::new(());

/// Installs hoop's handler for `signo` if it is not installed yet.
pub(super) fn install(signo: libc::c_int) -> io::Result<()> {
    let index = signo as usize;
    if INSTALLED[index].load(SeqCst) {
        return Ok(());
    }
    let _guard = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    if INSTALLED[index].load(SeqCst) {
        return Ok(());
    }
    // SAFETY: a zeroed sigaction is a valid "no handler, empty mask" value; sigaction with a null
    // new action only reads the current one into it.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::sigaction(signo, std::ptr::null(), &mut old) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Recorded before the handler can run. A retry after a failed installation finds it set:
    // the disposition it holds is still the one in force.
    let _ = PREVIOUS[index].set(old);
    // SAFETY: as above for the zeroed value.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = handler as *const () as usize;
    new.sa_flags = flags_replacing(signo, &old);
    // Every signal blocked while the handler runs: a nested handler cannot interrupt it between
    // its `busy` count and its decrement (a `siglongjmp` out would leave a slot busy for good),
    // and a previous handler runs with at least the mask it asked for.
    // SAFETY: a valid sigset inside `new`.
    unsafe { libc::sigfillset(&mut new.sa_mask) };
    // SAFETY: `new` is a complete sigaction whose handler is the async-signal-safe `handler`
    // below, valid for the life of the process (a function item).
    if unsafe { libc::sigaction(signo, &new, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    INSTALLED[index].store(true, SeqCst);
    Ok(())
}

/// The flags of hoop's handler for `signo`, which replaces `old`: what the process chose before
/// is kept where it still means something. Interrupted syscalls restart unless a previous
/// handler chose `EINTR`; `SIGCHLD` keeps `SA_NOCLDSTOP`/`SA_NOCLDWAIT`, and a `SIGCHLD` that was
/// ignored (children reaped by the kernel) gets `SA_NOCLDWAIT`, so children are still reaped.
fn flags_replacing(signo: libc::c_int, old: &libc::sigaction) -> libc::c_int {
    let was_handler = old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN;
    let mut flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    if !was_handler || old.sa_flags & libc::SA_RESTART != 0 {
        flags |= libc::SA_RESTART;
    }
    if signo == libc::SIGCHLD {
        flags |= old.sa_flags & (libc::SA_NOCLDSTOP | libc::SA_NOCLDWAIT);
        if old.sa_sigaction == libc::SIG_IGN {
            flags |= libc::SA_NOCLDWAIT;
        }
    }
    flags
}

/// Takes a free slot for a listener of `signo` that waits on eventfd `fd`; its index.
pub(super) fn register(signo: libc::c_int, fd: RawFd) -> io::Result<usize> {
    for (index, slot) in LISTENERS.iter().enumerate() {
        if slot
            .fd
            .compare_exchange(FREE, FILLING, SeqCst, SeqCst)
            .is_ok()
        {
            // The signal number first: a handler that reads this fd then reads this number.
            slot.signo.store(signo, SeqCst);
            // SAFETY: getpid has no arguments and cannot fail.
            slot.pid.store(unsafe { libc::getpid() }, SeqCst);
            slot.fd.store(fd, SeqCst);
            return Ok(index);
        }
    }
    Err(io::Error::other(format!(
        "hoop: more than {SLOTS} signal listeners in this process"
    )))
}

/// Gives slot `index` back; once this returns, no handler writes to its eventfd any more.
pub(super) fn unregister(index: usize) {
    let slot = &LISTENERS[index];
    slot.fd.store(FILLING, SeqCst);
    // SAFETY: getpid has no arguments and cannot fail.
    if slot.pid.load(SeqCst) != unsafe { libc::getpid() } {
        // Registered by the parent of this forked process: no handler here writes to it (see
        // `handler`), and a busy count copied from the parent would never drop.
        slot.fd.store(FREE, SeqCst);
        return;
    }
    // A handler that read the fd before the store above is counted in `busy` (it counts itself
    // before it reads): wait for it. It runs on another thread (a handler that interrupted this
    // one has finished before this thread runs again), for the time of one `write`.
    while slot.busy.load(SeqCst) != 0 {
        std::hint::spin_loop();
        std::thread::yield_now();
    }
    slot.fd.store(FREE, SeqCst);
}

/// The signal handler: calls the handler that was there before, if it was a function, then
/// wakes every listener of `signo` in this process. Only atomics, `getpid(2)` and `write(2)`
/// (async-signal-safe); `errno` is kept for the code it interrupted.
extern "C" fn handler(signo: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: __errno_location returns this thread's errno, valid for the thread's life.
    let errno = unsafe { *libc::__errno_location() };
    call_previous(signo, info, context);
    // SAFETY: getpid has no arguments and cannot fail.
    let pid = unsafe { libc::getpid() };
    for slot in &LISTENERS {
        if slot.fd.load(SeqCst) < 0 {
            continue;
        }
        slot.busy.fetch_add(1, SeqCst);
        let fd = slot.fd.load(SeqCst);
        if fd >= 0 && slot.signo.load(SeqCst) == signo && slot.pid.load(SeqCst) == pid {
            let one: u64 = 1;
            // SAFETY: `fd` is an open eventfd: its listener cannot close it while `busy` counts
            // this handler (see `unregister`); the 8 bytes are a live local.
            unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
        }
        slot.busy.fetch_sub(1, SeqCst);
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Calls the handler the program had for `signo` before hoop's (once only if it was one-shot).
fn call_previous(signo: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let index = signo as usize;
    let Some(previous) = PREVIOUS.get(index).and_then(OnceLock::get) else {
        return;
    };
    let action = previous.sa_sigaction;
    if action == libc::SIG_DFL || action == libc::SIG_IGN {
        return;
    }
    if previous.sa_flags & libc::SA_RESETHAND != 0 && PREVIOUS_SPENT[index].swap(true, SeqCst) {
        return;
    }
    if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the program installed this three-argument handler for this signal; it gets
        // the arguments the kernel gave this one.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(action) };
        f(signo, info, context);
    } else {
        // SAFETY: the program installed this one-argument handler for this signal.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(action) };
        f(signo);
    }
}
