//! 4 KiB random O_DIRECT reads at queue depth 32 from a 1 GiB file on the target directory's
//! filesystem (the device, not the page cache): hoop against fio's io_uring engine, the
//! reference tool, and tokio (spawn_blocking preads, what a tokio program does). Each run is
//! pinned to CPU 0 (fio with `--cpus_allowed=0`); runs interleave round by round; medians.
//!
//! - `hoop`: 32 tasks, `File::read_at` into a 4 KiB `AlignedBuf` each;
//! - `hoop-fixed`: the same with `read_fixed_at` from a registered `FixedBufPool`;
//! - `fio`: `--ioengine=io_uring --iodepth=32` (its defaults: no registered buffers or files);
//! - `fio-fixed`: the same with `--fixedbufs --registerfiles`;
//! - `tokio`: 32 tasks, each read a `spawn_blocking` pread.
//!
//! fio is skipped with a note if not installed (`benches/compare.sh` installs it).
//!
//! Run: `cargo bench --bench direct` (`-- --secs S --rounds R`; defaults 3 s, 3 rounds).

#[path = "common/results.rs"]
mod results;
#[path = "common/sys.rs"]
mod sys;

use std::cell::Cell;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FILE_SIZE: u64 = 1 << 30;
const BLOCK: usize = 4096;
const DEPTH: u64 = 32;

fn data_file() -> io::Result<PathBuf> {
    let dir = results::dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("direct.bin");
    if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(FILE_SIZE) {
        // Real blocks (not a sparse file: reading holes never reaches the device).
        let chunk: Vec<u8> = (0..1 << 20).map(|i| (i * 13 % 253) as u8).collect();
        let mut f = std::fs::File::create(&path)?;
        for _ in 0..FILE_SIZE >> 20 {
            f.write_all(&chunk)?;
        }
        f.sync_all()?;
    }
    Ok(path)
}

fn offsets(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % (FILE_SIZE / BLOCK as u64)) * BLOCK as u64
    }
}

fn hoop_run(path: &Path, secs: Duration, fixed: bool) -> f64 {
    let rt = hoop::Runtime::builder()
        .workers(1)
        .driver(hoop::DriverChoice::IoUring)
        .build()
        .expect("hoop");
    rt.block_on(async move {
        let file = Rc::new(
            hoop::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open(path)
                .await
                .expect("open O_DIRECT"),
        );
        let pool = hoop::buf::FixedBufPool::new(DEPTH as usize, BLOCK).expect("pool");
        assert!(!fixed || pool.is_registered(), "the pool is registered");
        let done = Rc::new(Cell::new(0u64));
        let end = Instant::now() + secs;
        let tasks: Vec<_> = (0..DEPTH)
            .map(|t| {
                let (file, done) = (file.clone(), done.clone());
                let mut fixed_buf = pool.try_get().expect("one buffer per task");
                hoop::spawn(async move {
                    let mut next = offsets(t + 1);
                    let mut buf = hoop::buf::AlignedBuf::new(BLOCK, BLOCK).expect("buf");
                    while Instant::now() < end {
                        let n = if fixed {
                            fixed_buf.clear();
                            let (r, b) = file.read_fixed_at(fixed_buf, next()).await;
                            fixed_buf = b;
                            r
                        } else {
                            buf.clear();
                            let (r, b) = file.read_at(buf, next()).await;
                            buf = b;
                            r
                        };
                        assert_eq!(n.expect("read"), BLOCK);
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

fn tokio_run(path: &Path, secs: Duration) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let file = Arc::new(
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .expect("open O_DIRECT"),
    );
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + secs;
    rt.block_on(async {
        let tasks: Vec<_> = (0..DEPTH)
            .map(|t| {
                let (file, done) = (file.clone(), done.clone());
                tokio::spawn(async move {
                    let mut next = offsets(t + 1);
                    // An aligned block inside a Vec (O_DIRECT needs the buffer aligned too).
                    let mut raw = vec![0u8; 2 * BLOCK];
                    while Instant::now() < end {
                        let (f, off) = (file.clone(), next());
                        raw = tokio::task::spawn_blocking(move || {
                            let at = raw.as_ptr().align_offset(BLOCK);
                            let n = f.read_at(&mut raw[at..at + BLOCK], off).expect("read");
                            assert_eq!(n, BLOCK);
                            raw
                        })
                        .await
                        .expect("blocking read");
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
    });
    done.load(Ordering::Relaxed) as f64 / secs.as_secs_f64()
}

/// fio's io_uring engine; None if fio is missing or fails.
fn fio_run(path: &Path, secs: Duration, fixed: bool) -> Option<f64> {
    let mut cmd = Command::new("fio");
    cmd.args([
        "--name=direct",
        "--rw=randread",
        "--bs=4k",
        "--direct=1",
        "--ioengine=io_uring",
        "--iodepth=32",
        "--numjobs=1",
        "--cpus_allowed=0",
        "--time_based",
        "--output-format=json",
    ])
    .arg(format!("--filename={}", path.display()))
    .arg(format!("--size={FILE_SIZE}"))
    .arg(format!("--runtime={}", secs.as_secs().max(1)));
    if fixed {
        cmd.args(["--fixedbufs=1", "--registerfiles=1"]);
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!("fio: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let json = String::from_utf8_lossy(&out.stdout);
    // jobs[0].read.iops
    let read = &json[json.find("\"read\" :")?..];
    let iops = &read[read.find("\"iops\" :")? + "\"iops\" :".len()..];
    iops[..iops.find(',')?].trim().parse().ok()
}

fn on_cpu0<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        sys::pin(0);
        f()
    })
    .join()
    .expect("run")
}

fn main() -> io::Result<()> {
    let secs = Duration::from_secs(sys::arg("--secs", 3u64));
    let rounds: usize = sys::arg("--rounds", 3);
    let path = data_file()?;
    let names = ["hoop", "hoop-fixed", "fio", "fio-fixed", "tokio"];
    // `--only NAME` runs one reader (for profiling) and only prints.
    let only: String = sys::arg("--only", String::new());
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut fio_missing = false;
    for _ in 0..rounds {
        for (i, name) in names.iter().enumerate() {
            if !only.is_empty() && only != *name {
                continue;
            }
            let p = path.clone();
            let iops = match *name {
                "hoop" => Some(on_cpu0(move || hoop_run(&p, secs, false))),
                "hoop-fixed" => Some(on_cpu0(move || hoop_run(&p, secs, true))),
                "fio" => fio_run(&p, secs, false),
                "fio-fixed" => fio_run(&p, secs, true),
                _ => Some(on_cpu0(move || tokio_run(&p, secs))),
            };
            match iops {
                Some(v) => samples[i].push(v),
                None => fio_missing = true,
            }
        }
    }
    let med: Vec<f64> = samples.into_iter().map(sys::median).collect();
    if !only.is_empty() {
        let i = names
            .iter()
            .position(|n| *n == only)
            .expect("--only: a known reader");
        println!("{only}: {:.0} IOPS", med[i]);
        return Ok(());
    }
    let (fio, tokio) = (med[2], med[4]);
    let mut md = format!(
        "4 KiB random O_DIRECT reads, queue depth 32, a 1 GiB file on the device under `target/`, \
         one thread pinned to CPU 0, {} s x {rounds} interleaved rounds, medians (`cargo bench \
         --bench direct`):\n\n| reader | IOPS | vs fio | vs tokio |\n|---|---|---|---|\n",
        secs.as_secs()
    );
    for (name, v) in names.iter().zip(&med) {
        md.push_str(&format!(
            "| {name} | {:.0}k | {:.2}x | {:.2}x |\n",
            v / 1e3,
            v / fio,
            v / tokio
        ));
    }
    if fio_missing {
        md.push_str("\nfio did not run (not installed?): its rows are NaN.\n");
    }
    print!("{md}");
    results::write(
        "direct",
        &[results::Row {
            workload: "4 KiB O_DIRECT random read (QD 32; device)".into(),
            unit: "IOPS",
            hoop: med[0],
            tokio,
            higher_is_better: true,
        }],
    )?;
    results::write_md("direct", &md)
}
