//! `IORING_OP_SEND` / `IORING_OP_RECV`: stream and connected-datagram I/O with owned buffers.

use super::cvt;
use super::{stream_attempt, Inline, Interest, OpCode, OpTraits, Plan};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::fd::SharedFd;
use io_uring::{opcode, squeue::Entry};
use std::io;

/// The `MSG_*` flags [`Send`] takes. Others are refused with `InvalidInput`: `MSG_ZEROCOPY`
/// needs the error-queue protocol (use `send_zc`), `MSG_FASTOPEN` an address.
pub const SEND_FLAGS: i32 = libc::MSG_MORE
    | libc::MSG_DONTROUTE
    | libc::MSG_EOR
    | libc::MSG_OOB
    | libc::MSG_CONFIRM
    | libc::MSG_DONTWAIT
    | libc::MSG_NOSIGNAL
    | libc::MSG_WAITALL;

/// The `MSG_*` flags [`Recv`] takes. Others are refused with `InvalidInput`: `MSG_TRUNC` makes
/// the kernel return a datagram's full length, more than the buffer holds; `MSG_ERRQUEUE` needs
/// a control buffer (`recvmsg`).
pub const RECV_FLAGS: i32 = libc::MSG_PEEK | libc::MSG_WAITALL | libc::MSG_OOB | libc::MSG_DONTWAIT;

/// `InvalidInput` unless `flags` is within `allowed`.
fn check_flags(flags: i32, allowed: i32, op: &str) -> io::Result<()> {
    if flags & !allowed == 0 {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("hoop: {op} does not take the flags {:#x}", flags & !allowed),
    ))
}

/// `send(2)` of a buffer's initialised bytes. `MSG_NOSIGNAL` is always added: a closed peer gives
/// `EPIPE`, never a process-killing `SIGPIPE`. Flags outside [`SEND_FLAGS`] make the operation
/// fail with `InvalidInput` before it reaches the kernel.
pub struct Send<B> {
    fd: SharedFd,
    buf: B,
    flags: i32,
}

impl<B: IoBuf> Send<B> {
    /// Sends `buf` on `fd` with `flags` (`MSG_*`).
    pub fn new(fd: &SharedFd, buf: B, flags: i32) -> Self {
        Send {
            fd: fd.clone(),
            buf,
            flags: flags | libc::MSG_NOSIGNAL,
        }
    }
}

// SAFETY: the SQE and `perform` point at the owned buffer's stable memory (`bytes_init` bytes).
unsafe impl<B: IoBuf> OpCode for Send<B> {
    type Output = BufResult<usize, B>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let len = self.buf.bytes_init().min(u32::MAX as usize) as u32;
        let (fd, fixed) = super::sqe_fd(&self.fd);
        Some(
            opcode::Send::new(fd, self.buf.stable_ptr(), len)
                .flags(self.flags)
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
                self.flags | libc::MSG_DONTWAIT,
            )
        } as libc::c_long)
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn check(&self) -> io::Result<()> {
        check_flags(self.flags, SEND_FLAGS, "send")
    }

    fn traits(&self) -> OpTraits {
        let likely = self.fd.stream_hint(true);
        OpTraits::NONE.inline(if likely {
            Inline::Stream
        } else {
            Inline::Never
        })
    }

    fn try_nowait(&mut self) -> Option<io::Result<u32>> {
        let res = self.perform();
        stream_attempt(res, &self.fd, true)
    }

    fn complete(self, result: io::Result<u32>) -> BufResult<usize, B> {
        if let Ok(n) = result {
            self.fd
                .set_stream_hint(true, n as usize == self.buf.bytes_init());
        }
        (result.map(|n| n as usize), self.buf)
    }
}

/// `recv(2)` into a buffer, from its start up to its capacity (`MSG_PEEK` to peek). Flags outside
/// [`RECV_FLAGS`] make the operation fail with `InvalidInput` before it reaches the kernel.
pub struct Recv<B> {
    fd: SharedFd,
    buf: B,
    flags: i32,
    /// One attempt, never waiting (see [`Recv::once`]).
    once: bool,
}

impl<B: IoBufMut> Recv<B> {
    /// Receives into `buf` from `fd` with `flags` (`MSG_*`).
    pub fn new(fd: &SharedFd, buf: B, flags: i32) -> Self {
        Recv {
            fd: fd.clone(),
            buf,
            flags,
            once: false,
        }
    }

    /// One non-blocking receive on either driver: `WouldBlock` where [`Recv::new`]'s would wait
    /// for data. For a caller that waits for readiness without lending a buffer meanwhile.
    pub fn once(fd: &SharedFd, buf: B, flags: i32) -> Self {
        Recv {
            once: true,
            ..Recv::new(fd, buf, flags)
        }
    }
}

// SAFETY: the SQE and `perform` point at the owned buffer's stable memory (`bytes_total` bytes).
unsafe impl<B: IoBufMut> OpCode for Recv<B> {
    type Output = BufResult<usize, B>;

    fn uring_entry(&mut self) -> Option<Entry> {
        if self.once {
            // The ring would wait for data: the plan path's syscall instead.
            return None;
        }
        let len = self.buf.bytes_total().min(u32::MAX as usize) as u32;
        let (fd, fixed) = super::sqe_fd(&self.fd);
        Some(
            opcode::Recv::new(fd, self.buf.stable_mut_ptr(), len)
                .flags(self.flags)
                .build()
                .flags(fixed),
        )
    }

    fn plan(&self) -> Plan {
        Plan::Readiness {
            fd: self.fd.raw(),
            interest: Interest::READABLE,
        }
    }

    fn perform(&mut self) -> io::Result<u32> {
        let len = self.buf.bytes_total().min(u32::MAX as usize);
        // SAFETY: `len` writable bytes of the owned buffer.
        cvt(unsafe {
            libc::recv(
                self.fd.raw(),
                self.buf.stable_mut_ptr().cast(),
                len,
                self.flags | libc::MSG_DONTWAIT,
            )
        } as libc::c_long)
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn traits(&self) -> OpTraits {
        // `once` runs by its plan on io_uring too: as the receive the ring would have run.
        OpTraits::NONE.ring_equivalent(opcode::Recv::CODE)
    }

    fn wait_for(&self) -> Option<(std::os::fd::RawFd, Interest)> {
        (!self.once).then_some((self.fd.raw(), Interest::READABLE))
    }

    fn check(&self) -> io::Result<()> {
        check_flags(self.flags, RECV_FLAGS, "recv")
    }

    fn complete(mut self, result: io::Result<u32>) -> BufResult<usize, B> {
        match result {
            Ok(n) => {
                // SAFETY: the kernel wrote `n` bytes from the buffer's start.
                let n = unsafe { crate::buf::mark_filled(&mut self.buf, n) };
                (Ok(n), self.buf)
            }
            Err(e) => (Err(e), self.buf),
        }
    }
}

super::opaque_debug!(Send<B>, Recv<B>);
