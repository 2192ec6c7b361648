//! `IORING_OP_OPENAT2`: open a path relative to a directory, with `RESOLVE_*` confinement.

use super::at::At;
use super::cvt;
use super::{close_orphan_fd, Inline, OpCode, OpTraits, Plan};
use crate::fd::{SharedFd, SlotReservation};
use io_uring::{opcode, squeue::Entry, types};
use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

/// Opens `path` under `at` with `openat2(2)`; the fd comes back as a [`SharedFd`]. If the
/// future is dropped, an fd the kernel returns anyway is closed.
pub struct OpenAt2 {
    at: At,
    path: CString,
    how: types::OpenHow,
    raw_how: libc::open_how,
    /// The empty direct-descriptor slot to open into ([`OpenAt2::into_slot`]).
    target: Option<SharedFd>,
    /// A place in the worker's table for a slot the kernel picks ([`OpenAt2::direct`]).
    alloc: Option<SlotReservation>,
    /// `perform` made the open (outside the ring): its result is a plain fd.
    performed: bool,
}

impl OpenAt2 {
    /// `flags` are `O_*` flags (`O_CLOEXEC` is always added), `mode` the creation mode,
    /// `resolve` the `RESOLVE_*` flags.
    pub fn new(at: At, path: CString, flags: i32, mode: u32, resolve: u64) -> Self {
        let flags = (flags | libc::O_CLOEXEC) as u64;
        let mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) as u64 != 0 {
            u64::from(mode)
        } else {
            0
        };
        // SAFETY: `open_how` is plain old data; all-zero is a valid value.
        let mut raw_how: libc::open_how = unsafe { std::mem::zeroed() };
        raw_how.flags = flags;
        raw_how.mode = mode;
        raw_how.resolve = resolve;
        OpenAt2 {
            at,
            path,
            how: types::OpenHow::new()
                .flags(flags)
                .mode(mode)
                .resolve(resolve),
            raw_how,
            target: None,
            alloc: None,
            performed: false,
        }
    }

    /// Opens into a direct descriptor of this worker's ring, in a slot the kernel picks: the
    /// file never enters the process's fd table, and operations on it skip the fd lookup. A
    /// plain fd where the worker has no table (epoll, Linux before 6.0, a restricted ring,
    /// `Builder::direct_descriptors(0)`), the table is full, or the open runs outside the ring.
    pub fn direct(mut self) -> Self {
        if self.target.is_none() {
            self.alloc = crate::driver::direct_table().and_then(|t| t.reserve());
        }
        self
    }

    /// The `open_how` the SQE carries: without `O_CLOEXEC` for a slot, which the kernel
    /// refuses with one (a direct descriptor has no fd to close on exec).
    fn slot_how(&self) -> types::OpenHow {
        types::OpenHow::new()
            .flags(self.raw_how.flags & !(libc::O_CLOEXEC as u64))
            .mode(self.raw_how.mode)
            .resolve(self.raw_how.resolve)
    }

    /// Opens into the direct-descriptor slot `target` (from
    /// [`reserved_slot`](crate::op::link::reserved_slot)) instead of a new fd, and completes with
    /// `target`: an open that operations linked after it can already name (see
    /// [`crate::op::link`]). A file opened into the slot before is replaced. Only on the ring
    /// that owns the slot, and only for a reserved slot; otherwise it fails with `Unsupported`.
    pub fn into_slot(mut self, target: &SharedFd) -> Self {
        // The kernel refuses O_CLOEXEC with a slot (a direct descriptor has no fd to close).
        let flags = self.raw_how.flags & !(libc::O_CLOEXEC as u64);
        self.raw_how.flags = flags;
        self.how = types::OpenHow::new()
            .flags(flags)
            .mode(self.raw_how.mode)
            .resolve(self.raw_how.resolve);
        self.target = Some(target.clone());
        self
    }
}

/// `RESOLVE_CACHED` (Linux 5.12): the lookup fails with `EAGAIN` rather than leave the dentry
/// cache.
const RESOLVE_CACHED: u64 = 0x20;

/// `openat2(2)` of `path` under `dirfd`.
fn openat2(dirfd: i32, path: &CString, how: &libc::open_how) -> io::Result<u32> {
    // SAFETY: pointers to a live CString and open_how; the size is the struct's.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            path.as_ptr(),
            how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    })
}

/// True if `fd` is a FIFO.
fn is_fifo(fd: &OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: `stat` is plain old data, written by fstat on an fd `fd` keeps open.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd.as_raw_fd(), &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFIFO
    }
}

/// True if `fd` is a regular file or a directory.
fn plain_file_or_dir(fd: &OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: `stat` is plain old data, written by fstat on an fd `fd` keeps open.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd.as_raw_fd(), &mut st) == 0
            && matches!(st.st_mode & libc::S_IFMT, libc::S_IFREG | libc::S_IFDIR)
    }
}

/// Sets the settable status flags of `fd` to those of the open `flags` (so `O_NONBLOCK` goes
/// unless asked for); false if the kernel would not.
fn set_status_flags(fd: &OwnedFd, flags: u64) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: F_SETFL on an fd `fd` keeps open; it changes only the settable flags.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags as i32) == 0 }
}

/// Whether this kernel knows `RESOLVE_CACHED` (an older one refuses it with `EINVAL`), asked
/// once per process: `/` opened `O_PATH` with it.
fn resolve_cached_works() -> bool {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| {
        // SAFETY: `open_how` is plain old data; all-zero is a valid value.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
        how.resolve = RESOLVE_CACHED;
        match openat2(libc::AT_FDCWD, &CString::from(c"/"), &how) {
            Ok(fd) => {
                // SAFETY: the probe's own fd, closed once.
                drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
                true
            }
            // EAGAIN: known, only "/" was not cached.
            Err(e) => e.raw_os_error() == Some(libc::EAGAIN),
        }
    })
}

// SAFETY: the SQE points at `self.path` (a heap CString) and `self.how` (inside the boxed op;
// `uring_entry` rewrites it for a slot before taking its address, and the op is boxed before
// `uring_entry` runs, so the address stays valid until the final completion); `perform` passes
// the path and `raw_how`, plus the raw dirfd kept open by `at`. A target slot is named by index
// only, kept by the `SharedFd` the op holds.
unsafe impl OpCode for OpenAt2 {
    type Output = io::Result<SharedFd>;

    fn uring_entry(&mut self) -> Option<Entry> {
        if self.alloc.is_some() {
            self.how = self.slot_how();
            let op = opcode::OpenAt2::new(types::Fd(self.at.raw()), self.path.as_ptr(), &self.how);
            return Some(
                op.file_index(Some(types::DestinationSlot::auto_target()))
                    .build(),
            );
        }
        let op = opcode::OpenAt2::new(types::Fd(self.at.raw()), self.path.as_ptr(), &self.how);
        let Some(target) = &self.target else {
            return Some(op.build());
        };
        // A slot of this ring's table only (`sqe_fd` says whether it is); anything else takes
        // the plan path, which refuses it.
        let (fd, fixed) = super::sqe_fd(target);
        // Only a reserved slot: an open into any other would replace (and close) the
        // connection or file a descriptor there holds.
        if !fixed.contains(io_uring::squeue::Flags::FIXED_FILE) || !target.is_reserved_slot() {
            return None;
        }
        let slot = types::DestinationSlot::try_from_slot_target(fd.0 as u32).ok()?;
        Some(op.file_index(Some(slot)).build())
    }

    fn plan(&self) -> Plan {
        Plan::Blocking
    }

    fn traits(&self) -> OpTraits {
        // Not with O_EXCL: a create that ran would fail with EEXIST the second time.
        let traits = OpTraits::NONE.repeatable(self.raw_how.flags & libc::O_EXCL as u64 == 0);
        // RESOLVE_CACHED refuses creation and truncation (they may block). Only opens for
        // reading (or `O_PATH`): a write open may copy a file up (overlayfs) or wait for a
        // lease to break. `O_TMPFILE` holds the `O_DIRECTORY` bit: only its own bit counts. A
        // slot is the ring's business.
        let flags = self.raw_how.flags as i32;
        let creates = libc::O_CREAT | libc::O_TRUNC | (libc::O_TMPFILE & !libc::O_DIRECTORY);
        let reads = flags & libc::O_ACCMODE == libc::O_RDONLY || flags & libc::O_PATH != 0;
        if flags & creates == 0
            && reads
            && self.target.is_none()
            && self.alloc.is_none()
            && resolve_cached_works()
        {
            traits.inline(Inline::PathCache)
        } else {
            traits
        }
    }

    /// The attempt io_uring makes in its submission: the lookup only from the dentry cache, and
    /// the open itself `O_NONBLOCK`, so that opening a FIFO does not wait for its other end on
    /// the worker; the flag is cleared again where the caller did not ask for it. (An `O_PATH`
    /// open takes no other flag, and never waits: nothing is opened.)
    fn try_nowait(&mut self) -> Option<io::Result<u32>> {
        let mut how = self.raw_how;
        how.resolve |= RESOLVE_CACHED;
        let path_only = how.flags & libc::O_PATH as u64 != 0;
        if !path_only {
            how.flags |= libc::O_NONBLOCK as u64;
        }
        let asked_nonblock = path_only || self.raw_how.flags & libc::O_NONBLOCK as u64 != 0;
        match openat2(self.at.raw(), &self.path, &how) {
            // Not all of the path is in the dentry cache: the pool does the lookup.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => None,
            // A FIFO opened for writing with no reader: only the non-blocking open fails so;
            // the caller asked for the blocking one, which waits on the pool.
            Err(e) if !asked_nonblock && e.raw_os_error() == Some(libc::ENXIO) => None,
            Ok(fd) if !asked_nonblock => {
                // SAFETY: the fd this attempt just opened, owned here until returned.
                let owned = unsafe { OwnedFd::from_raw_fd(fd as i32) };
                // Only a file or a directory opens the same either way; anything else (a FIFO
                // opens at once non-blocking, where the open asked for waits for a writer; a
                // device may answer differently) is closed, and the pool opens it as asked.
                if !plain_file_or_dir(&owned) || !set_status_flags(&owned, self.raw_how.flags) {
                    return None;
                }
                self.performed = true;
                Some(Ok(owned.into_raw_fd() as u32))
            }
            res => {
                self.performed = true;
                Some(res)
            }
        }
    }

    fn perform(&mut self) -> io::Result<u32> {
        self.performed = true;
        openat2(self.at.raw(), &self.path, &self.raw_how)
    }

    fn ring_result_falls_back(&mut self, res: i32) -> bool {
        // The ring opens non-blocking first: a FIFO opened for writing with no reader then
        // fails with ENXIO, and one opened for reading opens at once, where the blocking open
        // asked for waits for the other end. The pool makes that open, as asked. (Only a
        // plain fd can be looked at; an open into a slot is the ring's answer.)
        let flags = self.raw_how.flags as i32;
        if flags & (libc::O_NONBLOCK | libc::O_PATH) != 0 || self.target.is_some() {
            return false;
        }
        match flags & libc::O_ACCMODE {
            libc::O_WRONLY => res == -libc::ENXIO,
            libc::O_RDONLY if res >= 0 && self.alloc.is_none() => {
                // SAFETY: the fd the ring just opened for this op; nobody else has it yet.
                let fd = unsafe { OwnedFd::from_raw_fd(res) };
                if is_fifo(&fd) {
                    return true; // closed by the drop
                }
                // Not a FIFO: kept, as the ring's result.
                let _ = fd.into_raw_fd();
                false
            }
            _ => false,
        }
    }

    fn shared_fd(&self) -> Option<&SharedFd> {
        // The slot, so that the dispatch refuses to run it outside the ring.
        self.target.as_ref()
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<SharedFd> {
        let res = result?;
        if let Some(target) = self.target {
            return Ok(target);
        }
        if let (Some(slot), false) = (self.alloc, self.performed) {
            return Ok(slot.fill_file(res));
        }
        // SAFETY: a successful openat2 returns a new fd that nobody else owns.
        let fd = SharedFd::new(unsafe { OwnedFd::from_raw_fd(res as i32) });
        fd.set_opened_with(self.raw_how.flags as i32);
        Ok(fd)
    }

    fn orphaned(&mut self, res: i32, _flags: u32) {
        // A slot is closed by its `SharedFd`'s drop.
        if self.target.is_some() {
            return;
        }
        match self.alloc.take() {
            // Owned for a moment, so that its drop queues the slot's close.
            Some(slot) if res >= 0 && !self.performed => drop(slot.fill_file(res as u32)),
            _ => close_orphan_fd(res),
        }
    }
}

super::opaque_debug!(OpenAt2);
