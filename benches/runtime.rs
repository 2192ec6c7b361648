//! Runtime micro-benches, each against tokio's current_thread runtime in the same group:
//! spawn+join, yield ping-pong between two tasks, an I/O round trip (nop through the ring, and a
//! one-byte pipe write+read), and timer insert+cancel.
//!
//! Run: `cargo bench --bench runtime`. Compare ratios within a group; absolute numbers on a
//! shared machine are noise.

// Benches run on the development toolchain, not the library's minimum Rust version.
#![allow(clippy::incompatible_msrv)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

fn hoop_rt(driver: hoop::DriverChoice) -> hoop::Runtime {
    hoop::Runtime::builder()
        .workers(1)
        .driver(driver)
        .build()
        .unwrap()
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

const DRIVERS: [(&str, hoop::DriverChoice); 2] = [
    ("hoop-io_uring", hoop::DriverChoice::IoUring),
    ("hoop-epoll", hoop::DriverChoice::Epoll),
];

/// Polls a future once with a no-op waker (registers a timer without waiting for it).
fn poll_once<F: Future>(f: F) {
    let waker = std::task::Waker::noop();
    let mut f = pin!(f);
    let _ = f.as_mut().poll(&mut Context::from_waker(waker));
}

fn spawn_join(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn_join");
    for (name, driver) in DRIVERS {
        let rt = hoop_rt(driver);
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async move {
                    let start = Instant::now();
                    for i in 0..iters {
                        let v = hoop::spawn(async move { i }).await.unwrap();
                        assert_eq!(v, i);
                    }
                    start.elapsed()
                })
            })
        });
    }
    let rt = tokio_rt();
    g.bench_function(BenchmarkId::from_parameter("tokio"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let start = Instant::now();
                for i in 0..iters {
                    let v = tokio::spawn(async move { i }).await.unwrap();
                    assert_eq!(v, i);
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn yield_ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("yield_ping_pong");
    for (name, driver) in DRIVERS {
        let rt = hoop_rt(driver);
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async move {
                    let start = Instant::now();
                    let a = hoop::spawn(async move {
                        for _ in 0..iters {
                            hoop::yield_now().await;
                        }
                    });
                    let b = hoop::spawn(async move {
                        for _ in 0..iters {
                            hoop::yield_now().await;
                        }
                    });
                    a.await.unwrap();
                    b.await.unwrap();
                    start.elapsed()
                })
            })
        });
    }
    let rt = tokio_rt();
    g.bench_function(BenchmarkId::from_parameter("tokio"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let start = Instant::now();
                let a = tokio::spawn(async move {
                    for _ in 0..iters {
                        tokio::task::yield_now().await;
                    }
                });
                let b = tokio::spawn(async move {
                    for _ in 0..iters {
                        tokio::task::yield_now().await;
                    }
                });
                a.await.unwrap();
                b.await.unwrap();
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn io_round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("io_round_trip");
    for (name, driver) in DRIVERS {
        let rt = hoop_rt(driver);
        g.bench_function(BenchmarkId::new("nop", name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        hoop::io::nop().await.unwrap();
                    }
                    start.elapsed()
                })
            })
        });
        g.bench_function(BenchmarkId::new("pipe_1B", name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async move {
                    let (r, w) = hoop::io::pipe().unwrap();
                    let (mut wbuf, mut rbuf) = (vec![1u8], Vec::with_capacity(1));
                    let start = Instant::now();
                    for _ in 0..iters {
                        let (res, b) = w.write(wbuf).await;
                        res.unwrap();
                        wbuf = b;
                        let (res, mut b) = r.read(rbuf).await;
                        res.unwrap();
                        b.clear();
                        rbuf = b;
                    }
                    start.elapsed()
                })
            })
        });
    }
    let rt = tokio_rt();
    g.bench_function(BenchmarkId::new("pipe_1B", "tokio"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                // The same kernel object as hoop's side: a pipe (a Unix socket pair costs more).
                let (mut w, mut r) = tokio::net::unix::pipe::pipe().unwrap();
                let mut buf = [0u8; 1];
                let start = Instant::now();
                for _ in 0..iters {
                    w.write_all(&[1]).await.unwrap();
                    r.read_exact(&mut buf).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn timer_insert_cancel(c: &mut Criterion) {
    let mut g = c.benchmark_group("timer_insert_cancel");
    for (name, driver) in DRIVERS {
        let rt = hoop_rt(driver);
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async move {
                    let start = Instant::now();
                    for i in 0..iters {
                        poll_once(hoop::time::sleep(Duration::from_millis(1000 + i % 1000)));
                    }
                    start.elapsed()
                })
            })
        });
    }
    let rt = tokio_rt();
    g.bench_function(BenchmarkId::from_parameter("tokio"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let start = Instant::now();
                for i in 0..iters {
                    poll_once(tokio::time::sleep(Duration::from_millis(1000 + i % 1000)));
                }
                start.elapsed()
            })
        })
    });
    g.finish();
    // Keep the poll helper honest: a ready future completes on its single poll.
    let mut ready = pin!(std::future::ready(()));
    assert!(matches!(
        ready
            .as_mut()
            .poll(&mut Context::from_waker(std::task::Waker::noop())),
        Poll::Ready(())
    ));
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = spawn_join, yield_ping_pong, io_round_trip, timer_insert_cancel
}
criterion_main!(benches);
