//! An older kernel, emulated on this one: with `HOOP_EMULATE_KERNEL=5.11` (or any `major.minor`)
//! the io_uring driver treats every io_uring feature that kernel lacked the way that kernel
//! answers: setup flags and register calls it did not know fail with `EINVAL`, its
//! `IORING_REGISTER_PROBE` had no newer opcodes, and SQE flags it did not know (multishot
//! accept, poll and receive) complete with `-EINVAL`. It only ever takes features away, so it
//! cannot make anything unsafe; it exists so that the test suite can run the fallbacks for
//! 5.11–5.19 on a machine whose packaged kernels are all newer (`.ci/run` runs the suite under
//! the 5.11 and 5.19 profiles).
//!
//! What it cannot emulate: behaviour inside an opcode both kernels have (an old kernel's bug,
//! or `EAGAIN` where a newer one arms a poll), and anything outside io_uring (syscalls, `tmpfs`
//! features). Those are covered by the 6.1 guest run (`.ci/kernel-6.1`).

use io_uring::{opcode, squeue};
use std::sync::OnceLock;

/// A kernel release, `(major, minor)`.
pub(crate) type Release = (u32, u32);

/// The releases that added the io_uring features hoop uses, where they are newer than 5.11.
pub(crate) mod since {
    use super::Release;
    /// `IORING_SETUP_SINGLE_ISSUER` and `IORING_SETUP_DEFER_TASKRUN`.
    pub(crate) const DEFER_TASKRUN: Release = (6, 1);
    /// `IORING_SETUP_COOP_TASKRUN` (with `TASKRUN_FLAG` and `SUBMIT_ALL`).
    pub(crate) const COOP_TASKRUN: Release = (5, 19);
    /// `IORING_REGISTER_RING_FDS`.
    pub(crate) const RING_FDS: Release = (5, 18);
    /// `IORING_RSRC_REGISTER_SPARSE` (a sparse registered-buffer table; `BUFFERS2` itself is
    /// 5.13, where the flag's word was reserved and any value refused).
    pub(crate) const SPARSE_BUFFERS: Release = (5, 19);
    /// `IORING_REGISTER_PBUF_RING` (provided-buffer rings).
    pub(crate) const PBUF_RING: Release = (5, 19);
    /// `IORING_REGISTER_IOWQ_MAX_WORKERS`.
    pub(crate) const IOWQ_MAX_WORKERS: Release = (5, 15);
    /// `IORING_POLL_ADD_MULTI`.
    pub(crate) const MULTISHOT_POLL: Release = (5, 13);
    /// `IORING_ACCEPT_MULTISHOT`.
    pub(crate) const MULTISHOT_ACCEPT: Release = (5, 19);
    /// `IORING_RECV_MULTISHOT`.
    pub(crate) const MULTISHOT_RECV: Release = (6, 0);
    /// `IORING_REGISTER_FILE_ALLOC_RANGE` (sparse file tables and `IORING_FILE_INDEX_ALLOC`
    /// are 5.19).
    pub(crate) const FILE_ALLOC_RANGE: Release = (6, 0);
    /// `MSG_RING` into a `DEFER_TASKRUN` ring runs as the target's task work.
    pub(crate) const MSG_RING_REMOTE: Release = (6, 3);
    /// `IORING_RECVSEND_BUNDLE` (`IORING_FEAT_RECVSEND_BUNDLE`): one receive fills several
    /// provided buffers.
    pub(crate) const RECVSEND_BUNDLE: Release = (6, 10);
    /// `IOU_PBUF_RING_INC`: provided buffers consumed a piece at a time.
    pub(crate) const PBUF_RING_INC: Release = (6, 12);
    /// Receive bundles that fill every buffer but the last one whole. Before the June 2025
    /// fixes (upstream 26ec15e4b0c1 and 178b8ff66ff8, in 6.16) a bundle could shorten its last
    /// mapped buffer and go on in the next one, leaving a gap no completion reports; hoop uses
    /// bundles only from this release on.
    pub(crate) const WHOLE_BUFFER_BUNDLES: Release = (6, 16);
}

/// The emulated release, if any (read once from `HOOP_EMULATE_KERNEL`).
pub(crate) fn emulated() -> Option<Release> {
    static RELEASE: OnceLock<Option<Release>> = OnceLock::new();
    *RELEASE.get_or_init(|| {
        let v = std::env::var("HOOP_EMULATE_KERNEL").ok()?;
        let release = parse(&v);
        if release.is_none() {
            crate::log::warning!("HOOP_EMULATE_KERNEL={v:?} is not major.minor; ignored");
        }
        release
    })
}

fn parse(v: &str) -> Option<Release> {
    let (major, minor) = v.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The running kernel's release (`uname`), or the emulated one.
pub(crate) fn effective() -> Release {
    static RUNNING: OnceLock<Release> = OnceLock::new();
    let running = *RUNNING.get_or_init(|| {
        // SAFETY: `uname` fills a zeroed, live utsname; `release` is NUL-terminated by it.
        let release = unsafe {
            let mut u: libc::utsname = std::mem::zeroed();
            if libc::uname(&mut u) != 0 {
                return (0, 0);
            }
            std::ffi::CStr::from_ptr(u.release.as_ptr())
                .to_string_lossy()
                .into_owned()
        };
        // "6.1.0-28-amd64": the first two numbers.
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        (major, minor)
    });
    match emulated() {
        Some(e) if e < running => e,
        _ => running,
    }
}

/// True if the emulated kernel predates `feature`.
pub(crate) fn lacks(feature: Release) -> bool {
    emulated().is_some_and(|r| r < feature)
}

/// The error an old kernel gives for a flag or register call it does not know.
pub(crate) fn refused() -> std::io::Error {
    std::io::Error::from_raw_os_error(libc::EINVAL)
}

/// True if `io_uring_register` opcode `op` exists on the kernel the runtime uses (the running
/// one by its release, or the emulated one). `IORING_REGISTER_RESTRICTIONS` refuses a whole list
/// naming one past the kernel's last (`EINVAL`), and there is no probe for register opcodes.
pub(crate) fn register_op_known(op: u8) -> bool {
    // One past the last register opcode of each release (include/uapi/linux/io_uring.h).
    let end = match effective() {
        r if r < (5, 13) => 13, // ... IORING_REGISTER_ENABLE_RINGS
        r if r < (5, 14) => 17, // ... IORING_REGISTER_BUFFERS_UPDATE
        r if r < (5, 15) => 19, // ... IORING_UNREGISTER_IOWQ_AFF
        r if r < (5, 18) => 20, // IORING_REGISTER_IOWQ_MAX_WORKERS
        r if r < (5, 19) => 22, // ... IORING_UNREGISTER_RING_FDS
        r if r < (6, 0) => 24,  // ... IORING_UNREGISTER_PBUF_RING
        r if r < (6, 8) => 26,  // ... IORING_REGISTER_FILE_ALLOC_RANGE
        _ => return true,
    };
    op < end
}

/// True if the emulated kernel refuses a restriction list naming register opcode `op`.
pub(crate) fn refuses_register_op(op: u8) -> bool {
    emulated().is_some() && !register_op_known(op)
}

/// True if the emulated kernel's probe would not list `opcode`.
pub(crate) fn lacks_opcode(opcode: u8) -> bool {
    let Some(release) = emulated() else {
        return false;
    };
    // The last opcode of each release's enum (include/uapi/linux/io_uring.h).
    let last = match release {
        r if r < (5, 15) => 36, // IORING_OP_UNLINKAT
        r if r < (5, 18) => 39, // IORING_OP_LINKAT
        r if r < (5, 19) => 40, // IORING_OP_MSG_RING
        r if r < (6, 0) => 46,  // IORING_OP_URING_CMD
        r if r < (6, 1) => 47,  // IORING_OP_SEND_ZC
        r if r < (6, 7) => 48,  // IORING_OP_SENDMSG_ZC
        r if r < (6, 8) => 53,  // IORING_OP_FUTEX_WAITV
        r if r < (6, 9) => 54,  // IORING_OP_FIXED_FD_INSTALL
        r if r < (6, 11) => 55, // IORING_OP_FTRUNCATE
        _ => return false,
    };
    opcode > last
}

/// `IORING_RECVSEND_BUNDLE`, a receive's `ioprio` flag (the crate keeps its `sys` private).
const RECVSEND_BUNDLE: u16 = 1 << 4;

/// True if the emulated kernel rejects `entry` with `EINVAL` at submission: a multishot or
/// bundle flag it did not know.
pub(crate) fn refuses(entry: &squeue::Entry) -> bool {
    if emulated().is_none() {
        return false;
    }
    const _: () = assert!(std::mem::size_of::<squeue::Entry>() == 64);
    // SAFETY: `Entry` is a `repr(C)` wrapper of the 64-byte `io_uring_sqe` (asserted above),
    // which is plain integers: any byte of it may be read.
    let sqe = unsafe { &*(entry as *const squeue::Entry).cast::<[u8; 64]>() };
    let ioprio = u16::from_ne_bytes([sqe[2], sqe[3]]);
    let len = u32::from_ne_bytes([sqe[24], sqe[25], sqe[26], sqe[27]]);
    match sqe[0] {
        op if op == opcode::PollAdd::CODE => len & 1 != 0 && lacks(since::MULTISHOT_POLL),
        op if op == opcode::Accept::CODE => ioprio & 1 != 0 && lacks(since::MULTISHOT_ACCEPT),
        op if op == opcode::Recv::CODE => {
            (ioprio & 2 != 0 && lacks(since::MULTISHOT_RECV))
                || (ioprio & RECVSEND_BUNDLE != 0 && lacks(since::RECVSEND_BUNDLE))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_releases() {
        assert_eq!(super::parse("5.11"), Some((5, 11)));
        assert_eq!(super::parse(" 6.1 "), Some((6, 1)));
        assert_eq!(super::parse("6"), None);
        assert_eq!(super::parse("x.y"), None);
    }
}
