//! Receives that pick their buffer from a [`BufRing`]: multishot `IORING_OP_RECV` with
//! `IORING_RECV_MULTISHOT` (6.0), or single-shot with `IOSQE_BUFFER_SELECT` where the kernel
//! refuses multishot.

use super::{AfterFinal, Interest, MultishotOp, OpCode, OpTraits, Plan};
use crate::buf::{BufRing, RingBuf};
use crate::fd::SharedFd;
use io_uring::{cqueue, opcode, squeue, squeue::Entry};
use std::io;

/// A receive on a socket into buffers of a registered [`BufRing`], one item per chunk.
pub struct RecvRing {
    fd: SharedFd,
    ring: BufRing,
    bgid: u16,
    multishot: bool,
    yielded: bool,
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
            yielded: false,
        })
    }
}

// SAFETY: the SQE holds no pointers (the kernel picks buffers from the registered ring, which
// the op's `BufRing` clone keeps registered and allocated); the fd is kept open by `SharedFd`.
unsafe impl OpCode for RecvRing {
    type Output = io::Result<Option<RingBuf>>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let (fd, fixed) = super::sqe_fd(&self.fd);
        let entry = if self.multishot {
            opcode::RecvMulti::new(fd, self.bgid).build()
        } else {
            let len = self.ring.buffer_size().min(u32::MAX as usize) as u32;
            opcode::Recv::new(fd, std::ptr::null_mut(), len)
                .buf_group(self.bgid)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT)
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

    fn orphaned(&mut self, _res: i32, flags: u32) {
        // A chunk nobody will read: its buffer goes back to the ring.
        if let Some(bid) = cqueue::buffer_select(flags) {
            self.ring.recycle(bid);
        }
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }
}

// SAFETY: as for `OpCode`; the SQE has no pointers, so every arming stays valid.
unsafe impl MultishotOp for RecvRing {
    type Item = io::Result<Option<RingBuf>>;

    fn item(&mut self, res: io::Result<u32>, flags: u32) -> Self::Item {
        let bid = cqueue::buffer_select(flags);
        match res {
            Ok(n) if n > 0 => match bid {
                Some(bid) => {
                    self.yielded = true;
                    Ok(Some(self.ring.take_filled(bid, n as usize)))
                }
                None => Err(io::Error::other("hoop: receive completed without a buffer")),
            },
            Ok(_) => {
                // End of stream; a buffer picked for it holds nothing.
                if let Some(bid) = bid {
                    self.ring.recycle(bid);
                }
                Ok(None)
            }
            Err(e) => {
                if let Some(bid) = bid {
                    self.ring.recycle(bid);
                }
                Err(e)
            }
        }
    }

    fn after_final(&mut self, res: i32) -> AfterFinal {
        match res {
            0 => AfterFinal::YieldEnd,
            // The kernel ended multishot (CQ overflow), or single-shot mode: arm again.
            r if r > 0 => AfterFinal::YieldRearm,
            r if r == -libc::EINVAL && self.multishot && !self.yielded => {
                // A kernel without multishot receive (< 6.0): one buffer-select recv per arming.
                tracing::debug!(target: "hoop", "multishot recv refused (EINVAL); single-shot receives");
                self.multishot = false;
                AfterFinal::Rearm
            }
            r if r == -libc::ECANCELED => AfterFinal::End,
            // ENOBUFS included: the stream waits for a buffer to come back, then re-arms.
            _ => AfterFinal::YieldEnd,
        }
    }
}

super::opaque_debug!(RecvRing);
