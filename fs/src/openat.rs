//! The one place files and directories are opened: `openat2`, retried when the kernel asks.

use hoop_runtime::fd::SharedFd;
use hoop_runtime::op::at::{c_path, At};
use hoop_runtime::op::open::OpenAt2;
use hoop_runtime::op::Op;
use hoop_runtime::Credentials;
use std::io;
use std::path::Path;

/// Attempts before giving up on `EAGAIN`.
const RETRIES: u32 = 32;

/// Opens `path` under `at`. With `RESOLVE_BENEATH` or `RESOLVE_IN_ROOT`, `openat2` answers
/// `EAGAIN` when a rename anywhere on the system raced with a `..` lookup (the kernel could not
/// prove the lookup stayed inside); the call is then simply repeated, a bounded number of times.
pub(crate) async fn openat2(
    at: &At,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve: u64,
    creds: Option<&Credentials>,
) -> io::Result<SharedFd> {
    let c = c_path(path)?;
    let confined = resolve & (libc::RESOLVE_BENEATH | libc::RESOLVE_IN_ROOT) != 0;
    let mut tries = 0;
    loop {
        let op = OpenAt2::new(at.clone(), c.clone(), flags, mode, resolve);
        match Op::new(op).with_credentials(creds.cloned()).await {
            Err(e) if confined && e.raw_os_error() == Some(libc::EAGAIN) && tries < RETRIES => {
                tries += 1;
                hoop_runtime::yield_now().await;
            }
            res => return res,
        }
    }
}
