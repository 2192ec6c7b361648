//! `IORING_OP_ACCEPT`, single-shot and multishot: take connections from a listening socket.

use super::sockaddr::AddrSlot;
use super::{close_orphan_fd, Interest, MultishotOp, OpCode, OpTraits, Plan};
use crate::fd::{SharedFd, SlotReservation};
use io_uring::{opcode, squeue::Entry, types};
use socket2::SockAddr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// Flags of every accepted socket: close-on-exec, and non-blocking so that the same socket works
/// on both drivers.
const ACCEPT_FLAGS: i32 = libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;

fn adopt(fd: u32) -> SharedFd {
    // SAFETY: a successful accept returns a new fd that nobody else owns.
    SharedFd::new(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Accepts one connection and its peer address. An fd accepted after the future was dropped is
/// closed.
pub struct Accept {
    listener: SharedFd,
    /// Where the kernel writes the peer address; boxed so it stays put.
    addr: Box<AddrSlot>,
    /// A slot of the worker's table promised to this accept ([`Accept::direct`]).
    slot: Option<SlotReservation>,
    /// `perform` made the accept (the ring lacked the opcode): its result is a plain fd.
    performed: bool,
}

impl Accept {
    /// Accepts on `listener`.
    pub fn new(listener: &SharedFd) -> Self {
        Accept {
            listener: listener.clone(),
            addr: AddrSlot::new(),
            slot: None,
            performed: false,
        }
    }

    /// Accepts on `listener` into a direct descriptor of this worker's ring (see
    /// [`SharedFd::direct_slot`]): the connection never enters the process's fd table, and
    /// operations on it skip the fd lookup. A plain fd where this worker has no table (epoll,
    /// Linux before 6.0, a restricted ring, `Builder::direct_descriptors(0)`) or the table is
    /// full.
    pub fn direct(listener: &SharedFd) -> Self {
        let mut op = Accept::new(listener);
        op.slot = crate::driver::direct_table().and_then(|t| t.reserve());
        op
    }
}

// SAFETY: the SQE and `perform` point at `self.addr` (a heap box the op owns); the listener fd is
// kept open by the SharedFd.
unsafe impl OpCode for Accept {
    type Output = io::Result<(SharedFd, SockAddr)>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let (addr, len) = (self.addr.ptr(), self.addr.len_ptr());
        let accept = opcode::Accept::new(types::Fd(self.listener.raw()), addr, len);
        Some(match self.slot {
            // Only the ring uses a direct descriptor: it need not be non-blocking, and it has no
            // fd to close on exec (the kernel refuses SOCK_CLOEXEC with a slot: EINVAL).
            Some(_) => accept
                .file_index(Some(types::DestinationSlot::auto_target()))
                .build(),
            None => accept.flags(ACCEPT_FLAGS).build(),
        })
    }

    fn plan(&self) -> Plan {
        Plan::Readiness {
            fd: self.listener.raw(),
            interest: Interest::READABLE,
        }
    }

    fn perform(&mut self) -> io::Result<u32> {
        self.performed = true;
        let (addr, len) = (self.addr.ptr(), self.addr.len_ptr());
        // SAFETY: a live, writable address buffer and its length.
        let fd = unsafe { libc::accept4(self.listener.raw(), addr, len, ACCEPT_FLAGS) };
        super::cvt(fd as libc::c_long)
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.listener)
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<(SharedFd, SockAddr)> {
        let res = result?;
        let fd = match self.slot {
            Some(slot) if !self.performed => slot.fill(res),
            _ => adopt(res),
        };
        Ok((fd, self.addr.addr()))
    }

    fn orphaned(&mut self, res: i32, _flags: u32) {
        match self.slot.take() {
            // Owned for a moment, so that its drop queues the slot's close.
            Some(slot) if res >= 0 && !self.performed => drop(slot.fill(res as u32)),
            _ => close_orphan_fd(res),
        }
    }
}

/// Multishot accept: one SQE, a completion per connection (no peer address; ask the stream).
/// On a kernel without it (before 5.19, which refuses the flag with `EINVAL`) it arms a
/// single-shot accept per connection instead, with the same stream of results.
pub struct AcceptMulti {
    listener: SharedFd,
    /// Cleared when the kernel refused multishot accept.
    multishot: bool,
    /// Set once a connection was yielded: an `EINVAL` after that is the listener's own.
    yielded: bool,
}

impl AcceptMulti {
    /// Accepts on `listener` until cancelled.
    pub fn new(listener: &SharedFd) -> Self {
        AcceptMulti {
            listener: listener.clone(),
            multishot: true,
            yielded: false,
        }
    }
}

// SAFETY: no pointers in the SQE; the listener fd is kept open by the SharedFd.
unsafe impl OpCode for AcceptMulti {
    type Output = io::Result<SharedFd>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let fd = types::Fd(self.listener.raw());
        Some(if self.multishot {
            opcode::AcceptMulti::new(fd).flags(ACCEPT_FLAGS).build()
        } else {
            opcode::Accept::new(fd, std::ptr::null_mut(), std::ptr::null_mut())
                .flags(ACCEPT_FLAGS)
                .build()
        })
    }

    fn plan(&self) -> Plan {
        Plan::Readiness {
            fd: self.listener.raw(),
            interest: Interest::READABLE,
        }
    }

    fn traits(&self) -> OpTraits {
        OpTraits::NONE.multishot(true)
    }

    fn perform(&mut self) -> io::Result<u32> {
        // SAFETY: null address pointers are allowed; nothing is written.
        let fd = unsafe {
            libc::accept4(
                self.listener.raw(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                ACCEPT_FLAGS,
            )
        };
        super::cvt(fd as libc::c_long)
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.listener)
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<SharedFd> {
        result.map(adopt)
    }

    fn orphaned(&mut self, res: i32, _flags: u32) {
        close_orphan_fd(res);
    }
}

// SAFETY: as for `OpCode`; the SQE has no pointers, so every arming stays valid.
unsafe impl MultishotOp for AcceptMulti {
    type Item = io::Result<SharedFd>;

    fn item(&mut self, res: io::Result<u32>, _flags: u32) -> io::Result<SharedFd> {
        self.yielded |= res.is_ok();
        res.map(adopt)
    }

    fn after_final(&mut self, res: i32) -> super::AfterFinal {
        if res == -libc::EINVAL && self.multishot && !self.yielded {
            tracing::debug!(target: "hoop", "multishot accept refused (EINVAL); single-shot accepts");
            self.multishot = false;
            return super::AfterFinal::Rearm;
        }
        match -res {
            // Transient: out of fds or memory, the connection went away before it was accepted.
            // Report it and re-arm (the caller backs off on EMFILE).
            libc::EMFILE
            | libc::ENFILE
            | libc::ENOMEM
            | libc::ENOBUFS
            | libc::ECONNABORTED
            | libc::EINTR => super::AfterFinal::YieldRearm,
            _ if res >= 0 => super::AfterFinal::YieldRearm,
            libc::ECANCELED => super::AfterFinal::End,
            _ => super::AfterFinal::YieldEnd,
        }
    }
}

super::opaque_debug!(Accept, AcceptMulti);
