//! The core of the hoop runtime: executor, io_uring and epoll drivers, operations, owned
//! buffers, timers and the blocking pool. Users depend on the `hoop` facade crate, which
//! re-exports this one.
//!
//! Architecture in one paragraph: each worker thread owns an executor of `!Send` tasks, a driver
//! (one io_uring, or one epoll instance where io_uring is unavailable) and a timer store. Every
//! kernel operation is an [`op::OpCode`], written once and run by either driver; its future
//! ([`op::Op`]) owns every buffer and path the kernel touches, and if the future is dropped, the
//! driver keeps that memory until the kernel's final completion. SQEs queued by the tasks of a
//! tick are submitted with one `io_uring_enter`, which is also where the worker parks.

#![warn(missing_debug_implementations)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "hoop runs on Linux only: it drives io_uring (5.11+), or epoll where io_uring is unavailable"
);

mod blocking;
pub mod buf;
mod coop;
mod creds;
mod driver;
pub mod fd;
pub mod io;
#[cfg(test)]
mod layers;
mod log;
#[cfg(all(test, loom))]
mod loom_models;
mod metrics;
pub mod op;
mod rt;
pub mod signal;
pub mod sync;
mod sys;
mod task;
pub mod time;

/// Test diagnostics, not a stable API.
#[doc(hidden)]
pub mod diagnostics {
    pub use crate::driver::lifecycle::efault_completions;

    /// Records that the running test skips its check: printed, and appended as
    /// the test name, a tab and the reason to the file `HOOP_SKIP_LOG` names (`.ci/run` counts
    /// them).
    pub fn record_skip(reason: &str) {
        let thread = std::thread::current();
        let test = thread.name().unwrap_or("?");
        eprintln!("skipped: {reason}");
        if let Some(path) = std::env::var_os("HOOP_SKIP_LOG") {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                // One write of the whole line: appends from parallel tests stay whole lines.
                let _ = f.write_all(format!("{test}\t{reason}\n").as_bytes());
            }
        }
    }
}

pub use buf::{BufResult, IoBuf, IoBufMut, Slice};
pub use creds::Credentials;
#[allow(deprecated)]
pub use driver::Driver;
pub use driver::{DriverChoice, DriverKind, OpClass, RuntimeInfo};
pub use metrics::{metrics, WorkerMetrics};
pub use rt::{
    block_on, runtime_info, spawn, spawn_blocking, worker_index, Builder, Handle, Runtime,
    DEFAULT_MAX_IN_FLIGHT,
};
pub use task::{yield_now, JoinError, JoinHandle};
