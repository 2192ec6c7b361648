//! Where the threads of a cross-core ping-pong run decides its cost: hoop's two workers against
//! two tokio `current_thread` runtimes on two threads, each with both ends left to the scheduler,
//! pinned to one CPU, and pinned to two CPUs; 200,000 round trips over two bounded channels per
//! run, interleaved rounds, medians. Run `perf stat -e context-switches` around one mode to see
//! that every runtime switches twice per round trip.
//!
//! Run: `cargo bench --bench cross_placement [-- ROUNDS]`.

use std::time::{Duration, Instant};

const ROUND_TRIPS: u32 = 200_000;

#[derive(Clone, Copy, PartialEq)]
enum Placement {
    Free,
    OneCpu,
    TwoCpus,
}

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET writes within it; sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn unpin() {
    // SAFETY: as in `pin`, with every CPU the set can name.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in 0..libc::CPU_SETSIZE as usize {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The CPUs the two ends run on, if pinned.
fn cpus(p: Placement) -> Option<(usize, usize)> {
    match p {
        Placement::Free => None,
        Placement::OneCpu => Some((0, 0)),
        Placement::TwoCpus => Some((0, 1)),
    }
}

fn tokio_pair(p: Placement) -> Duration {
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let (to_far, mut at_far) = tokio::sync::mpsc::channel::<u32>(1);
    let (to_near, mut at_near) = tokio::sync::mpsc::channel::<u32>(1);
    let far_cpu = cpus(p).map(|c| c.1);
    let far = std::thread::spawn(move || {
        if let Some(cpu) = far_cpu {
            pin(cpu);
        }
        rt().block_on(async move {
            while let Some(n) = at_far.recv().await {
                to_near.send(n).await.unwrap();
            }
        })
    });
    if let Some((near, _)) = cpus(p) {
        pin(near);
    }
    let took = rt().block_on(async move {
        let start = Instant::now();
        for i in 0..ROUND_TRIPS {
            to_far.send(i).await.unwrap();
            at_near.recv().await.unwrap();
        }
        start.elapsed()
    });
    far.join().unwrap();
    unpin();
    took
}

fn hoop_pair(p: Placement, driver: hoop::DriverChoice, msg_ring: bool) -> Duration {
    if p == Placement::OneCpu {
        pin(0);
    }
    let rt = hoop::Runtime::builder()
        .workers(2)
        .driver(driver)
        .msg_ring(msg_ring)
        // Worker i on the i-th CPU of the mask: two CPUs, or (pinned above) CPU 0 twice.
        .pin_cpus(p != Placement::Free)
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    let took = rt.block_on(async move {
        let (to_far, mut at_far) = hoop::sync::mpsc::channel::<u32>(1);
        let (to_near, mut at_near) = hoop::sync::mpsc::channel::<u32>(1);
        let far = handle.spawn_on(1, async move {
            while let Some(n) = at_far.recv().await {
                to_near.send(n).await.unwrap();
            }
        });
        let start = Instant::now();
        for i in 0..ROUND_TRIPS {
            to_far.send(i).await.unwrap();
            at_near.recv().await.unwrap();
        }
        let took = start.elapsed();
        drop(to_far);
        far.await.unwrap();
        took
    });
    drop(rt);
    unpin();
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    type Run = fn(Placement) -> Duration;
    let runs: [(&str, Run); 3] = [
        ("hoop io_uring MSG_RING", |p| {
            hoop_pair(p, hoop::DriverChoice::IoUring, true)
        }),
        ("hoop io_uring eventfd", |p| {
            hoop_pair(p, hoop::DriverChoice::IoUring, false)
        }),
        ("tokio 2 x current_thread", tokio_pair),
    ];
    let placements = [
        ("scheduler's choice", Placement::Free),
        ("both on CPU 0", Placement::OneCpu),
        ("CPU 0 and CPU 1", Placement::TwoCpus),
    ];
    let mut times = vec![vec![Vec::new(); placements.len()]; runs.len()];
    for _ in 0..rounds {
        for (pi, (_, p)) in placements.iter().enumerate() {
            for (ri, (_, run)) in runs.iter().enumerate() {
                times[ri][pi].push(run(*p) / ROUND_TRIPS);
            }
        }
    }
    print!("| runtime, per round trip |");
    for (name, _) in &placements {
        print!(" {name} |");
    }
    println!();
    println!("|---|{}", "---|".repeat(placements.len()));
    for (ri, (name, _)) in runs.iter().enumerate() {
        print!("| {name} |");
        for samples in &times[ri] {
            print!(" {:.2?} |", median(samples.clone()));
        }
        println!();
    }
}
