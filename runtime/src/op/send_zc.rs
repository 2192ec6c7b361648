//! Zero-copy sends: `IORING_OP_SEND_ZC` (6.0) and `IORING_OP_SENDMSG_ZC` (6.1).
//!
//! The kernel posts two completions: the send's result (flagged `F_MORE`) and, once the network
//! stack no longer references the user pages, a notification (`F_NOTIF`). Only then may the
//! buffer be reused, so the operation — and the buffer it owns — ends at the notification, also
//! when its future is dropped. Where the kernel lacks the opcode and on the epoll driver these
//! are plain (copying) sends with the same results.

use super::cvt;
use super::msghdr::MsgParts;
use super::{Interest, OpCode, OpTraits, Plan};
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
    /// Ask the kernel whether it copied after all (`IORING_SEND_ZC_REPORT_USAGE`, 6.2).
    report: bool,
}

/// What a zero-copy send with a report gives ([`SendZcReport`]): the bytes sent, and whether
/// the kernel copied them after all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZcSent {
    /// Bytes sent.
    pub bytes: usize,
    /// `Some(true)` if the data was copied: always on loopback and for devices without
    /// scatter-gather, and on the paths that are plain sends (the epoll driver, a kernel
    /// without `SEND_ZC` — before 6.0 —, a Unix socket); `Some(false)` if the kernel sent from
    /// the buffer's pages; `None` where a zero-copy send cannot tell (6.0 and 6.1).
    pub copied: Option<bool>,
}

/// `IORING_SEND_ZC_REPORT_USAGE`, in the SQE's `ioprio`.
const REPORT_USAGE: u16 = 1 << 3;
/// `IORING_NOTIF_USAGE_ZC_COPIED`, in the notification's result.
const USAGE_COPIED: u32 = 1 << 31;

impl<B: IoBuf> SendZc<B> {
    /// Sends `buf`'s initialised bytes on `fd`.
    pub fn new(fd: &SharedFd, buf: B) -> Self {
        SendZc {
            fd: fd.clone(),
            buf,
            result: Result2::default(),
            report: false,
        }
    }

    /// The send's result with whether the kernel copied: `last` is the final completion's,
    /// which after a first completion (`more`) is the notification, carrying the usage bits.
    fn finish(mut self, last: io::Result<u32>) -> (io::Result<ZcSent>, B) {
        let notified = self.result.sent.is_some();
        let copied = match (&last, notified) {
            (Ok(bits), true) => self.report.then_some(bits & USAGE_COPIED != 0),
            // One completion only: a plain send made it (or the send failed).
            (Ok(_), false) => Some(true),
            (Err(_), _) => None,
        };
        let res = self.result.finish(last).map(|n| ZcSent {
            bytes: n as usize,
            copied,
        });
        (res, self.buf)
    }
}

/// A [`SendZc`] that also reports whether the kernel copied the data ([`ZcSent::copied`]).
pub struct SendZcReport<B>(SendZc<B>);

impl<B: IoBuf> SendZcReport<B> {
    /// Sends `buf`'s initialised bytes on `fd`, asking the kernel to report copies (6.2+).
    pub fn new(fd: &SharedFd, buf: B) -> Self {
        let mut op = SendZc::new(fd, buf);
        // Older kernels refuse the flag with EINVAL.
        op.report = crate::driver::kernel_release() >= (6, 2);
        SendZcReport(op)
    }
}

// SAFETY: as for `SendZc`, which it is.
unsafe impl<B: IoBuf> OpCode for SendZcReport<B> {
    type Output = BufResult<ZcSent, B>;

    fn uring_entry(&mut self) -> Option<Entry> {
        self.0.uring_entry()
    }
    fn plan(&self) -> Plan {
        self.0.plan()
    }
    fn perform(&mut self) -> io::Result<u32> {
        self.0.perform()
    }
    fn traits(&self) -> OpTraits {
        self.0.traits()
    }
    fn more(&mut self, res: i32, flags: u32) {
        self.0.more(res, flags)
    }
    fn shared_fd(&self) -> Option<&SharedFd> {
        self.0.shared_fd()
    }
    fn complete(self, result: io::Result<u32>) -> BufResult<ZcSent, B> {
        self.0.finish(result)
    }
}

// SAFETY: the SQE points at the owned buffer's stable memory, which the op keeps until the final
// completion — the notification that the kernel released the pages.
unsafe impl<B: IoBuf> OpCode for SendZc<B> {
    type Output = BufResult<usize, B>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let len = self.buf.bytes_init().min(u32::MAX as usize) as u32;
        let (fd, fixed) = super::sqe_fd(&self.fd);
        Some(
            opcode::SendZc::new(fd, self.buf.stable_ptr(), len)
                .flags(libc::MSG_NOSIGNAL)
                // A registered buffer is named, so the kernel skips pinning its pages.
                .buf_index(self.buf.fixed_index())
                .zc_flags(if self.report { REPORT_USAGE } else { 0 })
                .build()
                .flags(fixed),
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

    fn traits(&self) -> OpTraits {
        OpTraits::NONE.unsupported_falls_back(true)
    }

    fn more(&mut self, res: i32, flags: u32) {
        self.result.record(res, flags);
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn complete(self, result: io::Result<u32>) -> BufResult<usize, B> {
        let (res, buf) = self.finish(result);
        (res.map(|sent| sent.bytes), buf)
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

    fn traits(&self) -> OpTraits {
        OpTraits::NONE.unsupported_falls_back(true)
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

/// `sendmsg(2)` of several buffers in order, without copying them, on a connected socket (a
/// header and a payload in one call, as a file server sends a reply; `MSG_NOSIGNAL`). Like any
/// stream send it may send only part of them.
pub struct SendvZc<B> {
    fd: SharedFd,
    bufs: Vec<B>,
    /// Points into `bufs`' stable memory; a heap array the op keeps.
    iovecs: Vec<libc::iovec>,
    /// Points at `iovecs`; set where the op sits (the driver's heap allocation) before each use.
    hdr: libc::msghdr,
    result: Result2,
}

impl<B: IoBuf> SendvZc<B> {
    /// Sends the initialised bytes of `bufs`, in order, on `fd`.
    pub fn new(fd: &SharedFd, bufs: Vec<B>) -> Self {
        let iovecs = bufs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.stable_ptr() as *mut libc::c_void,
                iov_len: b.bytes_init(),
            })
            .collect();
        SendvZc {
            fd: fd.clone(),
            bufs,
            iovecs,
            // SAFETY: msghdr is plain old data; all-zero is an empty header.
            hdr: unsafe { std::mem::zeroed() },
            result: Result2::default(),
        }
    }

    fn header(&mut self) -> &libc::msghdr {
        self.hdr.msg_iov = self.iovecs.as_mut_ptr();
        self.hdr.msg_iovlen = self.iovecs.len();
        &self.hdr
    }
}

// SAFETY: the msghdr lives in the op, which the driver keeps in place until the final completion;
// it points at `iovecs` (a heap array in the op) whose entries point at the owned buffers'
// stable memory, `bytes_init` bytes each, kept until the notification.
unsafe impl<B: IoBuf> OpCode for SendvZc<B> {
    type Output = BufResult<usize, Vec<B>>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let (fd, fixed) = super::sqe_fd(&self.fd);
        Some(
            opcode::SendMsgZc::new(fd, self.header())
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
                .flags(fixed),
        )
    }

    fn plan(&self) -> Plan {
        Plan::Readiness {
            fd: self.fd.raw(),
            interest: Interest::WRITABLE,
        }
    }

    fn perform(&mut self) -> io::Result<u32> {
        let fd = self.fd.raw();
        let hdr = self.header();
        // SAFETY: a valid msghdr whose pointers are owned by the op.
        cvt(
            unsafe { libc::sendmsg(fd, hdr, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) }
                as libc::c_long,
        )
    }

    fn traits(&self) -> OpTraits {
        OpTraits::NONE.unsupported_falls_back(true)
    }

    fn more(&mut self, res: i32, flags: u32) {
        self.result.record(res, flags);
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn complete(mut self, result: io::Result<u32>) -> BufResult<usize, Vec<B>> {
        (self.result.finish(result).map(|n| n as usize), self.bufs)
    }
}

super::opaque_debug!(SendToZc<B>, SendZc<B>, SendZcReport<B>, SendvZc<B>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::FixedBufPool;

    /// `IORING_RECVSEND_FIXED_BUF`, in the SQE's `ioprio`.
    const FIXED_BUF: u16 = 4;

    /// The SQE's bytes: `ioprio` (the send flags) at offset 2, `buf_index` at 40.
    fn sqe_bytes(e: Entry) -> [u8; 64] {
        assert_eq!(std::mem::size_of::<Entry>(), 64);
        // SAFETY: `Entry` is a `repr(C)` wrapper of the 64-byte `io_uring_sqe`, plain data.
        unsafe { std::mem::transmute::<Entry, [u8; 64]>(e) }
    }

    #[test]
    fn a_registered_buffer_is_sent_by_its_index() {
        let Some(rt) = crate::op::tests::uring_runtime() else {
            return;
        };
        rt.block_on(async {
            let pool = FixedBufPool::new(2, 4096).unwrap();
            let mut buf = pool.try_get().unwrap();
            buf.extend_from_slice(b"registered");
            let Some(index) = buf.fixed_index() else {
                crate::diagnostics::record_skip("the pool is not registered");
                return;
            };
            let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
            let fd = SharedFd::new(a.into());
            let mut op = SendZc::new(&fd, buf.slice(2..));
            let sqe = sqe_bytes(op.uring_entry().unwrap());
            let ioprio = u16::from_ne_bytes([sqe[2], sqe[3]]);
            assert_ne!(ioprio & FIXED_BUF, 0);
            assert_eq!(u16::from_ne_bytes([sqe[40], sqe[41]]), index);
            let mut plain = SendZc::new(&fd, b"plain".to_vec());
            let sqe = sqe_bytes(plain.uring_entry().unwrap());
            assert_eq!(u16::from_ne_bytes([sqe[2], sqe[3]]) & FIXED_BUF, 0);
        });
    }
}
