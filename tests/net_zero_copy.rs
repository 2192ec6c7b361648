//! The zero-copy network paths on both drivers: receiving into provided buffer rings (including
//! ring exhaustion), zero-copy sends (the buffer is held until the kernel's notification), and
//! `send_file` and `splice_file`.

#[path = "common/mod.rs"]
mod common;

use futures_util::StreamExt;
use hoop::buf::BufRing;
use hoop::net::{TcpListener, TcpStream, UdpSocket, UnixStream};
use hoop::IoBuf;
use std::sync::Arc;
use std::time::Duration;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

async fn connected_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = futures_util::join!(TcpStream::connect(addr), listener.accept());
    (client.unwrap(), accepted.unwrap().0)
}

fn on_uring() -> bool {
    hoop::runtime_info().unwrap().driver == hoop::DriverKind::IoUring
}

#[hoop::test]
async fn recv_stream_receives_every_byte() {
    let (client, server) = connected_pair().await;
    let data = pattern(8 << 20, 1);
    let sent = data.clone();
    let writer = hoop::spawn(async move {
        for chunk in sent.chunks(100_000) {
            client.write_all(chunk.to_vec()).await.0.unwrap();
        }
    });
    let ring = BufRing::new(16, 16 * 1024).unwrap();
    // Registered on io_uring with provided-buffer rings (5.19); else buffers in user space.
    let registers = on_uring() && common::kernel_at_least((5, 19));
    assert_eq!(ring.is_registered(), registers, "{ring:?}");
    let mut stream = server.recv_stream(&ring);
    let mut got = Vec::with_capacity(data.len());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(!chunk.is_empty() && chunk.len() <= 16 * 1024);
        got.extend_from_slice(&chunk);
        if got.len() == data.len() {
            break;
        }
    }
    writer.await.unwrap();
    assert!(got == data, "bytes differ");
    assert_eq!(ring.available(), 16, "every buffer went back");
}

/// A received chunk is sent on as is (an echo or a proxy without a copy): the send owns the ring
/// buffer, which goes back to the ring when the send is done, never while it is being sent.
#[hoop::test]
async fn received_chunks_are_sent_back_without_a_copy() {
    let (client, server) = connected_pair().await;
    let data = pattern(1 << 20, 7);
    let sent = data.clone();
    let ring = BufRing::new(4, 4096).unwrap();
    let echo = hoop::spawn({
        let ring = ring.clone();
        async move {
            let mut chunks = server.recv_stream(&ring);
            let mut echoed = 0;
            while echoed < 1 << 20 {
                let chunk = chunks.next().await.unwrap().unwrap();
                echoed += chunk.len();
                let (r, chunk) = server.write_all(chunk).await;
                r.unwrap();
                drop(chunk);
            }
        }
    });
    let client = std::rc::Rc::new(client);
    let reader = hoop::spawn(async move {
        let writer = hoop::spawn({
            let client = client.clone();
            async move {
                for part in sent.chunks(10_000) {
                    client.write_all(part.to_vec()).await.0.unwrap();
                }
            }
        });
        let (r, back) = client.read_exact(vec![0u8; 1 << 20]).await;
        r.unwrap();
        writer.await.unwrap();
        back
    });
    let back = reader.await.unwrap();
    echo.await.unwrap();
    assert!(back == data, "echoed bytes differ");
    assert_eq!(ring.available(), 4, "every buffer went back");
}

/// The application holds every buffer: the kernel ends the receive with ENOBUFS, the stream
/// waits until a buffer comes back, and goes on — nothing lost, nothing duplicated.
#[hoop::test]
async fn ring_exhaustion_recovers_with_nothing_lost() {
    let (client, server) = connected_pair().await;
    let data = pattern(2 << 20, 7);
    let sent = data.clone();
    let writer = hoop::spawn(async move {
        client.write_all(sent).await.0.unwrap();
        client
    });
    let ring = BufRing::new(4, 4096).unwrap();
    let mut stream = server.recv_stream(&ring);
    let mut got = Vec::new();
    let mut held = Vec::new();
    while got.len()
        + held
            .iter()
            .map(|c: &hoop::buf::RingBuf| c.len())
            .sum::<usize>()
        < data.len()
    {
        let chunk = stream.next().await.unwrap().unwrap();
        held.push(chunk);
        if held.len() == 4 {
            // All four buffers are ours now: the receive runs dry and must wait.
            assert_eq!(ring.available(), 0);
            let waited = hoop::time::timeout(Duration::from_millis(5), stream.next()).await;
            assert!(waited.is_err(), "received with every buffer held");
            for c in held.drain(..) {
                got.extend_from_slice(&c);
            }
        }
    }
    for c in held.drain(..) {
        got.extend_from_slice(&c);
    }
    let client = writer.await.unwrap();
    assert!(got == data, "bytes lost or duplicated across exhaustion");
    assert!(stream.times_exhausted() > 0, "the ring never ran dry");
    // The peer closes: the stream ends.
    drop(client);
    assert!(stream.next().await.is_none());
}

#[hoop::test]
async fn dropping_a_recv_stream_under_traffic_returns_its_buffers() {
    let (client, server) = connected_pair().await;
    let ring = BufRing::new(8, 1024).unwrap();
    let writer = hoop::spawn(async move {
        for _ in 0..200 {
            if client.write_all(vec![7u8; 10_000]).await.0.is_err() {
                break;
            }
        }
    });
    let mut stream = server.recv_stream(&ring);
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(stream);
    drop(first);
    // Completions that raced with the cancel give their buffers back when they arrive.
    for _ in 0..100 {
        if ring.available() == 8 {
            break;
        }
        hoop::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(ring.available(), 8);
    drop(server);
    let _ = writer.await;
    // A new stream on the same ring still works.
    let (c2, s2) = connected_pair().await;
    c2.write_all(b"again".to_vec()).await.0.unwrap();
    let mut st = s2.recv_stream(&ring);
    assert_eq!(&st.next().await.unwrap().unwrap()[..], b"again");
}

#[hoop::test]
async fn unix_recv_stream() {
    let (a, b) = UnixStream::pair().unwrap();
    let ring = BufRing::new(2, 64).unwrap();
    a.write_all(pattern(1000, 3)).await.0.unwrap();
    drop(a);
    let mut got = Vec::new();
    let mut st = b.recv_stream(&ring);
    while let Some(c) = st.next().await {
        got.extend_from_slice(&c.unwrap());
    }
    assert_eq!(got, pattern(1000, 3));
}

#[test]
fn buf_ring_rejects_bad_sizes() {
    hoop::block_on(async {
        assert!(BufRing::new(3, 4096).is_err());
        assert!(BufRing::new(0, 4096).is_err());
        assert!(BufRing::new(4, 0).is_err());
    });
    assert!(BufRing::new(4, 4096).is_err(), "outside a runtime");
}

#[hoop::test]
async fn send_zc_delivers_every_byte() {
    let (client, server) = connected_pair().await;
    let data = pattern(4 << 20, 9);
    let reader = hoop::spawn(async move {
        let (r, buf) = server.read_exact(vec![0u8; 4 << 20]).await;
        r.unwrap();
        buf
    });
    let mut off = 0;
    let mut buf = data.clone();
    while off < data.len() {
        let (n, b) = client.send_zc(buf.slice(off..)).await;
        off += n.unwrap();
        buf = b.into_inner();
    }
    assert!(reader.await.unwrap() == data);
}

/// A header and a payload in one vectored zero-copy send, looped until all of it is out (a
/// send may be short), on TCP and on a Unix stream: the peer gets every byte once, in order.
/// Unix sockets have no zero-copy path, so there the ring's refusal must fall back to a copy.
#[hoop::test]
async fn send_vectored_zc_sends_header_and_payload_in_order() {
    let header = pattern(37, 3);
    let payload = pattern(3 << 20, 4);
    let mut expected = header.clone();
    expected.extend_from_slice(&payload);

    let (client, server) = connected_pair().await;
    let want = expected.len();
    let reader = hoop::spawn(async move { server.read_exact(vec![0u8; want]).await });
    let (h, p) = send_all_vectored(header.clone(), payload.clone(), |bufs| {
        client.send_vectored_zc(bufs)
    })
    .await;
    assert!(
        h == header && p == payload,
        "the buffers come back unchanged"
    );
    let (res, got) = reader.await.unwrap();
    res.unwrap();
    assert!(got == expected, "TCP: bytes differ");

    let (a, b) = UnixStream::pair().unwrap();
    let reader = hoop::spawn(async move { b.read_exact(vec![0u8; want]).await });
    send_all_vectored(header, payload, |bufs| a.send_vectored_zc(bufs)).await;
    let (res, got) = reader.await.unwrap();
    res.unwrap();
    assert!(got == expected, "Unix: bytes differ");

    // A Unix socket has no zero-copy path: the ring refuses it (EOPNOTSUPP) and the send
    // falls back to a plain one, as on epoll.
    let (a, b) = UnixStream::pair().unwrap();
    let (n, _) = a.send_zc(b"unix".to_vec()).await;
    assert_eq!(n.unwrap(), 4);
    let (res, got) = b.read_exact(vec![0u8; 4]).await;
    res.unwrap();
    assert_eq!(got, b"unix");
}

/// Sends `header` then `payload` through `send`, resending what a short send left.
async fn send_all_vectored<F, Fut>(header: Vec<u8>, payload: Vec<u8>, send: F) -> (Vec<u8>, Vec<u8>)
where
    F: Fn(Vec<hoop::buf::Slice<Vec<u8>>>) -> Fut,
    Fut: std::future::Future<Output = hoop::BufResult<usize, Vec<hoop::buf::Slice<Vec<u8>>>>>,
{
    let (mut h, mut p) = (header, payload);
    let (mut hoff, mut poff) = (0, 0);
    while poff < p.len() {
        let (res, mut bufs) = send(vec![h.slice(hoff..), p.slice(poff..)]).await;
        p = bufs.pop().unwrap().into_inner();
        h = bufs.pop().unwrap().into_inner();
        let mut n = res.unwrap();
        let from_header = n.min(h.len() - hoff);
        hoff += from_header;
        n -= from_header;
        poff += n;
    }
    (h, p)
}

/// A registered buffer (`FixedBuf`) sent zero-copy names its registration, and the bytes arrive.
#[hoop::test]
async fn send_zc_from_a_registered_buffer() {
    let (client, server) = connected_pair().await;
    let pool = hoop::buf::FixedBufPool::new(2, 64 << 10).unwrap();
    let mut buf = pool.try_get().unwrap();
    // Registered on io_uring (sparse tables: 5.19); a plain buffer on epoll.
    let registered = on_uring() && common::kernel_at_least((5, 19));
    assert_eq!(buf.fixed_index().is_some(), registered);
    let data = pattern(64 << 10, 6);
    buf.extend_from_slice(&data);
    let reader = hoop::spawn(async move { server.read_exact(vec![0u8; 64 << 10]).await });
    let mut off = 0;
    while off < data.len() {
        let (n, b) = client.send_zc(buf.slice(off..)).await;
        off += n.unwrap();
        buf = b.into_inner();
    }
    let (res, got) = reader.await.unwrap();
    res.unwrap();
    assert!(got == data, "bytes differ");
}

/// A zero-copy send with a usage report says whether the kernel copied: on loopback it always
/// does, so `Some(true)` where the kernel reports (6.2+ on io_uring) and on the plain paths
/// (epoll, io_uring before 6.0), `None` on io_uring 6.0 and 6.1. The notification's result then has its sign bit set,
/// which must not be taken for an errno.
#[hoop::test]
async fn send_zc_reports_whether_the_kernel_copied() {
    let (client, server) = connected_pair().await;
    let reader = hoop::spawn(async move { server.read_exact(vec![0u8; 3 * 4096]).await });
    // A plain send before 6.0 (no SEND_ZC); a zero-copy send that cannot tell on 6.0 and 6.1.
    let silent = on_uring() && common::kernel_at_least((6, 0)) && !common::kernel_at_least((6, 2));
    let expected = if silent { None } else { Some(true) };
    for _ in 0..3 {
        let (sent, _) = client.send_zc_reported(vec![1u8; 4096]).await;
        let sent = sent.unwrap();
        assert_eq!(sent.bytes, 4096);
        assert_eq!(sent.copied, expected);
    }
    let (res, _) = reader.await.unwrap();
    res.unwrap();
}

/// A zero-copy send dropped while in flight: its buffer stays with the runtime until the
/// kernel's final completion (the notification), then is freed.
#[hoop::test]
async fn send_zc_keeps_the_buffer_until_the_notification() {
    let (client, server) = connected_pair().await;
    let owner = Arc::new(());
    let mut buf = common::Tracked::new(32 << 20, &owner);
    buf.data.resize(32 << 20, 5);
    // The peer does not read: the send cannot finish, so it is in flight when dropped.
    let fut = client.send_zc(buf);
    let dropped = hoop::time::timeout(Duration::from_millis(20), fut).await;
    if !on_uring() || !common::kernel_at_least((6, 0)) {
        // epoll, and io_uring without SEND_ZC (before 6.0), send synchronously (a short send
        // here): the kernel never holds the buffer.
        assert!(dropped.is_ok());
        drop(dropped);
        assert_eq!(Arc::strong_count(&owner), 1);
        return;
    }
    assert!(dropped.is_err(), "32 MiB cannot fit in an unread socket");
    // The bytes already sent still sit, unread, in the peer's receive queue, referencing the
    // buffer's pages: no notification yet, so the runtime must still hold the buffer.
    hoop::time::sleep(Duration::from_millis(10)).await;
    assert!(
        Arc::strong_count(&owner) > 1,
        "the buffer was released before the kernel's notification"
    );
    // Closing the peer frees those pages: the notification comes, the buffer goes.
    drop(server);
    for _ in 0..200 {
        if Arc::strong_count(&owner) == 1 {
            break;
        }
        hoop::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        Arc::strong_count(&owner),
        1,
        "freed after the final completion"
    );
}

#[hoop::test]
async fn udp_send_to_zc_round_trip() {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (n, _) = a
        .send_to_zc(pattern(1200, 4), b.local_addr().unwrap())
        .await;
    assert_eq!(n.unwrap(), 1200);
    let (res, buf) = b.recv_from(Vec::with_capacity(2048)).await;
    let (n, from) = res.unwrap();
    assert_eq!(from, a.local_addr().unwrap());
    assert_eq!(&buf[..n], &pattern(1200, 4)[..]);
    a.connect(b.local_addr().unwrap()).await.unwrap();
    let (n, _) = a.send_zc(b"connected".to_vec()).await;
    assert_eq!(n.unwrap(), 9);
    let (n, buf) = b.recv(Vec::with_capacity(64)).await;
    assert_eq!(&buf[..n.unwrap()], b"connected");
}

/// Everything `stream` receives until the peer closes.
async fn read_to_end(stream: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    loop {
        let (n, buf) = stream.read(Vec::with_capacity(1 << 16)).await;
        if n.unwrap() == 0 {
            return got;
        }
        got.extend_from_slice(&buf);
    }
}

#[hoop::test]
async fn send_file_sends_a_file_range_into_a_socket() {
    let driver = hoop::runtime_info().unwrap().driver.to_string();
    let path = std::env::temp_dir().join(format!("hoop-sendfile-{driver}-{}", std::process::id()));
    let data = pattern((3 << 20) + 123, 11);
    std::fs::write(&path, &data).unwrap();
    let file = hoop::fs::File::open(&path).await.unwrap();
    let (client, server) = connected_pair().await;
    let expected = data[1000..].to_vec();
    let reader = hoop::spawn(read_to_end(server));
    // Asking for more than the file holds sends what there is.
    let sent = client
        .send_file(&file, 1000, data.len() as u64)
        .await
        .unwrap();
    assert_eq!(sent, (data.len() - 1000) as u64);
    let (empty, _) = (client.send_file(&file, data.len() as u64, 10).await, ());
    assert_eq!(empty.unwrap(), 0, "at the end of the file");
    drop(client);
    assert!(reader.await.unwrap() == expected);
    std::fs::remove_file(&path).unwrap();
}

/// A file not in the page cache: on epoll the inline read is refused (`EAGAIN`) and the
/// blocking pool reads each chunk; on io_uring the ring waits for the disk. Same bytes either way.
#[hoop::test]
async fn send_file_of_an_uncached_file() {
    use std::os::fd::AsRawFd;
    let driver = hoop::runtime_info().unwrap().driver;
    let path = std::env::temp_dir().join(format!(
        "hoop-sendfile-cold-{driver}-{}",
        std::process::id()
    ));
    let data = pattern((3 << 20) + 99, 3);
    std::fs::write(&path, &data).unwrap();
    let std_file = std::fs::File::open(&path).unwrap();
    // SAFETY: statfs fills a local struct; fdatasync and posix_fadvise take only an fd we own.
    let (on_tmpfs, evicted) = unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        let on_tmpfs = libc::statfs(c"/tmp".as_ptr(), &mut st) == 0
            && st.f_type == libc::TMPFS_MAGIC as libc::__fsword_t
            && path.starts_with("/tmp");
        let evicted = libc::fdatasync(std_file.as_raw_fd()) == 0
            && libc::posix_fadvise(std_file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) == 0;
        (on_tmpfs, evicted)
    };
    let file = hoop::fs::File::open(&path).await.unwrap();
    let (client, server) = connected_pair().await;
    let reader = hoop::spawn(read_to_end(server));
    let pooled = hoop::metrics().unwrap().ops_blocking;
    let sent = client.send_file(&file, 0, data.len() as u64).await.unwrap();
    assert_eq!(sent, data.len() as u64);
    if driver == hoop::DriverKind::Epoll && evicted && !on_tmpfs {
        assert!(
            hoop::metrics().unwrap().ops_blocking > pooled,
            "no chunk went to the blocking pool"
        );
    }
    drop(client);
    assert!(reader.await.unwrap() == data);
    std::fs::remove_file(&path).unwrap();
}

#[hoop::test]
async fn splice_file_moves_a_file_range_through_a_pipe() {
    let driver = hoop::runtime_info().unwrap().driver.to_string();
    let path = std::env::temp_dir().join(format!("hoop-splice-{driver}-{}", std::process::id()));
    // More than one 1 MiB splice chunk, not a multiple of it.
    let data = pattern((2 << 20) + 4321, 5);
    std::fs::write(&path, &data).unwrap();
    let file = hoop::fs::File::open(&path).await.unwrap();
    let (client, server) = connected_pair().await;
    let expected = data[77..].to_vec();
    let reader = hoop::spawn(read_to_end(server));
    let sent = hoop::io::splice_file(file.shared_fd(), 77, data.len() as u64, client.shared_fd())
        .await
        .unwrap();
    assert_eq!(sent, (data.len() - 77) as u64, "up to the end of the file");
    drop(client);
    assert!(reader.await.unwrap() == expected);
    std::fs::remove_file(&path).unwrap();
}

#[hoop::test]
async fn send_file_to_a_reset_peer_is_an_error() {
    let driver = hoop::runtime_info().unwrap().driver.to_string();
    let path =
        std::env::temp_dir().join(format!("hoop-sendfile-rst-{driver}-{}", std::process::id()));
    std::fs::write(&path, pattern(8 << 20, 2)).unwrap();
    let file = hoop::fs::File::open(&path).await.unwrap();
    let (client, server) = connected_pair().await;
    server.socket().set_linger(Some(Duration::ZERO)).unwrap();
    drop(server);
    let err = client.send_file(&file, 0, 8 << 20).await.unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{err}"
    );
    std::fs::remove_file(&path).unwrap();
}

/// `Splice` on hoop's (non-blocking) pipes: what cannot progress gives `WouldBlock` at once on
/// both drivers — an empty pipe into a socket (it used to wait on the writable socket, which
/// spun), a file into a full pipe — a pipe holding data waits for a full socket, and moves the
/// data once the socket has room.
#[hoop::test]
async fn splice_op_on_a_pipe_that_cannot_progress_would_block() {
    use hoop::op::{splice::Splice, Op};
    use std::os::fd::AsRawFd;
    let driver = hoop::runtime_info().unwrap().driver.to_string();
    let path = std::env::temp_dir().join(format!("hoop-splice-op-{driver}-{}", std::process::id()));
    let data = pattern(64 << 10, 9);
    std::fs::write(&path, &data).unwrap();
    let file = hoop::fs::File::open(&path).await.unwrap();
    let (client, server) = connected_pair().await;
    let (r, w) = hoop::io::pipe().unwrap();
    // One page of room makes "full" quick to reach.
    // SAFETY: fcntl on a pipe fd this test owns; no memory arguments.
    let size = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert!(size >= 4096, "{}", std::io::Error::last_os_error());
    let size = size as usize;

    let empty = hoop::time::timeout(
        Duration::from_secs(5),
        Op::new(Splice::pipe_to_socket(
            r.shared_fd(),
            client.shared_fd(),
            4096,
        )),
    )
    .await
    .expect("an empty pipe must not wait on the socket");
    assert_eq!(empty.unwrap_err().kind(), std::io::ErrorKind::WouldBlock);

    let filled = Op::new(Splice::file_to_pipe(
        file.shared_fd(),
        0,
        w.shared_fd(),
        size as u32,
    ))
    .await
    .unwrap();
    assert_eq!(filled, size);
    let full = hoop::time::timeout(
        Duration::from_secs(5),
        Op::new(Splice::file_to_pipe(
            file.shared_fd(),
            0,
            w.shared_fd(),
            4096,
        )),
    )
    .await
    .expect("a full non-blocking pipe gives WouldBlock");
    assert_eq!(full.unwrap_err().kind(), std::io::ErrorKind::WouldBlock);

    // The pipe has data and the socket is full: this one waits for the socket.
    let mut filler = 0;
    while let Ok(n) = client.socket().send(&[3u8; 64 * 1024]) {
        filler += n;
    }
    let to_socket = || {
        Op::new(Splice::pipe_to_socket(
            r.shared_fd(),
            client.shared_fd(),
            1 << 20,
        ))
    };
    let waited = hoop::time::timeout(Duration::from_millis(100), to_socket()).await;
    assert!(waited.is_err(), "a full socket is waited for: {waited:?}");
    let reader = hoop::spawn(read_to_end(server));
    let moved = to_socket().await.unwrap();
    assert_eq!(moved, size);
    drop(client);
    let received = reader.await.unwrap();
    assert_eq!(received.len(), filler + size);
    assert!(received[filler..] == data[..size]);
    std::fs::remove_file(&path).unwrap();
}

/// Shrinks a connection's buffers to 16 KiB a side, so that a send fills it quickly.
fn small_buffers(sender: &TcpStream, receiver: &TcpStream) {
    socket2::SockRef::from(sender)
        .set_send_buffer_size(16 * 1024)
        .unwrap();
    socket2::SockRef::from(receiver)
        .set_recv_buffer_size(16 * 1024)
        .unwrap();
}

#[hoop::test]
async fn send_file_cached_sends_the_head_then_the_range() {
    let driver = hoop::runtime_info().unwrap().driver.to_string();
    let path = std::env::temp_dir().join(format!("hoop-sfcached-{driver}-{}", std::process::id()));
    // More than the socket buffers hold: the sends wait for the reader on the way.
    let data = pattern((3 << 20) + 321, 17);
    std::fs::write(&path, &data).unwrap();
    let file = hoop::fs::File::open(&path).await.unwrap();
    let (client, server) = connected_pair().await;
    let head = b"HEAD 0123456789\r\n".repeat(100);
    let mut expected = head.clone();
    expected.extend_from_slice(&data[1000..]);
    let reader = hoop::spawn(read_to_end(server));
    // Asking for more than the file holds sends what there is.
    let sent = client
        .send_file_cached(&head, &file, 1000, data.len() as u64)
        .await
        .unwrap();
    assert_eq!(sent, (data.len() - 1000) as u64);
    drop(client);
    assert!(reader.await.unwrap() == expected);
    std::fs::remove_file(&path).unwrap();
}

/// `sendfile` takes its blocking mode from the socket: on a socket someone made blocking, it
/// would sleep on the worker until the reader (a task of the same worker) read, which it never
/// could. The call must take the way that waits on the driver instead: without the check the
/// test hangs (seen in the 6.1 guest of `.ci/kernel-6.1`).
#[hoop::test]
async fn send_file_cached_on_a_blocking_socket_never_blocks_the_worker() {
    use std::os::fd::AsRawFd;
    let driver = hoop::runtime_info().unwrap().driver.to_string();
    let path = std::env::temp_dir().join(format!("hoop-sfblock-{driver}-{}", std::process::id()));
    let data = pattern(4 << 20, 23);
    std::fs::write(&path, &data).unwrap();
    let file = hoop::fs::File::open(&path).await.unwrap();
    let (client, server) = connected_pair().await;
    // Small buffers, so that the file is many times what the connection holds on any kernel.
    small_buffers(&client, &server);
    let fd = client.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on an fd the stream keeps open.
    unsafe {
        libc::fcntl(
            fd,
            libc::F_SETFL,
            libc::fcntl(fd, libc::F_GETFL) & !libc::O_NONBLOCK,
        )
    };
    // A worker asleep in `sendfile` cannot run a timer: a thread ends the test instead, unless
    // the test ended first (passed or failed: the guard is dropped either way).
    struct Done(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Done {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Release);
        }
    }
    let done = Done(Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let watched = done.0.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        if !watched.load(std::sync::atomic::Ordering::Acquire) {
            eprintln!("send_file_cached slept on the worker with a blocking socket");
            std::process::abort();
        }
    });
    let reader = hoop::spawn(read_to_end(server));
    let sent = client
        .send_file_cached(b"h", &file, 0, data.len() as u64)
        .await
        .unwrap();
    drop(done);
    assert_eq!(sent, data.len() as u64);
    drop(client);
    let got = reader.await.unwrap();
    assert!(got[0] == b'h' && got[1..] == data[..]);
    std::fs::remove_file(&path).unwrap();
}

/// A peer that is gone is an error, and never a `SIGPIPE` (which `sendfile` would raise: it has
/// no `MSG_NOSIGNAL`), even in a process that does not ignore the signal. Run in a child process
/// with the signal's default action, which would kill it.
#[test]
fn send_file_cached_to_a_gone_peer_raises_no_sigpipe() {
    // The test's name as libtest knows it: this file is also a module of other test binaries.
    let child = "send_file_cached_child_with_default_sigpipe";
    let child = match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::{child}"),
        None => child.to_string(),
    };
    common::run_child(&child, &[("HOOP_SIGPIPE_CHILD", "1")]);
}

#[test]
fn send_file_cached_child_with_default_sigpipe() {
    if std::env::var_os("HOOP_SIGPIPE_CHILD").is_none() {
        return; // only as the child of the test above
    }
    // SAFETY: restoring the default action of SIGPIPE in this single-test child process.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let path = std::env::temp_dir().join(format!("hoop-sfpipe-{}", std::process::id()));
    std::fs::write(&path, pattern(1 << 20, 29)).unwrap();
    for driver in common::drivers() {
        let rt = hoop::Runtime::builder()
            .workers(1)
            .driver(driver)
            .build()
            .unwrap();
        let path = path.clone();
        rt.block_on(async move {
            let file = hoop::fs::File::open(&path).await.unwrap();
            // A Unix stream whose peer is closed: the first `sendfile` fails with EPIPE (the
            // empty head sends nothing before it).
            let (ours, peer) = UnixStream::pair().unwrap();
            drop(peer);
            let e = ours
                .send_file_cached(b"", &file, 0, 1 << 20)
                .await
                .expect_err("a send to a closed peer fails");
            assert_eq!(e.raw_os_error(), Some(libc::EPIPE), "{e}");
        });
    }
    std::fs::remove_file(&path).unwrap();
}

/// A call that ends short (the file ended, before or after some of its bytes) leaves nothing
/// held back for the next send: the peer gets all of it at once, on a connection that stays
/// open. A socket its owner corked stays corked.
#[hoop::test]
async fn send_file_cached_pushes_everything_when_the_file_ends() {
    use std::os::fd::AsRawFd;
    let driver = hoop::runtime_info().unwrap().driver.to_string();
    let path = std::env::temp_dir().join(format!("hoop-sfend-{driver}-{}", std::process::id()));
    std::fs::write(&path, b"0123").unwrap();
    let file = hoop::fs::File::open(&path).await.unwrap();
    let (client, server) = connected_pair().await;
    client.set_nodelay(true).unwrap();
    // (offset, len asked, bytes of the file sent)
    for (offset, len, sent) in [(4, 10, 0), (0, 0, 0), (0, 10, 4), (1, 100, 3)] {
        let n = client
            .send_file_cached(b"head", &file, offset, len)
            .await
            .unwrap();
        assert_eq!(n, sent);
        let want = 4 + sent as usize;
        // Less than the 200 ms a held-back segment waits for.
        let (n, got) = hoop::time::timeout(
            Duration::from_millis(150),
            server.read_exact(Vec::with_capacity(want)),
        )
        .await
        .unwrap_or_else(|_| panic!("held back: offset {offset}, len {len}"));
        n.unwrap();
        let mut expected = b"head".to_vec();
        expected.extend_from_slice(&b"0123"[offset as usize..][..sent as usize]);
        assert_eq!(got, expected);
    }
    let on: libc::c_int = 1;
    // SAFETY: setsockopt/getsockopt with a c_int of the option's length on an open socket.
    let corked = unsafe {
        libc::setsockopt(
            client.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&on as *const libc::c_int).cast(),
            4,
        );
        client.send_file_cached(b"h", &file, 4, 10).await.unwrap();
        let (mut now, mut size): (libc::c_int, libc::socklen_t) = (0, 4);
        libc::getsockopt(
            client.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&mut now as *mut libc::c_int).cast(),
            &mut size,
        );
        now
    };
    assert_eq!(corked, 1, "the owner's TCP_CORK was cleared");
    std::fs::remove_file(&path).unwrap();
}

/// A head larger than the socket takes: part of it goes inline, the rest (once the socket is
/// full) the copying way, then the file; the peer reads it all in order.
#[hoop::test]
async fn send_file_cached_with_a_head_larger_than_the_socket() {
    let driver = hoop::runtime_info().unwrap().driver.to_string();
    let path = std::env::temp_dir().join(format!("hoop-sfhead-{driver}-{}", std::process::id()));
    let data = pattern(100_000, 41);
    std::fs::write(&path, &data).unwrap();
    let file = hoop::fs::File::open(&path).await.unwrap();
    let (client, server) = connected_pair().await;
    small_buffers(&client, &server);
    let head = pattern(1 << 20, 43);
    let mut expected = head.clone();
    expected.extend_from_slice(&data);
    let reader = hoop::spawn(read_to_end(server));
    let sent = client
        .send_file_cached(&head, &file, 0, data.len() as u64)
        .await
        .unwrap();
    assert_eq!(sent, data.len() as u64);
    drop(client);
    assert!(reader.await.unwrap() == expected);
    std::fs::remove_file(&path).unwrap();
}

/// A call that completes at once (the socket has room) still spends the task's budget: a task
/// sending file after file lets the other tasks of its worker run meanwhile. (TCP on loopback:
/// the few hundred bytes fit the peer's window, so no send ever has to wait, which would yield.)
#[hoop::test]
async fn send_file_cached_in_a_loop_lets_other_tasks_run() {
    let driver = hoop::runtime_info().unwrap().driver.to_string();
    let path = std::env::temp_dir().join(format!("hoop-sfcoop-{driver}-{}", std::process::id()));
    std::fs::write(&path, b"x").unwrap();
    let file = hoop::fs::File::open(&path).await.unwrap();
    let (client, server) = connected_pair().await;
    let ran = std::rc::Rc::new(std::cell::Cell::new(false));
    let flag = ran.clone();
    hoop::spawn(async move { flag.set(true) }).detach();
    let mut ran_during = false;
    for _ in 0..300 {
        assert_eq!(client.send_file_cached(b"h", &file, 0, 1).await.unwrap(), 1);
        ran_during |= ran.get();
    }
    assert!(ran_during, "the other task did not run while the loop sent");
    drop(client);
    assert_eq!(read_to_end(server).await, b"hx".repeat(300));
    std::fs::remove_file(&path).unwrap();
}
