//! `io_uring_enter(2)` through a registered ring fd.
//!
//! Every enter on a plain ring fd makes the kernel look the fd up and take a reference
//! (`fget`/`fput`, an atomic pair in a multi-threaded process: 4 % of a pipe ping-pong's
//! cycles). `IORING_REGISTER_RING_FDS` (Linux 5.18) puts the ring in the calling thread's own
//! table, and `IORING_ENTER_REGISTERED_RING` enters it by index without the lookup. The
//! io-uring crate keeps that index on a `Submitter` that lives for one call, so the worker
//! keeps it here and makes the syscall itself.
//!
//! The table belongs to the *thread* that registered (the worker that owns the ring, the only
//! thread that enters it) and holds a reference to the ring: the registration is undone when
//! the driver is dropped, on that same thread, or the ring would outlive its runtime until the
//! thread exits. The table has 16 slots; a thread running more rings at once enters the others
//! by fd.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

const IORING_ENTER_GETEVENTS: u32 = 1;
const IORING_ENTER_EXT_ARG: u32 = 1 << 3;
const IORING_ENTER_REGISTERED_RING: u32 = 1 << 4;
const IORING_REGISTER_RING_FDS: libc::c_uint = 20;
const IORING_UNREGISTER_RING_FDS: libc::c_uint = 21;

/// `struct io_uring_rsrc_update`.
#[repr(C)]
struct RsrcUpdate {
    offset: u32,
    resv: u32,
    data: u64,
}

/// `struct io_uring_getevents_arg`.
#[repr(C)]
struct GeteventsArg {
    sigmask: u64,
    sigmask_sz: u32,
    min_wait_usec: u32,
    ts: u64,
}

/// `struct __kernel_timespec`.
#[repr(C)]
struct KernelTimespec {
    tv_sec: i64,
    tv_nsec: i64,
}

/// How the worker enters its ring: by registered index, or by fd.
pub(crate) struct RingEnter {
    fd: RawFd,
    /// The ring's slot in this thread's registered-ring table.
    index: Option<u32>,
}

impl RingEnter {
    /// Registers `fd` in the calling thread's ring table; enters by fd if the kernel refuses
    /// (before 5.18, a full table, or a seccomp filter on the register call).
    pub(crate) fn new(fd: RawFd) -> Self {
        use super::old_kernel::{lacks, since};
        if lacks(since::RING_FDS) {
            return RingEnter { fd, index: None };
        }
        let mut update = RsrcUpdate {
            // "Any free slot"; the kernel writes the one it took.
            offset: u32::MAX,
            resv: 0,
            data: fd as u64,
        };
        // SAFETY: `update` is a valid `io_uring_rsrc_update` the kernel reads and writes during
        // the call only; `fd` is the caller's open ring.
        let res = unsafe {
            libc::syscall(
                libc::SYS_io_uring_register,
                fd,
                IORING_REGISTER_RING_FDS,
                &mut update as *mut RsrcUpdate,
                1u32,
            )
        };
        let index = if res == 1 {
            Some(update.offset)
        } else {
            tracing::debug!(
                target: "hoop",
                error = %io::Error::last_os_error(),
                "ring fd not registered; entering by fd"
            );
            None
        };
        RingEnter { fd, index }
    }

    /// True if enters go through the registered index.
    pub(crate) fn is_registered(&self) -> bool {
        self.index.is_some()
    }

    /// Submits `to_submit` SQEs and, if `wait` is set, waits for one completion, at most
    /// `timeout` (`None`: no limit). `getevents` asks the kernel to run deferred task work and
    /// flush overflowed completions even without waiting.
    pub(crate) fn enter(
        &self,
        to_submit: u32,
        wait: bool,
        getevents: bool,
        timeout: Option<Duration>,
    ) -> io::Result<u32> {
        let (fd, mut flags) = match self.index {
            Some(i) => (i as libc::c_long, IORING_ENTER_REGISTERED_RING),
            None => (self.fd as libc::c_long, 0),
        };
        if wait || getevents {
            flags |= IORING_ENTER_GETEVENTS;
        }
        let ts = timeout.map(|t| KernelTimespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        let arg = ts.as_ref().map(|ts| GeteventsArg {
            sigmask: 0,
            sigmask_sz: 0,
            min_wait_usec: 0,
            ts: ts as *const KernelTimespec as u64,
        });
        let (arg_ptr, arg_size) = match &arg {
            Some(a) => {
                flags |= IORING_ENTER_EXT_ARG;
                (
                    a as *const GeteventsArg as *const libc::c_void,
                    std::mem::size_of::<GeteventsArg>(),
                )
            }
            None => (std::ptr::null(), 0),
        };
        // SAFETY: `fd` names this worker's ring (by index in this thread's table, or by fd);
        // `arg` and the timespec it points to live until the call returns, and the kernel reads
        // them only during the call. The SQEs it consumes are owned by their operations.
        let res = unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                fd,
                to_submit,
                u32::from(wait),
                flags,
                arg_ptr,
                arg_size,
            )
        };
        if res < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(res as u32)
        }
    }
}

impl Drop for RingEnter {
    fn drop(&mut self) {
        let Some(index) = self.index else { return };
        let update = RsrcUpdate {
            offset: index,
            resv: 0,
            data: 0,
        };
        // SAFETY: the kernel reads `update` during the call only. This runs on the thread that
        // registered (the driver is `!Send` and dropped by its worker), so it empties our slot.
        unsafe {
            libc::syscall(
                libc::SYS_io_uring_register,
                self.fd,
                IORING_UNREGISTER_RING_FDS,
                &update as *const RsrcUpdate,
                1u32,
            )
        };
    }
}
