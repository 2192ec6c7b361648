//! Timers on both drivers: ordering, cancellation, 100k pending timers, timeout, interval.

use futures_util::StreamExt;
use hoop::time::{interval, sleep, sleep_until, timeout, Instant, MissedTickBehavior};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

#[hoop::test]
async fn sleep_waits_at_least_its_duration() {
    let start = Instant::now();
    sleep(Duration::from_millis(20)).await;
    assert!(start.elapsed() >= Duration::from_millis(20));
    sleep(Duration::ZERO).await;
}

#[hoop::test]
async fn timers_fire_in_deadline_order() {
    let order = Rc::new(RefCell::new(Vec::new()));
    let base = Instant::now();
    let handles: Vec<_> = [30u64, 10, 20, 0, 25]
        .into_iter()
        .map(|ms| {
            let order = order.clone();
            hoop::spawn(async move {
                sleep_until(base + Duration::from_millis(ms)).await;
                order.borrow_mut().push(ms);
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(*order.borrow(), vec![0, 10, 20, 25, 30]);
}

#[hoop::test]
async fn dropped_sleep_is_cancelled() {
    let s = sleep(Duration::from_secs(3600));
    let mut s = Box::pin(s);
    let waker = futures_util::task::noop_waker();
    assert!(s
        .as_mut()
        .poll(&mut std::task::Context::from_waker(&waker))
        .is_pending());
    assert_eq!(hoop::metrics().unwrap().timers, 1);
    drop(s);
    assert_eq!(hoop::metrics().unwrap().timers, 0);
    // Parked with no timer and nothing to do would hang; a short sleep still completes.
    sleep(Duration::from_millis(1)).await;
}

use std::future::Future;

/// 100k pending timers: insertion, firing in order and cancellation stay cheap (this test would
/// take minutes with a linear timer list).
#[hoop::test]
async fn hundred_thousand_timers() {
    let fired = Rc::new(RefCell::new(0u32));
    let base = Instant::now();
    let mut handles = Vec::with_capacity(100_000);
    for i in 0..100_000u64 {
        let fired = fired.clone();
        let deadline = base + Duration::from_micros(i % 5_000) + Duration::from_millis(5);
        handles.push(hoop::spawn(async move {
            sleep_until(deadline).await;
            *fired.borrow_mut() += 1;
        }));
    }
    // Cancel half of them before they fire.
    for h in handles.iter().step_by(2) {
        h.abort();
    }
    let mut cancelled = 0;
    for h in handles {
        match h.await {
            Ok(()) => {}
            Err(e) if e.is_cancelled() => cancelled += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(cancelled, 50_000);
    assert_eq!(*fired.borrow(), 50_000);
    assert_eq!(hoop::metrics().unwrap().timers, 0);
}

#[hoop::test]
async fn timeout_elapses_or_passes_through() {
    let r = timeout(Duration::from_millis(5), std::future::pending::<()>()).await;
    assert!(r.is_err());
    let r = timeout(Duration::from_secs(5), async { 9 }).await;
    assert_eq!(r.unwrap(), 9);
    // A timed-out read is cancelled and the pipe stays usable.
    let (rd, w) = hoop::io::pipe().unwrap();
    let r = timeout(Duration::from_millis(5), rd.read(vec![0u8; 4])).await;
    assert!(r.is_err());
    w.write_all(b"late".to_vec()).await.0.unwrap();
    let (n, buf) = rd.read(vec![0u8; 4]).await;
    assert_eq!(&buf[..n.unwrap()], b"late");
}

#[hoop::test]
async fn interval_ticks_on_schedule() {
    let start = Instant::now();
    let mut iv = interval(Duration::from_millis(5));
    let first = iv.tick().await;
    assert!(first <= Instant::now());
    let mut last = first;
    for _ in 0..4 {
        let t = iv.tick().await;
        assert_eq!(t - last, Duration::from_millis(5));
        last = t;
    }
    assert!(start.elapsed() >= Duration::from_millis(20));
    // Skip: after a stall, ticks resume on the schedule without a burst.
    iv.set_missed_tick_behavior(MissedTickBehavior::Skip);
    std::thread::sleep(Duration::from_millis(16));
    let t = iv.next().await.unwrap();
    let next = iv.tick().await;
    // Burst would give t + 5 ms; Skip jumps over the ticks missed during the stall.
    assert!(next - t >= Duration::from_millis(10), "{:?}", next - t);
}
