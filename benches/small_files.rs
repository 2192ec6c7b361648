//! Many small files over keep-alive HTTP/1.1: 2000 distinct 4 KiB files (page-cached), each
//! request for one picked at random, by `wrk` (one thread, 64 connections) pinned to CPU 1,
//! against one server process pinned to CPU 0. Servers, interleaved round by round:
//!
//! - `hoop`: `examples/fileserver`, one worker, io_uring (per request: `openat2` beneath the
//!   root, one `statx` on the worker, head and body in one send);
//! - `hoop-epoll`: the same binary with `HOOP_DRIVER=epoll`;
//! - `tokio`: the same request path on tokio's current_thread runtime (see
//!   `common/servers.rs`: `tokio::fs` open and metadata, each a blocking-pool job);
//! - `nginx`: one process, `sendfile on`, `tcp_nopush on`, no access log.
//!
//! Reported: median requests/s of the rounds, and the server's CPU time per request (the whole
//! process from `/proc/PID/stat`: its blocking-pool and io-wq threads included). nginx and wrk
//! are Debian packages (`benches/compare.sh` installs them); a missing one is a note, not a row.
//!
//! Run: `cargo build --release --example fileserver && cargo bench --bench small_files`
//! (`-- --rounds R --secs S --connections C --files N`; defaults 3, 5, 64, 2000).

#[path = "common/results.rs"]
mod results;
#[path = "common/servers.rs"]
mod servers;
#[path = "common/sys.rs"]
mod sys;

use servers::Server;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

const FILE_SIZE: usize = 4096;

fn content(i: usize) -> Vec<u8> {
    (0..FILE_SIZE)
        .map(|j| ((i * 7 + j * 13) % 251) as u8)
        .collect()
}

/// `www-small/f/NNNN` for `n` files, written once and read back (into the page cache).
fn www_dir(n: usize) -> io::Result<PathBuf> {
    let root = results::dir().join("www-small");
    let dir = root.join("f");
    std::fs::create_dir_all(&dir)?;
    for i in 0..n {
        let path = dir.join(format!("{i:04}"));
        if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(FILE_SIZE as u64) {
            std::fs::write(&path, content(i))?;
        }
        std::fs::read(&path)?;
    }
    Ok(root)
}

/// One GET on a new connection; the body (by its `Content-Length`).
fn get(server: &Server, path: &str) -> io::Result<Vec<u8>> {
    let mut s = std::net::TcpStream::connect(server.addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: b\r\n\r\n")?;
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = all.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&all[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") {
                return Err(io::Error::other(format!("{}: {head}", server.name)));
            }
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| io::Error::other("no content-length"))?;
            if all.len() >= end + 4 + len {
                return Ok(all[end + 4..end + 4 + len].to_vec());
            }
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::other(format!("{}: closed early", server.name)));
        }
        all.extend_from_slice(&buf[..n]);
    }
}

/// The wrk script: each request names one of the `n` files at random.
fn script(n: usize) -> io::Result<PathBuf> {
    let path = results::dir().join("small_files.lua");
    std::fs::write(
        &path,
        format!(
            "local paths = {{}}\n\
             for i = 0, {last} do paths[i + 1] = string.format(\"/f/%04d\", i) end\n\
             math.randomseed(42)\n\
             request = function()\n  \
               return wrk.format(\"GET\", paths[math.random(1, {n})])\n\
             end\n",
            last = n - 1
        ),
    )?;
    Ok(path)
}

/// One wrk run against `server`: requests/s, and the server's CPU microseconds per request.
fn load(server: &Server, script: &Path, secs: u64, conns: usize) -> io::Result<(f64, f64)> {
    let stat = server.stat_path();
    let cpu0 = sys::cpu_time(&stat);
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{conns}"), &format!("-d{secs}s"), "-s"])
        .arg(script)
        .arg(format!("http://{}/", server.addr))
        .output()?;
    let cpu = sys::cpu_time(&stat).saturating_sub(cpu0);
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("Non-2xx") {
        return Err(io::Error::other(format!(
            "{}: wrk said:\n{text}",
            server.name
        )));
    }
    let rps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("no Requests/sec in:\n{text}")))?;
    let requests = rps * secs as f64;
    Ok((rps, cpu.as_secs_f64() * 1e6 / requests))
}

fn main() -> io::Result<()> {
    if let Some(served) = servers::serve_tokio_if_asked() {
        return served;
    }
    let rounds: usize = sys::arg("--rounds", 3);
    let secs: u64 = sys::arg("--secs", 5);
    let conns: usize = sys::arg("--connections", 64);
    let files: usize = sys::arg("--files", 2000);
    let only: String = sys::arg("--only", String::new());
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("small_files: wrk is not installed (benches/compare.sh installs it); skipped");
        return Ok(());
    }
    let root = www_dir(files)?;
    let script = script(files)?;
    // Servers inherit CPU 0 from this thread; wrk, started after the move, CPU 1.
    sys::pin(0);
    let (servers, notes) = servers::start_all(&root, &only)?;
    sys::pin(1);
    // Every server gives the right bytes, then one unmeasured warm-up run each.
    for s in &servers {
        for i in [0, files / 2, files - 1] {
            if get(s, &format!("/f/{i:04}"))? != content(i) {
                return Err(io::Error::other(format!("{}: wrong bytes for {i}", s.name)));
            }
        }
        load(s, &script, 1, conns)?;
    }
    let mut rps = vec![Vec::new(); servers.len()];
    let mut cpu = vec![Vec::new(); servers.len()];
    for round in 0..rounds {
        for k in 0..servers.len() {
            let i = (round + k) % servers.len();
            let (r, c) = load(&servers[i], &script, secs, conns)?;
            if std::env::var_os("VERBOSE").is_some() {
                eprintln!(
                    "round {round} {}: {r:.0} req/s, {c:.1} us/req",
                    servers[i].name
                );
            }
            rps[i].push(r);
            cpu[i].push(c);
        }
    }
    let med: Vec<(f64, f64)> = rps
        .into_iter()
        .zip(cpu)
        .map(|(r, c)| (sys::median(r), sys::median(c)))
        .collect();
    let of = |name: &str| servers.iter().position(|s| s.name == name).map(|i| med[i]);
    let (tokio, nginx) = (of("tokio"), of("nginx"));
    let ratio =
        |x: f64, base: Option<(f64, f64)>| base.map_or("-".into(), |b| format!("{:.2}x", x / b.0));
    let mut md = format!(
        "{files} distinct {} KiB page-cached files over keep-alive HTTP/1.1, each request for \
         one at random: wrk (1 thread, {conns} connections) on CPU 1, one server process on \
         CPU 0; median of {rounds} interleaved rounds of {secs} s (`cargo bench --bench \
         small_files`). Server CPU: the whole process, from /proc.\n\n\
         | server | requests/s | vs tokio | vs nginx | server CPU us/request |\n|---|---|---|---|---|\n",
        FILE_SIZE / 1024
    );
    for (s, (r, c)) in servers.iter().zip(&med) {
        md.push_str(&format!(
            "| {} | {r:.0} | {} | {} | {c:.1} |\n",
            s.name,
            ratio(*r, tokio),
            ratio(*r, nginx)
        ));
    }
    for n in &notes {
        md.push_str(&format!("\n{n}\n"));
    }
    print!("{md}");
    if let (Some(hoop), Some(tokio)) = (of("hoop"), tokio) {
        let label = format!("{files} small files over HTTP");
        results::write(
            "small_files",
            &[
                results::Row {
                    workload: format!("{label}: requests/s"),
                    unit: "req/s",
                    hoop: hoop.0,
                    tokio: tokio.0,
                    higher_is_better: true,
                },
                results::Row {
                    workload: format!("{label}: server CPU/request"),
                    unit: "us",
                    hoop: hoop.1,
                    tokio: tokio.1,
                    higher_is_better: false,
                },
            ],
        )?;
        results::write_md("small_files", &md)?;
    }
    Ok(())
}
