//! The owned-buffer I/O traits on both drivers: code written once for `AsyncReadOwned` /
//! `AsyncWriteOwned` works on TCP, Unix streams, halves and pipes; `BufReader` lines and
//! delimiters across arbitrary chunk boundaries; `BufWriter` gathering; `copy`.

use hoop::io::{copy, AsyncReadOwned, AsyncWriteOwned, BufReader, BufWriter};
use hoop::net::{TcpListener, TcpStream, UnixStream};

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (c, a) = futures_util::join!(TcpStream::connect(addr), listener.accept());
    (c.unwrap(), a.unwrap().0)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 13 + i / 251) as u8).collect()
}

/// Generic over the traits: writes `data` in odd-sized pieces, then shuts down.
async fn send_in_pieces<W: AsyncWriteOwned>(w: &mut W, data: &[u8]) {
    let mut off = 0;
    let mut step = 1;
    while off < data.len() {
        let end = (off + step).min(data.len());
        w.write_all(data[off..end].to_vec()).await.0.unwrap();
        off = end;
        step = step * 3 % 7919 + 1;
    }
    w.shutdown().await.unwrap();
}

#[hoop::test]
async fn copy_between_tcp_and_unix_streams() {
    let data = pattern(3 << 20);
    let (mut tcp_a, mut tcp_b) = tcp_pair().await;
    let (mut unix_a, mut unix_b) = UnixStream::pair().unwrap();
    let src = data.clone();
    let producer = hoop::spawn(async move { send_in_pieces(&mut tcp_a, &src).await });
    // tcp_b -> unix_a, then read everything from unix_b.
    let pump = hoop::spawn(async move {
        let n = copy(&mut tcp_b, &mut unix_a).await.unwrap();
        AsyncWriteOwned::shutdown(&mut unix_a).await.unwrap();
        n
    });
    let (r, got) = unix_b.read_exact(vec![0u8; data.len()]).await;
    r.unwrap();
    producer.await.unwrap();
    assert_eq!(pump.await.unwrap(), data.len() as u64);
    assert!(got == data);
    let (n, _) = AsyncReadOwned::read(&mut unix_b, Vec::with_capacity(8)).await;
    assert_eq!(n.unwrap(), 0, "the copy ended the stream");
}

#[hoop::test]
async fn buf_reader_reads_lines_across_chunks() {
    let (mut a, b) = tcp_pair().await;
    let mut text = String::new();
    for i in 0..2000 {
        text.push_str(&format!("line {i} {}\n", "x".repeat(i % 97)));
    }
    text.push_str("no newline at the end");
    let sent = text.clone().into_bytes();
    let producer = hoop::spawn(async move { send_in_pieces(&mut a, &sent).await });
    let mut reader = BufReader::with_capacity(100, b);
    let mut got = String::new();
    let mut lines = 0;
    loop {
        let n = reader.read_line(&mut got).await.unwrap();
        if n == 0 {
            break;
        }
        lines += 1;
    }
    producer.await.unwrap();
    assert_eq!(lines, 2001);
    assert_eq!(got, text);
}

#[hoop::test]
async fn buf_reader_mixes_buffered_and_direct_reads() {
    let (r, w) = hoop::io::pipe().unwrap();
    let data = pattern(100_000);
    let src = data.clone();
    let mut w = w;
    let producer = hoop::spawn(async move { send_in_pieces(&mut w, &src).await });
    let mut reader = BufReader::with_capacity(64, r);
    let mut got = Vec::new();
    reader.read_until(b'\0', &mut got).await.unwrap();
    // Small reads come from the buffer, large ones go straight to the pipe.
    let mut size = 1;
    loop {
        let (n, buf) = reader.read(Vec::with_capacity(size)).await;
        let n = n.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        size = size * 5 % 4099 + 1;
    }
    producer.await.unwrap();
    assert!(got == data);
}

#[hoop::test]
async fn buf_writer_gathers_small_writes() {
    let (a, mut b) = tcp_pair().await;
    let (rd, wr) = a.into_split();
    drop(rd);
    let mut writer = BufWriter::with_capacity(4096, wr);
    let data = pattern(200_000);
    for piece in data.chunks(7) {
        writer.write_all(piece.to_vec()).await.0.unwrap();
    }
    assert!(writer.buffer().len() < 4096);
    // A write larger than the buffer bypasses it (after flushing what is buffered).
    writer.write_all(pattern(10_000)).await.0.unwrap();
    writer.shutdown().await.unwrap();
    let mut got = Vec::new();
    hoop::io::copy(&mut b, &mut Collector(&mut got))
        .await
        .unwrap();
    let mut expected = data;
    expected.extend_from_slice(&pattern(10_000));
    assert!(got == expected);
}

/// A sink into a Vec, to show the traits are implementable outside hoop.
struct Collector<'a>(&'a mut Vec<u8>);

impl AsyncWriteOwned for Collector<'_> {
    async fn write<B: hoop::IoBuf>(&mut self, buf: B) -> hoop::BufResult<usize, B> {
        // SAFETY: `IoBuf` guarantees `bytes_init()` initialised bytes at `stable_ptr()`.
        let bytes = unsafe { std::slice::from_raw_parts(buf.stable_ptr(), buf.bytes_init()) };
        self.0.extend_from_slice(bytes);
        (Ok(bytes.len()), buf)
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
