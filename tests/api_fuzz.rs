//! A seeded fuzzer of the public operation API, on both drivers: random operations (`hoop::op`
//! constructors and the net/fs types' methods) with random `MSG_*` flags, buffer kinds (`Vec`
//! of random capacity, `Slice`, `Box<[u8]>`, `AlignedBuf`, `FixedBuf` through `READ_FIXED`,
//! a `RingBufMut` taken from a user-space buffer ring (epoll; a registered ring lends none),
//! `RingBuf` chunks of a provided-buffer stream), sizes and
//! cancellation points (dropped after a few polls, its task aborted, its runtime dropped with
//! it in flight). Every result is checked against its buffer (a buffer never claims more bytes
//! than it holds; a count never exceeds the buffer), nothing may panic, and the process's fd
//! count must come back to where it was.
//!
//! `HOOP_FUZZ_CASES` sets the number of cases per driver (default 5000) and `HOOP_FUZZ_SEED`
//! the first seed (default: fixed, so CI is reproducible); a failure names its seed. It also
//! runs under `.ci/asan` (user-space memory errors) and inside the quarantine binary (late
//! kernel writes).

#[path = "common/mod.rs"]
mod common;

use common::Rng;

/// `Rng::below` for `u64` bounds.
fn below(rng: &mut Rng, n: u64) -> u64 {
    rng.below(n as usize) as u64
}
use hoop::buf::{AlignedBuf, BufRing, FixedBufPool};
use hoop::fd::SharedFd;
use hoop::op::send_recv::{Recv, Send};
use hoop::op::Op;
use hoop::{IoBuf, IoBufMut};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// A read future kept past its runtime.
type Outliving = Pin<Box<dyn Future<Output = (std::io::Result<usize>, AnyBuf)>>>;
use std::time::Duration;

/// Every buffer kind reads take, behind one type.
enum AnyBuf {
    Vec(Vec<u8>),
    Slice(hoop::buf::Slice<Vec<u8>>),
    Boxed(Box<[u8]>),
    Aligned(AlignedBuf),
    Fixed(hoop::buf::FixedBuf),
    Ring(hoop::buf::RingBufMut),
}

// SAFETY: every variant is an `IoBuf` with a stable heap allocation; this forwards to it.
unsafe impl IoBuf for AnyBuf {
    fn stable_ptr(&self) -> *const u8 {
        match self {
            AnyBuf::Vec(b) => b.stable_ptr(),
            AnyBuf::Slice(b) => b.stable_ptr(),
            AnyBuf::Boxed(b) => b.stable_ptr(),
            AnyBuf::Aligned(b) => b.stable_ptr(),
            AnyBuf::Fixed(b) => b.stable_ptr(),
            AnyBuf::Ring(b) => b.stable_ptr(),
        }
    }
    fn bytes_init(&self) -> usize {
        match self {
            AnyBuf::Vec(b) => b.bytes_init(),
            AnyBuf::Slice(b) => b.bytes_init(),
            AnyBuf::Boxed(b) => b.bytes_init(),
            AnyBuf::Aligned(b) => b.bytes_init(),
            AnyBuf::Fixed(b) => b.bytes_init(),
            AnyBuf::Ring(b) => b.bytes_init(),
        }
    }
    fn bytes_total(&self) -> usize {
        match self {
            AnyBuf::Vec(b) => b.bytes_total(),
            AnyBuf::Slice(b) => b.bytes_total(),
            AnyBuf::Boxed(b) => b.bytes_total(),
            AnyBuf::Aligned(b) => b.bytes_total(),
            AnyBuf::Fixed(b) => b.bytes_total(),
            AnyBuf::Ring(b) => b.bytes_total(),
        }
    }
}

// SAFETY: forwards to the variant, which upholds the contract.
unsafe impl IoBufMut for AnyBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        match self {
            AnyBuf::Vec(b) => b.stable_mut_ptr(),
            AnyBuf::Slice(b) => b.stable_mut_ptr(),
            AnyBuf::Boxed(b) => b.stable_mut_ptr(),
            AnyBuf::Aligned(b) => b.stable_mut_ptr(),
            AnyBuf::Fixed(b) => b.stable_mut_ptr(),
            AnyBuf::Ring(b) => b.stable_mut_ptr(),
        }
    }
    // SAFETY: the caller's guarantee is forwarded unchanged.
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: forwarded contract.
        unsafe {
            match self {
                AnyBuf::Vec(b) => b.set_init(pos),
                AnyBuf::Slice(b) => b.set_init(pos),
                AnyBuf::Boxed(b) => b.set_init(pos),
                AnyBuf::Aligned(b) => b.set_init(pos),
                AnyBuf::Fixed(b) => b.set_init(pos),
                AnyBuf::Ring(b) => b.set_init(pos),
            }
        }
    }
}

impl AnyBuf {
    fn random(rng: &mut Rng, pool: &FixedBufPool, ring: &BufRing) -> AnyBuf {
        let cap = [0, 1, 7, 16, 512, 4096, 65_537][below(rng, 7) as usize];
        match below(rng, 6) {
            5 => match ring.try_take() {
                Some(b) => AnyBuf::Ring(b),
                None => AnyBuf::Vec(Vec::with_capacity(cap)),
            },
            0 => AnyBuf::Vec(Vec::with_capacity(cap)),
            1 => {
                let begin = below(rng, cap as u64 + 1) as usize;
                let end = begin + below(rng, (cap - begin) as u64 + 1) as usize;
                // An initialised prefix, so slices past it test the gap rule too.
                let mut v = Vec::with_capacity(cap);
                v.resize(below(rng, cap as u64 + 1) as usize, 0xAA);
                AnyBuf::Slice(v.slice(begin..end))
            }
            2 => AnyBuf::Boxed(vec![0u8; cap].into_boxed_slice()),
            3 => AnyBuf::Aligned(AlignedBuf::new(cap.max(1), 512).unwrap()),
            _ => match pool.try_get() {
                Some(b) => AnyBuf::Fixed(b),
                None => AnyBuf::Vec(Vec::with_capacity(cap)),
            },
        }
    }

    /// The buffer contract, checked after every operation.
    fn check(&self, n: Option<usize>, seed: u64) {
        assert!(
            self.bytes_init() <= self.bytes_total(),
            "seed {seed}: buffer claims {} initialised of {}",
            self.bytes_init(),
            self.bytes_total()
        );
        match self {
            AnyBuf::Vec(v) => assert!(v.len() <= v.capacity(), "seed {seed}: Vec overrun"),
            AnyBuf::Slice(s) => {
                let inner = s.get_ref();
                assert!(
                    inner.len() <= inner.capacity(),
                    "seed {seed}: Slice overran its Vec"
                );
            }
            _ => {}
        }
        if let Some(n) = n {
            assert!(
                n <= self.bytes_total(),
                "seed {seed}: {n} bytes into {}",
                self.bytes_total()
            );
        }
    }
}

/// Polls `fut` at most `polls` times (with a no-op waker between yields), then drops it: a
/// cancellation at a random point of its life. Returns its output if it finished.
async fn poll_then_drop<F: Future>(fut: F, polls: u32) -> Option<F::Output> {
    let mut fut = Box::pin(fut);
    for _ in 0..polls {
        let out = std::future::poll_fn(|cx: &mut Context<'_>| {
            Poll::Ready(match fut.as_mut().poll(cx) {
                Poll::Ready(v) => Some(v),
                Poll::Pending => None,
            })
        })
        .await;
        if out.is_some() {
            return out;
        }
        hoop::yield_now().await;
    }
    None
}

/// `MSG_*` flags, valid and not, for the random choice.
const FLAGS: &[i32] = &[
    0,
    libc::MSG_PEEK,
    libc::MSG_WAITALL,
    libc::MSG_DONTWAIT,
    libc::MSG_TRUNC,
    libc::MSG_ERRQUEUE,
    libc::MSG_OOB,
    libc::MSG_TRUNC | libc::MSG_PEEK,
    libc::MSG_ZEROCOPY,
    libc::MSG_MORE,
    0x4000_0000,
];

/// Peers the operations read from and write to, made once per runtime.
struct Peers {
    udp: SharedFd,
    udp_peer: std::net::UdpSocket,
    udp_addr: std::net::SocketAddr,
    tcp: Rc<hoop::net::TcpStream>,
    /// Closed at the end of a batch: zero-copy sends it never read complete only then.
    tcp_peer: std::cell::RefCell<Option<std::net::TcpStream>>,
    file: Rc<hoop::fs::File>,
    pool: FixedBufPool,
    ring: BufRing,
    /// Incremental and with bundles, where the kernel has them.
    big_ring: BufRing,
}

async fn peers(dir: &std::path::Path) -> Peers {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let udp_addr = udp.local_addr().unwrap();
    let udp_peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp_peer.set_nonblocking(true).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = hoop::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (tcp_peer, _) = listener.accept().unwrap();
    tcp_peer.set_nonblocking(true).unwrap();
    let path = dir.join("data");
    std::fs::write(&path, (0..200_000u32).map(|i| i as u8).collect::<Vec<_>>()).unwrap();
    let file = hoop::fs::File::open(&path).await.unwrap();
    Peers {
        udp: SharedFd::new(udp.into()),
        udp_peer,
        udp_addr,
        tcp: Rc::new(tcp),
        tcp_peer: std::cell::RefCell::new(Some(tcp_peer)),
        file: Rc::new(file),
        pool: FixedBufPool::new(4, 8192).unwrap(),
        ring: BufRing::new(8, 1024).unwrap(),
        big_ring: BufRing::builder(4, 3000)
            .incremental(true)
            .bundles(true)
            .build()
            .unwrap(),
    }
}

/// One random operation with a random cancellation point.
async fn one_case(p: &Peers, rng: &mut Rng, seed: u64) {
    use std::io::{Read, Write};
    let polls = [1, 2, 3, 1000][below(rng, 4) as usize];
    let buf = AnyBuf::random(rng, &p.pool, &p.ring);
    match below(rng, 8) {
        0 => {
            // A datagram of random size, maybe larger than the buffer.
            let size = [0, 1, 16, 2000, 9000][below(rng, 5) as usize];
            let _ = p.udp_peer.send_to(&vec![9u8; size], p.udp_addr);
            let flags = FLAGS[below(rng, FLAGS.len() as u64) as usize];
            let op = Op::new(Recv::new(&p.udp, buf, flags));
            if let Some((res, buf)) = poll_then_drop(op, polls).await {
                buf.check(res.ok(), seed);
            }
        }
        1 => {
            let flags = FLAGS[below(rng, FLAGS.len() as u64) as usize];
            let mut buf = buf;
            if let AnyBuf::Vec(v) = &mut buf {
                v.resize(v.capacity(), 3);
            }
            let op = Op::new(Send::new(&p.udp, buf, flags | libc::MSG_DONTWAIT));
            let target = p.udp_peer.local_addr().unwrap();
            // Unconnected: most sends fail (EDESTADDRREQ); connect now and then.
            if below(rng, 2) == 0 {
                let addr = socket2::SockAddr::from(target);
                // SAFETY: connect with a valid sockaddr built by socket2, alive for the call.
                unsafe { libc::connect(p.udp.raw(), addr.as_ptr().cast(), addr.len()) };
            }
            if let Some((Ok(n), buf)) = poll_then_drop(op, polls).await {
                assert!(n <= buf.bytes_init(), "seed {seed}: sent more than it had");
            }
        }
        2 => {
            let size = below(rng, 3000) as usize;
            if let Some(peer) = p.tcp_peer.borrow().as_ref() {
                let _ = (&*peer).write(&vec![5u8; size]);
            }
            let tcp = p.tcp.clone();
            let op = async move { tcp.read(buf).await };
            if let Some((res, buf)) = poll_then_drop(op, polls).await {
                buf.check(res.ok(), seed);
            }
        }
        3 => {
            let pos = [0, 1, 4095, 199_999, 200_000, 1 << 40, u64::MAX][below(rng, 7) as usize];
            let file = p.file.clone();
            if let AnyBuf::Fixed(fixed) = buf {
                // Registered buffers through READ_FIXED (where the pool is registered).
                let op = async move { file.read_fixed_at(fixed, pos).await };
                if let Some((res, buf)) = poll_then_drop(op, polls).await {
                    AnyBuf::Fixed(buf).check(res.ok(), seed);
                }
                return;
            }
            let op = async move { file.read_at(buf, pos).await };
            if let Some((res, buf)) = poll_then_drop(op, polls).await {
                buf.check(res.ok(), seed);
            }
        }
        4 => {
            let bufs: Vec<AnyBuf> = (0..below(rng, 4))
                .map(|_| AnyBuf::random(rng, &p.pool, &p.ring))
                .collect();
            let pos = below(rng, 210_000);
            let file = p.file.clone();
            let op = async move { file.readv_at(bufs, pos).await };
            if let Some((res, bufs)) = poll_then_drop(op, polls).await {
                let total: usize = bufs.iter().map(|b| b.bytes_total()).sum();
                if let Ok(n) = res {
                    assert!(n <= total, "seed {seed}: readv {n} into {total}");
                }
                for b in &bufs {
                    b.check(None, seed);
                }
            }
        }
        6 => {
            // Zero-copy and plain sends towards a peer that reads only now and then: they fill
            // its socket and wait (on a kernel without SEND_ZC, on the ring's readiness poll),
            // and are dropped at random points; the buffer must outlive the notification.
            let size = [1, 4096, 65_536, 262_144][below(rng, 4) as usize];
            let tcp = p.tcp.clone();
            let zero_copy = below(rng, 2) == 0;
            let op = async move {
                if zero_copy {
                    tcp.send_zc(vec![8u8; size]).await.0
                } else {
                    tcp.write(vec![8u8; size]).await.0
                }
            };
            if let Some(Ok(n)) = poll_then_drop(op, polls).await {
                assert!(n <= size, "seed {seed}: sent {n} of {size}");
            }
        }
        7 => {
            // The peer reads what is there.
            let mut sink = vec![0u8; 1 << 20];
            if let Some(peer) = p.tcp_peer.borrow().as_ref() {
                while let Ok(n) = (&*peer).read(&mut sink) {
                    if n == 0 {
                        break;
                    }
                }
            }
        }
        _ => {
            // Provided-buffer receives: a stream dropped after a random number of chunks.
            let size = below(rng, 5000) as usize;
            if let Some(peer) = p.tcp_peer.borrow().as_ref() {
                let _ = (&*peer).write(&vec![6u8; size]);
            }
            let chunks = below(rng, 4);
            let tcp = p.tcp.clone();
            let ring = [&p.ring, &p.big_ring][below(rng, 2) as usize].clone();
            let most = ring.buffer_size();
            let op = async move {
                use futures_util::StreamExt;
                let mut stream = tcp.recv_stream(&ring);
                for _ in 0..chunks {
                    match stream.next().await {
                        Some(Ok(chunk)) => assert!(chunk.offset() + chunk.len() <= most),
                        _ => break,
                    }
                }
            };
            let _ = poll_then_drop(op, polls).await;
        }
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn random_operations_keep_every_buffer_and_fd_contract() {
    let cases: u64 = std::env::var("HOOP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let first: u64 = std::env::var("HOOP_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let dir = std::env::temp_dir().join(format!("hoop-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let baseline = open_fds();
    for driver in common::drivers() {
        let mut seed = first;
        // Runtimes of 100 cases each; every third one is dropped with operations in flight.
        while seed < first + cases {
            let rt = hoop::Builder::new()
                .workers(1)
                .driver(driver)
                .build()
                .unwrap();
            let batch_end = (seed + 100).min(first + cases);
            let drop_in_flight = (seed / 100) % 3 == 2;
            let leftover = rt.block_on(async {
                let p = Rc::new(peers(&dir).await);
                let mut tasks = Vec::new();
                while seed < batch_end {
                    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
                    let s = seed;
                    seed += 1;
                    if below(&mut rng, 4) == 0 {
                        // As a task, aborted at a random point, or left running.
                        let pp = p.clone();
                        let abort = below(&mut rng, 2) == 0;
                        let h = hoop::spawn(async move { one_case(&pp, &mut rng, s).await });
                        if abort {
                            hoop::yield_now().await;
                            h.abort();
                        }
                        tasks.push(h);
                    } else {
                        one_case(&p, &mut rng, s).await;
                    }
                }
                // Reads left pending when the runtime goes, polled again after it (below).
                let mut outliving = Vec::new();
                if drop_in_flight {
                    let waker = futures_util::task::noop_waker();
                    for _ in 0..4 {
                        let mut rng = Rng(seed.wrapping_mul(31) | 1);
                        let tcp = p.tcp.clone();
                        let buf = AnyBuf::random(&mut rng, &p.pool, &p.ring);
                        let mut read: Outliving = Box::pin(async move { tcp.read(buf).await });
                        match read.as_mut().poll(&mut Context::from_waker(&waker)) {
                            Poll::Ready((res, buf)) => buf.check(res.ok(), seed),
                            Poll::Pending => outliving.push(read),
                        }
                    }
                }
                if !drop_in_flight {
                    for t in tasks.drain(..) {
                        // Finished, aborted or still waiting: never panicked.
                        if let Ok(Err(e)) = hoop::time::timeout(Duration::from_secs(5), t).await {
                            assert!(!e.is_panic(), "a case run as a task panicked: {e}");
                        }
                    }
                }
                // Closed before the runtime goes: sends into it end (and zero-copy ones get their
                // notification), as they would when a client disconnects.
                drop(p.tcp_peer.borrow_mut().take());
                (p, tasks, outliving)
            });
            drop(rt);
            let (p, tasks, outliving) = leftover;
            // Polled after their runtime shut down (in another runtime):
            // each resolves — its completion, or "shut down" — and its buffer holds up.
            let other = hoop::Builder::new()
                .workers(1)
                .driver(driver)
                .build()
                .unwrap();
            other.block_on(async {
                for read in outliving {
                    let (res, buf) = hoop::time::timeout(Duration::from_secs(5), read)
                        .await
                        .expect("a read outliving its runtime never resolved");
                    buf.check(res.ok(), first);
                }
            });
            drop(other);
            drop((p, tasks));
            seed = batch_end;
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    // The runtimes and every fd they made are gone.
    let after = open_fds();
    assert_eq!(after, baseline, "fds before and after");
}
