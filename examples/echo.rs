//! A TCP echo server: every worker binds its own `SO_REUSEPORT` listener and echoes every byte
//! of every connection until EOF.
//!
//! ```sh
//! cargo run --release --example echo -- [--addr 127.0.0.1:7000] [--workers N]
//! ```

#[path = "common/args.rs"]
mod args;

use futures_util::StreamExt;
use hoop::net::{TcpListener, TcpStream};

async fn echo(stream: TcpStream) -> std::io::Result<()> {
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
    let mut args = args::Args::new("echo", "[--addr HOST:PORT] [--workers N]");
    while let Some(arg) = args.next() {
        match arg {
            args::Arg::Flag(f) if f == "addr" => addr = args.value("addr"),
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
    println!(
        "echo: listening on {addr} with {workers} worker(s) on {}",
        rt.info().driver
    );
    let results = rt.run(move |_worker| {
        let addr = addr.clone();
        async move {
            let listener = TcpListener::bind_reuseport(&addr)?;
            let mut incoming = listener.incoming();
            while let Some(conn) = incoming.next().await {
                match conn {
                    Ok(stream) => hoop::spawn(async move {
                        let _ = echo(stream).await;
                    })
                    .detach(),
                    Err(e) => eprintln!("echo: accept: {e}"),
                }
            }
            Ok::<_, std::io::Error>(())
        }
    });
    for r in results {
        r?;
    }
    Ok(())
}
