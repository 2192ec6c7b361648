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
///
/// The first attempt looks at the socket with a one-byte `recv(MSG_PEEK | MSG_DONTWAIT)`: data,
/// the end of the stream or a socket error count as readable, a non-empty error queue (TX
/// timestamps, zero-copy notifications) does not — `poll(2)` would report it as `POLLERR`, and
/// a receive would then find nothing, again and again. A non-blocking call is never
/// interrupted by a signal. On epoll, an event on the fd after that counts as readable, and a
/// receive that finds nothing waits here again (a false wake-up costs one `recv`). On io_uring
/// the same peek is an `IORING_OP_RECV` with `MSG_PEEK` (not a `POLL_ADD`, which a non-empty
/// error queue keeps ready), which the kernel parks until data comes.
pub struct Readable {
    fd: SharedFd,
    /// The first attempt checked the socket.
    checked: bool,
    /// Where the ring's peek puts its byte (heap: the kernel writes it after this op moved).
    peeked: Box<u8>,
}

impl Readable {
    /// Waits for `fd` to be readable.
    pub fn new(fd: &SharedFd) -> Self {
        Readable {
            fd: fd.clone(),
            checked: false,
            peeked: Box::new(0),
        }
    }
}

// SAFETY: the SQE points at `peeked`, one heap byte the op owns until its final completion;
// `perform` peeks one byte into a live local; the fd is kept open by `SharedFd`.
unsafe impl OpCode for Readable {
    type Output = io::Result<()>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let (fd, fixed) = super::sqe_fd(&self.fd);
        let byte: *mut u8 = &mut *self.peeked;
        Some(
            opcode::Recv::new(fd, byte, 1)
                .flags(libc::MSG_PEEK)
                .build()
                .flags(fixed),
        )
    }

    fn traits(&self) -> OpTraits {
        OpTraits::NONE.ring_equivalent(opcode::Recv::CODE)
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
        let mut byte = 0u8;
        // SAFETY: one byte of a live local; `MSG_PEEK` leaves the data in the socket and
        // `MSG_DONTWAIT` never blocks.
        let n = unsafe {
            libc::recv(
                self.fd.raw(),
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            // Data, or the end of the stream (the receive after this sees it).
            return Ok(0);
        }
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            // Wait for the next event (this attempt counts as the check).
            return Err(e);
        }
        // A socket error: the receive after this reports it.
        Ok(0)
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

super::opaque_debug!(Readable);
