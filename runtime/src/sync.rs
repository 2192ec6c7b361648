//! The synchronisation primitives of the code other threads touch — the blocking pool, a
//! worker's inbox and doorbell flag, a task's join state: std's, or loom's in builds with
//! `--cfg loom`, where `loom_models.rs` checks them under every interleaving (`.ci/loom`).

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
