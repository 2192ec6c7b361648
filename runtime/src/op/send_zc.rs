//! Zero-copy sends: `IORING_OP_SEND_ZC` (6.0) and `IORING_OP_SENDMSG_ZC` (6.1).
//!
//! The kernel posts two completions: the send's result (flagged `F_MORE`) and, once the network
//! stack no longer references the user pages, a notification (`F_NOTIF`). Only then may the
//! buffer be reused, so the operation — and the buffer it owns — ends at the notification, also
//! when its future is dropped. Where the kernel lacks the opcode and on the epoll driver these
//! are plain (copying) sends with the same results.

use super::cvt;
use super::msghdr::MsgParts;
use super::{Interest, OpCode, Plan};
use crate::buf::{BufResult, IoBuf};
use crate::fd::SharedFd;
use io_uring::{cqueue, opcode, squeue::Entry, types};
use socket2::SockAddr;
use std::io;

/// The send result carried by the first completion, kept until the notification ends the op.
#[derive(Default)]
struct Result2 {
    sent: Option<io::Result<u32>>,
}

impl Result2 {
    fn record(&mut self, res: i32, flags: u32) {
        if !cqueue::notif(flags) {
            self.sent = Some(if res < 0 {
                Err(io::Error::from_raw_os_error(-res))
            } else {
                Ok(res as u32)
            });
        }
    }

    /// The send's result: the first completion's if there were two, else the only one.
    fn finish(&mut self, last: io::Result<u32>) -> io::Result<u32> {
        self.sent.take().unwrap_or(last)
    }
}

/// `send(2)` without copying the buffer into the kernel (`MSG_NOSIGNAL` added).
pub struct SendZc<B> {
    fd: SharedFd,
    buf: B,
    result: Result2,
}

impl<B: IoBuf> SendZc<B> {
    /// Sends `buf`'s initialised bytes on `fd`.
    pub fn new(fd: &SharedFd, buf: B) -> Self {
        SendZc {
            fd: fd.clone(),
            buf,
            result: Result2::default(),
        }
    }
}

// SAFETY: the SQE points at the owned buffer's stable memory, which the op keeps until the final
// completion — the notification that the kernel released the pages.
unsafe impl<B: IoBuf> OpCode for SendZc<B> {
    type Output = BufResult<usize, B>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let len = self.buf.bytes_init().min(u32::MAX as usize) as u32;
        Some(
            opcode::SendZc::new(types::Fd(self.fd.raw()), self.buf.stable_ptr(), len)
                .flags(libc::MSG_NOSIGNAL)
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
        let len = self.buf.bytes_init().min(u32::MAX as usize);
        // SAFETY: `len` initialised bytes of the owned buffer.
        cvt(unsafe {
            libc::send(
                self.fd.raw(),
                self.buf.stable_ptr().cast(),
                len,
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        } as libc::c_long)
    }

    fn more(&mut self, res: i32, flags: u32) {
        self.result.record(res, flags);
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn complete(mut self, result: io::Result<u32>) -> BufResult<usize, B> {
        (self.result.finish(result).map(|n| n as usize), self.buf)
    }
}

/// `sendmsg(2)` of one buffer to an address without copying it (datagrams; `MSG_NOSIGNAL`).
pub struct SendToZc<B> {
    fd: SharedFd,
    buf: B,
    addr: Box<SockAddr>,
    parts: Box<MsgParts>,
    result: Result2,
}

impl<B: IoBuf> SendToZc<B> {
    /// Sends `buf` on `fd` to `addr`.
    pub fn new(fd: &SharedFd, buf: B, addr: SockAddr) -> Self {
        let addr = Box::new(addr);
        let mut parts = MsgParts::new(buf.stable_ptr() as *mut u8, buf.bytes_init(), 0);
        parts.set_name(addr.as_ptr() as *mut libc::c_void, addr.len());
        SendToZc {
            fd: fd.clone(),
            buf,
            addr,
            parts,
            result: Result2::default(),
        }
    }
}

// SAFETY: the msghdr, its iovec and the address are boxed in the op; the iovec points at the owned
// buffer, kept until the notification.
unsafe impl<B: IoBuf> OpCode for SendToZc<B> {
    type Output = BufResult<usize, B>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let _ = &self.addr;
        Some(
            opcode::SendMsgZc::new(types::Fd(self.fd.raw()), &self.parts.hdr)
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

    fn more(&mut self, res: i32, flags: u32) {
        self.result.record(res, flags);
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn complete(mut self, result: io::Result<u32>) -> BufResult<usize, B> {
        (self.result.finish(result).map(|n| n as usize), self.buf)
    }
}

super::opaque_debug!(SendToZc<B>, SendZc<B>);
