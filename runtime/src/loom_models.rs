//! Model checks of the cross-thread code under every interleaving loom can reach (`--cfg loom`;
//! run by `.ci/loom`). Each model states the property it checks; RELIABILITY.md lists the
//! mutations of the real code each one was seen to catch.

use crate::blocking::BlockingPool;
use crate::rt::shared::{Remote, WorkerShared};
use crate::sync::{Condvar, Mutex};
use crate::task::{JoinGuard, JoinHandle, JoinState, Mailbox, TaskHeader};
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// A one-shot signal between loom threads.
#[derive(Default)]
struct Signal {
    set: Mutex<bool>,
    cv: Condvar,
}

impl Signal {
    fn raise(&self) {
        *self.set.lock().unwrap() = true;
        self.cv.notify_all();
    }
    fn wait(&self) {
        let mut set = self.set.lock().unwrap();
        while !*set {
            set = self.cv.wait(set).unwrap();
        }
    }
}

/// The blocking pool's idle accounting (review-2 H3): after a thread went idle, two jobs pushed
/// together, the first waiting for the second, both run — each gets a thread. With the idle
/// thread counted as free until it woke, both queued behind it and the first waited forever
/// (loom reports the deadlock).
#[test]
fn blocking_pool_runs_a_job_that_waits_for_a_later_one() {
    model(|| {
        let pool = BlockingPool::new(2, Duration::from_secs(3600), "loom".into(), None);
        // One thread, which goes idle after its first job (or is still busy: loom tries both).
        let _ = pool.spawn_user(|| {});
        let b_ran = Arc::new(Signal::default());
        let (wait, raise) = (b_ran.clone(), b_ran.clone());
        let _ = pool.spawn_user(move || wait.wait());
        let _ = pool.spawn_user(move || raise.raise());
        pool.shutdown(Duration::from_secs(3600));
        assert_eq!(pool.threads(), 0, "shutdown returned with threads alive");
    });
}

/// A waker that raises a signal, cleared by the waiter: `join` blocks on it between polls, so a
/// lost wake-up is a deadlock, which loom reports.
#[derive(Default)]
struct WakeSignal {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Wake for WakeSignal {
    fn wake(self: Arc<Self>) {
        *self.woken.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

/// Polls `handle` until it is ready, blocking on its waker between polls.
fn join<T>(handle: JoinHandle<T>) -> Result<T, crate::task::JoinError> {
    block(handle)
}

/// Polls `future` until it is ready, blocking on its waker between polls.
fn block<F: Future>(future: F) -> F::Output {
    let signal = Arc::new(WakeSignal::default());
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        let mut woken = signal.woken.lock().unwrap();
        while !*woken {
            woken = signal.cv.wait(woken).unwrap();
        }
        *woken = false;
    }
}

/// The join state: a task finishing on one thread while its handle is polled on another never
/// loses the output or the wake-up.
#[test]
fn join_handle_gets_the_output_of_a_task_finished_on_another_thread() {
    model(|| {
        let state = JoinState::new();
        let guard = JoinGuard::new(state.clone());
        let handle = JoinHandle::new(state);
        let task = loom::thread::spawn(move || guard.finish(Ok(7)));
        assert_eq!(join(handle).unwrap(), 7);
        task.join().unwrap();
    });
}

/// An abort racing the task's end: the handle resolves exactly once, with the output or with
/// "cancelled", and never hangs.
#[test]
fn join_handle_resolves_once_when_abort_races_the_end() {
    model(|| {
        let state = JoinState::new();
        let guard = JoinGuard::new(state.clone());
        let handle = JoinHandle::new(state);
        let task = loom::thread::spawn(move || {
            if !guard.state().is_aborted() {
                guard.finish(Ok(1));
            }
            // Dropping the guard reports "cancelled" if it did not finish.
        });
        handle.abort();
        match join(handle) {
            Ok(v) => assert_eq!(v, 1),
            Err(e) => assert!(e.is_cancelled()),
        }
        task.join().unwrap();
    });
}

/// A worker's mailbox that only counts the wakes sent to it.
#[derive(Default)]
struct CountingMailbox {
    wakes: Mutex<usize>,
}

impl Mailbox for CountingMailbox {
    fn wake(&self, _task: Arc<TaskHeader>) {
        *self.wakes.lock().unwrap() += 1;
    }
}

/// An abort from another thread racing the worker taking the (queued) task to poll it: the
/// poll sees the abort flag, or the abort's wake queues the task again. Neither would leave a
/// pending task nobody wakes, and its handle hanging.
#[test]
fn an_abort_racing_the_start_of_a_poll_is_never_lost() {
    model(|| {
        let mailbox = Arc::new(CountingMailbox::default());
        // Worker 1's task; this thread is no worker, so a wake goes to the mailbox.
        let header = Arc::new(TaskHeader::new(0, 1, mailbox.clone()));
        let state = JoinState::<()>::new();
        state.set_task(header.clone());
        let handle = JoinHandle::new(state);
        let aborter = loom::thread::spawn(move || handle.abort());
        header.start_poll();
        let seen = header.is_aborted();
        aborter.join().unwrap();
        let queued_again = *mailbox.wakes.lock().unwrap() > 0;
        assert!(seen || queued_again, "the abort was lost");
    });
}

/// The worker's inbox and doorbell flag: an item pushed from another thread is either in the
/// worker's next batch or rings the doorbell again, so a worker parked on the doorbell always
/// wakes to find it. Two pushes, so that one can race the worker's take of the other; a push
/// that neither lands in a batch nor rings is a lost wake-up (the worker parks forever).
#[test]
fn an_item_pushed_from_another_thread_is_never_lost() {
    model(|| {
        let shared = WorkerShared::new(0).unwrap();
        let pusher = {
            let shared = shared.clone();
            loom::thread::spawn(move || {
                shared.push(Remote::Shutdown).ok().unwrap();
                shared.push(Remote::Shutdown).ok().unwrap();
            })
        };
        let mut got = Vec::new();
        while got.len() < 2 {
            shared.take_inbox(&mut got);
            if got.len() < 2 {
                // Parked: only the doorbell (the eventfd write behind `rung`) ends the wait.
                shared.park_on_doorbell();
            }
        }
        pusher.join().unwrap();
    });
}

/// A oneshot value sent from another thread, or its sender dropped there: the receiver always
/// ends, with the value or the error, never parked forever.
#[test]
fn oneshot_delivers_or_reports_the_sender_gone() {
    model(|| {
        let (tx, rx) = crate::sync::oneshot::channel::<u8>();
        let sender = loom::thread::spawn(move || {
            let _ = tx.send(5);
        });
        assert_eq!(block(rx), Ok(5));
        sender.join().unwrap();

        let (tx, rx) = crate::sync::oneshot::channel::<u8>();
        let dropper = loom::thread::spawn(move || drop(tx));
        assert!(block(rx).is_err());
        dropper.join().unwrap();
    });
}

/// A bounded channel of one slot between two threads: the second send waits for room and is
/// woken when the receiver takes the first; the receiver sees both values in order, then the
/// end. A lost wake-up on either side is a deadlock, which loom reports.
#[test]
fn mpsc_back_pressure_never_loses_a_wake_up() {
    model(|| {
        let (tx, mut rx) = crate::sync::mpsc::channel::<u8>(1);
        let producer = loom::thread::spawn(move || {
            block(tx.send(1)).unwrap();
            block(tx.send(2)).unwrap();
        });
        assert_eq!(block(rx.recv()), Some(1));
        assert_eq!(block(rx.recv()), Some(2));
        assert_eq!(block(rx.recv()), None);
        producer.join().unwrap();
    });
}

/// `notify_one` from another thread, racing the waiter's first poll: taken as a permit or as a
/// wake-up, never lost.
#[test]
fn notify_one_is_never_lost() {
    model(|| {
        let notify = Arc::new(crate::sync::Notify::new());
        let other = notify.clone();
        let notifier = loom::thread::spawn(move || other.notify_one());
        block(notify.notified());
        notifier.join().unwrap();
    });
}
