//! The io_uring backend: one ring per worker, SQEs batched per tick, completions fed to the op
//! lifecycle.
//!
//! `io_uring_enter` policy (see the kernel's `io_uring_enter(2)`): `EINTR` and `ETIME` are normal
//! returns of a wait; `EBUSY` and `EAGAIN` mean "reap completions, then try again", and SQEs
//! already pushed stay owned by their operations; any other error is returned but never frees an
//! operation's memory. CQ overflow (`IORING_SQ_CQ_OVERFLOW`) makes the next enter flush the
//! kernel's backlog, which the io-uring crate does by adding `GETEVENTS`.

use super::direct_table::DirectSlots;
use super::enter::RingEnter;
use super::fixed_table::FixedTable;
use super::lifecycle::{Arrival, Completion, Slots};
use super::old_kernel::{self, since, Release};
use super::opcode::DynOp;
use super::DriverStats;
use crate::creds::{self, Credentials};
use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Weak;
use std::time::Duration;

/// User data of cancel SQEs and of closes of direct descriptors, whose completions carry
/// nothing we need.
const CANCEL: u64 = u64::MAX;
/// User data of the doorbell read (the worker's eventfd).
const DOORBELL: u64 = u64::MAX - 1;
/// User data of the completions other workers post into this ring with `MSG_RING`: a doorbell
/// (or the arrival of a direct descriptor, whose job follows in the inbox).
pub(crate) const MESSAGE: u64 = u64::MAX - 2;
/// User data of this ring's own `MSG_RING` SQEs: `MSG_SENT | key` in `messages`. Slot user data
/// never reaches this range (generation `u32::MAX` with a key of 2^30 or more: keys stay below
/// `max_in_flight`, at most 2^30).
const MSG_SENT: u64 = 0xffff_ffff_c000_0000;
const MSG_KEYS: u64 = 0x2000_0000;
/// User data of the close of a dropped direct descriptor's slot: its completion gives the
/// slot's place in the budget back (the kernel may reuse the slot only from then on). Outside
/// slot user data for the same reason as `MSG_SENT`, and below it.
const SLOT_CLOSED: u64 = 0xffff_ffff_a000_0000;

/// Buffer group ids below this live in a kernel array (`BGID_ARRAY`; mainline 5.19–6.8, all of
/// 6.1.y, 6.6.y before the backport of 09ab7eff3820) whose state outlives an unregistration:
/// hoop never reuses them, on any kernel (see `unregister_buf_ring`).
const BGID_ARRAY: u16 = 64;

pub(crate) struct UringDriver {
    /// Declared before `ring`, so dropped first: unregistering the ring fd needs the ring open.
    enter: RingEnter,
    ring: IoUring,
    /// Boxed: the probe's op table is 2 KiB, which would bloat every `Backend`.
    probe: Box<Probe>,
    /// The worker's eventfd, read by an SQE kept in the ring while the worker parks.
    doorbell_fd: RawFd,
    /// Where the doorbell read lands; heap-stable, leaked if the ring is abandoned.
    doorbell_buf: Box<u64>,
    doorbell_armed: bool,
    /// Set at shutdown: the doorbell is cancelled and must not be armed again.
    closing: bool,
    /// Registered personalities by identity, with a weak reference to tell when no
    /// `Credentials` for them is left (then they are unregistered).
    personalities: HashMap<creds::Inner, (Weak<creds::Inner>, u16)>,
    /// Registered buffers of this worker's pools.
    fixed: FixedTable,
    /// Registered files: the direct descriptors of this worker.
    direct: DirectSlots,
    /// The size of the direct-descriptor table (`Builder::direct_descriptors`).
    direct_wanted: u32,
    /// Buffer group ids of unregistered provided-buffer rings, for reuse, and the next new one.
    free_bgids: Vec<u16>,
    next_bgid: u16,
    /// Human-readable setup flags, for `RuntimeInfo`.
    pub(crate) setup: String,
    /// The ring's opcode allowlist (`Builder::restrict_to`), sorted; `None` if unrestricted.
    allowed: Option<Vec<u8>>,
    /// Whether this ring sends and takes `MSG_RING` doorbells (see `driver::msg`).
    messages_on: bool,
    /// Doorbells sent and not yet completed: rung again by eventfd if the message fails or
    /// never leaves (the driver dropped with it queued).
    messages: slab::Slab<std::sync::Arc<dyn super::Doorbell>>,
}

impl UringDriver {
    /// Creates a ring with `entries` SQ entries, with the most efficient setup flags the kernel
    /// accepts. Errors are returned as is: the caller decides what means "unavailable".
    pub(crate) fn new(config: &super::DriverConfig, doorbell_fd: RawFd) -> io::Result<Self> {
        let restrict = config.restrict.as_deref();
        let entries = config.entries.clamp(1, 32768).next_power_of_two();
        // Newest flags first; older kernels reject unknown flags with EINVAL.
        type Setup = (&'static str, Release, fn(&mut io_uring::Builder));
        let attempts: [Setup; 3] = [
            (
                "SINGLE_ISSUER|DEFER_TASKRUN|TASKRUN_FLAG|SUBMIT_ALL",
                since::DEFER_TASKRUN,
                |b| {
                    b.setup_single_issuer()
                        .setup_defer_taskrun()
                        .setup_taskrun_flag()
                        .setup_submit_all();
                },
            ),
            (
                "COOP_TASKRUN|TASKRUN_FLAG|SUBMIT_ALL",
                since::COOP_TASKRUN,
                |b| {
                    b.setup_coop_taskrun()
                        .setup_taskrun_flag()
                        .setup_submit_all();
                },
            ),
            ("(none)", (0, 0), |_| {}),
        ];
        let mut last = io::Error::from_raw_os_error(libc::EINVAL);
        for (name, since, apply) in attempts {
            if old_kernel::lacks(since) {
                continue;
            }
            let mut builder = IoUring::builder();
            builder.dontfork().setup_clamp();
            if restrict.is_some() {
                // Restrictions can only be registered on a ring that starts disabled.
                builder.setup_r_disabled();
            }
            apply(&mut builder);
            match builder.build(entries) {
                Ok(ring) => {
                    let mut driver = Self::with_ring(ring, name, doorbell_fd)?;
                    if let Some(mut max) = config.io_wq_max_workers {
                        // Before the restrictions: register calls are not on their allowlist.
                        let res = if old_kernel::lacks(since::IOWQ_MAX_WORKERS) {
                            Err(old_kernel::refused())
                        } else {
                            driver.ring.submitter().register_iowq_max_workers(&mut max)
                        };
                        if let Err(e) = res {
                            crate::log::warning!(
                                "io-wq worker bound not applied (needs Linux 5.15): {e}"
                            );
                        }
                    }
                    if let Some(opcodes) = restrict {
                        driver.restrict(opcodes)?;
                    }
                    driver.messages_on = config.messages
                        && driver.supports(opcode::MsgRingData::CODE)
                        && driver.allows_outside(Some(opcode::MsgRingData::CODE))
                        && messages_reach(name);
                    if driver.messages_on {
                        driver.setup.push_str("|MSG_RING doorbells");
                    }
                    // A restricted ring refuses the registration; say so up front.
                    if restrict.is_none() {
                        driver.direct_wanted = config.direct_descriptors;
                    }
                    return Ok(driver);
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn with_ring(ring: IoUring, setup: &str, doorbell_fd: RawFd) -> io::Result<Self> {
        if !ring.params().is_feature_ext_arg() || !ring.params().is_feature_nodrop() {
            // Timed waits need EXT_ARG (5.11); lossless overflow needs NODROP (5.5).
            return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        }
        let mut probe = Box::new(Probe::new());
        ring.submitter().register_probe(&mut probe)?;
        tracing::debug!(
            target: "hoop",
            setup,
            sq_entries = ring.params().sq_entries(),
            cq_entries = ring.params().cq_entries(),
            fast_poll = ring.params().is_feature_fast_poll(),
            rw_cur_pos = ring.params().is_feature_rw_cur_pos(),
            "io_uring ready"
        );
        let enter = RingEnter::new(ring.as_raw_fd());
        let mut setup = setup.to_string();
        if enter.is_registered() {
            setup.push_str("|REGISTERED_RING_FD");
        }
        Ok(UringDriver {
            enter,
            ring,
            probe,
            doorbell_fd,
            doorbell_buf: Box::new(0),
            doorbell_armed: false,
            closing: false,
            personalities: HashMap::new(),
            fixed: FixedTable::default(),
            direct: DirectSlots::new(),
            direct_wanted: 0,
            free_bgids: Vec::new(),
            next_bgid: 0,
            setup,
            allowed: None,
            messages_on: false,
            messages: slab::Slab::new(),
        })
    }

    /// Registers the opcode allowlist (and the register calls hoop uses), then enables the ring.
    fn restrict(&mut self, opcodes: &[u8]) -> io::Result<()> {
        use io_uring::register::Restriction;
        use io_uring::squeue::Flags;
        // Only opcodes this kernel has (its probe): it refuses the whole list (EINVAL) if one
        // is past its last (`OpClass::Files` names FTRUNCATE, 6.9, which made every restricted
        // ring fail to start on 6.1). One left out is one the kernel cannot run anyway. The
        // full list stays the policy for operations run outside the ring (`allows_outside`).
        let sqe_ops: Vec<u8> = opcodes
            .iter()
            .copied()
            .filter(|&op| self.supports(op))
            .collect();
        // The kernel model of the emulation: a list naming an opcode the emulated kernel lacks
        // is refused as that kernel refuses it (this catches a list built without the filter).
        if sqe_ops.iter().any(|&op| old_kernel::lacks_opcode(op)) {
            return Err(old_kernel::refused());
        }
        let build = |register_ops: &mut dyn Iterator<Item = u8>| {
            let mut list: Vec<Restriction> =
                sqe_ops.iter().map(|&op| Restriction::sqe_op(op)).collect();
            list.extend(register_ops.map(Restriction::register_op));
            // SQE flags the runtime sets (buffer select for provided-buffer receives).
            list.push(Restriction::sqe_flags_allowed(
                (Flags::BUFFER_SELECT | Flags::ASYNC).bits(),
            ));
            list
        };
        // Register calls: there is no probe for them, so every one hoop uses first; a kernel
        // that lacks one refuses the whole list (EINVAL) and forgets it, and then the calls of
        // its release are tried — keeping the ring-fd unregister whenever the ring fd was
        // registered (a kernel with backports can have it under an older release number).
        let submitter = self.ring.submitter();
        let all = &mut super::restrict::REGISTER_OPS.iter().copied();
        let first = if super::restrict::REGISTER_OPS
            .iter()
            .any(|&op| old_kernel::refuses_register_op(op))
        {
            Err(old_kernel::refused())
        } else {
            submitter.register_restrictions(&mut build(all))
        };
        match first {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                let registered_ring = self.enter.is_registered();
                let known = &mut super::restrict::REGISTER_OPS.iter().copied().filter(|&op| {
                    old_kernel::register_op_known(op)
                        || (op == super::restrict::UNREGISTER_RING_FDS && registered_ring)
                });
                submitter.register_restrictions(&mut build(known))?;
            }
            res => res?,
        }
        submitter.register_enable_rings()?;
        self.setup.push_str("|R_DISABLED (restricted)");
        tracing::debug!(target: "hoop", opcodes = sqe_ops.len(), "ring restricted to an opcode allowlist");
        self.allowed = Some(opcodes.to_vec());
        Ok(())
    }

    /// True if the ring has an opcode allowlist: operations must then go through the ring (an
    /// inline syscall would bypass the list), so inline attempts are off.
    pub(crate) fn is_restricted(&self) -> bool {
        self.allowed.is_some()
    }

    /// True if an operation may run outside the ring (on the pool, or by a syscall on this
    /// thread) because the kernel lacks its opcode or io_uring has none: always on an
    /// unrestricted ring; on a restricted one only if `opcode` (its own, or the one it stands
    /// for) is on the allowlist, which would otherwise be bypassed.
    pub(crate) fn allows_outside(&self, opcode: Option<u8>) -> bool {
        match (&self.allowed, opcode) {
            (None, _) => true,
            (Some(list), Some(op)) => list.binary_search(&op).is_ok(),
            (Some(_), None) => false,
        }
    }

    /// True if no SQE waits to be submitted.
    pub(crate) fn sq_is_empty(&mut self) -> bool {
        self.ring.submission().is_empty()
    }

    /// True if the kernel implements `opcode` (from `IORING_REGISTER_PROBE`).
    pub(crate) fn supports(&self, opcode: u8) -> bool {
        self.probe.is_supported(opcode) && !old_kernel::lacks_opcode(opcode)
    }

    /// The personality id for `creds`, registering it (with this thread switched to `creds`)
    /// on first use, and unregistering those no `Credentials` refers to any more.
    pub(crate) fn personality(&mut self, creds: &Credentials) -> io::Result<u16> {
        if let Some((weak, id)) = self.personalities.get_mut(creds.key()) {
            if weak.strong_count() == 0 {
                *weak = creds.weak();
            }
            return Ok(*id);
        }
        let ring = &self.ring;
        self.personalities.retain(|_, (weak, id)| {
            let alive = weak.strong_count() > 0;
            if !alive {
                let _ = ring.submitter().unregister_personality(*id);
            }
            alive
        });
        let id = creds.scope(|| self.ring.submitter().register_personality())??;
        self.personalities
            .insert(creds.key().clone(), (creds.weak(), id));
        Ok(id)
    }

    /// Registers buffers for `READ_FIXED`/`WRITE_FIXED`; returns the first slot's index.
    ///
    /// # Safety
    ///
    /// As [`FixedTable::register`]: the memory stays allocated until `unregister_fixed` of the
    /// range succeeded.
    pub(crate) unsafe fn register_fixed(&mut self, iovecs: &[libc::iovec]) -> io::Result<u16> {
        // SAFETY: forwarded to the caller.
        unsafe { self.fixed.register(&self.ring.submitter(), iovecs) }
    }

    /// Empties the slots `register_fixed` gave.
    pub(crate) fn unregister_fixed(&mut self, base: u16, n: usize) -> io::Result<()> {
        self.fixed.unregister(&self.ring.submitter(), base, n)
    }

    /// Registers a provided-buffer ring of `entries` at `addr` under a fresh group id; with
    /// `incremental`, as `IOU_PBUF_RING_INC` where the kernel has it (6.12). Returns the id and
    /// whether the ring is incremental.
    ///
    /// # Safety
    ///
    /// `addr` is page aligned memory for `entries` `io_uring_buf`s that stays allocated, with
    /// the buffers it names, until `unregister_buf_ring` of the returned id succeeded.
    pub(crate) unsafe fn register_buf_ring(
        &mut self,
        addr: u64,
        entries: u16,
        incremental: bool,
    ) -> io::Result<(u16, bool)> {
        let bgid = match self.free_bgids.pop() {
            Some(id) => id,
            None if self.next_bgid < u16::MAX => {
                self.next_bgid += 1;
                self.next_bgid - 1
            }
            None => return Err(io::Error::from_raw_os_error(libc::ENOSPC)),
        };
        let register = |flags: u16| {
            let lacks = if flags == 0 {
                since::PBUF_RING
            } else {
                since::PBUF_RING_INC
            };
            if old_kernel::lacks(lacks) {
                return Err(old_kernel::refused());
            }
            // SAFETY: forwarded to the caller.
            unsafe {
                self.ring
                    .submitter()
                    .register_buf_ring_with_flags(addr, entries, bgid, flags)
            }
        };
        let mut res = Err(old_kernel::refused());
        let mut inc = false;
        if incremental {
            res = register(io_uring::types::IOU_PBUF_RING_INC as u16);
            inc = res.is_ok();
            if let Err(e) = &res {
                // Before 6.12 the flag is refused (`EINVAL`): plain buffers instead.
                tracing::debug!(target: "hoop", error = %e, "incremental buffer ring refused");
            }
        }
        if res.is_err() {
            res = register(0);
        }
        match res {
            Ok(()) => Ok((bgid, inc)),
            Err(e) => {
                // Never registered: the kernel kept no state under it.
                self.free_bgids.push(bgid);
                Err(e)
            }
        }
    }

    /// True if a receive may fill several provided buffers at once (`IORING_RECVSEND_BUNDLE`,
    /// 6.10; used from 6.16, see `since::WHOLE_BUFFER_BUNDLES`).
    pub(crate) fn recv_bundles(&self) -> bool {
        self.ring.params().is_feature_recvsend_bundle()
            && old_kernel::effective() >= since::WHOLE_BUFFER_BUNDLES
    }

    /// Unregisters a provided-buffer ring. Its id is reused afterwards only if it is not one of
    /// the first `BGID_ARRAY` ids: for those, kernels from 5.19 up to 6.8 (and 6.1.y, and 6.6.y
    /// before a backport) keep the group's state in a static array and do not reset its head
    /// when the id is registered again, so a new ring under an old id would start at the old
    /// ring's head and the kernel would hand out entries the application never wrote (seen on
    /// Debian's 6.1 by `tests/buf_ring_modes.rs`). It costs at most 64 ids.
    pub(crate) fn unregister_buf_ring(&mut self, bgid: u16) -> io::Result<()> {
        self.ring.submitter().unregister_buf_ring(bgid)?;
        if bgid >= BGID_ARRAY {
            self.free_bgids.push(bgid);
        }
        Ok(())
    }

    /// The table of direct descriptors, registered on first use; `None` where it cannot be.
    pub(crate) fn direct_table(
        &mut self,
        owner: std::rc::Weak<dyn std::any::Any>,
    ) -> Option<crate::fd::DirectTable> {
        if self.direct_wanted == 0 {
            return None;
        }
        self.direct.table(&self.ring, self.direct_wanted, owner)
    }

    /// The budget of the table of direct descriptors, once registered.
    pub(crate) fn direct_budget(&self) -> Option<std::sync::Arc<crate::fd::SlotBudget>> {
        self.direct.budget()
    }

    /// Closes every direct descriptor left (the driver is done).
    pub(crate) fn release_direct_table(&mut self) {
        self.direct.release(&self.ring);
    }

    /// Registers the table of direct descriptors now; false where it cannot be.
    pub(crate) fn prepare_direct_table(&mut self) -> bool {
        self.direct_wanted > 0 && self.direct.ensure(&self.ring, self.direct_wanted)
    }

    /// Queues a close of every direct descriptor dropped since the last SQE (called before each
    /// SQE and each enter, so that a close always precedes, in the ring's order, the SQEs
    /// queued after the drop). A slot whose close cannot be queued is emptied at once through
    /// `io_uring_register`.
    pub(crate) fn close_dropped_slots(
        &mut self,
        ops: &mut Slots,
        graveyard: &mut Vec<Box<dyn DynOp>>,
        stats: &mut DriverStats,
    ) {
        for (slot, shutdown) in self.direct.take_closing() {
            // Reserved slots are not in the budget.
            let counted = slot >= super::direct_table::RESERVED;
            let tag = if counted { SLOT_CLOSED } else { CANCEL };
            let close = opcode::Close::new(types::Fixed(slot))
                .build()
                .user_data(tag);
            let queued = if shutdown {
                // See `SharedFd`'s `shutdown_on_close`: the FIN must not wait for the release.
                // Hard-linked, and in one submission: a shutdown waits on io-wq, and a close
                // run first would leave it no file (`EBADF`).
                let shut = opcode::Shutdown::new(types::Fixed(slot), libc::SHUT_RDWR)
                    .build()
                    .flags(squeue::Flags::IO_HARDLINK)
                    .user_data(CANCEL);
                self.push_together(&[shut, close], ops, graveyard, stats)
            } else {
                self.push(close, ops, graveyard, stats)
            };
            if queued.is_err() {
                let _ = self.ring.submitter().register_files_update(slot, &[-1]);
                if counted {
                    self.direct.closed();
                }
            }
        }
    }

    /// This ring's fd for other workers' `MSG_RING` doorbells, if it takes them.
    pub(crate) fn message_ring_fd(&self) -> Option<RawFd> {
        self.messages_on.then(|| self.ring.as_raw_fd())
    }

    /// Queues a `MSG_RING` SQE that rings `target`'s doorbell; false if this ring cannot send
    /// one to it (the caller writes the eventfd).
    pub(crate) fn send_doorbell(
        &mut self,
        target: std::sync::Arc<dyn super::Doorbell>,
        ops: &mut Slots,
        graveyard: &mut Vec<Box<dyn DynOp>>,
        stats: &mut DriverStats,
    ) -> bool {
        if !self.messages_on || self.closing || self.messages.len() as u64 >= MSG_KEYS {
            return false;
        }
        let Some(fd) = target.ring_fd() else {
            return false;
        };
        let key = self.messages.insert(target);
        let entry = opcode::MsgRingData::new(types::Fd(fd), 0, MESSAGE, None)
            .build()
            .user_data(MSG_SENT | key as u64);
        if self.push(entry, ops, graveyard, stats).is_err() {
            self.messages.remove(key);
            return false;
        }
        true
    }

    pub(crate) fn doorbell_armed(&self) -> bool {
        self.doorbell_armed
    }

    /// Queues `entry`; when the SQ is full, submits what is queued (reaping if the kernel says
    /// EBUSY) and tries again. Never drops the entry.
    pub(crate) fn push(
        &mut self,
        entry: squeue::Entry,
        ops: &mut Slots,
        graveyard: &mut Vec<Box<dyn DynOp>>,
        stats: &mut DriverStats,
    ) -> io::Result<()> {
        if old_kernel::refuses(&entry) {
            // What the emulated kernel answers for a flag it does not know.
            let c = Completion {
                res: -libc::EINVAL,
                flags: 0,
            };
            if let Arrival::Orphan(Some(data)) = ops.complete(entry.get_user_data(), c, false) {
                graveyard.push(data);
            }
            return Ok(());
        }
        loop {
            // SAFETY: every SQE we push comes from an `OpCode` (whose contract keeps its memory
            // alive until the final completion, the op being owned by a driver slot or future
            // from now on), or is a cancel/doorbell entry whose memory the driver owns.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            stats.sq_full += 1;
            self.enter(Some(Duration::ZERO), stats)?;
            self.reap(ops, graveyard, stats);
        }
    }

    /// Queues `entries` back to back in one submission (a linked pair): waits for room for all
    /// of them first, so a full queue never splits them. Never partly queued.
    fn push_together(
        &mut self,
        entries: &[squeue::Entry],
        ops: &mut Slots,
        graveyard: &mut Vec<Box<dyn DynOp>>,
        stats: &mut DriverStats,
    ) -> io::Result<()> {
        loop {
            // SAFETY: as in `push`: the runtime's own entries, with no pointers.
            if unsafe { self.ring.submission().push_multiple(entries) }.is_ok() {
                return Ok(());
            }
            if self.ring.submission().capacity() < entries.len() {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            stats.sq_full += 1;
            self.enter(Some(Duration::ZERO), stats)?;
            self.reap(ops, graveyard, stats);
        }
    }

    /// Asks the kernel to cancel `user_data`; its own completion is ignored.
    pub(crate) fn cancel(
        &mut self,
        user_data: u64,
        ops: &mut Slots,
        graveyard: &mut Vec<Box<dyn DynOp>>,
        stats: &mut DriverStats,
    ) {
        let entry = opcode::AsyncCancel::new(user_data)
            .build()
            .user_data(CANCEL);
        if let Err(e) = self.push(entry, ops, graveyard, stats) {
            crate::log::warning!("could not submit a cancel: {e}");
        }
    }

    pub(crate) fn cancel_doorbell(
        &mut self,
        ops: &mut Slots,
        graveyard: &mut Vec<Box<dyn DynOp>>,
        stats: &mut DriverStats,
    ) {
        self.closing = true;
        if self.doorbell_armed {
            self.cancel(DOORBELL, ops, graveyard, stats);
        }
    }

    /// Leaks the doorbell buffer (the kernel may still write into it) when the ring is abandoned.
    pub(crate) fn leak_doorbell(&mut self) {
        // Never armed again: a new read would land in the replacement buffer, which is freed
        // with the driver while the kernel may still complete the read (review-2 L2).
        self.closing = true;
        let buf = std::mem::replace(&mut self.doorbell_buf, Box::new(0));
        std::mem::forget(buf);
    }

    fn arm_doorbell(
        &mut self,
        ops: &mut Slots,
        graveyard: &mut Vec<Box<dyn DynOp>>,
        stats: &mut DriverStats,
    ) -> io::Result<()> {
        if self.doorbell_armed || self.closing {
            return Ok(());
        }
        let entry = if self.is_restricted() {
            // A restricted ring does not allow READ for the runtime's sake (it would let every
            // op class read any fd): it polls the eventfd, and `reap` reads it.
            opcode::PollAdd::new(types::Fd(self.doorbell_fd), libc::POLLIN as u32).build()
        } else {
            let ptr: *mut u64 = &mut *self.doorbell_buf;
            opcode::Read::new(types::Fd(self.doorbell_fd), ptr.cast(), 8).build()
        };
        let entry = entry.user_data(DOORBELL);
        self.push(entry, ops, graveyard, stats)?;
        self.doorbell_armed = true;
        Ok(())
    }

    /// Submits queued SQEs and processes completions; with a non-zero `timeout` (or `None`,
    /// forever), first waits for at least one completion.
    pub(crate) fn turn(
        &mut self,
        timeout: Option<Duration>,
        ops: &mut Slots,
        graveyard: &mut Vec<Box<dyn DynOp>>,
        stats: &mut DriverStats,
    ) -> io::Result<()> {
        self.close_dropped_slots(ops, graveyard, stats);
        if timeout != Some(Duration::ZERO) {
            // About to sleep: make sure a wake from another thread can end the wait.
            self.arm_doorbell(ops, graveyard, stats)?;
        }
        self.enter(timeout, stats)?;
        self.reap(ops, graveyard, stats);
        Ok(())
    }

    /// Makes room for `n` SQEs that must leave together (a linked chain): queues the closes of
    /// dropped slots first (they would otherwise land between the members), then submits what
    /// is queued if the rest does not fit. False if the ring is smaller than the chain.
    pub(crate) fn room_for(
        &mut self,
        n: usize,
        ops: &mut Slots,
        graveyard: &mut Vec<Box<dyn DynOp>>,
        stats: &mut DriverStats,
    ) -> bool {
        if self.ring.submission().capacity() < n {
            return false;
        }
        // Reaping to make room may queue more closes (an orphaned accept's slot): flush until
        // none is left and the chain fits, so nothing lands between its members.
        for _ in 0..8 {
            self.close_dropped_slots(ops, graveyard, stats);
            let free = {
                let sq = self.ring.submission();
                sq.capacity() - sq.len()
            };
            if free >= n && self.direct.nothing_closing() {
                return true;
            }
            if self.enter(Some(Duration::ZERO), stats).is_err() {
                return false;
            }
            self.reap(ops, graveyard, stats);
        }
        false
    }

    /// True if completions wait in the CQ, or deferred work waits to post them.
    pub(crate) fn has_completions(&mut self) -> bool {
        let sq = self.ring.submission();
        if sq.taskrun() || sq.cq_overflow() {
            return true;
        }
        drop(sq);
        !self.ring.completion().is_empty()
    }

    /// Submits what is queued without waiting or reaping.
    pub(crate) fn submit_now(&mut self, stats: &mut DriverStats) {
        let _ = self.enter(Some(Duration::ZERO), stats);
    }

    /// One `io_uring_enter` (skipped when there is nothing to submit, no deferred work and no
    /// wait). EINTR, ETIME, EBUSY and EAGAIN are not errors here: the caller reaps and loops.
    fn enter(&mut self, timeout: Option<Duration>, stats: &mut DriverStats) -> io::Result<()> {
        let mut sq = self.ring.submission();
        sq.sync();
        let pending = sq.len() as u32;
        // Deferred task work and overflowed completions are only processed by GETEVENTS.
        let overflow = sq.cq_overflow();
        let getevents = sq.taskrun() || overflow;
        drop(sq);
        stats.cq_overflows += overflow as u64;
        let res = match timeout {
            Some(Duration::ZERO) if pending == 0 && !getevents => return Ok(()),
            Some(Duration::ZERO) => self.enter.enter(pending, false, getevents, None),
            Some(t) => self.enter.enter(pending, true, true, Some(t)),
            None => self.enter.enter(pending, true, true, None),
        };
        stats.enters += 1;
        match res {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR | libc::ETIME | libc::EBUSY | libc::EAGAIN) => Ok(()),
                _ => Err(e),
            },
        }
    }

    /// Feeds every available CQE to the op lifecycle.
    fn reap(
        &mut self,
        ops: &mut Slots,
        graveyard: &mut Vec<Box<dyn DynOp>>,
        stats: &mut DriverStats,
    ) {
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            let user_data = cqe.user_data();
            match user_data {
                CANCEL => continue,
                SLOT_CLOSED => {
                    self.direct.closed();
                    continue;
                }
                // Another worker rang: the inbox is read on the next tick.
                MESSAGE => continue,
                sent if sent & MSG_SENT == MSG_SENT && sent < MESSAGE => {
                    let key = (sent & (MSG_KEYS - 1)) as usize;
                    if let Some(target) = self.messages.try_remove(key) {
                        if cqe.result() < 0 {
                            // The target ring refused it: ring its eventfd, and send no more.
                            tracing::debug!(target: "hoop", res = cqe.result(), "MSG_RING doorbell refused; using eventfds");
                            self.messages_on = false;
                            target.ring_eventfd();
                        }
                    }
                    continue;
                }
                DOORBELL => {
                    self.doorbell_armed = false;
                    if self.allowed.is_some() && cqe.result() > 0 {
                        // The poll said readable: the count is non-zero, so this read of the
                        // (blocking) eventfd returns at once; only this thread reads it.
                        let mut count = 0u64;
                        // SAFETY: reads 8 bytes into a live local.
                        unsafe { libc::read(self.doorbell_fd, (&mut count as *mut u64).cast(), 8) };
                    }
                    continue;
                }
                _ => {}
            }
            stats.completed += 1;
            let c = Completion {
                res: cqe.result(),
                flags: cqe.flags(),
            };
            if let Arrival::Orphan(Some(data)) = ops.complete(user_data, c, cqueue::more(c.flags)) {
                graveyard.push(data);
            }
        }
    }
}

/// True if `MSG_RING` doorbells reach a ring set up as `setup` (this worker's, and its peers',
/// which are built the same way). Upstream, a message into a `DEFER_TASKRUN` ring from another
/// thread runs as task work of the ring's owner only since 6.3 (before, it was posted from the
/// sender's context into a ring whose completions only its owner is meant to post); a release
/// number cannot tell a stable kernel that has the change from one that lacks it, so such rings
/// keep their eventfds before 6.3. (Debian's 6.1 took them in the guest with this check lifted.)
fn messages_reach(setup: &str) -> bool {
    !setup.contains("DEFER_TASKRUN") || !old_kernel::lacks(since::MSG_RING_REMOTE)
}

impl Drop for UringDriver {
    fn drop(&mut self) {
        // Doorbells whose message may never have left this ring: ring them the other way (a
        // spurious wake is harmless, a lost one is a hang).
        for target in self.messages.drain() {
            target.ring_eventfd();
        }
    }
}
