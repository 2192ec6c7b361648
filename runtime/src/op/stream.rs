//! [`MultiOp`]: the stream that drives a multishot operation.
//!
//! One SQE yields many CQEs; each carries `IORING_CQE_F_MORE` except the last. The kernel may end
//! a multishot operation at any time (CQ overflow, an error, buffer exhaustion): the stream then
//! decides, through [`MultishotOp::after_final`], whether to re-arm transparently or to end. On
//! the epoll driver (and on a ring without the opcode) the same operation is performed again at
//! each readiness. How it runs is the driver's dispatch, shared with single-shot operations.

use super::OpCode;
use crate::driver::{Dispatch, Event};
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
    dispatch: Dispatch<T>,
    ended: bool,
}

impl<T: MultishotOp> MultiOp<T> {
    /// Wraps a multishot operation; nothing happens until the first poll.
    pub fn new(op: T) -> Self {
        MultiOp {
            dispatch: Dispatch::new(op, true),
            ended: false,
        }
    }

    /// The stream is over: its data goes now, outside the driver borrow (its fds may
    /// deregister).
    fn end(&mut self) {
        self.ended = true;
        drop(self.dispatch.take());
    }
}

impl<T: MultishotOp> Stream for MultiOp<T> {
    type Item = T::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T::Item>> {
        let this = self.get_mut();
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            let (res, flags, raw) = match this.dispatch.poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Event::Item(res, flags)) => match this.dispatch.op_mut() {
                    Some(op) => return Poll::Ready(Some(op.item(res, flags))),
                    None => unreachable!("a dispatch that yields an item holds its op"),
                },
                Poll::Ready(Event::Closed) => {
                    this.end();
                    return Poll::Ready(None);
                }
                Poll::Ready(Event::Final { res, flags, raw }) => (res, flags, raw),
            };
            let Some(op) = this.dispatch.op_mut() else {
                this.end();
                return Poll::Ready(None);
            };
            // An arming ended: the op decides on a kernel result; anything else (a refusal, an
            // error before the kernel saw it) is the stream's last item.
            let after = raw.map_or(AfterFinal::YieldEnd, |raw| op.after_final(raw));
            let item = matches!(after, AfterFinal::YieldRearm | AfterFinal::YieldEnd)
                .then(|| op.item(res, flags));
            match after {
                AfterFinal::YieldRearm | AfterFinal::Rearm => this.dispatch.rearm(),
                AfterFinal::YieldEnd | AfterFinal::End => this.end(),
            }
            if let Some(item) = item {
                return Poll::Ready(Some(item));
            }
        }
    }
}

impl<T: MultishotOp> std::fmt::Debug for MultiOp<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.ended {
            "ended"
        } else {
            self.dispatch.phase()
        };
        f.debug_struct("MultiOp").field("state", &state).finish()
    }
}
