//! Choosing a backend at run time: io_uring when the kernel allows it, epoll otherwise.
//!
//! `DriverChoice::Auto` (the default) takes io_uring and falls back to epoll only when io_uring is
//! *unavailable*: `ENOSYS` (no io_uring in the kernel), `EPERM`/`EACCES` (seccomp filters such as
//! Docker's default profile, `kernel.io_uring_disabled`), `EOPNOTSUPP`/`EINVAL` (a kernel too old
//! for the features hoop needs). Resource errors (`ENOMEM`, `EMFILE`, …) are reported, not hidden
//! behind a fallback. The environment variable `HOOP_DRIVER=epoll|io_uring` overrides `Auto`.

use super::{Backend, EpollDriver, UringDriver};
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::sync::Once;

/// Which backend a runtime should use: the builder's request ([`DriverKind`] is what runs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DriverChoice {
    /// io_uring if available, else epoll; `HOOP_DRIVER` may force either.
    #[default]
    Auto,
    /// io_uring; building the runtime fails if the kernel refuses it.
    IoUring,
    /// The epoll reactor plus the blocking pool for file operations.
    Epoll,
}

/// The old name of [`DriverChoice`].
#[deprecated(
    since = "0.2.0",
    note = "renamed DriverChoice: it is the request, DriverKind is what runs"
)]
pub type Driver = DriverChoice;

/// The backend a runtime actually runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DriverKind {
    /// One io_uring per worker.
    IoUring,
    /// One epoll instance per worker, and the blocking pool.
    Epoll,
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DriverKind::IoUring => "io_uring",
            DriverKind::Epoll => "epoll",
        })
    }
}

/// What a runtime chose and why; see [`crate::runtime_info`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// The backend in use.
    pub driver: DriverKind,
    /// Why it was chosen ("requested by the builder", "HOOP_DRIVER=epoll", "io_uring
    /// unavailable: …").
    pub reason: String,
    /// The io_uring setup flags the kernel accepted, and `REGISTERED_RING_FD` if the worker
    /// enters its ring by a registered index (empty on epoll).
    pub uring_setup: String,
    /// Number of workers of the runtime.
    pub workers: usize,
    /// The kernel release `(major, minor)` whose io_uring features the runtime may use: the
    /// running kernel's, or the older one `HOOP_EMULATE_KERNEL` names (see `DESIGN.md`).
    pub kernel: (u32, u32),
}

/// True for the errors that mean "this process cannot use io_uring here".
pub(crate) fn is_unavailable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS | libc::EPERM | libc::EACCES | libc::EOPNOTSUPP | libc::EINVAL)
    )
}

fn from_env() -> io::Result<Option<DriverChoice>> {
    match std::env::var("HOOP_DRIVER") {
        Err(_) => Ok(None),
        Ok(v) => match v.trim() {
            "" | "auto" => Ok(None),
            "epoll" => Ok(Some(DriverChoice::Epoll)),
            "io_uring" | "iouring" | "uring" => Ok(Some(DriverChoice::IoUring)),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("HOOP_DRIVER={other:?}: expected epoll, io_uring or auto"),
            )),
        },
    }
}

/// The backend chosen for one worker, and why.
pub(crate) struct Selection {
    pub(super) backend: Backend,
    /// Why it was chosen (see [`RuntimeInfo::reason`]).
    pub(crate) reason: String,
    /// The ring's setup flags (see [`RuntimeInfo::uring_setup`]).
    pub(crate) setup: String,
}

impl Selection {
    /// The backend chosen.
    pub(crate) fn kind(&self) -> DriverKind {
        match self.backend {
            Backend::Uring(_) => DriverKind::IoUring,
            Backend::Epoll(_) => DriverKind::Epoll,
        }
    }
}

/// Builds the backend for one worker.
pub(crate) fn select_backend(
    requested: DriverChoice,
    config: &super::DriverConfig,
    doorbell: RawFd,
    fault: Option<i32>,
) -> io::Result<Selection> {
    let new_ring = || match fault {
        Some(errno) => Err(io::Error::from_raw_os_error(errno)),
        None => UringDriver::new(config, doorbell),
    };
    let (wanted, why) = match requested {
        DriverChoice::Auto => match from_env()? {
            Some(d) => (
                d,
                format!(
                    "HOOP_DRIVER={}",
                    std::env::var("HOOP_DRIVER").unwrap_or_default()
                ),
            ),
            None => (DriverChoice::Auto, String::new()),
        },
        d => (d, "requested by the builder".to_string()),
    };
    let epoll = |reason: String| -> io::Result<Selection> {
        Ok(Selection {
            backend: Backend::Epoll(EpollDriver::new(doorbell)?),
            reason,
            setup: String::new(),
        })
    };
    let uring = |ring: UringDriver, reason: String| Selection {
        setup: ring.setup.clone(),
        backend: Backend::Uring(ring),
        reason,
    };
    match wanted {
        DriverChoice::Epoll => epoll(why),
        DriverChoice::IoUring => {
            let ring = new_ring().map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("io_uring requested ({why}) but unavailable: {e}"),
                )
            })?;
            Ok(uring(ring, why))
        }
        DriverChoice::Auto => match new_ring() {
            Ok(ring) => Ok(uring(ring, "io_uring available".into())),
            Err(e) if is_unavailable(&e) => {
                let reason = format!("io_uring unavailable ({e})");
                static WARNED: Once = Once::new();
                WARNED.call_once(|| crate::log::warning!("{reason}; using epoll"));
                epoll(reason)
            }
            Err(e) => Err(e),
        },
    }
}
