//! A 1 GiB page-cached file downloaded over loopback HTTP/1.1 from one server process pinned to
//! CPU 0, by a blocking client pinned to CPU 1. Servers, interleaved round by round:
//!
//! - `hoop`: `examples/fileserver` (one worker, io_uring; bodies through `TcpStream::send_file`);
//! - `hoop-epoll`: the same binary with `HOOP_DRIVER=epoll`;
//! - `tokio`: the same request path on tokio's current_thread runtime (this binary re-executed
//!   with `--serve-tokio`): head parsed, file opened with `tokio::fs`, body through
//!   `tokio::io::copy_buf` from a 256 KiB `BufReader` (each fill one blocking-pool read);
//! - `nginx`: one process (`master_process off`), `sendfile on`, `tcp_nopush on`, no access log.
//!   Skipped with a note if `nginx` is not installed (`benches/compare.sh` installs it).
//!
//! Reported: the median GB/s of the rounds and the server's CPU time per GB (the whole server
//! process from `/proc/PID/stat`, its blocking-pool and io-wq threads included).
//!
//! Run: `cargo build --release --example fileserver && cargo bench --bench download`
//! (`-- --rounds R --mib N`; defaults 5 rounds, 1024 MiB).

#[path = "common/results.rs"]
mod results;
#[path = "common/servers.rs"]
mod servers;
#[path = "common/sys.rs"]
mod sys;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn www_dir(mib: u64) -> io::Result<PathBuf> {
    let dir = results::dir().join("www");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("big.bin");
    if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(mib << 20) {
        let chunk: Vec<u8> = (0..1 << 20).map(|i| (i * 31 % 251) as u8).collect();
        let mut f = std::fs::File::create(&path)?;
        for _ in 0..mib {
            f.write_all(&chunk)?;
        }
    }
    // Warm the page cache.
    let mut f = std::fs::File::open(&path)?;
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf)? > 0 {}
    Ok(dir)
}

/// One GET of `path` on a new connection; the body is read and counted. Returns the bytes of
/// the body and the time from sending the request to its last byte.
fn download(addr: SocketAddr, path: &str) -> io::Result<(u64, Duration)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let start = Instant::now();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = vec![0u8; 1 << 20];
    let mut head = Vec::new();
    let (len, mut got) = loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::other("connection closed in the head"));
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
            if !text.starts_with("http/1.1 200") {
                return Err(io::Error::other(format!("bad response: {text}")));
            }
            let len: u64 = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| io::Error::other("no content-length"))?;
            break (len, (head.len() - end - 4) as u64);
        }
    };
    while got < len {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::other(format!("body cut at {got} of {len}")));
        }
        got += n as u64;
    }
    Ok((got, start.elapsed()))
}

struct Measured {
    gbps: Vec<f64>,
    cpu_ms_per_gb: Vec<f64>,
}

fn main() -> io::Result<()> {
    if let Some(served) = servers::serve_tokio_if_asked() {
        return served;
    }
    let rounds: usize = sys::arg("--rounds", 5);
    let mib: u64 = sys::arg("--mib", 1024);
    let root = www_dir(mib)?;
    // Servers inherit CPU 0 from this thread; the client then moves to CPU 1.
    sys::pin(0);
    // `--only NAME` measures one server (for profiling).
    let only: String = sys::arg("--only", String::new());
    let (servers, notes) = servers::start_all(&root, &only)?;
    if !only.is_empty() {
        for s in &servers {
            println!("{} pid {}", s.name, s.child.id());
        }
    }
    sys::pin(1);
    let mut measured: Vec<Measured> = servers
        .iter()
        .map(|_| Measured {
            gbps: Vec::new(),
            cpu_ms_per_gb: Vec::new(),
        })
        .collect();
    // One unmeasured download each first (connection setup paths, page cache, CPU clocks).
    for s in &servers {
        download(s.addr, "/big.bin")?;
    }
    for round in 0..rounds {
        // Each round starts with the next server, so no server always follows the same one.
        for k in 0..servers.len() {
            let i = (round + k) % servers.len();
            let (s, m) = (&servers[i], &mut measured[i]);
            let stat = s.stat_path();
            let cpu0 = sys::cpu_time(&stat);
            let (bytes, took) = download(s.addr, "/big.bin")?;
            // The server's last sends finish before the client's last read returns.
            let cpu = sys::cpu_time(&stat).saturating_sub(cpu0);
            let gb = bytes as f64 / 1e9;
            m.gbps.push(gb / took.as_secs_f64());
            m.cpu_ms_per_gb.push(cpu.as_secs_f64() * 1e3 / gb);
            if std::env::var_os("VERBOSE").is_some() {
                eprintln!(
                    "round {round} {}: {:.2} GB/s",
                    s.name,
                    gb / took.as_secs_f64()
                );
            }
        }
    }
    let med: Vec<(f64, f64)> = measured
        .iter()
        .map(|m| {
            (
                sys::median(m.gbps.clone()),
                sys::median(m.cpu_ms_per_gb.clone()),
            )
        })
        .collect();
    let of = |name: &str| servers.iter().position(|s| s.name == name).map(|i| med[i]);
    let Some(tokio) = of("tokio") else {
        print!(
            "{}",
            servers
                .iter()
                .zip(&med)
                .map(|(s, m)| format!("{}: {:.2} GB/s, {:.0} ms/GB\n", s.name, m.0, m.1))
                .collect::<String>()
        );
        return Ok(());
    };
    let nginx = of("nginx");
    let mut md = format!(
        "A {mib} MiB page-cached file over loopback HTTP/1.1, one server process on CPU 0, a \
         blocking client on CPU 1; median of {rounds} interleaved rounds (`cargo bench --bench \
         download`). Server CPU: the whole process, from /proc.\n\n\
         | server | GB/s | vs tokio | vs nginx | server CPU ms/GB |\n|---|---|---|---|---|\n"
    );
    for (s, (gbps, cpu)) in servers.iter().zip(&med) {
        let vs_nginx = nginx.map_or("-".to_string(), |n| format!("{:.2}x", gbps / n.0));
        md.push_str(&format!(
            "| {} | {gbps:.2} | {:.2}x | {vs_nginx} | {cpu:.0} |\n",
            s.name,
            gbps / tokio.0
        ));
    }
    for n in &notes {
        md.push_str(&format!("\n{n}\n"));
    }
    print!("{md}");
    let Some(hoop) = of("hoop") else {
        return Ok(());
    };
    let label = format!("{mib} MiB file over loopback HTTP");
    results::write(
        "download",
        &[
            results::Row {
                workload: format!("{label}: GB/s"),
                unit: "GB/s",
                hoop: hoop.0,
                tokio: tokio.0,
                higher_is_better: true,
            },
            results::Row {
                workload: format!("{label}: server CPU/GB"),
                unit: "ms",
                hoop: hoop.1,
                tokio: tokio.1,
                higher_is_better: false,
            },
        ],
    )?;
    results::write_md("download", &md)
}
