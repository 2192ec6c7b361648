//! The lifecycle of an in-flight operation, shared by every completion source.
//!
//! A slot is created when an operation is handed to the kernel (an SQE) or to the blocking pool,
//! and removed only when its *final* completion has been consumed. The future that started the
//! operation owns its data (buffers, paths, sockaddrs) while it waits; if the future is dropped,
//! the data moves into the slot (`Ignored`) and is freed only when the final completion arrives,
//! after [`DynOp::orphaned`] has released whatever the operation created (an fd, a buffer id).
//!
//! Slots are addressed by `user_data = generation << 32 | key`: a cancel aimed at an operation
//! that has finished cannot hit another operation that reused its key.

use super::opcode::{DynOp, ReapHook};
use slab::Slab;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;

/// Completions, in the whole process, that failed with `EFAULT`: the kernel found an address of
/// the operation unmapped. hoop never hands the kernel an address it does not own, so under the
/// quarantine allocator of `tests/quarantine.rs` (freed memory stays mapped `PROT_NONE`) a
/// non-zero count means memory was freed before the kernel was done with it.
static EFAULTS: AtomicU64 = AtomicU64::new(0);

/// Completions in this process that failed with `EFAULT` (the kernel found an operation's
/// memory unmapped); used by the quarantine test to prove no late kernel write hit freed memory.
pub fn efault_completions() -> u64 {
    EFAULTS.load(Ordering::Relaxed)
}

fn note_fault(c: Completion) {
    if c.res == -libc::EFAULT {
        EFAULTS.fetch_add(1, Ordering::Relaxed);
    }
}

/// One completion: the raw result (negative errno on failure) and the CQE flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Completion {
    pub(crate) res: i32,
    pub(crate) flags: u32,
}

/// The errno a completion carries for an error made without one (a credentials switch refused,
/// a caught panic), so that both drivers report the same kind of error.
fn errno_of_kind(kind: std::io::ErrorKind) -> i32 {
    use std::io::ErrorKind as K;
    match kind {
        K::PermissionDenied => libc::EPERM,
        K::NotFound => libc::ENOENT,
        K::InvalidInput => libc::EINVAL,
        K::WouldBlock => libc::EAGAIN,
        K::Interrupted => libc::EINTR,
        K::Unsupported => libc::EOPNOTSUPP,
        K::OutOfMemory => libc::ENOMEM,
        _ => libc::EIO,
    }
}

impl Completion {
    pub(crate) fn from_result(r: std::io::Result<u32>) -> Self {
        let res = match r {
            Ok(n) => n as i32,
            Err(e) => -e.raw_os_error().unwrap_or_else(|| errno_of_kind(e.kind())),
        };
        Completion { res, flags: 0 }
    }

    pub(crate) fn result(self) -> std::io::Result<u32> {
        if io_uring::cqueue::notif(self.flags) {
            // A zero-copy notification's result is not an errno: 0, or usage bits
            // (`IORING_NOTIF_USAGE_ZC_COPIED` is the sign bit).
            return Ok(self.res as u32);
        }
        if self.res < 0 {
            // `wrapping_neg`: no errno is `i32::MIN`, but a result never makes this panic.
            Err(std::io::Error::from_raw_os_error(self.res.wrapping_neg()))
        } else {
            Ok(self.res as u32)
        }
    }
}

pub(crate) enum Life {
    /// In flight; wakes the future when a completion arrives.
    Waiting(Option<Waker>),
    /// The final completion arrived and waits for the future to take it.
    Completed(Completion),
    /// The future is gone. The data (if the slot holds it: ring ops) waits for the final
    /// completion; blocking-pool ops bring their data back with the completion.
    Ignored(Option<Box<dyn DynOp>>),
}

pub(crate) struct Slot {
    pub(crate) life: Life,
    /// True for an SQE in the ring (cancellable), false for a blocking-pool job.
    pub(crate) in_ring: bool,
    generation: u32,
    /// Completions of a multishot operation that arrived before the future polled (each one
    /// carried `IORING_CQE_F_MORE`).
    pub(crate) more: VecDeque<Completion>,
    /// Data a blocking-pool job brought back with its completion.
    pub(crate) returned: Option<Box<dyn DynOp>>,
    /// Counted in `Slots::nowait_in_flight` (an operation that could have been tried inline).
    nowait: bool,
    /// Run on every completion as it arrives (`OpCode::reap_hook`).
    hook: Option<ReapHook>,
}

/// All in-flight operations of one driver, at most `max_in_flight` of them.
pub(crate) struct Slots {
    slab: Slab<Slot>,
    next_generation: u32,
    max_in_flight: usize,
    /// Futures waiting for a slot. Every removal that leaves room wakes them all (each re-checks;
    /// one dropped meanwhile must not use up the room), so a freed slot is never missed, whatever
    /// freed it: a future taking its completion, an orphan's final completion, a drop.
    throttled: Vec<Waker>,
    /// Slots of operations with a non-blocking inline path (see `OpCode::try_nowait`).
    nowait_in_flight: usize,
}

impl Default for Slots {
    fn default() -> Self {
        Slots::new(usize::MAX)
    }
}

/// What arrived for a slot, for the driver to act on outside the slab.
pub(crate) enum Arrival {
    /// The slot was unknown or stale: nothing to do.
    Stale,
    /// Delivered to a waiting future (woken).
    Delivered,
    /// Delivered to an ignored op; the data to drop once the slot is gone (final completion).
    Orphan(Option<Box<dyn DynOp>>),
}

impl Slots {
    pub(crate) fn new(max_in_flight: usize) -> Self {
        Slots {
            slab: Slab::new(),
            next_generation: 0,
            // Keys stay below 2^30: the driver reserves user data above (`uring::MSG_SENT`).
            max_in_flight: max_in_flight.clamp(1, 1 << 30),
            throttled: Vec::new(),
            nowait_in_flight: 0,
        }
    }

    /// True if a new operation may start now; otherwise `waker` is woken when a slot frees.
    pub(crate) fn admit(&mut self, waker: &Waker) -> bool {
        if self.slab.len() < self.max_in_flight {
            return true;
        }
        self.throttled.push(waker.clone());
        false
    }

    #[cfg(test)]
    pub(crate) fn insert(&mut self, waker: Option<Waker>, in_ring: bool) -> u64 {
        self.insert_counted(waker, in_ring, false)
    }

    /// Operations with an inline path in flight (slots not yet removed).
    pub(crate) fn nowait_in_flight(&self) -> usize {
        self.nowait_in_flight
    }

    /// As `insert`; `nowait` marks an operation that has an inline path, counted in
    /// `nowait_in_flight` until its slot is removed.
    pub(crate) fn insert_counted(
        &mut self,
        waker: Option<Waker>,
        in_ring: bool,
        nowait: bool,
    ) -> u64 {
        self.nowait_in_flight += usize::from(nowait);
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let key = self.slab.insert(Slot {
            life: Life::Waiting(waker),
            in_ring,
            generation,
            more: VecDeque::new(),
            returned: None,
            nowait,
            hook: None,
        });
        (u64::from(generation) << 32) | key as u64
    }

    fn split(user_data: u64) -> (usize, u32) {
        ((user_data & 0xffff_ffff) as usize, (user_data >> 32) as u32)
    }

    pub(crate) fn get_mut(&mut self, user_data: u64) -> Option<&mut Slot> {
        let (key, generation) = Self::split(user_data);
        self.slab
            .get_mut(key)
            .filter(|slot| slot.generation == generation)
    }

    pub(crate) fn remove(&mut self, user_data: u64) -> Option<Slot> {
        self.get_mut(user_data)?;
        let slot = self.slab.remove(Self::split(user_data).0);
        if slot.nowait {
            self.nowait_in_flight -= 1;
        }
        if !self.throttled.is_empty() && self.slab.len() < self.max_in_flight {
            for w in self.throttled.drain(..) {
                w.wake();
            }
        }
        Some(slot)
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// Number of slots still waiting for a completion (not `Completed`).
    pub(crate) fn in_flight(&self) -> usize {
        self.slab
            .iter()
            .filter(|(_, s)| !matches!(s.life, Life::Completed(_)))
            .count()
    }

    /// User data of every ring slot still waiting for a completion.
    pub(crate) fn in_flight_ring_keys(&self) -> Vec<u64> {
        self.slab
            .iter()
            .filter(|(_, s)| s.in_ring && !matches!(s.life, Life::Completed(_)))
            .map(|(k, s)| (u64::from(s.generation) << 32) | k as u64)
            .collect()
    }

    /// Sets the hook run on each completion of `user_data` as it arrives.
    pub(crate) fn set_hook(&mut self, user_data: u64, hook: ReapHook) {
        if let Some(slot) = self.get_mut(user_data) {
            slot.hook = Some(hook);
        }
    }

    /// Records a completion. `more` says whether further completions follow (multishot).
    pub(crate) fn complete(&mut self, user_data: u64, c: Completion, more: bool) -> Arrival {
        note_fault(c);
        let Some(slot) = self.get_mut(user_data) else {
            return Arrival::Stale;
        };
        if let Some(hook) = &slot.hook {
            hook.run(c.res, c.flags);
        }
        match &mut slot.life {
            Life::Waiting(waker) => {
                let waker = waker.take();
                if more {
                    slot.more.push_back(c);
                } else {
                    slot.life = Life::Completed(c);
                }
                if let Some(w) = waker {
                    w.wake();
                }
                Arrival::Delivered
            }
            Life::Ignored(data) => {
                if let Some(d) = data.as_mut() {
                    d.orphaned(c.res, c.flags);
                }
                if more {
                    return Arrival::Delivered;
                }
                let mut slot = self.remove(user_data).expect("slot checked above");
                let data = match slot.life {
                    Life::Ignored(d) => d,
                    _ => None,
                };
                Arrival::Orphan(data.or(slot.returned.take()))
            }
            // A completion after the final one: only a kernel bug could send it.
            Life::Completed(_) => Arrival::Stale,
        }
    }

    /// Records that a blocking-pool job finished and brought its data back.
    pub(crate) fn complete_blocking(
        &mut self,
        user_data: u64,
        c: Completion,
        mut data: Box<dyn DynOp>,
    ) -> Arrival {
        if !matches!(self.get_mut(user_data), Some(slot) if matches!(slot.life, Life::Waiting(_))) {
            note_fault(c);
        }
        match self.get_mut(user_data) {
            Some(slot) if matches!(slot.life, Life::Waiting(_)) => {
                slot.returned = Some(data);
                self.complete(user_data, c, false)
            }
            Some(_) => {
                data.orphaned(c.res, c.flags);
                self.remove(user_data);
                Arrival::Orphan(Some(data))
            }
            None => {
                data.orphaned(c.res, c.flags);
                Arrival::Orphan(Some(data))
            }
        }
    }

    /// The future of `user_data` is gone. Returns data that can be freed right away (the final
    /// completion had already arrived), and whether the operation is still in flight (and thus
    /// worth a cancel).
    pub(crate) fn ignore(
        &mut self,
        user_data: u64,
        data: Option<Box<dyn DynOp>>,
    ) -> (Option<Box<dyn DynOp>>, bool) {
        let Some(slot) = self.get_mut(user_data) else {
            return (data, false);
        };
        match &slot.life {
            Life::Waiting(_) => {
                let mut data = data;
                // Completions that arrived but were never consumed may have created resources.
                for c in slot.more.drain(..) {
                    if let Some(d) = data.as_mut() {
                        d.orphaned(c.res, c.flags);
                    }
                }
                slot.life = Life::Ignored(data);
                (None, true)
            }
            _ => {
                let slot = self.remove(user_data).expect("slot checked above");
                let mut data = data.or(slot.returned);
                if let Some(d) = data.as_mut() {
                    for c in slot.more.iter() {
                        d.orphaned(c.res, c.flags);
                    }
                    if let Life::Completed(c) = slot.life {
                        d.orphaned(c.res, c.flags);
                    }
                }
                (data, false)
            }
        }
    }

    /// Drops every slot's data without running destructors that might free memory the kernel
    /// still uses: the last resort when a ring must be abandoned with operations in flight.
    pub(crate) fn leak_all(&mut self) {
        for slot in std::mem::take(&mut self.slab).into_iter().map(|(_, s)| s) {
            std::mem::forget(slot);
        }
    }
}
