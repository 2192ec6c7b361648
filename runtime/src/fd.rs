//! [`SharedFd`]: a reference-counted fd that in-flight operations keep open.
//!
//! The kernel resolves an SQE's fd when it runs the operation, which may be after the call that
//! submitted it returned; if the fd were closed meanwhile and its number reused, the operation
//! would hit another file. Each operation therefore holds a clone of the `SharedFd`, and the fd is
//! closed when the last clone goes.
//!
//! A `SharedFd` may also be a *direct descriptor*: a slot in one worker ring's table of
//! registered files (`IORING_REGISTER_FILES2`), made by an accept or open that asked for one. It
//! has no number in the process's fd table: operations name the slot with `IOSQE_FIXED_FILE` on
//! that ring (see `op::sqe_fd`), [`SharedFd::raw`] is -1, and the slot is closed through the ring
//! when the last clone goes.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// An fd shared by an I/O object and its in-flight operations; closed when the last one drops.
#[derive(Clone)]
pub struct SharedFd {
    inner: Rc<Inner>,
}

/// How many slots of a worker's table are held or promised, and how many the kernel may fill.
/// An accept whose slot the kernel cannot allocate has already taken the connection, which it
/// then closes; so every operation that makes a slot (an accept here, a descriptor sent by
/// another worker's ring) takes a place here first. Shared with the other workers, which
/// reserve before they send.
#[derive(Debug)]
pub(crate) struct SlotBudget {
    live: AtomicU32,
    capacity: u32,
}

impl SlotBudget {
    pub(crate) fn new(capacity: u32) -> Self {
        SlotBudget {
            live: AtomicU32::new(0),
            capacity,
        }
    }

    /// Takes a place, if there is one left.
    pub(crate) fn take(&self) -> bool {
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives a place back.
    pub(crate) fn give_back(&self) {
        let _ = self
            .live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

/// A slot to close, and whether to shut its socket down first (see `SharedFd::from_direct`).
pub(crate) type Closing = (u32, bool);

/// The table a direct descriptor's slot is in, as the driver that owns the table hands it out.
#[derive(Clone)]
pub(crate) struct DirectTable {
    /// Slots whose last holder went: the driver closes them with its next submission.
    pub(crate) closing: Rc<RefCell<Vec<Closing>>>,
    /// The worker's driver: a slot names a file only on that ring.
    pub(crate) owner: Weak<dyn Any>,
    /// Places for the slots the kernel allocates.
    pub(crate) budget: Arc<SlotBudget>,
    /// The free slots of those kept out of the kernel's allocation range, for operations that
    /// must name a slot before it is filled (a linked open and the reads after it). Slots below
    /// `reserved_below` are such slots.
    pub(crate) reserved: Rc<RefCell<Vec<u32>>>,
    pub(crate) reserved_below: u32,
}

impl DirectTable {
    /// True if `driver` (a worker's driver, as `Rc<RefCell<IoDriver>>`) owns this table.
    pub(crate) fn is_owned_by<T: ?Sized>(&self, driver: &Rc<T>) -> bool {
        std::ptr::eq(
            self.owner.as_ptr() as *const (),
            Rc::as_ptr(driver) as *const (),
        )
    }

    /// Takes ownership of the socket another worker's ring put in `slot` (`IORING_MSG_SEND_FD`),
    /// whose place in the budget that worker took before it sent.
    pub(crate) fn adopt(&self, slot: u32) -> SharedFd {
        SharedFd::from_direct(slot, self.clone(), true)
    }

    /// An empty slot of the reserved range, owned as a direct descriptor (an open into it fills
    /// it; its drop closes whatever is there and gives the slot back).
    pub(crate) fn take_reserved(&self) -> Option<SharedFd> {
        let slot = self.reserved.borrow_mut().pop()?;
        Some(SharedFd::from_direct(slot, self.clone(), false))
    }

    /// Promises a slot to one accept, if the table has one left.
    pub(crate) fn reserve(&self) -> Option<SlotReservation> {
        self.budget
            .take()
            .then(|| SlotReservation(Some(self.clone())))
    }

    /// Closes `slot` with the driver's next submission (nothing to do once the ring is gone:
    /// its table went with it); a reserved slot goes back to the reserved range at once (an
    /// open into it replaces what is there).
    fn close_later(&self, slot: u32, shutdown: bool) {
        if slot < self.reserved_below {
            if self.owner.strong_count() > 0 {
                // Queued before anything submitted after this drop, so the slot is empty (or
                // replaced) by the time a later SQE fills it.
                self.closing.borrow_mut().push((slot, false));
                self.reserved.borrow_mut().push(slot);
            }
            return;
        }
        // The place comes back when the close completes (`SLOT_CLOSED`): until then the kernel
        // still counts the slot as taken.
        if self.owner.strong_count() > 0 {
            self.closing.borrow_mut().push((slot, shutdown));
        }
    }
}

/// A slot promised by [`DirectTable::reserve`] to an accept or an open; given back if it ends
/// without one.
pub(crate) struct SlotReservation(Option<DirectTable>);

impl SlotReservation {
    /// The connection the kernel put in `slot`, owned from now on.
    pub(crate) fn fill(self, slot: u32) -> SharedFd {
        self.fill_as(slot, true)
    }

    /// The file (not a socket) the kernel put in `slot`, owned from now on.
    pub(crate) fn fill_file(self, slot: u32) -> SharedFd {
        self.fill_as(slot, false)
    }

    fn fill_as(mut self, slot: u32, socket: bool) -> SharedFd {
        // The place passes to the descriptor, which gives it back when it closes.
        let table = self.0.take().expect("a reservation is filled once");
        SharedFd::from_direct(slot, table, socket)
    }
}

impl Drop for SlotReservation {
    fn drop(&mut self) {
        if let Some(table) = &self.0 {
            table.budget.give_back();
        }
    }
}

struct Inner {
    /// The fd, or -1 for a direct descriptor.
    fd: RawFd,
    /// A direct descriptor's slot and table.
    direct: Option<(u32, DirectTable)>,
    /// A direct socket is shut down before its slot closes: before 6.13 the kernel releases a
    /// closed slot's file only after every older operation on any fixed file completed, so a
    /// connection closed while another waits (an idle connection's receive) would never send
    /// its FIN. Cleared when the socket lives on elsewhere (moved, given an fd).
    shutdown_on_close: Cell<bool>,
    /// Epoll drivers holding a registration of this fd, told when it closes (see
    /// `EpollDriver::forget_closed`).
    registered_in: RefCell<Vec<Weak<RefCell<Vec<RawFd>>>>>,
    /// The file status flags (`F_GETFL`), read on first use; -1 if that failed.
    status_flags: Cell<Option<i32>>,
    /// The kernel refused `RWF_NOWAIT` on this fd.
    nowait_refused: Cell<bool>,
    /// Stream fds: the last read filled its buffer, so more data is probably waiting.
    read_hint: Cell<bool>,
    /// Stream fds: the last write went out whole, so there is probably room for the next.
    write_hint: Cell<bool>,
    /// A pipe hoop created `O_NONBLOCK` (see `plain_stream_io`).
    nonblocking_stream: Cell<bool>,
}

impl SharedFd {
    /// Takes ownership of `fd`.
    pub fn new(fd: OwnedFd) -> Self {
        SharedFd {
            inner: Rc::new(Inner {
                fd: fd.into_raw_fd(),
                direct: None,
                shutdown_on_close: Cell::new(false),
                registered_in: RefCell::new(Vec::new()),
                status_flags: Cell::new(None),
                nowait_refused: Cell::new(false),
                read_hint: Cell::new(false),
                write_hint: Cell::new(true),
                nonblocking_stream: Cell::new(false),
            }),
        }
    }

    /// Takes ownership of the direct descriptor in `slot` of `table`; `socket` if it is a
    /// connection, shut down when the slot closes.
    fn from_direct(slot: u32, table: DirectTable, socket: bool) -> Self {
        SharedFd {
            inner: Rc::new(Inner {
                fd: -1,
                direct: Some((slot, table)),
                shutdown_on_close: Cell::new(socket),
                registered_in: RefCell::new(Vec::new()),
                // No inline attempts: they would need an fd number.
                status_flags: Cell::new(Some(-1)),
                nowait_refused: Cell::new(true),
                read_hint: Cell::new(false),
                write_hint: Cell::new(false),
                nonblocking_stream: Cell::new(false),
            }),
        }
    }

    /// The raw fd (valid as long as this value lives); -1 for a direct descriptor, which has no
    /// number in the process's fd table (a syscall on it fails with `EBADF`).
    pub fn raw(&self) -> RawFd {
        self.inner.fd
    }

    /// The slot of a direct descriptor in its worker ring's table of registered files; `None`
    /// for a plain fd.
    pub fn direct_slot(&self) -> Option<u32> {
        self.inner.direct.as_ref().map(|(slot, _)| *slot)
    }

    /// The fd, borrowed, for the I/O types that are only ever built from a plain fd (their
    /// `AsFd`).
    ///
    /// # Panics
    ///
    /// If this is a direct descriptor, which has no fd to borrow (see [`SharedFd::borrow_fd`]).
    pub fn as_plain_fd(&self) -> BorrowedFd<'_> {
        self.borrow_fd()
            .expect("hoop: a direct descriptor has no fd number to borrow")
    }

    /// The connection lives on elsewhere (another ring's table, an installed fd): closing this
    /// slot must not shut it down.
    pub(crate) fn keep_connection(&self) {
        self.inner.shutdown_on_close.set(false);
    }

    /// True if this is a slot of the reserved range (see `op::link::reserved_slot`).
    pub(crate) fn is_reserved_slot(&self) -> bool {
        self.direct()
            .is_some_and(|(slot, table)| *slot < table.reserved_below)
    }

    /// True if no other holder (an operation, a clone) shares this fd.
    pub(crate) fn is_unique(&self) -> bool {
        Rc::strong_count(&self.inner) == 1
    }

    /// A direct descriptor's slot and table.
    pub(crate) fn direct(&self) -> Option<&(u32, DirectTable)> {
        self.inner.direct.as_ref()
    }

    /// The fd, borrowed; `None` for a direct descriptor (it has no fd number).
    pub fn borrow_fd(&self) -> Option<BorrowedFd<'_>> {
        if self.inner.direct.is_some() {
            return None;
        }
        // SAFETY: a plain fd stays open as long as `self` (a clone of the owner) lives, which
        // the borrow's lifetime guarantees; it is never -1.
        Some(unsafe { BorrowedFd::borrow_raw(self.inner.fd) })
    }

    /// True if I/O may be tried inline on this fd with `preadv2`/`pwritev2(RWF_NOWAIT)`
    /// (page-cache reads of files, socket and pipe I/O) or, on hoop's own pipes, a plain
    /// `read`/`write` (see [`SharedFd::plain_stream_io`]): not for `O_DIRECT` (its non-blocking attempt would
    /// still wait for the device), nor once the kernel said the fd does not support it.
    pub(crate) fn nowait_io(&self) -> bool {
        !self.inner.nowait_refused.get()
            && self.status_flags().is_some_and(|f| f & libc::O_DIRECT == 0)
    }

    /// Stops inline attempts on this fd (the kernel refused `RWF_NOWAIT`).
    pub(crate) fn no_nowait_io(&self) {
        self.inner.nowait_refused.set(true);
    }

    /// True if the file was opened `O_DIRECT`: its reads and writes go to the device.
    pub(crate) fn is_o_direct(&self) -> bool {
        self.status_flags().is_some_and(|f| f & libc::O_DIRECT != 0)
    }

    /// Marks a pipe or FIFO that hoop created `O_NONBLOCK` and keeps that way (see
    /// [`SharedFd::plain_stream_io`]).
    pub(crate) fn mark_nonblocking_stream(&self) {
        self.inner.nonblocking_stream.set(true);
    }

    /// True if an inline attempt on this stream fd may be a plain `read`/`write` (it cannot
    /// wait, and skips the iovec import of `preadv2`/`pwritev2`). Only for fds hoop created
    /// non-blocking, not for any fd whose `F_GETFL` says `O_NONBLOCK`: the flag belongs to the
    /// open file description, which another holder may change later, and a plain call would
    /// then sleep on the worker where `RWF_NOWAIT` never does.
    pub(crate) fn plain_stream_io(&self) -> bool {
        self.inner.nonblocking_stream.get()
    }

    /// Stream fds: whether the last results suggest a non-blocking attempt in direction
    /// `write` would complete now (see `Inline::Stream`).
    pub(crate) fn stream_hint(&self, write: bool) -> bool {
        if self.inner.direct.is_some() {
            // An inline attempt is a syscall, which needs an fd number.
            return false;
        }
        if write {
            self.inner.write_hint.get()
        } else {
            self.inner.read_hint.get()
        }
    }

    /// Records what the last stream read (`write` false) or write said about readiness.
    pub(crate) fn set_stream_hint(&self, write: bool, likely_ready: bool) {
        if write {
            self.inner.write_hint.set(likely_ready);
        } else {
            self.inner.read_hint.set(likely_ready);
        }
    }

    /// Records the status flags of a file hoop just opened with `open_flags`, so that no
    /// `F_GETFL` is needed to learn them: the flags a successful open keeps (the creation flags
    /// do not stay; `O_DIRECT`, which is what the runtime asks about, does, or the open fails).
    pub(crate) fn set_opened_with(&self, open_flags: i32) {
        let creation = libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_TRUNC;
        self.inner
            .status_flags
            .set(Some(open_flags & !creation & !libc::O_CLOEXEC));
    }

    /// `F_GETFL`, asked once per fd (unless [`SharedFd::set_opened_with`] told). hoop never changes status flags after opening; a caller
    /// toggling `O_DIRECT` through the raw fd only changes which path (inline, batched, at
    /// once) later operations take, never their result.
    fn status_flags(&self) -> Option<i32> {
        let flags = match self.inner.status_flags.get() {
            Some(flags) => flags,
            None => {
                // SAFETY: F_GETFL on an fd this value keeps open; no memory is passed.
                let flags = unsafe { libc::fcntl(self.inner.fd, libc::F_GETFL) };
                self.inner.status_flags.set(Some(flags));
                flags
            }
        };
        (flags >= 0).then_some(flags)
    }

    /// Gives back the fd if no operation holds it any more (never for a direct descriptor, which
    /// has no fd to give).
    pub fn try_unwrap(self) -> Result<OwnedFd, SharedFd> {
        if self.inner.direct.is_some() {
            return Err(self);
        }
        match Rc::try_unwrap(self.inner) {
            Ok(inner) => {
                let fd = inner.fd;
                inner.notify_closed();
                std::mem::forget(inner);
                // SAFETY: `inner` owned `fd` and was forgotten, so ownership moves to the OwnedFd.
                Ok(unsafe { OwnedFd::from_raw_fd(fd) })
            }
            Err(inner) => Err(SharedFd { inner }),
        }
    }
}

impl SharedFd {
    /// Asks to be told (through `sink`) when this fd closes; used by the epoll driver.
    pub(crate) fn on_close_notify(&self, sink: &Rc<RefCell<Vec<RawFd>>>) {
        self.inner
            .registered_in
            .borrow_mut()
            .push(Rc::downgrade(sink));
    }
}

impl Inner {
    /// Tells every epoll driver that registered this fd that it is closing (or leaving hoop).
    fn notify_closed(&self) {
        for sink in self.registered_in.borrow_mut().drain(..) {
            if let Some(sink) = sink.upgrade() {
                sink.borrow_mut().push(self.fd);
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some((slot, table)) = &self.direct {
            // The last reference: no operation names the slot any more.
            table.close_later(*slot, self.shutdown_on_close.get());
            return;
        }
        self.notify_closed();
        // SAFETY: this `Inner` owns the fd, and it is the last reference (the `Rc` is dropping),
        // so no operation can still name it.
        unsafe { libc::close(self.fd) };
    }
}

/// An I/O object that owns a [`SharedFd`] (a file, a socket, a pipe): what an operation that
/// takes "any hoop fd" asks for, such as the source of `send_file`, so that a crate need not name
/// another crate's types (`hoop-net` sends `hoop-fs` files without depending on it).
pub trait AsSharedFd {
    /// The shared fd operations on this object hold while they run.
    fn as_shared_fd(&self) -> &SharedFd;
}

impl AsSharedFd for SharedFd {
    fn as_shared_fd(&self) -> &SharedFd {
        self
    }
}

/// -1 for a direct descriptor (see [`SharedFd::raw`]).
impl AsRawFd for SharedFd {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.fd
    }
}

impl fmt::Debug for SharedFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.direct_slot() {
            Some(slot) => f
                .debug_struct("SharedFd")
                .field("direct_slot", &slot)
                .finish(),
            None => f.debug_tuple("SharedFd").field(&self.inner.fd).finish(),
        }
    }
}
