//! The one place files and directories are opened: `openat2`, retried when the kernel asks, and
//! replaced by a component-by-component walk where `openat2` is missing or denied.

use hoop_runtime::fd::SharedFd;
use hoop_runtime::op::at::{c_path, At};
use hoop_runtime::op::open::OpenAt2;
use hoop_runtime::op::open_walk::{openat2_works, OpenWalk};
use hoop_runtime::op::Op;
use hoop_runtime::Credentials;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Attempts before giving up on `EAGAIN`.
const RETRIES: u32 = 32;

/// Set once `openat2` turned out to be missing or denied in this process (or forced by the
/// environment variable `HOOP_NO_OPENAT2`, which the test suite uses to run everything through
/// the walk).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

fn walk_instead() -> bool {
    static FORCED: OnceLock<bool> = OnceLock::new();
    *FORCED.get_or_init(|| std::env::var_os("HOOP_NO_OPENAT2").is_some_and(|v| v != "0"))
        || NO_OPENAT2.load(Ordering::Relaxed)
}

/// True if an `openat2` failure means the syscall itself is unavailable.
fn openat2_unavailable(e: &io::Error) -> bool {
    match e.raw_os_error() {
        Some(libc::ENOSYS) => true,
        // A seccomp profile may deny unknown syscalls with EPERM; an open may also fail with a
        // genuine EPERM, so ask the kernel which it is.
        Some(libc::EPERM) => !openat2_works(),
        _ => false,
    }
}

/// Opens `path` under `at` with `openat2` semantics. With `RESOLVE_BENEATH` or
/// `RESOLVE_IN_ROOT`, `openat2` answers `EAGAIN` when a rename anywhere on the system raced with
/// a `..` lookup (the kernel could not prove the lookup stayed inside); the call is then simply
/// repeated, a bounded number of times.
pub(crate) async fn openat2(
    at: &At,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve: u64,
    creds: Option<&Credentials>,
) -> io::Result<SharedFd> {
    openat2_into(at, path, (flags, mode, resolve), creds, false).await
}

/// [`openat2`], into a direct descriptor of the worker's ring if `direct` (see
/// `OpenAt2::direct`; the `O_NOFOLLOW` walk gives a plain fd).
pub(crate) async fn openat2_into(
    at: &At,
    path: &Path,
    (flags, mode, resolve): (i32, u32, u64),
    creds: Option<&Credentials>,
    direct: bool,
) -> io::Result<SharedFd> {
    let c = c_path(path)?;
    let confined = resolve & (libc::RESOLVE_BENEATH | libc::RESOLVE_IN_ROOT) != 0;
    let mut tries = 0;
    loop {
        if walk_instead() {
            let op = OpenWalk::new(at.clone(), c.clone(), flags, mode, resolve);
            return Op::new(op).with_credentials(creds.cloned()).await;
        }
        let mut op = OpenAt2::new(at.clone(), c.clone(), flags, mode, resolve);
        if direct {
            op = op.direct();
        }
        match Op::new(op).with_credentials(creds.cloned()).await {
            Err(e) if confined && e.raw_os_error() == Some(libc::EAGAIN) && tries < RETRIES => {
                tries += 1;
                hoop_runtime::yield_now().await;
            }
            Err(e) if openat2_unavailable(&e) => {
                if !NO_OPENAT2.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        target: "hoop",
                        error = %e,
                        "openat2 unavailable; resolving paths with an O_NOFOLLOW walk"
                    );
                }
            }
            res => return res,
        }
    }
}
