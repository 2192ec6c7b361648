//! Unix signals as async events: [`ctrl_c`], and a [`Signal`] listener per signal kind.
//!
//! ```
//! # hoop_runtime::block_on(async {
//! use hoop_runtime::signal::{signal, SignalKind};
//! let mut reload = signal(SignalKind::hangup())?;
//! let mut stop = signal(SignalKind::terminate())?;
//! # let me = std::process::id().to_string();
//! # std::process::Command::new("kill").args(["-HUP", &me]).status()?;
//! reload.recv().await?; // `kill -HUP <pid>`: reload the configuration
//! # std::process::Command::new("kill").args(["-TERM", &me]).status()?;
//! stop.recv().await?; // `kill <pid>`: stop accepting, finish what is in flight, exit
//! # Ok::<(), std::io::Error>(())
//! # }).unwrap();
//! ```
//!
//! How it works, and what it means for a program:
//!
//! - The first listener of a signal installs a process-wide handler for it, which stays for the
//!   life of the process: from then on the signal no longer has its default action (a `SIGINT`
//!   no longer ends the process; listeners decide what happens). A handler the program had
//!   installed before is still called, before the listeners are woken (once, if it was
//!   `SA_RESETHAND`); interrupted syscalls restart unless that handler chose `EINTR`; a
//!   `SIGCHLD` keeps its `SA_NOCLDSTOP`/`SA_NOCLDWAIT`, and one that was ignored keeps having
//!   its children reaped by the kernel.
//! - A child made by `fork` inherits the handler, not the listeners: its signals wake nobody in
//!   the parent.
//! - Each listener has its own eventfd, which the handler writes to and its worker reads like any
//!   other fd (through the ring on io_uring, by readiness on epoll). Every listener of a signal
//!   sees every delivery, on whichever worker it lives, and whichever thread the kernel picked
//!   for the handler.
//! - Deliveries that come while nobody receives are kept, merged into one: a listener that
//!   receives after three `SIGHUP`s sees one event (the kernel merges pending standard signals
//!   the same way). A delivery before the listener exists is not seen.
//! - Not `signalfd`: a signalfd sees a signal only while *every* thread of the process blocks
//!   it, which hoop cannot promise for threads it did not start; with one thread unblocked, a
//!   `SIGTERM` would end the process instead of reaching the listener.
//! - The signals the kernel raises for faults (`SIGSEGV`, `SIGBUS`, `SIGFPE`, `SIGILL`,
//!   `SIGTRAP`, `SIGSYS`) and the ones that cannot be caught (`SIGKILL`, `SIGSTOP`) are refused
//!   with `InvalidInput`.

mod registry;

use crate::fd::SharedFd;
use crate::op::rw::{FdKind, Read, CURRENT_POSITION};
use crate::op::Op;
use futures_core::Stream;
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A signal number, with constructors for the common ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SignalKind(libc::c_int);

impl SignalKind {
    /// Any signal number (`libc::SIGWINCH`, a real-time signal `SIGRTMIN() + n`, ...).
    pub const fn from_raw(signo: libc::c_int) -> SignalKind {
        SignalKind(signo)
    }

    /// The signal number.
    pub const fn as_raw(self) -> libc::c_int {
        self.0
    }

    /// `SIGINT`: Ctrl-C in a terminal.
    pub const fn interrupt() -> SignalKind {
        SignalKind(libc::SIGINT)
    }

    /// `SIGTERM`: the polite request to stop (`kill`, systemd, container runtimes).
    pub const fn terminate() -> SignalKind {
        SignalKind(libc::SIGTERM)
    }

    /// `SIGHUP`: the terminal went away; by convention, reload the configuration.
    pub const fn hangup() -> SignalKind {
        SignalKind(libc::SIGHUP)
    }

    /// `SIGQUIT`: Ctrl-\ in a terminal.
    pub const fn quit() -> SignalKind {
        SignalKind(libc::SIGQUIT)
    }

    /// `SIGUSR1`.
    pub const fn user_defined1() -> SignalKind {
        SignalKind(libc::SIGUSR1)
    }

    /// `SIGUSR2`.
    pub const fn user_defined2() -> SignalKind {
        SignalKind(libc::SIGUSR2)
    }

    /// `SIGCHLD`: a child process stopped or ended.
    pub const fn child() -> SignalKind {
        SignalKind(libc::SIGCHLD)
    }

    /// `SIGALRM`.
    pub const fn alarm() -> SignalKind {
        SignalKind(libc::SIGALRM)
    }

    /// `SIGWINCH`: the terminal changed size.
    pub const fn window_change() -> SignalKind {
        SignalKind(libc::SIGWINCH)
    }

    /// `SIGPIPE`. hoop's threads keep it blocked (a write to a closed socket fails with `EPIPE`
    /// instead), so a listener sees only the ones sent to the process by another.
    pub const fn pipe() -> SignalKind {
        SignalKind(libc::SIGPIPE)
    }
}

/// Why `signo` cannot have a listener, if it cannot.
fn refused(signo: libc::c_int) -> Option<&'static str> {
    if !(1..registry::NSIG as libc::c_int).contains(&signo) {
        return Some("not a signal number");
    }
    if [libc::SIGKILL, libc::SIGSTOP].contains(&signo) {
        return Some("the kernel does not let it be caught");
    }
    if crate::sys::signals::FORCED.contains(&signo) {
        return Some("raised by faults: a handler that returns would run the fault again");
    }
    None
}

/// Listens for `kind`: every delivery from now on (merged while nobody receives) is an event of
/// the returned [`Signal`]. See the [module docs](self) for what listening changes.
///
/// Errors: `InvalidInput` for a signal that cannot be listened to; the `eventfd(2)` or
/// `sigaction(2)` error; an error when the process already has 1024 listeners.
pub fn signal(kind: SignalKind) -> io::Result<Signal> {
    let signo = kind.as_raw();
    if let Some(why) = refused(signo) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("hoop: cannot listen for signal {signo}: {why}"),
        ));
    }
    // SAFETY: eventfd takes no pointers; the result is checked below.
    let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: eventfd just created `raw`, and nothing else owns it.
    let fd = SharedFd::new(unsafe { OwnedFd::from_raw_fd(raw) });
    fd.mark_nonblocking_stream();
    registry::install(signo)?;
    let slot = registry::register(signo, fd.as_raw_fd())?;
    Ok(Signal {
        kind,
        slot,
        fd,
        read: None,
    })
}

/// Waits for one `SIGINT` (Ctrl-C) delivered after the call's first poll.
///
/// ```
/// # hoop_runtime::block_on(async {
/// hoop_runtime::spawn(async { /* serve */ }).detach();
/// # let me = std::process::id().to_string();
/// # hoop_runtime::spawn(async move {
/// #     hoop_runtime::time::sleep(std::time::Duration::from_millis(50)).await;
/// #     std::process::Command::new("kill").args(["-INT", &me]).status().unwrap();
/// # }).detach();
/// hoop_runtime::signal::ctrl_c().await?;
/// println!("bye");
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn ctrl_c() -> io::Result<()> {
    signal(SignalKind::interrupt())?.recv().await
}

type EventRead = Op<Read<Vec<u8>>>;

/// The deliveries of one signal kind to this process, as they come: [`recv`](Signal::recv) or
/// the [`Stream`] of `io::Result<()>` (which never ends).
///
/// It belongs to the worker that receives on it first (its eventfd is read there); it is not
/// `Send`. Dropping it removes the listener; the signal's handler stays (see the module docs).
pub struct Signal {
    kind: SignalKind,
    /// Its place in the process's listener table.
    slot: usize,
    /// The eventfd the handler writes to.
    fd: SharedFd,
    /// The read of the eventfd in flight, kept between polls of the stream.
    read: Option<Pin<Box<EventRead>>>,
}

impl Signal {
    /// The signal it listens for.
    pub fn kind(&self) -> SignalKind {
        self.kind
    }

    /// Waits for the next delivery (or returns at once for one that came since the last).
    ///
    /// Cancel safe: dropping the future loses no delivery.
    pub async fn recv(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next delivery; the waker is woken when one comes.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let read = self.read.get_or_insert_with(|| {
            Box::pin(Op::new(Read::new(
                &self.fd,
                Vec::with_capacity(8),
                CURRENT_POSITION,
                FdKind::Stream,
            )))
        });
        let (res, _) = std::task::ready!(read.as_mut().poll(cx));
        self.read = None;
        // An eventfd read is 8 bytes (the count of writes since the last), or an error.
        Poll::Ready(res.map(|_| ()))
    }
}

impl Stream for Signal {
    type Item = io::Result<()>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<()>>> {
        self.get_mut().poll_recv(cx).map(Some)
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        // Before the eventfd can close (with the last of `fd`, or of the read in flight).
        registry::unregister(self.slot);
    }
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signal")
            .field("kind", &self.kind)
            .field("fd", &self.fd.as_raw_fd())
            .finish()
    }
}
