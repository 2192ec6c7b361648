//! [`OpenWalk`]: `openat2`'s `RESOLVE_*` semantics without `openat2`, for kernels before 5.6 and
//! seccomp profiles that deny it.
//!
//! The path is resolved one component at a time, each with `openat(dir, name, O_NOFOLLOW)`
//! relative to the previous directory's fd, so nothing is ever resolved by the kernel across
//! more than one name. `..` pops a stack of fds this walk opened (never `openat("..")` in a
//! confined walk), so a directory renamed or swapped meanwhile cannot lead above the start.
//! Symlinks are read (`readlinkat`) and their text is resolved by the same walk: absolute
//! targets restart at the root (`RESOLVE_IN_ROOT`) or are refused (`RESOLVE_BENEATH`, `EXDEV`);
//! procfs links are "magic" and refused with `ELOOP`, as `RESOLVE_NO_MAGICLINKS` does; 40
//! symlinks make `ELOOP`, as in the kernel. `RESOLVE_NO_XDEV` compares mount ids (`statx`).

use super::at::At;
use super::cvt;
use super::{close_orphan_fd, OpCode, OpTraits, Plan};
use crate::fd::SharedFd;
use io_uring::squeue::Entry;
use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

/// Symlinks followed before giving up, as the kernel's `MAXSYMLINKS`.
const MAX_SYMLINKS: u32 = 40;
/// `statfs.f_type` of procfs, whose symlinks are magic.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;
/// Inode number of procfs's root directory.
const PROC_ROOT_INO: u64 = 1;
/// How the walk holds the directories it passes through.
const DIR_PATH: i32 = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;

/// Opens `path` under `at` like `openat2(at, path, {flags, mode, resolve})`, by walking the
/// path component by component. Runs on the blocking pool on every driver.
pub struct OpenWalk {
    /// Keeps the directory open while a pool thread uses `raw_at`.
    _at: At,
    raw_at: RawFd,
    path: CString,
    flags: i32,
    mode: u32,
    resolve: u64,
}

impl OpenWalk {
    /// Same arguments as [`OpenAt2::new`](super::open::OpenAt2::new).
    pub fn new(at: At, path: CString, flags: i32, mode: u32, resolve: u64) -> Self {
        OpenWalk {
            raw_at: at.raw(),
            _at: at,
            path,
            flags: flags | libc::O_CLOEXEC,
            mode,
            resolve,
        }
    }
}

// SAFETY: no SQE; `perform` uses the raw dirfd kept open by `at`, the owned path, and fds it
// opens itself (all closed or returned before it ends).
unsafe impl OpCode for OpenWalk {
    type Output = io::Result<SharedFd>;

    fn uring_entry(&mut self) -> Option<Entry> {
        None
    }

    fn plan(&self) -> Plan {
        Plan::Blocking
    }

    fn traits(&self) -> OpTraits {
        OpTraits::NONE.ring_equivalent(io_uring::opcode::OpenAt2::CODE)
    }

    fn perform(&mut self) -> io::Result<u32> {
        let walk = Walk {
            beneath: self.resolve & libc::RESOLVE_BENEATH != 0,
            in_root: self.resolve & libc::RESOLVE_IN_ROOT != 0,
            no_symlinks: self.resolve & libc::RESOLVE_NO_SYMLINKS != 0,
            no_magic: self.resolve & libc::RESOLVE_NO_MAGICLINKS != 0,
            no_xdev: self.resolve & libc::RESOLVE_NO_XDEV != 0,
        };
        let fd = if self.resolve == 0 {
            // Nothing to enforce: the kernel's own resolution is exactly openat2's.
            openat(self.raw_at, &self.path, self.flags, self.mode)?
        } else {
            walk.open(self.raw_at, self.path.as_bytes(), self.flags, self.mode)?
        };
        Ok(fd.into_raw_fd() as u32)
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<SharedFd> {
        // SAFETY: a successful walk returns a new fd that nobody else owns.
        result.map(|fd| SharedFd::new(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }

    fn orphaned(&mut self, res: i32, _flags: u32) {
        close_orphan_fd(res);
    }
}

struct Walk {
    beneath: bool,
    in_root: bool,
    no_symlinks: bool,
    no_magic: bool,
    no_xdev: bool,
}

fn err(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

fn c_name(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| err(libc::EINVAL))
}

/// `openat` of one name, returning an owned fd.
fn openat(dir: RawFd, name: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated name and a dirfd the caller keeps open.
    let fd = cvt(unsafe { libc::openat(dir, name.as_ptr(), flags, mode) } as libc::c_long)?;
    // SAFETY: a new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The target of symlink `name` in `dir`, or `None` if it is not a symlink.
fn readlinkat(dir: RawFd, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: the buffer has `buf.len()` writable bytes.
    let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EINVAL) => Ok(None),
            _ => Err(e),
        };
    }
    buf.truncate(n as usize);
    Ok(Some(buf))
}

/// The mount id of `fd` (`statx` `STATX_MNT_ID`, 5.8), or its device number on older kernels.
fn mount_of(fd: RawFd) -> io::Result<u64> {
    // SAFETY: `statx` is plain old data; the kernel fills it.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: an empty path with AT_EMPTY_PATH names `fd` itself; `stx` is writable.
    cvt(unsafe {
        libc::statx(
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    } as libc::c_long)?;
    Ok(if stx.stx_mask & libc::STATX_MNT_ID != 0 {
        stx.stx_mnt_id
    } else {
        (u64::from(stx.stx_dev_major) << 32) | u64::from(stx.stx_dev_minor)
    })
}

fn is_symlink_fd(fd: RawFd) -> io::Result<bool> {
    // SAFETY: `stat` is plain old data; the kernel fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open; `st` is writable.
    cvt(unsafe { libc::fstat(fd, &mut st) } as libc::c_long)?;
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFLNK)
}

/// True if symlinks in `dir` are procfs "magic links" (`/proc/<pid>/fd/*`, `cwd`, `exe`, ...):
/// every symlink on procfs except those at its root (`self`, `thread-self`, `mounts`, ...).
fn magic_links_in(dir: RawFd) -> bool {
    // SAFETY: `statfs` is plain old data; the kernel fills it.
    let mut sf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `dir` is open; `sf` is writable.
    if unsafe { libc::fstatfs(dir, &mut sf) } != 0 || sf.f_type != PROC_SUPER_MAGIC {
        return false;
    }
    // SAFETY: `stat` is plain old data; the kernel fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `dir` is open; `st` is writable.
    let root = unsafe { libc::fstat(dir, &mut st) } == 0 && st.st_ino == PROC_ROOT_INO;
    !root
}

/// Splits a path into its names, dropping empty ones. (`.` stays: `file/.` must fail with
/// `ENOTDIR`, as the kernel's lookup does.)
fn components(path: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
}

impl Walk {
    fn confined(&self) -> bool {
        self.beneath || self.in_root
    }

    fn open(&self, start: RawFd, path: &[u8], flags: i32, mode: u32) -> io::Result<OwnedFd> {
        if path.is_empty() {
            return Err(err(libc::ENOENT));
        }
        // A trailing slash makes the kernel follow a final symlink even with O_NOFOLLOW.
        let user_nofollow = flags & libc::O_NOFOLLOW != 0 && !path.ends_with(b"/");
        // Directories opened by the walk below `start`; empty means "at `start`".
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut pending: VecDeque<Vec<u8>> = VecDeque::new();
        let mut links = 0;
        let mut root_set = path.starts_with(b"/");
        self.restart(path, &mut stack, &mut pending)?;
        let must_be_dir = path.ends_with(b"/");
        let cur = |stack: &Vec<OwnedFd>| stack.last().map_or(start, AsRawFd::as_raw_fd);
        // With RESOLVE_NO_XDEV the whole walk must stay on the mount it starts on (the start, or
        // `/` for an absolute path): every descent, `..` and absolute-symlink jump is checked.
        let mount = match self.no_xdev {
            true => Some(mount_of(cur(&stack))?),
            false => None,
        };
        let same_mount = |fd: RawFd| -> io::Result<()> {
            match mount {
                Some(m) if mount_of(fd)? != m => Err(err(libc::EXDEV)),
                _ => Ok(()),
            }
        };

        loop {
            let Some(name) = pending.pop_front() else {
                // The path named the start itself (or `..`s back to it): reopen it.
                return openat(cur(&stack), c".", flags, mode);
            };
            let last = pending.is_empty();
            if name == b"." {
                if last {
                    return openat(cur(&stack), c".", flags, mode);
                }
                continue;
            }
            if name == b".." {
                root_set = true;
                if !self.confined() {
                    let up = openat(cur(&stack), c"..", DIR_PATH, 0)?;
                    same_mount(up.as_raw_fd())?;
                    stack.push(up);
                } else if stack.pop().is_none() && self.beneath {
                    return Err(err(libc::EXDEV));
                }
                // In root, `..` at the root stays at the root.
                if last {
                    return openat(cur(&stack), c".", flags, mode);
                }
                continue;
            }
            let c = c_name(&name)?;
            let dir = cur(&stack);
            if last && mount.is_some() {
                // Check the mount before an open with the caller's flags can have effects
                // (O_TRUNC, a FIFO's open) on a file of another mount.
                if let Ok(probe) = openat(
                    dir,
                    &c,
                    libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    0,
                ) {
                    same_mount(probe.as_raw_fd())?;
                }
            }
            let opened = if last {
                let mut f = flags | libc::O_NOFOLLOW;
                if must_be_dir {
                    f |= libc::O_DIRECTORY;
                }
                openat(dir, &c, f, mode)
            } else {
                openat(dir, &c, DIR_PATH | libc::O_NOFOLLOW, 0)
            };
            let follow = match opened {
                // `O_PATH | O_NOFOLLOW` opens a final symlink itself instead of failing.
                Ok(fd)
                    if last
                        && flags & libc::O_PATH != 0
                        && !user_nofollow
                        && is_symlink_fd(fd.as_raw_fd())? =>
                {
                    None
                }
                Ok(fd) => {
                    same_mount(fd.as_raw_fd())?;
                    if last {
                        return Ok(fd);
                    }
                    stack.push(fd);
                    continue;
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => Some(e),
                Err(e) => return Err(e),
            };
            // A symlink, or not a directory where one was needed.
            let Some(target) = readlinkat(dir, &c)? else {
                return Err(follow.unwrap_or_else(|| err(libc::ENOTDIR)));
            };
            if last && user_nofollow {
                return Err(follow.unwrap_or_else(|| err(libc::ELOOP)));
            }
            if self.no_symlinks || (self.no_magic && magic_links_in(dir)) {
                return Err(err(libc::ELOOP));
            }
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(err(libc::ELOOP));
            }
            if target.is_empty() {
                return Err(err(libc::ENOENT));
            }
            let rest: Vec<Vec<u8>> = pending.drain(..).collect();
            if target.starts_with(b"/") {
                // The kernel compares the mount with the lookup's root, which a relative,
                // unconfined lookup sets only at its first `..`: before, every jump crosses.
                if self.no_xdev && !self.confined() && !root_set {
                    return Err(err(libc::EXDEV));
                }
                self.restart(&target, &mut stack, &mut pending)?;
                same_mount(cur(&stack))?;
            } else {
                pending.extend(components(&target));
            }
            pending.extend(rest);
        }
    }

    /// Starts (or restarts, for an absolute symlink target) resolving `path`.
    fn restart(
        &self,
        path: &[u8],
        stack: &mut Vec<OwnedFd>,
        pending: &mut VecDeque<Vec<u8>>,
    ) -> io::Result<()> {
        if path.starts_with(b"/") {
            if self.beneath {
                return Err(err(libc::EXDEV));
            }
            stack.clear();
            if !self.confined() {
                let root = openat(libc::AT_FDCWD, c"/", DIR_PATH, 0)?;
                stack.push(root);
            }
        }
        pending.clear();
        pending.extend(components(path));
        Ok(())
    }
}

/// True if the `openat2` syscall works in this process: `false` where the kernel lacks it
/// (`ENOSYS`) or a seccomp filter denies it (`EPERM`/`ENOSYS`). A cheap probe (an `O_PATH` open
/// of `/`), meant for telling a denied syscall from a real `EPERM` of an open.
pub fn openat2_works() -> bool {
    // SAFETY: `open_how` is plain old data; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    // SAFETY: a NUL-terminated path and a live `open_how` of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            c"/".as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return false;
    }
    // SAFETY: the probe's own new fd.
    drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    true
}

super::opaque_debug!(OpenWalk);
