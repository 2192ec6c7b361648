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
//! - [`spawn`], [`spawn_blocking`], [`yield_now`], [`JoinHandle`]: tasks (no `Send` bound);
//! - [`Runtime`], [`Builder`], [`Handle`]: workers, each with its own ring, pinned if asked;
//! - [`time`]: sleep, timeout, interval;
//! - [`io`]: pipes, readiness of foreign fds, the no-op operation;
//! - [`buf`]: owned buffers — operations take the buffer and give it back with the result;
//! - [`Driver`]: `Auto` (io_uring, else epoll), or either one forced; `HOOP_DRIVER` overrides.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use hoop_macros::{main, test};
pub use hoop_runtime::*;

/// Files and directories (see the `hoop-fs` crate).
pub use hoop_fs as fs;
/// Sockets (see the `hoop-net` crate).
pub use hoop_net as net;

#[doc(hidden)]
pub mod __private {
    use hoop_runtime::{Builder, Driver};

    /// The builder a `#[hoop::test]` variant uses, or `None` if `HOOP_DRIVER` selects the other
    /// driver (the variant is then skipped).
    pub fn test_builder(builder: Builder) -> Option<Builder> {
        let wanted = std::env::var("HOOP_DRIVER").unwrap_or_default();
        let skip = matches!(
            (wanted.as_str(), builder.driver_choice()),
            ("epoll", Driver::IoUring) | ("io_uring", Driver::Epoll)
        );
        if skip {
            eprintln!("skipped: HOOP_DRIVER={wanted}");
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
