//! The contract between an operation and the driver: [`OpCode`], what an operation is, and the
//! few facts about it ([`Plan`], [`OpTraits`]) the dispatch decides with.
//!
//! The driver runs operations through this contract only; `op/` implements it, once per kernel
//! operation. A new optimisation adds a field to [`OpTraits`], not a method to every operation.

use crate::fd::SharedFd;
use io_uring::squeue::Entry;
use std::any::Any;
use std::io;
use std::os::fd::RawFd;

/// How the epoll driver (and the io_uring driver, for an opcode the kernel lacks) runs an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// `perform` never blocks and needs no readiness: run it inline.
    Now,
    /// `perform` is a non-blocking syscall on `fd` that fails with `EWOULDBLOCK` until the fd is
    /// ready for `interest`.
    Readiness {
        /// The fd to wait on.
        fd: RawFd,
        /// What to wait for.
        interest: Interest,
    },
    /// `perform` may block (file and path syscalls): run it on the blocking pool.
    Blocking,
}

/// Readiness a [`Plan::Readiness`] operation waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Interest(u32);

impl Interest {
    /// Readable, or hung up, or in error (`POLLIN`).
    pub const READABLE: Interest = Interest(libc::POLLIN as u32);
    /// Writable, or in error (`POLLOUT`).
    pub const WRITABLE: Interest = Interest(libc::POLLOUT as u32);
    /// Urgent data (`POLLPRI`).
    pub const PRIORITY: Interest = Interest(libc::POLLPRI as u32);

    /// Both interests.
    pub const fn add(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }

    /// True if this includes readability.
    pub const fn is_readable(self) -> bool {
        self.0 & (libc::POLLIN as u32) != 0
    }

    /// True if this includes writability.
    pub const fn is_writable(self) -> bool {
        self.0 & (libc::POLLOUT as u32) != 0
    }

    /// The `poll(2)` event mask.
    pub const fn poll_mask(self) -> u32 {
        self.0
    }
}

/// Which inline attempt ([`OpCode::try_nowait`]) an operation has, and so when the dispatch
/// makes it instead of submitting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Inline {
    /// None: the operation always goes to the ring, the readiness path or the pool.
    #[default]
    Never,
    /// A file read the page cache may serve (`preadv2(RWF_NOWAIT)`). On a ring it is tried while
    /// the page cache answers (most of the worker's recent attempts succeeded): one syscall on the
    /// worker costs less than the ring's SQE, completion and task wake-up, also at queue depth
    /// 32 (`benches/fsread.rs`). After misses it is tried only when no other such operation is
    /// in flight, and deeper queues go to the ring's batching (reads that wait for the disk).
    /// On epoll it is tried before the blocking pool, which it then skips.
    PageCache,
    /// Socket or pipe I/O whose fd's last results suggest it would complete now (the last read
    /// filled its buffer, the last write went out whole). On a ring it is tried when nothing
    /// else waits in the submission queue: the operation would need an `io_uring_enter` of its
    /// own, which costs more than the one syscall (a pipe ping-pong ran at 0.38x tokio through
    /// the ring). With SQEs already queued it joins their batch. Epoll has its own readiness
    /// path and never makes this attempt.
    Stream,
    /// A path lookup the dentry cache may serve (`openat2` with `RESOLVE_CACHED`, 5.12+): on
    /// epoll it is tried before the blocking pool, which a served lookup then skips (a thread
    /// hop per open). Never on a ring: io_uring makes this same attempt itself, in the
    /// submission, before it hands an open to io-wq.
    PathCache,
}

/// What an operation tells the dispatch about itself, beyond its SQE and its [`Plan`]: the
/// hints each optimisation or safety rule needs, in one value (see [`OpCode::traits`]).
///
/// Built from [`OpTraits::NONE`] with the setters, so a new hint is a new field, not a new trait
/// method every operation must know about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpTraits {
    pub(crate) multishot: bool,
    pub(crate) repeatable: bool,
    pub(crate) inline: Inline,
    pub(crate) device_io: bool,
    pub(crate) ring_equivalent: Option<u8>,
    pub(crate) unsupported_falls_back: bool,
}

impl OpTraits {
    /// No hint: a plain single-shot operation.
    pub const NONE: OpTraits = OpTraits {
        multishot: false,
        repeatable: false,
        inline: Inline::Never,
        device_io: false,
        ring_equivalent: None,
        unsupported_falls_back: false,
    };

    /// Armed as multishot (one SQE, many completions): it runs only as a [`MultiOp`] stream, and
    /// [`Op`] refuses it with `InvalidInput` (a single-shot future would drop every completion
    /// but the last: accepted fds, selected buffers).
    ///
    /// [`MultiOp`]: crate::op::MultiOp
    /// [`Op`]: crate::op::Op
    pub const fn multishot(mut self, yes: bool) -> Self {
        self.multishot = yes;
        self
    }

    /// Submitting it again is harmless even if a first attempt ran in part (file reads at an
    /// offset, `statx`, an open without `O_EXCL`). Only such operations are resubmitted after a
    /// `-ECANCELED` nobody asked for (io-wq gives it before 6.14 when it cannot start a worker
    /// thread under a pending signal): for the others, the same errno may come from a
    /// filesystem after the operation ran (a FUSE `FLUSH` of a close, a write that was
    /// applied), and running it again would repeat it.
    pub const fn repeatable(mut self, yes: bool) -> Self {
        self.repeatable = yes;
        self
    }

    /// Its [`OpCode::try_nowait`] and when the dispatch tries it (see [`Inline`]).
    pub const fn inline(mut self, inline: Inline) -> Self {
        self.inline = inline;
        self
    }

    /// It waits for a device (I/O on an `O_DIRECT` file): the io_uring driver submits it at once
    /// instead of with the rest of the tick's batch. A device queue left short while the worker
    /// polls other tasks costs more than the extra `io_uring_enter` (`benches/direct.rs`: 0.83x
    /// fio's IOPS batched, 1.0x submitted at once).
    pub const fn device_io(mut self, yes: bool) -> Self {
        self.device_io = yes;
        self
    }

    /// The ring may refuse it with `EOPNOTSUPP` before it does anything, where the plain
    /// syscall of [`OpCode::perform`] works (a zero-copy send on a socket whose protocol has no
    /// zero-copy path, such as a Unix socket): it then takes its [`Plan`] path, as on epoll, so
    /// both drivers give the same result.
    pub const fn unsupported_falls_back(mut self, yes: bool) -> Self {
        self.unsupported_falls_back = yes;
        self
    }

    /// For an operation io_uring has no opcode for (`uring_entry` is `None`): the opcode whose
    /// place on a restricted ring's allowlist it takes (`getdents` stands for `OPENAT2`, a path
    /// operation). Without one it is refused on every restricted ring.
    pub const fn ring_equivalent(mut self, opcode: u8) -> Self {
        self.ring_equivalent = Some(opcode);
        self
    }
}

/// One kernel operation, with everything the kernel touches while it runs.
///
/// # Safety
///
/// Implementors promise that:
/// - every pointer placed in the SQE built by [`uring_entry`](OpCode::uring_entry), or passed to a
///   syscall by [`perform`](OpCode::perform), points into `self` or into memory `self` owns. The
///   driver keeps `self` in one heap allocation from the first `uring_entry` until the final
///   completion (also when the future is dropped), so such pointers stay valid for the kernel;
/// - `perform` touches only plain data (raw fds, raw pointers and lengths captured when the op was
///   built, integers): it may run on a blocking-pool thread while the op's owner waits, so it must
///   not touch `Rc`s, thread-locals or anything else tied to the owner's thread;
/// - `orphaned` releases what a completion created (an fd, a buffer id) and nothing else.
pub unsafe trait OpCode: 'static {
    /// What awaiting the operation gives.
    type Output;

    /// The SQE for the io_uring driver (its user data is set by the driver), or `None` for an
    /// operation io_uring has no opcode for (it then takes the `plan()` path on io_uring too).
    fn uring_entry(&mut self) -> Option<Entry>;

    /// How the epoll driver runs it.
    fn plan(&self) -> Plan;

    /// The syscall for the epoll driver and the blocking pool; the `u32` is what a CQE's result
    /// would have been.
    fn perform(&mut self) -> io::Result<u32>;

    /// Builds the output from the result, giving back owned buffers.
    fn complete(self, result: io::Result<u32>) -> Self::Output;

    /// What the dispatch may do with it beyond submitting it (see [`OpTraits`]).
    fn traits(&self) -> OpTraits {
        OpTraits::NONE
    }

    /// True if the ring's result `res` is one the plan path may answer differently, so the
    /// operation runs by its plan instead (the op undoes what the ring's result made: closes an
    /// fd it opened). The ring makes some attempts non-blocking where the syscall would wait:
    /// it opens a FIFO for reading at once, with no writer yet, and fails to open one for
    /// writing with `ENXIO`, where a blocking `open` waits for the other end.
    fn ring_result_falls_back(&mut self, _res: i32) -> bool {
        false
    }

    /// Refuses an operation whose arguments the kernel must not see (flags that would let a
    /// result claim more than the buffer holds): it then completes with this error, never
    /// reaching the kernel or the pool.
    fn check(&self) -> io::Result<()> {
        Ok(())
    }

    /// The non-blocking attempt of an operation whose traits name one ([`Inline`]): `Some(result)`
    /// if the operation completed (a file read served from the page cache), `None` if it would
    /// block (then it is submitted as usual).
    fn try_nowait(&mut self) -> Option<io::Result<u32>> {
        None
    }

    /// After the operation failed with `EAGAIN`: the fd and readiness to wait for before trying
    /// again (on either driver, single-shot and multishot), or `None` to give the caller
    /// `WouldBlock` because nothing the operation can wait on would help. By default, its
    /// [`Plan::Readiness`]. When [`OpCode::shared_fd`] is `Some`, the fd returned here must be
    /// that fd: the epoll driver keeps the registration until it closes.
    fn wait_for(&self) -> Option<(RawFd, Interest)> {
        match self.plan() {
            Plan::Readiness { fd, interest } => Some((fd, interest)),
            _ => None,
        }
    }

    /// The hoop-owned fd a [`Plan::Readiness`] operation waits on, if it is one: its epoll
    /// registration is then kept between operations and dropped when the fd closes. Foreign fds
    /// (`None`) are registered only while an operation waits on them.
    fn shared_fd(&self) -> Option<&SharedFd> {
        None
    }

    /// A completion flagged `IORING_CQE_F_MORE` before the final one of a single-shot operation
    /// (the result of a zero-copy send, whose final completion is the buffer's release).
    fn more(&mut self, _res: i32, _flags: u32) {}

    /// Called for each completion that arrives after the future was dropped; closes an fd the
    /// operation returned, recycles a provided buffer it selected. It runs inside the driver and
    /// must not use it.
    fn orphaned(&mut self, _res: i32, _flags: u32) {}

    /// A hook the io_uring driver runs on each of this operation's completions as it reaps it:
    /// in the order the kernel posted them, whether or not the future is still there. For
    /// bookkeeping that must follow the kernel's order across operations, which the order in
    /// which futures are polled does not (incrementally consumed provided buffers, see
    /// `buf::BufRing`).
    fn reap_hook(&self) -> Option<ReapHook> {
        None
    }
}

/// A function the driver runs on an operation's completions (`res`, `flags`) as it reaps them
/// (see [`OpCode::reap_hook`]). It runs inside the driver: it must not start or poll operations.
#[derive(Clone)]
pub struct ReapHook(std::rc::Rc<dyn Fn(i32, u32)>);

impl ReapHook {
    /// A hook that runs `f`.
    pub fn new(f: impl Fn(i32, u32) + 'static) -> Self {
        ReapHook(std::rc::Rc::new(f))
    }

    pub(crate) fn run(&self, res: i32, flags: u32) {
        (self.0)(res, flags)
    }
}

impl std::fmt::Debug for ReapHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReapHook")
    }
}

/// The object-safe face of an [`OpCode`] the driver and the blocking pool work with.
pub(crate) trait DynOp: 'static {
    fn perform(&mut self) -> io::Result<u32>;
    fn orphaned(&mut self, res: i32, flags: u32);
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<T: OpCode> DynOp for T {
    fn perform(&mut self) -> io::Result<u32> {
        OpCode::perform(self)
    }
    fn orphaned(&mut self, res: i32, flags: u32) {
        OpCode::orphaned(self, res, flags)
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Gives back the concrete op a driver slot held.
pub(crate) fn downcast<T: OpCode>(data: Box<dyn DynOp>) -> Box<T> {
    data.into_any()
        .downcast::<T>()
        .unwrap_or_else(|_| unreachable!("a slot only ever holds the op type its future made"))
}

/// The error an operation gives when polled outside any hoop runtime.
pub(crate) fn no_runtime() -> io::Error {
    io::Error::other("hoop: operation polled outside a hoop runtime")
}

/// The error an operation gives when its runtime shut down before it completed.
pub(crate) fn runtime_gone() -> io::Error {
    io::Error::other("hoop: the runtime this operation was started on has shut down")
}
