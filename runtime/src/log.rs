//! Diagnostics through [`tracing`], target `hoop`: the driver chosen and why, ring setup flags,
//! fallbacks, recovered errors. Nothing is emitted on the hot path (per operation or per tick).
//!
//! Warnings — events that change how the runtime behaves, like a fallback to epoll or memory
//! leaked at shutdown — also go to stderr when the process has no `tracing` subscriber, so they
//! are never silent.

/// A warning: to the `tracing` subscriber if there is one, else to stderr.
macro_rules! warning {
    ($($arg:tt)+) => {{
        if tracing::dispatcher::has_been_set() {
            tracing::warn!(target: "hoop", $($arg)+);
        } else {
            eprintln!("hoop: warning: {}", format_args!($($arg)+));
        }
    }};
}
pub(crate) use warning;
