//! 4 KiB random reads of a page-cached 1 GiB file, measured the way a user writes them (issue
//! 22): a fixed number of reads at uniformly random block offsets; queue depth = the number of
//! tasks, each calling `File::read_at` in a loop with its own buffer; one worker; each run a
//! process of its own pinned to CPU 0 (as `taskset -c 0` would: every thread of it, the
//! runtime's helpers included). Readers, interleaved round by round:
//!
//! - `hoop`, `hoop-epoll`: `hoop::fs::File::read_at` into a `Vec` with capacity 4 KiB on
//!   `Runtime::builder().workers(1)` (what `#[hoop::main(workers = 1)]` builds), on each driver;
//! - `hoop-aligned`: the same into a 64-byte aligned buffer (`AlignedBuf::new(4096, 64)`);
//! - `pread loop`: `std::os::unix::fs::FileExt::read_at` in a loop (queue depth 1 by nature),
//!   into a 64-byte aligned buffer;
//! - `preadv2 loop`: the same with `preadv2(RWF_NOWAIT)`, the call hoop's inline read makes (the
//!   only one that can refuse to wait for the disk);
//! - `tokio`: `tokio::fs::File` on current_thread, `seek` + `read_exact` (tokio has no
//!   positioned read; each call is a blocking-pool job), one file per task.
//!
//! Reported: median reads/s of the rounds, and each reader against the pread loop.
//!
//! Why the buffers' alignment is named: 62 % of a 4 KiB read is the kernel's copy into the
//! buffer (`rep movsb`), and on this machine's CPU it runs ~5 % slower into a buffer that is
//! not 64-byte aligned. malloc gives a 4 KiB `Vec` 16-byte alignment, so which of two loops got
//! a lucky buffer used to decide ~5 % of the comparison.
//!
//! Run: `cargo bench --bench fsread` (`-- --rounds R --reads N --depths 1,32`; defaults 3,
//! 1000000, 1,32). `HOOP_FSREAD_METRICS=1` makes each hoop run print its worker's metrics
//! (how many reads went inline, through the ring, to the pool).

#[path = "common/results.rs"]
mod results;
#[path = "common/sys.rs"]
mod sys;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const BLOCK: usize = 4096;
const FILE_MIB: u64 = 1024;

/// xorshift64: uniformly spread block offsets, a different sequence per task.
fn offsets(seed: u64, blocks: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % blocks) * BLOCK as u64
    }
}

/// The 1 GiB file, written once and read back into the page cache.
fn data_file() -> io::Result<PathBuf> {
    let path = results::dir().join("fsread-1g.bin");
    if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(FILE_MIB << 20) {
        let chunk: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
        let mut f = std::fs::File::create(&path)?;
        for _ in 0..FILE_MIB {
            f.write_all(&chunk)?;
        }
    }
    let mut f = std::fs::File::open(&path)?;
    io::copy(&mut f, &mut io::sink())?;
    Ok(path)
}

/// The reads, split over `depth` tasks, each into a `Vec` (or, `aligned`, a 64-byte aligned
/// buffer); the time they took.
fn run_hoop(driver: hoop::DriverChoice, path: &Path, reads: u64, depth: u64, aligned: bool) -> f64 {
    let rt = hoop::Runtime::builder()
        .workers(1)
        .driver(driver)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let file = std::rc::Rc::new(hoop::fs::File::open(path).await.expect("open"));
        let blocks = (FILE_MIB << 20) / BLOCK as u64;
        let start = Instant::now();
        let tasks: Vec<_> = (0..depth)
            .map(|t| {
                let file = file.clone();
                let mine = reads / depth + u64::from(t < reads % depth);
                hoop::spawn(async move {
                    let mut next = offsets(t + 1, blocks);
                    if aligned {
                        let mut buf = hoop::buf::AlignedBuf::new(BLOCK, 64).expect("buffer");
                        for _ in 0..mine {
                            buf.clear();
                            let (n, b) = file.read_at(buf, next()).await;
                            assert_eq!(n.expect("read"), BLOCK);
                            buf = b;
                        }
                        return;
                    }
                    let mut buf = Vec::with_capacity(BLOCK);
                    for _ in 0..mine {
                        buf.clear();
                        let (n, b) = file.read_at(buf, next()).await;
                        assert_eq!(n.expect("read"), BLOCK);
                        buf = b;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        let secs = start.elapsed().as_secs_f64();
        if std::env::var_os("HOOP_FSREAD_METRICS").is_some() {
            eprintln!("{:?}", hoop::metrics());
        }
        secs
    })
}

/// A 4 KiB buffer at a 64-byte aligned address inside `backing`.
fn aligned_block(backing: &mut Vec<u8>) -> &mut [u8] {
    backing.resize(BLOCK + 64, 0);
    let at = (64 - backing.as_ptr() as usize % 64) % 64;
    &mut backing[at..at + BLOCK]
}

fn run_pread(path: &Path, reads: u64) -> f64 {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).expect("open");
    let blocks = (FILE_MIB << 20) / BLOCK as u64;
    let mut next = offsets(1, blocks);
    let mut backing = Vec::new();
    let buf = aligned_block(&mut backing);
    let start = Instant::now();
    for _ in 0..reads {
        assert_eq!(file.read_at(buf, next()).expect("read"), BLOCK);
    }
    start.elapsed().as_secs_f64()
}

/// The call hoop's inline read makes, `preadv2(RWF_NOWAIT)`, in a plain loop: what the kernel
/// interface alone costs against `pread`. A read it refuses (a page not in the cache) is made
/// again without the flag, as hoop would send it to the ring.
fn run_preadv2(path: &Path, reads: u64) -> f64 {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).expect("open");
    let blocks = (FILE_MIB << 20) / BLOCK as u64;
    let mut next = offsets(1, blocks);
    let mut backing = Vec::new();
    let buf = aligned_block(&mut backing);
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: BLOCK,
    };
    let start = Instant::now();
    for _ in 0..reads {
        let at = next() as libc::off_t;
        // SAFETY: one iovec over the live, exclusively borrowed BLOCK-byte buffer.
        let mut n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, at, libc::RWF_NOWAIT) };
        if n < 0 {
            // SAFETY: the same one iovec over the live, exclusively borrowed buffer.
            n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, at, 0) };
        }
        assert_eq!(n, BLOCK as isize, "preadv2");
    }
    start.elapsed().as_secs_f64()
}

fn run_tokio(path: &Path, reads: u64, depth: u64) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        let blocks = (FILE_MIB << 20) / BLOCK as u64;
        let start = Instant::now();
        let tasks: Vec<_> = (0..depth)
            .map(|t| {
                let path = path.to_path_buf();
                let mine = reads / depth + u64::from(t < reads % depth);
                tokio::spawn(async move {
                    let mut file = tokio::fs::File::open(path).await.expect("open");
                    let mut next = offsets(t + 1, blocks);
                    let mut buf = vec![0u8; BLOCK];
                    for _ in 0..mine {
                        file.seek(io::SeekFrom::Start(next())).await.expect("seek");
                        file.read_exact(&mut buf).await.expect("read");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        start.elapsed().as_secs_f64()
    })
}

/// In the child: one run; prints its seconds.
fn child(args: &[String]) -> io::Result<()> {
    let reader = &args[0];
    let path = PathBuf::from(&args[1]);
    let reads: u64 = args[2].parse().map_err(io::Error::other)?;
    let depth: u64 = args[3].parse().map_err(io::Error::other)?;
    let secs = match reader.as_str() {
        "hoop" => run_hoop(hoop::DriverChoice::IoUring, &path, reads, depth, false),
        "hoop-aligned" => run_hoop(hoop::DriverChoice::IoUring, &path, reads, depth, true),
        "hoop-epoll" => run_hoop(hoop::DriverChoice::Epoll, &path, reads, depth, false),
        "pread loop" => run_pread(&path, reads),
        "preadv2 loop" => run_preadv2(&path, reads),
        "tokio" => run_tokio(&path, reads, depth),
        other => return Err(io::Error::other(format!("unknown reader {other}"))),
    };
    println!("{secs}");
    Ok(())
}

/// One run in a process of its own, pinned to CPU 0 with all its threads; reads/s.
fn measure(reader: &str, path: &Path, reads: u64, depth: u64) -> io::Result<f64> {
    let exe = std::env::current_exe()?;
    let (reader, path) = (reader.to_string(), path.to_path_buf());
    let out = std::thread::spawn(move || {
        sys::pin(0);
        Command::new(exe)
            .arg("--child")
            .arg(&reader)
            .arg(&path)
            .arg(reads.to_string())
            .arg(depth.to_string())
            .output()
    })
    .join()
    .expect("spawner")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let secs: f64 = text.trim().parse().map_err(|_| {
        io::Error::other(format!(
            "child said: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    })?;
    Ok(reads as f64 / secs)
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        return child(&args[i + 1..]);
    }
    let rounds: usize = sys::arg("--rounds", 3);
    let reads: u64 = sys::arg("--reads", 1_000_000);
    let depths: String = sys::arg("--depths", "1,32".to_string());
    let only: String = sys::arg("--only", String::new());
    let path = data_file()?;
    let mut readers = vec![
        "hoop",
        "hoop-aligned",
        "hoop-epoll",
        "pread loop",
        "preadv2 loop",
        "tokio",
    ];
    if !only.is_empty() {
        readers.retain(|r| *r == only || *r == "pread loop");
    }
    let mut md = format!(
        "4 KiB reads at uniformly random offsets of a page-cached {FILE_MIB} MiB file, {reads} \
         per run; queue depth = tasks, each `read_at` in a loop with its own buffer (a `Vec` with \
         capacity 4 KiB; `hoop-aligned`, the loops: 64-byte aligned); one worker, the whole \
         process pinned to CPU 0; median of {rounds} interleaved rounds (`cargo bench --bench \
         fsread`). The loops read at depth 1 whatever the row's depth.\n\n\
         | queue depth | reader | reads/s | vs pread loop |\n|---|---|---|---|\n"
    );
    let mut rows = Vec::new();
    for depth in depths
        .split(',')
        .map(|d| d.trim().parse::<u64>().expect("--depths"))
    {
        let mut got = vec![Vec::new(); readers.len()];
        for round in 0..rounds {
            for k in 0..readers.len() {
                let i = (round + k) % readers.len();
                // The loops read one at a time whatever the depth: they are measured at 1.
                let d = if readers[i].ends_with("loop") {
                    1
                } else {
                    depth
                };
                let r = measure(readers[i], &path, reads, d)?;
                if std::env::var_os("VERBOSE").is_some() {
                    eprintln!("QD {depth} round {round} {}: {r:.0} reads/s", readers[i]);
                }
                got[i].push(r);
            }
        }
        let med: Vec<f64> = got.into_iter().map(sys::median).collect();
        let base = med[readers.iter().position(|r| *r == "pread loop").unwrap()];
        for (r, m) in readers.iter().zip(&med) {
            md.push_str(&format!(
                "| {depth} | {r} | {:.0}k | {:.2}x |\n",
                m / 1e3,
                m / base
            ));
        }
        if let (Some(h), Some(t)) = (
            readers.iter().position(|r| *r == "hoop"),
            readers.iter().position(|r| *r == "tokio"),
        ) {
            rows.push(results::Row {
                workload: format!(
                    "4 KiB random reads (page cache; QD {depth}; as a user writes them)"
                ),
                unit: "reads/s",
                hoop: med[h],
                tokio: med[t],
                higher_is_better: true,
            });
        }
    }
    print!("{md}");
    if only.is_empty() {
        results::write("fsread", &rows)?;
        results::write_md("fsread", &md)?;
    }
    Ok(())
}
