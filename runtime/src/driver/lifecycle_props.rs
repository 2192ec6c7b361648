//! Property test of the operation lifecycle ([`Slots`]) against a simulated kernel: random
//! submissions (ring and blocking-pool, single and multishot), completions (results, errors,
//! `F_MORE` chains), futures polled or dropped at any point, cancels, stale and forged user data,
//! and a final shutdown that completes everything. Invariants checked at every step:
//!
//! - an operation's data is freed only after its final completion (the kernel is done with it);
//! - it is freed exactly once, and by the end every operation's data has been freed;
//! - every resource a completion created (an fd, a buffer id) is released exactly once: taken
//!   by the future that polls it, or handed to `orphaned` when the future is gone;
//! - a completion for a finished operation, or with a forged generation, changes nothing.
//!
//! `HOOP_PROP_SEED=n` replays one seed; `HOOP_PROP_CASES=n` runs more cases.

use super::lifecycle::{Arrival, Completion, Life, Slots};
use super::opcode::DynOp;
use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::rc::Rc;

/// xorshift64*: enough randomness for case generation, reproducible from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Default)]
struct World {
    /// Per operation id: has the kernel delivered the final completion?
    kernel_done: HashMap<u32, bool>,
    /// Per operation id: times its data was freed.
    freed: HashMap<u32, u32>,
    /// Per resource: times it was released.
    released: HashMap<i32, u32>,
    /// Resources created by completions.
    created: Vec<i32>,
    /// Freed before the kernel was done: (op id).
    violations: Vec<String>,
}

type Shared = Rc<RefCell<World>>;

/// The data of one operation, as the driver sees it.
struct FakeOp {
    id: u32,
    world: Shared,
}

impl DynOp for FakeOp {
    fn perform(&mut self) -> io::Result<u32> {
        Ok(0)
    }
    fn orphaned(&mut self, res: i32, _flags: u32) {
        if res > 0 {
            *self.world.borrow_mut().released.entry(res).or_default() += 1;
        }
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

impl Drop for FakeOp {
    fn drop(&mut self) {
        let mut w = self.world.borrow_mut();
        if !w.kernel_done.get(&self.id).copied().unwrap_or(true) {
            let msg = format!("op {} freed before its final completion", self.id);
            w.violations.push(msg);
        }
        *w.freed.entry(self.id).or_default() += 1;
    }
}

/// An operation as the future and the simulated kernel see it.
struct Sim {
    id: u32,
    user_data: u64,
    in_ring: bool,
    /// Completions the kernel will still send (the last one final).
    remaining: u32,
    /// The future exists (not dropped) and holds the data (ring ops) if `Some`.
    future: Option<Option<Box<dyn DynOp>>>,
    /// Blocking-pool ops: the data travels with the job until it completes.
    pool_data: Option<Box<dyn DynOp>>,
    cancelled: bool,
}

fn run_case(seed: u64) {
    let mut rng = Rng(seed | 1);
    let world: Shared = Rc::new(RefCell::new(World::default()));
    let mut ops = Slots::default();
    let mut sims: Vec<Sim> = Vec::new();
    let mut next_id = 0u32;
    let mut next_res = 1i32;
    let mut finished_uds: Vec<u64> = Vec::new();

    let mut kernel_complete = |ops: &mut Slots, sim: &mut Sim, world: &Shared, rng: &mut Rng| {
        debug_assert!(sim.remaining > 0);
        sim.remaining -= 1;
        let last = sim.remaining == 0;
        // Results: a fresh resource, or an error (ECANCELED more likely once cancelled).
        let res = if sim.cancelled && last && rng.below(2) == 0 {
            -libc::ECANCELED
        } else if rng.below(5) == 0 {
            -libc::EIO
        } else {
            next_res += 1;
            world.borrow_mut().created.push(next_res);
            next_res
        };
        let c = Completion { res, flags: 0 };
        if last {
            world.borrow_mut().kernel_done.insert(sim.id, true);
        }
        let arrival = if sim.in_ring {
            ops.complete(sim.user_data, c, !last)
        } else {
            let data = sim.pool_data.take().expect("pool op carries its data");
            ops.complete_blocking(sim.user_data, c, data)
        };
        if let Arrival::Orphan(data) = arrival {
            drop(data);
        }
    };

    for _step in 0..400 {
        match rng.below(10) {
            // Submit.
            0..=2 => {
                next_id += 1;
                let id = next_id;
                let in_ring = rng.below(4) != 0;
                let user_data = ops.insert(None, in_ring);
                world.borrow_mut().kernel_done.insert(id, false);
                let data: Box<dyn DynOp> = Box::new(FakeOp {
                    id,
                    world: world.clone(),
                });
                let remaining = if in_ring { 1 + rng.below(3) as u32 } else { 1 };
                let (future_data, pool_data) = if in_ring {
                    (Some(data), None)
                } else {
                    (None, Some(data))
                };
                sims.push(Sim {
                    id,
                    user_data,
                    in_ring,
                    remaining,
                    future: Some(future_data),
                    pool_data,
                    cancelled: false,
                });
            }
            // The kernel completes something.
            3..=5 => {
                let live: Vec<usize> = (0..sims.len()).filter(|&i| sims[i].remaining > 0).collect();
                if let Some(&i) = live.get(rng.below(live.len().max(1))) {
                    kernel_complete(&mut ops, &mut sims[i], &world, &mut rng);
                }
            }
            // A future polls: takes what arrived.
            6 | 7 => {
                let alive: Vec<usize> = (0..sims.len())
                    .filter(|&i| sims[i].future.is_some())
                    .collect();
                let Some(&i) = alive.get(rng.below(alive.len().max(1))) else {
                    continue;
                };
                let sim = &mut sims[i];
                let Some(slot) = ops.get_mut(sim.user_data) else {
                    continue;
                };
                for c in slot.more.drain(..) {
                    if c.res > 0 {
                        *world.borrow_mut().released.entry(c.res).or_default() += 1;
                    }
                }
                if let Life::Completed(c) = slot.life {
                    let slot = ops.remove(sim.user_data).expect("present");
                    if c.res > 0 {
                        *world.borrow_mut().released.entry(c.res).or_default() += 1;
                    }
                    // The future completes: its data (or the data the pool brought back) goes.
                    let data = sim.future.take().flatten().or(slot.returned);
                    drop(data);
                    finished_uds.push(sim.user_data);
                }
            }
            // A future is dropped.
            8 => {
                let alive: Vec<usize> = (0..sims.len())
                    .filter(|&i| sims[i].future.is_some())
                    .collect();
                let Some(&i) = alive.get(rng.below(alive.len().max(1))) else {
                    continue;
                };
                let sim = &mut sims[i];
                let data = sim.future.take().flatten();
                let (free_now, in_flight) = ops.ignore(sim.user_data, data);
                drop(free_now);
                if in_flight && sim.in_ring {
                    sim.cancelled = true;
                }
            }
            // Stale or forged completions.
            _ => {
                let c = Completion {
                    res: 99_999,
                    flags: 0,
                };
                if let Some(&ud) = finished_uds.get(rng.below(finished_uds.len().max(1))) {
                    assert!(matches!(ops.complete(ud, c, false), Arrival::Stale));
                }
                if let Some(sim) = sims.get(rng.below(sims.len().max(1))) {
                    let forged = sim.user_data ^ (1 << 40);
                    assert!(matches!(ops.complete(forged, c, false), Arrival::Stale));
                }
            }
        }
        let w = world.borrow();
        assert!(w.violations.is_empty(), "seed {seed}: {:?}", w.violations);
    }

    // Shutdown: futures are dropped, the kernel completes everything.
    for sim in sims.iter_mut() {
        if sim.future.is_some() {
            let data = sim.future.take().flatten();
            let (free_now, _) = ops.ignore(sim.user_data, data);
            drop(free_now);
        }
    }
    for sim in sims.iter_mut() {
        while sim.remaining > 0 {
            kernel_complete(&mut ops, sim, &world, &mut rng);
        }
    }
    assert_eq!(ops.len(), 0, "seed {seed}: slots left after shutdown");
    let w = world.borrow();
    assert!(w.violations.is_empty(), "seed {seed}: {:?}", w.violations);
    for id in 1..=next_id {
        assert_eq!(
            w.freed.get(&id),
            Some(&1),
            "seed {seed}: op {id} freed {:?} times",
            w.freed.get(&id)
        );
    }
    for r in &w.created {
        assert_eq!(
            w.released.get(r),
            Some(&1),
            "seed {seed}: resource {r} released {:?} times",
            w.released.get(r)
        );
    }
}

#[test]
fn lifecycle_against_a_simulated_kernel() {
    if let Some(seed) = std::env::var("HOOP_PROP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return run_case(seed);
    }
    let cases: u64 = std::env::var("HOOP_PROP_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    for seed in 0..cases {
        run_case(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xdead_beef);
    }
}
