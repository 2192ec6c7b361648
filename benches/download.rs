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
#[path = "common/sys.rs"]
mod sys;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process, killed when dropped.
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

fn free_addr() -> io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Waits until `addr` accepts connections (or the child died).
fn ready(mut server: Server) -> io::Result<Server> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(server.addr).is_ok() {
            return Ok(server);
        }
        if let Some(status) = server.child.try_wait()? {
            return Err(io::Error::other(format!(
                "{} exited: {status}",
                server.name
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(io::Error::other(format!("{} did not start", server.name)))
}

fn start_hoop(name: &'static str, driver: &str, root: &Path) -> io::Result<Server> {
    let exe = results::dir()
        .parent()
        .unwrap()
        .join("release/examples/fileserver");
    if !exe.exists() {
        return Err(io::Error::other(format!(
            "{} missing: cargo build --release --example fileserver",
            exe.display()
        )));
    }
    let addr = free_addr()?;
    let child = Command::new(exe)
        .args(["--workers", "1", "--root"])
        .arg(root)
        .args(["--addr", &addr.to_string()])
        .env("HOOP_DRIVER", driver)
        .stdout(Stdio::null())
        .spawn()?;
    ready(Server { name, child, addr })
}

fn start_tokio(root: &Path) -> io::Result<Server> {
    let addr = free_addr()?;
    let child = Command::new(std::env::current_exe()?)
        .arg("--serve-tokio")
        .arg(root)
        .arg(addr.to_string())
        .spawn()?;
    ready(Server {
        name: "tokio",
        child,
        addr,
    })
}

fn start_nginx(root: &Path) -> io::Result<Server> {
    let addr = free_addr()?;
    let prefix = results::dir().join("nginx");
    std::fs::create_dir_all(&prefix)?;
    let p = prefix.display();
    // Temp paths inside the prefix: the packaged defaults under /var/lib/nginx may not exist.
    let conf = format!(
        "worker_processes 1;\nmaster_process off;\ndaemon off;\npid {p}/nginx.pid;\n\
         error_log {p}/error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n\
         access_log off;\nsendfile on;\ntcp_nopush on;\nclient_body_temp_path {p}/body;\n\
         proxy_temp_path {p}/proxy;\nfastcgi_temp_path {p}/fastcgi;\nuwsgi_temp_path {p}/uwsgi;\n\
         scgi_temp_path {p}/scgi;\nserver {{ listen {addr}; root {}; }}\n}}\n",
        root.display()
    );
    std::fs::write(prefix.join("nginx.conf"), conf)?;
    let child = Command::new("nginx")
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .arg("-e")
        .arg(prefix.join("error.log"))
        .stdout(Stdio::null())
        .spawn()?;
    ready(Server {
        name: "nginx",
        child,
        addr,
    })
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

/// The tokio server (this binary with `--serve-tokio ROOT ADDR`).
fn serve_tokio(root: PathBuf, addr: SocketAddr) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        loop {
            let (mut s, _) = listener.accept().await?;
            let root = root.clone();
            tokio::spawn(async move {
                s.set_nodelay(true)?;
                let mut pending = Vec::new();
                let mut buf = vec![0u8; 8192];
                loop {
                    let end = loop {
                        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let n = s.read(&mut buf).await?;
                        if n == 0 {
                            return Ok::<_, io::Error>(());
                        }
                        pending.extend_from_slice(&buf[..n]);
                    };
                    let head: Vec<u8> = pending.drain(..end).collect();
                    let head = String::from_utf8_lossy(&head).to_string();
                    let target = head.split(' ').nth(1).unwrap_or("/");
                    let rel = target.trim_start_matches('/');
                    if rel.split('/').any(|c| c == "..") {
                        s.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                            .await?;
                        continue;
                    }
                    let file = match tokio::fs::File::open(root.join(rel)).await {
                        Ok(f) => f,
                        Err(_) => {
                            s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                                .await?;
                            continue;
                        }
                    };
                    let len = file.metadata().await?.len();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                         Content-Length: {len}\r\nAccept-Ranges: bytes\r\n\r\n"
                    );
                    s.write_all(head.as_bytes()).await?;
                    let mut body = tokio::io::BufReader::with_capacity(256 * 1024, file.take(len));
                    tokio::io::copy_buf(&mut body, &mut s).await?;
                }
            });
        }
    })
}

struct Measured {
    gbps: Vec<f64>,
    cpu_ms_per_gb: Vec<f64>,
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve-tokio") {
        let root = PathBuf::from(&args[i + 1]);
        let addr = args[i + 2].parse().map_err(io::Error::other)?;
        return serve_tokio(root, addr);
    }
    let rounds: usize = sys::arg("--rounds", 5);
    let mib: u64 = sys::arg("--mib", 1024);
    let root = www_dir(mib)?;
    // Servers inherit CPU 0 from this thread; the client then moves to CPU 1.
    sys::pin(0);
    // `--only NAME` measures one server (for profiling).
    let only: String = sys::arg("--only", String::new());
    let wanted = |name: &str| only.is_empty() || only == name;
    let mut servers = Vec::new();
    let mut notes = Vec::new();
    if wanted("hoop") {
        servers.push(start_hoop("hoop", "io_uring", &root)?);
    }
    if wanted("hoop-epoll") {
        servers.push(start_hoop("hoop-epoll", "epoll", &root)?);
    }
    if wanted("tokio") {
        servers.push(start_tokio(&root)?);
    }
    if wanted("nginx") {
        match start_nginx(&root) {
            Ok(s) => servers.push(s),
            Err(e) => notes.push(format!("nginx not measured: {e}")),
        }
    }
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
            let stat = format!("/proc/{}/stat", s.child.id());
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
