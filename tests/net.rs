//! hoop::net on both drivers: TCP echo under 1000 connections, large transfers, half-close,
//! resets, dropped receives, multishot accept churn, EMFILE back-off, UDP and Unix sockets.

#[path = "common/mod.rs"]
mod common;
use futures_util::StreamExt;
use hoop::net::{
    Shutdown, TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream,
};
use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::io::ErrorKind;
use std::rc::Rc;
use std::time::Duration;

async fn echo_server(listener: TcpListener) {
    let mut incoming = listener.incoming();
    while let Some(conn) = incoming.next().await {
        let Ok(stream) = conn else { continue };
        hoop::spawn(async move {
            let mut buf = Vec::with_capacity(8192);
            loop {
                buf.clear();
                let (n, b) = stream.read(buf).await;
                match n {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let (res, b) = stream.write_all(b).await;
                if res.is_err() {
                    return;
                }
                buf = b;
            }
        })
        .detach();
    }
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a live local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max.min(65536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

#[hoop::test]
async fn echo_1000_concurrent_connections() {
    raise_fd_limit();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    hoop::spawn(echo_server(listener)).detach();
    let clients: Vec<_> = (0..1000u32)
        .map(|i| {
            hoop::spawn(async move {
                let s = TcpStream::connect(addr).await.unwrap();
                let msg: Vec<u8> = (0..1000 + i)
                    .map(|j| (i.wrapping_mul(31) + j) as u8)
                    .collect();
                let sent = hash(&msg);
                let (res, _) = s.write_all(msg).await;
                res.unwrap();
                let (res, back) = s.read_exact(vec![0u8; (1000 + i) as usize]).await;
                res.unwrap();
                assert_eq!(hash(&back), sent, "connection {i}: bytes differ");
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
}

#[hoop::test]
async fn large_transfer_each_way() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    const SIZE: usize = 64 << 20;
    let data: Rc<Vec<u8>> = Rc::new((0..SIZE).map(|i| (i * 7 + i / 4096) as u8).collect());
    let expect = hash(&data);
    let d = data.clone();
    let server = hoop::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let (rd, wr) = s.into_split();
        // Receive 64 MiB while sending 64 MiB, in two tasks.
        let sender = hoop::spawn(async move {
            wr.write_all(d.to_vec()).await.0.unwrap();
            wr.shutdown().unwrap();
            wr
        });
        let (res, got) = rd.read_exact(Vec::with_capacity(SIZE)).await;
        res.unwrap();
        let wr = sender.await.unwrap();
        let _ = rd.reunite(wr).unwrap();
        hash(&got)
    });
    let c = TcpStream::connect(addr).await.unwrap();
    let (rd, wr) = c.into_split();
    let send = hoop::spawn(async move { wr.write_all(data.to_vec()).await.0.unwrap() });
    let mut total = Vec::with_capacity(SIZE);
    loop {
        let chunk = Vec::with_capacity(1 << 20);
        let (n, chunk) = rd.read(chunk).await;
        if n.unwrap() == 0 {
            break;
        }
        total.extend_from_slice(&chunk);
    }
    send.await.unwrap();
    assert_eq!(total.len(), SIZE);
    assert_eq!(hash(&total), expect);
    assert_eq!(server.await.unwrap(), expect);
}

#[hoop::test]
async fn half_close_still_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = hoop::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let mut all = Vec::new();
        loop {
            let (n, b) = s.read(Vec::with_capacity(64)).await;
            if n.unwrap() == 0 {
                break; // the client's FIN
            }
            all.extend_from_slice(&b);
        }
        s.write_all(format!("got {} bytes", all.len()).into_bytes())
            .await
            .0
            .unwrap();
    });
    let c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"hello".to_vec()).await.0.unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let (res, buf) = c.read_exact(vec![0u8; 11]).await;
    res.unwrap();
    assert_eq!(buf, b"got 5 bytes");
    server.await.unwrap();
    let (n, _) = c.read(Vec::with_capacity(8)).await;
    assert_eq!(n.unwrap(), 0);
}

/// A peer that resets (SO_LINGER 0) gives clear errors on read and on write, never a panic.
#[hoop::test]
async fn peer_reset_during_read_and_write() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = hoop::spawn(async move { listener.accept().await.unwrap().0 });
    let c = TcpStream::connect(addr).await.unwrap();
    let s = accept.await.unwrap();
    let reader = hoop::spawn(async move {
        let (n, _) = s.read(Vec::with_capacity(64)).await;
        (n, s)
    });
    hoop::time::sleep(Duration::from_millis(10)).await;
    c.socket().set_linger(Some(Duration::ZERO)).unwrap();
    drop(c); // RST
    let (n, s) = reader.await.unwrap();
    match n {
        Ok(0) => {}
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
        Ok(n) => panic!("read {n} bytes from a reset connection"),
    }
    // Writing to the reset connection fails with EPIPE/ECONNRESET, without SIGPIPE.
    let mut err = None;
    for _ in 0..10 {
        let (res, _) = s.write_all(vec![1u8; 65536]).await;
        if let Err(e) = res {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("writes to a reset peer fail");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
        ),
        "{err}"
    );
}

#[hoop::test]
async fn dropping_a_pending_recv_loses_nothing() {
    let (a, b) = UnixStream::pair().unwrap();
    let r = hoop::time::timeout(Duration::from_millis(5), b.read(Vec::with_capacity(16))).await;
    assert!(r.is_err(), "nothing was sent");
    a.write_all(b"after".to_vec()).await.0.unwrap();
    let (res, buf) = b.read_exact(vec![0u8; 5]).await;
    res.unwrap();
    assert_eq!(buf, b"after", "the cancelled recv consumed nothing");
}

#[hoop::test]
async fn multishot_accept_under_churn() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Rc::new(Cell::new(0));
    let acc = accepted.clone();
    let server = hoop::spawn(async move {
        let mut incoming = listener.incoming();
        while let Some(conn) = incoming.next().await {
            let s = conn.unwrap();
            acc.set(acc.get() + 1);
            hoop::spawn(async move {
                let (n, b) = s.read(Vec::with_capacity(4)).await;
                if n.unwrap_or(0) > 0 {
                    let _ = s.write_all(b).await;
                }
            })
            .detach();
        }
    });
    for round in 0..20 {
        let conns: Vec<_> = (0..25)
            .map(|i| {
                hoop::spawn(async move {
                    let c = TcpStream::connect(addr).await.unwrap();
                    if i % 3 == 0 {
                        return; // connect and leave at once
                    }
                    c.write_all(vec![round as u8; 4]).await.0.unwrap();
                    let (res, b) = c.read_exact(vec![0u8; 4]).await;
                    res.unwrap();
                    assert_eq!(b, vec![round as u8; 4]);
                })
            })
            .collect();
        for c in conns {
            c.await.unwrap();
        }
    }
    for _ in 0..100 {
        if accepted.get() == 500 {
            break;
        }
        hoop::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(accepted.get(), 500);
    server.abort();
}

/// At the fd limit, `incoming()` backs off instead of spinning, and recovers once fds are free.
#[test]
fn accept_at_the_fd_limit_backs_off_and_recovers() {
    // A child process: lowering RLIMIT_NOFILE must not disturb the other tests.
    if std::env::var_os("HOOP_EMFILE_CHILD").is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "accept_at_the_fd_limit_backs_off_and_recovers",
                "--nocapture",
            ])
            .env("HOOP_EMFILE_CHILD", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    for driver in common::drivers() {
        let rt = hoop::Runtime::builder()
            .workers(1)
            .driver(driver)
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            // Connect from a thread so its fds do not count against the limit we set below.
            let clients = std::thread::spawn(move || {
                (0..8)
                    .map(|_| std::net::TcpStream::connect(addr).unwrap())
                    .collect::<Vec<_>>()
            })
            .join()
            .unwrap();
            // Use up every fd.
            let mut hog = Vec::new();
            let cur = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64 + 4;
            let lim = libc::rlimit {
                rlim_cur: cur,
                rlim_max: cur.max(65536),
            };
            // SAFETY: a plain syscall on a live local struct.
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
            while let Ok(f) = std::fs::File::open("/dev/null") {
                hog.push(f);
            }
            let polls_before = hoop::metrics().unwrap().tasks_polled;
            let mut incoming = listener.incoming();
            let first = hoop::time::timeout(Duration::from_millis(200), incoming.next()).await;
            assert!(first.is_err(), "nothing can be accepted without a free fd");
            let polls = hoop::metrics().unwrap().tasks_polled - polls_before;
            assert!(polls < 200, "the accept loop spun: {polls} polls in 200 ms");
            drop(hog);
            let mut got = 0;
            while got < 8 {
                let s = hoop::time::timeout(Duration::from_secs(5), incoming.next())
                    .await
                    .expect("recovered after fds were freed")
                    .unwrap()
                    .unwrap();
                drop(s);
                got += 1;
            }
            drop(clients);
        });
    }
}

#[hoop::test]
async fn udp_round_trips() {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..50u8 {
        let (res, _) = a
            .send_to(vec![i; 100 + i as usize], b.local_addr().unwrap())
            .await;
        assert_eq!(res.unwrap(), 100 + i as usize);
        let (res, buf) = b.recv_from(Vec::with_capacity(1500)).await;
        let (n, from) = res.unwrap();
        assert_eq!((n, from), (100 + i as usize, a.local_addr().unwrap()));
        assert!(buf.iter().all(|&x| x == i));
    }
    b.connect(a.local_addr().unwrap()).await.unwrap();
    b.send(b"connected".to_vec()).await.0.unwrap();
    let (res, buf) = a.recv(Vec::with_capacity(64)).await;
    assert_eq!(&buf[..res.unwrap()], b"connected");
}

#[hoop::test]
async fn unix_stream_and_datagram() {
    let dir = std::env::temp_dir().join(format!(
        "hoop-unix-{}-{}",
        std::process::id(),
        hoop::runtime_info().unwrap().driver
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let listener = UnixListener::bind(dir.join("s.sock")).unwrap();
    let path = dir.join("s.sock");
    let server = hoop::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let (res, buf) = s.read_exact(vec![0u8; 3]).await;
        res.unwrap();
        s.write_all(buf).await.0.unwrap();
    });
    let c = UnixStream::connect(&path).await.unwrap();
    c.write_all(b"abc".to_vec()).await.0.unwrap();
    let (res, buf) = c.read_exact(vec![0u8; 3]).await;
    res.unwrap();
    assert_eq!(buf, b"abc");
    server.await.unwrap();
    let d1 = UnixDatagram::bind(dir.join("d1")).unwrap();
    let d2 = UnixDatagram::unbound().unwrap();
    d2.send_to(b"dgram".to_vec(), dir.join("d1"))
        .await
        .0
        .unwrap();
    let (res, buf) = d1.recv_from(Vec::with_capacity(64)).await;
    let (n, _from) = res.unwrap();
    assert_eq!(&buf[..n], b"dgram");
    let _ = std::fs::remove_dir_all(&dir);
}

#[hoop::test]
async fn connect_refused_is_a_clear_error() {
    // A bound TCP socket that does not listen holds the port (nobody else can take it meanwhile)
    // and refuses connections.
    let holder = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    holder
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    let port = holder.local_addr().unwrap().as_socket().unwrap().port();
    let err = TcpStream::connect(("127.0.0.1", port)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[hoop::test]
async fn peek_does_not_consume() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    drop(a);
    drop(b);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = hoop::spawn(async move { listener.accept().await.unwrap().0 });
    let c = TcpStream::connect(addr).await.unwrap();
    let s = accept.await.unwrap();
    c.write_all(b"peekaboo".to_vec()).await.0.unwrap();
    let (n, buf) = s.peek(Vec::with_capacity(4)).await;
    assert_eq!(&buf[..n.unwrap()], b"peek");
    let (res, buf) = s.read_exact(vec![0u8; 8]).await;
    res.unwrap();
    assert_eq!(buf, b"peekaboo");
    assert!(c.nodelay().is_ok());
    c.set_nodelay(true).unwrap();
    assert!(c.nodelay().unwrap());
    assert_eq!(c.peer_addr().unwrap(), addr);
}

/// fds passed over a Unix socket arrive as working, close-on-exec fds; peer credentials are ours.
#[hoop::test]
async fn unix_fd_passing_and_peer_credentials() {
    use std::os::fd::{AsFd, AsRawFd};
    let (a, b) = UnixStream::pair().unwrap();
    let (pid, uid, _gid) = b.peer_cred().unwrap();
    assert_eq!(pid as u32, std::process::id());
    // SAFETY: getuid has no preconditions.
    assert_eq!(uid, unsafe { libc::getuid() });
    let (pr, pw) = std::os::unix::net::UnixStream::pair().unwrap();
    let file = std::fs::File::open("/proc/self/status").unwrap();
    let (res, _) = a
        .send_with_fds(b"two fds".to_vec(), &[pw.as_fd(), file.as_fd()])
        .await;
    assert_eq!(res.unwrap(), 7);
    drop(pw); // the receiver's copy keeps the socket open
    let (res, buf) = b.recv_with_fds(Vec::with_capacity(32), 8).await;
    let (n, fds) = res.unwrap();
    assert_eq!(&buf[..n], b"two fds");
    assert_eq!(fds.len(), 2);
    // SAFETY: F_GETFD on an fd we own.
    let flags = unsafe { libc::fcntl(fds[0].as_raw_fd(), libc::F_GETFD) };
    assert!(
        flags & libc::FD_CLOEXEC != 0,
        "received fds are close-on-exec"
    );
    let mut passed = std::os::unix::net::UnixStream::from(fds.into_iter().next().unwrap());
    std::io::Write::write_all(&mut passed, b"via passed fd").unwrap();
    let mut got = [0u8; 13];
    std::io::Read::read_exact(&mut &pr, &mut got).unwrap();
    assert_eq!(&got, b"via passed fd");
}

/// Review-2 C1: `recv(MSG_TRUNC)` on a datagram socket returns the datagram's full length; a
/// buffer must never claim more than it holds. Flags that allow it are refused up front, and
/// the other `MSG_*` flags still work.
#[hoop::test]
async fn recv_refuses_flags_that_would_overrun_the_buffer() {
    use hoop::fd::SharedFd;
    use hoop::op::send_recv::{Recv, Send};
    use hoop::op::Op;
    use hoop::IoBuf;
    let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    a.send_to(&[7u8; 2000], b.local_addr().unwrap()).unwrap();
    let fd = SharedFd::new(b.into());
    for flags in [
        libc::MSG_TRUNC,
        libc::MSG_ERRQUEUE,
        libc::MSG_TRUNC | libc::MSG_PEEK,
    ] {
        let (res, buf) = Op::new(Recv::new(&fd, Vec::with_capacity(16), flags)).await;
        assert_eq!(
            res.unwrap_err().kind(),
            ErrorKind::InvalidInput,
            "{flags:#x}"
        );
        assert!(buf.is_empty());
    }
    let (res, buf) = Op::new(Send::new(&fd, vec![1u8], libc::MSG_ZEROCOPY)).await;
    assert_eq!(res.unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(buf, [1]);
    // Allowed flags: peek, then a truncating read of a 2000-byte datagram into 16 bytes.
    let (res, buf) = Op::new(Recv::new(&fd, Vec::with_capacity(16), libc::MSG_PEEK)).await;
    assert_eq!(res.unwrap(), 16);
    assert!(buf.len() <= buf.capacity());
    let (res, buf) = Op::new(Recv::new(&fd, vec![0u8; 4].slice(..), 0)).await;
    assert_eq!(res.unwrap(), 4);
    assert_eq!(buf.into_inner(), [7u8; 4]);
}

/// Review-2 L5: connections the kernel accepted for a multishot `incoming()` that was not
/// polled again before its runtime shut down are closed when the stream is next polled (they
/// were queued in the driver and leaked).
#[test]
fn connections_queued_for_a_stream_outliving_its_runtime_are_closed() {
    use std::io::Read;
    for driver in common::drivers() {
        let rt = hoop::Builder::new()
            .workers(1)
            .driver(driver)
            .build()
            .unwrap();
        let (clients, incoming) = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut incoming = Box::pin(listener.incoming());
            // Armed, nothing to accept yet.
            assert!(futures_util::FutureExt::now_or_never(incoming.next()).is_none());
            let clients: Vec<_> = (0..4)
                .map(|_| std::net::TcpStream::connect(addr).unwrap())
                .collect();
            // Let the worker reap the accepts without polling the stream.
            hoop::time::sleep(Duration::from_millis(50)).await;
            (clients, (listener, incoming))
        });
        drop(rt);
        let (listener, mut incoming) = incoming;
        assert!(futures_util::FutureExt::now_or_never(incoming.next())
            .expect("ready")
            .is_none());
        drop((listener, incoming));
        for mut c in clients {
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut b = [0u8; 1];
            // Accepted on io_uring and now closed: end of stream. Never accepted (epoll
            // accepts only when polled): the listener's close reset it.
            match c.read(&mut b) {
                Ok(0) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                other => {
                    panic!("{driver:?}: the server side of a queued connection leaked: {other:?}")
                }
            }
        }
    }
}

/// A connected pair: a std stream for a peer thread, and the other end on hoop.
fn std_peer_and_hoop_stream() -> (std::net::TcpStream, TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let ours = listener.accept().unwrap().0;
    (peer, TcpStream::from_std(ours).unwrap())
}

/// `WorkerMetrics::ops_would_block` counts the syscalls that found the socket empty before a
/// wait: one per round on epoll, where every receive tries first; none on a ring, whose receive
/// waits inside the kernel.
#[hoop::test]
async fn receives_that_wait_are_counted_as_would_block() {
    use std::io::{Read, Write};
    let (mut peer, stream) = std_peer_and_hoop_stream();
    const ROUNDS: usize = 20;
    let pinger = std::thread::spawn(move || {
        let mut back = [0u8; 100];
        for i in 0..ROUNDS {
            // Late, so that the receive is made before the bytes come.
            std::thread::sleep(Duration::from_millis(1));
            peer.write_all(&[i as u8; 100]).unwrap();
            peer.read_exact(&mut back).unwrap();
            assert_eq!(back, [i as u8; 100]);
        }
    });
    let before = hoop::metrics().unwrap().ops_would_block;
    let mut buf = Vec::with_capacity(4096);
    let mut echoed = 0;
    while echoed < ROUNDS * 100 {
        buf.clear();
        let (n, b) = stream.read(buf).await;
        let n = n.unwrap();
        assert!(n > 0, "the peer closed early");
        let (res, b) = stream.write_all(b).await;
        res.unwrap();
        (buf, echoed) = (b, echoed + n);
    }
    let waited = hoop::metrics().unwrap().ops_would_block - before;
    pinger.join().unwrap();
    if hoop::runtime_info().unwrap().driver == hoop::DriverKind::Epoll {
        assert!(waited >= ROUNDS as u64 / 2, "{waited} in {ROUNDS} rounds");
    } else {
        assert_eq!(waited, 0);
    }
}

/// One receive with a deadline: a receive that waits for bytes that already arrived fails.
async fn read(stream: &TcpStream) -> (usize, Vec<u8>) {
    let (n, b) = hoop::time::timeout(
        Duration::from_secs(5),
        stream.read(Vec::with_capacity(4096)),
    )
    .await
    .expect("a receive waited for data that had arrived");
    (n.unwrap(), b)
}

/// Reads until `want` bytes came; the receives end short on the way.
async fn read_all(stream: &TcpStream, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < want {
        let (n, b) = read(stream).await;
        assert!(n > 0, "end of stream after {got:?}");
        got.extend_from_slice(&b[..n]);
    }
    got
}

/// Runs `peer` on a thread 20 ms from now, while the caller's receive waits.
fn later(
    mut peer: std::net::TcpStream,
    f: impl FnOnce(&mut std::net::TcpStream) + Send + 'static,
) -> std::thread::JoinHandle<std::net::TcpStream> {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        f(&mut peer);
        peer
    })
}

/// After a short receive, what arrives later is still seen, and so is what a short receive
/// leaves behind without a new event: bytes behind TCP urgent data (a receive stops at the
/// urgent mark) and the end of the stream when the last bytes and the FIN came together (a
/// receive returns the bytes, the next one the end). A receive that skipped its syscall after a
/// short one, as tokio does on epoll, would wait forever in the last two cases.
#[hoop::test]
async fn after_a_short_receive_data_urgent_data_and_eof_are_all_seen() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    // Data, a round at a time, each receive made before its bytes come; then the end alone.
    let (mut peer, stream) = std_peer_and_hoop_stream();
    for round in 0..3u8 {
        let writer = later(peer, move |p| p.write_all(&[round; 10]).unwrap());
        assert_eq!(read_all(&stream, 10).await, [round; 10]);
        peer = writer.join().unwrap();
    }
    let closer = later(peer, |p| p.shutdown(std::net::Shutdown::Write).unwrap());
    assert_eq!(read(&stream).await.0, 0, "the end of the stream");
    drop(closer.join().unwrap());

    // Urgent data between two runs of ordinary bytes.
    let (peer, stream) = std_peer_and_hoop_stream();
    let sender = later(peer, |p| {
        p.write_all(b"hello").unwrap();
        // SAFETY: sends one byte from a live local on a socket `p` keeps open.
        let sent = unsafe { libc::send(p.as_raw_fd(), b"X".as_ptr().cast(), 1, libc::MSG_OOB) };
        assert_eq!(sent, 1);
        p.write_all(b"world").unwrap();
    });
    let got = read_all(&stream, 10).await;
    assert_eq!(got, b"helloworld", "the urgent byte is out of band");
    drop(sender.join().unwrap());

    // The last bytes and the end of the stream together, after a short receive.
    let (mut peer, stream) = std_peer_and_hoop_stream();
    peer.write_all(b"first").unwrap();
    assert_eq!(read_all(&stream, 5).await, b"first");
    let closer = later(peer, |p| {
        p.write_all(b"last").unwrap();
        p.shutdown(std::net::Shutdown::Write).unwrap();
    });
    assert_eq!(read_all(&stream, 4).await, b"last");
    assert_eq!(read(&stream).await.0, 0, "the end of the stream");
    drop(closer.join().unwrap());
}
