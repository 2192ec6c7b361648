//! Executor: spawn, join, abort, panics, yield, budget, cross-thread wakes, thread-per-core.

#[path = "common/mod.rs"]
mod common;
use std::cell::Cell;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[hoop::test]
async fn spawn_and_join() {
    let shared = Rc::new(Cell::new(0)); // !Send is fine
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let s = shared.clone();
            hoop::spawn(async move {
                s.set(s.get() + 1);
                i * 2
            })
        })
        .collect();
    let mut sum = 0;
    for h in handles {
        sum += h.await.unwrap();
    }
    assert_eq!(sum, (0..100).map(|i| i * 2).sum::<i32>());
    assert_eq!(shared.get(), 100);
}

#[hoop::test]
async fn abort_cancels_a_pending_task() {
    let dropped = Rc::new(Cell::new(false));
    struct SetOnDrop(Rc<Cell<bool>>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let guard = SetOnDrop(dropped.clone());
    let h = hoop::spawn(async move {
        let _g = guard;
        std::future::pending::<()>().await;
    });
    hoop::yield_now().await;
    assert!(!h.is_finished());
    h.abort();
    let err = h.await.unwrap_err();
    assert!(err.is_cancelled());
    assert!(dropped.get(), "the aborted task's future was dropped");
}

/// Aborted before its first poll: the body never runs.
#[hoop::test]
async fn abort_before_the_first_poll_never_runs_the_body() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let h = hoop::spawn(async move { r.set(true) });
    h.abort();
    assert!(h.await.unwrap_err().is_cancelled());
    hoop::yield_now().await;
    assert!(!ran.get());
}

/// Aborted from another thread while its worker is busy, after the spawn reached the worker's
/// inbox or before: either way the body never runs and the handle says cancelled.
#[test]
fn abort_of_a_task_on_a_busy_worker_never_runs_the_body() {
    for driver in common::drivers() {
        let rt = hoop::Runtime::builder()
            .workers(2)
            .driver(driver)
            .build()
            .unwrap();
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (busy_tx, busy_rx) = std::sync::mpsc::channel();
        // Worker 1 blocks its thread until told, so the next spawns wait in its inbox.
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let blocker = rt.handle().spawn_on(1, async move {
            started_tx.send(()).unwrap();
            let _ = busy_rx.recv();
        });
        started_rx.recv().unwrap();
        let r = ran.clone();
        let h = rt.handle().spawn_on(1, async move {
            r.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        // Nor does a `spawn_on_with` closure run once its task is aborted.
        let made = Arc::new(AtomicBool::new(false));
        let m = made.clone();
        let h2 = rt.handle().spawn_on_with(1, move || {
            m.store(true, Ordering::SeqCst);
            async {}
        });
        std::thread::sleep(Duration::from_millis(20));
        h.abort();
        h2.abort();
        busy_tx.send(()).unwrap();
        assert!(rt.block_on(h).unwrap_err().is_cancelled(), "{driver:?}");
        assert!(rt.block_on(h2).unwrap_err().is_cancelled(), "{driver:?}");
        rt.block_on(blocker).unwrap();
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst), "{driver:?}");
        assert!(
            !made.load(Ordering::SeqCst),
            "{driver:?}: make ran after the abort"
        );
    }
}

#[hoop::test]
async fn abort_after_finish_keeps_output() {
    let h = hoop::spawn(async { 7 });
    hoop::yield_now().await;
    hoop::yield_now().await;
    h.abort();
    assert_eq!(h.await.unwrap(), 7);
}

#[hoop::test]
async fn panic_becomes_join_error_and_worker_survives() {
    let h = hoop::spawn(async {
        panic!("boom");
    });
    let err = h.await.unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.to_string(), "task panicked: boom");
    // The worker keeps running tasks.
    assert_eq!(hoop::spawn(async { 1 }).await.unwrap(), 1);
}

#[hoop::test]
async fn detached_task_runs_to_completion() {
    let flag = Rc::new(Cell::new(false));
    let f = flag.clone();
    hoop::spawn(async move {
        hoop::yield_now().await;
        f.set(true);
    })
    .detach();
    for _ in 0..10 {
        hoop::yield_now().await;
    }
    assert!(flag.get());
}

#[hoop::test]
async fn yield_ping_pong_interleaves() {
    let log = Rc::new(std::cell::RefCell::new(Vec::new()));
    let (a, b) = (log.clone(), log.clone());
    let t1 = hoop::spawn(async move {
        for i in 0..3 {
            a.borrow_mut().push(("a", i));
            hoop::yield_now().await;
        }
    });
    let t2 = hoop::spawn(async move {
        for i in 0..3 {
            b.borrow_mut().push(("b", i));
            hoop::yield_now().await;
        }
    });
    t1.await.unwrap();
    t2.await.unwrap();
    let log = log.borrow();
    assert_eq!(log[..4], [("a", 0), ("b", 0), ("a", 1), ("b", 1)]);
}

/// A task that never blocks (it only yields) must not starve I/O completions or timers.
#[hoop::test]
async fn busy_task_does_not_starve_completions() {
    let stop = Rc::new(Cell::new(false));
    let s = stop.clone();
    let spinner = hoop::spawn(async move {
        while !s.get() {
            hoop::yield_now().await;
        }
    });
    let (r, w) = hoop::io::pipe().unwrap();
    let mut w = std::fs::File::from(w.as_fd().try_clone_to_owned().unwrap());
    // The write happens on another thread, completing the read through the kernel.
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        std::io::Write::write_all(&mut w, b"ping").unwrap();
    });
    let (n, buf) = r.read(vec![0u8; 8]).await;
    assert_eq!(&buf[..n.unwrap()], b"ping");
    writer.join().unwrap();
    hoop::time::sleep(Duration::from_millis(5)).await;
    stop.set(true);
    spinner.await.unwrap();
}

/// A wake from another thread reaches a worker parked in the kernel, promptly.
#[hoop::test]
async fn cross_thread_wake_unparks_the_worker() {
    let (tx, rx) = std::sync::mpsc::channel::<std::task::Waker>();
    let woke = Arc::new(AtomicBool::new(false));
    let w2 = woke.clone();
    let thread = std::thread::spawn(move || {
        let waker = rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        w2.store(true, Ordering::SeqCst);
        let start = Instant::now();
        waker.wake();
        start
    });
    let mut sent = false;
    std::future::poll_fn(|cx| {
        if woke.load(Ordering::SeqCst) {
            return std::task::Poll::Ready(());
        }
        if !sent {
            tx.send(cx.waker().clone()).unwrap();
            sent = true;
        }
        std::task::Poll::Pending
    })
    .await;
    let woken_at = thread.join().unwrap();
    // Generous bound: the point is "not stuck until some timeout", on a noisy machine.
    assert!(woken_at.elapsed() < Duration::from_secs(2));
}

/// Lost-wake stress: four threads take turns handing items to a task that parks between them,
/// each waking it from its own thread; the task acknowledges every item (once as a spawned
/// task, once as `block_on`'s future). A lost wake leaves a
/// producer waiting for its acknowledgement until the task's watchdog timer polls it again,
/// which the producer sees as a wait of seconds.
#[hoop::test]
async fn cross_thread_wakes_under_contention_are_never_lost() {
    // A spawned task is woken through the worker's inbox, `block_on`'s future by its own flag.
    hoop::spawn(wake_ping_pong()).await.unwrap();
    wake_ping_pong().await;
}

async fn wake_ping_pong() {
    use futures_util::task::AtomicWaker;
    const PRODUCERS: usize = 4;
    const EACH: usize = 2_000;
    let produced = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(AtomicUsize::new(0));
    let waker = Arc::new(AtomicWaker::new());
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let (produced, acked, waker) = (produced.clone(), acked.clone(), waker.clone());
            std::thread::spawn(move || {
                let mut longest = Duration::ZERO;
                for _ in 0..EACH {
                    // One item in flight at a time across all producers: claim the next one.
                    let mine = loop {
                        let done = acked.load(Ordering::SeqCst);
                        if produced
                            .compare_exchange(done, done + 1, Ordering::SeqCst, Ordering::SeqCst)
                            .is_ok()
                        {
                            break done + 1;
                        }
                        std::thread::yield_now();
                    };
                    // Give the worker time to park, so that most wakes must unpark it.
                    std::thread::sleep(Duration::from_micros(50));
                    waker.wake();
                    let start = Instant::now();
                    while acked.load(Ordering::SeqCst) < mine {
                        std::thread::yield_now();
                    }
                    longest = longest.max(start.elapsed());
                }
                longest
            })
        })
        .collect();
    let total = PRODUCERS * EACH;
    let consumer = std::future::poll_fn(|cx| {
        waker.register(cx.waker());
        let now = produced.load(Ordering::SeqCst);
        acked.store(now, Ordering::SeqCst);
        if now == total {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    });
    // The watchdog only bounds the test; its wake-ups are what a lost wake would wait for.
    let mut watchdog = hoop::time::interval(Duration::from_secs(5));
    let mut consumer = std::pin::pin!(consumer);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let tick = std::pin::pin!(watchdog.tick());
        match futures_util::future::select(consumer.as_mut(), tick).await {
            futures_util::future::Either::Left(((), _)) => break,
            futures_util::future::Either::Right(_) => {
                assert!(
                    Instant::now() < deadline,
                    "the task stopped making progress"
                );
            }
        }
    }
    for p in producers {
        let longest = p.join().unwrap();
        assert!(
            longest < Duration::from_secs(3),
            "an acknowledgement took {longest:?}: a wake was lost"
        );
    }
}

#[test]
fn spawn_on_reaches_other_worker_from_any_thread() {
    for driver in common::drivers() {
        let rt = hoop::Runtime::builder()
            .workers(2)
            .driver(driver)
            .build()
            .unwrap();
        let handle = rt.handle().clone();
        let from_thread = std::thread::spawn(move || {
            let h = handle.spawn_on(1, async { hoop::worker_index().unwrap() });
            // Await the JoinHandle from a plain thread with a tiny executor.
            futures_util::FutureExt::now_or_never(async {}).unwrap();
            h
        })
        .join()
        .unwrap();
        let idx = rt.block_on(from_thread).unwrap();
        assert_eq!(idx, 1);
        // A non-Send future built on the target worker.
        let h = rt.handle().spawn_on_with(1, || {
            let rc = Rc::new(5);
            async move { *rc + hoop::worker_index().unwrap() }
        });
        assert_eq!(rt.block_on(h).unwrap(), 6);
    }
}

#[test]
fn run_on_every_worker() {
    for driver in common::drivers() {
        let rt = hoop::Runtime::builder()
            .workers(3)
            .pin_cpus(true)
            .driver(driver)
            .build()
            .unwrap();
        assert_eq!(rt.info().workers, 3);
        let counter = Arc::new(AtomicUsize::new(0));
        let c = counter.clone();
        let out = rt.run(move |i| {
            let c = c.clone();
            async move {
                hoop::time::sleep(Duration::from_millis(1)).await;
                c.fetch_add(1, Ordering::SeqCst);
                (
                    i,
                    hoop::worker_index().unwrap(),
                    hoop::runtime_info().unwrap().driver,
                )
            }
        });
        assert_eq!(counter.load(Ordering::SeqCst), 3);
        let kind = match driver {
            hoop::DriverChoice::Epoll => hoop::DriverKind::Epoll,
            _ => hoop::DriverKind::IoUring,
        };
        assert_eq!(out, vec![(0, 0, kind), (1, 1, kind), (2, 2, kind)]);
    }
}

/// The calling thread's `Cpus_allowed_list` ("0-1", "3", ...).
fn cpus_allowed() -> String {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list:"))
        .unwrap();
    line.split_once(':').unwrap().1.trim().to_string()
}

#[test]
fn pinned_workers_leave_the_blocking_pool_and_the_building_thread_free() {
    for driver in common::drivers() {
        // A thread of its own: the test harness's thread keeps its affinity whatever happens.
        std::thread::spawn(move || {
            let before = cpus_allowed();
            if !before.contains(['-', ',']) {
                eprintln!("one CPU allowed ({before}): nothing to observe");
                return;
            }
            let rt = hoop::Runtime::builder()
                .workers(1)
                .pin_cpus(true)
                .driver(driver)
                .build()
                .unwrap();
            let (worker, pool, stat) = rt.block_on(async {
                let pool = hoop::spawn_blocking(cpus_allowed).await.unwrap();
                // On epoll a path operation runs on the pool: it must work from there too.
                let stat = hoop::fs::metadata("/proc/self").await.map(|m| m.is_dir());
                (cpus_allowed(), pool, stat)
            });
            assert!(stat.unwrap());
            let first = before.split(['-', ',']).next().unwrap();
            assert_eq!(worker, first, "worker 0 is pinned to the first allowed CPU");
            assert_eq!(pool, before, "blocking threads run on every allowed CPU");
            drop(rt);
            assert_eq!(
                cpus_allowed(),
                before,
                "dropping the runtime unpins its thread"
            );
        })
        .join()
        .unwrap();
    }
}

#[test]
fn panic_in_block_on_propagates_and_runtime_is_reusable() {
    let rt = hoop::Runtime::builder().workers(1).build().unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async { panic!("main panicked") })
    }));
    assert!(r.is_err());
    assert_eq!(rt.block_on(async { 3 }), 3);
}

#[test]
fn nested_block_on_is_refused() {
    let rt = hoop::Runtime::builder().workers(1).build().unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async { hoop::block_on(async {}) })
    }));
    assert!(r.is_err());
}

#[hoop::test]
async fn spawn_blocking_runs_off_the_worker() {
    let worker_thread = std::thread::current().id();
    let (tid, v) = hoop::spawn_blocking(|| (std::thread::current().id(), 41 + 1))
        .await
        .unwrap();
    assert_ne!(tid, worker_thread);
    assert_eq!(v, 42);
    let err = hoop::spawn_blocking(|| panic!("in pool"))
        .await
        .unwrap_err();
    assert!(err.is_panic());
}

#[test]
fn blocking_pool_is_bounded_and_idle_threads_exit() {
    let rt = hoop::Runtime::builder()
        .workers(1)
        .max_blocking_threads(2)
        .blocking_keep_alive(Duration::from_millis(50))
        .build()
        .unwrap();
    rt.block_on(async {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (running, peak) = (running.clone(), peak.clone());
                hoop::spawn_blocking(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(10));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        assert!(
            peak.load(Ordering::SeqCst) <= 2,
            "at most 2 blocking threads"
        );
        assert!(hoop::metrics().unwrap().blocking_threads <= 2);
        let deadline = Instant::now() + Duration::from_secs(5);
        while hoop::metrics().unwrap().blocking_threads > 0 {
            assert!(
                Instant::now() < deadline,
                "idle blocking threads did not exit"
            );
            hoop::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn handles_and_wakers_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<hoop::Handle>();
    send::<hoop::JoinHandle<u32>>();
    send::<hoop::JoinError>();
}

/// Review-2 H3: jobs pushed together after the pool went idle each get a thread. Counting the
/// idle thread as free until it woke queued every job pushed before it woke behind it, so jobs
/// that wait for each other (here: all of them, at a rendezvous) waited forever.
#[hoop::test]
async fn blocking_jobs_pushed_together_after_an_idle_spell_run_side_by_side() {
    use std::sync::{Condvar, Mutex};
    const JOBS: usize = 16;
    for round in 0..3 {
        // One thread, then idle (it stays alive for the pool's keep-alive).
        hoop::spawn_blocking(|| ()).await.unwrap();
        hoop::time::sleep(Duration::from_millis(50)).await;
        let meet = Arc::new((Mutex::new(0usize), Condvar::new()));
        let handles: Vec<_> = (0..JOBS)
            .map(|_| {
                let meet = meet.clone();
                hoop::spawn_blocking(move || {
                    let (count, cv) = &*meet;
                    let mut n = count.lock().unwrap();
                    *n += 1;
                    cv.notify_all();
                    let (n, _) = cv
                        .wait_timeout_while(n, Duration::from_secs(3), |n| *n < JOBS)
                        .unwrap();
                    *n
                })
            })
            .collect();
        for h in handles {
            assert_eq!(
                h.await.unwrap(),
                JOBS,
                "round {round}: some job never started"
            );
        }
    }
}

/// Review-2 M5: a panic in a `spawn_on_with` closure is that task's panic (the worker lives
/// on), and a worker that a panic does stop (a task's destructor) shuts down like any other:
/// later `spawn_on`s to it resolve as cancelled instead of hanging.
#[test]
fn a_panic_on_a_worker_never_leaves_its_join_handles_hanging() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("destructor");
        }
    }
    for driver in common::drivers() {
        let rt = hoop::Builder::new()
            .workers(2)
            .driver(driver)
            .build()
            .unwrap();
        let h = rt.handle();
        rt.block_on(async {
            let made = h.spawn_on_with(1, || -> std::future::Ready<()> { panic!("make") });
            assert!(made.await.unwrap_err().is_panic(), "{driver:?}");
            assert_eq!(h.spawn_on(1, async { 1 }).await.unwrap(), 1, "{driver:?}");

            // Three: the others' destructors panic again, one after the other, while the worker
            // shuts down (a second panic while the first unwinds would abort the process).
            let _second = h.spawn_on(1, async {
                let _b = Bomb;
                std::future::pending::<()>().await
            });
            let _third = h.spawn_on(1, async {
                let _b = Bomb;
                std::future::pending::<()>().await
            });
            let bomb = h.spawn_on(1, async {
                let _b = Bomb;
                std::future::pending::<()>().await
            });
            hoop::time::sleep(Duration::from_millis(20)).await;
            bomb.abort();
            let _ = hoop::time::timeout(Duration::from_secs(5), bomb)
                .await
                .expect("the aborted task's handle hung");
            let after = hoop::time::timeout(Duration::from_secs(5), h.spawn_on(1, async { 2 }))
                .await
                .expect("a spawn on the worker hung");
            // Either the worker survived the destructor's panic, or it shut down.
            assert!(matches!(after, Ok(2)) || after.is_err(), "{driver:?}");
        });
        drop(rt);
    }
}
