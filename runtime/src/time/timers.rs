//! The per-worker timer store: deadlines ordered in a `BTreeMap`, each with the waker to call.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::task::Waker;
use std::time::Instant;

/// Key of a pending timer: its deadline, and a sequence number that keeps equal deadlines apart
/// (and orders them by insertion).
pub(crate) type TimerKey = (Instant, u64);

thread_local! {
    /// The timers of the worker running on this thread, set while the worker runs.
    static CURRENT: RefCell<Option<Rc<RefCell<Timers>>>> = const { RefCell::new(None) };
}

/// The timers of the worker running on this thread.
pub(crate) fn current() -> Option<Rc<RefCell<Timers>>> {
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// Makes `timers` this thread's current timers; returns the ones it replaces (to restore).
pub(crate) fn set_current(timers: Option<Rc<RefCell<Timers>>>) -> Option<Rc<RefCell<Timers>>> {
    CURRENT.try_with(|c| c.replace(timers)).ok().flatten()
}

#[derive(Default)]
pub(crate) struct Timers {
    pending: BTreeMap<TimerKey, Waker>,
    next_seq: u64,
}

impl Timers {
    pub(crate) fn insert(&mut self, deadline: Instant, waker: Waker) -> TimerKey {
        self.next_seq += 1;
        let key = (deadline, self.next_seq);
        self.pending.insert(key, waker);
        key
    }

    /// Refreshes the waker of a pending timer; false if it already fired.
    pub(crate) fn update(&mut self, key: TimerKey, waker: &Waker) -> bool {
        match self.pending.get_mut(&key) {
            Some(w) => {
                if !w.will_wake(waker) {
                    w.clone_from(waker);
                }
                true
            }
            None => false,
        }
    }

    pub(crate) fn remove(&mut self, key: TimerKey) {
        self.pending.remove(&key);
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.pending.first_key_value().map(|(k, _)| k.0)
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Removes the timers due at `now` and returns their wakers (woken by the caller, outside
    /// the borrow of this store).
    pub(crate) fn expired(&mut self, now: Instant, into: &mut Vec<Waker>) {
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > now {
                break;
            }
            into.push(entry.remove());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expires_in_deadline_order() {
        let mut t = Timers::default();
        let now = Instant::now();
        let w = futures_util::task::noop_waker();
        let late = t.insert(now + Duration::from_secs(5), w.clone());
        t.insert(now, w.clone());
        t.insert(now, w.clone());
        assert_eq!(t.next_deadline(), Some(now));
        let mut out = Vec::new();
        t.expired(now, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(t.len(), 1);
        t.remove(late);
        assert_eq!(t.next_deadline(), None);
    }
}
