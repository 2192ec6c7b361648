//! [`SharedFd`]: a reference-counted fd that in-flight operations keep open.
//!
//! The kernel resolves an SQE's fd when it runs the operation, which may be after the call that
//! submitted it returned; if the fd were closed meanwhile and its number reused, the operation
//! would hit another file. Each operation therefore holds a clone of the `SharedFd`, and the fd is
//! closed when the last clone goes.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::{Rc, Weak};

/// An fd shared by an I/O object and its in-flight operations; closed when the last one drops.
#[derive(Clone)]
pub struct SharedFd {
    inner: Rc<Inner>,
}

struct Inner {
    fd: RawFd,
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
                registered_in: RefCell::new(Vec::new()),
                status_flags: Cell::new(None),
                nowait_refused: Cell::new(false),
                read_hint: Cell::new(false),
                write_hint: Cell::new(true),
                nonblocking_stream: Cell::new(false),
            }),
        }
    }

    /// The raw fd (valid as long as this value lives).
    pub fn raw(&self) -> RawFd {
        self.inner.fd
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
    pub(crate) fn is_direct(&self) -> bool {
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

    /// `F_GETFL`, asked once per fd. hoop never changes status flags after opening; a caller
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

    /// Gives back the fd if no operation holds it any more.
    pub fn try_unwrap(self) -> Result<OwnedFd, SharedFd> {
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

impl AsRawFd for SharedFd {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.fd
    }
}

impl AsFd for SharedFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd stays open as long as `self` (a clone of the owner) lives, which the
        // borrow's lifetime guarantees.
        unsafe { BorrowedFd::borrow_raw(self.inner.fd) }
    }
}

impl fmt::Debug for SharedFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedFd").field(&self.inner.fd).finish()
    }
}
