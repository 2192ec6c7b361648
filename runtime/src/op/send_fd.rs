//! `IORING_OP_MSG_RING` with `IORING_MSG_SEND_FD` (6.0): puts a copy of a direct descriptor into
//! another worker ring's table, in a slot that ring's kernel picks.

use super::{OpCode, Plan};
use crate::fd::{SharedFd, SlotBudget};
use io_uring::{opcode, squeue, squeue::Entry, types};
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

/// Sends the direct descriptor `fd` to the ring `ring`; completes with the slot it got there.
/// The target's completion carries the doorbell's user data, so it also wakes that worker.
pub(crate) struct SendFd {
    fd: SharedFd,
    /// The target ring's fd, kept open by the caller until the operation completes.
    ring: RawFd,
    /// Closes the target's new slot when nobody is left to hand it over (the future was
    /// dropped): run inside the driver, so it may only deliver a job to the target.
    orphan: Option<Box<dyn FnOnce(u32)>>,
    /// The place taken in the target's budget: given back when the op ends without a slot
    /// there (an error, or dropped before it was sent), kept by the new slot otherwise.
    place: Option<Arc<SlotBudget>>,
}

impl SendFd {
    /// Sends `fd` to `ring`, whose budget the caller took a place in.
    pub(crate) fn new(
        fd: &SharedFd,
        ring: RawFd,
        place: Arc<SlotBudget>,
        orphan: Box<dyn FnOnce(u32)>,
    ) -> Self {
        SendFd {
            fd: fd.clone(),
            ring,
            orphan: Some(orphan),
            place: Some(place),
        }
    }

    /// The place now belongs to a slot in the target (or, after `EOVERFLOW`, to a slot nobody
    /// knows, which stays until the target's table goes).
    fn keep_place(&mut self, res: &io::Result<u32>) {
        let placed = match res {
            Ok(_) => true,
            Err(e) => e.raw_os_error() == Some(libc::EOVERFLOW),
        };
        if placed {
            self.place = None;
        }
    }
}

impl Drop for SendFd {
    fn drop(&mut self) {
        if let Some(place) = self.place.take() {
            place.give_back();
        }
    }
}

// SAFETY: no pointers; the source slot is kept by the SharedFd, the target ring fd by the caller.
unsafe impl OpCode for SendFd {
    type Output = io::Result<u32>;

    fn uring_entry(&mut self) -> Option<Entry> {
        // Only a slot of this ring's table: anything else takes the plan path, which refuses.
        let (fd, fixed) = super::sqe_fd(&self.fd);
        fixed.contains(squeue::Flags::FIXED_FILE).then(|| {
            opcode::MsgRingSendFd::new(
                types::Fd(self.ring),
                types::Fixed(fd.0 as u32),
                types::DestinationSlot::auto_target(),
                crate::driver::MESSAGE_USER_DATA,
            )
            .build()
        })
    }

    fn plan(&self) -> Plan {
        Plan::Now
    }

    fn perform(&mut self) -> io::Result<u32> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "hoop: a direct descriptor moves between rings only through MSG_RING",
        ))
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn complete(mut self, result: io::Result<u32>) -> io::Result<u32> {
        self.keep_place(&result);
        result
    }

    fn orphaned(&mut self, res: i32, _flags: u32) {
        let result = if res < 0 {
            Err(io::Error::from_raw_os_error(res.wrapping_neg()))
        } else {
            Ok(res as u32)
        };
        self.keep_place(&result);
        if let (true, Some(close)) = (res >= 0, self.orphan.take()) {
            // The target adopts the slot and closes it, which gives the place back.
            close(res as u32);
        }
    }
}

super::opaque_debug!(SendFd);
