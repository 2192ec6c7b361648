//! `IORING_OP_SPLICE`: move bytes between a file or socket and a pipe inside the kernel.

use super::cvt;
use super::{Interest, OpCode, Plan};
use crate::fd::SharedFd;
use io_uring::{opcode, squeue::Entry, types};
use std::io;
use std::os::fd::RawFd;

/// `splice(2)` of up to `len` bytes from `fd_in` to `fd_out` (one of them a pipe).
pub struct Splice {
    /// Keep the fds open while the kernel or a pool thread uses the raw numbers below.
    _fd_in: SharedFd,
    off_in: Option<u64>,
    fd_out: SharedFd,
    raw_in: RawFd,
    raw_out: RawFd,
    len: u32,
    flags: u32,
    plan: Plan,
}

impl Splice {
    /// From a file at `offset` into a pipe; on the epoll driver this runs on the blocking pool
    /// (a page-cache miss blocks). Into a full pipe this waits for room if the pipe is a
    /// blocking one, and fails with `WouldBlock` if it is non-blocking (as hoop's
    /// [`pipe`](crate::io::pipe) is): wait with [`wait_ready`](crate::io::wait_ready) and retry.
    pub fn file_to_pipe(file: &SharedFd, offset: u64, pipe_in: &SharedFd, len: u32) -> Self {
        Splice {
            raw_in: file.raw(),
            raw_out: pipe_in.raw(),
            _fd_in: file.clone(),
            off_in: Some(offset),
            fd_out: pipe_in.clone(),
            len,
            flags: libc::SPLICE_F_MOVE,
            plan: Plan::Blocking,
        }
    }

    /// From a pipe into a (non-blocking) socket, waiting for the socket to be writable. Out of
    /// an empty pipe it fails with `WouldBlock` (the pipe side never waits, blocking pipe or
    /// not: it is spliced with `SPLICE_F_NONBLOCK`); at the pipe's end of file it returns 0.
    pub fn pipe_to_socket(pipe_out: &SharedFd, socket: &SharedFd, len: u32) -> Self {
        Splice {
            raw_in: pipe_out.raw(),
            raw_out: socket.raw(),
            _fd_in: pipe_out.clone(),
            off_in: None,
            fd_out: socket.clone(),
            len,
            flags: libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            plan: Plan::Readiness {
                fd: socket.raw(),
                interest: Interest::WRITABLE,
            },
        }
    }
}

// SAFETY: no pointers in the SQE; `perform` passes a pointer to the op's own offset copy. Both
// fds are kept open by their `SharedFd`s.
unsafe impl OpCode for Splice {
    type Output = io::Result<usize>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let off_in = self.off_in.map_or(-1, |o| o as i64);
        Some(
            opcode::Splice::new(
                types::Fd(self.raw_in),
                off_in,
                types::Fd(self.raw_out),
                -1,
                self.len,
            )
            .flags(self.flags)
            .build(),
        )
    }

    fn plan(&self) -> Plan {
        self.plan
    }

    fn perform(&mut self) -> io::Result<u32> {
        let mut off = self.off_in.map(|o| o as i64);
        let off_ptr = off.as_mut().map_or(std::ptr::null_mut(), |o| o as *mut i64);
        // SAFETY: `off_ptr` is null or points at a local i64; the fds are open.
        cvt(unsafe {
            libc::splice(
                self.raw_in,
                off_ptr,
                self.raw_out,
                std::ptr::null_mut(),
                self.len as usize,
                self.flags,
            )
        } as libc::c_long)
    }

    fn wait_for(&self) -> Option<(RawFd, Interest)> {
        // `EAGAIN` from a pipe-to-socket splice means a full socket or an empty pipe: waiting for
        // the socket only helps in the first case (in the second it would spin).
        match self.plan {
            Plan::Readiness { fd, interest } if readable_now(self.raw_in) => Some((fd, interest)),
            _ => None,
        }
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        match self.plan {
            Plan::Readiness { .. } => Some(&self.fd_out),
            _ => None,
        }
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<usize> {
        result.map(|n| n as usize)
    }
}

/// Whether `fd` has data (or a hang-up) to read right now.
fn readable_now(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live, writable pollfd; a zero timeout never sleeps.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & (libc::POLLIN | libc::POLLHUP) != 0
}

super::opaque_debug!(Splice);
