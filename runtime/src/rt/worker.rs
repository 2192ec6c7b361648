//! The worker loop: run tasks, fire timers, turn the driver; and the worker's orderly shutdown.
//!
//! One tick: take the inbox (remote wakes, remote spawns, blocking-pool answers), poll up to
//! [`TASKS_PER_TICK`] runnable tasks, wake expired timers, then turn the driver — without waiting
//! if anything is runnable, otherwise parked until the next timer or an I/O completion or the
//! doorbell. So SQEs pushed by the tasks of a tick reach the kernel in one `io_uring_enter`, and a
//! task that never blocks cannot starve completions.

use super::context::{self, Core};
use super::shared::Remote;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// Tasks polled between two driver turns.
pub(crate) const TASKS_PER_TICK: usize = 64;

/// Waker of the future passed to `block_on`.
struct MainWaker {
    woken: AtomicBool,
    worker: Arc<super::shared::WorkerShared>,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::AcqRel)
            && context::current_worker_id() != self.worker.id
        {
            self.worker.wake();
        }
    }
}

/// Marks a worker as running its loop until dropped (also when the loop unwinds).
struct Running<'a>(&'a super::shared::WorkerShared);

impl<'a> Running<'a> {
    fn start(shared: &'a super::shared::WorkerShared) -> Self {
        shared.set_running(true);
        Running(shared)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.set_running(false);
    }
}

/// Reusable buffers of the loop.
#[derive(Default)]
pub(crate) struct Scratch {
    inbox: Vec<Remote>,
    timers: Vec<Waker>,
}

/// Runs the worker until `future` completes.
pub(crate) fn block_on<F: Future>(core: &Rc<Core>, future: F) -> F::Output {
    assert!(
        !context::is_entered(),
        "cannot start a hoop runtime from within a hoop runtime (this thread already runs one)"
    );
    let _enter = context::enter(core.clone());
    let _running = Running::start(&core.shared);
    let main = Arc::new(MainWaker {
        woken: AtomicBool::new(true),
        worker: core.shared.clone(),
    });
    let waker = Waker::from(main.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    let mut scratch = Scratch::default();
    loop {
        if main.woken.swap(false, Ordering::AcqRel) {
            crate::coop::reset();
            if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
                return v;
            }
        }
        tick(core, &mut scratch, &main.woken);
    }
}

/// Runs a worker thread's loop until the runtime asks it to stop, then shuts it down.
///
/// A panic out of the loop (a task's destructor, a failed driver) still shuts the worker down
/// before the thread unwinds: its inbox closes, so `spawn_on` to it is refused and the
/// `JoinHandle`s of its tasks resolve as cancelled instead of waiting forever.
pub(crate) fn serve(core: Rc<Core>, shutdown_timeout: Duration) {
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _enter = context::enter(core.clone());
        let _running = Running::start(&core.shared);
        let mut scratch = Scratch::default();
        let idle = AtomicBool::new(false);
        while !tick(&core, &mut scratch, &idle) {}
    }));
    // A second panic (a destructor of another task during the shutdown) must not leave the
    // inbox open either.
    let shut = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        shutdown(&core, shutdown_timeout)
    }));
    if shut.is_err() {
        drop(core.shared.close());
    }
    if let Err(payload) = served.and(shut) {
        std::panic::resume_unwind(payload);
    }
}

/// One pass of the loop; true when a shutdown request arrived.
fn tick(core: &Core, scratch: &mut Scratch, main_woken: &AtomicBool) -> bool {
    let mut stop = false;
    core.shared.take_inbox(&mut scratch.inbox);
    for item in scratch.inbox.drain(..) {
        match item {
            Remote::Wake(header) => core.executor.push_local(header),
            Remote::Spawn(spawn) => spawn(),
            Remote::Done(done) => core.driver.borrow_mut().pool_done(done),
            Remote::Shutdown => stop = true,
        }
    }
    if stop {
        return true;
    }
    let more = core.executor.run(TASKS_PER_TICK);
    core.shared.set_load(core.executor.task_count());

    // The clock is read only when a timer is pending: a vDSO call per tick shows in profiles
    // of I/O round trips (2 % of a pipe ping-pong).
    if core.timers.borrow().next_deadline().is_some() {
        core.timers
            .borrow_mut()
            .expired(Instant::now(), &mut scratch.timers);
    }
    let fired = !scratch.timers.is_empty();
    for w in scratch.timers.drain(..) {
        w.wake();
    }

    let busy = more || fired || core.executor.has_runnable() || main_woken.load(Ordering::Acquire);
    let timeout = if busy {
        Some(Duration::ZERO)
    } else {
        core.timers
            .borrow()
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
    };
    let dead = {
        let mut driver = core.driver.borrow_mut();
        if let Err(e) = driver.turn(timeout) {
            // The ring or epoll instance is broken; nothing this worker runs can make progress.
            // Leak what the kernel may still use before unwinding.
            let kind = driver.kind();
            driver.fail();
            panic!("hoop: the {kind} driver failed: {e}");
        }
        driver.take_graveyard()
    };
    drop(dead);
    false
}

/// Drops every task, drains the driver (cancelling what is in flight), and closes the inbox.
pub(crate) fn shutdown(core: &Rc<Core>, timeout: Duration) {
    let _enter = context::enter(core.clone());
    core.executor.drop_all();
    let deadline = Instant::now() + timeout;
    let dead = {
        let mut driver = core.driver.borrow_mut();
        let dead = driver.take_graveyard();
        driver.shutdown(deadline);
        (dead, driver.take_graveyard())
    };
    drop(dead);
    let leftovers = core.shared.close();
    for item in leftovers {
        if let Remote::Done(done) = item {
            core.driver.borrow_mut().pool_done(done);
        }
    }
    let dead = core.driver.borrow_mut().take_graveyard();
    drop(dead);
    // Tasks spawned by destructors above.
    core.executor.drop_all();
}
