//! A TCP echo server: every worker binds its own `SO_REUSEPORT` listener and echoes every byte
//! of every connection until EOF. On `SIGINT` or `SIGTERM` each worker stops accepting, echoes
//! what its connections already sent, closes them, and the process exits with status 0 (after
//! `--grace` seconds at most, 10 by default).
//!
//! Each worker's connections receive into one provided-buffer ring they share (4 MiB, however
//! many connections wait; on io_uring one multishot receive per connection stays armed), and
//! each received chunk goes back out from the ring's buffer, which returns to the ring once
//! sent: hoop's fastest echo from outside (`benches/echo_outside.rs`). `--owned` echoes through a
//! 16 KiB buffer per connection instead (`read`, then `write_all`: the pattern most code has).
//!
//! ```sh
//! cargo run --release --example echo -- [--addr 127.0.0.1:7000] [--workers N] [--grace SECS] [--owned]
//! ```

#[path = "common/args.rs"]
mod args;
#[path = "common/shutdown.rs"]
mod shutdown;

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use hoop::buf::BufRing;
use hoop::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

/// Echoes what arrives in the worker's shared ring, chunk by chunk.
async fn echo_from_ring(stream: &TcpStream, ring: &BufRing) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut chunks = stream.recv_stream(ring);
    while let Some(chunk) = chunks.next().await {
        stream.write_all(chunk?).await.0?;
    }
    Ok(())
}

/// Echoes through a buffer of the connection's own.
async fn echo_owned(stream: &TcpStream) -> std::io::Result<()> {
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
    let mut owned = false;
    let mut args = args::Args::new(
        "echo",
        "[--addr HOST:PORT] [--workers N] [--grace SECS] [--owned]",
    );
    while let Some(arg) = args.next() {
        match arg {
            args::Arg::Flag(f) if f == "addr" => addr = args.value("addr"),
            args::Arg::Flag(f) if f == "grace" => grace = args.seconds("grace", false),
            args::Arg::Flag(f) if f == "owned" => owned = true,
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
            let started = shutdown::stop_requested().and_then(|stop| {
                let ring = if owned {
                    None
                } else {
                    Some(BufRing::new(1024, 4096)?)
                };
                Ok((stop, TcpListener::bind_reuseport(addr)?, ring))
            });
            let (stop, listener, ring) =
                started.unwrap_or_else(|e| shutdown::setup_failed("echo", worker, e));
            let mut stop = std::pin::pin!(stop);
            drop(arrival);
            if worker == 0 {
                let ready = std::pin::pin!(ready.wait());
                if let Either::Right((signal, _)) = select(ready, stop.as_mut()).await {
                    println!("echo: {signal} while starting");
                    return Ok(());
                }
                let path = if owned {
                    "a buffer per connection"
                } else {
                    "a ring per worker"
                };
                println!(
                    "echo: listening on {addr} with {workers} worker(s) on {driver}, receiving \
                     into {path}"
                );
            }
            let connections = Rc::new(shutdown::Connections::default());
            // On the stop, reads end as at EOF: what was read is echoed, then each connection
            // closes.
            let serve = |stream| {
                let (stream, tracked) = connections.track(stream);
                let ring = ring.clone();
                hoop::spawn(async move {
                    let _tracked = tracked;
                    let _ = match &ring {
                        Some(ring) => echo_from_ring(&stream, ring).await,
                        None => echo_owned(&stream).await,
                    };
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
