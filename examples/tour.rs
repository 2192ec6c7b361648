//! A tour of the runtime doing real I/O on every worker: pipes between tasks, a timer, a
//! blocking job, and a readiness wait on a foreign fd; then each worker's counters.
//!
//! ```sh
//! cargo run --release --example tour            # all cores, io_uring if available
//! HOOP_DRIVER=epoll cargo run --example tour    # force the fallback driver
//! cargo run --example tour -- --workers 1
//! ```

#[path = "common/args.rs"]
mod args;

use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    let mut workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args = args::Args::new("tour", "[--workers N]");
    while let Some(arg) = args.next() {
        match arg {
            args::Arg::Flag(f) if f == "workers" => {
                workers = args.value::<std::num::NonZeroUsize>("workers").get()
            }
            other => args.unknown(other),
        }
    }
    let rt = hoop::Runtime::builder().workers(workers).build()?;
    let info = rt.info().clone();
    println!(
        "hoop: {} worker(s) on {} ({}; setup {})",
        info.workers,
        info.driver,
        info.reason,
        if info.uring_setup.is_empty() {
            "-"
        } else {
            &info.uring_setup
        }
    );
    let reports = rt.run(|worker| async move {
        let start = Instant::now();
        // 1. Ping-pong 10,000 messages through two pipes between two tasks.
        let (to_echo_r, to_echo_w) = hoop::io::pipe()?;
        let (back_r, back_w) = hoop::io::pipe()?;
        let echo = hoop::spawn(async move {
            let mut buf = Vec::with_capacity(64);
            loop {
                buf.clear();
                let (n, b) = to_echo_r.read(buf).await;
                if n? == 0 {
                    return Ok::<_, std::io::Error>(());
                }
                let (res, b) = back_w.write_all(b).await;
                res?;
                buf = b;
            }
        });
        let mut msg = Vec::with_capacity(64);
        let mut reply = Vec::with_capacity(64);
        for i in 0..10_000u32 {
            msg.clear();
            msg.extend_from_slice(&i.to_le_bytes());
            let (res, m) = to_echo_w.write_all(msg).await;
            res?;
            msg = m;
            reply.clear();
            let (n, r) = back_r.read(reply).await;
            assert_eq!(n?, 4);
            assert_eq!(r, msg);
            reply = r;
        }
        drop(to_echo_w);
        echo.await??;
        let pingpong = start.elapsed();

        // 2. A timer and a blocking job run side by side.
        let t = Instant::now();
        let blocking = hoop::spawn_blocking(|| (1..=1_000_000u64).sum::<u64>());
        hoop::time::sleep(Duration::from_millis(10)).await;
        let sum = blocking.await?;

        // 3. Readiness of an fd hoop did not create.
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        std::io::Write::write_all(&mut &b, b"!")?;
        let ready = hoop::io::wait_ready(std::os::fd::AsFd::as_fd(&a), hoop::io::Interest::READABLE).await?;

        let m = hoop::metrics().expect("inside the runtime");
        Ok::<_, std::io::Error>(format!(
            "worker {worker}: 10k pipe round trips in {pingpong:?}; timer+blocking in {:?} (sum {sum}); \
             foreign fd readable: {}; ops completed {}, enters {}, tasks polled {}",
            t.elapsed(),
            ready.is_readable(),
            m.ops_completed,
            m.enters,
            m.tasks_polled,
        ))
    });
    for r in reports {
        println!("{}", r?);
    }
    Ok(())
}
