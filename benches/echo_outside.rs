//! Echo measured from outside, as a user would: every server is a process of its own on CPU 0
//! (the shipped `examples/echo` with one worker: its ring path on io_uring and on epoll, and its
//! `--owned` path on io_uring; tokio current_thread,
//! monoio and compio running the echo server each documents: read into a buffer, write back what
//! was read), and the load is an independent generator on CPU 1 (`hoop-peers load`: a bare
//! io_uring, no runtime; one request in flight per connection). Servers interleave round by
//! round; medians of the rounds are reported, with ratios against tokio. The server's CPU time
//! is its whole process's (`/proc/PID/stat`, io-wq workers included), read when the generator
//! says the measured window starts and ends.
//!
//! Needs `cargo build --release --example echo` and benches/peers built
//! (`cargo build --release --manifest-path benches/peers/Cargo.toml`); `benches/compare.sh`
//! does both. Run: `cargo bench --bench echo_outside -- [--secs 3] [--rounds 3]
//! [--only NAME] [--scenario 64x4096[@RATE]]`).
//!
//! The last scenario is paced (`hoop-peers load --rate`): 64 connections at 120,000 requests a
//! second, a rate every server sustains, so the CPU per request compares the servers' work at
//! equal load (unpaced, each server is as busy as the generator can make it, and one that
//! answers faster gets more requests, in smaller batches).

#[path = "common/results.rs"]
mod results;
#[path = "common/sys.rs"]
mod sys;

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

/// A server process on CPU 0, killed when dropped.
struct Server {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd` from a thread pinned to `cpu`, so that the child inherits the mask.
fn spawn_on(cpu: usize, mut cmd: Command) -> io::Result<Child> {
    std::thread::spawn(move || {
        sys::pin(cpu);
        cmd.stdout(Stdio::piped()).spawn()
    })
    .join()
    .expect("the spawning thread does not panic")
}

/// Starts a server and reads its address from the first token of its output that is one (the
/// peers print it alone, `examples/echo` prints "echo: listening on ADDR with ...").
fn start(name: &'static str, cmd: Command) -> io::Result<Server> {
    let mut child = spawn_on(0, cmd)?;
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line)? == 0 {
            let _ = child.kill();
            return Err(io::Error::other(format!("{name} exited before listening")));
        }
        if let Some(addr) = line.split_whitespace().find_map(|w| w.parse().ok()) {
            // Its later output (none until a signal) is not read.
            return Ok(Server { name, child, addr });
        }
    }
}

fn example(driver: &str, owned: bool) -> io::Result<Command> {
    let exe = target().join("release/examples/echo");
    if !exe.exists() {
        return Err(io::Error::other(format!(
            "{} missing: cargo build --release --example echo",
            exe.display()
        )));
    }
    let mut cmd = Command::new(exe);
    cmd.args(["--workers", "1", "--addr", "127.0.0.1:0"])
        .env("HOOP_DRIVER", driver);
    if owned {
        cmd.arg("--owned");
    }
    Ok(cmd)
}

fn peer(peers: &Path, runtime: &str) -> Command {
    let mut cmd = Command::new(peers);
    cmd.args(["echo", runtime]);
    cmd
}

fn target() -> PathBuf {
    results::dir().parent().unwrap().to_path_buf()
}

struct Sample {
    rps: f64,
    p99_us: f64,
    cpu_ns_per_req: f64,
    /// The load generator's CPU time over the run's wall time: near 1.0, it (not the server)
    /// limited the rate.
    load_busy: f64,
}

/// One load run against `server`: the generator on CPU 1; the server's CPU time read when the
/// generator announces the window's start and end.
fn load(
    peers: &Path,
    server: &Server,
    (conns, size, rate): Scenario,
    secs: f64,
) -> io::Result<Sample> {
    let mut cmd = Command::new(peers);
    cmd.arg("load")
        .args(["--addr", &server.addr.to_string()])
        .args(["--conns", &conns.to_string()])
        .args(["--size", &size.to_string()])
        .args(["--secs", &secs.to_string()]);
    if let Some(rate) = rate {
        cmd.args(["--rate", &rate.to_string()]);
    }
    let mut child = spawn_on(1, cmd)?;
    let stat = format!("/proc/{}/stat", server.child.id());
    let mut out: BufReader<ChildStdout> = BufReader::new(child.stdout.take().expect("piped"));
    let (mut cpu0, mut cpu) = (None, None);
    let mut line = String::new();
    let mut result = None;
    while {
        line.clear();
        out.read_line(&mut line)? > 0
    } {
        match line.trim() {
            "measuring" => cpu0 = Some(sys::cpu_time(&stat)),
            "done" => cpu = cpu0.map(|c0| sys::cpu_time(&stat).saturating_sub(c0)),
            l if l.starts_with("requests=") => result = Some(l.to_string()),
            _ => {}
        }
    }
    let status = child.wait()?;
    let (Some(result), Some(cpu)) = (result, cpu) else {
        return Err(io::Error::other(format!(
            "the load generator against {} failed: {status}",
            server.name
        )));
    };
    let field = |key: &str| -> f64 {
        result
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let requests = field("requests");
    Ok(Sample {
        rps: requests / field("secs"),
        p99_us: field("p99_us"),
        cpu_ns_per_req: cpu.as_nanos() as f64 / requests.max(1.0),
        load_busy: field("cpu_ms") / 1e3 / (secs + WARM_UP),
    })
}

/// Connections, message size, and the paced rate (requests/s) if any.
type Scenario = (usize, usize, Option<u64>);

/// `CONNSxSIZE[@RATE]`.
fn parse_scenario(s: &str) -> io::Result<Scenario> {
    let bad = || io::Error::other(format!("--scenario {s}: expected CONNSxSIZE[@RATE]"));
    let (shape, rate) = match s.split_once('@') {
        Some((shape, rate)) => (shape, Some(rate.parse().map_err(|_| bad())?)),
        None => (s, None),
    };
    let (c, z) = shape.split_once('x').ok_or_else(bad)?;
    Ok((
        c.parse().map_err(|_| bad())?,
        z.parse().map_err(|_| bad())?,
        rate,
    ))
}

/// The generator's warm-up before the measured window (its default).
const WARM_UP: f64 = 0.3;

fn main() -> io::Result<()> {
    let secs: f64 = sys::arg("--secs", 3.0);
    let rounds: usize = sys::arg("--rounds", 3);
    let only: String = sys::arg("--only", String::new());
    let scenario: String = sys::arg("--scenario", String::new());
    let peers = sys::arg(
        "--peers",
        target()
            .parent()
            .unwrap()
            .join("benches/peers/target/release/hoop-peers")
            .display()
            .to_string(),
    );
    let peers = PathBuf::from(peers);
    if !peers.exists() {
        return Err(io::Error::other(format!(
            "{} missing: cargo build --release --manifest-path benches/peers/Cargo.toml",
            peers.display()
        )));
    }
    sys::pin(1);
    let candidates: [(&'static str, io::Result<Command>); 6] = [
        ("hoop", example("io_uring", false)),
        ("hoop-owned", example("io_uring", true)),
        ("hoop-epoll", example("epoll", false)),
        ("monoio", Ok(peer(&peers, "monoio"))),
        ("compio", Ok(peer(&peers, "compio"))),
        // Last: the reference of the ratios.
        ("tokio", Ok(peer(&peers, "tokio"))),
    ];
    let mut servers = Vec::new();
    for (name, cmd) in candidates {
        if only.is_empty() || only == name {
            servers.push(start(name, cmd?)?);
        }
    }
    let scenarios: Vec<Scenario> = if scenario.is_empty() {
        vec![
            (1, 64, None),
            (64, 64, None),
            (64, 4096, None),
            (500, 1024, None),
            (64, 64, Some(120_000)),
        ]
    } else {
        vec![parse_scenario(&scenario)?]
    };
    println!(
        "echo from outside: servers as processes on CPU 0, hoop-peers load on CPU 1, \
         {secs} s x {rounds} rounds (medians); ratios against tokio"
    );
    println!(
        "{:<22} {:<11} {:>10} {:>7} {:>8} {:>10} {:>7} {:>5}",
        "conns x size", "server", "req/s", "ratio", "p99", "CPU/req", "ratio", "load"
    );
    let mut md = format!(
        "Echo from outside: each server a process pinned to CPU 0 (`examples/echo --workers 1` \
         on either driver; tokio current_thread, monoio and compio running the same read-then-\
         write-back loop), an independent load generator on CPU 1 (`hoop-peers load`: one bare \
         io_uring, one request in flight per connection), {secs} s x {rounds} interleaved rounds, \
         medians (`cargo bench --bench echo_outside`). `hoop` is the example as shipped (a \
         provided-buffer ring per worker), `hoop-owned` its `--owned` path (a 16 KiB buffer per \
         connection). Server CPU: the whole process. Load busy: the generator's CPU time over \
         the run; near 100 % the generator, not the server, set the rate. The row \
         \"at 120k/s\" is paced (`--rate`): every server gets the same requests, so its CPU per \
         request compares the servers' work at equal load.\n\n\
         | conns x size | server | req/s | vs tokio | p99 | server CPU ns/req | CPU vs tokio \
         (lower is better) | load busy |\n|---|---|---|---|---|---|---|---|\n"
    );
    let mut rows = Vec::new();
    for scenario in scenarios {
        let (conns, size, rate) = scenario;
        let shape = match rate {
            Some(r) => format!("{conns} x {size} B at {}k/s", r / 1000),
            None => format!("{conns} x {size} B"),
        };
        let mut samples: Vec<Vec<Sample>> = servers.iter().map(|_| Vec::new()).collect();
        for _ in 0..rounds {
            for (i, server) in servers.iter().enumerate() {
                samples[i].push(load(&peers, server, scenario, secs)?);
            }
        }
        let medians: Vec<[f64; 4]> = samples
            .iter()
            .map(|s| {
                [
                    sys::median(s.iter().map(|s| s.rps).collect()),
                    sys::median(s.iter().map(|s| s.p99_us).collect()),
                    sys::median(s.iter().map(|s| s.cpu_ns_per_req).collect()),
                    sys::median(s.iter().map(|s| s.load_busy).collect()),
                ]
            })
            .collect();
        let tokio = servers
            .iter()
            .position(|s| s.name == "tokio")
            .map_or([f64::NAN; 4], |i| medians[i]);
        for (server, &[rps, p99, cpu, busy]) in servers.iter().zip(&medians) {
            let name = server.name;
            println!(
                "{:<22} {:<11} {:>10.0} {:>6.2}x {:>6.0}us {:>8.0}ns {:>6.2}x {:>4.0}%",
                shape,
                name,
                rps,
                rps / tokio[0],
                p99,
                cpu,
                cpu / tokio[2],
                busy * 100.0
            );
            md.push_str(&format!(
                "| {shape} | {name} | {:.1}k | {:.2}x | {p99:.0} µs | {cpu:.0} | \
                 {:.2}x | {:.0} % |\n",
                rps / 1e3,
                rps / tokio[0],
                cpu / tokio[2],
                busy * 100.0
            ));
            let label = match name {
                "hoop" => "",
                "hoop-owned" => " (owned buffers)",
                _ => continue,
            };
            if !tokio[0].is_nan() {
                // A paced run's rate is the generator's: only its CPU compares.
                if rate.is_none() {
                    rows.push(results::Row {
                        workload: format!("echo from outside {shape}{label}: req/s"),
                        unit: "req/s",
                        hoop: rps,
                        tokio: tokio[0],
                        higher_is_better: true,
                    });
                }
                rows.push(results::Row {
                    workload: format!("echo from outside {shape}{label}: server CPU/req"),
                    unit: "ns",
                    hoop: cpu,
                    tokio: tokio[2],
                    higher_is_better: false,
                });
            }
        }
    }
    if only.is_empty() && scenario.is_empty() {
        results::write("echo_outside", &rows)?;
        results::write_md("echo_outside", &md)?;
    }
    Ok(())
}
