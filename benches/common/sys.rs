//! What the harness-less benches share: pinning, CPU time from /proc, medians.

#![allow(dead_code)] // each bench uses part of it

use std::time::Duration;

/// Pins the calling thread to `cpu` (modulo the CPUs there are). Children spawned afterwards
/// from this thread inherit the mask.
pub fn pin(cpu: usize) {
    // SAFETY: a local cpu_set_t the kernel only reads.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % num_cpus(), &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// CPUs online. Not `available_parallelism`: that follows the calling thread's affinity, which
/// `pin` narrows.
pub fn num_cpus() -> usize {
    // SAFETY: sysconf has no memory arguments.
    (unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }).max(1) as usize
}

/// User + system CPU time from a `/proc/.../stat` file: a thread's
/// (`/proc/self/task/TID/stat`) or a whole process's, its exited threads and io_uring's io-wq
/// workers included (`/proc/PID/stat`).
pub fn cpu_time(stat_path: &str) -> Duration {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the command name (which may contain spaces, inside parentheses).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no memory arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

/// The calling thread's id.
pub fn gettid() -> i32 {
    // SAFETY: gettid has no arguments.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// The median (upper middle for even counts); NaN for no samples.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The medians of each series of (a, b) samples, taken apart.
pub fn medians(series: &[Vec<(f64, f64)>]) -> Vec<(f64, f64)> {
    series
        .iter()
        .map(|s| {
            (
                median(s.iter().map(|s| s.0).collect()),
                median(s.iter().map(|s| s.1).collect()),
            )
        })
        .collect()
}

/// The value after `--name` on the command line, parsed, or `default`.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
