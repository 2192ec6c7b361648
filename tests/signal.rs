//! `hoop::signal` on both drivers: deliveries wake listeners, merge while nobody receives, reach
//! every listener on every runtime; dropped listeners free their slots; signals that cannot be
//! listened to are refused; a handler the program had is still called.
//!
//! Each test (and each driver's run of it) uses its own real-time signal, so that tests running
//! side by side in this process never see each other's deliveries.

#[path = "common/mod.rs"]
mod common;

use hoop::signal::{signal, SignalKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A real-time signal for test `n` on the current driver.
fn rt_signal(n: i32) -> SignalKind {
    let driver = hoop::runtime_info()
        .map(|i| i.driver as i32 % 2)
        .unwrap_or(0);
    let signo = libc::SIGRTMIN() + 2 * n + driver;
    assert!(signo <= libc::SIGRTMAX());
    SignalKind::from_raw(signo)
}

/// To the process: the kernel picks the thread, and the handler may run a little later.
fn send(kind: SignalKind) {
    // SAFETY: kill takes no pointers; this process has a handler for the signal (a listener
    // exists before every send here).
    assert_eq!(unsafe { libc::kill(libc::getpid(), kind.as_raw()) }, 0);
}

/// To this thread, which does not block it: the handler has run when this returns.
fn send_here(kind: SignalKind) {
    // SAFETY: pthread_kill of the calling thread with a signal it does not block, which has a
    // handler (a listener exists before every send here).
    assert_eq!(
        unsafe { libc::pthread_kill(libc::pthread_self(), kind.as_raw()) },
        0
    );
}

async fn recv_within(sig: &mut hoop::signal::Signal, limit: Duration) -> bool {
    match hoop::time::timeout(limit, sig.recv()).await {
        Ok(res) => {
            res.unwrap();
            true
        }
        Err(_) => false,
    }
}

#[hoop::test]
async fn a_waiting_listener_is_woken_by_each_delivery() {
    let kind = rt_signal(0);
    let mut sig = signal(kind).unwrap();
    assert_eq!(sig.kind(), kind);
    for _ in 0..3 {
        hoop::spawn(async move {
            hoop::time::sleep(Duration::from_millis(20)).await;
            send(kind);
        })
        .detach();
        assert!(recv_within(&mut sig, Duration::from_secs(5)).await);
    }
}

#[hoop::test]
async fn deliveries_while_nobody_receives_are_kept_and_merged() {
    let kind = rt_signal(1);
    let mut sig = signal(kind).unwrap();
    for _ in 0..3 {
        send_here(kind);
    }
    assert!(recv_within(&mut sig, Duration::from_secs(5)).await);
    assert!(
        !recv_within(&mut sig, Duration::from_millis(100)).await,
        "three deliveries made more than one event"
    );
    // The receive the timeout dropped lost nothing: the next delivery is seen.
    send_here(kind);
    assert!(recv_within(&mut sig, Duration::from_secs(5)).await);
}

#[hoop::test]
async fn every_listener_on_every_runtime_sees_every_delivery() {
    let kind = rt_signal(2);
    let mut a = signal(kind).unwrap();
    let mut b = signal(kind).unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let driver = hoop::runtime_info().unwrap().driver;
    // A listener of a runtime on another thread (same driver).
    let other = std::thread::spawn(move || {
        let choice = match driver {
            hoop::DriverKind::IoUring => hoop::DriverChoice::IoUring,
            _ => hoop::DriverChoice::Epoll,
        };
        let rt = hoop::Builder::new().driver(choice).build().unwrap();
        rt.block_on(async {
            let mut c = signal(kind).unwrap();
            ready_tx.send(()).unwrap();
            let got = recv_within(&mut c, Duration::from_secs(5)).await;
            done_tx.send(got).unwrap();
        });
    });
    ready_rx.recv().unwrap();
    send(kind);
    assert!(recv_within(&mut a, Duration::from_secs(5)).await);
    assert!(recv_within(&mut b, Duration::from_secs(5)).await);
    assert!(
        done_rx.recv().unwrap(),
        "the other runtime's listener missed it"
    );
    other.join().unwrap();
}

/// More listeners than the process-wide table holds, one after the other (some dropped with a
/// read in flight): every slot comes back, and no eventfd is left open. The drivers one after
/// the other, in one test: the fd count is the process's.
#[test]
fn dropped_listeners_free_their_slots_and_fds() {
    for driver in common::drivers() {
        let rt = hoop::Builder::new().driver(driver).build().unwrap();
        rt.block_on(async {
            let kind = rt_signal(3);
            let before = std::fs::read_dir("/proc/self/fd").unwrap().count();
            for i in 0..2500 {
                let mut sig = signal(kind).unwrap();
                if i % 2 == 0 {
                    // A read in flight when the listener goes.
                    let waker = futures_util::task::noop_waker();
                    let mut cx = std::task::Context::from_waker(&waker);
                    assert!(sig.poll_recv(&mut cx).is_pending());
                }
            }
            // Deliveries after the drops reach nobody, and hurt nobody.
            send(kind);
            let mut sig = signal(kind).unwrap();
            send(kind);
            assert!(recv_within(&mut sig, Duration::from_secs(5)).await);
            drop(sig);
            hoop::time::sleep(Duration::from_millis(20)).await;
            let after = std::fs::read_dir("/proc/self/fd").unwrap().count();
            // Other tests run beside this one: allow their few fds, not 2500 leaked eventfds.
            assert!(
                after < before + 100,
                "{driver:?}: fds: {before} before, {after} after"
            );
        });
    }
}

#[test]
fn signals_that_cannot_be_listened_to_are_refused() {
    for signo in [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGILL,
        0,
        65,
        -1,
    ] {
        let err = signal(SignalKind::from_raw(signo)).unwrap_err();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::InvalidInput,
            "{signo}: {err}"
        );
    }
}

static PREVIOUS_CALLS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn previous_handler(_: libc::c_int) {
    PREVIOUS_CALLS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_handler_the_program_had_is_still_called() {
    let kind = SignalKind::from_raw(libc::SIGRTMAX());
    // SAFETY: a zeroed sigaction is valid; `previous_handler` only touches an atomic
    // (async-signal-safe) and lives for the whole process.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = previous_handler as *const () as usize;
        libc::sigemptyset(&mut act.sa_mask);
        assert_eq!(
            libc::sigaction(kind.as_raw(), &act, std::ptr::null_mut()),
            0
        );
    }
    for driver in common::drivers() {
        let rt = hoop::Builder::new().driver(driver).build().unwrap();
        rt.block_on(async {
            let before = PREVIOUS_CALLS.load(Ordering::SeqCst);
            let mut sig = signal(kind).unwrap();
            send_here(kind);
            assert!(recv_within(&mut sig, Duration::from_secs(5)).await);
            assert_eq!(PREVIOUS_CALLS.load(Ordering::SeqCst), before + 1);
        });
    }
}

/// A child made by `fork` inherits the handler and the listener table, and shares the
/// listeners' eventfds with the parent: its own signals must not wake the parent's listeners.
#[hoop::test]
async fn a_forked_child_does_not_wake_the_parents_listeners() {
    let kind = rt_signal(4);
    let mut sig = signal(kind).unwrap();
    // SAFETY: the child only makes async-signal-safe calls (pthread_kill, which runs hoop's
    // handler: getpid, atomics) and leaves with _exit; the parent waits for it.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            libc::pthread_kill(libc::pthread_self(), kind.as_raw());
            libc::_exit(0);
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
    assert!(
        !recv_within(&mut sig, Duration::from_millis(200)).await,
        "the child's signal woke the parent's listener"
    );
    send_here(kind);
    assert!(recv_within(&mut sig, Duration::from_secs(5)).await);
}

/// `SIGINT` with a listener does not end the process; `ctrl_c` returns.
#[hoop::test]
async fn ctrl_c_returns_on_sigint() {
    let waiting = hoop::signal::ctrl_c();
    let mut waiting = std::pin::pin!(waiting);
    // The first poll registers the listener; only then may SIGINT come.
    let waker = futures_util::task::noop_waker();
    let _ = waiting
        .as_mut()
        .poll(&mut std::task::Context::from_waker(&waker));
    send(SignalKind::interrupt());
    hoop::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("ctrl_c did not return")
        .unwrap();
}

use std::future::Future;
