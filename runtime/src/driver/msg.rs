//! Doorbells between workers over `IORING_OP_MSG_RING` (5.18+).
//!
//! A worker that wakes a task of another worker, or hands it work, pushes the item to the
//! target's inbox and then rings its doorbell. Between two io_uring workers the ring is a
//! `MSG_RING` SQE from the sender's ring into the target's: batched with the sender's other
//! SQEs (no syscall of its own), it posts a completion the target reaps like any other, which
//! ends its wait and needs no re-armed eventfd read. Every other sender (epoll workers, threads
//! outside the runtime, a worker whose driver is busy in a callback, a kernel without the
//! opcode) writes the target's eventfd, which both backends listen to.

use std::os::fd::RawFd;

/// A worker's doorbell as the driver sees it.
pub(crate) trait Doorbell: Send + Sync + 'static {
    /// The target's ring, if it accepts messages (an fd this doorbell keeps open).
    fn ring_fd(&self) -> Option<RawFd>;

    /// Rings through the eventfd: the fallback, and the answer to a message that failed.
    fn ring_eventfd(&self);
}
