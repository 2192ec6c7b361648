//! Cooperative budget: how many operations a task may complete without yielding.
//!
//! The executor gives each task poll a fresh budget ([`reset`]); the driver's dispatch spends it
//! ([`consume`]). A leaf module, so neither layer imports the other for it.
//!
//! On the epoll driver an operation on a ready socket completes inside `poll` without ever
//! returning `Pending`; a task looping on such operations would starve every other task and the
//! driver. Each task poll gets [`PER_POLL`] completions; past that, operations yield once.

use std::cell::Cell;

/// Completions a task may take per poll before its operations yield.
pub(crate) const PER_POLL: u32 = 128;

thread_local! {
    static BUDGET: Cell<u32> = const { Cell::new(PER_POLL) };
}

/// Gives the task about to be polled a fresh budget.
pub(crate) fn reset() {
    BUDGET.with(|b| b.set(PER_POLL));
}

/// Takes one unit; false when the budget is spent and the caller should yield.
pub(crate) fn consume() -> bool {
    BUDGET.with(|b| {
        let left = b.get();
        if left == 0 {
            false
        } else {
            b.set(left - 1);
            true
        }
    })
}
