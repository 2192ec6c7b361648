//! CPU affinity masks: pinning workers, keeping their blocking-pool threads off a single pinned
//! core, and giving the building thread its affinity back.
//!
//! A thread inherits the affinity of the thread that starts it: without care, a pinned worker
//! would confine every blocking job it starts to its own core, where the jobs compete with the
//! worker instead of running beside it.

use std::fmt;
use std::io;

/// A set of CPUs (`cpu_set_t`).
#[derive(Clone, Copy)]
pub(crate) struct CpuSet(libc::cpu_set_t);

impl CpuSet {
    /// The CPUs the calling thread may run on (which honours cgroup cpusets).
    pub(crate) fn of_current_thread() -> io::Result<CpuSet> {
        // SAFETY: `cpu_set_t` is a plain bitmask; all-zero is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: the kernel writes at most `size_of::<cpu_set_t>()` bytes into `set`, a live
        // local of that size.
        let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(CpuSet(set))
    }

    /// The set holding only `cpu` (empty if `cpu` is beyond `CPU_SETSIZE`, which no CPU
    /// number from [`CpuSet::cpus`] is).
    pub(crate) fn single(cpu: usize) -> CpuSet {
        // SAFETY: as above, all-zero is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        if cpu < libc::CPU_SETSIZE as usize {
            // SAFETY: `cpu` is within the mask's bits (checked above).
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
        CpuSet(set)
    }

    /// The CPUs in the set, ascending.
    pub(crate) fn cpus(&self) -> Vec<usize> {
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `c` is below `CPU_SETSIZE`, within the mask's bits.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &self.0) })
            .collect()
    }

    /// Restricts the calling thread to this set.
    pub(crate) fn apply_to_current_thread(&self) -> io::Result<()> {
        // SAFETY: the kernel only reads `size_of::<cpu_set_t>()` bytes from a live set.
        let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&self.0), &self.0) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.cpus()).finish()
    }
}
