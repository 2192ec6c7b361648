//! [`Credentials`]: run filesystem operations as another user (uid, gid, supplementary groups),
//! the way a file server impersonates the connected user.
//!
//! On io_uring the credentials become a *personality* (`IORING_REGISTER_PERSONALITY`), registered
//! once per worker ring, cached, put in the SQE of each operation, and unregistered once every
//! `Credentials` value for them is gone. On the blocking pool (the epoll driver, and calls io_uring
//! lacks) the pool thread switches its filesystem credentials (`setfsuid`, `setfsgid`,
//! `setgroups`, all per-thread) for the duration of the call. Either way the identity is least
//! privilege: the filesystem ids change, and every effective capability is dropped unless the
//! identity is uid 0 (`capset` on the thread, before a personality is registered from it). The
//! kernel itself only drops the filesystem capabilities when the fs uid *leaves 0*, and none of
//! the others: without the `capset` an impersonated user of a root server kept `CAP_SYS_ADMIN`
//! (`trusted.*` xattrs), `CAP_SETFCAP` (`security.capability`, file capabilities) and
//! `CAP_SYS_RESOURCE` (quotas), and a non-root server holding `CAP_DAC_OVERRIDE` kept it.
//!
//! Creating a personality for another user needs `CAP_SETUID` and `CAP_SETGID`; without them the
//! operation fails with `EPERM` instead of silently running as the server.

use std::hash::{Hash, Hasher};
use std::io;
use std::sync::Arc;

/// A user identity for filesystem operations. Cheap to clone; `Send + Sync`.
///
/// ```no_run
/// # hoop_runtime::block_on(async {
/// use hoop_runtime::Credentials;
/// // As root: act as uid 1000, gid 1000, in supplementary group 27.
/// let alice = Credentials::new(1000, 1000, vec![27]);
/// # let _ = alice;
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct Credentials {
    inner: Arc<Inner>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Inner {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) groups: Vec<u32>,
}

impl Credentials {
    /// The identity `uid`/`gid` with supplementary `groups`.
    pub fn new(uid: u32, gid: u32, mut groups: Vec<u32>) -> Self {
        groups.sort_unstable();
        groups.dedup();
        Credentials {
            inner: Arc::new(Inner { uid, gid, groups }),
        }
    }

    /// The user id.
    pub fn uid(&self) -> u32 {
        self.inner.uid
    }

    /// The group id.
    pub fn gid(&self) -> u32 {
        self.inner.gid
    }

    /// The supplementary groups.
    pub fn groups(&self) -> &[u32] {
        &self.inner.groups
    }

    pub(crate) fn weak(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn key(&self) -> &Inner {
        &self.inner
    }

    /// Runs `f` on this thread with these filesystem credentials, restoring the thread's own
    /// afterwards (also if `f` panics).
    pub(crate) fn scope<R>(&self, f: impl FnOnce() -> R) -> io::Result<R> {
        let guard = FsIdentity::switch(self)?;
        let out = f();
        drop(guard);
        Ok(out)
    }
}

impl PartialEq for Credentials {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

impl Eq for Credentials {}

impl Hash for Credentials {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state)
    }
}

/// The calling thread's filesystem identity while switched; restores it on drop.
struct FsIdentity {
    uid: u32,
    gid: u32,
    groups: Vec<libc::gid_t>,
    caps: Option<Caps>,
}

/// A thread's capability sets (`capget`/`capset`, version 3: two 32-bit words per set).
#[derive(Clone, Copy)]
#[repr(C)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

const CAP_VERSION_3: u32 = 0x2008_0522;

#[derive(Clone, Copy)]
struct Caps([CapData; 2]);

impl Caps {
    /// This thread's capabilities.
    fn get() -> io::Result<Caps> {
        let mut header = CapHeader {
            version: CAP_VERSION_3,
            pid: 0,
        };
        let mut data = [CapData {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        // SAFETY: a version-3 header and room for the two data words the kernel writes.
        let r = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Caps(data))
    }

    /// Makes these this thread's capabilities (pid 0: the calling thread only).
    fn set(&self) -> io::Result<()> {
        let mut header = CapHeader {
            version: CAP_VERSION_3,
            pid: 0,
        };
        // SAFETY: a version-3 header and the two data words the kernel reads.
        let r = unsafe { libc::syscall(libc::SYS_capset, &mut header, self.0.as_ptr()) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The same sets with nothing effective (the permitted set stays, so they can come back).
    fn without_effective(mut self) -> Caps {
        for d in &mut self.0 {
            d.effective = 0;
        }
        self
    }

    fn any_effective(&self) -> bool {
        self.0.iter().any(|d| d.effective != 0)
    }
}

fn set_groups(groups: &[libc::gid_t]) -> io::Result<()> {
    // The raw syscall changes only this thread; glibc's setgroups would change every thread.
    // SAFETY: `groups` is a live slice of `len` gids the kernel only reads.
    let r = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// setfsuid/setfsgid report failure only by returning the previous id: call again to check.
fn set_fs_id(set: unsafe extern "C" fn(u32) -> libc::c_int, id: u32) -> io::Result<u32> {
    // SAFETY: plain per-thread syscalls without memory arguments.
    let previous = unsafe { set(id) } as u32;
    // SAFETY: as above; an invalid id (-1) changes nothing and returns the current one.
    let now = unsafe { set(u32::MAX) } as u32;
    if now != id {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "switching filesystem credentials needs CAP_SETUID and CAP_SETGID",
        ));
    }
    Ok(previous)
}

impl FsIdentity {
    fn switch(to: &Credentials) -> io::Result<FsIdentity> {
        // SAFETY: getgroups with a zero size returns the count; then fills a buffer of that size.
        let groups = unsafe {
            let n = libc::getgroups(0, std::ptr::null_mut());
            let mut g = vec![0 as libc::gid_t; n.max(0) as usize];
            let m = libc::getgroups(n, g.as_mut_ptr());
            g.truncate(m.max(0) as usize);
            g
        };
        // SAFETY: plain per-thread queries (an invalid id changes nothing).
        let (uid, gid) = unsafe {
            (
                libc::setfsuid(u32::MAX) as u32,
                libc::setfsgid(u32::MAX) as u32,
            )
        };
        let caps = Caps::get()?;
        let mut saved = FsIdentity {
            uid,
            gid,
            groups,
            caps: None,
        };
        // Groups and gid first: once the fs uid is not 0, the right to change them may be gone.
        set_groups(&to.inner.groups)?;
        set_fs_id(libc::setfsgid, to.inner.gid)?;
        set_fs_id(libc::setfsuid, to.inner.uid)?;
        // Then the capabilities a user other than root does not have: all of them. (The kernel
        // dropped the filesystem ones above if the fs uid left 0, but none of the others.)
        if to.inner.uid != 0 {
            let now = Caps::get()?;
            if now.any_effective() {
                saved.caps = Some(caps);
                now.without_effective().set()?;
            }
        }
        Ok(saved)
    }
}

impl Drop for FsIdentity {
    fn drop(&mut self) {
        // The capabilities first (from the permitted set, which was kept), then the uid, which
        // gives back the filesystem capabilities needed for the rest.
        if let Some(caps) = &self.caps {
            if let Err(e) = caps.set() {
                crate::log::warning!("cannot restore this thread's capabilities: {e}");
            }
        }
        // SAFETY: per-thread syscalls restoring this thread's own previous identity.
        unsafe {
            libc::setfsuid(self.uid);
            libc::setfsgid(self.gid);
        }
        let _ = set_groups(&self.groups);
    }
}
