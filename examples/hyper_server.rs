//! hyper 1.x on hoop: an HTTP/1.1 and HTTP/2 (cleartext, prior knowledge) server on every worker,
//! each with its own `SO_REUSEPORT` listener. Connections, their tasks and hyper's timers stay on
//! the worker that accepted them; nothing needs to be `Send`.
//!
//! ```sh
//! cargo run --release --features hyper --example hyper_server -- [--addr 127.0.0.1:3000] [--workers N]
//! curl http://127.0.0.1:3000/hello.json
//! curl --http2-prior-knowledge http://127.0.0.1:3000/stream
//! ```
//!
//! Routes: `GET /hello.json` (a small JSON naming the worker and protocol), `GET /stream` (a
//! chunked body of `?chunks=N` lines sent 1 ms apart), `POST /echo` (the request body back),
//! anything else 404.
//!
//! On `SIGINT` or `SIGTERM` each worker stops accepting and shuts its connections down
//! gracefully (hyper's `graceful_shutdown`: responses in flight finish, idle connections close,
//! HTTP/2 clients get a GOAWAY), waits for them at most `--grace` seconds (10), and the process
//! exits with status 0.

#[path = "common/args.rs"]
mod args;
#[path = "common/shutdown.rs"]
mod shutdown;

use futures_util::future::{select, Either};
use hoop::io::{Compat, HyperExecutor, HyperTimer};
use hoop::net::{TcpListener, TcpStream};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::time::Duration;

/// Bodies need not be `Send` on hoop: the streamed one waits on the worker's (`!Send`) timers.
type Body = Pin<Box<dyn hyper::body::Body<Data = Bytes, Error = hyper::Error>>>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Box::pin(Full::new(bytes.into()).map_err(|never: Infallible| match never {}))
}

async fn handle(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let response = match (req.method(), req.uri().path()) {
        (&Method::GET, "/hello.json") => {
            let json = format!(
                "{{\"hello\":\"world\",\"worker\":{},\"version\":\"{:?}\"}}\n",
                hoop::worker_index().unwrap_or(0),
                req.version()
            );
            Response::builder()
                .header("content-type", "application/json")
                .body(full(json))
        }
        (&Method::GET, "/stream") => {
            let chunks: usize = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("chunks="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(5);
            // A body produced over time: each chunk waits on the worker's timer.
            let lines = futures_util::stream::unfold(0, move |i| async move {
                if i == chunks {
                    return None;
                }
                hoop::time::sleep(Duration::from_millis(1)).await;
                let line = Bytes::from(format!("chunk {i}\n"));
                Some((Ok(Frame::data(line)), i + 1))
            });
            Response::builder()
                .header("content-type", "text/plain")
                .body(Box::pin(StreamBody::new(lines)) as Body)
        }
        (&Method::POST, "/echo") => Response::builder().body(Box::pin(req.into_body()) as Body),
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(full("not found\n")),
    };
    Ok(response.expect("static headers are valid"))
}

/// HTTP/2 connections start with this preface; anything else is served as HTTP/1.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

async fn is_http2(stream: &TcpStream) -> std::io::Result<bool> {
    // Peek until the preface is decided (a client may send it in pieces).
    for _ in 0..16 {
        let (n, buf) = stream.peek(Vec::with_capacity(H2_PREFACE.len())).await;
        let n = n?;
        if n == 0 || !H2_PREFACE.starts_with(&buf[..n]) {
            return Ok(false);
        }
        if n == H2_PREFACE.len() {
            return Ok(true);
        }
        hoop::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(false)
}

/// Runs a hyper connection until it ends; once the worker stops, asks it to end gracefully.
macro_rules! until_done {
    ($conn:expr, $tracked:expr) => {{
        let mut conn = pin!($conn);
        match select(conn.as_mut(), pin!($tracked.stopping())).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    }};
}

async fn serve(stream: TcpStream, connections: Rc<shutdown::Connections>) {
    let tracked = connections.track_task(None);
    let _ = stream.set_nodelay(true);
    // Which protocol, within 10 s, and not past the stop (nothing was asked yet).
    let decided = hoop::time::timeout(Duration::from_secs(10), is_http2(&stream));
    let http2 = match select(pin!(decided), pin!(tracked.stopping())).await {
        Either::Left((Ok(Ok(h2)), _)) => h2,
        _ => return,
    };
    let io = Compat::new(stream);
    let service = hyper::service::service_fn(handle);
    let result = if http2 {
        let builder = hyper::server::conn::http2::Builder::new(HyperExecutor)
            .timer(HyperTimer)
            .clone();
        until_done!(builder.serve_connection(io, service), tracked)
    } else {
        let builder = hyper::server::conn::http1::Builder::new()
            .timer(HyperTimer)
            .header_read_timeout(Duration::from_secs(10))
            .clone();
        until_done!(builder.serve_connection(io, service), tracked)
    };
    if let Err(e) = result {
        if std::env::var_os("HOOP_VERBOSE").is_some() {
            eprintln!("hyper_server: connection: {e}");
        }
    }
}

fn into_std(listener: TcpListener) -> std::io::Result<std::net::TcpListener> {
    listener
        .into_std()
        .map_err(|_| std::io::Error::other("listener busy"))
}

fn main() -> std::io::Result<()> {
    let mut addr = "127.0.0.1:3000".to_string();
    let mut workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut grace = Duration::from_secs(10);
    let mut args = args::Args::new(
        "hyper_server",
        "[--addr HOST:PORT] [--workers N] [--grace SECS]",
    );
    while let Some(arg) = args.next() {
        match arg {
            args::Arg::Flag(f) if f == "addr" => addr = args.value("addr"),
            args::Arg::Flag(f) if f == "grace" => grace = args.seconds("grace", false),
            args::Arg::Flag(f) if f == "workers" => {
                workers = args.value::<std::num::NonZeroUsize>("workers").get()
            }
            other => args.unknown(other),
        }
    }
    // Resolve port 0 with a plain bind (a SO_REUSEPORT bind to port 0 may share a port with
    // another process's SO_REUSEPORT listener), then give every worker its own SO_REUSEPORT
    // listener, bound here so that the address printed below already accepts.
    let addr = std::net::TcpListener::bind(&addr)?.local_addr()?;
    let listeners = (0..workers)
        .map(|_| into_std(TcpListener::bind_reuseport(addr)?))
        .collect::<std::io::Result<Vec<_>>>()?;
    let listeners = std::sync::Mutex::new(listeners);
    let rt = hoop::Runtime::builder().workers(workers).build()?;
    let driver = rt.info().driver;
    let ready = std::sync::Arc::new(shutdown::AllReady::new(workers));
    let results = rt.run(move |worker| {
        let listener = listeners.lock().unwrap().pop();
        let ready = ready.clone();
        async move {
            // The signals first: once announced, a SIGTERM finds every worker listening.
            let arrival = ready.arrival();
            let started = shutdown::stop_requested().and_then(|stop| {
                let listener = listener.expect("one listener per worker");
                Ok((stop, TcpListener::from_std(listener)?))
            });
            let (stop, listener) =
                started.unwrap_or_else(|e| shutdown::setup_failed("hyper_server", worker, e));
            let mut stop = pin!(stop);
            drop(arrival);
            if worker == 0 {
                if let Either::Right((signal, _)) = select(pin!(ready.wait()), stop.as_mut()).await
                {
                    println!("hyper_server: {signal} while starting");
                    return Ok(());
                }
                println!(
                    "hyper_server: listening on http://{addr}/ with {workers} worker(s) on {driver}"
                );
            }
            let connections = Rc::new(shutdown::Connections::default());
            let serve = |stream| hoop::spawn(serve(stream, connections.clone())).detach();
            shutdown::serve_until_stopped(
                "hyper_server",
                worker,
                listener,
                stop.as_mut(),
                &connections,
                grace,
                serve,
            )
            .await;
            Ok::<(), std::io::Error>(())
        }
    });
    for r in results {
        r?;
    }
    Ok(())
}
