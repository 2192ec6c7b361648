//! [`MultiOp`]: the stream that drives a multishot operation.
//!
//! One SQE yields many CQEs; each carries `IORING_CQE_F_MORE` except the last. The kernel may end
//! a multishot operation at any time (CQ overflow, an error, buffer exhaustion): the stream then
//! decides, through [`MultishotOp::after_final`], whether to re-arm transparently or to end. On
//! the epoll driver the same operation is performed again at each readiness.

use super::{budget, DynOp, OpCode, Plan};
use crate::driver::{Backend, DriverRef, Waiter};
use crate::rt::context;
use futures_core::Stream;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// What to do after the final completion of one arming of a multishot operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFinal {
    /// Yield the completion as an item, then arm the operation again.
    YieldRearm,
    /// Arm again without yielding (e.g. buffer exhaustion that a refill cured).
    Rearm,
    /// Yield the completion, then end the stream.
    YieldEnd,
    /// End the stream without yielding.
    End,
}

/// A multishot operation.
///
/// # Safety
///
/// As for [`OpCode`]; in addition the SQE stays valid for every completion of one arming.
pub unsafe trait MultishotOp: OpCode {
    /// What the stream yields.
    type Item;

    /// Turns one completion into an item.
    fn item(&mut self, res: io::Result<u32>, flags: u32) -> Self::Item;

    /// Decides what follows the last completion of an arming (`res` is its raw result).
    fn after_final(&mut self, res: i32) -> AfterFinal {
        if res >= 0 {
            AfterFinal::YieldRearm
        } else if res == -libc::ECANCELED {
            AfterFinal::End
        } else {
            AfterFinal::YieldEnd
        }
    }
}

/// A stream of the completions of a [`MultishotOp`]. Lazy: the first poll arms it. Dropping it
/// cancels the operation; its data lives until the kernel's last completion.
#[must_use = "streams do nothing unless polled"]
pub struct MultiOp<T: MultishotOp> {
    state: State<T>,
}

enum State<T> {
    Idle(Box<T>),
    Ring {
        driver: DriverRef,
        user_data: u64,
        data: Box<T>,
    },
    Ready {
        driver: DriverRef,
        data: Box<T>,
        waiter: Option<Waiter>,
    },
    Ended,
}

impl<T: MultishotOp> MultiOp<T> {
    /// Wraps a multishot operation; nothing happens until the first poll.
    pub fn new(op: T) -> Self {
        MultiOp {
            state: State::Idle(Box::new(op)),
        }
    }

    fn take_data(&mut self) -> Box<T> {
        match std::mem::replace(&mut self.state, State::Ended) {
            State::Idle(d) | State::Ring { data: d, .. } | State::Ready { data: d, .. } => d,
            State::Ended => unreachable!("no data in the ended state"),
        }
    }

    fn poll_step(
        &mut self,
        cx: &mut Context<'_>,
        dead: &mut Option<Box<T>>,
    ) -> Poll<Option<T::Item>> {
        let driver = match &self.state {
            State::Ended => return Poll::Ready(None),
            State::Ring { driver, .. } | State::Ready { driver, .. } => driver.clone(),
            State::Idle(_) => match context::driver() {
                Some(d) => d,
                None => {
                    let mut data = self.take_data();
                    let item = data.item(Err(super::no_runtime()), 0);
                    return Poll::Ready(Some(item));
                }
            },
        };
        let Ok(mut d) = driver.try_borrow_mut() else {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        };
        if d.is_closed() {
            if let State::Ring { user_data, .. } = self.state {
                if d.is_abandoned() {
                    return Poll::Pending;
                }
                // Completions still queued for the stream (connections accepted before the
                // shutdown) are released as orphans — their fds closed — before the data goes.
                let data: Box<dyn DynOp> = self.take_data();
                *dead = d.ignore(user_data, Some(data)).map(super::downcast::<T>);
                return Poll::Ready(None);
            }
            *dead = Some(self.take_data());
            return Poll::Ready(None);
        }
        loop {
            match &mut self.state {
                State::Ended => return Poll::Ready(None),
                State::Idle(_) => {
                    if !d.admit(cx.waker()) {
                        return Poll::Pending;
                    }
                    let mut data = self.take_data();
                    let entry = match &d.backend {
                        Backend::Uring(ring) => data
                            .uring_entry()
                            .filter(|e| ring.supports(e.get_opcode() as u8)),
                        Backend::Epoll(_) => None,
                    };
                    match entry {
                        Some(entry) => {
                            let user_data = d.ops.insert(Some(cx.waker().clone()), true);
                            self.state = State::Ring {
                                driver: driver.clone(),
                                user_data,
                                data,
                            };
                            if let Err(e) = d.push(entry.user_data(user_data)) {
                                d.ops.remove(user_data);
                                let data = dead.insert(self.take_data());
                                return Poll::Ready(Some(data.item(Err(e), 0)));
                            }
                            return Poll::Pending;
                        }
                        None if matches!(d.backend, Backend::Epoll(_))
                            && matches!(data.plan(), Plan::Readiness { .. } | Plan::Now) =>
                        {
                            self.state = State::Ready {
                                driver: driver.clone(),
                                data,
                                waiter: None,
                            };
                        }
                        None => {
                            let e = io::Error::from_raw_os_error(libc::EOPNOTSUPP);
                            let data = dead.insert(data);
                            return Poll::Ready(Some(data.item(Err(e), 0)));
                        }
                    }
                }
                State::Ring {
                    user_data, data, ..
                } => {
                    let Some((c, last)) = d.next_multishot(*user_data, cx.waker()) else {
                        return Poll::Pending;
                    };
                    if !last {
                        return Poll::Ready(Some(data.item(c.result(), c.flags)));
                    }
                    let after = data.after_final(c.res);
                    let item = matches!(after, AfterFinal::YieldRearm | AfterFinal::YieldEnd)
                        .then(|| data.item(c.result(), c.flags));
                    let data = self.take_data();
                    match after {
                        AfterFinal::YieldRearm | AfterFinal::Rearm => {
                            self.state = State::Idle(data)
                        }
                        // The final completion arrived: the kernel is done with the data. It is
                        // dropped after the driver borrow ends (its fds may deregister).
                        AfterFinal::YieldEnd | AfterFinal::End => *dead = Some(data),
                    }
                    match item {
                        Some(item) => return Poll::Ready(Some(item)),
                        None if matches!(self.state, State::Ended) => return Poll::Ready(None),
                        None => continue,
                    }
                }
                State::Ready { data, waiter, .. } => {
                    let Backend::Epoll(epoll) = &mut d.backend else {
                        unreachable!("readiness waits only happen on the epoll driver")
                    };
                    if let Some(w) = waiter {
                        if epoll.still_waiting(w, cx.waker()) {
                            return Poll::Pending;
                        }
                    }
                    if !budget::consume() {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    match data.perform() {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            let Some((fd, interest)) = data.wait_for() else {
                                return Poll::Ready(Some(data.item(Err(e), 0)));
                            };
                            if let Err(e) =
                                epoll.wait(fd, interest, data.shared_fd(), waiter, cx.waker())
                            {
                                return Poll::Ready(Some(data.item(Err(e), 0)));
                            }
                            return Poll::Pending;
                        }
                        res => return Poll::Ready(Some(data.item(res, 0))),
                    }
                }
            }
        }
    }
}

impl<T: MultishotOp> Stream for MultiOp<T> {
    type Item = T::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T::Item>> {
        let mut dead = None;
        let res = self.get_mut().poll_step(cx, &mut dead);
        drop(dead);
        res
    }
}

impl<T: MultishotOp> Drop for MultiOp<T> {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.state, State::Ended) {
            State::Idle(_) | State::Ended => {}
            State::Ring {
                driver,
                user_data,
                data,
            } => {
                let data: Box<dyn DynOp> = data;
                let freed = match driver.try_borrow_mut() {
                    Ok(mut d) => d.ignore(user_data, Some(data)),
                    Err(_) => {
                        std::mem::forget(data);
                        return;
                    }
                };
                drop(freed);
            }
            State::Ready { driver, waiter, .. } => {
                if let (Some(w), Ok(mut d)) = (waiter, driver.try_borrow_mut()) {
                    if let Backend::Epoll(epoll) = &mut d.backend {
                        epoll.release(w);
                    }
                }
            }
        }
    }
}

impl<T: MultishotOp> std::fmt::Debug for MultiOp<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Idle(_) => "idle",
            State::Ring { .. } => "in ring",
            State::Ready { .. } => "waiting for readiness",
            State::Ended => "ended",
        };
        f.debug_struct("MultiOp").field("state", &state).finish()
    }
}
