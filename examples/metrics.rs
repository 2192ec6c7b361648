//! Per-worker metrics read at run time: every worker does some I/O (a pipe ping-pong, file
//! reads, timers, blocking jobs), then prints its own counters from `hoop::metrics()`.
//!
//! ```sh
//! cargo run --release --example metrics -- [--workers N]
//! ```

#[path = "common/args.rs"]
mod args;

use std::time::Duration;

async fn some_work(worker: usize) -> std::io::Result<hoop::WorkerMetrics> {
    // Socket-like I/O: a pipe ping-pong between two tasks.
    let (r, w) = hoop::io::pipe()?;
    let writer = hoop::spawn(async move {
        for i in 0..100u8 {
            w.write_all(vec![i; 64]).await.0?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut got = 0;
    while got < 6400 {
        let (n, _) = r.read(Vec::with_capacity(4096)).await;
        got += n?;
    }
    writer.await??;

    // File I/O: 64 concurrent 4 KiB reads of this program's own binary.
    let file = hoop::fs::File::open("/proc/self/exe").await?;
    let file = std::rc::Rc::new(file);
    let reads: Vec<_> = (0..64u64)
        .map(|i| {
            let file = file.clone();
            hoop::spawn(async move { file.read_at(Vec::with_capacity(4096), i * 4096).await.0 })
        })
        .collect();
    for r in reads {
        r.await??;
    }

    // Timers and blocking jobs.
    hoop::time::sleep(Duration::from_millis(5 * (worker as u64 + 1))).await;
    hoop::spawn_blocking(|| std::thread::sleep(Duration::from_millis(1))).await?;
    Ok(hoop::metrics().expect("inside a runtime"))
}

fn main() -> std::io::Result<()> {
    let mut workers = 2;
    let mut args = args::Args::new("metrics", "[--workers N]");
    while let Some(arg) = args.next() {
        match arg {
            args::Arg::Flag(f) if f == "workers" => {
                workers = args.value::<std::num::NonZeroUsize>("workers").get()
            }
            other => args.unknown(other),
        }
    }
    let rt = hoop::Runtime::builder().workers(workers).build()?;
    println!("driver: {} ({})", rt.info().driver, rt.info().reason);
    let all = rt.run(some_work);
    println!(
        "{:>6} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>7} {:>6} {:>8}",
        "worker",
        "spawned",
        "polled",
        "submitted",
        "completed",
        "cancelled",
        "in_flight",
        "blocking",
        "enters",
        "sqfull",
        "bthreads"
    );
    for m in all {
        let m = m?;
        println!(
            "{:>6} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>7} {:>6} {:>8}",
            m.worker,
            m.tasks_spawned,
            m.tasks_polled,
            m.ops_submitted,
            m.ops_completed,
            m.ops_cancelled,
            m.ops_in_flight,
            m.ops_blocking,
            m.enters,
            m.sq_full,
            m.blocking_threads
        );
        assert!(m.ops_completed > 0 && m.tasks_spawned > 0);
    }
    Ok(())
}
