//! [`Op`]: the future that drives one operation on whichever driver the worker runs.

use super::{budget, downcast, no_runtime, runtime_gone, DynOp, OpCode, Plan};
use crate::creds::Credentials;
use crate::driver::{Backend, DriverRef, IoDriver, Waiter};
use crate::rt::context;
use io_uring::{opcode, types};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A future that runs one [`OpCode`] and resolves to its output.
///
/// Building it does nothing; the first poll submits. Dropping it before completion cancels the
/// operation; the operation's data lives on in the driver until the kernel is done with it. It is
/// `!Send` (it holds its worker's driver): an operation belongs to the worker that started it.
///
/// The operation is kept inline until it is handed to the kernel or the blocking pool, where it
/// moves to the heap (the kernel needs an address that outlives the future). Operations completed
/// by a syscall on the worker's thread — page-cache reads, and socket I/O on the epoll driver —
/// allocate nothing.
#[must_use = "operations do nothing unless awaited"]
pub struct Op<T: OpCode> {
    state: State<T>,
    /// Run the operation as this user (a ring personality, or switched pool-thread credentials).
    creds: Option<Credentials>,
    /// Times the kernel cancelled this operation although nobody asked it to (see `step`).
    unasked_cancels: u8,
}

/// How often an operation nobody cancelled is resubmitted after a `-ECANCELED` before the error
/// is returned.
const UNASKED_CANCEL_RETRIES: u8 = 3;

enum State<T> {
    /// Not yet started.
    Idle(T),
    /// An SQE is in the ring: the operation, or (`polling`) a POLL_ADD before retrying it.
    Ring {
        driver: DriverRef,
        user_data: u64,
        data: Box<T>,
        polling: bool,
    },
    /// On the blocking pool, which holds the data until it sends the completion back.
    Pool {
        driver: DriverRef,
        user_data: u64,
    },
    /// Performed by syscalls on this thread, waiting on the epoll driver between attempts.
    /// Inline: no kernel reference to the data outlives a syscall, so it may move between polls.
    Ready {
        driver: DriverRef,
        data: T,
        waiter: Option<Waiter>,
    },
    Done,
}

enum Step<T> {
    Wait,
    Again,
    Finish(Data<T>, io::Result<u32>),
}

/// An operation's data when it finishes: inline, or on the heap if the kernel or the pool had it.
enum Data<T> {
    Inline(T),
    Heap(Box<T>),
}

impl<T> Data<T> {
    fn into_inner(self) -> T {
        match self {
            Data::Inline(t) => t,
            Data::Heap(b) => *b,
        }
    }
}

// The op data is never pinned: an inline op is only touched by synchronous syscalls that keep no
// pointer into it after they return, and an op the kernel may reference is boxed.
impl<T: OpCode> Unpin for Op<T> {}

impl<T: OpCode> Op<T> {
    /// Wraps an operation; nothing happens until the first poll.
    pub fn new(op: T) -> Self {
        Op {
            state: State::Idle(op),
            creds: None,
            unasked_cancels: 0,
        }
    }

    /// Runs the operation with another user's filesystem credentials (see [`Credentials`]).
    pub fn with_credentials(mut self, creds: Option<Credentials>) -> Self {
        self.creds = creds;
        self
    }

    fn driver(&self) -> Option<&DriverRef> {
        match &self.state {
            State::Ring { driver, .. }
            | State::Pool { driver, .. }
            | State::Ready { driver, .. } => Some(driver),
            State::Idle(_) | State::Done => None,
        }
    }

    fn take_data(&mut self) -> Data<T> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Idle(data) | State::Ready { data, .. } => Data::Inline(data),
            State::Ring { data, .. } => Data::Heap(data),
            State::Pool { .. } | State::Done => unreachable!("no data held in this state"),
        }
    }

    /// One step of the state machine. Returns `None` if the driver could not be borrowed (only
    /// possible from inside a driver callback), in which case the task is woken to try again.
    fn step(&mut self, cx: &mut Context<'_>) -> Step<T> {
        let driver = match self.driver() {
            Some(d) => d.clone(),
            None => match context::driver() {
                Some(d) => d,
                None => return Step::Finish(self.take_data(), Err(no_runtime())),
            },
        };
        let Ok(mut d) = driver.try_borrow_mut() else {
            cx.waker().wake_by_ref();
            return Step::Wait;
        };
        if d.is_abandoned() {
            return match &self.state {
                // Data the kernel (or a pool thread) may still own is never touched again.
                State::Ring { .. } | State::Pool { .. } => Step::Wait,
                _ => Step::Finish(self.take_data(), Err(runtime_gone())),
            };
        }
        if d.is_closed() {
            // Drained: every operation completed. Deliver a completion that arrived; otherwise
            // the data is free again and the operation can only fail.
            let mut cancelled = false;
            if let State::Ring {
                user_data, data, ..
            } = &mut self.state
            {
                // A zero-copy send's result came in a completion before its notification (and
                // is the shutdown's `ECANCELED` if the send was still waiting).
                for c in d.take_more(*user_data) {
                    if d.cancelled_by_shutdown(*user_data, c.res) {
                        cancelled = true;
                    } else {
                        data.more(c.res, c.flags);
                    }
                }
            }
            let user_data = match &self.state {
                State::Ring { user_data, .. } | State::Pool { user_data, .. } => Some(*user_data),
                _ => None,
            };
            let arrived = user_data.and_then(|ud| d.take_completion(ud, cx.waker()));
            return match (std::mem::replace(&mut self.state, State::Done), arrived) {
                // A pool job's result is its own, whatever it is.
                (State::Pool { .. }, Some((c, Some(data)))) => {
                    Step::Finish(Data::Heap(downcast::<T>(data)), c.result())
                }
                // Not back yet (the waker is registered with the slot).
                (state @ State::Pool { .. }, _) => {
                    self.state = state;
                    Step::Wait
                }
                // Operations the shutdown cancelled report that, the same way on every driver.
                (
                    State::Ring {
                        data,
                        polling: false,
                        user_data,
                        ..
                    },
                    Some((c, _)),
                ) if !cancelled && !d.cancelled_by_shutdown(user_data, c.res) => {
                    Step::Finish(Data::Heap(data), c.result())
                }
                (state, _) => {
                    self.state = state;
                    Step::Finish(self.take_data(), Err(runtime_gone()))
                }
            };
        }
        match &mut self.state {
            State::Idle(_) => {
                if !d.admit(cx.waker()) {
                    return Step::Wait;
                }
                let data = self.take_data().into_inner();
                self.start(&driver, &mut d, data, cx)
            }
            State::Ring {
                user_data, data, ..
            } => {
                for c in d.take_more(*user_data) {
                    data.more(c.res, c.flags);
                }
                let Some((c, _)) = d.take_completion(*user_data, cx.waker()) else {
                    return Step::Wait;
                };
                let State::Ring { data, polling, .. } =
                    std::mem::replace(&mut self.state, State::Done)
                else {
                    unreachable!()
                };
                if polling {
                    // Readiness arrived (or the poll failed): run the operation again.
                    if c.res < 0 {
                        return Step::Finish(Data::Heap(data), c.result());
                    }
                    return self.start(&driver, &mut d, *data, cx);
                }
                if c.res == -libc::ECANCELED
                    && data.repeatable()
                    && self.unasked_cancels < UNASKED_CANCEL_RETRIES
                {
                    // A live future's op is cancelled only by its drop or the shutdown (not
                    // this path): the kernel gave up on it itself. Before 6.14 io-wq cancels
                    // work whose worker thread could not be created while a signal was pending
                    // (seen on 6.1 under a signal storm: an open failed with ECANCELED); an
                    // operation that is harmless to repeat is submitted again.
                    self.unasked_cancels += 1;
                    return self.start(&driver, &mut d, *data, cx);
                }
                if c.res == -libc::EAGAIN {
                    if let Some((fd, interest)) = data.wait_for() {
                        // A non-blocking fd on the ring: wait for readiness, then resubmit.
                        let entry =
                            opcode::PollAdd::new(types::Fd(fd), interest.poll_mask()).build();
                        return self.submit(&driver, &mut d, data, entry, true, cx);
                    }
                }
                Step::Finish(Data::Heap(data), c.result())
            }
            State::Pool { user_data, .. } => {
                let Some((c, returned)) = d.take_completion(*user_data, cx.waker()) else {
                    return Step::Wait;
                };
                self.state = State::Done;
                let data = downcast::<T>(returned.expect("the pool returns the op it ran"));
                Step::Finish(Data::Heap(data), c.result())
            }
            State::Ready { data, waiter, .. } => {
                let Backend::Epoll(epoll) = &mut d.backend else {
                    unreachable!("readiness waits only happen on the epoll driver")
                };
                if let Some(w) = waiter {
                    if epoll.still_waiting(w, cx.waker()) {
                        return Step::Wait;
                    }
                }
                if !budget::consume() {
                    cx.waker().wake_by_ref();
                    return Step::Wait;
                }
                let res = match data.perform() {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => match data.wait_for() {
                        Some((fd, interest)) => {
                            match epoll.wait(fd, interest, data.shared_fd(), waiter, cx.waker()) {
                                Ok(()) => return Step::Wait,
                                Err(e) => Err(e),
                            }
                        }
                        None => Err(e),
                    },
                    res => res,
                };
                if let Some(w) = waiter.take() {
                    epoll.release(w);
                }
                d.stats.completed += 1;
                Step::Finish(self.take_data(), res)
            }
            State::Done => panic!("hoop: operation polled after it completed"),
        }
    }

    fn start(
        &mut self,
        driver: &DriverRef,
        d: &mut IoDriver,
        mut data: T,
        cx: &mut Context<'_>,
    ) -> Step<T> {
        if data.multishot() {
            let e = io::Error::new(
                io::ErrorKind::InvalidInput,
                "hoop: a multishot operation runs as a MultiOp stream, not an Op",
            );
            return Step::Finish(Data::Inline(data), Err(e));
        }
        if let Err(e) = data.check() {
            return Step::Finish(Data::Inline(data), Err(e));
        }
        // The inline attempt runs as this thread's user, so not for operations run as another;
        // nor on a restricted ring, whose allowlist it would bypass.
        let stream = matches!(d.backend, Backend::Uring(_)) && data.stream_hint();
        if (stream || data.has_nowait()) && self.creds.is_none() {
            let alone = match &mut d.backend {
                Backend::Uring(ring) if ring.is_restricted() => false,
                // Socket and pipe I/O: when it would need an enter of its own (see
                // `OpCode::stream_hint`).
                Backend::Uring(ring) if stream => ring.sq_is_empty(),
                // File reads: at queue depth 1 (see `OpCode::try_nowait`).
                Backend::Uring(_) => d.ops.nowait_in_flight() == 0,
                Backend::Epoll(_) => true,
            };
            if alone {
                if !budget::consume() {
                    // A task that keeps hitting the page cache yields like any busy task.
                    self.state = State::Idle(data);
                    cx.waker().wake_by_ref();
                    return Step::Wait;
                }
                if let Some(res) = data.try_nowait() {
                    d.stats.completed += 1;
                    d.stats.inline += 1;
                    return Step::Finish(Data::Inline(data), res);
                }
            }
        }
        if let Backend::Uring(ring) = &d.backend {
            // Boxed before `uring_entry`: the SQE may point into the op, which must not move.
            let mut boxed = Box::new(data);
            let entry = boxed.uring_entry();
            let opcode = entry.as_ref().map(|e| e.get_opcode() as u8);
            if let (Some(entry), Some(op)) = (entry, opcode) {
                if ring.supports(op) {
                    return self.submit(driver, d, boxed, entry, false, cx);
                }
            }
            // From here it runs outside the ring: not past a restricted ring's allowlist.
            if !ring.allows_outside(opcode.or_else(|| boxed.ring_equivalent())) {
                let e = io::Error::from_raw_os_error(libc::EACCES);
                return Step::Finish(Data::Heap(boxed), Err(e));
            }
            data = *boxed;
        }
        match data.plan() {
            Plan::Now => {
                if !budget::consume() {
                    self.state = State::Idle(data);
                    cx.waker().wake_by_ref();
                    return Step::Wait;
                }
                let res = data.perform();
                d.stats.completed += 1;
                Step::Finish(Data::Inline(data), res)
            }
            Plan::Readiness { .. } => {
                if let Backend::Uring(_) = d.backend {
                    // The ring lacks this opcode: try now, and let the ring poll for readiness.
                    return match data.perform() {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => match data.wait_for() {
                            Some((fd, interest)) => {
                                let entry =
                                    opcode::PollAdd::new(types::Fd(fd), interest.poll_mask())
                                        .build();
                                self.submit(driver, d, Box::new(data), entry, true, cx)
                            }
                            None => Step::Finish(Data::Inline(data), Err(e)),
                        },
                        res => Step::Finish(Data::Inline(data), res),
                    };
                }
                self.state = State::Ready {
                    driver: driver.clone(),
                    data,
                    waiter: None,
                };
                Step::Again
            }
            Plan::Blocking => {
                let user_data =
                    d.ops
                        .insert_counted(Some(cx.waker().clone()), false, data.has_nowait());
                match d.submit_blocking(user_data, Box::new(data), self.creds.clone()) {
                    Ok(()) => {
                        self.state = State::Pool {
                            driver: driver.clone(),
                            user_data,
                        };
                        Step::Wait
                    }
                    Err((data, e)) => {
                        d.ops.remove(user_data);
                        Step::Finish(Data::Heap(downcast::<T>(data)), Err(e))
                    }
                }
            }
        }
    }

    /// Puts `entry` in the ring for `data`. The data is stored in `self.state` *before* the SQE
    /// can reach the kernel, so that no path (error or unwind) can free it while the SQE is live.
    fn submit(
        &mut self,
        driver: &DriverRef,
        d: &mut IoDriver,
        data: Box<T>,
        entry: io_uring::squeue::Entry,
        polling: bool,
        cx: &mut Context<'_>,
    ) -> Step<T> {
        let mut entry = entry;
        if let (Some(creds), false, Backend::Uring(ring)) = (&self.creds, polling, &mut d.backend) {
            match ring.personality(creds) {
                Ok(id) => entry = entry.personality(id),
                Err(e) => return Step::Finish(Data::Heap(data), Err(e)),
            }
        }
        let user_data = d.ops.insert_counted(
            Some(cx.waker().clone()),
            true,
            data.has_nowait() && !polling,
        );
        let device_io = !polling && data.device_io();
        self.state = State::Ring {
            driver: driver.clone(),
            user_data,
            data,
            polling,
        };
        match d.push(entry.user_data(user_data)) {
            Ok(()) => {
                if device_io {
                    d.submit_now();
                }
                Step::Wait
            }
            Err(e) => {
                // Not queued: the kernel never saw the SQE.
                d.ops.remove(user_data);
                Step::Finish(self.take_data(), Err(e))
            }
        }
    }
}

impl<T: OpCode> Future for Op<T> {
    type Output = T::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        let this = self.get_mut();
        loop {
            match this.step(cx) {
                Step::Wait => return Poll::Pending,
                Step::Again => continue,
                // Completed outside the driver borrow: `complete` may drop fds and buffers whose
                // destructors use the driver.
                Step::Finish(data, res) => return Poll::Ready(data.into_inner().complete(res)),
            }
        }
    }
}

impl<T: OpCode> Drop for Op<T> {
    fn drop(&mut self) {
        // Dropped after the driver borrow ends: a POLL_ADD (the EAGAIN fallback) points at
        // nothing in the op, so its data need not wait for the poll's completion — and must not
        // see the poll's result as its own in `orphaned`.
        let mut unused: Option<Box<T>> = None;
        let (driver, user_data, data): (DriverRef, Option<u64>, Option<Box<dyn DynOp>>) =
            match std::mem::replace(&mut self.state, State::Done) {
                State::Idle(_) | State::Done => return,
                State::Ring {
                    driver,
                    user_data,
                    data,
                    polling: true,
                } => {
                    unused = Some(data);
                    (driver, Some(user_data), None)
                }
                State::Ring {
                    driver,
                    user_data,
                    data,
                    polling: false,
                } => (driver, Some(user_data), Some(data)),
                State::Pool { driver, user_data } => (driver, Some(user_data), None),
                State::Ready { driver, waiter, .. } => {
                    if let (Some(w), Ok(mut d)) = (waiter, driver.try_borrow_mut()) {
                        if let Backend::Epoll(epoll) = &mut d.backend {
                            epoll.release(w);
                        }
                    }
                    return;
                }
            };
        let freed = match driver.try_borrow_mut() {
            Ok(mut d) => d.ignore(user_data.expect("ring and pool ops have a slot"), data),
            // Dropped from inside a driver callback (only during a panic): the kernel may still
            // own the data, so leak it rather than free it.
            Err(_) => {
                std::mem::forget(data);
                return;
            }
        };
        drop(freed);
        drop(unused);
    }
}

impl<T: OpCode> std::fmt::Debug for Op<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Idle(_) => "idle",
            State::Ring { .. } => "in ring",
            State::Pool { .. } => "on blocking pool",
            State::Ready { .. } => "waiting for readiness",
            State::Done => "done",
        };
        f.debug_struct("Op").field("state", &state).finish()
    }
}
