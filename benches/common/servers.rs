//! The HTTP file servers the load benches compare, each a process on the CPU the caller pinned
//! itself to: `examples/fileserver` on either driver, the same request path on tokio (the bench
//! binary re-executed with `--serve-tokio ROOT ADDR`), and nginx.

#![allow(dead_code)] // each bench uses part of it

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process, killed when dropped.
pub struct Server {
    pub name: &'static str,
    pub child: Child,
    pub addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The server process's `/proc/PID/stat` (CPU time of all its threads).
    pub fn stat_path(&self) -> String {
        format!("/proc/{}/stat", self.child.id())
    }
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

/// `examples/fileserver` (release build), one worker, on `driver`.
pub fn start_hoop(name: &'static str, driver: &str, root: &Path) -> io::Result<Server> {
    let exe = super::results::dir()
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

/// The tokio server: this bench binary re-executed; its `main` must call [`serve_tokio_if_asked`].
pub fn start_tokio(root: &Path) -> io::Result<Server> {
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

/// nginx, one process (`master_process off`), `sendfile on`, `tcp_nopush on`, no access log:
/// the configuration a static site gets. An error if nginx is not installed.
pub fn start_nginx(root: &Path) -> io::Result<Server> {
    let addr = free_addr()?;
    let prefix = super::results::dir().join("nginx");
    std::fs::create_dir_all(&prefix)?;
    let p = prefix.display();
    // Temp paths inside the prefix: the packaged defaults under /var/lib/nginx may not exist.
    let conf = format!(
        "worker_processes 1;\nmaster_process off;\ndaemon off;\npid {p}/nginx.pid;\n\
         error_log {p}/error.log;\nevents {{ worker_connections 1024; }}\nhttp {{\n\
         access_log off;\nsendfile on;\ntcp_nopush on;\nclient_body_temp_path {p}/body;\n\
         proxy_temp_path {p}/proxy;\nfastcgi_temp_path {p}/fastcgi;\nuwsgi_temp_path {p}/uwsgi;\n\
         scgi_temp_path {p}/scgi;\nkeepalive_requests 1000000;\n\
         server {{ listen {addr}; root {}; }}\n}}\n",
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

/// The servers `only` names (all if empty), started on the caller's CPU: hoop on both drivers,
/// tokio, nginx; a server that cannot start (nginx missing) is a note instead.
pub fn start_all(root: &Path, only: &str) -> io::Result<(Vec<Server>, Vec<String>)> {
    let wanted = |name: &str| only.is_empty() || only == name;
    let mut servers = Vec::new();
    let mut notes = Vec::new();
    if wanted("hoop") {
        servers.push(start_hoop("hoop", "io_uring", root)?);
    }
    if wanted("hoop-epoll") {
        servers.push(start_hoop("hoop-epoll", "epoll", root)?);
    }
    if wanted("tokio") {
        servers.push(start_tokio(root)?);
    }
    if wanted("nginx") {
        match start_nginx(root) {
            Ok(s) => servers.push(s),
            Err(e) => notes.push(format!("nginx not measured: {e}")),
        }
    }
    Ok((servers, notes))
}

/// In the bench's `main`: if this process was started as the tokio server, serves until
/// killed and returns `Some`.
pub fn serve_tokio_if_asked() -> Option<io::Result<()>> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == "--serve-tokio")?;
    let root = PathBuf::from(&args[i + 1]);
    let addr = match args[i + 2].parse() {
        Ok(a) => a,
        Err(e) => return Some(Err(io::Error::other(e))),
    };
    Some(serve_tokio(root, addr))
}

/// Bodies up to this size go out with their head in one write (as the fileserver does).
const SMALL_BODY: u64 = 64 * 1024;

/// The fileserver's request path on tokio's current_thread runtime, as a tokio user writes it:
/// the head parsed by `httparse`, the file opened with `tokio::fs` and its metadata taken from
/// the open file (each a blocking-pool job), a small body read behind the head and written with
/// it, a large one through `tokio::io::copy_buf` from a 256 KiB `BufReader`.
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
                    let (target, end) = loop {
                        let mut headers = [httparse::EMPTY_HEADER; 64];
                        let mut req = httparse::Request::new(&mut headers);
                        if let Ok(httparse::Status::Complete(end)) = req.parse(&pending) {
                            break (req.path.unwrap_or("/").to_string(), end);
                        }
                        let n = s.read(&mut buf).await?;
                        if n == 0 {
                            return Ok::<_, io::Error>(());
                        }
                        pending.extend_from_slice(&buf[..n]);
                    };
                    pending.drain(..end);
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
                    let meta = file.metadata().await?;
                    let len = meta.len();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nDate: {}\r\nContent-Type: application/octet-stream\r\n\
                         Content-Length: {len}\r\nLast-Modified: {}\r\nAccept-Ranges: bytes\r\n\
                         Connection: keep-alive\r\n\r\n",
                        httpdate::fmt_http_date(std::time::SystemTime::now()),
                        httpdate::fmt_http_date(meta.modified()?),
                    );
                    if len <= SMALL_BODY {
                        let mut out = head.into_bytes();
                        let at = out.len();
                        out.resize(at + len as usize, 0);
                        let mut file = file;
                        file.read_exact(&mut out[at..]).await?;
                        s.write_all(&out).await?;
                    } else {
                        s.write_all(head.as_bytes()).await?;
                        let mut body =
                            tokio::io::BufReader::with_capacity(256 * 1024, file.take(len));
                        tokio::io::copy_buf(&mut body, &mut s).await?;
                    }
                }
            });
        }
    })
}
