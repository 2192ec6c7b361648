//! Copies a file with several reads and writes in flight at once (one ring, no thread pool on
//! io_uring), then fsyncs and prints the throughput.
//!
//! ```sh
//! cargo run --release --example copy -- SRC DST [--chunk KIB] [--depth N]
//! ```

#[path = "common/args.rs"]
mod args;

use hoop::fs::{File, OpenOptions};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

#[hoop::main(workers = 1)]
async fn main() -> std::io::Result<()> {
    let mut args = args::Args::new("copy", "SRC DST [--chunk KIB] [--depth N]");
    let mut paths = Vec::new();
    let (mut chunk, mut depth) = (1024 * 1024, 8);
    while let Some(arg) = args.next() {
        match arg {
            args::Arg::Flag(f) if f == "chunk" => {
                chunk = args.value::<usize>("chunk").max(4) * 1024
            }
            args::Arg::Flag(f) if f == "depth" => {
                depth = args.value::<std::num::NonZeroUsize>("depth").get()
            }
            args::Arg::Word(p) if paths.len() < 2 => paths.push(p),
            other => args.unknown(other),
        }
    }
    let [src, dst] =
        <[String; 2]>::try_from(paths).unwrap_or_else(|_| args.fail("SRC and DST are needed"));
    let start = Instant::now();
    let input = Rc::new(File::open(&src).await?);
    let meta = input.metadata().await?;
    let output = Rc::new(
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(meta.mode() & 0o777)
            .open(&dst)
            .await?,
    );
    output.set_len(meta.len()).await?;
    // `depth` tasks take chunks from a shared cursor: up to `depth` reads and writes in flight.
    let next = Rc::new(Cell::new(0u64));
    let len = meta.len();
    let workers: Vec<_> = (0..depth)
        .map(|_| {
            let (input, output, next) = (input.clone(), output.clone(), next.clone());
            hoop::spawn(async move {
                let mut buf = Vec::with_capacity(chunk);
                loop {
                    let pos = next.get();
                    if pos >= len {
                        return Ok::<_, std::io::Error>(());
                    }
                    next.set(pos + chunk as u64);
                    buf.clear();
                    let want = (len - pos).min(chunk as u64) as usize;
                    let (res, b) = input
                        .read_exact_at(hoop::IoBuf::slice(buf, ..want), pos)
                        .await;
                    res?;
                    let (res, b) = output.write_all_at(b, pos).await;
                    res?;
                    buf = b.into_inner();
                }
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    output.sync_all().await?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "copied {} bytes in {:.3} s ({:.1} MiB/s) on {}",
        len,
        secs,
        len as f64 / secs / (1024.0 * 1024.0),
        hoop::runtime_info()
            .map(|i| i.driver.to_string())
            .unwrap_or_default()
    );
    Ok(())
}
