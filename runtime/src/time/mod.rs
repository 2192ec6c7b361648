//! Timers: [`sleep`], [`sleep_until`], [`timeout`], [`interval`].
//!
//! Each worker keeps its pending timers in an ordered map; the earliest deadline becomes the
//! timeout of the worker's park (`io_uring_enter` with a timeout argument, or `epoll_wait`
//! rounded up to the next millisecond), so timers cost no syscalls of their own. Inserting or
//! cancelling is O(log n), which keeps 100k pending timers cheap. Timers fire no earlier than
//! their deadline; a dropped timer is removed at once.

mod interval;
mod sleep;
mod timeout;
pub(crate) mod timers;

pub use interval::{interval, interval_at, Interval, MissedTickBehavior};
#[cfg(feature = "hyper")]
pub(crate) use sleep::far_future;
pub use sleep::{sleep, sleep_until, Sleep};
pub use timeout::{timeout, timeout_at, Elapsed, Timeout};

/// A point in time; the same as [`std::time::Instant`].
pub type Instant = std::time::Instant;
