//! Operations on the blocking pool: the job the driver hands the pool, and its way back.
//!
//! The pool runs plain closures; the closure made here runs an operation's `perform` (as the
//! operation's user, if it has one) and delivers the result to the worker's [`Inbox`], whose
//! driver completes the operation's slot ([`IoDriver::pool_done`](super::IoDriver::pool_done)).

use super::lifecycle::Completion;
use super::opcode::DynOp;
use crate::creds::Credentials;
use std::io;
use std::sync::Arc;

/// A finished blocking-pool operation on its way back to its worker.
pub(crate) struct PoolDone {
    pub(super) user_data: u64,
    pub(super) completion: Completion,
    pub(super) op: SendOp,
}

/// Where pool results go: the worker's inbox, which any thread may push to.
pub(crate) trait Inbox: Send + Sync + 'static {
    /// Delivers `done` to the worker; gives it back if the worker is gone.
    fn deliver(&self, done: PoolDone) -> Result<(), PoolDone>;

    /// Hands every result delivered so far to `f` (the driver's shutdown, which waits for them;
    /// other items in the inbox are dropped, the worker is stopping).
    fn drain_done(&self, f: &mut dyn FnMut(PoolDone));

    /// True if something was delivered since the worker last took its inbox (a cheap load:
    /// the driver polls it while it spins before parking).
    fn has_mail(&self) -> bool;
}

/// An operation handed to the blocking pool, with the identity to run it as.
pub(crate) struct SendOp(pub(super) Box<dyn DynOp>, pub(super) Option<Credentials>);

// SAFETY: the `OpCode` contract makes `perform` touch only plain data (raw fds, pointers and
// lengths captured on the owner thread), so running it on a pool thread is sound while the owner
// does not touch the op (it only holds the slot's user data). The box travels back to its owner
// inside a `PoolDone` and is dropped there; if the owner is gone, the job leaks it instead of
// dropping it on the wrong thread (see `job`).
unsafe impl Send for SendOp {}

impl SendOp {
    fn run(&mut self) -> Completion {
        let op = &mut self.0;
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &self.1 {
            Some(creds) => creds.scope(|| op.perform()).and_then(|r| r),
            None => op.perform(),
        }))
        .unwrap_or_else(|_| Err(io::Error::other("hoop: blocking operation panicked")));
        Completion::from_result(res)
    }
}

/// The pool job of one operation: runs it and sends it back to `inbox` under `user_data`.
pub(super) struct OpJob {
    pub(super) op: SendOp,
    pub(super) user_data: u64,
    pub(super) inbox: Arc<dyn Inbox>,
}

impl crate::blocking::Job for OpJob {
    fn run(mut self: Box<Self>) {
        let completion = self.op.run();
        let OpJob {
            op,
            user_data,
            inbox,
        } = *self;
        let done = PoolDone {
            user_data,
            completion,
            op,
        };
        if let Err(done) = inbox.deliver(done) {
            // The worker is gone; its memory may belong to a leaked ring: never drop it here.
            std::mem::forget(done);
        }
    }
}
