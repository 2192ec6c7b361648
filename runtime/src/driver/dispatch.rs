//! The dispatch: the one state machine that runs every operation, single-shot and multishot, on
//! either backend.
//!
//! Everything about *how* an operation runs is decided here, once: the inline attempt, the
//! submission (with a personality), the fallback when the ring lacks the opcode, the readiness
//! retry after `EAGAIN` (a `POLL_ADD` on the ring, a registration on epoll), the hand-off to the
//! blocking pool, the resubmission after an unasked `-ECANCELED`, cancellation on drop, and what
//! a shutdown leaves. The futures of `op/` ([`Op`], [`MultiOp`]) own a [`Dispatch`] and call
//! [`Dispatch::poll`] once per poll of their own.
//!
//! A single-shot dispatch ends with one [`Event::Final`]. A multishot one yields an
//! [`Event::Item`] per completion of an arming that goes on (a CQE with `F_MORE`, or any result
//! of the readiness path, where every readiness is a new shot) and an [`Event::Final`] when an
//! arming ends; its stream then decides whether to arm again ([`Dispatch::rearm`]).
//!
//! [`Op`]: crate::op::Op
//! [`MultiOp`]: crate::op::MultiOp

use super::opcode::{downcast, no_runtime, runtime_gone, DynOp, Inline, OpCode, OpTraits, Plan};
use super::{Backend, DriverRef, IoDriver, Waiter};
use crate::coop;
use crate::creds::Credentials;
use io_uring::{opcode, types};
use std::io;
use std::ops::{Deref, DerefMut};
use std::task::Context;

/// How often an operation nobody cancelled is resubmitted after a `-ECANCELED` before the error
/// is returned.
const UNASKED_CANCEL_RETRIES: u8 = 3;

/// What a poll of a [`Dispatch`] produced.
#[derive(Debug)]
pub(crate) enum Event {
    /// Multishot only: one result of an arming that goes on, with its CQE flags.
    Item(io::Result<u32>, u32),
    /// The operation (or, multishot, one arming) ended: its data is back, to take
    /// ([`Dispatch::take`]) or arm again ([`Dispatch::rearm`]). `raw` is the final CQE's result
    /// when the ring sent one for the operation's own SQE; `None` when the dispatch made the
    /// result (a refusal, an error before the kernel saw it, a syscall's result).
    Final {
        res: io::Result<u32>,
        flags: u32,
        raw: Option<i32>,
    },
    /// Multishot only: the runtime shut down; the stream ends (queued completions were released
    /// as orphans: their fds closed).
    Closed,
}

/// One operation on its way through a worker's driver.
pub(crate) struct Dispatch<T: OpCode> {
    state: State<T>,
    /// Run the operation as this user (a ring personality, or switched pool-thread credentials).
    creds: Option<Credentials>,
    /// A multishot stream's dispatch: results come as items, arming after arming.
    many: bool,
    /// Times the kernel cancelled this operation although nobody asked it to (see
    /// `ring_completion`).
    unasked_cancels: u8,
    /// A completion before the final one said the ring refused the operation (`EOPNOTSUPP`,
    /// see [`OpTraits::unsupported_falls_back`]): once the final one arrives it runs its plan.
    refused_unsupported: bool,
    /// A member of a linked chain: its SQE must leave with the others, so it never makes the
    /// tick's batch leave early (`OpTraits::device_io`).
    linked: bool,
    /// The SQE `link_entry` built for a chain that then ran one by one: `uring_entry` is
    /// called once per operation (an op may record that its SQE was handed out).
    prepared: Option<io_uring::squeue::Entry>,
}

enum State<T> {
    /// Not started, or (multishot) between armings.
    Idle(Data<T>),
    /// An SQE is in the ring: the operation's, or (`polling`) a `POLL_ADD` before retrying it.
    Ring {
        driver: DriverRef,
        user_data: u64,
        data: Box<T>,
        polling: bool,
    },
    /// On the blocking pool, which holds the data until it sends the completion back.
    Pool { driver: DriverRef, user_data: u64 },
    /// Performed by syscalls on this thread, waiting on the epoll driver between attempts.
    /// No kernel reference to the data outlives a syscall, so it may stay inline and move.
    Ready {
        driver: DriverRef,
        data: Data<T>,
        waiter: Option<Waiter>,
    },
    /// The final result was delivered; the data waits for its owner.
    Finished(Data<T>),
    /// The owner took the data.
    Taken,
}

/// An operation's data: inline until the kernel or the pool needs an address that outlives the
/// future, then on the heap. Operations completed by a syscall on the worker's thread (page-cache
/// reads, socket I/O on epoll) allocate nothing.
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

    fn into_box(self) -> Box<T> {
        match self {
            Data::Inline(t) => Box::new(t),
            Data::Heap(b) => b,
        }
    }
}

impl<T> Deref for Data<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self {
            Data::Inline(t) => t,
            Data::Heap(b) => b,
        }
    }
}

impl<T> DerefMut for Data<T> {
    fn deref_mut(&mut self) -> &mut T {
        match self {
            Data::Inline(t) => t,
            Data::Heap(b) => b,
        }
    }
}

enum Step<T> {
    Wait,
    Event(Event),
    /// The operation (or an arming) ended: its data and result, not yet stored back (a
    /// single-shot future takes them straight from here).
    Done(Data<T>, Final),
}

/// How an operation or an arming ended (see [`Event::Final`]).
struct Final {
    res: io::Result<u32>,
    flags: u32,
    raw: Option<i32>,
}

// The data is never pinned: inline, it is only touched by synchronous syscalls that keep no
// pointer into it after they return; data the kernel may reference is boxed.
impl<T: OpCode> Unpin for Dispatch<T> {}

impl<T: OpCode> Dispatch<T> {
    /// A dispatch for `op`; `many` for a multishot stream. Nothing happens before the first poll.
    pub(crate) fn new(op: T, many: bool) -> Self {
        Dispatch {
            state: State::Idle(Data::Inline(op)),
            creds: None,
            many,
            unasked_cancels: 0,
            refused_unsupported: false,
            linked: false,
            prepared: None,
        }
    }

    /// Runs the operation with another user's filesystem credentials.
    pub(crate) fn set_credentials(&mut self, creds: Option<Credentials>) {
        self.creds = creds;
    }

    /// Drives a multishot operation: at most one driver borrow, and the event it produced, if
    /// any.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> std::task::Poll<Event> {
        match self.step(cx) {
            Step::Wait => std::task::Poll::Pending,
            Step::Event(e) => std::task::Poll::Ready(e),
            Step::Done(data, Final { res, flags, raw }) => {
                self.state = State::Finished(data);
                std::task::Poll::Ready(Event::Final { res, flags, raw })
            }
        }
    }

    /// Drives a single-shot operation to its end: the operation and its result, handed over
    /// after the driver borrow ended (its `complete` may drop fds and buffers that use the
    /// driver).
    #[inline]
    pub(crate) fn poll_final(
        &mut self,
        cx: &mut Context<'_>,
    ) -> std::task::Poll<(T, io::Result<u32>)> {
        match self.step(cx) {
            Step::Wait => std::task::Poll::Pending,
            Step::Done(data, done) => std::task::Poll::Ready((data.into_inner(), done.res)),
            Step::Event(e) => {
                unreachable!("a single-shot dispatch ends only with its result, not {e:?}")
            }
        }
    }

    /// The data after [`Event::Final`] or [`Event::Closed`] (`None` if the driver leaked it).
    pub(crate) fn take(&mut self) -> Option<T> {
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Finished(data) => Some(data.into_inner()),
            State::Taken => None,
            other => {
                self.state = other;
                unreachable!("hoop: operation data taken while the operation runs")
            }
        }
    }

    /// The operation, where the dispatch holds it (also while the kernel runs it: a multishot
    /// stream turns each completion into an item with it; the SQE's pointers stay put, the data
    /// is boxed).
    pub(crate) fn op_mut(&mut self) -> Option<&mut T> {
        match &mut self.state {
            State::Idle(data) | State::Ready { data, .. } | State::Finished(data) => Some(data),
            State::Ring { data, .. } => Some(data),
            State::Pool { .. } | State::Taken => None,
        }
    }

    /// Multishot: arms the operation again after [`Event::Final`] (at the next poll).
    pub(crate) fn rearm(&mut self) {
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Finished(data) => self.state = State::Idle(data),
            // Anything else may be data the kernel still uses: put it back untouched.
            other => self.state = other,
        }
    }

    /// Linked submission, first step: the operation boxed and its SQE built, if it can go to
    /// this ring as it is (an io_uring driver, the opcode on the ring and past `check`, no
    /// personality to set up). `None` leaves it idle, to run on its own.
    pub(crate) fn link_entry(&mut self, d: &mut IoDriver) -> Option<io_uring::squeue::Entry> {
        if self.many || self.creds.is_some() || !matches!(self.state, State::Idle(_)) {
            return None;
        }
        let Backend::Uring(ring) = &d.backend else {
            return None;
        };
        // A restricted ring's allowlist refuses linked SQEs (`EACCES`).
        if ring.is_restricted() {
            return None;
        }
        let mut boxed = self.take_data().expect("idle holds the data").into_box();
        // A multishot op is refused by `start` (not a member); a refused check fails there.
        let entry = match (boxed.traits().multishot, boxed.check()) {
            // Boxed first: the SQE may point into the op.
            (false, Ok(())) => boxed.uring_entry(),
            _ => None,
        };
        self.state = State::Idle(Data::Heap(boxed));
        let entry = entry?;
        // Built once: if the chain runs one by one after all, the op takes this SQE.
        self.prepared = Some(entry.clone());
        ring.supports(entry.get_opcode() as u8).then_some(entry)
    }

    /// Linked submission, second step: puts the SQE `link_entry` built in the ring with `flags`
    /// (`IO_LINK`/`IO_HARDLINK` to the next member, none for the last). The caller pushes the
    /// members one after the other with nothing in between, into a ring with room for all.
    pub(crate) fn link_submit(
        &mut self,
        driver: &DriverRef,
        d: &mut IoDriver,
        entry: io_uring::squeue::Entry,
        flags: io_uring::squeue::Flags,
        cx: &mut Context<'_>,
    ) {
        let Some(Data::Heap(data)) = self.take_data() else {
            unreachable!("link_entry boxed the data")
        };
        self.linked = true;
        self.prepared = None;
        if let Step::Done(data, _) = self.submit(driver, d, data, entry.flags(flags), false, cx) {
            // Not queued (the push failed), so the kernel never saw it: it runs on its own at
            // the next poll.
            self.linked = false;
            self.state = State::Idle(data);
        }
    }

    /// The data of an operation that never started (a chain member whose predecessor failed,
    /// where the chain ran without the ring), to complete it without running it.
    pub(crate) fn take_unstarted(&mut self) -> Option<T> {
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Idle(data) => Some(data.into_inner()),
            other => {
                self.state = other;
                None
            }
        }
    }

    /// Where the operation is, for `Debug`.
    pub(crate) fn phase(&self) -> &'static str {
        match &self.state {
            State::Idle(_) => "idle",
            State::Ring { .. } => "in ring",
            State::Pool { .. } => "on blocking pool",
            State::Ready { .. } => "waiting for readiness",
            State::Finished(_) | State::Taken => "done",
        }
    }

    fn driver(&self) -> Option<&DriverRef> {
        match &self.state {
            State::Ring { driver, .. }
            | State::Pool { driver, .. }
            | State::Ready { driver, .. } => Some(driver),
            _ => None,
        }
    }

    /// The data of a state that holds it, leaving `Taken`.
    #[inline]
    fn take_data(&mut self) -> Option<Data<T>> {
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Idle(data) | State::Ready { data, .. } | State::Finished(data) => Some(data),
            State::Ring { data, .. } => Some(Data::Heap(data)),
            State::Pool { .. } | State::Taken => None,
        }
    }

    /// The operation ends with `res` (an arming, for a multishot stream, which then ends too
    /// unless its op re-arms after a kernel result).
    #[inline]
    fn end(
        &mut self,
        data: Data<T>,
        res: io::Result<u32>,
        flags: u32,
        raw: Option<i32>,
    ) -> Step<T> {
        Step::Done(data, Final { res, flags, raw })
    }

    /// A result made outside a multishot CQE chain: the end of a single-shot operation, one item
    /// of a multishot stream (whose next poll runs the operation again).
    #[inline]
    fn result(&mut self, data: Data<T>, res: io::Result<u32>) -> Step<T> {
        if self.many {
            self.state = State::Idle(data);
            return Step::Event(Event::Item(res, 0));
        }
        self.end(data, res, 0, None)
    }

    /// Yields the task (its cooperative budget is spent) with the operation not yet run.
    fn yield_idle(&mut self, data: Data<T>, cx: &mut Context<'_>) -> Step<T> {
        self.state = State::Idle(data);
        cx.waker().wake_by_ref();
        Step::Wait
    }

    fn step(&mut self, cx: &mut Context<'_>) -> Step<T> {
        let driver = match self.driver() {
            Some(d) => d.clone(),
            None => match super::current() {
                Some(d) => d,
                None => return self.refuse(Err(no_runtime())),
            },
        };
        let Ok(mut d) = driver.try_borrow_mut() else {
            // Only possible from inside a driver callback: try again on the next poll.
            cx.waker().wake_by_ref();
            return Step::Wait;
        };
        if d.is_abandoned() {
            return match &self.state {
                // Data the kernel (or a pool thread) may still own is never touched again.
                State::Ring { .. } | State::Pool { .. } => Step::Wait,
                _ => self.refuse(Err(runtime_gone())),
            };
        }
        if d.is_closed() {
            return if self.many {
                self.closed_stream(&mut d, cx)
            } else {
                self.closed(&mut d, cx)
            };
        }
        match &mut self.state {
            State::Idle(_) => {
                if !d.admit(cx.waker()) {
                    return Step::Wait;
                }
                let data = self.take_data().expect("idle holds the data");
                self.start(&driver, &mut d, data, cx)
            }
            State::Ring { .. } => self.ring_completion(&driver, &mut d, cx),
            State::Pool { user_data, .. } => {
                let Some((c, returned)) = d.take_completion(*user_data, cx.waker()) else {
                    return Step::Wait;
                };
                let data = downcast::<T>(returned.expect("the pool returns the op it ran"));
                self.result(Data::Heap(data), c.result())
            }
            State::Ready { .. } => self.ready(&mut d, cx),
            State::Finished(_) | State::Taken => {
                panic!("hoop: operation polled after it completed")
            }
        }
    }

    /// Ends the operation with an error it never reached the kernel with (no runtime, a
    /// refusal): the end of a stream too.
    fn refuse(&mut self, res: io::Result<u32>) -> Step<T> {
        match self.take_data() {
            Some(data) => self.end(data, res, 0, None),
            None => Step::Wait,
        }
    }

    fn start(
        &mut self,
        driver: &DriverRef,
        d: &mut IoDriver,
        mut data: Data<T>,
        cx: &mut Context<'_>,
    ) -> Step<T> {
        let traits = data.traits();
        if traits.multishot && !self.many {
            let e = io::Error::new(
                io::ErrorKind::InvalidInput,
                "hoop: a multishot operation runs as a MultiOp stream, not an Op",
            );
            return self.end(data, Err(e), 0, None);
        }
        if let Err(e) = data.check() {
            return self.end(data, Err(e), 0, None);
        }
        if self.inline_now(d, traits) {
            if !coop::consume() {
                // A task that keeps hitting the page cache yields like any busy task.
                return self.yield_idle(data, cx);
            }
            let res = data.try_nowait();
            if traits.inline == Inline::PageCache {
                d.page_cache_score = match res {
                    Some(_) => (d.page_cache_score + 1).min(super::PAGE_CACHE_HOT_MAX),
                    None => d.page_cache_score.saturating_sub(4),
                };
            }
            if let Some(res) = res {
                d.stats.completed += 1;
                d.stats.inline += 1;
                return self.result(data, res);
            }
        }
        let uring = match &d.backend {
            Backend::Uring(ring) => Some(ring),
            Backend::Epoll(_) => None,
        };
        if let Some(ring) = uring {
            // Boxed before `uring_entry`: the SQE may point into the op, which must not move.
            let mut boxed = data.into_box();
            let entry = match self.prepared.take() {
                Some(entry) => Some(entry),
                None => boxed.uring_entry(),
            };
            let code = entry.as_ref().map(|e| e.get_opcode() as u8);
            if let (Some(entry), Some(code)) = (entry, code) {
                if ring.supports(code) {
                    return self.submit(driver, d, boxed, entry, false, cx);
                }
            }
            // From here it runs outside the ring: not past a restricted ring's allowlist.
            if !ring.allows_outside(code.or(traits.ring_equivalent)) {
                let e = io::Error::from_raw_os_error(libc::EACCES);
                return self.end(Data::Heap(boxed), Err(e), 0, None);
            }
            data = Data::Heap(boxed);
        }
        self.outside_ring(driver, d, data, cx)
    }

    /// Runs the operation by its [`Plan`]: on epoll, or on a ring that lacks or refused it.
    fn outside_ring(
        &mut self,
        driver: &DriverRef,
        d: &mut IoDriver,
        mut data: Data<T>,
        cx: &mut Context<'_>,
    ) -> Step<T> {
        if data.shared_fd().is_some_and(|f| f.direct_slot().is_some()) {
            // Its syscall would need an fd number, which a direct descriptor does not have.
            let e = io::Error::new(
                io::ErrorKind::Unsupported,
                "hoop: a direct descriptor has no fd for this operation's syscall (the ring \
                 lacks the operation, or the descriptor belongs to another ring)",
            );
            return self.end(data, Err(e), 0, None);
        }
        match data.plan() {
            Plan::Now => {
                if !coop::consume() {
                    return self.yield_idle(data, cx);
                }
                let res = data.perform();
                d.stats.completed += 1;
                self.result(data, res)
            }
            Plan::Readiness { .. } if uring_is(d) => {
                // The ring lacks this opcode: try now, and let the ring poll for readiness.
                if !coop::consume() {
                    return self.yield_idle(data, cx);
                }
                match data.perform() {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => match data.wait_for() {
                        Some((fd, interest)) => {
                            d.stats.would_block += 1;
                            let entry =
                                opcode::PollAdd::new(types::Fd(fd), interest.poll_mask()).build();
                            self.submit(driver, d, data.into_box(), entry, true, cx)
                        }
                        None => self.result(data, Err(e)),
                    },
                    res => {
                        d.stats.completed += 1;
                        self.result(data, res)
                    }
                }
            }
            Plan::Readiness { .. } => {
                // The syscall first, on the data in hand: it usually completes at once, and
                // the operation only takes the `Ready` state to wait.
                if !coop::consume() {
                    return self.yield_idle(data, cx);
                }
                let Backend::Epoll(epoll) = &mut d.backend else {
                    unreachable!("the ring took the branch above")
                };
                let mut waiter = None;
                match attempt(epoll, &mut d.stats, &mut *data, &mut waiter, cx) {
                    Some(res) if self.many => {
                        // A stream stays armed on its driver for the next shot (not re-admitted
                        // against the in-flight bound between items).
                        d.stats.completed += 1;
                        self.state = State::Ready {
                            driver: driver.clone(),
                            data,
                            waiter,
                        };
                        Step::Event(Event::Item(res, 0))
                    }
                    Some(res) => {
                        d.stats.completed += 1;
                        self.result(data, res)
                    }
                    None => {
                        self.state = State::Ready {
                            driver: driver.clone(),
                            data,
                            waiter,
                        };
                        Step::Wait
                    }
                }
            }
            Plan::Blocking => {
                let page_cache = data.traits().inline == Inline::PageCache;
                let user_data = d
                    .ops
                    .insert_counted(Some(cx.waker().clone()), false, page_cache);
                match d.submit_blocking(user_data, data.into_box(), self.creds.clone()) {
                    Ok(()) => {
                        self.state = State::Pool {
                            driver: driver.clone(),
                            user_data,
                        };
                        Step::Wait
                    }
                    Err((data, e)) => {
                        d.ops.remove(user_data);
                        self.end(Data::Heap(downcast::<T>(data)), Err(e), 0, None)
                    }
                }
            }
        }
    }

    /// True if the operation's inline attempt should be made now instead of submitting it (see
    /// [`Inline`]). It runs as this thread's user, so not for operations run as another; nor on a
    /// restricted ring, whose allowlist it would bypass.
    fn inline_now(&self, d: &mut IoDriver, traits: OpTraits) -> bool {
        if traits.inline == Inline::Never || self.creds.is_some() {
            return false;
        }
        match (&mut d.backend, traits.inline) {
            (Backend::Uring(ring), _) if ring.is_restricted() => false,
            (Backend::Uring(ring), Inline::Stream) => ring.sq_is_empty(),
            (Backend::Uring(_), Inline::PathCache) => false,
            // While the page cache answers, every read is tried inline; after misses, only
            // when the ring has no such read in flight.
            (Backend::Uring(_), _) => d.page_cache_score > 0 || d.ops.nowait_in_flight() == 0,
            (Backend::Epoll(_), Inline::Stream) => false,
            (Backend::Epoll(_), _) => true,
        }
    }

    /// Puts `entry` in the ring for `data`. The data is stored in `self.state` *before* the SQE
    /// can reach the kernel, so that no path (error or unwind) can free it while the SQE is live.
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &mut self,
        driver: &DriverRef,
        d: &mut IoDriver,
        data: Box<T>,
        mut entry: io_uring::squeue::Entry,
        polling: bool,
        cx: &mut Context<'_>,
    ) -> Step<T> {
        // Read now, not before the inline attempt: a refused `RWF_NOWAIT` changed them.
        let traits = data.traits();
        if let (Some(creds), false, Backend::Uring(ring)) = (&self.creds, polling, &mut d.backend) {
            match ring.personality(creds) {
                Ok(id) => entry = entry.personality(id),
                Err(e) => return self.end(Data::Heap(data), Err(e), 0, None),
            }
        }
        let page_cache = !polling && traits.inline == Inline::PageCache;
        let user_data = d
            .ops
            .insert_counted(Some(cx.waker().clone()), true, page_cache);
        if !polling {
            if let Some(hook) = data.reap_hook() {
                d.ops.set_hook(user_data, hook);
            }
        }
        self.state = State::Ring {
            driver: driver.clone(),
            user_data,
            data,
            polling,
        };
        match d.push(entry.user_data(user_data)) {
            Ok(()) => {
                if traits.device_io && !polling && !self.linked {
                    d.submit_now();
                }
                Step::Wait
            }
            Err(e) => {
                // Not queued: the kernel never saw the SQE.
                d.ops.remove(user_data);
                self.refuse(Err(e))
            }
        }
    }

    /// A completion for the SQE in the ring, if one arrived.
    fn ring_completion(
        &mut self,
        driver: &DriverRef,
        d: &mut IoDriver,
        cx: &mut Context<'_>,
    ) -> Step<T> {
        let State::Ring {
            user_data,
            data,
            polling,
            ..
        } = &mut self.state
        else {
            unreachable!("called in the ring state")
        };
        let user_data = *user_data;
        if self.many && !*polling {
            let Some((c, last)) = d.next_multishot(user_data, cx.waker()) else {
                return Step::Wait;
            };
            if !last {
                return Step::Event(Event::Item(c.result(), c.flags));
            }
            let data = self.take_data().expect("the ring state holds the data");
            return self.end(data, c.result(), c.flags, Some(c.res));
        }
        let falls_back = data.traits().unsupported_falls_back;
        for c in d.take_more(user_data) {
            if falls_back && c.res == -libc::EOPNOTSUPP {
                // A zero-copy send refused up front still ends with its notification.
                self.refused_unsupported = true;
                continue;
            }
            data.more(c.res, c.flags);
        }
        let Some((c, _)) = d.take_completion(user_data, cx.waker()) else {
            return Step::Wait;
        };
        let polling = *polling;
        let data = self.take_data().expect("the ring state holds the data");
        if polling {
            // Readiness arrived (or the poll failed): run the operation again.
            if c.res < 0 {
                return self.end(data, c.result(), 0, None);
            }
            return self.start(driver, d, data, cx);
        }
        if c.res == -libc::ECANCELED
            && data.traits().repeatable
            // A chain member is cancelled by the kernel when a member before it fails.
            && !self.linked
            && self.unasked_cancels < UNASKED_CANCEL_RETRIES
        {
            // A live future's op is cancelled only by its drop or the shutdown (not this
            // path): the kernel gave up on it itself. Before 6.14 io-wq cancels work whose
            // worker thread could not be created while a signal was pending (seen on 6.1 under
            // a signal storm: an open failed with ECANCELED); an operation that is harmless to
            // repeat is submitted again.
            self.unasked_cancels += 1;
            return self.start(driver, d, data, cx);
        }
        let mut data = data;
        if !self.linked && data.ring_result_falls_back(c.res) {
            // The ring's non-blocking attempt answered where the syscall waits (see
            // `OpCode::ring_result_falls_back`); the ring let the opcode through its allowlist.
            return self.outside_ring(driver, d, data, cx);
        }
        let refused = std::mem::take(&mut self.refused_unsupported);
        // A chain member is never run again on its own: the members after it already ran, or
        // were cancelled, on the strength of this result.
        if refused && self.linked {
            // Its refusal came as the first completion: report it, not the notification's 0.
            let e = io::Error::from_raw_os_error(libc::EOPNOTSUPP);
            return self.end(data, Err(e), c.flags, Some(c.res));
        }
        if (refused || c.res == -libc::EOPNOTSUPP)
            && data.traits().unsupported_falls_back
            && !self.linked
        {
            // Refused before it did anything (a zero-copy send on a socket without zero-copy
            // support): the plain syscall has the same result. The ring ran this opcode's own
            // checks, so a restricted ring's allowlist let it through.
            return self.outside_ring(driver, d, data, cx);
        }
        if c.res == -libc::EAGAIN && !self.linked {
            if let Some((fd, interest)) = data.wait_for() {
                // A non-blocking fd on the ring: wait for readiness, then resubmit.
                // A direct descriptor is polled by its slot (its `wait_for` fd is -1).
                let (fd, fixed) = match data.shared_fd() {
                    Some(shared) if shared.direct_slot().is_some() => super::sqe_fd(shared),
                    _ => (types::Fd(fd), io_uring::squeue::Flags::empty()),
                };
                let entry = opcode::PollAdd::new(fd, interest.poll_mask())
                    .build()
                    .flags(fixed);
                return self.submit(driver, d, data.into_box(), entry, true, cx);
            }
        }
        self.end(data, c.result(), c.flags, Some(c.res))
    }

    /// The epoll readiness path: the syscall, or a wait for the fd.
    fn ready(&mut self, d: &mut IoDriver, cx: &mut Context<'_>) -> Step<T> {
        let State::Ready { data, waiter, .. } = &mut self.state else {
            unreachable!("called in the ready state")
        };
        let Backend::Epoll(epoll) = &mut d.backend else {
            unreachable!("readiness waits only happen on the epoll driver")
        };
        if let Some(w) = waiter {
            if epoll.still_waiting(w, cx.waker()) {
                return Step::Wait;
            }
        }
        if !coop::consume() {
            cx.waker().wake_by_ref();
            return Step::Wait;
        }
        let Some(res) = attempt(epoll, &mut d.stats, &mut **data, waiter, cx) else {
            return Step::Wait;
        };
        d.stats.completed += 1;
        if self.many {
            // Still armed: the registration stays for the next shot.
            return Step::Event(Event::Item(res, 0));
        }
        if let Some(w) = waiter.take() {
            epoll.release(w);
        }
        let data = self.take_data().expect("the ready state holds the data");
        self.end(data, res, 0, None)
    }

    /// A single-shot operation on a drained driver: every operation completed. Delivers a
    /// completion that arrived; otherwise the data is free again and the operation can only fail.
    fn closed(&mut self, d: &mut IoDriver, cx: &mut Context<'_>) -> Step<T> {
        let mut cancelled = false;
        if let State::Ring {
            user_data, data, ..
        } = &mut self.state
        {
            // A zero-copy send's result came in a completion before its notification (and is
            // the shutdown's `ECANCELED` if the send was still waiting).
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
        match (std::mem::replace(&mut self.state, State::Taken), arrived) {
            // A pool job's result is its own, whatever it is.
            (State::Pool { .. }, Some((c, Some(data)))) => {
                self.end(Data::Heap(downcast::<T>(data)), c.result(), 0, None)
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
                self.end(Data::Heap(data), c.result(), c.flags, Some(c.res))
            }
            (state, _) => {
                self.state = state;
                self.refuse(Err(runtime_gone()))
            }
        }
    }

    /// A multishot stream on a drained driver: it ends. Completions still queued for it
    /// (connections accepted before the shutdown) are released as orphans — their fds closed —
    /// before its data goes.
    fn closed_stream(&mut self, d: &mut IoDriver, cx: &mut Context<'_>) -> Step<T> {
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Ring {
                user_data,
                data,
                polling,
                ..
            } => {
                let freed = if polling {
                    d.ignore(user_data, None);
                    Some(data)
                } else {
                    d.ignore(user_data, Some(data)).map(downcast::<T>)
                };
                if let Some(data) = freed {
                    self.state = State::Finished(Data::Heap(data));
                }
            }
            State::Pool { driver, user_data } => {
                let Some((_, returned)) = d.take_completion(user_data, cx.waker()) else {
                    self.state = State::Pool { driver, user_data };
                    return Step::Wait;
                };
                if let Some(data) = returned {
                    self.state = State::Finished(Data::Heap(downcast::<T>(data)));
                }
            }
            State::Idle(data) | State::Ready { data, .. } | State::Finished(data) => {
                self.state = State::Finished(data);
            }
            State::Taken => {}
        }
        Step::Event(Event::Closed)
    }
}

/// One try of a readiness operation on epoll: its result, or `None` once it waits (`waiter`
/// registered with the fd's readiness).
#[inline]
fn attempt<T: OpCode>(
    epoll: &mut super::EpollDriver,
    stats: &mut super::DriverStats,
    data: &mut T,
    waiter: &mut Option<Waiter>,
    cx: &mut Context<'_>,
) -> Option<io::Result<u32>> {
    match data.perform() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => match data.wait_for() {
            Some((fd, interest)) => {
                stats.would_block += 1;
                match epoll.wait(fd, interest, data.shared_fd(), waiter, cx.waker()) {
                    Ok(()) => None,
                    Err(e) => Some(Err(e)),
                }
            }
            None => Some(Err(e)),
        },
        res => Some(res),
    }
}

fn uring_is(d: &IoDriver) -> bool {
    matches!(d.backend, Backend::Uring(_))
}

impl<T: OpCode> Drop for Dispatch<T> {
    fn drop(&mut self) {
        // Dropped after the driver borrow ends: a POLL_ADD (the EAGAIN fallback) points at
        // nothing in the op, so its data need not wait for the poll's completion — and must not
        // see the poll's result as its own in `orphaned`.
        let mut unused: Option<Box<T>> = None;
        let (driver, user_data, data): (DriverRef, u64, Option<Box<dyn DynOp>>) =
            match std::mem::replace(&mut self.state, State::Taken) {
                State::Idle(_) | State::Finished(_) | State::Taken => return,
                State::Ring {
                    driver,
                    user_data,
                    data,
                    polling: true,
                } => {
                    unused = Some(data);
                    (driver, user_data, None)
                }
                State::Ring {
                    driver,
                    user_data,
                    data,
                    polling: false,
                } => (driver, user_data, Some(data)),
                State::Pool { driver, user_data } => (driver, user_data, None),
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
            Ok(mut d) => d.ignore(user_data, data),
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
