//! 4 KiB random reads of a page-cached file: hoop, monoio, compio and a pread loop, at queue
//! depth 1 and 32 (`depth` tasks each reading one block at a time), fixed time per run, each run
//! on a fresh thread pinned to CPU 0.

use std::cell::Cell;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

const BLOCK: usize = 4096;

/// xorshift offsets, block-aligned, within `blocks`, a distinct sequence per seed. (`seed | 1`
/// once gave tasks 2k and 2k+1 the same sequence, so at queue depth 32 every page was read twice
/// at once, the second time from the CPU's cache: ~1.2x a pread loop where distinct sequences
/// give ~0.85x.)
fn offsets(seed: u64, blocks: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % blocks) * BLOCK as u64
    }
}

/// A run: file, blocks in it, queue depth, duration; returns IOPS.
type Run = fn(&Path, u64, u64, Duration) -> f64;

fn hoop_run(path: &Path, blocks: u64, depth: u64, secs: Duration) -> f64 {
    let rt = hoop::Runtime::builder().workers(1).build().expect("hoop");
    rt.block_on(async move {
        let file = Rc::new(hoop::fs::File::open(path).await.expect("open"));
        let done = Rc::new(Cell::new(0u64));
        let end = Instant::now() + secs;
        let tasks: Vec<_> = (0..depth)
            .map(|t| {
                let (file, done) = (file.clone(), done.clone());
                hoop::spawn(async move {
                    let mut next = offsets(t + 1, blocks);
                    let mut buf = Vec::with_capacity(BLOCK);
                    while Instant::now() < end {
                        buf.clear();
                        let (r, b) = file.read_at(buf, next()).await;
                        assert_eq!(r.expect("read"), BLOCK);
                        buf = b;
                        done.set(done.get() + 1);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        done.get() as f64 / secs.as_secs_f64()
    })
}

fn monoio_run(path: &Path, blocks: u64, depth: u64, secs: Duration) -> f64 {
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .build()
        .expect("monoio");
    rt.block_on(async move {
        let file = Rc::new(monoio::fs::File::open(path).await.expect("open"));
        let done = Rc::new(Cell::new(0u64));
        let end = Instant::now() + secs;
        let tasks: Vec<_> = (0..depth)
            .map(|t| {
                let (file, done) = (file.clone(), done.clone());
                monoio::spawn(async move {
                    let mut next = offsets(t + 1, blocks);
                    let mut buf = Vec::with_capacity(BLOCK);
                    while Instant::now() < end {
                        buf.clear();
                        let (r, b) = file.read_at(buf, next()).await;
                        assert_eq!(r.expect("read"), BLOCK);
                        buf = b;
                        done.set(done.get() + 1);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        done.get() as f64 / secs.as_secs_f64()
    })
}

fn compio_run(path: &Path, blocks: u64, depth: u64, secs: Duration) -> f64 {
    let rt = compio::runtime::Runtime::new().expect("compio");
    rt.block_on(async move {
        use compio::io::AsyncReadAt;
        let file = Rc::new(compio::fs::File::open(path).await.expect("open"));
        let done = Rc::new(Cell::new(0u64));
        let end = Instant::now() + secs;
        let tasks: Vec<_> = (0..depth)
            .map(|t| {
                let (file, done) = (file.clone(), done.clone());
                compio::runtime::spawn(async move {
                    let mut next = offsets(t + 1, blocks);
                    let mut buf = Vec::with_capacity(BLOCK);
                    while Instant::now() < end {
                        buf.clear();
                        let compio::BufResult(r, b) = file.read_at(buf, next()).await;
                        assert_eq!(r.expect("read"), BLOCK);
                        buf = b;
                        done.set(done.get() + 1);
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        done.get() as f64 / secs.as_secs_f64()
    })
}

/// The synchronous loop (depth is 1 by nature; asked for 32 it still reads one at a time).
fn pread_run(path: &Path, blocks: u64, _depth: u64, secs: Duration) -> f64 {
    let file = std::fs::File::open(path).expect("open");
    let mut next = offsets(1, blocks);
    let mut buf = vec![0u8; BLOCK];
    let end = Instant::now() + secs;
    let mut done = 0u64;
    while Instant::now() < end {
        file.read_exact_at(&mut buf, next()).expect("read");
        done += 1;
    }
    done as f64 / secs.as_secs_f64()
}

const RUNTIMES: [(&str, Run); 4] = [
    ("hoop", hoop_run),
    ("monoio", monoio_run),
    ("compio", compio_run),
    ("pread loop", pread_run),
];

fn on_cpu0(run: Run, path: PathBuf, blocks: u64, depth: u64, secs: Duration) -> f64 {
    std::thread::spawn(move || {
        super::pin(0);
        run(&path, blocks, depth, secs)
    })
    .join()
    .expect("run")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn main() {
    let path = PathBuf::from(super::arg("--file", String::new()));
    let secs = Duration::from_secs_f64(super::arg("--secs", 2.0));
    let rounds: usize = super::arg("--rounds", 3);
    let out: String = super::arg("--out", String::new());
    let len = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("--file {}: {e}", path.display()))
        .len();
    let blocks = len / BLOCK as u64;
    // Warm the page cache.
    let _ = std::fs::read(&path).expect("read the file").len();
    let mut md = format!(
        "4 KiB random reads of a page-cached {} MiB file, each runtime on one thread pinned to \
         CPU 0, {} s per run, median of {rounds} interleaved rounds \
         (`benches/peers`, `hoop-peers fsread`):\n\n\
         | queue depth | runtime | IOPS | vs hoop | vs pread loop |\n|---|---|---|---|---|\n",
        len >> 20,
        secs.as_secs_f64()
    );
    for depth in [1u64, 32] {
        let mut samples = vec![Vec::new(); RUNTIMES.len()];
        for _ in 0..rounds {
            for (i, (_, run)) in RUNTIMES.iter().enumerate() {
                samples[i].push(on_cpu0(*run, path.clone(), blocks, depth, secs));
            }
        }
        let med: Vec<f64> = samples.into_iter().map(median).collect();
        for (i, (name, _)) in RUNTIMES.iter().enumerate() {
            // The loop is synchronous (queue depth 1 by nature); it is re-measured per block.
            let depth_label = if *name == "pread loop" && depth > 1 {
                format!("{depth} (loop: 1)")
            } else {
                depth.to_string()
            };
            md.push_str(&format!(
                "| {depth_label} | {name} | {:.0}k | {:.2}x | {:.2}x |\n",
                med[i] / 1e3,
                med[i] / med[0],
                med[i] / med[3]
            ));
        }
    }
    print!("{md}");
    if !out.is_empty() {
        std::fs::write(&out, md).expect("write --out");
    }
}
