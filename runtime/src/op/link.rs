//! Linked chains: operations submitted together, each started by the kernel only once the one
//! before it completed (`IOSQE_IO_LINK`), so a sequence such as open → read → close costs one
//! submission and no wake-up between its steps.
//!
//! A member that fails (an error, or for reads and writes a short count) cancels the members
//! after it, which complete with `ECANCELED`; a *hard* link (`IOSQE_IO_HARDLINK`) lets the next
//! member run whatever the result. Members that name a slot filled by an earlier member (an open
//! into a [`reserved_slot`]) can be built before the chain runs.
//!
//! Where the chain cannot go to the ring as a whole (the epoll driver, an opcode the ring lacks,
//! a personality, a ring smaller than the chain) the members run one after the other on their
//! own, and a member runs only if the one before it succeeded or is hard-linked; there, only an
//! error counts as a failure (a short read does not). Dropping the chain cancels the members
//! still running; each keeps its buffers until the kernel is done with it.
//!
//! ```
//! # hoop_runtime::block_on(async {
//! use hoop_runtime::op::{link, nop::Nop};
//! let (a, b) = link::link(Nop, Nop).await;
//! a.unwrap();
//! b.unwrap();
//! # });
//! ```

use super::OpCode;
use crate::driver::{self, Dispatch};
use crate::fd::SharedFd;
use io_uring::squeue::Flags;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// An empty slot of this worker's direct-descriptor table, from the range kept out of the
/// kernel's allocation for operations that name a slot before it is filled: an open into it
/// ([`OpenAt2::into_slot`](super::open::OpenAt2::into_slot)) and the members linked after it.
/// `None` outside an io_uring worker with a table (see `Builder::direct_descriptors`) or when
/// all 64 such slots are in use. Dropping it closes what was opened into it.
pub fn reserved_slot() -> Option<SharedFd> {
    driver::direct_table()?.take_reserved()
}

/// One member of a chain: its dispatch, whether its link to the next is hard, its output.
struct Member<T: OpCode> {
    dispatch: Dispatch<T>,
    hard: bool,
    out: Option<T::Output>,
    /// Whether it succeeded (for the chain run without the ring).
    ok: Option<bool>,
    /// Whether it ran (false once cancelled without running).
    ran: bool,
}

// Nothing in a member is ever pinned: the dispatch is `Unpin`, and the output is only moved.
impl<T: OpCode> Unpin for Member<T> {}

impl<T: OpCode> Member<T> {
    fn new(op: T) -> Self {
        Member {
            dispatch: Dispatch::new(op, false),
            hard: false,
            out: None,
            ok: None,
            ran: true,
        }
    }

    fn done(&self) -> bool {
        self.out.is_some()
    }

    /// Polls it to its end; true once it has its output.
    fn poll_run(&mut self, cx: &mut Context<'_>) -> bool {
        if self.out.is_none() {
            if let Poll::Ready((op, res)) = self.dispatch.poll_final(cx) {
                self.ok = Some(res.is_ok());
                self.out = Some(op.complete(res));
            }
        }
        self.done()
    }

    /// Completes it with `ECANCELED` without running it.
    fn cancel(&mut self) {
        if let Some(op) = self.dispatch.take_unstarted() {
            self.ok = Some(false);
            self.ran = false;
            self.out = Some(op.complete(Err(io::Error::from_raw_os_error(libc::ECANCELED))));
        }
    }

    fn link_flags(&self, last: bool) -> Flags {
        match (last, self.hard) {
            (true, _) => Flags::empty(),
            (false, true) => Flags::IO_HARDLINK,
            (false, false) => Flags::IO_LINK,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    NotStarted,
    Ring,
    OneByOne,
}

macro_rules! chain {
    ($(#[$doc:meta])* $name:ident, $fn:ident, $n:literal, $($m:ident: $t:ident),+) => {
        $(#[$doc])*
        #[must_use = "a chain does nothing unless awaited"]
        pub struct $name<$($t: OpCode),+> {
            $($m: Member<$t>,)+
            mode: Mode,
        }

        $(#[$doc])*
        pub fn $fn<$($t: OpCode),+>($($m: $t),+) -> $name<$($t),+> {
            $name { $($m: Member::new($m),)+ mode: Mode::NotStarted }
        }

        impl<$($t: OpCode),+> $name<$($t),+> {
            /// Makes the link from member `index` (0-based) to the next one hard: the next
            /// member runs whatever `index`'s result.
            pub fn hard(mut self, index: usize) -> Self {
                let mut i = 0;
                $(
                    if i == index {
                        self.$m.hard = true;
                    }
                    i += 1;
                )+
                let _ = i;
                self
            }

            /// Puts every member in the ring, linked, or decides they run one by one.
            fn start(&mut self, cx: &mut Context<'_>) -> Mode {
                let Some(driver) = driver::current() else {
                    return Mode::OneByOne;
                };
                let Ok(mut d) = driver.try_borrow_mut() else {
                    return Mode::OneByOne;
                };
                if d.is_closed() || !d.room_for_chain($n) || !d.admit(cx.waker()) {
                    return Mode::OneByOne;
                }
                let entries = ($(self.$m.dispatch.link_entry(&mut d),)+);
                let ($(Some($m),)+) = entries else {
                    return Mode::OneByOne;
                };
                let mut left = $n;
                $(
                    left -= 1;
                    let flags = self.$m.link_flags(left == 0);
                    self.$m.dispatch.link_submit(&driver, &mut d, $m, flags, cx);
                )+
                let _ = left;
                d.count_chain();
                Mode::Ring
            }
        }

        impl<$($t: OpCode),+> Future for $name<$($t),+> {
            type Output = ($($t::Output,)+);

            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                // Dispatches are `Unpin`: nothing here is pinned.
                let this = self.get_mut();
                if this.mode == Mode::NotStarted {
                    this.mode = this.start(cx);
                }
                let mut all = true;
                match this.mode {
                    Mode::Ring => {
                        $( all &= this.$m.poll_run(cx); )+
                    }
                    _ => {
                        // One by one: each waits for the one before it, and runs as the kernel
                        // would run it: not after a member that was cancelled, nor after one
                        // that failed with a soft link.
                        let mut before: Option<(bool, bool, bool)> = Some((true, true, true));
                        $(
                            match before {
                                None => all = false,
                                Some((ran, ok, hard)) => {
                                    if !this.$m.done() && (!ran || (!ok && !hard)) {
                                        this.$m.cancel();
                                    }
                                    if this.$m.poll_run(cx) {
                                        let ok = this.$m.ok.unwrap_or(false);
                                        before = Some((this.$m.ran, ok, this.$m.hard));
                                    } else {
                                        all = false;
                                        before = None;
                                    }
                                }
                            }
                        )+
                        let _ = before;
                    }
                }
                if !all {
                    return Poll::Pending;
                }
                Poll::Ready(($(this.$m.out.take().expect("every member finished"),)+))
            }
        }

        impl<$($t: OpCode),+> std::fmt::Debug for $name<$($t),+> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("mode", &self.mode)
                    $(.field(stringify!($m), &self.$m.dispatch.phase()))+
                    .finish()
            }
        }
    };
}

chain!(
    /// Two operations linked: `b` starts once `a` succeeded (see the module documentation).
    Link2, link, 2, a: A, b: B
);

chain!(
    /// Three operations linked: each starts once the one before it succeeded (see the module
    /// documentation).
    Link3, link3, 3, a: A, b: B, c: C
);
