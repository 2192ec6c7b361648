//! [`Interval`]: ticks at a fixed period.

use super::sleep::{sleep_until, Sleep};
use futures_core::Stream;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// What an [`Interval`] does when ticks were missed (the task was busy for over a period).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissedTickBehavior {
    /// Fire the missed ticks back to back, then resume the schedule (tokio's default).
    #[default]
    Burst,
    /// Fire once, then schedule the next tick one period from now.
    Delay,
    /// Fire once, then resume on the original schedule, skipping the missed ticks.
    Skip,
}

/// Ticks every `period`, the first tick at once.
///
/// # Panics
///
/// Panics if `period` is zero.
///
/// ```
/// # hoop_runtime::block_on(async {
/// let mut iv = hoop_runtime::time::interval(std::time::Duration::from_millis(1));
/// iv.tick().await; // immediately
/// iv.tick().await; // a millisecond later
/// # });
/// ```
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// Ticks every `period`, the first tick at `start`.
///
/// # Panics
///
/// Panics if `period` is zero.
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(period > Duration::ZERO, "interval period must be non-zero");
    Interval {
        sleep: Box::pin(sleep_until(start)),
        period,
        missed: MissedTickBehavior::default(),
    }
}

/// Stream and future source of periodic ticks; see [`interval`].
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct Interval {
    sleep: Pin<Box<Sleep>>,
    period: Duration,
    missed: MissedTickBehavior,
}

impl Interval {
    /// Waits for the next tick and returns its scheduled time.
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if self.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let scheduled = self.sleep.deadline();
        let now = Instant::now();
        let next = scheduled + self.period;
        let next = if next > now {
            next
        } else {
            match self.missed {
                MissedTickBehavior::Burst => next,
                MissedTickBehavior::Delay => now + self.period,
                MissedTickBehavior::Skip => {
                    let behind = (now - scheduled).as_nanos() / self.period.as_nanos();
                    scheduled + self.period * (behind as u32 + 1)
                }
            }
        };
        self.sleep.as_mut().get_mut().reset(next);
        Poll::Ready(scheduled)
    }

    /// Sets what happens to missed ticks.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Restarts the schedule: the next tick is one period from now.
    pub fn reset(&mut self) {
        self.sleep
            .as_mut()
            .get_mut()
            .reset(Instant::now() + self.period);
    }
}

impl Stream for Interval {
    type Item = Instant;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx).map(Some)
    }
}
