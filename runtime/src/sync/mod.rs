//! Channels and notifications whose ends may live on different workers, or outside the runtime:
//! [`mpsc`] (bounded, with back-pressure), [`oneshot`], and [`Notify`]. A receiver woken from
//! another worker is woken through that worker's doorbell (a `MSG_RING` between io_uring
//! workers, see `Builder::msg_ring`).
//!
//! Every end is `Send` (for `Send` values); the async methods work on any worker, the
//! `blocking_*` ones on threads outside the runtime.
//!
//! Inside the crate this module also picks the synchronisation primitives of the code other
//! threads touch — the blocking pool, a worker's inbox and doorbell flag, a task's join state,
//! these channels: std's, or loom's in builds with `--cfg loom`, where `loom_models.rs` checks
//! them under every interleaving (`.ci/loom`).

pub mod mpsc;
mod notify;
pub mod oneshot;
mod park;

pub(crate) use park::set_on_worker;

pub use notify::{Notified, Notify};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicBool;
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::AtomicBool;
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread;
