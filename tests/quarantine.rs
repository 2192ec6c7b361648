//! Proof that the kernel never writes into memory hoop has freed.
//!
//! AddressSanitizer and valgrind cannot see a write made by the kernel (io_uring completes
//! operations from kernel context). So this test binary replaces the global allocator with a
//! *quarantine*: every allocation gets pages of its own, and a freed allocation is not reused
//! but kept mapped `PROT_NONE` (the most recent 16k of them). A kernel write into it fails with
//! `EFAULT` instead of corrupting memory, and the runtime counts every completion that failed
//! with `EFAULT` (`hoop::diagnostics::efault_completions`); a user-space access crashes the test.
//! When the process exits, a non-zero count fails the run.
//!
//! That cannot see the kernel's access to *pinned* pages (registered buffers, buffer rings,
//! zero-copy sends): the kernel writes through its own page references, which no protection of
//! ours stops or reports. So allocations aligned to a page or more — the memory hoop registers
//! or hands to the kernel pinned — are quarantined differently: kept mapped, filled with a
//! sentinel byte, and checked later (when they leave the quarantine, on demand, and at exit). A
//! changed byte is a late write into freed memory, from the kernel or from user space.
//!
//! Under it run: the cancellation and shutdown suites (`shutdown.rs`, `ops.rs`,
//! `net_zero_copy.rs`, `compat.rs`, included below), the API fuzzer (`api_fuzz.rs`), and scenarios built to make a late write
//! likely: operations dropped just as their data arrives, runtimes dropped with operations in
//! flight, a forgotten future, a write cut short by a timeout. A negative control shows that the
//! quarantine does turn a late kernel write into `EFAULT`.

// The included suites each load tests/common as their own module.
#![allow(clippy::duplicate_mod)]

#[path = "common/mod.rs"]
mod common;
use std::alloc::{GlobalAlloc, Layout};
use std::collections::VecDeque;
use std::sync::{Mutex, Once};

#[path = "api_fuzz.rs"]
mod api_fuzz;
#[path = "compat.rs"]
mod compat;
#[path = "net_zero_copy.rs"]
mod net_zero_copy;
#[path = "ops.rs"]
mod ops;
#[path = "shutdown.rs"]
mod shutdown;

const PAGE: usize = 4096;
const QUARANTINE: usize = 16 * 1024;
/// Freed page-aligned allocations kept with their sentinel (they stay mapped, so fewer).
const SENTINELS: usize = 1024;
const SENTINEL: u8 = 0xA5;

/// A freed page-aligned region: `(mapping base, mapping len, user ptr, user len)`.
type Region = (usize, usize, usize, usize);

/// Freed page-aligned regions, oldest first.
static PINNABLE: Mutex<Option<VecDeque<Region>>> = Mutex::new(None);
/// Sentinel regions found changed when they left the quarantine.
static DAMAGED_EVICTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn sentinel_intact(ptr: usize, len: usize) -> bool {
    // SAFETY: a region of ours, still mapped read-write (sentinel regions are never protected).
    unsafe { std::slice::from_raw_parts(ptr as *const u8, len) }
        .iter()
        .all(|&b| b == SENTINEL)
}

/// Sentinel regions whose bytes changed after they were freed (late writes), so far.
fn damaged_sentinels() -> usize {
    let freed = PINNABLE.lock().unwrap_or_else(|e| e.into_inner());
    let now = freed.as_ref().map_or(0, |q| {
        q.iter()
            .filter(|&&(_, _, ptr, len)| !sentinel_intact(ptr, len))
            .count()
    });
    now + DAMAGED_EVICTED.load(std::sync::atomic::Ordering::Relaxed)
}

struct Quarantine;

/// Freed regions still mapped `PROT_NONE`, oldest first. Its storage (allocated once, with room
/// for all of them) comes from `alloc`, which never takes this lock.
static FREED: Mutex<Option<VecDeque<(usize, usize)>>> = Mutex::new(None);

/// Bytes to map for `layout`: its own pages, plus, for alignments beyond a page, room to align
/// and a header page that records where the mapping starts.
fn mapping_len(layout: Layout) -> usize {
    let extra = if layout.align() > PAGE {
        layout.align() + PAGE
    } else {
        0
    };
    (layout.size().max(1) + extra).div_ceil(PAGE) * PAGE
}

// SAFETY: every allocation is a fresh anonymous mapping (or an aligned part of one) of at least
// `layout.size()` bytes, never handed out twice; freed memory is never reused while quarantined.
unsafe impl GlobalAlloc for Quarantine {
    // SAFETY (caller contract, `GlobalAlloc::alloc`): `layout` has a non-zero size; the body
    // relies on nothing else (a zero size would still get a page, see `mapping_len`).
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        static EXIT_CHECK: Once = Once::new();
        EXIT_CHECK.call_once(|| {
            // SAFETY: registers a plain extern "C" function.
            unsafe { libc::atexit(check_at_exit) };
        });
        let len = mapping_len(layout);
        // SAFETY: an anonymous private mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        let base = p as usize;
        if layout.align() <= PAGE {
            return p.cast();
        }
        let aligned = (base + PAGE).next_multiple_of(layout.align());
        // SAFETY: `aligned - 8` lies in the mapping (at least a page after its start), 8-aligned.
        unsafe { *((aligned - 8) as *mut usize) = base };
        aligned as *mut u8
    }

    // SAFETY (caller contract, `GlobalAlloc::dealloc`): `ptr` came from `alloc` with this same
    // `layout`, so `mapping_len(layout)` and the header word before an over-aligned pointer
    // describe the mapping `alloc` made.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let len = mapping_len(layout);
        let base = if layout.align() <= PAGE {
            ptr as usize
        } else {
            // SAFETY: written by `alloc` just before the aligned pointer, still mapped.
            unsafe { *((ptr as usize - 8) as *const usize) }
        };
        if layout.align() >= PAGE {
            // Pinnable memory: kept mapped with a sentinel (see the module comment).
            // SAFETY: `ptr..ptr+size` is this allocation, which nothing of ours uses any more.
            unsafe { std::ptr::write_bytes(ptr, SENTINEL, layout.size()) };
            let oldest = {
                let mut freed = PINNABLE.lock().unwrap_or_else(|e| e.into_inner());
                let q = freed.get_or_insert_with(|| VecDeque::with_capacity(SENTINELS + 1));
                q.push_back((base, len, ptr as usize, layout.size()));
                if q.len() > SENTINELS {
                    q.pop_front()
                } else {
                    None
                }
            };
            if let Some((old, old_len, old_ptr, old_size)) = oldest {
                if !sentinel_intact(old_ptr, old_size) {
                    DAMAGED_EVICTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                // SAFETY: a quarantined mapping of ours that nothing refers to.
                unsafe { libc::munmap(old as *mut _, old_len) };
            }
            return;
        }
        // SAFETY: `base..base+len` is the mapping `alloc` made for this allocation; after this
        // call nothing of ours refers to it.
        unsafe {
            libc::madvise(base as *mut _, len, libc::MADV_DONTNEED);
            libc::mprotect(base as *mut _, len, libc::PROT_NONE);
        }
        let oldest = {
            let mut freed = FREED.lock().unwrap_or_else(|e| e.into_inner());
            let q = freed.get_or_insert_with(|| VecDeque::with_capacity(QUARANTINE + 1));
            q.push_back((base, len));
            if q.len() > QUARANTINE {
                q.pop_front()
            } else {
                None
            }
        };
        if let Some((old, old_len)) = oldest {
            // SAFETY: a quarantined mapping of ours that nothing refers to.
            unsafe { libc::munmap(old as *mut _, old_len) };
        }
    }
}

#[global_allocator]
static ALLOCATOR: Quarantine = Quarantine;

extern "C" fn check_at_exit() {
    let faults = hoop::diagnostics::efault_completions();
    let damaged = damaged_sentinels();
    if faults != 0 || damaged != 0 {
        eprintln!(
            "quarantine: {faults} completions hit freed memory (EFAULT), \
             {damaged} freed page-aligned regions were written to"
        );
        // SAFETY: terminates the process at once, with a failing status.
        unsafe { libc::_exit(101) };
    }
}

fn assert_no_late_write() {
    assert_eq!(hoop::diagnostics::efault_completions(), 0);
    assert_eq!(
        damaged_sentinels(),
        0,
        "freed page-aligned memory was written to"
    );
}

/// Negative control: with a buffer freed while the kernel's read is pending (what hoop must
/// never do), the quarantine turns the kernel's late write into `EFAULT`.
#[test]
fn a_buffer_freed_under_a_pending_read_gives_efault() {
    use io_uring::{opcode, types, IoUring};
    if common::io_uring_denied() {
        return; // the control needs a raw ring
    }
    let mut ring = IoUring::new(4).unwrap();
    let mut fds = [0; 2];
    // SAFETY: a local array for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let mut buf = vec![0u8; 64];
    let read = opcode::Read::new(types::Fd(fds[0]), buf.as_mut_ptr(), 64)
        .build()
        .user_data(7);
    // SAFETY: deliberately unsound use, confined to this test: the buffer is freed below while
    // the read is pending; the quarantine keeps its pages mapped PROT_NONE, so the kernel's
    // write fails instead of landing in reused memory.
    unsafe { ring.submission().push(&read).unwrap() };
    ring.submit().unwrap();
    drop(buf);
    // SAFETY: writes 5 bytes from a static string into the pipe.
    assert_eq!(
        unsafe { libc::write(fds[1], b"late!".as_ptr().cast(), 5) },
        5
    );
    ring.submit_and_wait(1).unwrap();
    let cqe = ring.completion().next().unwrap();
    assert_eq!(cqe.result(), -libc::EFAULT);
    // SAFETY: closing the pipe this test made.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
}

/// Reads dropped just as their data arrives, hundreds of times, on both drivers: each dropped
/// read's buffer must live until the kernel's completion (data or cancel).
#[hoop::test]
async fn reads_dropped_as_data_arrives() {
    use std::future::Future;
    use std::task::Context;
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let a = hoop::net::UnixStream::from_std(a).unwrap();
    let waker = futures_util::task::noop_waker();
    for i in 0..500u32 {
        let mut read = Box::pin(a.read(vec![0u8; 100 + i as usize % 4000]));
        let mut cx = Context::from_waker(&waker);
        // (On epoll, bytes a dropped read left behind may complete it at once.)
        let _ = read.as_mut().poll(&mut cx);
        // Hand the SQE to the kernel, then make the data arrive and drop the read at once.
        hoop::yield_now().await;
        std::io::Write::write_all(&mut &b, &i.to_le_bytes()).unwrap();
        drop(read);
        if i % 50 == 0 {
            // Drain what the dropped reads did not take, so the socket never fills.
            let _ = hoop::time::timeout(std::time::Duration::from_millis(1), async {
                loop {
                    let _ = a.read(vec![0u8; 65536]).await;
                }
            })
            .await;
        }
    }
    assert_no_late_write();
}

/// Path operations, stats and opens dropped mid-flight (they run in the kernel's workers).
#[hoop::test]
async fn path_ops_dropped_mid_flight() {
    let dir = std::env::temp_dir().join(format!(
        "hoop-quarantine-{}-{}",
        std::process::id(),
        hoop::runtime_info().unwrap().driver
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..200 {
        let path = dir.join(format!("f{i}"));
        std::fs::write(&path, b"x").unwrap();
        let stat = hoop::fs::metadata(path.clone());
        let open = hoop::fs::File::open(path.clone());
        let rename = hoop::fs::rename(path.clone(), dir.join(format!("g{i}")));
        futures_util::pin_mut!(stat, open, rename);
        let _ = futures_util::poll!(stat.as_mut());
        let _ = futures_util::poll!(open.as_mut());
        let _ = futures_util::poll!(rename.as_mut());
    }
    hoop::time::sleep(std::time::Duration::from_millis(20)).await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_no_late_write();
}

/// Runtimes dropped with reads, receives, accepts and timers in flight; the peers write after
/// the runtime is gone.
#[test]
fn runtimes_dropped_with_io_in_flight() {
    for driver in common::drivers() {
        for _ in 0..20 {
            let rt = hoop::Runtime::builder().driver(driver).build().unwrap();
            let (peers, udp_peer, addr) = rt.block_on(async {
                let mut peers = Vec::new();
                for _ in 0..16 {
                    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
                    let a = hoop::net::UnixStream::from_std(a).unwrap();
                    hoop::spawn(async move {
                        let _ = a.read(vec![0u8; 8192]).await;
                    })
                    .detach();
                    peers.push(b);
                }
                let udp = hoop::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                let udp_addr = udp.local_addr().unwrap();
                hoop::spawn(async move {
                    let _ = udp.recv_from(vec![0u8; 2048]).await;
                })
                .detach();
                let listener = hoop::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                hoop::spawn(async move {
                    let _ = listener.accept().await;
                })
                .detach();
                hoop::spawn(hoop::time::sleep(std::time::Duration::from_secs(60))).detach();
                hoop::yield_now().await;
                hoop::yield_now().await;
                let udp_peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                udp_peer.connect(udp_addr).unwrap();
                (peers, udp_peer, addr)
            });
            drop(rt);
            for mut p in &peers {
                let _ = std::io::Write::write_all(&mut p, b"after the runtime");
            }
            let _ = udp_peer.send(b"after the runtime");
            let _ = std::net::TcpStream::connect(addr);
        }
    }
    assert_no_late_write();
}

/// A future forgotten with its read in flight leaks its buffer, which the kernel may then
/// write: leaked memory is never freed, so this is sound (and nothing else breaks).
#[hoop::test]
async fn forgotten_read_leaks_but_never_corrupts() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let a = hoop::net::UnixStream::from_std(a).unwrap();
    let waker = futures_util::task::noop_waker();
    let mut read = Box::pin(a.read(vec![0u8; 64]));
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(std::future::Future::poll(read.as_mut(), &mut cx).is_pending());
    std::mem::forget(read);
    hoop::yield_now().await;
    std::io::Write::write_all(&mut &b, b"into the leaked buffer").unwrap();
    hoop::time::sleep(std::time::Duration::from_millis(5)).await;
    // The runtime goes on.
    let (r, w) = hoop::io::pipe().unwrap();
    w.write_all(b"ok".to_vec()).await.0.unwrap();
    let (n, buf) = r.read(Vec::with_capacity(2)).await;
    assert_eq!(&buf[..n.unwrap()], b"ok");
    assert_no_late_write();
}

/// A 16 MiB write to a peer that does not read, cut short by a timeout; the peer then drains.
#[hoop::test]
async fn write_cut_short_by_a_timeout() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let a = hoop::net::UnixStream::from_std(a).unwrap();
    let res = hoop::time::timeout(
        std::time::Duration::from_millis(20),
        a.write_all(vec![9u8; 16 << 20]),
    )
    .await;
    assert!(res.is_err());
    let drain = std::thread::spawn(move || {
        let mut sink = Vec::new();
        b.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        let _ = std::io::Read::read_to_end(&mut &b, &mut sink);
        sink.len()
    });
    hoop::time::sleep(std::time::Duration::from_millis(50)).await;
    drop(a);
    assert!(drain.join().unwrap() > 0);
    assert_no_late_write();
}

/// (This binary runs one test at a time: the control damages a sentinel on purpose, then
/// repairs it, and another test checking meanwhile would see it.)
///
/// Negative control for pinned memory: a registered buffer freed while the kernel's
/// `READ_FIXED` into it is pending (what hoop must never do) is written anyway — no `EFAULT`,
/// the kernel holds the pages — and the sentinel sees it.
#[test]
fn a_registered_buffer_freed_under_a_pending_read_fixed_is_seen() {
    use io_uring::{opcode, types, IoUring};
    if common::io_uring_denied() {
        return; // the control needs a raw ring
    }
    let before = damaged_sentinels();
    let mut ring = IoUring::new(4).unwrap();
    let layout = std::alloc::Layout::from_size_align(PAGE, PAGE).unwrap();
    // SAFETY: a non-zero-size layout.
    let buf = unsafe { std::alloc::alloc(layout) };
    let iov = libc::iovec {
        iov_base: buf.cast(),
        iov_len: PAGE,
    };
    // SAFETY: the buffer is registered and, deliberately, freed before the read lands (the
    // kernel keeps the pinned page; the quarantine keeps it mapped): confined to this test.
    unsafe { ring.submitter().register_buffers(&[iov]).unwrap() };
    let mut fds = [0; 2];
    // SAFETY: a local array for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let read = opcode::ReadFixed::new(types::Fd(fds[0]), buf, 64, 0)
        .offset(u64::MAX)
        .build()
        .user_data(9);
    // SAFETY: see above.
    unsafe { ring.submission().push(&read).unwrap() };
    ring.submit().unwrap();
    // SAFETY: `buf` came from `alloc` with `layout`.
    unsafe { std::alloc::dealloc(buf, layout) };
    // SAFETY: writes 5 bytes from a static string into the pipe.
    assert_eq!(
        unsafe { libc::write(fds[1], b"late!".as_ptr().cast(), 5) },
        5
    );
    ring.submit_and_wait(1).unwrap();
    let cqe = ring.completion().next().unwrap();
    assert_eq!(
        cqe.result(),
        5,
        "the kernel wrote into the freed, pinned page"
    );
    assert_eq!(
        damaged_sentinels(),
        before + 1,
        "the sentinel did not see the late write"
    );
    // Undo the damage so the rest of the binary checks its own.
    // SAFETY: the freed region is still mapped read-write by the quarantine.
    unsafe { std::ptr::write_bytes(buf, SENTINEL, PAGE) };
    ring.submitter().unregister_buffers().unwrap();
    // SAFETY: closing the pipe this test made.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    assert_eq!(damaged_sentinels(), before);
}

/// Registered buffers in `READ_FIXED` operations that are dropped mid-flight, pools dropped
/// with them, and runtimes dropped with such reads pending: hoop frees the buffers only after
/// the kernel is done (the sentinel stays intact), on both drivers.
#[test]
fn registered_buffers_outlive_every_read_fixed_into_them() {
    use hoop::fd::SharedFd;
    use hoop::op::{fixed::ReadFixed, Op};
    use std::future::Future;
    use std::task::Context;
    for driver in common::drivers() {
        for round in 0..20 {
            let rt = hoop::Builder::new()
                .workers(1)
                .driver(driver)
                .build()
                .unwrap();
            let (r, w) = std::os::unix::net::UnixStream::pair().unwrap();
            let fd = SharedFd::new(r.into());
            let pending = rt.block_on(async {
                let pool = hoop::buf::FixedBufPool::new(2, PAGE).unwrap();
                let waker = futures_util::task::noop_waker();
                let mut left = Vec::new();
                for i in 0..2 {
                    let buf = pool.try_get().unwrap();
                    let Some(index) = buf.fixed_index() else {
                        // Not registered (epoll, or no sparse table): plain reads, covered by
                        // the rest of this binary.
                        common::skip("registered buffers need io_uring with a sparse table");
                        return left;
                    };
                    let mut op = Box::pin(Op::new(ReadFixed::new(&fd, buf, index, u64::MAX)));
                    assert!(op
                        .as_mut()
                        .poll(&mut Context::from_waker(&waker))
                        .is_pending());
                    hoop::yield_now().await;
                    if i == 0 || round % 2 == 0 {
                        drop(op); // dropped mid-flight: the buffer lives in the driver's slot
                    } else {
                        left.push(op); // left in flight when the runtime goes
                    }
                }
                drop(pool);
                // Data for the dropped reads, racing their cancellation.
                std::io::Write::write_all(&mut &w, &[1u8; 100]).unwrap();
                hoop::time::sleep(std::time::Duration::from_millis(1)).await;
                left
            });
            drop(rt);
            drop(pending);
            drop((fd, w));
        }
        assert_no_late_write();
    }
}
