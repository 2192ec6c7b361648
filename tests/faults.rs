//! Fault and load tests, on both drivers: a signal storm (EINTR every millisecond), runtime churn
//! (fds and memory flat), many connections with random client aborts, reads racing a truncation,
//! `EMFILE` on open, and provided-buffer ring indices wrapping. (Invalid fds: `ops.rs`.)
//!
//! `HOOP_LONG=1` runs the long versions (10k runtimes, 10k connections).

#[path = "common/mod.rs"]
mod common;

use futures_util::StreamExt;
use hoop::Builder;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Tests that count process-wide fds or memory run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn long() -> bool {
    std::env::var_os("HOOP_LONG").is_some_and(|v| v != "0")
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

extern "C" fn on_signal(_: libc::c_int) {}

/// SIGUSR1 runs a handler that does nothing, without `SA_RESTART`: a blocking syscall it
/// interrupts fails with `EINTR`.
fn interrupt_on_sigusr1() {
    // SAFETY: installs a handler that does nothing, from a zeroed, valid sigaction.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = 0;
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
    }
}

/// SIGUSR1 (a handler without `SA_RESTART`, so blocking syscalls fail with `EINTR`) delivered
/// to the worker every millisecond while it parks, submits, reads pipes and files, sleeps and
/// waits for the blocking pool: nothing fails, nothing hangs.
#[test]
fn signal_storm_every_millisecond() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    interrupt_on_sigusr1();
    for driver in common::drivers() {
        let rt = Builder::new().workers(1).driver(driver).build().unwrap();
        // SAFETY: pthread_self of this thread, which runs worker 0 (block_on).
        let target = unsafe { libc::pthread_self() } as usize;
        let storm = common::Storm::start(move || {
            // SAFETY: signals this test's thread, alive until the storm is stopped.
            unsafe { libc::pthread_kill(target as libc::pthread_t, libc::SIGUSR1) };
            1
        });
        rt.block_on(async {
            let path = std::env::temp_dir()
                .join(format!("hoop-signals-{}-{driver:?}", std::process::id()));
            hoop::fs::write(&path, vec![7u8; 1 << 20]).await.unwrap();
            let file = hoop::fs::File::open(&path).await.unwrap();
            let (r, w) = hoop::io::pipe().unwrap();
            let writer = hoop::spawn(async move {
                for i in 0..300u32 {
                    w.write_all(i.to_le_bytes().to_vec()).await.0.unwrap();
                    hoop::time::sleep(Duration::from_micros(500)).await;
                }
            });
            let mut got = Vec::new();
            while got.len() < 1200 {
                let (n, buf) = r.read(Vec::with_capacity(64)).await;
                got.extend_from_slice(&buf[..n.unwrap()]);
                let (n, _) = file.read_at(Vec::with_capacity(4096), 4096).await;
                assert_eq!(n.unwrap(), 4096);
            }
            writer.await.unwrap();
            for i in 0..300u32 {
                assert_eq!(got[i as usize * 4..][..4], i.to_le_bytes());
            }
            // Parked waits: timers and the blocking pool.
            for _ in 0..20 {
                hoop::time::sleep(Duration::from_millis(2)).await;
                hoop::spawn_blocking(|| std::thread::sleep(Duration::from_millis(1)))
                    .await
                    .unwrap();
            }
            hoop::fs::remove_file(&path).await.unwrap();
        });
        assert!(storm.stop() > 50, "the storm was too weak");
        drop(rt);
    }
}

/// Creating and dropping runtimes (2k here, 10k with HOOP_LONG=1), each doing some I/O, leaves
/// the fd count where it was and memory flat.
#[test]
fn runtime_churn_keeps_fds_and_memory_flat() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rounds = if long() { 10_000 } else { 2_000 };
    let churn = |n: usize| {
        for i in 0..n {
            let drivers = common::drivers();
            let driver = drivers[i % drivers.len()];
            let rt = Builder::new().workers(1).driver(driver).build().unwrap();
            rt.block_on(async {
                hoop::io::nop().await.unwrap();
                let (r, w) = hoop::io::pipe().unwrap();
                w.write_all(b"x".to_vec()).await.0.unwrap();
                r.read(Vec::with_capacity(1)).await.0.unwrap();
            });
        }
    };
    churn(200); // warm up allocator caches and the blocking pool
    let (fds, rss) = (open_fds(), rss_kib());
    churn(rounds);
    let (fds_after, rss_after) = (open_fds(), rss_kib());
    assert!(fds_after <= fds, "fds: {fds} -> {fds_after}");
    if std::env::var_os("HOOP_UNDER_ASAN").is_some() {
        // ASan keeps freed memory resident in its quarantine.
        common::skip("memory flatness under AddressSanitizer");
        return;
    }
    assert!(
        rss_after < rss + 16 * 1024,
        "memory grew from {rss} KiB to {rss_after} KiB over {rounds} runtimes"
    );
}

/// Many echo connections at once (1000; 10k with HOOP_LONG=1), a random third of the clients
/// aborting (RST) mid-stream: every surviving connection gets every byte back, the server
/// survives, and the fd count returns to where it was.
#[test]
fn many_connections_with_random_aborts() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let wanted = if long() { 10_000 } else { 1_000 };
    // Room for both ends of every connection: raise the hard limit too if allowed (root), else
    // run as many connections as the limit allows.
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    let conns = unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let need = 2 * wanted as u64 + 1024;
        let raised = libc::rlimit {
            rlim_cur: need.max(lim.rlim_cur),
            rlim_max: need.max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            wanted
        } else {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            let fit = (lim.rlim_cur.saturating_sub(1024) / 2) as usize;
            eprintln!("fd limit {}: {} connections", lim.rlim_cur, fit.min(wanted));
            fit.min(wanted)
        }
    };
    for driver in common::drivers() {
        let baseline = open_fds();
        let rt = Builder::new().workers(2).driver(driver).build().unwrap();
        // hoop's bind listens with a backlog of 1024 (std's is 128).
        let listener = hoop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = listener.into_std().unwrap();
        let listener = Mutex::new(Some(listener));
        let done = Arc::new(AtomicBool::new(false));
        let done2 = done.clone();
        let results = rt.run(move |worker| {
            let listener = (worker == 0).then(|| listener.lock().unwrap().take().unwrap());
            let done = done2.clone();
            async move {
                if let Some(l) = listener {
                    // Worker 0 serves.
                    let l = hoop::net::TcpListener::from_std(l).unwrap();
                    let mut incoming = l.incoming();
                    loop {
                        let next = hoop::time::timeout(Duration::from_millis(50), incoming.next());
                        match next.await {
                            Ok(Some(Ok(s))) => hoop::spawn(async move {
                                let mut buf = Vec::with_capacity(4096);
                                loop {
                                    buf.clear();
                                    let (n, b) = s.read(buf).await;
                                    match n {
                                        Ok(0) | Err(_) => return,
                                        Ok(_) => {}
                                    }
                                    let (r, b) = s.write_all(b).await;
                                    if r.is_err() {
                                        return;
                                    }
                                    buf = b;
                                }
                            })
                            .detach(),
                            Ok(_) => {}
                            Err(_) if done.load(Ordering::Relaxed) => return 0,
                            Err(_) => {}
                        }
                    }
                }
                // Worker 1 is the client. The server stops when it is done, even by a panic.
                struct Done(Arc<AtomicBool>);
                impl Drop for Done {
                    fn drop(&mut self) {
                        self.0.store(true, Ordering::Relaxed);
                    }
                }
                let _done = Done(done);
                let mut rng = common::Rng(0x5eed);
                let tasks: Vec<_> = (0..conns)
                    .map(|i| {
                        let abort = rng.below(3) == 0;
                        let at = rng.below(8);
                        hoop::spawn(async move {
                            let s = hoop::net::TcpStream::connect(addr).await.unwrap();
                            for round in 0..8usize {
                                if abort && round == at {
                                    // RST instead of FIN: linger 0, then close.
                                    s.socket().set_linger(Some(Duration::ZERO)).unwrap();
                                    return false;
                                }
                                let msg: Vec<u8> = (0..64).map(|b| (i + round + b) as u8).collect();
                                s.write_all(msg.clone()).await.0.unwrap();
                                let (r, back) = s.read_exact(vec![0u8; 64]).await;
                                r.unwrap();
                                assert_eq!(back, msg, "connection {i} round {round}");
                            }
                            true
                        })
                    })
                    .collect();
                let mut survived = 0;
                for t in tasks {
                    survived += t.await.unwrap() as usize;
                }
                survived
            }
        });
        assert!(results[1] > conns / 2, "{results:?}");
        drop(rt);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while open_fds() > baseline && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            open_fds() <= baseline,
            "{driver:?}: fds {} > {baseline}",
            open_fds()
        );
    }
}

/// Reads racing a file being truncated and extended: each read returns a prefix of the
/// pattern (short or empty past the end), never an error or foreign bytes.
#[hoop::test]
async fn reads_during_concurrent_truncation() {
    let path = std::env::temp_dir().join(format!(
        "hoop-trunc-{}-{}",
        std::process::id(),
        hoop::runtime_info().unwrap().driver
    ));
    let pattern: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    std::fs::write(&path, &pattern).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let truncator = {
        let (path, stop, pattern) = (path.clone(), stop.clone(), pattern.clone());
        std::thread::spawn(move || {
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            let mut len = 0u64;
            while !stop.load(Ordering::Relaxed) {
                f.set_len(len).unwrap();
                std::os::unix::fs::FileExt::write_all_at(&f, &pattern[..len as usize], 0).unwrap();
                len = (len + 77_777) % (1 << 20);
            }
        })
    };
    let file = hoop::fs::File::open(&path).await.unwrap();
    for i in 0..2000u64 {
        let off = (i * 4099) % (1 << 20);
        let (n, buf) = file.read_at(Vec::with_capacity(8192), off).await;
        let n = n.unwrap();
        assert!(
            buf[..n]
                .iter()
                .enumerate()
                .all(|(k, &b)| b == 0 || b == pattern[off as usize + k]),
            "foreign bytes at {off}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    truncator.join().unwrap();
    std::fs::remove_file(&path).unwrap();
}

/// A process out of fds gets `EMFILE` from open, as an error with the path, and recovers.
#[test]
fn emfile_on_open_is_an_error_then_recovers() {
    if std::env::var_os("HOOP_EMFILE_OPEN_CHILD").is_none() {
        for driver in common::driver_names() {
            common::run_child(
                "emfile_on_open_is_an_error_then_recovers",
                &[("HOOP_EMFILE_OPEN_CHILD", "1"), ("HOOP_DRIVER", driver)],
            );
        }
        return;
    }
    let rt = hoop::Runtime::new().unwrap();
    rt.block_on(async {
        let mut held = Vec::new();
        // SAFETY: lowers this child process's own fd limit.
        unsafe {
            let lim = libc::rlimit {
                rlim_cur: (open_fds() + 8) as u64,
                rlim_max: 4096,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        let err = loop {
            match hoop::fs::File::open("/proc/self/exe").await {
                Ok(f) => held.push(f),
                Err(e) => break e,
            }
        };
        assert_eq!(hoop::fs::os_error(&err), Some(libc::EMFILE), "{err}");
        assert!(err.to_string().contains("/proc/self/exe"), "{err}");
        held.clear();
        hoop::fs::File::open("/proc/self/exe").await.unwrap();
    });
}

/// Provided-buffer ring indices wrap (16-bit): 4 buffers of 64 bytes recycled through 190k+
/// receives with random chunk sizes and random holding patterns; every byte arrives once, in
/// order.
#[hoop::test]
async fn buf_ring_indices_wrap_around() {
    let (a, b) = hoop::net::UnixStream::pair().unwrap();
    let ring = hoop::buf::BufRing::new(4, 64).unwrap();
    let total: usize = if long() { 30_000_000 } else { 12_000_000 };
    let writer = hoop::spawn(async move {
        let mut rng = common::Rng(42);
        let mut sent = 0usize;
        while sent < total {
            let len = 1 + rng.below(200);
            let chunk: Vec<u8> = (sent..sent + len).map(|i| (i % 253) as u8).collect();
            b.write_all(chunk).await.0.unwrap();
            sent += len;
        }
    });
    let mut stream = a.recv_stream(&ring);
    let mut rng = common::Rng(7);
    let mut held = Vec::new();
    let mut got = 0usize;
    let mut chunks = 0u64;
    while got < total {
        let chunk = stream.next().await.unwrap().unwrap();
        for (k, &byte) in chunk.iter().enumerate() {
            assert_eq!(byte, ((got + k) % 253) as u8, "byte {}", got + k);
        }
        got += chunk.len();
        chunks += 1;
        held.push(chunk);
        // Release in random order, holding up to 3 buffers at a time.
        while held.len() > rng.below(4) {
            let i = rng.below(held.len());
            held.swap_remove(i);
        }
    }
    writer.await.unwrap();
    assert!(
        chunks > 2 * 65_536,
        "only {chunks} receives: no wrap-around"
    );
}

/// Review-2 L7: in a process that keeps `SIGPIPE`'s default action (a C host), a write to a
/// closed pipe or socket through any hoop path — `write` on a pipe, `writev` on a socket,
/// `Compat` writes — fails with `EPIPE`/`ECONNRESET` instead of killing the process. Runs in
/// a child process (Rust ignores `SIGPIPE` at startup; the child restores the default).
#[test]
fn writes_to_closed_peers_never_raise_sigpipe() {
    if std::env::var_os("HOOP_SIGPIPE_CHILD").is_none() {
        common::run_child(
            "writes_to_closed_peers_never_raise_sigpipe",
            &[("HOOP_SIGPIPE_CHILD", "1")],
        );
        return;
    }
    // SAFETY: restores the default disposition in this child process, which runs only this test.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let broken =
        |e: &std::io::Error| matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET));
    for driver in common::drivers() {
        let rt = hoop::Builder::new()
            .workers(2)
            .driver(driver)
            .build()
            .unwrap();
        // On the block_on thread and on a worker thread.
        for worker in [0, 1] {
            let h = rt.handle().spawn_on_with(worker, move || async move {
                let (r, w) = hoop::io::pipe().unwrap();
                drop(r);
                let (res, _) = w.write(b"x".to_vec()).await;
                assert!(res.as_ref().is_err_and(broken), "{driver:?} pipe: {res:?}");

                let listener = hoop::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let client = hoop::net::TcpStream::connect(listener.local_addr().unwrap())
                    .await
                    .unwrap();
                let (server, _) = listener.accept().await.unwrap();
                drop(server);
                let mut failed = None;
                for _ in 0..100 {
                    let (res, _) = client.writev(vec![vec![1u8; 4096], vec![2u8; 4096]]).await;
                    if let Err(e) = res {
                        failed = Some(e);
                        break;
                    }
                }
                let e = failed.expect("writes to a closed peer fail");
                assert!(broken(&e), "{driver:?} writev: {e}");

                use futures_util::AsyncWriteExt;
                let (a, b) = hoop::net::UnixStream::pair().unwrap();
                drop(b);
                let mut a = a.compat();
                let res = async {
                    a.write_all(&[0u8; 1024]).await?;
                    a.flush().await
                }
                .await;
                assert!(
                    res.as_ref().is_err_and(broken),
                    "{driver:?} compat: {res:?}"
                );
            });
            rt.block_on(h).unwrap();
        }
    }
    // The block_on thread has SIGPIPE unblocked again, with nothing pending.
    // SAFETY: plain queries of this thread's signal state.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set);
        assert_eq!(
            libc::sigismember(&set, libc::SIGPIPE),
            0,
            "SIGPIPE left blocked"
        );
        libc::sigpending(&mut set);
        assert_eq!(
            libc::sigismember(&set, libc::SIGPIPE),
            0,
            "SIGPIPE left pending"
        );
    }
}

/// Thread ids of this process's threads named `comm`.
fn threads_named(comm: &str) -> Vec<i32> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| {
            let tid = e.ok()?.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
            (name.trim() == comm).then_some(tid)
        })
        .collect()
}

/// Review-2 T6: signals aimed at blocking-pool threads (a handler without `SA_RESTART`) never
/// reach a pool syscall as `EINTR`: an open of a FIFO that waits for its writer on the pool (the
/// component walk, which runs there on both drivers; the epoll driver's path for every open)
/// completes once the writer comes. `spawn_blocking` closures still run with the thread's
/// original mask, and the faults the kernel forces are never blocked.
#[test]
fn signals_aimed_at_pool_threads_do_not_interrupt_its_syscalls() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    interrupt_on_sigusr1();
    let dir = std::env::temp_dir().join(format!("hoop-pool-signals-{}", std::process::id()));
    // A run that failed (or was killed) under a reused pid left its FIFOs behind.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for driver in common::drivers() {
        let rt = Builder::new()
            .workers(1)
            .driver(driver)
            .thread_name("sigt")
            .build()
            .unwrap();
        let fifo = dir.join(format!("fifo-{driver:?}"));
        common::mkfifo(&fifo, 0o600);
        let storm = common::Storm::start(|| {
            let tids = threads_named("sigt-blocking");
            for &tid in &tids {
                // SAFETY: tgkill of a thread of this process (a stale tid fails).
                unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGUSR1) };
            }
            tids.len()
        });
        let writer_path = fifo.clone();
        rt.block_on(async move {
            // A blocking job that waits on the FIFO on a pool thread, as the epoll driver's open
            // does: the read end's open blocks until a writer opens.
            // The walk's open(2)s run on the pool on both drivers, once each (no EINTR retry).
            let walk = hoop::op::open_walk::OpenWalk::new(
                hoop::op::at::At::cwd(),
                std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap(),
                libc::O_RDONLY,
                0,
                0,
            );
            let reader = hoop::spawn(hoop::op::Op::new(walk));
            hoop::time::sleep(Duration::from_millis(100)).await;
            // The writer opens without blocking (ENXIO while no reader waits), so that a reader
            // that gave up cannot hang the test.
            let mut w = None;
            while w.is_none() && !reader.is_finished() {
                use std::os::unix::fs::OpenOptionsExt;
                w = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&writer_path)
                    .ok();
                hoop::time::sleep(Duration::from_millis(1)).await;
            }
            let res = reader.await.unwrap();
            drop(w);
            assert!(res.is_ok(), "{driver:?}: {res:?}");
            // A user closure runs with the thread's original mask (SIGUSR1 unblocked here).
            let blocked = hoop::spawn_blocking(|| {
                // SAFETY: reads this thread's mask into a zeroed set.
                unsafe {
                    let mut set = std::mem::zeroed::<libc::sigset_t>();
                    libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set);
                    libc::sigismember(&set, libc::SIGUSR1) == 1
                }
            })
            .await
            .unwrap();
            assert!(
                !blocked,
                "{driver:?}: a spawn_blocking closure ran with SIGUSR1 blocked"
            );
        });
        // The pool threads block SIGUSR1 but never SIGSEGV (a blocked fault kills the process).
        // (A thread that just ran the closure above puts its pool mask back right after its
        // handle resolved: give it a moment.)
        let bit = |sig: i32| 1u64 << (sig - 1);
        for tid in threads_named("sigt-blocking") {
            let sig_blk = || {
                let status =
                    std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).ok()?;
                let line = status.lines().find(|l| l.starts_with("SigBlk:"))?;
                u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
            };
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            let mut mask = sig_blk();
            while mask.is_some_and(|m| m & bit(libc::SIGUSR1) == 0)
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
                mask = sig_blk();
            }
            let Some(mask) = mask else { continue }; // the thread exited
            assert_ne!(mask & bit(libc::SIGUSR1), 0, "{driver:?}: {mask:x}");
            assert_eq!(mask & bit(libc::SIGSEGV), 0, "{driver:?}: {mask:x}");
        }
        assert!(storm.stop() > 10, "the storm never reached a pool thread");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
