//! # hoop
//!
//! A thread-per-core async runtime for Linux that drives disk and network I/O from one io_uring
//! per core, with an epoll fallback that keeps the same API where io_uring is unavailable.
//!
//! ```
//! #[hoop::main(workers = 1)]
//! async fn main() {
//!     let (r, w) = hoop::io::pipe().unwrap();
//!     let writer = hoop::spawn(async move { w.write_all(b"hello".to_vec()).await.0 });
//!     let (n, buf) = r.read(Vec::with_capacity(16)).await;
//!     assert_eq!(&buf[..n.unwrap()], b"hello");
//!     writer.await.unwrap().unwrap();
//! }
//! ```
//!
//! # A tour
//!
//! ## Tasks
//!
//! [`spawn`] runs a future on the current worker and returns a [`JoinHandle`]. Tasks never move
//! between threads, so they need not be `Send`: share state with `Rc<RefCell<_>>`, not
//! `Arc<Mutex<_>>`. [`spawn_blocking`] runs a closure on the shared blocking pool;
//! [`yield_now`] lets other tasks run.
//!
//! ```
//! use std::{cell::Cell, rc::Rc};
//! hoop::block_on(async {
//!     let hits = Rc::new(Cell::new(0));
//!     let tasks: Vec<_> = (0..10)
//!         .map(|_| {
//!             let hits = hits.clone();
//!             hoop::spawn(async move { hits.set(hits.get() + 1) })
//!         })
//!         .collect();
//!     for t in tasks {
//!         t.await.unwrap();
//!     }
//!     assert_eq!(hits.get(), 10);
//!     let sum = hoop::spawn_blocking(|| (1..=100u32).sum::<u32>()).await.unwrap();
//!     assert_eq!(sum, 5050);
//! });
//! ```
//!
//! ## Owned buffers, and why
//!
//! With io_uring the kernel reads and writes your buffer *after* the call that submitted the
//! operation returned — and, if the future is dropped, after the future is gone. A `&mut [u8]`
//! cannot promise to live that long, so every operation takes its buffer by value and gives it
//! back with the result, as a [`BufResult`] `(io::Result<T>, B)`. If the future is dropped, the
//! runtime keeps the buffer until the kernel's final completion. Buffers are `Vec<u8>`,
//! `Box<[u8]>`, `&'static [u8]`, a [`Slice`] of one, or the special kinds in [`buf`]
//! (registered [`buf::FixedBufPool`] buffers, [`buf::BufRing`] provided buffers, aligned
//! [`buf::AlignedBuf`] for `O_DIRECT`).
//!
//! ```
//! use hoop::IoBuf;
//! # hoop::block_on(async {
//! let path = std::env::temp_dir().join(format!("hoop-doc-{}", std::process::id()));
//! hoop::fs::write(&path, b"owned buffers").await.unwrap();
//! let file = hoop::fs::File::open(&path).await.unwrap();
//! let buf = Vec::with_capacity(64);
//! let (res, buf) = file.read_at(buf, 0).await; // the buffer comes back, filled
//! assert_eq!(&buf[..res.unwrap()], b"owned buffers");
//! let (res, slice) = file.read_at(buf.slice(0..5), 6).await; // into part of it
//! assert_eq!(res.unwrap(), 5);
//! assert_eq!(&slice.into_inner()[..5], b"buffe");
//! hoop::fs::remove_file(&path).await.unwrap();
//! # });
//! ```
//!
//! ## Files: [`fs`]
//!
//! [`fs::File`] reads and writes at offsets (`read_at`, `write_all_at`, vectored, registered
//! buffers), syncs, allocates and stats through the ring — no thread-pool hop. The free
//! functions mirror `std::fs` (`read`, `write`, `rename`, `create_dir_all`, `read_dir`, ...).
//! [`fs::Dir`] is a capability: every path opened through it is resolved beneath it
//! (`openat2(RESOLVE_BENEATH)`), so `..` and symlinks cannot escape — what a file server needs.
//!
//! ```
//! # hoop::block_on(async {
//! let root = std::env::temp_dir().join(format!("hoop-doc-dir-{}", std::process::id()));
//! hoop::fs::create_dir_all(root.join("pub")).await.unwrap();
//! hoop::fs::write(root.join("pub/index.html"), b"hi").await.unwrap();
//! let dir = hoop::fs::Dir::open(root.join("pub")).await.unwrap();
//! assert!(dir.metadata("index.html").await.is_ok());
//! assert!(dir.metadata("../../etc/passwd").await.is_err()); // refused, not resolved
//! hoop::fs::remove_dir_all(&root).await.unwrap();
//! # });
//! ```
//!
//! ## Sockets: [`net`]
//!
//! TCP, UDP and Unix sockets with owned-buffer I/O, multishot accept (`incoming()`), receives
//! into provided-buffer rings (`recv_stream`), zero-copy sends (`send_zc`) and `send_file`.
//!
//! ```
//! use futures_util::StreamExt;
//! use hoop::net::{TcpListener, TcpStream};
//! # hoop::block_on(async {
//! let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//! let addr = listener.local_addr().unwrap();
//! hoop::spawn(async move {
//!     let mut incoming = listener.incoming();
//!     while let Some(Ok(stream)) = incoming.next().await {
//!         hoop::spawn(async move {
//!             let (n, buf) = stream.read(Vec::with_capacity(1024)).await;
//!             let n = n.unwrap();
//!             stream.write_all(buf[..n].to_vec()).await.0.unwrap();
//!         })
//!         .detach();
//!     }
//! })
//! .detach();
//! let client = TcpStream::connect(addr).await.unwrap();
//! client.write_all(b"ping".to_vec()).await.0.unwrap();
//! let (n, buf) = client.read(Vec::with_capacity(16)).await;
//! assert_eq!(&buf[..n.unwrap()], b"ping");
//! # });
//! ```
//!
//! ## Timers: [`time`]
//!
//! [`time::sleep`], [`time::timeout`] and [`time::interval`] run on each worker's own timer
//! store; the next deadline is the ring's wait timeout, so timers cost no extra syscall.
//!
//! ```
//! use std::time::Duration;
//! # hoop::block_on(async {
//! let slow = hoop::time::sleep(Duration::from_secs(10));
//! assert!(hoop::time::timeout(Duration::from_millis(5), slow).await.is_err());
//! # });
//! ```
//!
//! ## Thread per core
//!
//! A [`Runtime`] has `workers(n)` threads, each with its own executor, ring and timers, pinned
//! to a CPU with `pin_cpus(true)` (blocking-pool threads then run on every allowed CPU, not on
//! their worker's). [`Runtime::run`] starts one future per worker (a server
//! binds a `SO_REUSEPORT` listener in each); [`Handle::spawn_on`] sends a `Send` future to a
//! given worker from anywhere. Nothing is shared between workers unless you share it.
//!
//! ```
//! let rt = hoop::Runtime::builder().workers(2).build().unwrap();
//! let ids = rt.run(|worker| async move { (worker, hoop::worker_index()) });
//! assert_eq!(ids, vec![(0, Some(0)), (1, Some(1))]);
//! ```
//!
//! ## Choosing a driver
//!
//! [`DriverChoice::Auto`] (the default) uses io_uring and falls back to epoll only where io_uring is
//! unavailable (an old kernel, a seccomp profile that denies it); [`runtime_info`] says which
//! and why, and the choice is reported through `tracing`. `HOOP_DRIVER=epoll|io_uring`
//! overrides `Auto`. Every operation runs on both drivers with the same results: on epoll,
//! sockets wait for readiness and file operations run on the blocking pool.
//!
//! ```
//! let rt = hoop::Runtime::builder().driver(hoop::DriverChoice::Epoll).build().unwrap();
//! assert_eq!(rt.info().driver, hoop::DriverKind::Epoll);
//! rt.block_on(async { hoop::io::nop().await.unwrap() });
//! ```
//!
//! ## The rest of the ecosystem: [`io::Compat`]
//!
//! Code written against `futures::io` or `tokio::io` (codecs, TLS, hyper) gets the poll-based
//! traits from [`io::Compat`] (tokio's behind the `tokio` feature; hyper's runtime traits,
//! `io::HyperExecutor` and `io::HyperTimer`, behind the `hyper` feature — see
//! `examples/hyper_server.rs`). It costs one copy per byte; a cancelled read loses nothing.
//!
//! ```
//! use futures_util::io::{AsyncBufReadExt, AsyncWriteExt};
//! # hoop::block_on(async {
//! let (a, b) = hoop::net::UnixStream::pair().unwrap();
//! let (mut a, b) = (a.compat(), b.compat());
//! a.write_all(b"one\ntwo\n").await.unwrap();
//! a.close().await.unwrap();
//! let mut lines = b.lines();
//! use futures_util::StreamExt;
//! assert_eq!(lines.next().await.unwrap().unwrap(), "one");
//! # });
//! ```
//!
//! ## Observability
//!
//! [`metrics`] gives the current worker's counters (tasks, operations submitted, completed and
//! cancelled, `io_uring_enter` calls, SQ-full flushes, blocking threads); `examples/metrics.rs`
//! prints them. The runtime logs through `tracing` (target `hoop`), never on the hot path.

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]
#![warn(missing_docs)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "hoop runs on Linux only: it drives io_uring (5.11+), or epoll where io_uring is unavailable"
);

pub use hoop_macros::{main, test};
pub use hoop_runtime::*;

/// Files and directories (see the `hoop-fs` crate).
pub use hoop_fs as fs;
/// Sockets (see the `hoop-net` crate).
pub use hoop_net as net;

#[doc(hidden)]
pub mod __private {
    use hoop_runtime::{Builder, DriverChoice};

    /// True when the environment says io_uring is denied to this process
    /// (`HOOP_EXPECT_NO_IO_URING=1`, set by the `deny_io_uring` example). Panics if it is set but
    /// io_uring works after all, so a suite run that way cannot silently test io_uring instead.
    pub fn io_uring_denied() -> bool {
        static DENIED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *DENIED.get_or_init(|| {
            if std::env::var_os("HOOP_EXPECT_NO_IO_URING").is_none() {
                return false;
            }
            let probe = Builder::new()
                .workers(1)
                .driver(DriverChoice::IoUring)
                .build();
            assert!(
                probe.is_err(),
                "HOOP_EXPECT_NO_IO_URING is set but an io_uring runtime starts"
            );
            true
        })
    }

    /// Records that the running test skips its check, with `reason`: printed to stderr and, if
    /// `HOOP_SKIP_LOG` names a file, appended to it as one line (`.ci/run` counts them, so a
    /// skipped test is never silently counted as a pass).
    pub fn record_skip(reason: &str) {
        hoop_runtime::diagnostics::record_skip(reason)
    }

    /// The builder a `#[hoop::test]` variant uses, or `None` if `HOOP_DRIVER` selects the other
    /// driver or io_uring is denied (see [`io_uring_denied`]); the variant is then skipped.
    pub fn test_builder(builder: Builder) -> Option<Builder> {
        if builder.driver_choice() == DriverChoice::IoUring && io_uring_denied() {
            record_skip("io_uring denied (HOOP_EXPECT_NO_IO_URING)");
            return None;
        }
        let wanted = std::env::var("HOOP_DRIVER").unwrap_or_default();
        let skip = matches!(
            (wanted.as_str(), builder.driver_choice()),
            ("epoll", DriverChoice::IoUring) | ("io_uring", DriverChoice::Epoll)
        );
        if skip {
            record_skip(&format!("HOOP_DRIVER={wanted}"));
            return None;
        }
        Some(builder)
    }

    /// What a skipped test returns.
    pub trait Skipped {
        /// The passing value.
        fn skipped() -> Self;
    }

    impl Skipped for () {
        fn skipped() -> Self {}
    }

    impl<E> Skipped for Result<(), E> {
        fn skipped() -> Self {
            Ok(())
        }
    }
}
