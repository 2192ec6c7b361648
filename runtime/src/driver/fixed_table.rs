//! A worker ring's table of registered buffers (`IORING_REGISTER_BUFFERS2`, sparse: 5.19).
//!
//! The kernel allows one buffer table per ring. Rather than letting the first pool own it, the
//! ring registers an empty sparse table on first use and hands out contiguous ranges of slots,
//! so any number of pools can live on one worker, and a dropped pool's slots are emptied
//! (`IORING_REGISTER_BUFFERS_UPDATE` with null iovecs) and reused.

use io_uring::Submitter;
use std::io;

/// Slots in the sparse table (the kernel's maximum is 16384; the table itself costs 8 bytes a
/// slot, the pinning happens per buffer).
const SLOTS: usize = 4096;

#[derive(Default)]
pub(crate) struct FixedTable {
    /// `None` until the sparse table is registered; `Some(used)` after.
    used: Option<Vec<bool>>,
    /// Set when sparse registration failed (kernel < 5.19): pools stay unregistered.
    unsupported: bool,
}

impl FixedTable {
    /// Registers `iovecs` in free consecutive slots and returns the first slot's index.
    ///
    /// # Safety
    ///
    /// Every iovec must describe memory that stays allocated until [`FixedTable::unregister`] of
    /// the returned range returned `Ok` (or, if it never does, forever).
    pub(crate) unsafe fn register(
        &mut self,
        submitter: &Submitter<'_>,
        iovecs: &[libc::iovec],
    ) -> io::Result<u16> {
        if self.unsupported {
            return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        }
        if self.used.is_none() {
            use super::old_kernel::{lacks, refused, since};
            let res = if lacks(since::SPARSE_BUFFERS) {
                Err(refused())
            } else {
                submitter.register_buffers_sparse(SLOTS as u32)
            };
            if let Err(e) = res {
                self.unsupported = true;
                return Err(e);
            }
            self.used = Some(vec![false; SLOTS]);
        }
        let used = self.used.as_mut().expect("registered above");
        let n = iovecs.len();
        if n == 0 || n > SLOTS {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let base = (0..=SLOTS.saturating_sub(n))
            .find(|&b| used[b..b + n].iter().all(|u| !u))
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOSPC))?;
        // One slot per call: for a batch the kernel reports how many it pinned only when that is
        // not all of them, and the io-uring crate drops that count; a half-registered pool would
        // then fail every fixed read with EFAULT. Pools are made rarely; correctness wins.
        for (i, iov) in iovecs.iter().enumerate() {
            // SAFETY: the caller keeps the memory alive until the slots are emptied again.
            let res = unsafe {
                submitter.register_buffers_update(
                    (base + i) as u32,
                    std::slice::from_ref(iov),
                    None,
                )
            };
            if let Err(e) = res {
                // Undo the slots already filled; the caller then keeps the buffers unregistered.
                let _ = self.unregister(submitter, base as u16, i);
                return Err(e);
            }
        }
        let used = self.used.as_mut().expect("registered above");
        used[base..base + n].iter_mut().for_each(|u| *u = true);
        Ok(base as u16)
    }

    /// Empties `n` slots from `base`; after `Ok`, the kernel no longer refers to their memory
    /// for new requests (requests in flight hold their own reference to the pinned pages).
    pub(crate) fn unregister(
        &mut self,
        submitter: &Submitter<'_>,
        base: u16,
        n: usize,
    ) -> io::Result<()> {
        let empty = vec![
            libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            };
            n
        ];
        // SAFETY: null iovecs describe no memory; the kernel clears the slots.
        unsafe { submitter.register_buffers_update(base as u32, &empty, None)? };
        if let Some(used) = self.used.as_mut() {
            let base = base as usize;
            used[base..base + n].iter_mut().for_each(|u| *u = false);
        }
        Ok(())
    }
}
