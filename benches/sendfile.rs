//! File → socket throughput over loopback: which way should a file server send a body?
//!
//! A page-cached file is sent over one TCP connection by a hoop worker pinned to CPU 0, four
//! ways: `send_file` (what hoop uses: 256 KiB reads and sends), `splice_file` (file → pipe → socket),
//! `read_at` + `write_all` through a 256 KiB buffer, and `read_fixed_at` + `write_all` through a
//! registered buffer; a plain blocking
//! reader on CPU 1 drains the socket. Each way runs on io_uring and on epoll, interleaved over
//! rounds; the median GB/s is printed.
//!
//! Run: `cargo bench --bench sendfile` (`-- --mib N --rounds R`; defaults 512 MiB, 3 rounds).

#[path = "common/sys.rs"]
mod sys;

use hoop::buf::FixedBufPool;
use hoop::fs::File;
use hoop::net::TcpStream;
use hoop::{DriverChoice, Runtime};
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

const CHUNK: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Way {
    SendFile,
    Splice,
    ReadWrite,
    FixedReadWrite,
}

async fn send(way: Way, stream: &TcpStream, file: &File, len: u64) -> std::io::Result<u64> {
    match way {
        Way::SendFile => stream.send_file(file, 0, len).await,
        Way::Splice => hoop::io::splice_file(file.shared_fd(), 0, len, stream.shared_fd()).await,
        Way::ReadWrite => {
            let mut buf = Vec::with_capacity(CHUNK);
            let mut pos = 0;
            while pos < len {
                buf.clear();
                let (n, b) = file.read_at(buf, pos).await;
                let n = n?;
                let (r, b) = stream.write_all(b).await;
                r?;
                buf = b;
                pos += n as u64;
            }
            Ok(pos)
        }
        Way::FixedReadWrite => {
            let pool = FixedBufPool::new(1, CHUNK)?;
            let mut buf = pool.try_get().expect("one buffer");
            let mut pos = 0;
            while pos < len {
                let (n, b) = file.read_fixed_at(buf, pos).await;
                let n = n?;
                let (r, b) = stream.write_all(b).await;
                r?;
                buf = b;
                pos += n as u64;
            }
            Ok(pos)
        }
    }
}

/// One transfer; returns GB/s.
fn run(way: Way, driver: DriverChoice, path: &Path, len: u64) -> f64 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        sys::pin(1);
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                return total;
            }
            total += n as u64;
        }
    });
    let path = path.to_path_buf();
    let elapsed = std::thread::spawn(move || {
        sys::pin(0);
        let rt = Runtime::builder().driver(driver).build().unwrap();
        rt.block_on(async move {
            let file = File::open(&path).await.unwrap();
            let stream = TcpStream::connect(addr).await.unwrap();
            let start = Instant::now();
            let sent = send(way, &stream, &file, len).await.unwrap();
            assert_eq!(sent, len);
            drop(stream);
            start
        })
    })
    .join()
    .unwrap();
    let received = reader.join().unwrap();
    let secs = elapsed.elapsed().as_secs_f64();
    assert_eq!(received, len);
    len as f64 / secs / 1e9
}

fn main() {
    let mib = sys::arg("--mib", 512u64);
    let rounds = sys::arg("--rounds", 3usize);
    let len = mib << 20;
    let path = std::env::temp_dir().join(format!("hoop-bench-sendfile-{}", std::process::id()));
    {
        let chunk: Vec<u8> = (0..1 << 20).map(|i| (i * 7) as u8).collect();
        let mut f = std::fs::File::create(&path).unwrap();
        for _ in 0..mib {
            std::io::Write::write_all(&mut f, &chunk).unwrap();
        }
    }
    // Warm the page cache.
    let _ = std::fs::read(&path).unwrap().len();
    let ways = [
        Way::SendFile,
        Way::Splice,
        Way::ReadWrite,
        Way::FixedReadWrite,
    ];
    let drivers = [
        ("io_uring", DriverChoice::IoUring),
        ("epoll", DriverChoice::Epoll),
    ];
    let mut results = vec![vec![Vec::new(); drivers.len()]; ways.len()];
    for _ in 0..rounds {
        for (w, way) in ways.iter().enumerate() {
            for (d, (_, driver)) in drivers.iter().enumerate() {
                results[w][d].push(run(*way, *driver, &path, len));
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    println!(
        "file -> socket over loopback, {mib} MiB page-cached, median of {rounds} rounds (GB/s)"
    );
    println!("| way | io_uring | epoll |");
    println!("|---|---|---|");
    for (w, way) in ways.iter().enumerate() {
        let cells: Vec<String> = results[w]
            .iter()
            .map(|r| format!("{:.2}", sys::median(r.clone())))
            .collect();
        println!("| {way:?} | {} |", cells.join(" | "));
    }
    std::fs::remove_file(&path).unwrap();
}
