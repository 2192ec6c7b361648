//! `IORING_OP_POLL_ADD`: wait until a foreign fd is readable, writable or in error; single-shot
//! or multishot.

use super::{Interest, MultishotOp, OpCode, OpTraits, Plan};
use crate::fd::SharedFd;
use io_uring::{opcode, squeue::Entry, types};
use std::io;
use std::os::fd::RawFd;

/// The readiness a poll reported (`poll(2)` revents).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready(u32);

impl Ready {
    /// The raw `poll(2)` event bits.
    pub fn bits(self) -> u32 {
        self.0
    }
    /// Data can be read (or the peer hung up).
    pub fn is_readable(self) -> bool {
        self.0 & (libc::POLLIN | libc::POLLRDHUP | libc::POLLHUP) as u32 != 0
    }
    /// Data can be written.
    pub fn is_writable(self) -> bool {
        self.0 & libc::POLLOUT as u32 != 0
    }
    /// The fd is in error.
    pub fn is_error(self) -> bool {
        self.0 & libc::POLLERR as u32 != 0
    }
    /// The peer hung up.
    pub fn is_hangup(self) -> bool {
        self.0 & libc::POLLHUP as u32 != 0
    }
}

/// Waits for `interest` on a raw fd the caller keeps open.
#[derive(Debug)]
pub struct PollAdd {
    fd: RawFd,
    interest: Interest,
    multi: bool,
    /// Set once a readiness was yielded: an `EINVAL` after that is the fd's own.
    yielded: bool,
}

impl PollAdd {
    /// A single-shot poll.
    pub fn new(fd: RawFd, interest: Interest) -> Self {
        PollAdd {
            fd,
            interest,
            multi: false,
            yielded: false,
        }
    }

    /// A multishot poll (one completion per readiness change) for [`MultiOp`](super::MultiOp).
    /// On a kernel without it (before 5.13, which refuses it with `EINVAL`) each readiness is
    /// one single-shot poll, re-armed by the stream.
    pub fn multishot(fd: RawFd, interest: Interest) -> Self {
        PollAdd {
            fd,
            interest,
            multi: true,
            yielded: false,
        }
    }
}

// SAFETY: the SQE carries no pointers; `perform` calls poll(2) on a live local pollfd.
unsafe impl OpCode for PollAdd {
    type Output = io::Result<Ready>;

    fn uring_entry(&mut self) -> Option<Entry> {
        Some(
            opcode::PollAdd::new(types::Fd(self.fd), self.interest.poll_mask())
                .multi(self.multi)
                .build(),
        )
    }

    fn plan(&self) -> Plan {
        Plan::Readiness {
            fd: self.fd,
            interest: self.interest,
        }
    }

    fn traits(&self) -> OpTraits {
        OpTraits::NONE.multishot(self.multi)
    }

    fn perform(&mut self) -> io::Result<u32> {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: self.interest.poll_mask() as libc::c_short,
            revents: 0,
        };
        // SAFETY: one live, initialised pollfd; zero timeout, so it never blocks.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if pfd.revents & libc::POLLNVAL != 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(pfd.revents as u16 as u32)
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<Ready> {
        result.map(Ready)
    }
}

// SAFETY: as for `OpCode`; the SQE has no pointers, so every arming stays valid.
unsafe impl MultishotOp for PollAdd {
    type Item = io::Result<Ready>;

    fn item(&mut self, res: io::Result<u32>, _flags: u32) -> io::Result<Ready> {
        self.yielded |= res.is_ok();
        res.map(Ready)
    }

    fn after_final(&mut self, res: i32) -> super::AfterFinal {
        match res {
            r if r == -libc::EINVAL && self.multi && !self.yielded => {
                tracing::debug!(target: "hoop", "multishot poll refused (EINVAL); single-shot polls");
                self.multi = false;
                super::AfterFinal::Rearm
            }
            r if r >= 0 => super::AfterFinal::YieldRearm,
            r if r == -libc::ECANCELED => super::AfterFinal::End,
            _ => super::AfterFinal::YieldEnd,
        }
    }
}

/// Waits until a hoop-owned socket has data (or is closed or in error) without reading it:
/// `POLL_ADD` on io_uring, readiness on epoll. A receive that must not hold a buffer while
/// its socket is idle waits here first (`io::RecvStream` on an unregistered buffer ring).
pub struct Readable {
    fd: SharedFd,
    /// The first attempt checks the socket (`poll(2)`); after a readiness event the socket is
    /// taken as readable, and a receive that finds nothing waits here again.
    checked: bool,
}

impl Readable {
    /// Waits for `fd` to be readable.
    pub fn new(fd: &SharedFd) -> Self {
        Readable {
            fd: fd.clone(),
            checked: false,
        }
    }
}

// SAFETY: the SQE carries no pointers; `perform` calls poll(2) on a live local pollfd; the fd
// is kept open by `SharedFd`.
unsafe impl OpCode for Readable {
    type Output = io::Result<()>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let (fd, fixed) = super::sqe_fd(&self.fd);
        let mask = Interest::READABLE.poll_mask();
        Some(opcode::PollAdd::new(fd, mask).build().flags(fixed))
    }

    fn plan(&self) -> Plan {
        Plan::Readiness {
            fd: self.fd.raw(),
            interest: Interest::READABLE,
        }
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn perform(&mut self) -> io::Result<u32> {
        if std::mem::replace(&mut self.checked, true) {
            // Woken by an event on the fd since the check.
            return Ok(0);
        }
        let mut pfd = libc::pollfd {
            fd: self.fd.raw(),
            events: Interest::READABLE.poll_mask() as libc::c_short,
            revents: 0,
        };
        // SAFETY: one live, initialised pollfd; zero timeout, so it never blocks.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        match n {
            n if n < 0 => Err(io::Error::last_os_error()),
            0 => Err(io::ErrorKind::WouldBlock.into()),
            _ => Ok(0),
        }
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

super::opaque_debug!(Readable);
