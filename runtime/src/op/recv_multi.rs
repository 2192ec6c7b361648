//! Receives that pick their buffer from a [`BufRing`]: multishot `IORING_OP_RECV` with
//! `IORING_RECV_MULTISHOT` (6.0), as a bundle (`IORING_RECVSEND_BUNDLE`, 6.10) where the ring
//! asks for it, or single-shot with `IOSQE_BUFFER_SELECT` where the kernel refuses multishot.

use super::{AfterFinal, Interest, MultishotOp, OpCode, OpTraits, Plan, ReapHook};
use crate::buf::{BufRing, Landing, Received};
use crate::fd::SharedFd;
use io_uring::{cqueue, opcode, squeue, squeue::Entry};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;

/// A receive on a socket into buffers of a registered [`BufRing`], one item per completion
/// (one buffer, or several for a bundle).
pub struct RecvRing {
    fd: SharedFd,
    ring: BufRing,
    bgid: u16,
    multishot: bool,
    bundle: bool,
    yielded: bool,
    /// What each completion filled, recorded by the reap hook in the kernel's order; taken in
    /// the same order by `item` (or released by `orphaned`).
    landed: Rc<RefCell<VecDeque<Landing>>>,
}

impl RecvRing {
    /// Receives on `fd` into `ring`; `None` unless the ring is registered with this worker's
    /// ring (then use plain receives into [`BufRing::try_take`] buffers).
    pub fn new(fd: &SharedFd, ring: &BufRing) -> Option<Self> {
        let bgid = ring.bgid()?;
        Some(RecvRing {
            fd: fd.clone(),
            ring: ring.clone(),
            bgid,
            multishot: true,
            bundle: ring.uses_bundles(),
            yielded: false,
            landed: Rc::default(),
        })
    }

    /// The record of the completion that named buffer `bid` with result `res`: the oldest
    /// record. Records before it that no item took (none should exist) are released rather than
    /// misattributed.
    fn take_landing(&mut self, bid: u16, res: u32) -> Option<Received> {
        let mut landed = self.landed.borrow_mut();
        while let Some(landing) = landed.pop_front() {
            let received = self.ring.received(landing);
            if (landing.bid, landing.res) == (bid, res) {
                return Some(received);
            }
            crate::log::warning!("a receive record was skipped; its buffers are released");
        }
        None
    }
}

// SAFETY: the SQE holds no pointers (the kernel picks buffers from the registered ring, which
// the op's `BufRing` clone keeps registered and allocated); the fd is kept open by `SharedFd`.
unsafe impl OpCode for RecvRing {
    type Output = io::Result<Option<Received>>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let (fd, fixed) = super::sqe_fd(&self.fd);
        let entry = match (self.multishot, self.bundle) {
            (true, true) => opcode::RecvMultiBundle::new(fd, self.bgid).build(),
            (true, false) => opcode::RecvMulti::new(fd, self.bgid).build(),
            (false, _) => {
                let len = self.ring.buffer_size().min(u32::MAX as usize) as u32;
                opcode::Recv::new(fd, std::ptr::null_mut(), len)
                    .buf_group(self.bgid)
                    .build()
                    .flags(squeue::Flags::BUFFER_SELECT)
            }
        };
        Some(entry.flags(fixed))
    }

    fn plan(&self) -> Plan {
        Plan::Readiness {
            fd: self.fd.raw(),
            interest: Interest::READABLE,
        }
    }

    fn traits(&self) -> OpTraits {
        // Also in its single-shot fallback: the kernel picks the buffer, and only a stream
        // sees the completion flags that say which.
        OpTraits::NONE.multishot(true)
    }

    fn perform(&mut self) -> io::Result<u32> {
        // Only built for registered rings, which exist only on io_uring.
        Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
    }

    fn complete(mut self, result: io::Result<u32>) -> Self::Output {
        self.item(result, 0)
    }

    fn orphaned(&mut self, res: i32, flags: u32) {
        // A chunk nobody will read: its buffers go back to the ring.
        if let (true, Some(bid)) = (res > 0, cqueue::buffer_select(flags)) {
            drop(self.take_landing(bid, res as u32));
        }
    }

    fn reap_hook(&self) -> Option<ReapHook> {
        let (ring, landed, bundle) = (self.ring.clone(), self.landed.clone(), self.bundle);
        Some(ReapHook::new(move |res, flags| {
            if let Some(landing) = ring.note_completion(res, flags, bundle) {
                landed.borrow_mut().push_back(landing);
            }
        }))
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }
}

// SAFETY: as for `OpCode`; the SQE has no pointers, so every arming stays valid.
unsafe impl MultishotOp for RecvRing {
    type Item = io::Result<Option<Received>>;

    fn item(&mut self, res: io::Result<u32>, flags: u32) -> Self::Item {
        match res {
            Ok(n) if n > 0 => {
                let received =
                    cqueue::buffer_select(flags).and_then(|bid| self.take_landing(bid, n));
                match received {
                    Some(received) => {
                        self.yielded = true;
                        Ok(Some(received))
                    }
                    None => Err(io::Error::other(
                        "hoop: receive completed without a buffer hoop gave the kernel",
                    )),
                }
            }
            // End of stream (no buffer is consumed for it).
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn after_final(&mut self, res: i32) -> AfterFinal {
        match res {
            0 => AfterFinal::YieldEnd,
            // The kernel ended multishot (CQ overflow, the ring ran empty after a bundle), or
            // single-shot mode: arm again.
            r if r > 0 => AfterFinal::YieldRearm,
            r if r == -libc::EINVAL && self.multishot && !self.yielded => {
                if self.bundle {
                    // A kernel without bundles (< 6.10): one buffer per completion.
                    tracing::debug!(target: "hoop", "bundle recv refused (EINVAL); one buffer per receive");
                    self.bundle = false;
                } else {
                    // A kernel without multishot receive (< 6.0): one buffer-select recv per
                    // arming.
                    tracing::debug!(target: "hoop", "multishot recv refused (EINVAL); single-shot receives");
                    self.multishot = false;
                }
                AfterFinal::Rearm
            }
            r if r == -libc::ECANCELED => AfterFinal::End,
            // ENOBUFS included: the stream waits for a buffer to come back, then re-arms.
            _ => AfterFinal::YieldEnd,
        }
    }
}

super::opaque_debug!(RecvRing);

#[cfg(test)]
mod tests {
    use super::*;

    /// The `ioprio` word of an SQE (the receive's flags: multishot, bundle).
    fn ioprio(entry: &Entry) -> u16 {
        // SAFETY: `Entry` is a `repr(C)` wrapper of the 64-byte `io_uring_sqe`, plain integers.
        let sqe = unsafe { &*(entry as *const Entry).cast::<[u8; 64]>() };
        u16::from_ne_bytes([sqe[2], sqe[3]])
    }

    /// A kernel that refuses what the ring asked for steps down one feature at a time: a
    /// refused bundle becomes a plain multishot receive, a refused multishot a single-shot one.
    /// (No kernel hoop runs on refuses a bundle it announced, so only this test takes the path.)
    #[test]
    fn refusals_step_down_from_bundle_to_multishot_to_single_shot() {
        crate::block_on(async {
            let ring = BufRing::builder(4, 1024).bundles(true).build().unwrap();
            let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
            let Some(mut op) = RecvRing::new(&SharedFd::new(a.into()), &ring) else {
                return; // not registered (epoll, or before 5.19): no ring receive to test
            };
            const MULTISHOT: u16 = 1 << 1;
            const BUNDLE: u16 = 1 << 4;
            if op.bundle {
                assert_eq!(ioprio(&op.uring_entry().unwrap()), MULTISHOT | BUNDLE);
                assert_eq!(op.after_final(-libc::EINVAL), AfterFinal::Rearm);
                assert!(!op.bundle && op.multishot);
            }
            assert_eq!(ioprio(&op.uring_entry().unwrap()), MULTISHOT);
            assert_eq!(op.after_final(-libc::EINVAL), AfterFinal::Rearm);
            assert!(!op.multishot);
            assert_eq!(ioprio(&op.uring_entry().unwrap()) & (MULTISHOT | BUNDLE), 0);
            // Once data arrived, an EINVAL is the socket's own: the stream ends with it.
            op.yielded = true;
            assert_eq!(op.after_final(-libc::EINVAL), AfterFinal::YieldEnd);
        });
    }
}
