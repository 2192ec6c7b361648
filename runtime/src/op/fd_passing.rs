//! `IORING_OP_SENDMSG` / `IORING_OP_RECVMSG` with `SCM_RIGHTS`: passing fds over Unix sockets.

use super::cvt;
use super::msghdr::MsgParts;
use super::{Interest, OpCode, Plan};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::fd::SharedFd;
use io_uring::{opcode, squeue::Entry, types};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Most fds one message may carry (the kernel's `SCM_MAX_FD` is 253).
pub const MAX_FDS: usize = 253;

fn cmsg_space(fds: usize) -> usize {
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    unsafe { libc::CMSG_SPACE((fds * std::mem::size_of::<RawFd>()) as u32) as usize }
}

/// Sends a buffer's bytes together with fds (`SCM_RIGHTS`). The op holds duplicates of the fds
/// until the completion, so the caller may close its own at once.
pub struct SendWithFds<B> {
    fd: SharedFd,
    buf: B,
    _fds: Vec<OwnedFd>,
    parts: Box<MsgParts>,
}

impl<B: IoBuf> SendWithFds<B> {
    /// Sends `buf` and `fds` (at most [`MAX_FDS`]) on `fd`; gives the buffer back with an error
    /// if there are too many fds.
    pub fn new(fd: &SharedFd, buf: B, fds: Vec<OwnedFd>) -> Result<Self, (io::Error, B)> {
        if fds.len() > MAX_FDS {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "too many fds for one message");
            return Err((e, buf));
        }
        let space = if fds.is_empty() {
            0
        } else {
            cmsg_space(fds.len())
        };
        let mut parts = MsgParts::new(buf.stable_ptr() as *mut u8, buf.bytes_init(), space);
        if !fds.is_empty() {
            // SAFETY: the control buffer has CMSG_SPACE(n) bytes; the header and the n ints fit.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&parts.hdr);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len =
                    libc::CMSG_LEN((fds.len() * std::mem::size_of::<RawFd>()) as u32) as _;
                let data = libc::CMSG_DATA(c) as *mut RawFd;
                for (i, f) in fds.iter().enumerate() {
                    std::ptr::write_unaligned(data.add(i), f.as_raw_fd());
                }
            }
        }
        parts.hdr.msg_name = std::ptr::null_mut();
        Ok(SendWithFds {
            fd: fd.clone(),
            buf,
            _fds: fds,
            parts,
        })
    }
}

// SAFETY: the msghdr, iovec and control buffer are boxed in the op; the iovec points at the owned
// buffer's stable memory; the passed fds stay open (owned by the op) until the completion.
unsafe impl<B: IoBuf> OpCode for SendWithFds<B> {
    type Output = BufResult<usize, B>;

    fn uring_entry(&mut self) -> Option<Entry> {
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

/// Receives bytes and up to `max_fds` fds (`SCM_RIGHTS`, close-on-exec). fds that arrive after
/// the future was dropped are closed.
pub struct RecvWithFds<B> {
    fd: SharedFd,
    buf: B,
    parts: Box<MsgParts>,
}

impl<B: IoBufMut> RecvWithFds<B> {
    /// Receives into `buf` and up to `max_fds` (at most [`MAX_FDS`]) fds from `fd`.
    pub fn new(fd: &SharedFd, mut buf: B, max_fds: usize) -> Self {
        let space = cmsg_space(max_fds.clamp(1, MAX_FDS));
        let parts = MsgParts::new(buf.stable_mut_ptr(), buf.bytes_total(), space);
        RecvWithFds {
            fd: fd.clone(),
            buf,
            parts,
        }
    }
}

// SAFETY: as for `SendWithFds`; the kernel writes into the owned buffer and the boxed control
// buffer.
unsafe impl<B: IoBufMut> OpCode for RecvWithFds<B> {
    type Output = BufResult<(usize, Vec<OwnedFd>), B>;

    fn uring_entry(&mut self) -> Option<Entry> {
        Some(
            opcode::RecvMsg::new(types::Fd(self.fd.raw()), &mut self.parts.hdr)
                .flags(libc::MSG_CMSG_CLOEXEC as u32)
                .build(),
        )
    }

    fn plan(&self) -> Plan {
        Plan::Readiness {
            fd: self.fd.raw(),
            interest: Interest::READABLE,
        }
    }

    fn perform(&mut self) -> io::Result<u32> {
        // SAFETY: a valid msghdr whose pointers are owned by the op.
        cvt(unsafe {
            libc::recvmsg(
                self.fd.raw(),
                &mut self.parts.hdr,
                libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT,
            )
        } as libc::c_long)
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn complete(mut self, result: io::Result<u32>) -> BufResult<(usize, Vec<OwnedFd>), B> {
        match result {
            Ok(n) => {
                // SAFETY: each fd came from SCM_RIGHTS in this message and is owned by nobody.
                let fds = self
                    .parts
                    .received_fds()
                    .into_iter()
                    .map(|f| unsafe { OwnedFd::from_raw_fd(f) })
                    .collect();
                // SAFETY: the kernel wrote `n` bytes from the buffer's start.
                let n = unsafe { crate::buf::mark_filled(&mut self.buf, n) };
                (Ok((n, fds)), self.buf)
            }
            Err(e) => (Err(e), self.buf),
        }
    }

    fn orphaned(&mut self, res: i32, _flags: u32) {
        if res >= 0 {
            for f in self.parts.received_fds() {
                super::close_orphan_fd(f);
            }
        }
    }
}

/// `SO_PEERCRED` of a Unix socket: the peer's pid, uid and gid at connect time.
pub fn peer_credentials(fd: &SharedFd) -> io::Result<(i32, u32, u32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: a live ucred and its length; the kernel writes at most `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd.raw(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((cred.pid, cred.uid, cred.gid))
}

super::opaque_debug!(RecvWithFds<B>, SendWithFds<B>);
