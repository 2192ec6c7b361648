//! Dropping in-flight operations and whole runtimes: no crash, no leaked fd, no buffer freed
//! while the kernel may write into it. Tests here count `/proc/self/fd`, so they run one at a
//! time.

#[path = "common/mod.rs"]
mod common;
use common::Tracked;

use hoop::Runtime;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Asserts the fd count comes back to `baseline` (or below: an fd of an earlier test, such as a
/// doorbell kept by a late waker, may close meanwhile). Releases on other threads get a moment.
fn assert_no_fd_leak(baseline: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while open_fds() > baseline && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let now = open_fds();
    assert!(now <= baseline, "{what}: {now} fds open, {baseline} before");
}

/// 10k reads on pipes that never get data, spawned as tasks; then the runtime is dropped.
#[test]
fn drop_runtime_with_10k_reads_in_flight() {
    let _serial = serial();
    for driver in common::drivers() {
        let baseline = open_fds();
        let owner = Arc::new(());
        {
            let rt = Runtime::builder()
                .workers(1)
                .driver(driver)
                .build()
                .unwrap();
            let o = owner.clone();
            rt.block_on(async move {
                let pipes: Vec<_> = (0..100).map(|_| hoop::io::pipe().unwrap()).collect();
                let pipes = std::rc::Rc::new(pipes);
                for i in 0..10_000 {
                    let pipes = pipes.clone();
                    let buf = Tracked::new(16, &o);
                    hoop::spawn(async move {
                        let _ = pipes[i % 100].0.read(buf).await;
                    })
                    .detach();
                }
                // Let every task submit its read.
                for _ in 0..200 {
                    hoop::yield_now().await;
                }
                assert_eq!(hoop::metrics().unwrap().tasks_alive, 10_000);
            });
            assert!(Arc::strong_count(&owner) > 10_000 / 2);
        } // runtime dropped with 10k reads in flight
        assert_eq!(
            Arc::strong_count(&owner),
            1,
            "{driver:?}: every buffer released after its completion"
        );
        assert_no_fd_leak(baseline, &format!("{driver:?}: no fd leaked"));
    }
}

/// Operations dropped in flight (reads, polls, multishot polls, timers) inside a running runtime
/// are cancelled and their buffers released; the runtime keeps working.
#[test]
fn dropping_in_flight_ops_releases_everything() {
    let _serial = serial();
    for driver in common::drivers() {
        let baseline = open_fds();
        let owner = Arc::new(());
        let rt = Runtime::builder()
            .workers(1)
            .driver(driver)
            .build()
            .unwrap();
        let o = owner.clone();
        rt.block_on(async move {
            let (r, _w) = hoop::io::pipe().unwrap();
            let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
            for _ in 0..1000 {
                let buf = Tracked::new(8, &o);
                let read = r.read(buf);
                let poll = hoop::io::wait_ready(
                    std::os::fd::AsFd::as_fd(&a),
                    hoop::io::Interest::READABLE,
                );
                let sleep = hoop::time::sleep(Duration::from_secs(60));
                // Each is polled once (submitted), then all are dropped by the timeout.
                let r = hoop::time::timeout(Duration::from_micros(1), async {
                    futures_util::join!(read, poll, sleep)
                })
                .await;
                assert!(r.is_err());
            }
            let mut stream =
                hoop::io::ready_stream(std::os::fd::AsFd::as_fd(&a), hoop::io::Interest::READABLE);
            let _ = hoop::time::timeout(
                Duration::from_millis(1),
                futures_util::StreamExt::next(&mut stream),
            )
            .await;
            drop(stream);
            let deadline = Instant::now() + Duration::from_secs(5);
            while hoop::metrics().unwrap().ops_in_flight > 0 {
                assert!(Instant::now() < deadline, "cancelled ops never completed");
                hoop::io::nop().await.unwrap();
            }
            assert_eq!(
                hoop::metrics().unwrap().timers,
                0,
                "dropped sleeps left no timer"
            );
        });
        assert_eq!(Arc::strong_count(&owner), 1);
        drop(rt);
        assert_no_fd_leak(baseline, &format!("{driver:?}: no fd leaked"));
    }
}

/// An op future that outlives its runtime: the runtime's drain completed it, so dropping it later
/// is safe, and polling it in another runtime gives an error instead of hanging or crashing.
#[test]
fn op_future_outliving_its_runtime() {
    let _serial = serial();
    for driver in common::drivers() {
        let owner = Arc::new(());
        let (r, w, pending) = {
            let rt = Runtime::builder()
                .workers(1)
                .driver(driver)
                .build()
                .unwrap();
            let o = owner.clone();
            rt.block_on(async move {
                let (r, w) = hoop::io::pipe().unwrap();
                let buf = Tracked::new(8, &o);
                let reader = std::rc::Rc::new(r);
                let r2 = reader.clone();
                let mut fut = Box::pin(async move { r2.read(buf).await.0.map(|_| ()) });
                let waker = futures_util::task::noop_waker();
                assert!(fut
                    .as_mut()
                    .poll(&mut std::task::Context::from_waker(&waker))
                    .is_pending());
                // The writer stays open: the read is still pending when the runtime shuts down.
                (reader, w, fut)
            })
        };
        let rt = Runtime::builder()
            .workers(1)
            .driver(driver)
            .build()
            .unwrap();
        let res = rt.block_on(pending);
        let err = res.unwrap_err();
        assert!(err.to_string().contains("shut down"), "{driver:?}: {err}");
        drop((r, w));
        assert_eq!(Arc::strong_count(&owner), 1);
    }
}

use std::future::Future;

/// Starts a zero-copy send of `len` bytes in a runtime that is then dropped (after filling the
/// socket first if `fill`), and polls the send to its end in a second runtime.
fn zero_copy_send_across_shutdown(
    driver: hoop::DriverChoice,
    len: usize,
    fill: bool,
) -> io::Result<usize> {
    let (peers, pending) = {
        let rt = Runtime::builder()
            .workers(1)
            .driver(driver)
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = hoop::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let (client, accepted) =
                futures_util::join!(hoop::net::TcpStream::connect(addr), listener.accept());
            let client = std::rc::Rc::new(client.unwrap());
            if fill {
                // The socket is non-blocking: fill it until the kernel refuses more.
                let chunk = [1u8; 64 * 1024];
                while client.socket().send(&chunk).is_ok() {}
            }
            let c = client.clone();
            let mut fut = Box::pin(async move { c.send_zc(vec![7u8; len]).await.0 });
            let waker = futures_util::task::noop_waker();
            let first = fut
                .as_mut()
                .poll(&mut std::task::Context::from_waker(&waker));
            ((client, accepted.unwrap().0), (first, fut))
        })
    };
    let res = match pending {
        // The epoll driver sends at once if it can (a plain send).
        (std::task::Poll::Ready(res), _) => res,
        (std::task::Poll::Pending, fut) => {
            let rt = Runtime::builder()
                .workers(1)
                .driver(driver)
                .build()
                .unwrap();
            rt.block_on(hoop::time::timeout(Duration::from_secs(10), fut))
                .expect("the op must not wait after its runtime is gone")
        }
    };
    drop(peers);
    res
}

/// A zero-copy send in flight when its runtime shuts down: the drain completes it, and polling
/// its future afterwards reports what was sent (carried by the first of its two completions),
/// not the notification's zero; one the shutdown cancelled (its socket was full) reports the
/// shutdown, as every cancelled operation does on both drivers.
#[test]
fn zero_copy_send_outliving_its_runtime_reports_its_bytes_or_the_shutdown() {
    let _serial = serial();
    const LEN: usize = 32 * 1024;
    for driver in common::drivers() {
        let sent = zero_copy_send_across_shutdown(driver, LEN, false);
        assert_eq!(sent.unwrap(), LEN, "{driver:?}");
        let err = zero_copy_send_across_shutdown(driver, LEN, true).unwrap_err();
        assert!(err.to_string().contains("shut down"), "{driver:?}: {err}");
    }
}

/// Creating and dropping runtimes keeps the fd count flat (eventfds, rings, epoll fds).
#[test]
fn runtime_churn_keeps_fds_flat() {
    let _serial = serial();
    for driver in common::drivers() {
        let baseline = open_fds();
        for _ in 0..300 {
            let rt = Runtime::builder()
                .workers(1)
                .driver(driver)
                .build()
                .unwrap();
            rt.block_on(async { hoop::io::nop().await.unwrap() });
        }
        let rt = Runtime::builder()
            .workers(2)
            .driver(driver)
            .build()
            .unwrap();
        rt.run(|_| async { hoop::time::sleep(Duration::from_millis(1)).await });
        drop(rt);
        assert_no_fd_leak(
            baseline,
            &format!("{driver:?}: fds leaked by runtime churn"),
        );
    }
}

/// An fd registered with the epoll driver and closed while no runtime is current must not leave
/// a stale registration behind: a new fd reusing its number still gets its wake-ups.
#[test]
fn closed_fd_number_reuse_keeps_wakeups() {
    let _serial = serial(); // no other test opens fds meanwhile: the number is reused
    let rt = hoop::Runtime::builder()
        .workers(1)
        .driver(hoop::DriverChoice::Epoll)
        .build()
        .unwrap();
    let (r1, w1, n1) = rt.block_on(async {
        let (r, w) = hoop::io::pipe().unwrap();
        let n = std::os::fd::AsRawFd::as_raw_fd(&r);
        let reader = hoop::spawn(async move {
            let res = r.read(vec![0u8; 4]).await;
            (res, r)
        });
        hoop::yield_now().await; // the read waits: the fd is registered
        w.write_all(b"x".to_vec()).await.0.unwrap();
        let ((n_read, _), r) = reader.await.unwrap();
        assert_eq!(n_read.unwrap(), 1);
        (r, w, n)
    });
    drop((r1, w1)); // closed outside the runtime
    rt.block_on(async {
        let (r, w) = hoop::io::pipe().unwrap();
        assert_eq!(
            std::os::fd::AsRawFd::as_raw_fd(&r),
            n1,
            "the fd number is reused"
        );
        let mut w = std::fs::File::from(std::os::fd::AsFd::as_fd(&w).try_clone_to_owned().unwrap());
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            std::io::Write::write_all(&mut w, b"y").unwrap();
        });
        let res = hoop::time::timeout(Duration::from_secs(5), r.read(vec![0u8; 4])).await;
        let (n, buf) = res.expect("the read was never woken");
        assert_eq!(&buf[..n.unwrap()], b"y");
        writer.join().unwrap();
    });
}

/// True if fd `fd` is open and names `path`.
fn fd_names(fd: i32, path: &std::path::Path) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok_and(|p| p == path)
}

/// Review-2 L1: a close the kernel never ran (here: polled outside any runtime; the same rule
/// covers a runtime gone and a pool shut down) still closes the fd.
#[test]
fn a_close_that_never_ran_still_closes_the_fd() {
    use std::os::fd::AsRawFd;
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("hoop-close-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for driver in common::drivers() {
        let path = dir.join(format!("{driver:?}"));
        std::fs::write(&path, b"x").unwrap();
        let rt = Runtime::builder()
            .workers(1)
            .driver(driver)
            .build()
            .unwrap();
        // Outside any runtime: the close fails with "no runtime".
        let file = rt.block_on(hoop::fs::File::open(&path)).unwrap();
        let fd = file.as_raw_fd();
        let res = futures_util::FutureExt::now_or_never(file.close()).expect("ready at once");
        assert!(res.is_err());
        assert!(
            !fd_names(fd, &path),
            "{driver:?}: fd {fd} leaked (no runtime)"
        );
        drop(rt);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A pool operation whose own result is `ECANCELED` (a syscall may give it).
struct OwnCancel;

// SAFETY: no SQE, and `perform` touches nothing but a sleep.
unsafe impl hoop::op::OpCode for OwnCancel {
    type Output = io::Result<u32>;
    fn uring_entry(&mut self) -> Option<io_uring::squeue::Entry> {
        None
    }
    fn plan(&self) -> hoop::op::Plan {
        hoop::op::Plan::Blocking
    }
    fn perform(&mut self) -> io::Result<u32> {
        std::thread::sleep(Duration::from_millis(30));
        Err(io::Error::from_raw_os_error(libc::ECANCELED))
    }
    fn complete(self, result: io::Result<u32>) -> io::Result<u32> {
        result
    }
}

/// Review-2 L6: an operation whose completion arrived during the shutdown's drain reports its
/// own result when polled later, also a genuine `ECANCELED` (before: a pool op never resolved).
#[test]
fn an_operations_own_ecanceled_survives_the_shutdown() {
    let _serial = serial();
    for driver in common::drivers() {
        let rt = Runtime::builder()
            .workers(1)
            .driver(driver)
            .build()
            .unwrap();
        // (A one-tuple: the future itself, returned from an async block, would look unawaited.)
        let (pending,) = rt.block_on(async {
            let mut op = Box::pin(hoop::op::Op::new(OwnCancel));
            let waker = futures_util::task::noop_waker();
            let mut cx = std::task::Context::from_waker(&waker);
            assert!(op.as_mut().poll(&mut cx).is_pending());
            (op,)
        });
        drop(rt); // waits for the pool job
        let other = Runtime::builder()
            .workers(1)
            .driver(driver)
            .build()
            .unwrap();
        let res = other.block_on(async {
            hoop::time::timeout(Duration::from_secs(2), pending)
                .await
                .expect("the op never resolved")
        });
        assert_eq!(
            res.unwrap_err().raw_os_error(),
            Some(libc::ECANCELED),
            "{driver:?}"
        );
    }
}
