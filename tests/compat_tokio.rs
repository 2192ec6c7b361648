//! `hoop::io::Compat` through the `tokio::io` traits (the `tokio` feature), on both drivers:
//! `tokio::io::copy` between hoop streams and files, `split`, buffered lines, seek, and a
//! cancelled read whose data is kept.

use hoop::io::Compat;
use hoop::net::{TcpListener, TcpStream};
use std::io::SeekFrom;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = hoop::spawn(async move { TcpStream::connect(addr).await.unwrap() });
    let (server, _) = listener.accept().await.unwrap();
    (client.await.unwrap(), server)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 17 % 241) as u8).collect()
}

#[hoop::test]
async fn copy_a_file_over_tcp_with_split_halves() {
    let driver = hoop::runtime_info().unwrap().driver;
    let dir =
        std::env::temp_dir().join(format!("hoop-compat-tokio-{}-{driver}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("src");
    let data = pattern(2 << 20);
    std::fs::write(&path, &data).unwrap();

    let (a, b) = pair().await;
    let file = hoop::fs::File::open(&path).await.unwrap();
    let sender = hoop::spawn(async move {
        let mut file = file.compat();
        let mut a = a.compat();
        let n = tokio::io::copy(&mut file, &mut a).await.unwrap();
        a.shutdown().await.unwrap();
        n
    });
    // Echo through a split stream: read half -> write half of the same socket is not needed;
    // read everything with read_to_end on the read half.
    let (mut rd, _wr) = tokio::io::split(b.compat());
    let mut got = Vec::new();
    rd.read_to_end(&mut got).await.unwrap();
    assert_eq!(sender.await.unwrap(), data.len() as u64);
    assert!(got == data);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[hoop::test]
async fn lines_and_partial_reads() {
    let (a, b) = pair().await;
    let (a, mut b) = (Compat::with_capacity(5, 16, a), b.compat());
    let writer = hoop::spawn(async move {
        for i in 0..300 {
            b.write_all(format!("{i}: tokio over hoop\n").as_bytes())
                .await
                .unwrap();
        }
        b.shutdown().await.unwrap();
    });
    let mut lines = tokio::io::BufReader::new(a).lines();
    let mut n = 0;
    while let Some(line) = lines.next_line().await.unwrap() {
        assert_eq!(line, format!("{n}: tokio over hoop"));
        n += 1;
    }
    assert_eq!(n, 300);
    writer.await.unwrap();
}

#[hoop::test]
async fn cancelled_read_keeps_its_data() {
    let (a, b) = pair().await;
    let mut a = a.compat();
    let mut buf = [0u8; 16];
    assert!(
        hoop::time::timeout(Duration::from_millis(20), a.read(&mut buf))
            .await
            .is_err()
    );
    b.write_all(b"still here".to_vec()).await.0.unwrap();
    hoop::time::sleep(Duration::from_millis(20)).await;
    let n = a.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"still here");
}

#[hoop::test]
async fn file_seek_and_position() {
    let driver = hoop::runtime_info().unwrap().driver;
    let dir =
        std::env::temp_dir().join(format!("hoop-compat-seek-{}-{driver}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("f");
    std::fs::write(&path, pattern(10_000)).unwrap();
    let mut f = hoop::fs::File::open(&path).await.unwrap().compat();
    let mut buf = [0u8; 100];
    f.read_exact(&mut buf).await.unwrap();
    assert_eq!(f.stream_position().await.unwrap(), 100);
    assert_eq!(f.seek(SeekFrom::End(-100)).await.unwrap(), 9_900);
    f.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf[..], pattern(10_000)[9_900..]);
    assert_eq!(f.read(&mut buf).await.unwrap(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}
