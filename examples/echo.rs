//! A TCP echo server: every worker binds its own `SO_REUSEPORT` listener and echoes every byte
//! of every connection until EOF. On `SIGINT` or `SIGTERM` each worker stops accepting, echoes
//! what its connections already sent, closes them, and the process exits with status 0 (after
//! `--grace` seconds at most, 10 by default).
//!
//! ```sh
//! cargo run --release --example echo -- [--addr 127.0.0.1:7000] [--workers N] [--grace SECS]
//! ```

#[path = "common/args.rs"]
mod args;
#[path = "common/shutdown.rs"]
mod shutdown;

use futures_util::future::{select, Either};
use hoop::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

async fn echo(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        buf.clear();
        let (n, b) = stream.read(buf).await;
        if n? == 0 {
            return Ok(());
        }
        let (res, b) = stream.write_all(b).await;
        res?;
        buf = b;
    }
}

fn main() -> std::io::Result<()> {
    let mut addr = "127.0.0.1:7000".to_string();
    let mut workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut grace = Duration::from_secs(10);
    let mut args = args::Args::new("echo", "[--addr HOST:PORT] [--workers N] [--grace SECS]");
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
    let rt = hoop::Runtime::builder()
        .workers(workers)
        .pin_cpus(true)
        .build()?;
    // Resolve the address (and port 0) once, so that every worker binds the same one.
    let addr = std::net::TcpListener::bind(&addr)?.local_addr()?;
    let driver = rt.info().driver;
    let ready = std::sync::Arc::new(shutdown::AllReady::new(workers));
    let results = rt.run(move |worker| {
        let ready = ready.clone();
        async move {
            // The signals first: once announced, a SIGTERM finds every worker listening.
            let arrival = ready.arrival();
            let started = shutdown::stop_requested()
                .and_then(|stop| Ok((stop, TcpListener::bind_reuseport(addr)?)));
            let (stop, listener) =
                started.unwrap_or_else(|e| shutdown::setup_failed("echo", worker, e));
            let mut stop = std::pin::pin!(stop);
            drop(arrival);
            if worker == 0 {
                let ready = std::pin::pin!(ready.wait());
                if let Either::Right((signal, _)) = select(ready, stop.as_mut()).await {
                    println!("echo: {signal} while starting");
                    return Ok(());
                }
                println!("echo: listening on {addr} with {workers} worker(s) on {driver}");
            }
            let connections = Rc::new(shutdown::Connections::default());
            // On the stop, reads end as at EOF: what was read is echoed, then each connection
            // closes.
            let serve = |stream| {
                let (stream, tracked) = connections.track(stream);
                hoop::spawn(async move {
                    let _tracked = tracked;
                    let _ = echo(&stream).await;
                })
                .detach();
            };
            shutdown::serve_until_stopped(
                "echo",
                worker,
                listener,
                stop.as_mut(),
                &connections,
                grace,
                serve,
            )
            .await;
            Ok::<_, std::io::Error>(())
        }
    });
    for r in results {
        r?;
    }
    Ok(())
}
