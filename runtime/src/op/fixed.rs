//! `IORING_OP_READ_FIXED` / `IORING_OP_WRITE_FIXED`: file I/O on registered buffers.
//!
//! Build these only for a buffer whose [`FixedBuf::fixed_index`] is `Some` on this thread; for
//! others use [`Read`](super::rw::Read)/[`Write`](super::rw::Write), which accept a `FixedBuf`
//! too. (Naming a buffer index the ring does not hold is harmless — the kernel checks the address
//! range against the slot and fails with `EFAULT` — but pointless.)

use super::{OpCode, OpTraits, Plan};
use crate::buf::{BufResult, FixedBuf, IoBuf, IoBufMut};
use crate::fd::SharedFd;
use io_uring::{opcode, squeue::Entry};
use std::io;
use std::os::fd::RawFd;

/// Reads into a registered buffer at a file offset.
pub struct ReadFixed {
    fd: SharedFd,
    raw: RawFd,
    buf: FixedBuf,
    index: u16,
    offset: u64,
}

impl ReadFixed {
    /// Reads up to the buffer's capacity at `offset`; `index` is `buf.fixed_index()`.
    pub fn new(fd: &SharedFd, buf: FixedBuf, index: u16, offset: u64) -> Self {
        ReadFixed {
            raw: fd.raw(),
            fd: fd.clone(),
            buf,
            index,
            offset,
        }
    }
}

// SAFETY: the SQE names the owned buffer's heap memory (stable by the `IoBufMut` contract) and
// its capacity, and the raw fd kept open by the `SharedFd` clone.
unsafe impl OpCode for ReadFixed {
    type Output = BufResult<usize, FixedBuf>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let len = self.buf.bytes_total().min(i32::MAX as usize) as u32;
        let (fd, fixed) = super::sqe_fd(&self.fd);
        Some(
            opcode::ReadFixed::new(fd, self.buf.stable_mut_ptr(), len, self.index)
                .offset(self.offset)
                .build()
                .flags(fixed),
        )
    }

    fn plan(&self) -> Plan {
        Plan::Blocking
    }

    fn traits(&self) -> OpTraits {
        OpTraits::NONE
            // Positioned reads; one at the current position (a stream) consumes what it reads.
            .repeatable(self.offset != super::rw::CURRENT_POSITION)
            .device_io(self.fd.is_o_direct())
    }

    fn perform(&mut self) -> io::Result<u32> {
        let len = self.buf.bytes_total();
        // SAFETY: the pointer covers `len` writable bytes of the owned buffer.
        let n = unsafe {
            libc::pread(
                self.raw,
                self.buf.stable_mut_ptr().cast(),
                len,
                self.offset as i64,
            )
        };
        super::cvt(n as libc::c_long)
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn complete(mut self, result: io::Result<u32>) -> Self::Output {
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

/// Writes a registered buffer's initialised bytes at a file offset.
pub struct WriteFixed {
    fd: SharedFd,
    raw: RawFd,
    buf: FixedBuf,
    index: u16,
    offset: u64,
}

impl WriteFixed {
    /// Writes `buf`'s initialised bytes at `offset`; `index` is `buf.fixed_index()`.
    pub fn new(fd: &SharedFd, buf: FixedBuf, index: u16, offset: u64) -> Self {
        WriteFixed {
            raw: fd.raw(),
            fd: fd.clone(),
            buf,
            index,
            offset,
        }
    }
}

// SAFETY: as for `ReadFixed`; the kernel only reads the initialised bytes.
unsafe impl OpCode for WriteFixed {
    type Output = BufResult<usize, FixedBuf>;

    fn uring_entry(&mut self) -> Option<Entry> {
        let len = self.buf.bytes_init().min(i32::MAX as usize) as u32;
        let (fd, fixed) = super::sqe_fd(&self.fd);
        Some(
            opcode::WriteFixed::new(fd, self.buf.stable_ptr(), len, self.index)
                .offset(self.offset)
                .build()
                .flags(fixed),
        )
    }

    fn plan(&self) -> Plan {
        Plan::Blocking
    }

    fn perform(&mut self) -> io::Result<u32> {
        // SAFETY: the pointer covers the buffer's initialised bytes.
        let n = unsafe {
            libc::pwrite(
                self.raw,
                self.buf.stable_ptr().cast(),
                self.buf.bytes_init(),
                self.offset as i64,
            )
        };
        super::cvt(n as libc::c_long)
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        Some(&self.fd)
    }

    fn traits(&self) -> OpTraits {
        OpTraits::NONE.device_io(self.fd.is_o_direct())
    }

    fn complete(self, result: io::Result<u32>) -> Self::Output {
        (result.map(|n| n as usize), self.buf)
    }
}

super::opaque_debug!(ReadFixed, WriteFixed);
