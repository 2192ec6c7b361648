//! `hoop::io::Compat` through the `futures::io` traits, on both drivers: partial reads and
//! writes, buffered reads, flush and shutdown, files with seek, errors, and a cancelled read whose
//! data must not be lost.

use futures_util::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use hoop::io::Compat;
use hoop::net::{TcpListener, TcpStream};
use std::io::SeekFrom;
use std::time::Duration;

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = hoop::spawn(async move { TcpStream::connect(addr).await.unwrap() });
    let (server, _) = listener.accept().await.unwrap();
    (client.await.unwrap(), server)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 253) as u8).collect()
}

#[hoop::test]
async fn bulk_transfer_with_odd_reads_and_writes() {
    let (a, b) = pair().await;
    let (mut a, mut b) = (Compat::new(a), Compat::with_capacity(1000, 777, b));
    let data = pattern(3 << 20);
    let sent = data.clone();
    let writer = hoop::spawn(async move {
        // Writes of every size from 1 to 9000 bytes, never a whole buffer's worth.
        let mut off = 0;
        let mut step = 1;
        while off < sent.len() {
            let end = (off + step).min(sent.len());
            b.write_all(&sent[off..end]).await.unwrap();
            off = end;
            step = step % 9000 + 1;
        }
        b.close().await.unwrap();
    });
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 4099];
    loop {
        let n = a.read(&mut chunk[..(got.len() % 4099) + 1]).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
    }
    writer.await.unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes differ");
}

#[hoop::test]
async fn lines_through_async_buf_read() {
    let (a, b) = pair().await;
    let (a, mut b) = (Compat::with_capacity(7, 64, a), Compat::new(b));
    let text: String = (0..500).map(|i| format!("line number {i}\n")).collect();
    let sent = text.clone();
    let writer = hoop::spawn(async move {
        b.write_all(sent.as_bytes()).await.unwrap();
        b.close().await.unwrap();
    });
    let mut lines = a.lines();
    let mut n = 0;
    while let Some(line) = futures_util::StreamExt::next(&mut lines).await {
        assert_eq!(line.unwrap(), format!("line number {n}"));
        n += 1;
    }
    assert_eq!(n, 500);
    writer.await.unwrap();
}

#[hoop::test]
async fn cancelled_read_keeps_its_data() {
    let (a, b) = pair().await;
    let mut a = Compat::new(a);
    // A read that times out: its future is dropped while the kernel still holds the read.
    let mut buf = [0u8; 64];
    let timed_out = hoop::time::timeout(Duration::from_millis(20), a.read(&mut buf)).await;
    assert!(timed_out.is_err());
    // The peer's bytes arrive while nobody polls: they land in the Compat's pending read.
    b.write_all(b"kept".to_vec()).await.0.unwrap();
    hoop::time::sleep(Duration::from_millis(20)).await;
    let n = a.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"kept");

    // The same with select-style cancellation: each read is polled once and dropped, the byte
    // arrives after; whatever order the polls see, every byte comes out once, in order.
    let mut got = Vec::new();
    for i in 0..20u8 {
        let mut one = [0u8; 1];
        let fut = a.read(&mut one);
        futures_util::pin_mut!(fut);
        if let std::task::Poll::Ready(n) = futures_util::poll!(fut.as_mut()) {
            assert_eq!(n.unwrap(), 1);
            got.push(one[0]);
        }
        b.write_all(vec![i]).await.0.unwrap();
        hoop::time::sleep(Duration::from_millis(2)).await;
    }
    let mut rest = vec![0u8; 20 - got.len()];
    a.read_exact(&mut rest).await.unwrap();
    got.extend_from_slice(&rest);
    assert_eq!(got, (0..20).collect::<Vec<u8>>());
}

#[hoop::test]
async fn flush_then_shutdown_delivers_everything_then_eof() {
    let (a, b) = pair().await;
    let mut a = Compat::new(a);
    let data = pattern(1 << 20);
    a.write_all(&data).await.unwrap();
    a.flush().await.unwrap();
    a.close().await.unwrap();
    let mut got = Vec::new();
    loop {
        let (n, buf) = b.read(Vec::with_capacity(65536)).await;
        let n = n.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got == data);
}

#[hoop::test]
async fn write_to_a_closed_peer_reports_the_error() {
    let (a, b) = pair().await;
    let mut a = Compat::new(a);
    drop(b);
    let chunk = vec![7u8; 64 * 1024];
    let mut err = None;
    for _ in 0..200 {
        if let Err(e) = a.write_all(&chunk).await {
            err = Some(e);
            break;
        }
        if let Err(e) = a.flush().await {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("writes to a closed peer fail");
    assert!(
        matches!(err.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)),
        "{err:?}"
    );
}

#[hoop::test]
async fn file_read_write_seek() {
    let driver = hoop::runtime_info().unwrap().driver;
    let dir = std::env::temp_dir().join(format!("hoop-compat-{}-{driver}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("file");
    let file = hoop::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .await
        .unwrap();
    let mut f = file.compat();
    let data = pattern(300_000);
    f.write_all(&data).await.unwrap();
    f.flush().await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), data);

    assert_eq!(f.seek(SeekFrom::Start(1000)).await.unwrap(), 1000);
    let mut buf = vec![0u8; 5000];
    f.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, data[1000..6000]);
    // Current is relative to what was returned, not to what was read ahead.
    assert_eq!(f.seek(SeekFrom::Current(-10)).await.unwrap(), 5990);
    f.read_exact(&mut buf[..10]).await.unwrap();
    assert_eq!(&buf[..10], &data[5990..6000]);
    assert_eq!(f.seek(SeekFrom::End(-3)).await.unwrap(), 299_997);
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).await.unwrap();
    assert_eq!(tail, data[299_997..]);
    // Writing at the position after a seek.
    f.seek(SeekFrom::Start(0)).await.unwrap();
    f.write_all(b"HEAD").await.unwrap();
    f.flush().await.unwrap();
    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(&on_disk[..4], b"HEAD");
    assert_eq!(on_disk[4..], data[4..]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[hoop::test]
async fn seek_on_a_stream_is_espipe() {
    let (a, _b) = pair().await;
    let mut a = Compat::new(a);
    let err = a.seek(SeekFrom::Start(0)).await.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ESPIPE));
}

#[hoop::test]
async fn pipes_and_unix_streams() {
    let (r, w) = hoop::io::pipe().unwrap();
    let (mut r, mut w) = (Compat::new(r), Compat::new(w));
    let writer = hoop::spawn(async move {
        w.write_all(&pattern(200_000)).await.unwrap();
        w.close().await.unwrap();
        drop(w);
    });
    let mut got = Vec::new();
    r.read_to_end(&mut got).await.unwrap();
    writer.await.unwrap();
    assert!(got == pattern(200_000));

    let (a, b) = hoop::net::UnixStream::pair().unwrap();
    let (mut a, mut b) = (a.compat(), b.compat());
    a.write_all(b"over unix").await.unwrap();
    a.close().await.unwrap();
    let mut s = String::new();
    b.read_to_string(&mut s).await.unwrap();
    assert_eq!(s, "over unix");
}

/// Review-2 H4: a file has one position. A write after a read lands where the caller is (not
/// past the read-ahead), and a read after an unflushed write sees the written bytes.
#[hoop::test]
async fn file_writes_and_reads_share_the_callers_position() {
    let driver = hoop::runtime_info().unwrap().driver;
    let dir = std::env::temp_dir().join(format!("hoop-compat-pos-{}-{driver}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("file");
    let data = pattern(64 * 1024);
    std::fs::write(&path, &data).unwrap();
    let open = || {
        let path = path.clone();
        async move {
            let mut o = hoop::fs::OpenOptions::new();
            o.read(true).write(true);
            o.open(&path).await
        }
    };

    let mut f = open().await.unwrap().compat();
    let mut ten = [0u8; 10];
    f.read_exact(&mut ten).await.unwrap();
    assert_eq!(ten, data[..10]);
    f.write_all(b"XY").await.unwrap();
    f.flush().await.unwrap();
    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(
        &on_disk[10..12],
        b"XY",
        "the write went past the read-ahead"
    );
    assert_eq!(on_disk.len(), data.len());
    // The next read continues after the write.
    f.read_exact(&mut ten).await.unwrap();
    assert_eq!(ten, data[12..22]);

    // Write without flushing, seek back by the written length through the read path.
    let mut f = open().await.unwrap().compat();
    f.write_all(b"abcdef").await.unwrap();
    let mut next = [0u8; 4];
    f.read_exact(&mut next).await.unwrap();
    assert_eq!(
        next,
        data[6..10],
        "a read after an unflushed write starts after it"
    );
    assert_eq!(&std::fs::read(&path).unwrap()[..6], b"abcdef");
    std::fs::remove_dir_all(&dir).unwrap();
}
