//! File benches, each against std and tokio::fs in the same group:
//! 4 KiB random reads of a page-cached file at queue depth 1 and 32, statx of 10k files, and
//! whole-file reads (`fs::read`) of 4 KiB files at queue depth 1 and 16, where hoop on io_uring
//! opens, reads and finds the end in one linked submission (`hoop-io_uring`) or, without direct
//! descriptors, takes the plain path (`hoop-io_uring-unlinked`: open, statx, reads, close).
//!
//! Run: `cargo bench --bench fs`. The data lives in `target/bench-data` (a 1 GiB file and a
//! directory of 10k empty files), created on the first run.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const FILE_SIZE: u64 = 1 << 30;
const BLOCK: usize = 4096;
const BLOCKS: u64 = FILE_SIZE / BLOCK as u64;
const FILES: usize = 10_000;

fn data_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn big_file() -> PathBuf {
    let path = data_dir().join("random-read.bin");
    if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(FILE_SIZE) {
        let f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0x5Au8; 1 << 20];
        for i in 0..FILE_SIZE / (1 << 20) {
            f.write_all_at(&chunk, i << 20).unwrap();
        }
    }
    // Warm the page cache.
    let f = std::fs::File::open(&path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..FILE_SIZE / (1 << 20) {
        f.read_exact_at(&mut buf, i << 20).unwrap();
    }
    path
}

fn many_files() -> PathBuf {
    let dir = data_dir().join("statx");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..FILES {
        let p = dir.join(format!("f{i}"));
        if !p.exists() {
            std::fs::write(p, b"").unwrap();
        }
    }
    dir
}

/// xorshift: cheap offsets, a different sequence for every task (`seed`) and every call.
/// (Seeds were once `seed | 1`, which gave tasks 2k and 2k+1 the same sequence: at queue depth
/// 32 every page was read twice at once, the second time from the CPU's cache, which made the
/// QD 32 figure ~1.2x a pread loop where the same reads by 32 distinct sequences are ~0.85x;
/// and each criterion sample restarted the same sequence.)
fn offsets(seed: u64) -> impl FnMut() -> u64 {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut x = (seed ^ call << 32).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % BLOCKS) * BLOCK as u64
    }
}

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

fn hoop_reads(rt: &hoop::Runtime, path: &Path, iters: u64, depth: u64) -> Duration {
    rt.block_on(async {
        let file = Rc::new(hoop::fs::File::open(path).await.unwrap());
        let start = Instant::now();
        let tasks: Vec<_> = (0..depth)
            .map(|t| {
                let file = file.clone();
                let n = iters / depth + u64::from(t < iters % depth);
                hoop::spawn(async move {
                    let mut next = offsets(t + 1);
                    let mut buf = Vec::with_capacity(BLOCK);
                    for _ in 0..n {
                        let (res, b) = file.read_at(buf, next()).await;
                        assert_eq!(res.unwrap(), BLOCK);
                        buf = b;
                        buf.clear();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    })
}

fn tokio_reads(rt: &tokio::runtime::Runtime, path: &Path, iters: u64, depth: u64) -> Duration {
    rt.block_on(async {
        // tokio::fs runs each call on its blocking pool; positioned reads are what a file server
        // with many concurrent readers does.
        let file = Arc::new(std::fs::File::open(path).unwrap());
        let start = Instant::now();
        let tasks: Vec<_> = (0..depth)
            .map(|t| {
                let file = file.clone();
                let n = iters / depth + u64::from(t < iters % depth);
                tokio::spawn(async move {
                    let mut next = offsets(t + 1);
                    let mut buf = vec![0u8; BLOCK];
                    for _ in 0..n {
                        let off = next();
                        let f = file.clone();
                        buf = tokio::task::spawn_blocking(move || {
                            f.read_exact_at(&mut buf, off).unwrap();
                            buf
                        })
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    })
}

fn random_reads(c: &mut Criterion) {
    let path = big_file();
    for depth in [1u64, 32] {
        let mut g = c.benchmark_group(format!("read_4k_random_qd{depth}"));
        g.throughput(Throughput::Elements(1));
        for (name, driver) in DRIVERS {
            let rt = hoop_rt(driver);
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| hoop_reads(&rt, &path, iters, depth))
            });
        }
        let trt = tokio_rt();
        g.bench_function(BenchmarkId::from_parameter("tokio-fs"), |b| {
            b.iter_custom(|iters| tokio_reads(&trt, &path, iters, depth))
        });
        if depth == 1 {
            let f = std::fs::File::open(&path).unwrap();
            g.bench_function(BenchmarkId::from_parameter("std-pread"), |b| {
                b.iter_custom(|iters| {
                    let mut next = offsets(1);
                    let mut buf = vec![0u8; BLOCK];
                    let start = Instant::now();
                    for _ in 0..iters {
                        f.read_exact_at(&mut buf, next()).unwrap();
                    }
                    start.elapsed()
                })
            });
        }
        g.finish();
    }
}

fn statx_many(c: &mut Criterion) {
    let dir = many_files();
    let paths: Rc<Vec<PathBuf>> = Rc::new((0..FILES).map(|i| dir.join(format!("f{i}"))).collect());
    let mut g = c.benchmark_group("statx_10k_files");
    g.throughput(Throughput::Elements(FILES as u64));
    g.sample_size(10);
    for (name, driver) in DRIVERS {
        let rt = hoop_rt(driver);
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let paths = paths.clone();
                rt.block_on(async move {
                    // 64 concurrent stat loops: the ring batches them.
                    let tasks: Vec<_> = (0..64)
                        .map(|t| {
                            let paths = paths.clone();
                            hoop::spawn(async move {
                                for p in paths.iter().skip(t).step_by(64) {
                                    hoop::fs::metadata(p).await.unwrap();
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                })
            })
        });
    }
    let trt = tokio_rt();
    let tpaths: Arc<Vec<PathBuf>> = Arc::new(paths.to_vec());
    g.bench_function(BenchmarkId::from_parameter("tokio-fs"), |b| {
        b.iter(|| {
            let paths = tpaths.clone();
            trt.block_on(async move {
                let tasks: Vec<_> = (0..64)
                    .map(|t| {
                        let paths = paths.clone();
                        tokio::spawn(async move {
                            for p in paths.iter().skip(t).step_by(64) {
                                tokio::fs::metadata(p).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    });
    g.bench_function(BenchmarkId::from_parameter("std-loop"), |b| {
        b.iter(|| {
            for p in paths.iter() {
                std::fs::metadata(p).unwrap();
            }
        })
    });
    g.finish();
}

/// Files of `SMALL` bytes for the whole-file reads.
const SMALL_FILES: usize = 1000;
const SMALL: usize = 4096;

fn small_files() -> Vec<PathBuf> {
    let dir = data_dir().join("small");
    std::fs::create_dir_all(&dir).unwrap();
    (0..SMALL_FILES)
        .map(|i| {
            let p = dir.join(format!("f{i}"));
            if std::fs::metadata(&p).map(|m| m.len() as usize).ok() != Some(SMALL) {
                std::fs::write(&p, vec![i as u8; SMALL]).unwrap();
            }
            p
        })
        .collect()
}

fn hoop_whole_reads(
    rt: &hoop::Runtime,
    paths: &Rc<Vec<PathBuf>>,
    iters: u64,
    depth: u64,
) -> Duration {
    let paths = paths.clone();
    rt.block_on(async move {
        let start = Instant::now();
        let tasks: Vec<_> = (0..depth)
            .map(|t| {
                let paths = paths.clone();
                hoop::spawn(async move {
                    let mut i = t as usize;
                    for _ in 0..iters.div_ceil(depth) {
                        let got = hoop::fs::read(&paths[i % paths.len()]).await.unwrap();
                        assert_eq!(got.len(), SMALL);
                        i += depth as usize;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    })
}

fn tokio_whole_reads(
    rt: &tokio::runtime::Runtime,
    paths: &Arc<Vec<PathBuf>>,
    iters: u64,
    depth: u64,
) -> Duration {
    let paths = paths.clone();
    rt.block_on(async move {
        let start = Instant::now();
        let tasks: Vec<_> = (0..depth)
            .map(|t| {
                let paths = paths.clone();
                tokio::spawn(async move {
                    let mut i = t as usize;
                    for _ in 0..iters.div_ceil(depth) {
                        let got = tokio::fs::read(&paths[i % paths.len()]).await.unwrap();
                        assert_eq!(got.len(), SMALL);
                        i += depth as usize;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    })
}

fn whole_file_reads(c: &mut Criterion) {
    let paths = Rc::new(small_files());
    let tpaths = Arc::new(paths.to_vec());
    for depth in [1u64, 16] {
        let mut g = c.benchmark_group(format!("read_whole_4k_file_qd{depth}"));
        g.throughput(Throughput::Elements(1));
        let runtimes = [
            ("hoop-io_uring", hoop::DriverChoice::IoUring, 16_384),
            ("hoop-io_uring-unlinked", hoop::DriverChoice::IoUring, 0),
            ("hoop-epoll", hoop::DriverChoice::Epoll, 16_384),
        ];
        for (name, driver, slots) in runtimes {
            let rt = hoop::Runtime::builder()
                .workers(1)
                .driver(driver)
                .direct_descriptors(slots)
                .build()
                .unwrap();
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| hoop_whole_reads(&rt, &paths, iters, depth))
            });
        }
        let trt = tokio_rt();
        g.bench_function(BenchmarkId::from_parameter("tokio-fs"), |b| {
            b.iter_custom(|iters| tokio_whole_reads(&trt, &tpaths, iters, depth))
        });
        if depth == 1 {
            g.bench_function(BenchmarkId::from_parameter("std-read"), |b| {
                let mut i = 0;
                b.iter(|| {
                    let got = std::fs::read(&paths[i % paths.len()]).unwrap();
                    i += 1;
                    got
                })
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    targets = random_reads, statx_many, whole_file_reads
}
criterion_main!(benches);
