//! A worker ring's table of direct descriptors: registered files (`IORING_REGISTER_FILES2`,
//! sparse: 5.19) that accepts and opens fill when asked to, and that are emptied through the
//! ring (`IORING_OP_CLOSE` of the slot) when their last holder goes.
//!
//! Registered on first use, so a runtime that never asks for a direct descriptor pays nothing.
//! Its size is `Builder::direct_descriptors`, capped by `RLIMIT_NOFILE` (the kernel refuses a
//! larger table with `EMFILE`). The kernel picks the slots (`IORING_FILE_INDEX_ALLOC`) from
//! `RESERVED..size` (`IORING_REGISTER_FILE_ALLOC_RANGE`, 6.0): the first `RESERVED` slots are
//! kept out of its reach for operations that must name a slot before it is filled (a linked
//! chain's later members). Where the range cannot be set the table is not used at all, so every
//! kernel that gives direct descriptors gives them the same way.

use super::old_kernel::{lacks, refused, since};
use crate::fd::{Closing, DirectTable, SlotBudget};
use io_uring::IoUring;
use std::any::Any;
use std::cell::RefCell;
use std::io;
use std::os::fd::AsRawFd;
use std::rc::{Rc, Weak};
use std::sync::Arc;

/// Slots below the kernel's allocation range.
pub(crate) const RESERVED: u32 = 64;
/// Slots never promised, so that closes still queued (their slot not yet free in the kernel)
/// cannot make an allocation fail.
const SLACK: u32 = 64;
/// The smallest table worth registering.
const MIN_SIZE: u32 = RESERVED + SLACK + 64;

enum State {
    Unregistered,
    Registered {
        budget: Arc<SlotBudget>,
    },
    /// The kernel, the ring's restrictions or the fd limit refused it: no direct descriptors.
    Unsupported,
}

pub(crate) struct DirectSlots {
    state: State,
    /// Slots to close with the next submission (filled by `SharedFd`'s drop).
    closing: Rc<RefCell<Vec<Closing>>>,
    reserved: Rc<RefCell<Vec<u32>>>,
}

impl DirectSlots {
    pub(crate) fn new() -> Self {
        DirectSlots {
            state: State::Unregistered,
            closing: Rc::new(RefCell::new(Vec::new())),
            // Popped from the end: slot 0 first.
            reserved: Rc::new(RefCell::new((0..RESERVED).rev().collect())),
        }
    }

    /// Registers the table if it is not yet; false where it cannot be.
    pub(crate) fn ensure(&mut self, ring: &IoUring, wanted: u32) -> bool {
        if let State::Unregistered = self.state {
            self.state = match register(ring, wanted) {
                Ok(capacity) => State::Registered {
                    budget: Arc::new(SlotBudget::new(capacity)),
                },
                Err(e) => {
                    tracing::debug!(target: "hoop", error = %e, "no direct descriptors: plain fds");
                    State::Unsupported
                }
            };
        }
        matches!(self.state, State::Registered { .. })
    }

    /// The table, registered now if it is not yet; `None` where it cannot be.
    pub(crate) fn table(
        &mut self,
        ring: &IoUring,
        wanted: u32,
        owner: Weak<dyn Any>,
    ) -> Option<DirectTable> {
        self.ensure(ring, wanted);
        let State::Registered { budget } = &self.state else {
            return None;
        };
        Some(DirectTable {
            closing: self.closing.clone(),
            owner,
            budget: budget.clone(),
            reserved: self.reserved.clone(),
            reserved_below: RESERVED,
        })
    }

    /// The budget of the registered table (for other workers, which reserve before they send).
    pub(crate) fn budget(&self) -> Option<Arc<SlotBudget>> {
        match &self.state {
            State::Registered { budget } => Some(budget.clone()),
            _ => None,
        }
    }

    /// Empties the table at the end of the driver: every descriptor still in it closes (the
    /// ring itself may outlive the driver, kept open by other workers' copies of its fd).
    pub(crate) fn release(&mut self, ring: &IoUring) {
        if let State::Registered { .. } = self.state {
            if let Err(e) = ring.submitter().unregister_files() {
                tracing::debug!(target: "hoop", error = %e, "direct descriptors not released");
            }
        }
        self.state = State::Unsupported;
    }

    /// A slot's close completed (whatever its result: the slot is empty): its place is free.
    pub(crate) fn closed(&self) {
        if let State::Registered { budget } = &self.state {
            budget.give_back();
        }
    }

    /// True if no dropped slot waits for its close to be queued.
    pub(crate) fn nothing_closing(&self) -> bool {
        self.closing.borrow().is_empty()
    }

    /// The slots whose descriptors were dropped since the last call.
    pub(crate) fn take_closing(&self) -> Vec<Closing> {
        if self.closing.borrow().is_empty() {
            return Vec::new();
        }
        std::mem::take(&mut *self.closing.borrow_mut())
    }
}

/// Registers a sparse table of `wanted` slots (capped by the fd limit) with the allocation range
/// above the reserved slots; returns how many slots operations may be promised.
fn register(ring: &IoUring, wanted: u32) -> io::Result<u32> {
    if lacks(since::FILE_ALLOC_RANGE) {
        return Err(refused());
    }
    let size = wanted.min(nofile_limit());
    if size < MIN_SIZE {
        return Err(io::Error::from_raw_os_error(libc::EMFILE));
    }
    ring.submitter().register_files_sparse(size)?;
    let range = FileIndexRange {
        off: RESERVED,
        len: size - RESERVED,
        resv: 0,
    };
    // SAFETY: IORING_REGISTER_FILE_ALLOC_RANGE reads one `io_uring_file_index_range` from the
    // pointer, which is valid for the call; the ring fd is open while `ring` lives.
    let res = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring.as_raw_fd(),
            REGISTER_FILE_ALLOC_RANGE,
            &range as *const FileIndexRange,
            0,
        )
    };
    if res < 0 {
        let e = io::Error::last_os_error();
        let _ = ring.submitter().unregister_files();
        return Err(e);
    }
    Ok(size - RESERVED - SLACK)
}

/// `IORING_REGISTER_FILE_ALLOC_RANGE` (the io-uring crate has no call for it).
const REGISTER_FILE_ALLOC_RANGE: libc::c_long = 25;

/// `struct io_uring_file_index_range`.
#[repr(C)]
struct FileIndexRange {
    off: u32,
    len: u32,
    resv: u64,
}

/// The soft `RLIMIT_NOFILE`: the kernel refuses a larger table.
fn nofile_limit() -> u32 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    lim.rlim_cur.min(u32::MAX as u64) as u32
}
