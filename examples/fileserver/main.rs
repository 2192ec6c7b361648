//! A static file server over HTTP/1.1, strict where RFC 9112 asks a server to be.
//!
//! ```sh
//! cargo run --release --example fileserver -- --root . --log
//! # then open the printed address in a browser, or: curl -v http://127.0.0.1:8080/
//! ```
//!
//! - **What it serves.** `GET` and `HEAD` (405 for other methods) of the regular files beneath
//!   `--root`; a directory gets its `index.html`, else an HTML listing (`--no-listing`: 403),
//!   and a directory asked for without its final slash a 301 to it. Every path is resolved by the
//!   kernel beneath the root (`hoop::fs::Dir`, `openat2` with `RESOLVE_BENEATH`): `..`,
//!   `%2e%2e`, absolute paths and symlinks leading outside are refused. FIFOs and devices are
//!   refused (opened non-blocking: a FIFO never blocks a worker).
//! - **Headers.** `Date`, `Last-Modified`, a strong `ETag`, `Content-Type` from the extension
//!   (`mime_guess`); `If-None-Match`/`If-Modified-Since` give 304, `If-Match`/
//!   `If-Unmodified-Since` 412; a single `Range` gives 206 or 416, honoured only if `If-Range`
//!   names the current version.
//! - **Strict parsing** (`httparse`, then the checks in `request.rs`): a missing or second
//!   `Host`, whitespace before a colon, a folded line, conflicting lengths, `Content-Length`
//!   with `Transfer-Encoding` are a 400 and the connection closes; heads over 16 KiB or 64
//!   lines a 431. A body of up to 64 KiB is read and dropped, a longer one is a 413; a chunked
//!   body is never read (the connection closes after the response).
//! - **Limits.** A request head must arrive within `--head-timeout` (10 s), a keep-alive
//!   connection idles at most `--idle-timeout` (30 s), each 4 MiB of a response must go out
//!   within `--send-timeout` (30 s); each worker serves at most `--max-connections` (10 000) at
//!   once, and answers the next with a 503.
//! - **Per request**, one `openat2` and one `statx` of the open fd, taken on the worker
//!   (`File::cached_metadata`); a body up to 64 KiB is read behind its head and both go out in
//!   one send, a larger one through `TcpStream::send_file`. A small file the worker read less
//!   than a second ago is in the page cache: its body goes by `sendfile`, without a copy
//!   (`TcpStream::send_file_cached`, `hot.rs`; `--no-sendfile` for trees on filesystems that
//!   keep no page cache for reads, where `sendfile` would wait for the device each time).
//! - **Stopping.** On `SIGINT` or `SIGTERM` each worker stops accepting, lets responses in
//!   flight finish (within `--grace`, 10 s) while idle connections close, and the process exits
//!   with status 0.
//! - `--log` prints an access log line per request.

#[path = "../common/args.rs"]
mod args;
mod connection;
mod hot;
mod listing;
mod request;
mod response;
mod serve;
#[path = "../common/shutdown.rs"]
mod shutdown;
mod validators;

use connection::Limits;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use hoop::fs::Dir;
use hoop::net::TcpListener;
use serve::Site;
use shutdown::{AllReady, Connections};
use std::cell::Cell;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

struct Config {
    root: PathBuf,
    addr: String,
    workers: usize,
    max_connections: usize,
    limits: Limits,
    send_timeout: Duration,
    grace: Duration,
    listing: bool,
    /// Bodies of files read a moment ago go out by `sendfile` (`hot.rs`).
    sendfile: bool,
}

fn config() -> Config {
    let mut c = Config {
        root: PathBuf::from("."),
        addr: "127.0.0.1:8080".to_string(),
        workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
        max_connections: 10_000,
        limits: Limits {
            head: Duration::from_secs(10),
            idle: Duration::from_secs(30),
            log: false,
        },
        send_timeout: Duration::from_secs(30),
        grace: Duration::from_secs(10),
        listing: true,
        sendfile: true,
    };
    let mut args = args::Args::new(
        "fileserver",
        "[--root DIR] [--addr HOST:PORT] [--workers N] [--max-connections N] \
         [--head-timeout SECS] [--idle-timeout SECS] [--send-timeout SECS] [--grace SECS] \
         [--no-listing] [--no-sendfile] [--log]",
    );
    while let Some(arg) = args.next() {
        let args::Arg::Flag(flag) = arg else {
            args.unknown(arg)
        };
        match flag.as_str() {
            "log" => c.limits.log = true,
            "no-listing" => c.listing = false,
            "no-sendfile" => c.sendfile = false,
            "root" => c.root = args.value::<PathBuf>("root"),
            "addr" => c.addr = args.value("addr"),
            "workers" => c.workers = args.value::<std::num::NonZeroUsize>("workers").get(),
            "head-timeout" => c.limits.head = args.seconds("head-timeout", true),
            "idle-timeout" => c.limits.idle = args.seconds("idle-timeout", true),
            "send-timeout" => c.send_timeout = args.seconds("send-timeout", true),
            "grace" => c.grace = args.seconds("grace", true),
            "max-connections" => {
                c.max_connections = args
                    .value::<std::num::NonZeroUsize>("max-connections")
                    .get()
            }
            _ => args.unknown(args::Arg::Flag(flag)),
        }
    }
    c
}

/// Refusals (503) at the connection cap lingering at once, per worker.
const MAX_REFUSING: usize = 256;

/// One of the worker's lingering refusals, given back when dropped.
struct Refusal(Rc<Cell<usize>>);

impl Refusal {
    fn take(count: &Rc<Cell<usize>>) -> Refusal {
        count.set(count.get() + 1);
        Refusal(count.clone())
    }
}

impl Drop for Refusal {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// One worker: its own listener on the shared address, its own connections, until a signal.
async fn worker(
    index: usize,
    c: Arc<Config>,
    local: std::net::SocketAddr,
    ready: Arc<AllReady>,
) -> io::Result<()> {
    let arrival = ready.arrival();
    let setup = async {
        // The signals first: from the announcement on, a SIGTERM must find every worker
        // listening for it.
        let stop = shutdown::stop_requested()?;
        let listener = TcpListener::bind_reuseport(local)?;
        let site = Rc::new(Site {
            root: Dir::open(&c.root).await?,
            listing: c.listing,
            sendfile: c.sendfile,
            send_timeout: c.send_timeout,
        });
        Ok::<_, io::Error>((stop, listener, site))
    };
    let (stop, listener, site) = setup
        .await
        .unwrap_or_else(|e| shutdown::setup_failed("fileserver", index, e));
    let mut stop = std::pin::pin!(stop);
    drop(arrival);
    if index == 0 {
        if let Either::Right((signal, _)) =
            select(std::pin::pin!(ready.wait()), stop.as_mut()).await
        {
            println!("fileserver: {signal} while starting");
            return Ok(());
        }
        println!(
            "fileserver: serving {} on http://{local}/ with {} worker(s) on {} (open it in a browser, or: curl -v http://{local}/)",
            c.root.display(),
            c.workers,
            hoop::runtime_info().map_or("?".into(), |i| i.driver.to_string()),
        );
    }
    let connections = Rc::new(Connections::default());
    let refusing = Rc::new(Cell::new(0usize));
    let mut incoming = listener.incoming();
    let signal = loop {
        let conn = match select(incoming.next(), stop.as_mut()).await {
            Either::Left((Some(conn), _)) => conn,
            Either::Left((None, _)) => return Ok(()),
            Either::Right((signal, _)) => break signal,
        };
        let stream = match conn {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("fileserver: accept: {e}");
                continue;
            }
        };
        if connections.len() >= c.max_connections {
            // At the cap: refused at once (the client may retry), beside the accept loop; a
            // flood past what the refusals can linger over is just closed.
            if refusing.get() >= MAX_REFUSING {
                continue;
            }
            let refusal = Refusal::take(&refusing);
            hoop::spawn(async move {
                let _refusal = refusal;
                let mut out = Vec::new();
                response::simple(&mut out, 503, false, false, &[]);
                let _ = stream.write_all(out).await;
                connection::close_gently(&stream).await;
            })
            .detach();
            continue;
        }
        let (stream, tracked) = connections.track(stream);
        let (site, limits) = (site.clone(), c.limits);
        hoop::spawn(async move {
            let _tracked = tracked;
            if let Err(e) = connection::serve(&stream, &site, limits).await {
                if limits.log {
                    eprintln!("fileserver: connection: {e}");
                }
            }
        })
        .detach();
    };
    // Closed: new connections are refused from here on.
    drop(incoming);
    drop(listener);
    let open = connections.len();
    println!(
        "fileserver: worker {index}: {signal}: stopped accepting; {open} connection(s) finishing"
    );
    connections.stop();
    // A second signal cuts the grace period short.
    let left = match select(std::pin::pin!(connections.drain(c.grace)), stop.as_mut()).await {
        Either::Left((left, _)) => left,
        Either::Right((again, _)) => {
            println!("fileserver: worker {index}: {again} again: not waiting");
            connections.len()
        }
    };
    if left > 0 {
        println!("fileserver: worker {index}: {left} connection(s) cut");
    }
    Ok(())
}

fn main() -> io::Result<()> {
    let c = Arc::new(config());
    // Resolve the address (and port 0) once, so that every worker binds the same one.
    let local = std::net::TcpListener::bind(&c.addr)?.local_addr()?;
    let rt = hoop::Runtime::builder().workers(c.workers).build()?;
    let ready = Arc::new(AllReady::new(c.workers));
    let results = rt.run(move |index| worker(index, c.clone(), local, ready.clone()));
    for r in results {
        r?;
    }
    println!("fileserver: stopped");
    Ok(())
}
