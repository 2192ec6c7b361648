//! Workers that talk to each other, against tokio in the same group: its multi-thread runtime (2
//! workers, which may run both ends on one thread, so nothing need cross), and two
//! `current_thread` runtimes on two threads (hoop's shape: every message crosses): a ping-pong between two workers over two bounded channels (one round trip per
//! iteration), and a fan-in of three producers into one consumer (one message per iteration).
//! hoop runs with `MSG_RING` doorbells (`hoop-io_uring`, where the kernel takes them: see
//! `RuntimeInfo::uring_setup`), with eventfd doorbells (`hoop-io_uring-eventfd`), and on epoll;
//! the `-spin` runtimes poll for 50 us before a worker sleeps (`Builder::spin_before_park`).
//! The `*_cpu` groups report the process's CPU time per iteration instead of wall time.
//!
//! Run: `cargo bench --bench cross`. Compare ratios within a group.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::time::{Duration, Instant};

/// The spin of the `-spin` runtimes (`Builder::spin_before_park`).
const SPIN: Duration = Duration::from_micros(50);

const RUNTIMES: [(&str, hoop::DriverChoice, bool, Duration); 5] = [
    (
        "hoop-io_uring",
        hoop::DriverChoice::IoUring,
        true,
        Duration::ZERO,
    ),
    (
        "hoop-io_uring-eventfd",
        hoop::DriverChoice::IoUring,
        false,
        Duration::ZERO,
    ),
    (
        "hoop-epoll",
        hoop::DriverChoice::Epoll,
        true,
        Duration::ZERO,
    ),
    (
        "hoop-io_uring-spin",
        hoop::DriverChoice::IoUring,
        true,
        SPIN,
    ),
    ("hoop-epoll-spin", hoop::DriverChoice::Epoll, true, SPIN),
];

fn hoop_rt(driver: hoop::DriverChoice, msg_ring: bool, spin: Duration) -> hoop::Runtime {
    hoop::Runtime::builder()
        .workers(2)
        .driver(driver)
        .msg_ring(msg_ring)
        .spin_before_park(spin)
        .build()
        .unwrap()
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Wall time, or the process's CPU time (user + system).
#[derive(Clone, Copy)]
enum Clock {
    Wall,
    Cpu,
}

struct Started(Instant, Duration);

impl Clock {
    fn start(self) -> Started {
        Started(Instant::now(), cpu_time())
    }

    fn elapsed(self, s: Started) -> Duration {
        match self {
            Clock::Wall => s.0.elapsed(),
            Clock::Cpu => cpu_time().saturating_sub(s.1),
        }
    }
}

fn cpu_time() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
        ru.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn hoop_ping_pong(rt: &hoop::Runtime, iters: u64, clock: Clock) -> Duration {
    let handle = rt.handle().clone();
    rt.block_on(async move {
        let (to_far, mut at_far) = hoop::sync::mpsc::channel::<u64>(1);
        let (to_near, mut at_near) = hoop::sync::mpsc::channel::<u64>(1);
        let far = handle.spawn_on(1, async move {
            while let Some(n) = at_far.recv().await {
                to_near.send(n).await.unwrap();
            }
        });
        let start = clock.start();
        for i in 0..iters {
            to_far.send(i).await.unwrap();
            at_near.recv().await.unwrap();
        }
        let took = clock.elapsed(start);
        drop(to_far);
        far.await.unwrap();
        took
    })
}

fn tokio_ping_pong(rt: &tokio::runtime::Runtime, iters: u64, clock: Clock) -> Duration {
    rt.block_on(async move {
        let (to_far, mut at_far) = tokio::sync::mpsc::channel::<u64>(1);
        let (to_near, mut at_near) = tokio::sync::mpsc::channel::<u64>(1);
        let far = tokio::spawn(async move {
            while let Some(n) = at_far.recv().await {
                to_near.send(n).await.unwrap();
            }
        });
        let start = clock.start();
        for i in 0..iters {
            to_far.send(i).await.unwrap();
            at_near.recv().await.unwrap();
        }
        let took = clock.elapsed(start);
        drop(to_far);
        far.await.unwrap();
        took
    })
}

fn hoop_fan_in(rt: &hoop::Runtime, iters: u64, clock: Clock) -> Duration {
    let handle = rt.handle().clone();
    rt.block_on(async move {
        let (tx, mut rx) = hoop::sync::mpsc::channel::<u64>(64);
        let start = clock.start();
        for p in 0..3u64 {
            let tx = tx.clone();
            let n = iters / 3 + u64::from(p < iters % 3);
            // Producers on worker 1, the consumer on worker 0: every message crosses.
            let _producer = handle.spawn_on(1, async move {
                for i in 0..n {
                    tx.send(i).await.unwrap();
                }
            });
        }
        drop(tx);
        let mut got = 0;
        while rx.recv().await.is_some() {
            got += 1;
        }
        assert_eq!(got, iters);
        clock.elapsed(start)
    })
}

fn tokio_fan_in(rt: &tokio::runtime::Runtime, iters: u64, clock: Clock) -> Duration {
    rt.block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(64);
        let start = clock.start();
        for p in 0..3u64 {
            let tx = tx.clone();
            let n = iters / 3 + u64::from(p < iters % 3);
            tokio::spawn(async move {
                for i in 0..n {
                    tx.send(i).await.unwrap();
                }
            });
        }
        drop(tx);
        let mut got = 0;
        while rx.recv().await.is_some() {
            got += 1;
        }
        assert_eq!(got, iters);
        clock.elapsed(start)
    })
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `far` on a `current_thread` runtime of its own thread and `near` on this thread's.
fn tokio_pair<T: Send + 'static>(
    far: impl std::future::Future<Output = ()> + Send + 'static,
    near: impl std::future::Future<Output = T>,
) -> T {
    let thread = std::thread::spawn(move || current_thread().block_on(far));
    let out = current_thread().block_on(near);
    thread.join().unwrap();
    out
}

fn tokio_pair_ping_pong(_: &tokio::runtime::Runtime, iters: u64, clock: Clock) -> Duration {
    let (to_far, mut at_far) = tokio::sync::mpsc::channel::<u64>(1);
    let (to_near, mut at_near) = tokio::sync::mpsc::channel::<u64>(1);
    let far = async move {
        while let Some(n) = at_far.recv().await {
            to_near.send(n).await.unwrap();
        }
    };
    tokio_pair(far, async move {
        // The far thread is running once it answers.
        to_far.send(0).await.unwrap();
        at_near.recv().await.unwrap();
        let start = clock.start();
        for i in 0..iters {
            to_far.send(i).await.unwrap();
            at_near.recv().await.unwrap();
        }
        clock.elapsed(start)
    })
}

fn tokio_pair_fan_in(_: &tokio::runtime::Runtime, iters: u64, clock: Clock) -> Duration {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(64);
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let far = async move {
        go_rx.await.unwrap();
        let mut producers = Vec::new();
        for p in 0..3u64 {
            let tx = tx.clone();
            let n = iters / 3 + u64::from(p < iters % 3);
            producers.push(tokio::spawn(async move {
                for i in 0..n {
                    tx.send(i).await.unwrap();
                }
            }));
        }
        drop(tx);
        for p in producers {
            p.await.unwrap();
        }
    };
    tokio_pair(far, async move {
        let start = clock.start();
        go_tx.send(()).unwrap();
        let mut got = 0;
        while rx.recv().await.is_some() {
            got += 1;
        }
        assert_eq!(got, iters);
        clock.elapsed(start)
    })
}

type HoopRun = fn(&hoop::Runtime, u64, Clock) -> Duration;
type TokioRun = fn(&tokio::runtime::Runtime, u64, Clock) -> Duration;

fn group(c: &mut Criterion, name: &str, hoop_run: HoopRun, tokio_run: TokioRun, pair: TokioRun) {
    for (suffix, clock) in [("", Clock::Wall), ("_cpu", Clock::Cpu)] {
        let mut g = c.benchmark_group(format!("{name}{suffix}"));
        for (label, driver, msg_ring, spin) in RUNTIMES {
            let rt = hoop_rt(driver, msg_ring, spin);
            let label = if driver == hoop::DriverChoice::IoUring
                && msg_ring
                && !rt.info().uring_setup.contains("MSG_RING")
            {
                "hoop-io_uring-no-msg-ring-on-this-kernel"
            } else {
                label
            };
            g.bench_function(BenchmarkId::from_parameter(label), |b| {
                b.iter_custom(|iters| hoop_run(&rt, iters, clock))
            });
        }
        let trt = tokio_rt();
        g.bench_function(BenchmarkId::from_parameter("tokio-multi-thread"), |b| {
            b.iter_custom(|iters| tokio_run(&trt, iters, clock))
        });
        g.bench_function(
            BenchmarkId::from_parameter("tokio-2x-current-thread"),
            |b| b.iter_custom(|iters| pair(&trt, iters, clock)),
        );
        g.finish();
    }
}

fn ping_pong(c: &mut Criterion) {
    group(
        c,
        "cross_worker_ping_pong",
        hoop_ping_pong,
        tokio_ping_pong,
        tokio_pair_ping_pong,
    );
}

fn fan_in(c: &mut Criterion) {
    group(
        c,
        "cross_worker_fan_in",
        hoop_fan_in,
        tokio_fan_in,
        tokio_pair_fan_in,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = ping_pong, fan_in
}
criterion_main!(benches);
