//! hyper on hoop against the same hyper service on tokio (current_thread): HTTP/1.1 driven by
//! wrk (64 connections) and HTTP/2 by h2load (16 connections × 10 streams, prior knowledge),
//! `GET /hello.json` (a small JSON body). Each server is one thread pinned to CPU 0, the load
//! tool is pinned to CPU 1; rounds interleave the servers; medians of requests/s and of the
//! server thread's CPU time per request are reported, as ratios against tokio.
//!
//! Both servers do what `examples/hyper_server.rs` does: peek for the HTTP/2 preface, then
//! serve the connection with hyper's http1 (with a header read timeout) or http2 builder. hoop
//! reaches hyper through `Compat`, `HyperExecutor` and `HyperTimer`; tokio through hyper-util's
//! `TokioIo`, `TokioExecutor` and `TokioTimer`, as users write it.
//!
//! Run: `cargo bench --features hyper --bench hyper` (`-- --secs N --rounds R`, defaults 3 and
//! 3). Needs `wrk` and `h2load` (Debian: `wrk`, `nghttp2-client`; `benches/compare.sh` installs
//! them); a missing tool's rows are skipped.

#[path = "common/results.rs"]
mod results;
#[path = "common/sys.rs"]
mod sys;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let json = format!(
        "{{\"hello\":\"world\",\"version\":\"{:?}\"}}\n",
        req.version()
    );
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json)))
        .expect("static headers are valid"))
}

/// Starts `serve` on a thread named `{name}-srv` pinned to CPU 0; returns its address and its
/// stat file.
fn start(name: &str, serve: fn(mpsc::Sender<(SocketAddr, i32)>)) -> (SocketAddr, String) {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("{name}-srv"))
        .spawn(move || {
            sys::pin(0);
            serve(tx)
        })
        .unwrap();
    let (addr, tid) = rx.recv().unwrap();
    (addr, format!("/proc/self/task/{tid}/stat"))
}

fn serve_hoop(tx: mpsc::Sender<(SocketAddr, i32)>) {
    use hoop::io::{Compat, HyperExecutor, HyperTimer};
    let rt = hoop::Runtime::builder().workers(1).build().unwrap();
    rt.block_on(async move {
        let listener = hoop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        tx.send((listener.local_addr().unwrap(), sys::gettid()))
            .unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            hoop::spawn(async move {
                let _ = stream.set_nodelay(true);
                let mut http2 = false;
                for _ in 0..16 {
                    let (n, buf) = stream.peek(Vec::with_capacity(H2_PREFACE.len())).await;
                    let Ok(n) = n else { return };
                    if n == 0 || !H2_PREFACE.starts_with(&buf[..n]) {
                        break;
                    }
                    if n == H2_PREFACE.len() {
                        http2 = true;
                        break;
                    }
                    hoop::time::sleep(Duration::from_millis(1)).await;
                }
                let io = Compat::new(stream);
                let service = hyper::service::service_fn(hello);
                let _ = if http2 {
                    hyper::server::conn::http2::Builder::new(HyperExecutor)
                        .timer(HyperTimer)
                        .serve_connection(io, service)
                        .await
                } else {
                    hyper::server::conn::http1::Builder::new()
                        .timer(HyperTimer)
                        .header_read_timeout(Duration::from_secs(10))
                        .serve_connection(io, service)
                        .await
                };
            })
            .detach();
        }
    });
}

fn serve_tokio(tx: mpsc::Sender<(SocketAddr, i32)>) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        tx.send((listener.local_addr().unwrap(), sys::gettid()))
            .unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let mut http2 = false;
                let mut buf = [0u8; H2_PREFACE.len()];
                for _ in 0..16 {
                    let Ok(n) = stream.peek(&mut buf).await else {
                        return;
                    };
                    if n == 0 || !H2_PREFACE.starts_with(&buf[..n]) {
                        break;
                    }
                    if n == H2_PREFACE.len() {
                        http2 = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let io = TokioIo::new(stream);
                let service = hyper::service::service_fn(hello);
                let _ = if http2 {
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .timer(TokioTimer::new())
                        .serve_connection(io, service)
                        .await
                } else {
                    hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(10))
                        .serve_connection(io, service)
                        .await
                };
            });
        }
    });
}

/// A load tool: its name, and the command for `url` and `secs` (run pinned to CPU 1).
struct Load {
    name: &'static str,
    tool: &'static str,
    args: fn(&str, u64) -> Vec<String>,
    /// Requests/s from the tool's output.
    parse: fn(&str) -> Option<f64>,
}

const LOADS: [Load; 2] = [
    Load {
        name: "HTTP/1.1 (wrk, 64 conns)",
        tool: "wrk",
        args: |url, secs| {
            ["-t1", "-c64", &format!("-d{secs}s"), url]
                .map(String::from)
                .to_vec()
        },
        // "Requests/sec:  123456.78"
        parse: |out| {
            out.lines()
                .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
                .and_then(|v| v.trim().parse().ok())
        },
    },
    Load {
        name: "HTTP/2 (h2load, 16 conns x 10 streams)",
        tool: "h2load",
        args: |url, secs| {
            ["-t1", "-c16", "-m10", "-D", &secs.to_string(), url]
                .map(String::from)
                .to_vec()
        },
        // "finished in 3.00s, 123456.78 req/s, 9.87MB/s"; failed requests make it invalid.
        parse: |out| {
            let ok = out
                .lines()
                .find(|l| l.trim_start().starts_with("requests:"))
                .is_some_and(|l| l.contains(" 0 failed") && l.contains(" 0 errored"));
            let line = out.lines().find(|l| l.starts_with("finished in"))?;
            let rate = line.split(", ").nth(1)?.strip_suffix(" req/s")?;
            ok.then(|| rate.parse().ok()).flatten()
        },
    },
];

/// One run of `load` against a server: (requests/s, server CPU ns per request).
fn run(load: &Load, addr: SocketAddr, stat: &str, secs: u64) -> io::Result<(f64, f64)> {
    let url = format!("http://{addr}/hello.json");
    let cpu0 = sys::cpu_time(stat);
    let out = Command::new("taskset")
        .arg("-c")
        .arg((1 % sys::num_cpus()).to_string())
        .arg(load.tool)
        .args((load.args)(&url, secs))
        .output()?;
    let cpu = sys::cpu_time(stat).saturating_sub(cpu0);
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = (load.parse)(&text)
        .ok_or_else(|| io::Error::other(format!("{}: no result in {text:?}", load.tool)))?;
    let requests = rps * secs as f64;
    Ok((rps, cpu.as_nanos() as f64 / requests))
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stdout.is_empty() || !o.stderr.is_empty())
}

fn main() -> io::Result<()> {
    let secs: u64 = sys::arg("--secs", 3);
    let rounds: usize = sys::arg("--rounds", 3);
    // `--only hoop|tokio` loads one server (for profiling), `--load h1|h2` one load.
    let only: String = sys::arg("--only", String::new());
    let which: String = sys::arg("--load", String::new());
    let servers: Vec<(&str, (SocketAddr, String))> =
        [("hoop", serve_hoop as fn(_)), ("tokio", serve_tokio)]
            .into_iter()
            .filter(|(name, _)| only.is_empty() || only == *name)
            .map(|(name, serve)| (name, start(name, serve)))
            .collect();
    println!(
        "hyper GET /hello.json, server on CPU 0, load on CPU 1, {secs} s x {rounds} rounds \
         (medians); ratios against tokio current_thread"
    );
    println!(
        "{:<40} {:<6} {:>10} {:>7} {:>10} {:>7}",
        "load", "server", "req/s", "ratio", "CPU/req", "ratio"
    );
    let mut md = format!(
        "hyper 1.x serving `GET /hello.json`, each server one thread pinned to CPU 0, the load \
         tool on CPU 1, {secs} s x {rounds} interleaved rounds, medians (`cargo bench \
         --features hyper --bench hyper`). hoop through `Compat`, tokio through hyper-util's \
         `TokioIo` (current_thread). CPU: the server thread's.\n\n\
         | load | server | req/s | vs tokio | server CPU ns/req | CPU vs tokio (lower is better) |\n\
         |---|---|---|---|---|---|\n"
    );
    let mut rows = Vec::new();
    for load in &LOADS {
        if !which.is_empty()
            && !load
                .name
                .contains(if which == "h2" { "HTTP/2" } else { "HTTP/1" })
        {
            continue;
        }
        if !have(load.tool) {
            eprintln!("{} not installed: skipping {}", load.tool, load.name);
            continue;
        }
        let mut samples: Vec<Vec<(f64, f64)>> = servers.iter().map(|_| Vec::new()).collect();
        for _ in 0..rounds {
            for (i, (_, (addr, stat))) in servers.iter().enumerate() {
                samples[i].push(run(load, *addr, stat, secs)?);
            }
        }
        let medians = sys::medians(&samples);
        let tokio = *medians.last().expect("a server");
        for ((name, _), (rps, cpu)) in servers.iter().zip(&medians) {
            println!(
                "{:<40} {:<6} {:>10.0} {:>6.2}x {:>8.0}ns {:>6.2}x",
                load.name,
                name,
                rps,
                rps / tokio.0,
                cpu,
                cpu / tokio.1
            );
            md.push_str(&format!(
                "| {} | {name} | {:.0}k | {:.2}x | {cpu:.0} | {:.2}x |\n",
                load.name,
                rps / 1e3,
                rps / tokio.0,
                cpu / tokio.1
            ));
        }
        let (rps, cpu) = medians[0];
        let label = load.name.split(" (").next().unwrap_or(load.name);
        rows.push(results::Row {
            workload: format!("hyper {label}: req/s"),
            unit: "req/s",
            hoop: rps,
            tokio: tokio.0,
            higher_is_better: true,
        });
        rows.push(results::Row {
            workload: format!("hyper {label}: server CPU ns/req"),
            unit: "ns/req",
            hoop: cpu,
            tokio: tokio.1,
            higher_is_better: false,
        });
    }
    results::write("hyper", &rows)?;
    results::write_md("hyper", &md)?;
    Ok(())
}
