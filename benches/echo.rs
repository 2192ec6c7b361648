//! Echo ping-pong load: hoop's echo server against the same server on tokio (current_thread),
//! one after the other in one run, each server pinned to CPU 0 and the load generator (a hoop
//! runtime) pinned to CPU 1. Prints requests/s, p99 latency and the server's CPU time per request.
//!
//! Servers: `hoop` (owned-buffer `read` + `write_all`, what most code writes),
//! `hoop-multi` (`recv_stream` on a provided-buffer ring: one armed multishot receive per connection, each
//! received chunk sent back without a copy), `hoop-inc` (the same on a ring of 64 KiB buffers consumed
//! incrementally), `hoop-direct` (direct descriptors), `tokio`.
//!
//! Run: `cargo bench --bench echo` (`-- --secs N --rounds R` to change the defaults: 3 s, 3
//! rounds; the median of the rounds is reported; `--only NAME` runs one server, for profiling:
//! its thread is named `NAME-srv`; `--scenario 500x1024` runs one load).

#[path = "common/results.rs"]
mod results;
#[path = "common/sys.rs"]
mod sys;

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A server under test: where it listens and where its CPU time is read.
struct Server {
    name: String,
    addr: SocketAddr,
    /// `/proc/self/task/TID/stat` (the server thread) or `/proc/PID/stat` (a peer process).
    cpu_stat: String,
    /// A peer's process, killed when the bench ends.
    child: Option<std::process::Child>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts a server on its own thread named `{name}-srv`, pinned to CPU 0.
fn start_server(name: &str, serve: fn(mpsc::Sender<(SocketAddr, i32)>)) -> Server {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("{name}-srv"))
        .spawn(move || {
            sys::pin(0);
            serve(tx)
        })
        .unwrap();
    let (addr, tid) = rx.recv().unwrap();
    Server {
        name: name.to_string(),
        addr,
        cpu_stat: format!("/proc/self/task/{tid}/stat"),
        child: None,
    }
}

/// Starts `hoop-peers echo RUNTIME` (benches/peers) as a process pinned to CPU 0; it prints its
/// address.
fn start_peer(bin: &str, runtime: &str) -> io::Result<Server> {
    use std::io::BufRead;
    let (bin, rt) = (bin.to_string(), runtime.to_string());
    // Spawned from a thread pinned to CPU 0, the child inherits the mask.
    let mut child = std::thread::spawn(move || {
        sys::pin(0);
        std::process::Command::new(bin)
            .args(["echo", &rt])
            .stdout(std::process::Stdio::piped())
            .spawn()
    })
    .join()
    .unwrap()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line)?;
    let addr = line.trim().parse().map_err(io::Error::other)?;
    Ok(Server {
        name: runtime.to_string(),
        addr,
        cpu_stat: format!("/proc/{}/stat", child.id()),
        child: Some(child),
    })
}

/// hoop with owned buffers: `read` into a Vec, `write_all` it back.
fn serve_hoop(tx: mpsc::Sender<(SocketAddr, i32)>) {
    let rt = hoop::Runtime::builder().workers(1).build().unwrap();
    rt.block_on(async move {
        let listener = hoop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        tx.send((listener.local_addr().unwrap(), sys::gettid()))
            .unwrap();
        let mut incoming = listener.incoming();
        while let Some(Ok(s)) = futures_util::StreamExt::next(&mut incoming).await {
            hoop::spawn(async move {
                let _ = s.set_nodelay(true);
                let mut buf = Vec::with_capacity(16 * 1024);
                loop {
                    buf.clear();
                    let (n, b) = s.read(buf).await;
                    if !matches!(n, Ok(n) if n > 0) {
                        return;
                    }
                    let (r, b) = s.write_all(b).await;
                    if r.is_err() {
                        return;
                    }
                    buf = b;
                }
            })
            .detach();
        }
    });
}

/// hoop with a multishot receive into a provided-buffer ring shared by all connections; each
/// chunk is sent back from the ring's buffer and returns to the ring when the send is done.
fn serve_hoop_multishot(tx: mpsc::Sender<(SocketAddr, i32)>) {
    serve_from_ring(tx, || hoop::buf::BufRing::new(1024, 4096));
}

/// `serve_hoop_multishot` on a ring of the same memory in 64 buffers of 64 KiB, consumed
/// incrementally where the kernel can (6.12).
fn serve_hoop_incremental(tx: mpsc::Sender<(SocketAddr, i32)>) {
    serve_from_ring(tx, || {
        hoop::buf::BufRing::builder(64, 64 * 1024)
            .incremental(true)
            .build()
    });
}

fn serve_from_ring(
    tx: mpsc::Sender<(SocketAddr, i32)>,
    ring: fn() -> io::Result<hoop::buf::BufRing>,
) {
    let rt = hoop::Runtime::builder().workers(1).build().unwrap();
    rt.block_on(async move {
        let ring = ring().unwrap();
        let listener = hoop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        tx.send((listener.local_addr().unwrap(), sys::gettid()))
            .unwrap();
        let mut incoming = listener.incoming();
        while let Some(Ok(s)) = futures_util::StreamExt::next(&mut incoming).await {
            let ring = ring.clone();
            hoop::spawn(async move {
                let _ = s.set_nodelay(true);
                let mut chunks = s.recv_stream(&ring);
                while let Some(Ok(chunk)) = futures_util::StreamExt::next(&mut chunks).await {
                    if s.write_all(chunk).await.0.is_err() {
                        return;
                    }
                }
            })
            .detach();
        }
    });
}

/// `serve_hoop` on direct descriptors: each connection accepted into a slot of the worker's
/// registered-file table (`accept_direct`), so no receive or send looks its file up.
/// `TCP_NODELAY` is set on the listener, from which accepted sockets inherit it.
fn serve_hoop_direct(tx: mpsc::Sender<(SocketAddr, i32)>) {
    let rt = hoop::Runtime::builder().workers(1).build().unwrap();
    rt.block_on(async move {
        let listener = hoop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket2::SockRef::from(&listener)
            .set_tcp_nodelay(true)
            .unwrap();
        tx.send((listener.local_addr().unwrap(), sys::gettid()))
            .unwrap();
        while let Ok((s, _)) = listener.accept_direct().await {
            assert!(s.is_direct(), "no direct descriptors on this kernel");
            hoop::spawn(async move {
                let mut buf = Vec::with_capacity(16 * 1024);
                loop {
                    buf.clear();
                    let (n, b) = s.read(buf).await;
                    if !matches!(n, Ok(n) if n > 0) {
                        return;
                    }
                    let (r, b) = s.write_all(b).await;
                    if r.is_err() {
                        return;
                    }
                    buf = b;
                }
            })
            .detach();
        }
    });
}

/// The same server on tokio's current_thread runtime.
fn serve_tokio(tx: mpsc::Sender<(SocketAddr, i32)>) {
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send((listener.local_addr().unwrap(), sys::gettid()))
                .unwrap();
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let _ = s.set_nodelay(true);
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }
}

struct Sample {
    rps: f64,
    p99_us: f64,
    cpu_ns_per_req: f64,
}

/// Drives `conns` connections of `size`-byte ping-pongs for `secs` from a hoop client pinned to
/// CPU 1.
fn load(
    addr: SocketAddr,
    cpu_stat: String,
    conns: usize,
    size: usize,
    secs: f64,
) -> io::Result<Sample> {
    let (tx, rx) = mpsc::channel();
    let client = std::thread::Builder::new().name("echo-client".into());
    client.spawn(move || {
        sys::pin(1);
        let rt = hoop::Runtime::builder().workers(1).build().unwrap();
        let res = rt.block_on(async move {
            let mut streams = Vec::new();
            for _ in 0..conns {
                let s = hoop::net::TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                streams.push(s);
            }
            // Warm up, then measure.
            let warm = Instant::now() + Duration::from_millis(300);
            let end = warm + Duration::from_secs_f64(secs);
            let tasks: Vec<_> = streams
                .into_iter()
                .map(|s| {
                    hoop::spawn(async move {
                        let mut lat = Vec::new();
                        let (mut out, mut back) = (vec![7u8; size], vec![0u8; size]);
                        let mut count = 0u64;
                        loop {
                            let t = Instant::now();
                            if t >= end {
                                return Ok::<_, io::Error>((count, lat));
                            }
                            let (r, o) = s.write_all(out).await;
                            r?;
                            out = o;
                            let (r, b) = s.read_exact(back).await;
                            r?;
                            back = b;
                            if t >= warm {
                                count += 1;
                                lat.push(t.elapsed().as_micros() as u32);
                            }
                        }
                    })
                })
                .collect();
            // The server's CPU time over the measured window only.
            let cpu = hoop::spawn(async move {
                hoop::time::sleep_until(warm).await;
                let cpu0 = sys::cpu_time(&cpu_stat);
                hoop::time::sleep_until(end).await;
                sys::cpu_time(&cpu_stat).saturating_sub(cpu0)
            });
            let mut total = 0;
            let mut lats = Vec::new();
            for t in tasks {
                let (c, l) = t.await??;
                total += c;
                lats.extend(l);
            }
            let cpu = cpu.await.expect("the CPU sampler does not panic");
            lats.sort_unstable();
            let p99 = lats.get(lats.len() * 99 / 100).copied().unwrap_or(0) as f64;
            Ok::<_, io::Error>(Sample {
                rps: total as f64 / secs,
                p99_us: p99,
                cpu_ns_per_req: cpu.as_nanos() as f64 / total.max(1) as f64,
            })
        });
        let _ = tx.send(res);
    })?;
    rx.recv().unwrap()
}

type Serve = fn(mpsc::Sender<(SocketAddr, i32)>);

/// The servers compared, tokio last (the reference of the ratios).
const SERVERS: [(&str, Serve); 5] = [
    ("hoop", serve_hoop),
    ("hoop-multi", serve_hoop_multishot),
    ("hoop-inc", serve_hoop_incremental),
    ("hoop-direct", serve_hoop_direct),
    ("tokio", serve_tokio),
];

fn main() -> io::Result<()> {
    let mut secs = 3.0;
    let mut rounds = 3;
    let mut only: Option<String> = None;
    let mut peers: Option<String> = None;
    let mut scenario: Option<(usize, usize)> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--secs" => secs = args.next().and_then(|v| v.parse().ok()).unwrap_or(secs),
            "--rounds" => rounds = args.next().and_then(|v| v.parse().ok()).unwrap_or(rounds),
            "--only" => only = args.next(),
            // benches/peers' binary: also load its monoio and compio echo servers.
            "--peers" => peers = args.next(),
            // One scenario, as CONNSxSIZE (e.g. 500x1024).
            "--scenario" => {
                let v = args.next().unwrap_or_default();
                let (c, z) = v.split_once('x').unwrap_or(("64", "64"));
                scenario = Some((c.parse().unwrap_or(64), z.parse().unwrap_or(64)));
            }
            _ => {} // cargo bench passes --bench
        }
    }
    let mut servers: Vec<Server> = SERVERS
        .iter()
        .filter(|(name, _)| only.as_deref().is_none_or(|o| o == *name))
        .map(|&(name, serve)| start_server(name, serve))
        .collect();
    if let Some(bin) = &peers {
        for rt in ["monoio", "compio"] {
            if only.as_deref().is_none_or(|o| o == rt) {
                // tokio stays last: it is the reference of the ratios.
                let at = servers.len().saturating_sub(1);
                servers.insert(at, start_peer(bin, rt)?);
            }
        }
    }
    let scenarios = match scenario {
        Some(one) => vec![one],
        None => vec![(64, 64), (64, 4096), (500, 1024)],
    };
    println!(
        "echo ping-pong, server on CPU 0, client on CPU 1, {secs} s x {rounds} rounds (medians); \
         ratios against tokio"
    );
    println!(
        "{:<16} {:<15} {:>10} {:>7} {:>8} {:>10} {:>7}",
        "conns x size", "server", "req/s", "ratio", "p99", "CPU/req", "ratio"
    );
    let mut rows = Vec::new();
    let mut md = format!(
        "Echo ping-pong, every server on one thread pinned to CPU 0, the load generator on CPU 1, \
         {secs} s x {rounds} interleaved rounds, medians (`cargo bench --bench echo{}`). Server \
         CPU: the server thread for hoop and tokio, the whole process for the peers.\n\n\
         | conns x size | server | req/s | vs tokio | server CPU ns/req | CPU vs tokio (lower is better) |\n\
         |---|---|---|---|---|---|\n",
        if peers.is_some() { " -- --peers ..." } else { "" }
    );
    for (conns, size) in scenarios {
        // Rounds interleave the servers, so a noisy second hits all of them alike.
        let mut samples: Vec<Vec<Sample>> = servers.iter().map(|_| Vec::new()).collect();
        for _ in 0..rounds {
            for (i, server) in servers.iter().enumerate() {
                samples[i].push(load(
                    server.addr,
                    server.cpu_stat.clone(),
                    conns,
                    size,
                    secs,
                )?);
            }
        }
        let medians: Vec<(f64, f64, f64)> = samples
            .iter()
            .map(|s| {
                (
                    sys::median(s.iter().map(|s| s.rps).collect()),
                    sys::median(s.iter().map(|s| s.p99_us).collect()),
                    sys::median(s.iter().map(|s| s.cpu_ns_per_req).collect()),
                )
            })
            .collect();
        let tokio = servers
            .iter()
            .position(|s| s.name == "tokio")
            .map(|i| medians[i]);
        for (i, server) in servers.iter().enumerate() {
            let name = server.name.as_str();
            let (rps, p99, cpu) = medians[i];
            let (trps, tcpu) = tokio.map_or((f64::NAN, f64::NAN), |t| (t.0, t.2));
            println!(
                "{:<16} {:<15} {:>10.0} {:>6.2}x {:>6.0}us {:>8.0}ns {:>6.2}x",
                format!("{conns} x {size} B"),
                name,
                rps,
                rps / trps,
                p99,
                cpu,
                cpu / tcpu
            );
            md.push_str(&format!(
                "| {conns} x {size} B | {name} | {:.0}k | {:.2}x | {cpu:.0} | {:.2}x |\n",
                rps / 1e3,
                rps / trps,
                cpu / tcpu
            ));
            if !name.starts_with("hoop") || tokio.is_none() {
                continue;
            }
            let suffix = match name {
                "hoop" => "",
                "hoop-direct" => " (direct descriptors)",
                "hoop-inc" => " (incremental ring)",
                _ => " (multishot)",
            };
            rows.push(results::Row {
                workload: format!("echo {conns} conns x {size} B{suffix}: req/s"),
                unit: "req/s",
                hoop: rps,
                tokio: trps,
                higher_is_better: true,
            });
            rows.push(results::Row {
                workload: format!("echo {conns} conns x {size} B{suffix}: server CPU/req"),
                unit: "ns",
                hoop: cpu,
                tokio: tcpu,
                higher_is_better: false,
            });
        }
    }
    if only.is_none() && scenario.is_none() {
        results::write("echo", &rows)?;
        results::write_md("echo", &md)?;
    }
    Ok(())
}
