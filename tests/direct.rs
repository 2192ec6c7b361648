//! Direct descriptors on both drivers: connections accepted into a worker ring's table of
//! registered files (`accept_direct`), which never enter the process's fd table, are closed
//! through the ring, recycle their slots, fall back to plain fds where there is no table (epoll,
//! kernels before 6.0) or it is full, and cannot reach another ring's table.

#[path = "common/mod.rs"]
mod common;

use futures_util::StreamExt;
use hoop::buf::BufRing;
use hoop::net::{DirectStream, Shutdown, TcpListener, TcpStream, UnixListener, UnixStream};
use hoop::{DriverChoice, Runtime};

/// Whether accepts on `driver` give direct descriptors here.
fn direct_expected(driver: DriverChoice) -> bool {
    driver == DriverChoice::IoUring && common::kernel_at_least((6, 0))
}

/// The tests of this file one at a time: one counts the process's fds.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn runtime(driver: DriverChoice, slots: u32) -> Runtime {
    Runtime::builder()
        .workers(1)
        .driver(driver)
        .direct_descriptors(slots)
        .build()
        .unwrap()
}

/// Open fds of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

async fn connect_direct(listener: &TcpListener) -> (TcpStream, DirectStream) {
    let addr = listener.local_addr().unwrap();
    let (client, accepted) =
        futures_util::join!(TcpStream::connect(addr), listener.accept_direct());
    let (server, peer) = accepted.unwrap();
    let client = client.unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    (client, server)
}

/// Every I/O method of a direct stream, against a plain client.
#[test]
fn a_direct_stream_does_all_stream_io() {
    let _serial = serial();
    for driver in common::drivers() {
        runtime(driver, 1024).block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let (client, server) = connect_direct(&listener).await;
            assert_eq!(server.is_direct(), direct_expected(driver), "{driver:?}");

            client.write_all(b"hello direct".to_vec()).await.0.unwrap();
            let (n, peeked) = server.peek(vec![0u8; 5]).await;
            assert_eq!(&peeked[..n.unwrap()], b"hello");
            let (res, got) = server.read_exact(vec![0u8; 12]).await;
            res.unwrap();
            assert_eq!(got, b"hello direct");

            server.write_all(b"one".to_vec()).await.0.unwrap();
            let (n, _) = server
                .writev(vec![b"two".to_vec(), b"three".to_vec()])
                .await;
            assert_eq!(n.unwrap(), 8);
            let (n, _) = server.send_zc(b"four".to_vec()).await;
            assert_eq!(n.unwrap(), 4);
            let (n, _) = server
                .send_vectored_zc(vec![b"fi".to_vec(), b"ve".to_vec()])
                .await;
            assert_eq!(n.unwrap(), 4);
            let (res, got) = client.read_exact(vec![0u8; 19]).await;
            res.unwrap();
            assert_eq!(got, b"onetwothreefourfive");

            client.write_all(b"abcdef".to_vec()).await.0.unwrap();
            let (n, bufs) = server.readv(vec![vec![0u8; 2], vec![0u8; 4]]).await;
            assert_eq!(n.unwrap(), 6);
            assert_eq!(bufs, vec![b"ab".to_vec(), b"cdef".to_vec()]);

            let ring = BufRing::new(4, 4096).unwrap();
            client.write_all(vec![7u8; 10_000]).await.0.unwrap();
            let mut chunks = server.recv_stream(&ring);
            let mut got = 0;
            while got < 10_000 {
                let chunk = chunks.next().await.unwrap().unwrap();
                assert!(chunk.iter().all(|&b| b == 7));
                got += chunk.len();
            }
            assert_eq!(got, 10_000);
            drop(chunks);

            // Request and response, twice: a write that went out whole must not make the next
            // one try an inline syscall, which a direct descriptor has no fd for.
            for round in 0..3 {
                client.write_all(b"req".to_vec()).await.0.unwrap();
                let (res, got) = server.read_exact(vec![0u8; 3]).await;
                res.unwrap();
                assert_eq!(got, b"req");
                server.write_all(b"resp".to_vec()).await.0.unwrap();
                server.write(b"!".to_vec()).await.0.unwrap();
                let (res, got) = client.read_exact(vec![0u8; 5]).await;
                res.unwrap();
                assert_eq!(got, b"resp!", "round {round}");
            }

            // FIN through the ring: the client reads the end.
            server.shutdown(Shutdown::Write).await.unwrap();
            let (n, _) = client.read(vec![0u8; 8]).await;
            assert_eq!(n.unwrap(), 0);
        });
    }
}

/// A direct accept takes no fd: connections held on the server side leave the process's fd
/// table as it was (only the clients' sockets add fds).
#[test]
fn direct_connections_take_no_fd() {
    let _serial = serial();
    for driver in common::drivers() {
        runtime(driver, 1024).block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            // The table registration itself, and the worker's first connection, out of the count.
            drop(connect_direct(&listener).await);
            let before = open_fds();
            let mut held = Vec::new();
            for _ in 0..50 {
                held.push(connect_direct(&listener).await);
            }
            let added = open_fds() - before;
            let per_connection = if direct_expected(driver) { 1 } else { 2 };
            assert_eq!(added, 50 * per_connection, "{driver:?}");
        });
    }
}

/// Dropped direct streams close their slots through the ring, so a small table serves many more
/// connections than it has places (a place comes back once the kernel has closed the slot: a
/// connection accepted while all are still closing is plain); with the table full, accepts give
/// plain fds that work the same, and direct ones again once slots are free.
#[test]
fn slots_are_recycled_and_a_full_table_gives_plain_fds() {
    let _serial = serial();
    // 256 slots: 64 reserved, 64 of slack, 128 for connections.
    const CAPACITY: usize = 128;
    for driver in common::drivers() {
        runtime(driver, 256).block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let mut direct = 0;
            for _ in 0..CAPACITY * 4 {
                let (client, server) = connect_direct(&listener).await;
                direct += server.is_direct() as usize;
                // Dropped with a read in flight: the read is cancelled, then the slot closed.
                let pending = std::pin::pin!(server.read(vec![0u8; 16]));
                assert!(futures_util::poll!(pending).is_pending());
                drop(client);
            }
            if direct_expected(driver) {
                // More direct connections than places: the slots were recycled.
                assert!(direct > CAPACITY, "{direct} direct of {}", CAPACITY * 4);
                // Let the last closes complete before the table is filled below.
                assert!(direct_again(&listener).await);
            } else {
                assert_eq!(direct, 0);
            }
            // Every place taken by a held direct connection (plain ones, accepted while the
            // last closes complete, are let go).
            let mut held = Vec::new();
            let want = if direct_expected(driver) { CAPACITY } else { 0 };
            for _ in 0..CAPACITY * 8 {
                if held.len() == want {
                    break;
                }
                let (client, server) = connect_direct(&listener).await;
                if server.is_direct() {
                    held.push((client, server));
                } else {
                    hoop::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            }
            assert_eq!(held.len(), want, "{driver:?}");
            let (client, extra) = connect_direct(&listener).await;
            assert!(!extra.is_direct(), "the table is full: a plain fd");
            client.write_all(b"plain".to_vec()).await.0.unwrap();
            let (res, got) = extra.read_exact(vec![0u8; 5]).await;
            res.unwrap();
            assert_eq!(got, b"plain");
            drop(held);
            // The places come back as the kernel confirms the closes.
            assert!(
                direct_again(&listener).await == direct_expected(driver),
                "{driver:?}"
            );
        });
    }
}

/// Accepts until one gives a direct descriptor (the freed slots' closes completing meanwhile);
/// false if none did within a second.
async fn direct_again(listener: &TcpListener) -> bool {
    for _ in 0..100 {
        let (_client, stream) = connect_direct(listener).await;
        if stream.is_direct() {
            return true;
        }
        hoop::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

/// Streams dropped and connections accepted in the same tick, with the table full: a freed
/// slot's place comes back only when the kernel has closed it, so no accept asks the kernel for
/// a slot it does not have (which would fail the accept, and close the connection the kernel
/// took): every accept succeeds, direct or plain, and direct ones come back after.
#[test]
fn slots_freed_in_a_tick_serve_accepts_of_the_same_tick() {
    let _serial = serial();
    const CAPACITY: usize = 128;
    for driver in common::drivers() {
        runtime(driver, 256).block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut held = Vec::new();
            for _ in 0..CAPACITY {
                held.push(connect_direct(&listener).await);
            }
            // Connections waiting in the backlog, so each accept completes as it is submitted.
            let mut waiting = Vec::new();
            for _ in 0..CAPACITY {
                waiting.push(std::net::TcpStream::connect(addr).unwrap());
            }
            drop(held);
            let accepts = (0..CAPACITY).map(|_| listener.accept_direct());
            let accepted = futures_util::future::join_all(accepts).await;
            let mut streams = Vec::new();
            for (i, a) in accepted.into_iter().enumerate() {
                let (stream, _) = a.unwrap_or_else(|e| panic!("accept {i}: {e}"));
                streams.push(stream);
            }
            for (i, (c, s)) in waiting.iter_mut().zip(&streams).enumerate() {
                use std::io::Write;
                c.write_all(b"ok").unwrap();
                let (res, got) = s.read_exact(vec![0u8; 2]).await;
                res.unwrap_or_else(|e| panic!("connection {i}: {e}"));
                assert_eq!(got, b"ok");
            }
            drop(streams);
            assert!(
                direct_again(&listener).await == direct_expected(driver),
                "{driver:?}"
            );
        });
    }
}

/// Unix listeners accept into direct descriptors too.
#[test]
fn unix_accept_direct() {
    let _serial = serial();
    for driver in common::drivers() {
        runtime(driver, 1024).block_on(async move {
            let dir = tempfile_dir();
            let path = dir.join("sock");
            let listener = UnixListener::bind(&path).unwrap();
            let (client, accepted) =
                futures_util::join!(UnixStream::connect(&path), listener.accept_direct());
            let (client, (server, _)) = (client.unwrap(), accepted.unwrap());
            assert_eq!(server.is_direct(), direct_expected(driver));
            client.write_all(b"unix".to_vec()).await.0.unwrap();
            let (res, got) = server.read_exact(vec![0u8; 4]).await;
            res.unwrap();
            assert_eq!(got, b"unix");
            server.write_all(b"back".to_vec()).await.0.unwrap();
            let (res, got) = client.read_exact(vec![0u8; 4]).await;
            res.unwrap();
            assert_eq!(got, b"back");
            std::fs::remove_dir_all(dir).unwrap();
        });
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "hoop-direct-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `into_fd` gives a working fd on 6.8 and later (`FIXED_FD_INSTALL`), `Unsupported` before;
/// a plain fd is handed over as it is.
#[test]
fn into_fd_gives_a_usable_fd() {
    let _serial = serial();
    for driver in common::drivers() {
        runtime(driver, 1024).block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let (client, server) = connect_direct(&listener).await;
            let direct = server.is_direct();
            match server.into_fd().await {
                Ok(fd) => {
                    let std = std::net::TcpStream::from(fd);
                    let stream = TcpStream::from_std(std).unwrap();
                    client.write_all(b"installed".to_vec()).await.0.unwrap();
                    let (res, got) = stream.read_exact(vec![0u8; 9]).await;
                    res.unwrap();
                    assert_eq!(got, b"installed");
                    // Closing the slot left the connection to the new fd (no shutdown): it
                    // still writes once the slot's close has run.
                    hoop::io::nop().await.unwrap();
                    hoop::time::sleep(std::time::Duration::from_millis(10)).await;
                    stream.write_all(b"back".to_vec()).await.0.unwrap();
                    let (res, got) = client.read_exact(vec![0u8; 4]).await;
                    res.unwrap();
                    assert_eq!(got, b"back");
                }
                Err(e) => {
                    assert!(direct && !common::kernel_at_least((6, 8)), "{e}");
                    assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e}");
                }
            }
        });
    }
}

/// A direct stream kept past its runtime names a slot of a table that is gone. Used on a new
/// runtime on the same thread, whose table holds another connection in the same slot, it must
/// fail with `EBADF`, never read that connection's data.
#[test]
fn a_direct_stream_cannot_reach_another_rings_table() {
    let _serial = serial();
    if common::io_uring_denied() {
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let first = runtime(DriverChoice::IoUring, 1024);
    let (old_client, old) = first.block_on(async {
        let listener = TcpListener::from_std(listener.try_clone().unwrap()).unwrap();
        connect_direct(&listener).await
    });
    drop(first);
    if !old.is_direct() {
        common::skip("no direct descriptors on this kernel");
        return;
    }
    runtime(DriverChoice::IoUring, 1024).block_on(async move {
        let listener = TcpListener::from_std(listener).unwrap();
        let (client, new) = connect_direct(&listener).await;
        assert_eq!(new.shared_fd().direct_slot(), old.shared_fd().direct_slot());
        client.write_all(b"secret".to_vec()).await.0.unwrap();
        let (res, _) = old.read(vec![0u8; 16]).await;
        let e = res.expect_err("a stale direct descriptor must not read");
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}");
        let (res, got) = new.read_exact(vec![0u8; 6]).await;
        res.unwrap();
        assert_eq!(got, b"secret", "the new connection's data is intact");
        drop(old_client);
    });
}

/// A stream moved to a busy worker and aborted before that worker takes it: the task never
/// runs, and the connection is closed all the same (the descriptor put in the target's table is
/// adopted and closed there; a plain fd is closed with the dropped closure), so the client sees
/// the end of the stream instead of a connection nobody holds.
#[test]
fn a_move_aborted_on_its_way_closes_the_connection() {
    let _serial = serial();
    for driver in common::drivers() {
        let rt = Runtime::builder()
            .workers(2)
            .driver(driver)
            .build()
            .unwrap();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (busy_tx, busy_rx) = std::sync::mpsc::channel::<()>();
        let blocker = rt.handle().spawn_on(1, async move {
            started_tx.send(()).unwrap();
            let _ = busy_rx.recv();
        });
        started_rx.recv().unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let (client, server) = connect_direct(&listener).await;
            let moved = server.spawn_on(1, |_s| async move { 7 }).await;
            let Ok(task) = moved else {
                // It cannot move on this kernel (the test above covers that).
                busy_tx.send(()).unwrap();
                return;
            };
            task.abort();
            busy_tx.send(()).unwrap();
            assert!(task.await.unwrap_err().is_cancelled(), "{driver:?}");
            let (n, _) = hoop::time::timeout(
                std::time::Duration::from_secs(5),
                client.read(Vec::with_capacity(8)),
            )
            .await
            .unwrap_or_else(|_| panic!("{driver:?}: the moved connection was never closed"));
            assert_eq!(n.unwrap(), 0, "{driver:?}");
        });
        rt.block_on(blocker).unwrap();
    }
}

/// A direct stream accepted on worker 0 moves to worker 1 (`MSG_RING` with `IORING_MSG_SEND_FD`
/// where the rings exchange messages, an installed fd on 6.8+ otherwise, plain fds as they are)
/// and serves its connection there; where it cannot move, it comes back and still works.
#[test]
fn a_direct_stream_moves_to_another_worker() {
    let _serial = serial();
    let choices = common::drivers()
        .into_iter()
        .flat_map(|d| [(d, true), (d, false)]);
    for (driver, msg_ring) in choices {
        let rt = Runtime::builder()
            .workers(2)
            .driver(driver)
            .msg_ring(msg_ring)
            .build()
            .unwrap();
        let messages = rt.info().uring_setup.contains("MSG_RING");
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let (client, server) = connect_direct(&listener).await;
            let was_direct = server.is_direct();
            let moved = server
                .spawn_on(1, |s| async move {
                    // Twice: the second exchange comes after the source's slot was closed,
                    // which must leave the connection alone.
                    for _ in 0..2 {
                        let (res, buf) = s.read_exact(vec![0u8; 5]).await;
                        res.unwrap();
                        s.write_all(buf).await.0.unwrap();
                    }
                    (hoop::worker_index(), s.is_direct())
                })
                .await;
            let server = match moved {
                Ok(served) => {
                    for round in 0..2 {
                        client.write_all(b"moved".to_vec()).await.0.unwrap();
                        let (res, got) = client.read_exact(vec![0u8; 5]).await;
                        res.unwrap();
                        assert_eq!(got, b"moved", "round {round}");
                        hoop::io::nop().await.unwrap();
                        hoop::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                    let (on, direct) = served.await.unwrap();
                    assert_eq!(on, Some(1));
                    // Ring to ring where messages flow; an fd otherwise.
                    assert_eq!(direct, was_direct && messages, "{driver:?}");
                    return;
                }
                Err((e, server)) => {
                    assert!(
                        was_direct && !messages && !common::kernel_at_least((6, 8)),
                        "{driver:?}: {e}"
                    );
                    assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e}");
                    server
                }
            };
            client.write_all(b"still".to_vec()).await.0.unwrap();
            let (res, got) = server.read_exact(vec![0u8; 5]).await;
            res.unwrap();
            assert_eq!(got, b"still");
        });
    }
}

/// Moves into a target whose table's budget is spent travel as an installed fd (6.8+), and
/// nothing is lost.
#[test]
fn moves_into_a_full_table_fall_back_to_an_fd() {
    let _serial = serial();
    if common::io_uring_denied() {
        return;
    }
    let rt = Runtime::builder()
        .workers(2)
        .driver(DriverChoice::IoUring)
        .direct_descriptors(256)
        .build()
        .unwrap();
    if !rt.info().uring_setup.contains("MSG_RING") || !common::kernel_at_least((6, 8)) {
        common::skip("needs MSG_RING doorbells and FIXED_FD_INSTALL");
        return;
    }
    rt.block_on(async {
        // 256 slots, 64 reserved, 64 of slack: a budget of 128 descriptors in worker 1's table.
        const ROOM: usize = 128;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut clients = Vec::new();
        let mut served = Vec::new();
        for i in 0..ROOM + 8 {
            let (client, server) = connect_direct(&listener).await;
            assert!(server.is_direct(), "accept {i}");
            let handle = server
                .spawn_on(1, |s| async move {
                    let direct = s.is_direct();
                    let (n, _) = s.read(vec![0u8; 8]).await;
                    (direct, n.unwrap())
                })
                .await
                .map_err(|(e, _)| e)
                .unwrap();
            clients.push(client);
            served.push(handle);
        }
        for c in &clients {
            c.write_all(b"x".to_vec()).await.0.unwrap();
        }
        let mut direct = 0;
        for h in served {
            let (d, n) = h.await.unwrap();
            assert_eq!(n, 1, "every moved connection still reads its byte");
            direct += d as usize;
        }
        assert_eq!(direct, ROOM, "the rest travelled as fds");
    });
}

/// A dropped direct stream's peer reads the end at once, also while another direct connection
/// has a receive waiting: before 6.13 the kernel releases a closed slot's file only after every
/// older fixed-file operation completed, so the slot's socket is shut down first.
#[test]
fn the_peer_of_a_dropped_direct_stream_reads_the_end() {
    let _serial = serial();
    for driver in common::drivers() {
        runtime(driver, 1024).block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let (_idle_client, idle) = connect_direct(&listener).await;
            let waiting = hoop::spawn(async move { idle.read(vec![0u8; 8]).await.0 });
            hoop::time::sleep(std::time::Duration::from_millis(5)).await;
            let (client, server) = connect_direct(&listener).await;
            drop(server);
            let read = client.read(vec![0u8; 8]);
            let (n, _) = hoop::time::timeout(std::time::Duration::from_secs(5), read)
                .await
                .expect("the peer saw no end");
            assert_eq!(n.unwrap(), 0, "{driver:?}");
            waiting.abort();
        });
    }
}

/// Files opened into direct descriptors (`OpenOptions::open_direct`): positioned reads and
/// writes, syncs, no fd taken, `into_file` on 6.8+; plain fds on epoll and before 6.0.
#[test]
fn direct_files_read_write_and_sync() {
    let _serial = serial();
    for driver in common::drivers() {
        runtime(driver, 1024).block_on(async move {
            let dir = tempfile_dir();
            let open = |name: &str| {
                let path = dir.join(name);
                async move {
                    hoop::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open_direct(&path)
                        .await
                        .unwrap()
                }
            };
            let file = open("a").await;
            assert_eq!(file.is_direct(), direct_expected(driver), "{driver:?}");
            file.write_all_at(b"hello direct file".to_vec(), 0)
                .await
                .0
                .unwrap();
            file.sync_data().await.unwrap();
            let (res, buf) = file.read_exact_at(vec![0u8; 6], 6).await;
            res.unwrap();
            assert_eq!(buf, b"direct");
            assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"hello direct file");

            // Twenty more files: no fd each where they are direct.
            let before = open_fds();
            let mut held = Vec::new();
            for i in 0..20 {
                held.push(open(&format!("f{i}")).await);
            }
            let added = open_fds() - before;
            assert_eq!(added, if direct_expected(driver) { 0 } else { 20 });
            drop(held);

            match file.into_file().await {
                Ok(f) => {
                    assert_eq!(f.metadata().await.unwrap().len(), 17);
                }
                Err(e) => {
                    assert!(
                        direct_expected(driver) && !common::kernel_at_least((6, 8)),
                        "{e}"
                    );
                    assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e}");
                }
            }
            std::fs::remove_dir_all(dir).unwrap();
        });
    }
}
