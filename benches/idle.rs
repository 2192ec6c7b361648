//! Idle-connection memory: 10,000 connections accepted and waiting for data, each server in a
//! process of its own. Reports the user-space heap each connection costs (a counting
//! allocator's live bytes, after minus before the connections) and the resident memory it
//! adds (`VmRSS`), with the server's fixed cost (its buffer ring) apart.
//!
//! Servers: `tokio` (current_thread, an 8 KiB read buffer per connection, as most tokio code
//! reads), `hoop-read` (the same on hoop: an owned 8 KiB buffer lent to each pending `read`),
//! `hoop-ring` (`recv_stream` on a provided-buffer ring of 1024 × 4 KiB shared by every
//! connection: an idle one holds no buffer) and `hoop-inc` (the same on 64 × 64 KiB consumed
//! incrementally). hoop's servers run on io_uring, and with
//! `-- --epoll` on the epoll driver.
//!
//! Run: `cargo bench --bench idle` (`-- --conns N`, default 10000).

#[path = "common/results.rs"]
mod results;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::Duration;

/// The system allocator, counting the bytes live at any moment.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to `System`, and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    // SAFETY: a `GlobalAlloc` method: the caller's `alloc` contract (a valid
    // layout; for `dealloc`/`realloc` a pointer this allocator gave with that layout) passes
    // unchanged to `System`, which gave every pointer; only the byte count is added here.
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    // SAFETY: a `GlobalAlloc` method: the caller's `alloc_zeroed` contract (a valid
    // layout; for `dealloc`/`realloc` a pointer this allocator gave with that layout) passes
    // unchanged to `System`, which gave every pointer; only the byte count is added here.
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    // SAFETY: a `GlobalAlloc` method: the caller's `dealloc` contract (a valid
    // layout; for `dealloc`/`realloc` a pointer this allocator gave with that layout) passes
    // unchanged to `System`, which gave every pointer; only the byte count is added here.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }
    // SAFETY: a `GlobalAlloc` method: the caller's `realloc` contract (a valid
    // layout; for `dealloc`/`realloc` a pointer this allocator gave with that layout) passes
    // unchanged to `System`, which gave every pointer; only the byte count is added here.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Connections accepted whose task has started its first receive.
static WAITING: AtomicUsize = AtomicUsize::new(0);

fn rss_bytes() -> isize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<isize>().ok())
        .unwrap_or(0)
        * 1024
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a live rlimit the kernel fills, then reads.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

/// What a server process reports: heap and RSS before the connections, and once every one
/// waits.
struct Report {
    heap_before: isize,
    heap_after: isize,
    rss_before: isize,
    rss_after: isize,
}

/// In the child: waits until `conns` connections wait for data, settles, reports on stdout.
fn report_when_waiting(conns: usize, before: (isize, isize)) {
    while WAITING.load(Ordering::Relaxed) < conns {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    println!(
        "REPORT {} {} {} {}",
        before.0,
        LIVE.load(Ordering::Relaxed),
        before.1,
        rss_bytes()
    );
    io::stdout().flush().unwrap();
}

fn announce(addr: SocketAddr) {
    println!("ADDR {addr}");
    io::stdout().flush().unwrap();
}

fn serve_tokio(conns: usize) {
    use tokio::io::AsyncReadExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let before = (LIVE.load(Ordering::Relaxed), rss_bytes());
        announce(listener.local_addr().unwrap());
        std::thread::spawn(move || report_when_waiting(conns, before));
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                WAITING.fetch_add(1, Ordering::Relaxed);
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
}

fn hoop_runtime(epoll: bool) -> hoop::Runtime {
    let mut b = hoop::Runtime::builder().workers(1);
    if epoll {
        b = b.driver(hoop::DriverChoice::Epoll);
    }
    b.build().unwrap()
}

fn serve_hoop_read(conns: usize, epoll: bool) {
    hoop_runtime(epoll).block_on(async move {
        let listener = hoop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let before = (LIVE.load(Ordering::Relaxed), rss_bytes());
        announce(listener.local_addr().unwrap());
        std::thread::spawn(move || report_when_waiting(conns, before));
        loop {
            let (s, _) = listener.accept().await.unwrap();
            hoop::spawn(async move {
                let mut buf = Vec::with_capacity(8192);
                WAITING.fetch_add(1, Ordering::Relaxed);
                loop {
                    let (res, b) = s.read(buf).await;
                    buf = b;
                    if !matches!(res, Ok(n) if n > 0) {
                        break;
                    }
                    buf.clear();
                }
            })
            .detach();
        }
    });
}

fn serve_hoop_ring(conns: usize, epoll: bool, ring: fn() -> io::Result<hoop::buf::BufRing>) {
    hoop_runtime(epoll).block_on(async move {
        let listener = hoop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ring = ring().unwrap();
        let before = (LIVE.load(Ordering::Relaxed), rss_bytes());
        announce(listener.local_addr().unwrap());
        std::thread::spawn(move || report_when_waiting(conns, before));
        loop {
            let (s, _) = listener.accept().await.unwrap();
            let ring = ring.clone();
            hoop::spawn(async move {
                let mut chunks = s.recv_stream(&ring);
                WAITING.fetch_add(1, Ordering::Relaxed);
                while let Some(Ok(_)) = futures_util::StreamExt::next(&mut chunks).await {}
            })
            .detach();
        }
    });
}

fn plain_ring() -> io::Result<hoop::buf::BufRing> {
    hoop::buf::BufRing::new(1024, 4096)
}

fn incremental_ring() -> io::Result<hoop::buf::BufRing> {
    hoop::buf::BufRing::builder(64, 64 * 1024)
        .incremental(true)
        .build()
}

/// In the parent: runs server `name` in a child, opens `conns` connections to it, and reads its
/// report.
fn measure(name: &str, conns: usize, epoll: bool) -> io::Result<Report> {
    let exe = std::env::current_exe()?;
    let mut args = vec!["--serve".to_string(), name.to_string()];
    args.extend(["--conns".to_string(), conns.to_string()]);
    if epoll {
        args.push("--epoll".into());
    }
    let mut child = Command::new(exe)
        .args(&args)
        .stdout(Stdio::piped())
        .stdin(Stdio::piped())
        .spawn()?;
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line)?;
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("ADDR ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| io::Error::other(format!("{name}: no address: {line:?}")))?;
    let mut clients = Vec::with_capacity(conns);
    for _ in 0..conns {
        clients.push(TcpStream::connect(addr)?);
    }
    line.clear();
    out.read_line(&mut line)?;
    let v: Vec<isize> = line
        .trim()
        .strip_prefix("REPORT ")
        .map(|r| r.split(' ').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    drop(clients);
    if v.len() != 4 {
        return Err(io::Error::other(format!("{name}: bad report {line:?}")));
    }
    Ok(Report {
        heap_before: v[0],
        heap_after: v[1],
        rss_before: v[2],
        rss_after: v[3],
    })
}

fn main() -> io::Result<()> {
    raise_fd_limit();
    let mut conns = 10_000;
    let mut serve: Option<String> = None;
    let mut epoll = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--conns" => conns = args.next().and_then(|v| v.parse().ok()).unwrap_or(conns),
            "--serve" => serve = args.next(),
            "--epoll" => epoll = true,
            _ => {} // cargo bench passes --bench
        }
    }
    if let Some(name) = serve {
        match name.as_str() {
            "tokio" => serve_tokio(conns),
            "hoop-read" => serve_hoop_read(conns, epoll),
            "hoop-ring" => serve_hoop_ring(conns, epoll, plain_ring),
            "hoop-inc" => serve_hoop_ring(conns, epoll, incremental_ring),
            other => panic!("unknown server {other}"),
        }
        return Ok(());
    }
    let driver = if epoll { "epoll" } else { "io_uring" };
    println!("{conns} idle connections, each server in its own process (hoop on {driver})");
    println!(
        "{:<10} {:>14} {:>14} {:>16}",
        "server", "heap B/conn", "RSS B/conn", "fixed heap (ring)"
    );
    let mut md = format!(
        "{conns} idle connections, each server in its own process, hoop on {driver} \
         (`cargo bench --bench idle{}`). Heap: a counting allocator's live bytes after the \
         connections minus before, per connection; RSS: `VmRSS` likewise. The buffer rings are \
         allocated before the connections: their memory is the fixed cost, not per connection.\n\n\
         | server | heap bytes per connection | RSS bytes per connection | vs tokio (heap) |\n\
         |---|---|---|---|\n",
        if epoll { " -- --epoll" } else { "" }
    );
    let names = ["hoop-read", "hoop-ring", "hoop-inc", "tokio"];
    let mut reports = Vec::new();
    for name in names {
        let r = measure(name, conns, epoll)?;
        reports.push((name, r));
    }
    let per = |r: &Report| {
        (
            (r.heap_after - r.heap_before) as f64 / conns as f64,
            (r.rss_after - r.rss_before) as f64 / conns as f64,
        )
    };
    let tokio_heap = per(&reports.last().unwrap().1).0;
    let mut rows = Vec::new();
    for (name, r) in &reports {
        let (heap, rss) = per(r);
        println!(
            "{:<10} {:>14.0} {:>14.0} {:>16}",
            name, heap, rss, r.heap_before
        );
        md.push_str(&format!(
            "| {name} | {heap:.0} | {rss:.0} | {:.2}x |\n",
            heap / tokio_heap
        ));
        if *name != "tokio" {
            rows.push(results::Row {
                workload: format!("idle connection heap ({name} {driver})"),
                unit: "B/conn",
                hoop: heap,
                tokio: tokio_heap,
                higher_is_better: false,
            });
        }
    }
    let bench = if epoll { "idle_epoll" } else { "idle" };
    results::write(bench, &rows)?;
    results::write_md(bench, &md)?;
    Ok(())
}
