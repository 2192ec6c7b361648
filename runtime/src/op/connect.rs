//! `IORING_OP_CONNECT`: connect a socket to an address.

use super::cvt;
use super::{Interest, OpCode, Plan};
use crate::fd::SharedFd;
use io_uring::{opcode, squeue::Entry, types};
use socket2::SockAddr;
use std::io;

/// Connects `fd` to `addr`. On the epoll driver a non-blocking `connect` is repeated when the
/// socket becomes writable: `EALREADY` means still in progress, `EISCONN` means done.
pub struct Connect {
    fd: SharedFd,
    /// Boxed: the kernel reads it after submission.
    addr: Box<SockAddr>,
    started: bool,
}

impl Connect {
    /// Connects `fd` to `addr`.
    pub fn new(fd: &SharedFd, addr: SockAddr) -> Self {
        Connect {
            fd: fd.clone(),
            addr: Box::new(addr),
            started: false,
        }
    }
}

// SAFETY: the SQE and `perform` point at the boxed address; the fd is kept open by the SharedFd.
unsafe impl OpCode for Connect {
    type Output = io::Result<()>;

    fn uring_entry(&mut self) -> Option<Entry> {
        Some(
            opcode::Connect::new(
                types::Fd(self.fd.raw()),
                self.addr.as_ptr().cast(),
                self.addr.len(),
            )
            .build(),
        )
    }

    fn plan(&self) -> Plan {
        Plan::Readiness {
            fd: self.fd.raw(),
            interest: Interest::WRITABLE,
        }
    }

    fn perform(&mut self) -> io::Result<u32> {
        // SAFETY: a live address of the given length.
        let r =
            cvt(
                unsafe { libc::connect(self.fd.raw(), self.addr.as_ptr().cast(), self.addr.len()) }
                    as libc::c_long,
            );
        let first = !std::mem::replace(&mut self.started, true);
        match r {
            Err(e) => match e.raw_os_error() {
                Some(libc::EINPROGRESS | libc::EALREADY) => Err(io::ErrorKind::WouldBlock.into()),
                Some(libc::EISCONN) if !first => Ok(0),
                _ => Err(e),
            },
            ok => ok,
        }
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

super::opaque_debug!(Connect);
