//! `IORING_OP_READ` / `IORING_OP_WRITE` on an fd, at an offset or at the current position.

use super::{stream_attempt, Inline, Interest, OpCode, OpTraits, Plan};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::fd::SharedFd;
use io_uring::{opcode, squeue::Entry};
use std::io;
use std::os::fd::RawFd;

/// What kind of fd an operation works on, which decides the epoll driver's plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdKind {
    /// A socket, pipe, tty or eventfd: non-blocking syscalls on readiness.
    Stream,
    /// A regular file or block device (never "not ready"): the blocking pool.
    File,
}

/// Offset meaning "the fd's current position" (for pipes and sockets, and `O_APPEND`).
pub const CURRENT_POSITION: u64 = u64::MAX;

fn check_len(len: usize) -> u32 {
    // Larger requests are split by the caller's loop; the kernel caps a single read at 2 GiB
    // anyway, so clamping loses nothing.
    len.min(i32::MAX as usize) as u32
}

/// What a non-blocking attempt that returned `n` means for `try_nowait`: `Some(result)` if the
/// operation is done, `None` if the ring or the pool must do it. `stream` is `Some(write)` for
/// pipe and socket I/O, whose `EAGAIN` clears the fd's hint for that direction. `own_error`:
/// any other error is the operation's own — a plain `read`/`write` (nothing to refuse), or an
/// invalid offset (`EINVAL` then is not a refusal of `RWF_NOWAIT`).
fn nowait_outcome(
    n: isize,
    fd: &SharedFd,
    stream: Option<bool>,
    own_error: bool,
) -> Option<io::Result<u32>> {
    if n >= 0 {
        return Some(Ok(n as u32));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // No data in a pipe or socket, or no room: the ring waits for readiness.
        Some(libc::EAGAIN) if stream.is_some() => stream_attempt(Err(e), fd, stream == Some(true)),
        // Not in the page cache (or a lock was contended): the ring or the pool does it.
        Some(libc::EAGAIN) => None,
        _ if own_error => Some(Err(e)),
        // The fd or kernel has no non-blocking path (or a seccomp filter denies the call):
        // never try again here; the ring or the pool gives the real result.
        Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS | libc::EPERM) => {
            fd.no_nowait_io();
            None
        }
        // Anything else (EBADF, EISDIR, EIO...) is what the operation would have said.
        _ => Some(Err(e)),
    }
}

/// Reads into an owned buffer, from its start up to its capacity.
pub struct Read<B> {
    /// Keeps the fd open while the kernel may use `raw`.
    fd: SharedFd,
    raw: RawFd,
    buf: B,
    ptr: *mut u8,
    len: u32,
    offset: u64,
    kind: FdKind,
    /// The buffer's registration, if it is a registered buffer: `READ_FIXED` then.
    fixed: Option<u16>,
}

impl<B: IoBufMut> Read<B> {
    /// Reads up to `buf.bytes_total()` bytes at `offset` (or [`CURRENT_POSITION`]) into `buf`,
    /// starting at the buffer's start.
    pub fn new(fd: &SharedFd, mut buf: B, offset: u64, kind: FdKind) -> Self {
        let ptr = buf.stable_mut_ptr();
        let len = check_len(buf.bytes_total());
        Read {
            raw: fd.raw(),
            fd: fd.clone(),
            fixed: buf.fixed_index(),
            buf,
            ptr,
            len,
            offset,
            kind,
        }
    }
}

// SAFETY: the SQE and `perform` use `ptr`/`len`, captured from the owned buffer (heap-stable by
// the `IoBufMut` contract) and the raw fd, which the `SharedFd` clone keeps open.
unsafe impl<B: IoBufMut> OpCode for Read<B> {
    type Output = BufResult<usize, B>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let (fd, fixed_file) = super::sqe_fd(&self.fd);
        let entry = match self.fixed {
            // A registered buffer skips the per-call pinning of its pages.
            Some(index) => opcode::ReadFixed::new(fd, self.ptr, self.len, index)
                .offset(self.offset)
                .build(),
            None => opcode::Read::new(fd, self.ptr, self.len)
                .offset(self.offset)
                .build(),
        };
        Some(entry.flags(fixed_file))
    }

    fn plan(&self) -> Plan {
        match self.kind {
            FdKind::Stream => Plan::Readiness {
                fd: self.raw,
                interest: Interest::READABLE,
            },
            FdKind::File => Plan::Blocking,
        }
    }

    fn traits(&self) -> OpTraits {
        let inline = match self.kind {
            FdKind::File if self.fd.nowait_io() => Inline::PageCache,
            FdKind::Stream if self.fd.nowait_io() && self.fd.stream_hint(false) => Inline::Stream,
            _ => Inline::Never,
        };
        OpTraits::NONE
            // Positioned file reads; a stream read consumes what it reads.
            .repeatable(self.kind == FdKind::File && self.offset != CURRENT_POSITION)
            .inline(inline)
            .device_io(self.kind == FdKind::File && self.fd.is_o_direct())
    }

    fn perform(&mut self) -> io::Result<u32> {
        // SAFETY: `ptr` points to `len` writable bytes of the owned buffer.
        let n = unsafe {
            if self.offset == CURRENT_POSITION {
                libc::read(self.raw, self.ptr.cast(), self.len as usize)
            } else {
                libc::pread(
                    self.raw,
                    self.ptr.cast(),
                    self.len as usize,
                    self.offset as i64,
                )
            }
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as u32)
        }
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn try_nowait(&mut self) -> Option<io::Result<u32>> {
        let iov = libc::iovec {
            iov_base: self.ptr.cast(),
            iov_len: self.len as usize,
        };
        let offset = if self.offset == CURRENT_POSITION {
            -1
        } else {
            self.offset as i64
        };
        let stream = (self.kind == FdKind::Stream).then_some(false);
        let plain = stream.is_some() && offset == -1 && self.fd.plain_stream_io();
        let n = if plain {
            // SAFETY: `ptr` points to `len` writable bytes of the owned buffer.
            unsafe { libc::read(self.raw, self.ptr.cast(), self.len as usize) }
        } else {
            // SAFETY: `iov` names `len` writable bytes of the owned buffer; the kernel copies
            // the iovec during the call and does not keep it.
            unsafe { libc::preadv2(self.raw, &iov, 1, offset, libc::RWF_NOWAIT) }
        };
        nowait_outcome(n, &self.fd, stream, plain || offset < -1)
    }

    fn complete(mut self, result: io::Result<u32>) -> BufResult<usize, B> {
        match result {
            Ok(n) => {
                if self.kind == FdKind::Stream {
                    self.fd.set_stream_hint(false, n > 0 && n == self.len);
                }
                // SAFETY: the kernel wrote `n` bytes from the buffer's start.
                let n = unsafe { crate::buf::mark_filled(&mut self.buf, n) };
                (Ok(n), self.buf)
            }
            Err(e) => (Err(e), self.buf),
        }
    }
}

/// Writes the initialised bytes of an owned buffer.
pub struct Write<B> {
    /// Keeps the fd open while the kernel may use `raw`.
    fd: SharedFd,
    raw: RawFd,
    buf: B,
    ptr: *const u8,
    len: u32,
    offset: u64,
    kind: FdKind,
    /// The buffer's registration, if it is a registered buffer: `WRITE_FIXED` then.
    fixed: Option<u16>,
}

impl<B: IoBuf> Write<B> {
    /// Writes `buf`'s initialised bytes at `offset` (or [`CURRENT_POSITION`]).
    pub fn new(fd: &SharedFd, buf: B, offset: u64, kind: FdKind) -> Self {
        let ptr = buf.stable_ptr();
        let len = check_len(buf.bytes_init());
        Write {
            raw: fd.raw(),
            fd: fd.clone(),
            fixed: buf.fixed_index(),
            buf,
            ptr,
            len,
            offset,
            kind,
        }
    }
}

// SAFETY: as for `Read`; the kernel only reads `len` initialised bytes at `ptr`.
unsafe impl<B: IoBuf> OpCode for Write<B> {
    type Output = BufResult<usize, B>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let (fd, fixed_file) = super::sqe_fd(&self.fd);
        let entry = match self.fixed {
            Some(index) => opcode::WriteFixed::new(fd, self.ptr, self.len, index)
                .offset(self.offset)
                .build(),
            None => opcode::Write::new(fd, self.ptr, self.len)
                .offset(self.offset)
                .build(),
        };
        Some(entry.flags(fixed_file))
    }

    fn plan(&self) -> Plan {
        match self.kind {
            FdKind::Stream => Plan::Readiness {
                fd: self.raw,
                interest: Interest::WRITABLE,
            },
            FdKind::File => Plan::Blocking,
        }
    }

    fn perform(&mut self) -> io::Result<u32> {
        // SAFETY: `ptr` points to `len` initialised bytes of the owned buffer.
        let n = unsafe {
            if self.offset == CURRENT_POSITION {
                libc::write(self.raw, self.ptr.cast(), self.len as usize)
            } else {
                libc::pwrite(
                    self.raw,
                    self.ptr.cast(),
                    self.len as usize,
                    self.offset as i64,
                )
            }
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as u32)
        }
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn traits(&self) -> OpTraits {
        let stream =
            self.kind == FdKind::Stream && self.fd.nowait_io() && self.fd.stream_hint(true);
        OpTraits::NONE
            .inline(if stream {
                Inline::Stream
            } else {
                Inline::Never
            })
            .device_io(self.kind == FdKind::File && self.fd.is_o_direct())
    }

    fn try_nowait(&mut self) -> Option<io::Result<u32>> {
        let iov = libc::iovec {
            iov_base: self.ptr as *mut libc::c_void,
            iov_len: self.len as usize,
        };
        let plain = self.offset == CURRENT_POSITION && self.fd.plain_stream_io();
        let n = if plain {
            // SAFETY: `ptr` points to `len` initialised bytes of the owned buffer.
            unsafe { libc::write(self.raw, self.ptr.cast(), self.len as usize) }
        } else {
            // SAFETY: `iov` names `len` initialised bytes of the owned buffer; the kernel copies
            // the iovec during the call and does not keep it. Streams only: offset -1 is "no
            // offset".
            unsafe { libc::pwritev2(self.raw, &iov, 1, -1, libc::RWF_NOWAIT) }
        };
        nowait_outcome(n, &self.fd, Some(true), plain)
    }

    fn complete(self, result: io::Result<u32>) -> BufResult<usize, B> {
        if let (Ok(n), FdKind::Stream) = (&result, self.kind) {
            self.fd.set_stream_hint(true, *n == self.len);
        }
        (result.map(|n| n as usize), self.buf)
    }
}

super::opaque_debug!(Write<B>, Read<B>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::FixedBufPool;

    /// A read or write of a registered buffer through the generic operations names the
    /// registration (`READ_FIXED`/`WRITE_FIXED`), as `read_fixed_at` does.
    #[test]
    fn a_registered_buffer_uses_the_fixed_opcodes() {
        let Some(rt) = crate::op::tests::uring_runtime() else {
            return;
        };
        rt.block_on(async {
            let pool = FixedBufPool::new(2, 4096).unwrap();
            let (buf, plain) = (pool.try_get().unwrap(), pool.try_get().unwrap());
            if buf.fixed_index().is_none() {
                crate::diagnostics::record_skip("the pool is not registered");
                return;
            }
            let file = std::fs::File::open("/proc/self/exe").unwrap();
            let fd = SharedFd::new(file.into());
            let code = |e: Entry| e.get_opcode() as u8;
            let mut r = Read::new(&fd, buf.slice(8..), 0, FdKind::File);
            assert_eq!(code(r.uring_entry().unwrap()), opcode::ReadFixed::CODE);
            let mut w = Write::new(&fd, plain, 0, FdKind::File);
            assert_eq!(code(w.uring_entry().unwrap()), opcode::WriteFixed::CODE);
            let mut v = Read::new(&fd, vec![0u8; 16], 0, FdKind::File);
            assert_eq!(code(v.uring_entry().unwrap()), opcode::Read::CODE);
        });
    }
}
