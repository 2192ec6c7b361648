//! Minimal diagnostics on stderr until the runtime reports through `tracing`.
//!
//! Warnings (a fallback to epoll, a leaked ring) always print; debug lines print only when the
//! environment variable `HOOP_LOG` is set. Nothing is printed on the hot path.

use std::fmt::Arguments;
use std::sync::OnceLock;

/// Prints a warning that changes how the runtime behaves.
pub(crate) fn warn(args: Arguments<'_>) {
    eprintln!("hoop: warning: {args}");
}

/// Prints a debug line if `HOOP_LOG` is set.
pub(crate) fn debug(args: Arguments<'_>) {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    if *ENABLED.get_or_init(|| std::env::var_os("HOOP_LOG").is_some()) {
        eprintln!("hoop: {args}");
    }
}
