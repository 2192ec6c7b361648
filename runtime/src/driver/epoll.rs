//! The epoll backend: readiness for sockets and pipes, the blocking pool for everything else.
//!
//! fds are registered edge-triggered for all directions at once, the first time an operation on
//! them would block. Operations always try their syscall first and wait only after
//! `EWOULDBLOCK`; a per-registration `tick` (bumped by every event) lets a re-polled operation
//! skip a syscall that cannot succeed. Registrations of hoop-owned fds stay until the fd is
//! closed (`forget_fd`); those of foreign fds last while an operation waits on them.

use super::opcode::Interest;
use crate::fd::SharedFd;
use slab::Slab;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::Waker;
use std::time::Duration;

/// Token of the worker's doorbell eventfd in epoll events.
const DOORBELL: u64 = u64::MAX;

struct Registration {
    fd: RawFd,
    /// Distinguishes this registration from a later one that reuses the slab key.
    serial: u64,
    /// Bumped on every event for this fd.
    tick: u64,
    readers: Vec<(u64, Waker)>,
    writers: Vec<(u64, Waker)>,
    /// A hoop-owned fd: keep the registration until `forget_fd`.
    sticky: bool,
    /// Waiters on a foreign fd; the registration goes when they are all gone.
    foreign: usize,
}

/// An operation's place in a registration's waiter lists.
#[derive(Debug)]
pub(crate) struct Waiter {
    token: usize,
    serial: u64,
    id: u64,
    tick: u64,
    counted_foreign: bool,
}

pub(crate) struct EpollDriver {
    epfd: OwnedFd,
    doorbell_fd: RawFd,
    events: Vec<libc::epoll_event>,
    regs: Slab<Registration>,
    by_fd: HashMap<RawFd, usize>,
    next_id: u64,
    /// fds of registered `SharedFd`s that were closed since the last look: their registrations
    /// are dropped before any new registration, so a reused fd number never inherits one.
    closed: Rc<RefCell<Vec<RawFd>>>,
    /// Zero-timeout turns skipped since the last `epoll_wait`: while tasks keep the worker busy,
    /// events are collected every [`BUSY_TURNS_PER_POLL`] ticks instead of every tick.
    busy_turns: u32,
}

/// See `EpollDriver::busy_turns`.
const BUSY_TURNS_PER_POLL: u32 = 8;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl EpollDriver {
    pub(crate) fn new(doorbell_fd: RawFd) -> io::Result<Self> {
        // SAFETY: no memory arguments; the result is checked.
        let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `epfd` was just created and is owned by nobody else.
        let epfd = unsafe { OwnedFd::from_raw_fd(epfd) };
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: DOORBELL,
        };
        // SAFETY: `ev` is a live local the kernel only reads during the call.
        cvt(unsafe {
            libc::epoll_ctl(epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, doorbell_fd, &mut ev)
        })?;
        Ok(EpollDriver {
            epfd,
            doorbell_fd,
            events: Vec::with_capacity(256),
            regs: Slab::new(),
            by_fd: HashMap::new(),
            next_id: 0,
            closed: Rc::default(),
            busy_turns: 0,
        })
    }

    /// Drops the registrations of fds closed since the last call.
    fn forget_closed(&mut self) {
        let closed = std::mem::take(&mut *self.closed.borrow_mut());
        for fd in closed {
            if let Some(&token) = self.by_fd.get(&fd) {
                self.unregister(token);
            }
        }
    }

    fn register(&mut self, fd: RawFd) -> io::Result<usize> {
        self.forget_closed();
        if let Some(&token) = self.by_fd.get(&fd) {
            return Ok(token);
        }
        let entry = self.regs.vacant_entry();
        let token = entry.key();
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN
                | libc::EPOLLOUT
                | libc::EPOLLRDHUP
                | libc::EPOLLPRI
                | libc::EPOLLET) as u32,
            u64: token as u64,
        };
        // SAFETY: `ev` is a live local the kernel only reads during the call.
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        self.next_id += 1;
        entry.insert(Registration {
            fd,
            serial: self.next_id,
            tick: 0,
            readers: Vec::new(),
            writers: Vec::new(),
            sticky: false,
            foreign: 0,
        });
        self.by_fd.insert(fd, token);
        Ok(token)
    }

    fn unregister(&mut self, token: usize) {
        let reg = self.regs.remove(token);
        self.by_fd.remove(&reg.fd);
        // SAFETY: a null event pointer is allowed for EPOLL_CTL_DEL. The fd may already be closed
        // (foreign fds), in which case the kernel answers EBADF or ENOENT and nothing happens.
        unsafe {
            libc::epoll_ctl(
                self.epfd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                reg.fd,
                std::ptr::null_mut(),
            )
        };
        for (_, w) in reg.readers.into_iter().chain(reg.writers) {
            w.wake();
        }
    }

    fn get(&mut self, w: &Waiter) -> Option<&mut Registration> {
        self.regs.get_mut(w.token).filter(|r| r.serial == w.serial)
    }

    /// Registers `waker` to be woken when `fd` becomes ready for `interest` (after the caller's
    /// syscall said `EWOULDBLOCK`).
    pub(crate) fn wait(
        &mut self,
        fd: RawFd,
        interest: Interest,
        owner: Option<&SharedFd>,
        waiter: &mut Option<Waiter>,
        waker: &Waker,
    ) -> io::Result<()> {
        let stale = match waiter {
            Some(w) => self.get(w).is_none_or(|r| r.fd != fd),
            None => true,
        };
        if stale {
            if let Some(old) = waiter.take() {
                self.release(old);
            }
            let token = self.register(fd)?;
            self.next_id += 1;
            let reg = &mut self.regs[token];
            let counted_foreign = owner.is_none();
            match owner {
                Some(shared) => {
                    if !reg.sticky {
                        shared.on_close_notify(&self.closed);
                    }
                    reg.sticky = true;
                }
                None => reg.foreign += 1,
            }
            *waiter = Some(Waiter {
                token,
                serial: reg.serial,
                id: self.next_id,
                tick: reg.tick,
                counted_foreign,
            });
        }
        let w = waiter.as_mut().expect("set above");
        let reg = &mut self.regs[w.token];
        w.tick = reg.tick;
        let id = w.id;
        for (want, list) in [
            (
                interest.is_readable() || !interest.is_writable(),
                &mut reg.readers,
            ),
            (interest.is_writable(), &mut reg.writers),
        ] {
            if !want {
                continue;
            }
            match list.iter_mut().find(|(i, _)| *i == id) {
                Some((_, old)) => old.clone_from(waker),
                None => list.push((id, waker.clone())),
            }
        }
        Ok(())
    }

    /// True if no event arrived for the waiter's fd since it started waiting, i.e. retrying the
    /// syscall is pointless; refreshes the stored waker.
    pub(crate) fn still_waiting(&mut self, w: &Waiter, waker: &Waker) -> bool {
        let id = w.id;
        let tick = w.tick;
        let Some(reg) = self.get(w) else { return false };
        if reg.tick != tick {
            return false;
        }
        let mut found = false;
        for (i, old) in reg.readers.iter_mut().chain(reg.writers.iter_mut()) {
            if *i == id {
                old.clone_from(waker);
                found = true;
            }
        }
        found
    }

    /// The operation of `w` is done (or dropped).
    pub(crate) fn release(&mut self, w: Waiter) {
        let Some(reg) = self.get(&w) else { return };
        reg.readers.retain(|(i, _)| *i != w.id);
        reg.writers.retain(|(i, _)| *i != w.id);
        if w.counted_foreign {
            reg.foreign -= 1;
        }
        if !reg.sticky && reg.foreign == 0 {
            self.unregister(w.token);
        }
    }

    /// Waits for events up to `timeout` (`None`: forever; zero: just poll) and wakes waiters.
    /// Returns false if it skipped the syscall (a busy tick).
    pub(crate) fn turn(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        if timeout == Some(Duration::ZERO) {
            self.busy_turns += 1;
            if self.busy_turns < BUSY_TURNS_PER_POLL {
                return Ok(false);
            }
        }
        self.busy_turns = 0;
        let ms = match timeout {
            None => -1,
            // Rounded up, so a timer never fires early and the loop never spins on a 0 ms wait.
            Some(t) => t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int,
        };
        self.take_events(ms)?;
        Ok(true)
    }

    /// Takes the events that are ready now and wakes their waiters; true if there were any.
    pub(crate) fn poll_now(&mut self) -> io::Result<bool> {
        Ok(self.take_events(0)? > 0)
    }

    /// One `epoll_wait` of up to `ms` (-1: forever); wakes the waiters of what it returns.
    fn take_events(&mut self, ms: libc::c_int) -> io::Result<usize> {
        self.forget_closed();
        self.events.clear();
        // SAFETY: the kernel writes at most `capacity` events into the vector's spare capacity.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.capacity() as libc::c_int,
                ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EINTR) {
                Ok(0)
            } else {
                Err(e)
            };
        }
        // SAFETY: the kernel initialised the first `n` events.
        unsafe { self.events.set_len(n as usize) };
        for i in 0..self.events.len() {
            let ev = self.events[i];
            let (token, bits) = (ev.u64, ev.events as libc::c_int);
            if token == DOORBELL {
                let mut buf = 0u64;
                // SAFETY: reads 8 bytes into a live local; epoll said the eventfd is readable, so
                // this blocking read returns at once.
                unsafe { libc::read(self.doorbell_fd, (&mut buf as *mut u64).cast(), 8) };
                continue;
            }
            let Some(reg) = self.regs.get_mut(token as usize) else {
                continue;
            };
            reg.tick += 1;
            let err = bits & (libc::EPOLLERR | libc::EPOLLHUP) != 0;
            if err || bits & (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDHUP) != 0 {
                for (_, w) in reg.readers.drain(..) {
                    w.wake();
                }
            }
            if err || bits & libc::EPOLLOUT != 0 {
                for (_, w) in reg.writers.drain(..) {
                    w.wake();
                }
            }
        }
        let n = self.events.len();
        if n == self.events.capacity() {
            self.events.reserve(self.events.capacity());
        }
        Ok(n)
    }
}
