//! `IORING_OP_READV` / `IORING_OP_WRITEV`: positioned scatter/gather I/O over owned buffers.

use super::cvt;
use super::rw::{FdKind, CURRENT_POSITION};
use super::{Interest, OpCode, OpTraits, Plan};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::fd::SharedFd;
use io_uring::{opcode, squeue::Entry};
use std::io;

/// `preadv(2)` into several owned buffers, each filled up to its capacity in turn.
pub struct Readv<B> {
    fd: SharedFd,
    bufs: Vec<B>,
    /// Points into `bufs`' heap allocations; the Vec itself lives in the boxed op.
    iovecs: Vec<libc::iovec>,
    offset: u64,
    kind: FdKind,
}

impl<B: IoBufMut> Readv<B> {
    /// Reads at `offset` (or [`CURRENT_POSITION`]) into `bufs`.
    pub fn new(fd: &SharedFd, mut bufs: Vec<B>, offset: u64, kind: FdKind) -> Self {
        let iovecs = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.stable_mut_ptr().cast(),
                iov_len: b.bytes_total(),
            })
            .collect();
        Readv {
            fd: fd.clone(),
            bufs,
            iovecs,
            offset,
            kind,
        }
    }
}

fn plan_for(fd: &SharedFd, kind: FdKind, interest: Interest) -> Plan {
    match kind {
        FdKind::Stream => Plan::Readiness {
            fd: fd.raw(),
            interest,
        },
        FdKind::File => Plan::Blocking,
    }
}

// SAFETY: the SQE and `perform` point at `iovecs` (a heap Vec in the op) whose entries point at
// the owned buffers' stable heap memory, within their capacities.
unsafe impl<B: IoBufMut> OpCode for Readv<B> {
    type Output = BufResult<usize, Vec<B>>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let (fd, fixed) = super::sqe_fd(&self.fd);
        Some(
            opcode::Readv::new(fd, self.iovecs.as_ptr(), self.iovecs.len() as u32)
                .offset(self.offset)
                .build()
                .flags(fixed),
        )
    }

    fn plan(&self) -> Plan {
        plan_for(&self.fd, self.kind, Interest::READABLE)
    }

    fn traits(&self) -> OpTraits {
        OpTraits::NONE
            .repeatable(self.kind == FdKind::File && self.offset != CURRENT_POSITION)
            .device_io(self.kind == FdKind::File && self.fd.is_o_direct())
    }

    fn perform(&mut self) -> io::Result<u32> {
        let (fd, iov, cnt) = (
            self.fd.raw(),
            self.iovecs.as_ptr(),
            self.iovecs.len() as i32,
        );
        // SAFETY: `cnt` iovecs describing writable memory of the owned buffers.
        cvt(unsafe {
            if self.offset == CURRENT_POSITION {
                libc::readv(fd, iov, cnt)
            } else {
                libc::preadv(fd, iov, cnt, self.offset as i64)
            }
        } as libc::c_long)
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn complete(mut self, result: io::Result<u32>) -> BufResult<usize, Vec<B>> {
        match result {
            Ok(n) => {
                let mut left = n as usize;
                let mut total = 0;
                for b in &mut self.bufs {
                    let filled = left.min(b.bytes_total());
                    // SAFETY: the kernel filled the iovecs in order; this buffer got `filled`
                    // bytes from its start.
                    unsafe { b.set_init(filled) };
                    left -= filled;
                    total += filled;
                }
                debug_assert_eq!(left, 0, "a readv reported more than its buffers hold");
                // Never more than the buffers hold, whatever the kernel said.
                (Ok(total), self.bufs)
            }
            Err(e) => (Err(e), self.bufs),
        }
    }
}

/// `pwritev(2)` of several owned buffers' initialised bytes, in order.
pub struct Writev<B> {
    fd: SharedFd,
    bufs: Vec<B>,
    iovecs: Vec<libc::iovec>,
    offset: u64,
    kind: FdKind,
}

impl<B: IoBuf> Writev<B> {
    /// Writes `bufs` at `offset` (or [`CURRENT_POSITION`]).
    pub fn new(fd: &SharedFd, bufs: Vec<B>, offset: u64, kind: FdKind) -> Self {
        let iovecs = bufs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.stable_ptr() as *mut libc::c_void,
                iov_len: b.bytes_init(),
            })
            .collect();
        Writev {
            fd: fd.clone(),
            bufs,
            iovecs,
            offset,
            kind,
        }
    }
}

// SAFETY: as for `Readv`; the kernel only reads the initialised bytes.
unsafe impl<B: IoBuf> OpCode for Writev<B> {
    type Output = BufResult<usize, Vec<B>>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let (fd, fixed) = super::sqe_fd(&self.fd);
        Some(
            opcode::Writev::new(fd, self.iovecs.as_ptr(), self.iovecs.len() as u32)
                .offset(self.offset)
                .build()
                .flags(fixed),
        )
    }

    fn plan(&self) -> Plan {
        plan_for(&self.fd, self.kind, Interest::WRITABLE)
    }

    fn perform(&mut self) -> io::Result<u32> {
        let (fd, iov, cnt) = (
            self.fd.raw(),
            self.iovecs.as_ptr(),
            self.iovecs.len() as i32,
        );
        // SAFETY: `cnt` iovecs describing initialised memory of the owned buffers.
        cvt(unsafe {
            if self.offset == CURRENT_POSITION {
                libc::writev(fd, iov, cnt)
            } else {
                libc::pwritev(fd, iov, cnt, self.offset as i64)
            }
        } as libc::c_long)
    }

    fn traits(&self) -> OpTraits {
        OpTraits::NONE.device_io(self.kind == FdKind::File && self.fd.is_o_direct())
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn complete(self, result: io::Result<u32>) -> BufResult<usize, Vec<B>> {
        (result.map(|n| n as usize), self.bufs)
    }
}

super::opaque_debug!(Writev<B>, Readv<B>);
