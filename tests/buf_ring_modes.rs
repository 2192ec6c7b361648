//! Provided-buffer rings in every mode (plain, incremental consumption, bundles, both), on both
//! drivers: a differential test that every byte sent on many connections sharing one ring
//! arrives once and in order, under random buffer sizes, ring sizes, write sizes and holding
//! patterns, and that no byte a reader still holds is overwritten by a later receive.
//!
//! Where the kernel (or the driver) lacks a mode, the ring falls back to the single-buffer path,
//! and the same checks hold.

#[path = "common/mod.rs"]
mod common;

use common::Rng;
use futures_util::StreamExt;
use hoop::buf::{BufRing, RingBuf};
use hoop::net::{TcpListener, TcpStream};
use std::collections::VecDeque;
use std::time::Duration;

/// Byte `i` of connection `conn`'s stream.
fn byte(conn: usize, i: usize) -> u8 {
    ((i as u64).wrapping_mul(0x9e37_79b9) >> 7) as u8
        ^ (i >> 13) as u8
        ^ (conn as u8).wrapping_mul(41)
}

async fn connected_pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = futures_util::join!(TcpStream::connect(addr), listener.accept());
    (client.unwrap(), accepted.unwrap().0)
}

#[derive(Clone, Copy, Debug)]
struct Mode {
    incremental: bool,
    bundles: bool,
}

const MODES: [Mode; 4] = [
    Mode {
        incremental: false,
        bundles: false,
    },
    Mode {
        incremental: true,
        bundles: false,
    },
    Mode {
        incremental: false,
        bundles: true,
    },
    Mode {
        incremental: true,
        bundles: true,
    },
];

fn on_uring() -> bool {
    hoop::runtime_info().unwrap().driver == hoop::DriverKind::IoUring
}

/// What the ring must have become: each feature where the driver and kernel have it.
fn check_mode(ring: &BufRing, mode: Mode) {
    let registered = on_uring() && common::kernel_at_least((5, 19));
    assert_eq!(ring.is_registered(), registered, "{ring:?}");
    assert_eq!(
        ring.is_incremental(),
        registered && mode.incremental && common::kernel_at_least((6, 12)),
        "{mode:?} {ring:?}"
    );
    // Bundles from 6.16 (earlier ones could leave gaps), never on an incremental ring.
    assert_eq!(
        ring.uses_bundles(),
        registered && mode.bundles && !ring.is_incremental() && common::kernel_at_least((6, 16)),
        "{mode:?} {ring:?}"
    );
}

/// A chunk held by a reader, with the bytes it had when received: compared again when it is
/// released, so a receive that wrote into a held piece is caught.
struct Held {
    chunk: RingBuf,
    copy: Vec<u8>,
}

impl Held {
    fn release(self) {
        assert!(
            self.chunk[..] == self.copy[..],
            "a held chunk (buffer {}, offset {}) was overwritten",
            self.chunk.bid(),
            self.chunk.offset()
        );
    }
}

#[derive(Default)]
struct Outcome {
    chunks: u64,
    completions: u64,
    later_pieces: u64,
    exhausted: u64,
}

/// One round: `conns` connections share one ring; each peer writes `total` bytes in random
/// pieces; each reader checks its bytes and holds up to `max_hold` chunks.
async fn round(seed: u64, mode: Mode) -> Outcome {
    let mut rng = Rng(seed | 1);
    let entries = [1u16, 2, 2, 4, 8, 16, 64][rng.below(7)];
    let buf_size = [1, 7, 64, 100, 1000, 4096, 16_384, 65_536][rng.below(8)];
    let conns = 1 + rng.below(6);
    // A small ring makes a chunk, or an exhaustion, per few bytes: fewer bytes for it.
    let total = (20_000 + rng.below(200_000)).min(2_000 + entries as usize * buf_size * 50);
    let ring = BufRing::builder(entries, buf_size)
        .incremental(mode.incremental)
        .bundles(mode.bundles)
        .build()
        .unwrap();
    check_mode(&ring, mode);
    let what = format!(
        "seed {seed:#x} {mode:?}: {conns} connections × {total} bytes, ring {entries} × {buf_size}"
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for conn in 0..conns {
        let (client, server) = connected_pair(&listener).await;
        let mut wrng = Rng(rng.next() | 1);
        writers.push(hoop::spawn(async move {
            let mut sent = 0;
            while sent < total {
                let n = (1 + wrng.below(30_000)).min(total - sent);
                let piece: Vec<u8> = (sent..sent + n).map(|i| byte(conn, i)).collect();
                client.write_all(piece).await.0.unwrap();
                sent += n;
                if wrng.below(4) == 0 {
                    hoop::yield_now().await;
                }
            }
            // Closing ends the reader's stream.
            drop(client);
        }));
        let ring = ring.clone();
        let max_hold = rng.below(4);
        let mut rrng = Rng(rng.next() | 1);
        let what = what.clone();
        readers.push(hoop::spawn(async move {
            let mut stream = server.recv_stream(&ring);
            let mut held: VecDeque<Held> = VecDeque::new();
            let (mut got, mut chunks, mut later_pieces) = (0usize, 0u64, 0u64);
            loop {
                // Wait a little for the next chunk; if none comes, the ring may be dry because
                // of what the readers hold: release it all.
                let next = hoop::time::timeout(Duration::from_millis(1), stream.next()).await;
                let Ok(next) = next else {
                    for h in held.drain(..) {
                        h.release();
                    }
                    continue;
                };
                let Some(chunk) = next else { break };
                let chunk = chunk.unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(!chunk.is_empty() && chunk.offset() + chunk.len() <= buf_size);
                for (k, &b) in chunk.iter().enumerate() {
                    assert_eq!(
                        b,
                        byte(conn, got + k),
                        "{what}: connection {conn}, byte {}",
                        got + k
                    );
                }
                got += chunk.len();
                chunks += 1;
                later_pieces += u64::from(chunk.offset() > 0);
                let copy = chunk.to_vec();
                held.push_back(Held { chunk, copy });
                while held.len() > max_hold || (!held.is_empty() && rrng.below(3) == 0) {
                    let i = rrng.below(held.len());
                    held.remove(i).unwrap().release();
                }
            }
            for h in held {
                h.release();
            }
            assert_eq!(got, total, "{what}: connection {conn} ended early");
            Outcome {
                chunks,
                completions: stream.completions(),
                later_pieces,
                exhausted: stream.times_exhausted(),
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let mut outcome = Outcome::default();
    for r in readers {
        let o = r.await.unwrap();
        outcome.chunks += o.chunks;
        outcome.completions += o.completions;
        outcome.later_pieces += o.later_pieces;
        outcome.exhausted += o.exhausted;
    }
    // Every piece was released, and every buffer is back where a receive can pick it.
    assert_eq!(ring.available(), entries as usize, "{what}: buffers held");
    assert_eq!(
        ring.buffers_in_ring(),
        entries as usize,
        "{what}: buffers lost {ring:?}"
    );
    outcome
}

fn seeds() -> Vec<u64> {
    match std::env::var("HOOP_RING_SEED") {
        Ok(v) => vec![v.parse().expect("HOOP_RING_SEED is a number")],
        Err(_) => (1..=12).map(|i| 0x5eed_0000 + i * 7919).collect(),
    }
}

#[hoop::test]
async fn every_byte_arrives_once_in_order_in_every_ring_mode() {
    for mode in MODES {
        let mut total = Outcome::default();
        for seed in seeds() {
            // A lost buffer would leave a reader waiting forever: fail instead.
            let o = hoop::time::timeout(Duration::from_secs(60), round(seed, mode))
                .await
                .unwrap_or_else(|_| panic!("seed {seed:#x} {mode:?}: stuck"));
            total.chunks += o.chunks;
            total.completions += o.completions;
            total.later_pieces += o.later_pieces;
            total.exhausted += o.exhausted;
        }
        let Outcome {
            chunks,
            completions,
            later_pieces,
            exhausted,
        } = total;
        eprintln!(
            "{mode:?}: {chunks} chunks from {completions} completions, {later_pieces} later \
             pieces, ring exhausted {exhausted} times"
        );
        assert!(exhausted > 0, "{mode:?}: the rings never ran dry");
        let ring = BufRing::builder(2, 64)
            .incremental(mode.incremental)
            .bundles(mode.bundles)
            .build()
            .unwrap();
        // The modes really ran where the kernel has them: an incremental ring hands out later
        // pieces of a buffer; bundles fill several buffers per completion.
        assert_eq!(later_pieces > 0, ring.is_incremental(), "{mode:?}");
        if ring.uses_bundles() {
            assert!(
                chunks > completions,
                "{mode:?}: no completion filled two buffers"
            );
        } else {
            assert_eq!(chunks, completions, "{mode:?}");
        }
    }
}

/// The readers of an incremental ring share its buffers: two connections whose small messages
/// interleave get pieces of the same buffer, each at its own offset, and neither sees the
/// other's bytes.
#[hoop::test]
async fn connections_share_an_incremental_buffer() {
    let ring = BufRing::builder(2, 4096).incremental(true).build().unwrap();
    if !ring.is_incremental() {
        common::skip("no incremental buffer rings (io_uring on 6.12+)");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (a_client, a) = connected_pair(&listener).await;
    let (b_client, b) = connected_pair(&listener).await;
    let mut a_stream = a.recv_stream(&ring);
    let mut b_stream = b.recv_stream(&ring);
    let mut chunks = Vec::new();
    for i in 0..4u8 {
        a_client.write_all(vec![b'a' + i; 100]).await.0.unwrap();
        let ca = a_stream.next().await.unwrap().unwrap();
        b_client.write_all(vec![b'A' + i; 50]).await.0.unwrap();
        let cb = b_stream.next().await.unwrap().unwrap();
        assert_eq!(&ca[..], &[b'a' + i; 100][..]);
        assert_eq!(&cb[..], &[b'A' + i; 50][..]);
        chunks.push(ca);
        chunks.push(cb);
    }
    // All eight pieces came from one buffer, one after the other.
    let bid = chunks[0].bid();
    let mut offset = 0;
    for c in &chunks {
        assert_eq!((c.bid(), c.offset()), (bid, offset), "{chunks:?}");
        offset += c.len();
    }
    // The buffer is still the kernel's (it has room), so it counts as held only while pieces
    // of it are; dropping them all frees it without pushing it twice.
    assert_eq!(ring.available(), 1);
    drop(chunks);
    assert_eq!(ring.available(), 2);
}

/// Where the ring is not registered (epoll, kernels before 5.19), a stream must not hold a
/// buffer while its socket is idle: with one buffer and two streams, data on the second
/// arrives even though the first never receives anything.
#[hoop::test]
async fn an_idle_stream_holds_no_buffer() {
    let ring = BufRing::new(1, 1024).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (_quiet_client, quiet) = connected_pair(&listener).await;
    let (busy_client, busy) = connected_pair(&listener).await;
    let idle = hoop::spawn({
        let ring = ring.clone();
        async move {
            let mut stream = quiet.recv_stream(&ring);
            stream.next().await.map(|c| c.map(|c| c.len()))
        }
    });
    // The idle stream is polled first and waits.
    hoop::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        ring.available(),
        1,
        "an idle stream holds a buffer: {ring:?}"
    );
    let mut stream = busy.recv_stream(&ring);
    for round in 0..3u8 {
        busy_client.write_all(vec![round; 300]).await.0.unwrap();
        let chunk = hoop::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .unwrap_or_else(|_| {
                panic!("round {round}: data waited for a buffer an idle stream held")
            })
            .unwrap()
            .unwrap();
        assert_eq!(&chunk[..], &[round; 300][..]);
    }
    idle.abort();
}

/// A stream dropped while data flows (completions queued for it, a bundle half taken) gives
/// every buffer back, in every mode, and the ring serves a new stream.
#[hoop::test]
async fn dropping_a_stream_mid_traffic_returns_every_buffer_in_every_mode() {
    for mode in MODES {
        let ring = BufRing::builder(8, 1024)
            .incremental(mode.incremental)
            .bundles(mode.bundles)
            .build()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (client, server) = connected_pair(&listener).await;
        let writer = hoop::spawn(async move {
            for _ in 0..100 {
                if client.write_all(vec![7u8; 10_000]).await.0.is_err() {
                    break;
                }
            }
        });
        let mut stream = server.recv_stream(&ring);
        let first = stream.next().await.unwrap().unwrap();
        let second = stream.next().await.unwrap().unwrap();
        assert!(!first.is_empty() && !second.is_empty());
        drop(stream);
        drop(first);
        // Completions that raced with the cancel give their buffers back when they arrive.
        for _ in 0..200 {
            if ring.buffers_in_ring() == 7 || ring.buffers_in_ring() == 8 {
                break;
            }
            hoop::time::sleep(Duration::from_millis(1)).await;
        }
        drop(second);
        assert_eq!(ring.buffers_in_ring(), 8, "{mode:?}: {ring:?}");
        assert_eq!(ring.available(), 8, "{mode:?}");
        drop(server);
        let _ = writer.await;
        let (c2, s2) = connected_pair(&listener).await;
        c2.write_all(b"again".to_vec()).await.0.unwrap();
        let mut st = s2.recv_stream(&ring);
        assert_eq!(&st.next().await.unwrap().unwrap()[..], b"again", "{mode:?}");
    }
}

/// Rings made and dropped one after another in one runtime reuse the kernel's buffer group
/// ids: each new ring must start fresh. (Kernels 5.19–6.8 kept a reused low id's head: a new
/// ring under it looked empty to the kernel, or was handed out from entries never written.)
#[hoop::test]
async fn rings_made_one_after_another_start_fresh() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (client, server) = connected_pair(&listener).await;
    let mut sent = 0usize;
    let mut got = 0usize;
    for round in 0..80 {
        let ring = BufRing::new(2, 512).unwrap();
        let mut stream = server.recv_stream(&ring);
        // Both buffers are used and held, so the kernel's head moves by two per ring.
        let mut held = Vec::new();
        for _ in 0..2 {
            let piece: Vec<u8> = (sent..sent + 256).map(|i| byte(0, i)).collect();
            client.write_all(piece).await.0.unwrap();
            sent += 256;
            while got < sent {
                let chunk = hoop::time::timeout(Duration::from_secs(5), stream.next())
                    .await
                    .unwrap_or_else(|_| panic!("round {round}: nothing received"))
                    .unwrap()
                    .unwrap();
                for (k, &b) in chunk.iter().enumerate() {
                    assert_eq!(b, byte(0, got + k), "round {round}: byte {}", got + k);
                }
                got += chunk.len();
                held.push(chunk);
            }
        }
        drop(held);
    }
}

/// A socket whose error queue holds something (here a TX timestamp) but which has no data is
/// not readable: an idle stream on it sleeps. (`poll(2)` reports the error queue as `POLLERR`;
/// a check made with it sent the epoll fallback round a check-and-receive loop.)
#[hoop::test]
async fn an_error_queue_does_not_wake_an_idle_stream() {
    use std::os::fd::AsRawFd;
    let ring = BufRing::new(4, 1024).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (client, server) = connected_pair(&listener).await;
    let flags: libc::c_uint = libc::SOF_TIMESTAMPING_TX_SOFTWARE
        | libc::SOF_TIMESTAMPING_SOFTWARE
        | libc::SOF_TIMESTAMPING_OPT_TSONLY;
    // SAFETY: a live socket and a live, correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            server.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPING,
            (&flags as *const libc::c_uint).cast(),
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    // The send leaves a timestamp on the server socket's error queue.
    server.write_all(b"ping".to_vec()).await.0.unwrap();
    client.read_exact(vec![0u8; 4]).await.0.unwrap();
    let stream = hoop::spawn({
        let ring = ring.clone();
        async move {
            let mut stream = server.recv_stream(&ring);
            stream.next().await.map(|c| c.map(|c| c.to_vec()))
        }
    });
    hoop::time::sleep(Duration::from_millis(20)).await;
    let before = (hoop::metrics().unwrap().ops_completed, thread_cpu());
    hoop::time::sleep(Duration::from_millis(100)).await;
    let ops = hoop::metrics().unwrap().ops_completed - before.0;
    let cpu = thread_cpu() - before.1;
    // A loop shows as operations, or (one inside the kernel) as the thread's CPU time.
    assert!(ops < 50, "an idle stream made {ops} operations in 100 ms");
    assert!(
        cpu < Duration::from_millis(30),
        "an idle stream used {cpu:?} of CPU in 100 ms"
    );
    client.write_all(b"data".to_vec()).await.0.unwrap();
    let chunk = hoop::time::timeout(Duration::from_secs(5), stream)
        .await
        .expect("the stream saw the data")
        .unwrap();
    assert_eq!(chunk.unwrap().unwrap(), b"data");
}

/// CPU time the calling thread used so far (user and system).
fn thread_cpu() -> Duration {
    // SAFETY: a zeroed rusage the kernel fills.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
