//! Bulk receive: one TCP connection streams data as fast as a sender on CPU 1 can write it
//! (64 KiB writes); the receiver on CPU 0 takes it and drops it. Compares the ways hoop
//! receives, against tokio's `read` into a 64 KiB buffer, by throughput and by the receiver
//! thread's CPU time per GiB. Where provided-buffer features pay: a bundle fills many buffers
//! per completion when data queues up; an incremental ring fills 64 KiB buffers a piece at a
//! time.
//!
//! Receivers: `hoop-read` (owned `read` into a 64 KiB `Vec`), `hoop-ring` (`recv_stream` on
//! 1024 × 4 KiB without bundles), `hoop-bundle` (the same ring with bundles, the default,
//! 6.16+), `hoop-inc` (64 × 64 KiB, incremental, 6.12+), `tokio`. Rounds interleave the receivers; medians are reported.
//!
//! Run: `cargo bench --bench recv_ring` (`-- --gib N --rounds R`, defaults 2 GiB and 3).

#[path = "common/results.rs"]
mod results;
#[path = "common/sys.rs"]
mod sys;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WRITE: usize = 64 * 1024;

type Receive = fn(std::net::TcpListener, u64, mpsc::Sender<i32>);

/// A receiving loop on hoop: the stream and the bytes to take.
type Receiving = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// Accepts one connection and receives `total` bytes from it (hoop, on one pinned worker).
fn hoop_receiver(
    listener: std::net::TcpListener,
    total: u64,
    tid: mpsc::Sender<i32>,
    how: fn(hoop::net::TcpStream, u64) -> Receiving,
) {
    let rt = hoop::Runtime::builder().workers(1).build().unwrap();
    rt.block_on(async move {
        tid.send(sys::gettid()).unwrap();
        listener.set_nonblocking(true).unwrap();
        let listener = hoop::net::TcpListener::from_std(listener).unwrap();
        let (s, _) = listener.accept().await.unwrap();
        how(s, total).await;
    });
}

fn by_read(
    s: hoop::net::TcpStream,
    total: u64,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
    Box::pin(async move {
        let mut got = 0u64;
        let mut buf = Vec::with_capacity(WRITE);
        while got < total {
            let (res, b) = s.read(buf).await;
            buf = b;
            match res {
                Ok(n) if n > 0 => got += n as u64,
                _ => break,
            }
            buf.clear();
        }
    })
}

fn by_ring(s: hoop::net::TcpStream, total: u64, ring: hoop::buf::BufRing) -> Receiving {
    Box::pin(async move {
        let mut chunks = s.recv_stream(&ring);
        let mut got = 0u64;
        while got < total {
            match futures_util::StreamExt::next(&mut chunks).await {
                Some(Ok(c)) => got += c.len() as u64,
                _ => break,
            }
        }
    })
}

fn recv_hoop_read(l: std::net::TcpListener, total: u64, tid: mpsc::Sender<i32>) {
    hoop_receiver(l, total, tid, by_read);
}

fn recv_hoop_ring(l: std::net::TcpListener, total: u64, tid: mpsc::Sender<i32>) {
    hoop_receiver(l, total, tid, |s, t| {
        let ring = hoop::buf::BufRing::builder(1024, 4096)
            .bundles(false)
            .build()
            .unwrap();
        by_ring(s, t, ring)
    });
}

fn recv_hoop_bundle(l: std::net::TcpListener, total: u64, tid: mpsc::Sender<i32>) {
    hoop_receiver(l, total, tid, |s, t| {
        let ring = hoop::buf::BufRing::builder(1024, 4096)
            .bundles(true)
            .build()
            .unwrap();
        by_ring(s, t, ring)
    });
}

fn recv_hoop_inc(l: std::net::TcpListener, total: u64, tid: mpsc::Sender<i32>) {
    hoop_receiver(l, total, tid, |s, t| {
        let ring = hoop::buf::BufRing::builder(64, 64 * 1024)
            .incremental(true)
            .build()
            .unwrap();
        by_ring(s, t, ring)
    });
}

fn recv_tokio(listener: std::net::TcpListener, total: u64, tid: mpsc::Sender<i32>) {
    use tokio::io::AsyncReadExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        tid.send(sys::gettid()).unwrap();
        listener.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; WRITE];
        let mut got = 0u64;
        while got < total {
            match s.read(&mut buf).await {
                Ok(n) if n > 0 => got += n as u64,
                _ => break,
            }
        }
    });
}

/// One transfer: (GiB/s, receiver CPU seconds per GiB).
fn transfer(receive: Receive, total: u64) -> io::Result<(f64, f64)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr: SocketAddr = listener.local_addr()?;
    let (tx, rx) = mpsc::channel();
    let receiver = std::thread::spawn(move || {
        sys::pin(0);
        receive(listener, total, tx)
    });
    let tid = rx.recv().map_err(io::Error::other)?;
    let stat = format!("/proc/self/task/{tid}/stat");
    let sender = std::thread::spawn(move || -> io::Result<()> {
        sys::pin(1);
        let mut s = TcpStream::connect(addr)?;
        let chunk = vec![0x5au8; WRITE];
        let mut sent = 0u64;
        while sent < total {
            let n = (total - sent).min(WRITE as u64) as usize;
            s.write_all(&chunk[..n])?;
            sent += n as u64;
        }
        Ok(())
    });
    let cpu0 = sys::cpu_time(&stat);
    let start = Instant::now();
    // The receiver's CPU is read just before it exits (its stat file goes with it).
    let mut cpu = Duration::ZERO;
    while !receiver.is_finished() {
        cpu = sys::cpu_time(&stat).saturating_sub(cpu0);
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = start.elapsed();
    receiver
        .join()
        .map_err(|_| io::Error::other("receiver panicked"))?;
    sender
        .join()
        .map_err(|_| io::Error::other("sender panicked"))??;
    let gib = total as f64 / (1u64 << 30) as f64;
    Ok((gib / elapsed.as_secs_f64(), cpu.as_secs_f64() / gib))
}

const RECEIVERS: [(&str, Receive); 5] = [
    ("hoop-read", recv_hoop_read),
    ("hoop-ring", recv_hoop_ring),
    ("hoop-bundle", recv_hoop_bundle),
    ("hoop-inc", recv_hoop_inc),
    ("tokio", recv_tokio),
];

fn main() -> io::Result<()> {
    let gib: f64 = sys::arg("--gib", 2.0);
    let rounds: usize = sys::arg("--rounds", 3);
    let total = (gib * (1u64 << 30) as f64) as u64;
    let mut samples: Vec<Vec<(f64, f64)>> = RECEIVERS.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (i, (_, receive)) in RECEIVERS.iter().enumerate() {
            samples[i].push(transfer(*receive, total)?);
        }
    }
    let medians = sys::medians(&samples);
    let tokio = *medians.last().unwrap();
    println!(
        "bulk receive, {gib} GiB over one connection, receiver on CPU 0, sender on CPU 1, \
         {rounds} rounds (medians)"
    );
    println!(
        "{:<12} {:>9} {:>7} {:>12} {:>7}",
        "receiver", "GiB/s", "ratio", "CPU s/GiB", "ratio"
    );
    let mut md = format!(
        "Bulk receive: {gib} GiB over one loopback connection written in 64 KiB pieces by a \
         sender on CPU 1, received on CPU 0, {rounds} interleaved rounds, medians \
         (`cargo bench --bench recv_ring`). CPU: the receiving thread's.\n\n\
         | receiver | GiB/s | vs tokio | CPU s per GiB | CPU vs tokio (lower is better) |\n\
         |---|---|---|---|---|\n"
    );
    let mut rows = Vec::new();
    for ((name, _), (rate, cpu)) in RECEIVERS.iter().zip(&medians) {
        println!(
            "{:<12} {:>9.2} {:>6.2}x {:>12.3} {:>6.2}x",
            name,
            rate,
            rate / tokio.0,
            cpu,
            cpu / tokio.1
        );
        md.push_str(&format!(
            "| {name} | {rate:.2} | {:.2}x | {cpu:.3} | {:.2}x |\n",
            rate / tokio.0,
            cpu / tokio.1
        ));
        if *name != "tokio" {
            rows.push(results::Row {
                workload: format!("bulk receive ({name}): GiB/s"),
                unit: "GiB/s",
                hoop: *rate,
                tokio: tokio.0,
                higher_is_better: true,
            });
            rows.push(results::Row {
                workload: format!("bulk receive ({name}): CPU s/GiB"),
                unit: "s/GiB",
                hoop: *cpu,
                tokio: tokio.1,
                higher_is_better: false,
            });
        }
    }
    results::write("recv_ring", &rows)?;
    results::write_md("recv_ring", &md)?;
    Ok(())
}
