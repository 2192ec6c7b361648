//! An HTTP/1.1 static file server: GET and HEAD, keep-alive, `Content-Length`, `Content-Type` by
//! extension, single `Range` requests (206, 416), `index.html` for directories, and 400, 403,
//! 404, 405 with a short body. Only regular files are served (a FIFO or a device is refused
//! without being opened, and opened non-blocking in case one is swapped in). A request head must
//! arrive within 10 s, a keep-alive connection idles at most 30 s, and each 4 MiB of a response
//! must go out within 30 s (`--head-timeout`, `--idle-timeout`, `--send-timeout`: a client that
//! stops reading is dropped); each worker serves at most
//! `--max-connections` (default 10 000) at once. A request with a body (`Content-Length`,
//! `Transfer-Encoding`) is answered and the connection closed, so the body is never read as the
//! next request. Every path is resolved through `hoop::fs::Dir`, i.e. by the kernel
//! beneath the root (`openat2` with `RESOLVE_BENEATH`): `..`, `%2e%2e`, absolute paths and
//! symlinks leading outside are refused. Bodies go out through `TcpStream::send_file` (256 KiB
//! reads and sends: what measured fastest, see `benches/download.rs` and `benches/sendfile.rs`).
//!
//! ```sh
//! cargo run --release --example fileserver -- [--root DIR] [--addr 127.0.0.1:8080] [--workers N] [--max-connections N] [--verbose]
//! curl -v http://127.0.0.1:8080/
//! ```

#[path = "common/args.rs"]
mod args;

use futures_util::StreamExt;
use hoop::fs::{Dir, File, OpenOptions};
use hoop::net::{TcpListener, TcpStream};
use std::cell::Cell;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

const MAX_HEAD: usize = 16 * 1024;

/// Per-connection limits (`--head-timeout`, `--idle-timeout`, `--send-timeout`, in seconds).
#[derive(Clone, Copy)]
struct Limits {
    /// How long a client may take to send a request head, once it started one.
    head: Duration,
    /// How long a keep-alive connection may wait for its next request.
    idle: Duration,
    /// How long one chunk of a response may take to go out: a client that stops reading is
    /// dropped instead of holding its connection (and a slot of the cap) forever.
    send: Duration,
}

/// Bytes of a body sent per `send_file` call, each within `Limits::send`.
const SEND_CHUNK: u64 = 4 << 20;

/// `fut`, or `TimedOut` if it takes longer than `limit`.
async fn within<T>(limit: Duration, fut: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    hoop::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

struct Request {
    method: String,
    target: String,
    keep_alive: bool,
    range: Option<String>,
    /// The request has a body (`Content-Length` > 0 or `Transfer-Encoding`), which this server
    /// never reads: the connection closes after the response.
    has_body: bool,
}

/// Parses the request head; `None` if it is malformed.
fn parse_head(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target, version) = (first.next()?, first.next()?, first.next()?);
    if first.next().is_some() || !version.starts_with("HTTP/1.") {
        return None;
    }
    let mut keep_alive = version == "HTTP/1.1";
    let mut range = None;
    let mut has_body = false;
    for line in lines.filter(|l| !l.is_empty()) {
        // RFC 9112: a line folded onto the previous one (obs-fold) is a bad request.
        if line.starts_with([' ', '\t']) {
            return None;
        }
        let (name, value) = line.split_once(':')?;
        // RFC 9112: no whitespace between a field name and its colon.
        if name.is_empty() || name.ends_with([' ', '\t']) {
            return None;
        }
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "connection" if value.eq_ignore_ascii_case("close") => keep_alive = false,
            "connection" if value.eq_ignore_ascii_case("keep-alive") => keep_alive = true,
            "range" => range = Some(value.to_string()),
            "content-length" => has_body |= value != "0",
            "transfer-encoding" => has_body = true,
            _ => {}
        }
    }
    Some(Request {
        method: method.to_string(),
        target: target.to_string(),
        keep_alive: keep_alive && !has_body,
        range,
        has_body,
    })
}

/// Percent-decodes the path of a request target; `None` for bad escapes or a NUL byte.
fn decode_path(target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next()?;
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return None;
    }
    let decoded = String::from_utf8(out).ok()?;
    // Relative to the root: strip the leading slashes; empty means the root itself.
    Some(PathBuf::from(decoded.trim_start_matches('/')))
}

/// A single byte range of a `len`-byte body: `Ok(None)` for the whole body, `Err(())` if
/// unsatisfiable.
fn parse_range(header: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // multiple ranges: serve the whole body
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| ())?;
            if n == 0 || len == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len - 1)
        }
        (s, "") => (s.parse().map_err(|_| ())?, len.saturating_sub(1)),
        (s, e) => {
            let (s, e): (u64, u64) = (s.parse().map_err(|_| ())?, e.parse().map_err(|_| ())?);
            (s, e.min(len.saturating_sub(1)))
        }
    };
    if start >= len || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt" | "md" | "rs" | "toml") => "text/plain; charset=utf-8",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("svg") => "image/svg+xml",
        Some("pdf") => "application/pdf",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

async fn send_error(stream: &TcpStream, status: &str, keep_alive: bool) -> io::Result<()> {
    let body = format!("{status}\n");
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{body}",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    stream.write_all(head.into_bytes()).await.0
}

/// Opens the file a request names: a regular file, or `index.html` of a directory. Anything
/// else (a FIFO, a device, a socket) is refused before it is opened — opening a FIFO blocks until
/// a writer comes, a device's open has side effects — and the open is non-blocking in case one
/// was swapped in since the check (the type is checked again on the open file). A device
/// swapped in by someone who can write inside the root between the check and the open is
/// still opened (`O_NONBLOCK` does not stop an open's side effects).
async fn open_target(root: &Dir, rel: &Path) -> io::Result<(File, PathBuf)> {
    let read = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .clone();
    let meta = root
        .metadata(if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        })
        .await?;
    let path = if meta.is_dir() {
        let index = rel.join("index.html");
        if !root.metadata(&index).await?.is_file() {
            return Err(io::ErrorKind::NotFound.into());
        }
        index
    } else if meta.is_file() {
        rel.to_path_buf()
    } else {
        return Err(io::ErrorKind::NotFound.into());
    };
    let file = root.open_file(&path, &read).await?;
    if !file.metadata().await?.is_file() {
        return Err(io::ErrorKind::NotFound.into());
    }
    Ok((file, path))
}

/// Serves one request; returns whether the connection stays open.
async fn respond(
    stream: &TcpStream,
    root: &Dir,
    req: &Request,
    limits: Limits,
    verbose: bool,
) -> io::Result<bool> {
    let keep = req.keep_alive;
    let status = |s: &str| {
        if verbose {
            println!("{} {} -> {s}", req.method, req.target);
        }
    };
    if req.method != "GET" && req.method != "HEAD" {
        status("405");
        send_error(stream, "405 Method Not Allowed", keep).await?;
        return Ok(keep);
    }
    let Some(rel) = decode_path(&req.target) else {
        status("400");
        send_error(stream, "400 Bad Request", keep).await?;
        return Ok(keep);
    };
    let (file, path) = match open_target(root, &rel).await {
        Ok(f) => f,
        Err(e) => {
            let code = match e.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => "404 Not Found",
                io::ErrorKind::InvalidInput => "400 Bad Request",
                _ => "403 Forbidden", // permission, or a path that escapes the root
            };
            status(code);
            send_error(stream, code, keep).await?;
            return Ok(keep);
        }
    };
    let len = file.metadata().await?.len();
    let range = match req.range.as_deref().map(|r| parse_range(r, len)) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(r))) => Some(r),
        Some(Err(())) => {
            status("416");
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: {}\r\n\r\n",
                if keep { "keep-alive" } else { "close" }
            );
            stream.write_all(head.into_bytes()).await.0?;
            return Ok(keep);
        }
    };
    let (start, end) = range.unwrap_or((0, len.saturating_sub(1)));
    let body_len = if len == 0 { 0 } else { end - start + 1 };
    let mut head = match range {
        Some(_) => {
            format!("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{end}/{len}\r\n")
        }
        None => "HTTP/1.1 200 OK\r\n".to_string(),
    };
    head.push_str(&format!(
        "Content-Type: {}\r\nContent-Length: {body_len}\r\nAccept-Ranges: bytes\r\nConnection: {}\r\n\r\n",
        content_type(&path),
        if keep { "keep-alive" } else { "close" }
    ));
    status(if range.is_some() { "206" } else { "200" });
    within(limits.send, async {
        stream.write_all(head.into_bytes()).await.0
    })
    .await?;
    if req.method == "HEAD" {
        return Ok(keep);
    }
    // The body goes out by the fastest way the driver has (see `hoop::io::send_file`), a chunk
    // at a time, each within the send limit.
    let end = start + body_len;
    let mut at = start;
    while at < end {
        let sent = within(
            limits.send,
            stream.send_file(&file, at, (end - at).min(SEND_CHUNK)),
        )
        .await?;
        if sent == 0 {
            return Ok(false); // truncated meanwhile: the body cannot be completed
        }
        at += sent;
    }
    Ok(keep)
}

/// Reads until `pending` holds a whole request head; returns its length with the blank line, or
/// `None` if the peer closed. Scans only the bytes it has not scanned yet.
async fn read_head(stream: &TcpStream, pending: &mut Vec<u8>) -> io::Result<Option<usize>> {
    let mut scanned = 0;
    loop {
        if let Some(i) = pending[scanned..].windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(scanned + i + 4));
        }
        scanned = pending.len().saturating_sub(3);
        if pending.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        let (n, chunk) = stream.read(Vec::with_capacity(8192)).await;
        if n? == 0 {
            return Ok(None);
        }
        pending.extend_from_slice(&chunk);
    }
}

async fn connection(
    stream: TcpStream,
    root: Rc<Dir>,
    limits: Limits,
    verbose: bool,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut pending: Vec<u8> = Vec::new();
    loop {
        // Idle until the first byte of the next request, then the whole head within its limit.
        if pending.is_empty() {
            let (n, chunk) =
                match hoop::time::timeout(limits.idle, stream.read(Vec::with_capacity(8192))).await
                {
                    Ok(read) => read,
                    Err(_) => return Ok(()), // idle keep-alive connection: closed
                };
            if n? == 0 {
                return Ok(());
            }
            pending.extend_from_slice(&chunk);
        }
        let head_end =
            match hoop::time::timeout(limits.head, read_head(&stream, &mut pending)).await {
                Err(_) => return Ok(()), // too slow: closed without an answer
                Ok(Ok(Some(end))) => end,
                Ok(Ok(None)) => return Ok(()),
                Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidData => {
                    send_error(&stream, "431 Request Header Fields Too Large", false).await?;
                    return Ok(());
                }
                Ok(Err(e)) => return Err(e),
            };
        let head: Vec<u8> = pending.drain(..head_end).collect();
        let Some(req) = parse_head(&head[..head.len() - 4]) else {
            send_error(&stream, "400 Bad Request", false).await?;
            return Ok(());
        };
        if !respond(&stream, &root, &req, limits, verbose).await? || req.has_body {
            return Ok(());
        }
    }
}

/// One of a worker's `--max-connections`, given back when the connection's task ends.
struct ConnectionSlot(Rc<Cell<usize>>);

impl ConnectionSlot {
    fn take(open: &Rc<Cell<usize>>) -> Self {
        open.set(open.get() + 1);
        ConnectionSlot(open.clone())
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

fn main() -> io::Result<()> {
    let mut root = PathBuf::from(".");
    let mut addr = "127.0.0.1:8080".to_string();
    let mut workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut verbose = false;
    let mut max_connections = 10_000usize;
    let mut limits = Limits {
        head: Duration::from_secs(10),
        idle: Duration::from_secs(30),
        send: Duration::from_secs(30),
    };
    let mut args = args::Args::new(
        "fileserver",
        "[--root DIR] [--addr HOST:PORT] [--workers N] [--max-connections N] \
         [--head-timeout SECS] [--idle-timeout SECS] [--send-timeout SECS] [--verbose]",
    );
    let secs = |args: &mut args::Args, name: &str| {
        let s: f64 = args.value(name);
        if !(s > 0.0 && s.is_finite()) {
            args.fail(format!("--{name}: {s} is not a positive number of seconds"));
        }
        Duration::from_secs_f64(s)
    };
    while let Some(arg) = args.next() {
        let args::Arg::Flag(flag) = arg else {
            args.unknown(arg)
        };
        match flag.as_str() {
            "verbose" => verbose = true,
            "root" => root = args.value::<PathBuf>("root"),
            "addr" => addr = args.value("addr"),
            "workers" => workers = args.value::<std::num::NonZeroUsize>("workers").get(),
            "head-timeout" => limits.head = secs(&mut args, "head-timeout"),
            "idle-timeout" => limits.idle = secs(&mut args, "idle-timeout"),
            "send-timeout" => limits.send = secs(&mut args, "send-timeout"),
            "max-connections" => {
                max_connections = args
                    .value::<std::num::NonZeroUsize>("max-connections")
                    .get()
            }
            _ => args.unknown(args::Arg::Flag(flag)),
        }
    }
    // Resolve the address (and port 0) once, so that every worker binds the same one.
    let local = std::net::TcpListener::bind(&addr)?.local_addr()?;
    let rt = hoop::Runtime::builder().workers(workers).build()?;
    let driver = rt.info().driver;
    let results = rt.run(move |worker| {
        let root = root.clone();
        async move {
            let listener = TcpListener::bind_reuseport(local)?;
            let dir = Rc::new(Dir::open(&root).await?);
            if worker == 0 {
                println!(
                    "fileserver: serving {} on http://{local}/ with {workers} worker(s) on {driver} (try: curl -v http://{local}/)",
                    root.display()
                );
            }
            let open = Rc::new(Cell::new(0usize));
            let mut incoming = listener.incoming();
            while let Some(conn) = incoming.next().await {
                match conn {
                    Ok(stream) if open.get() >= max_connections => {
                        // At the cap: refused at once (the client may retry).
                        let _ = send_error(&stream, "503 Service Unavailable", false).await;
                    }
                    Ok(stream) => {
                        let dir = dir.clone();
                        let slot = ConnectionSlot::take(&open);
                        hoop::spawn(async move {
                            let _slot = slot;
                            if let Err(e) = connection(stream, dir, limits, verbose).await {
                                if verbose {
                                    eprintln!("fileserver: connection: {e}");
                                }
                            }
                        })
                        .detach();
                    }
                    Err(e) => eprintln!("fileserver: accept: {e}"),
                }
            }
            Ok::<_, io::Error>(())
        }
    });
    for r in results {
        r?;
    }
    Ok(())
}
