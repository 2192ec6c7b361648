//! `IORING_OP_SENDMSG` / `IORING_OP_RECVMSG` with one buffer and an address: datagram
//! `send_to` / `recv_from`.

use super::cvt;
use super::msghdr::MsgParts;
use super::sockaddr::AddrSlot;
use super::{Interest, OpCode, Plan};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::fd::SharedFd;
use io_uring::{opcode, squeue::Entry, types};
use socket2::SockAddr;
use std::io;

/// Sends a buffer's initialised bytes to `addr` (`sendmsg(2)`, `MSG_NOSIGNAL` added).
pub struct SendTo<B> {
    fd: SharedFd,
    buf: B,
    addr: Box<SockAddr>,
    parts: Box<MsgParts>,
}

impl<B: IoBuf> SendTo<B> {
    /// Sends `buf` on `fd` to `addr`.
    pub fn new(fd: &SharedFd, buf: B, addr: SockAddr) -> Self {
        let addr = Box::new(addr);
        let mut parts = MsgParts::new(buf.stable_ptr() as *mut u8, buf.bytes_init(), 0);
        parts.set_name(addr.as_ptr() as *mut libc::c_void, addr.len());
        SendTo {
            fd: fd.clone(),
            buf,
            addr,
            parts,
        }
    }
}

// SAFETY: the msghdr, its iovec and the address are boxed in the op; the iovec points at the owned
// buffer's stable memory.
unsafe impl<B: IoBuf> OpCode for SendTo<B> {
    type Output = BufResult<usize, B>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let _ = &self.addr;
        Some(
            opcode::SendMsg::new(types::Fd(self.fd.raw()), &self.parts.hdr)
                .flags(libc::MSG_NOSIGNAL as u32)
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
        // SAFETY: a valid msghdr whose pointers are owned by the op.
        cvt(unsafe {
            libc::sendmsg(
                self.fd.raw(),
                &self.parts.hdr,
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        } as libc::c_long)
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn complete(self, result: io::Result<u32>) -> BufResult<usize, B> {
        (result.map(|n| n as usize), self.buf)
    }
}

/// Receives one datagram into a buffer and reports its sender (`recvmsg(2)`).
pub struct RecvFrom<B> {
    fd: SharedFd,
    buf: B,
    addr: Box<AddrSlot>,
    parts: Box<MsgParts>,
}

impl<B: IoBufMut> RecvFrom<B> {
    /// Receives into `buf` from `fd`.
    pub fn new(fd: &SharedFd, mut buf: B) -> Self {
        let mut addr = AddrSlot::new();
        let mut parts = MsgParts::new(buf.stable_mut_ptr(), buf.bytes_total(), 0);
        // SAFETY: `len_ptr` points into `addr`, a live box `AddrSlot::new` initialised; no SQE
        // exists yet, so nothing else writes it.
        let len = unsafe { *addr.len_ptr() };
        parts.set_name(addr.ptr().cast(), len);
        RecvFrom {
            fd: fd.clone(),
            buf,
            addr,
            parts,
        }
    }
}

// SAFETY: as for `SendTo`; the kernel writes into the owned buffer and the boxed address slot.
unsafe impl<B: IoBufMut> OpCode for RecvFrom<B> {
    type Output = (io::Result<(usize, SockAddr)>, B);

    fn uring_entry(&mut self) -> Option<Entry> {
        Some(opcode::RecvMsg::new(types::Fd(self.fd.raw()), &mut self.parts.hdr).build())
    }

    fn plan(&self) -> Plan {
        Plan::Readiness {
            fd: self.fd.raw(),
            interest: Interest::READABLE,
        }
    }

    fn perform(&mut self) -> io::Result<u32> {
        // SAFETY: a valid msghdr whose pointers are owned by the op.
        cvt(
            unsafe { libc::recvmsg(self.fd.raw(), &mut self.parts.hdr, libc::MSG_DONTWAIT) }
                as libc::c_long,
        )
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn complete(mut self, result: io::Result<u32>) -> (io::Result<(usize, SockAddr)>, B) {
        match result {
            Ok(n) => {
                // SAFETY: the kernel wrote `n` bytes from the buffer's start.
                let n = unsafe { crate::buf::mark_filled(&mut self.buf, n) };
                self.addr.set_len(self.parts.hdr.msg_namelen);
                let addr = self.addr.addr();
                (Ok((n, addr)), self.buf)
            }
            Err(e) => (Err(e), self.buf),
        }
    }
}

super::opaque_debug!(SendTo<B>, RecvFrom<B>);
