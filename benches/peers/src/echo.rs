//! The echo server of `benches/echo.rs` on monoio, compio and tokio (current_thread): read into
//! a 16 KiB buffer, write back what was read, TCP_NODELAY like the others.

use std::io::Write;
use std::os::fd::AsRawFd;

fn announce(addr: std::net::SocketAddr) {
    println!("{addr}");
    let _ = std::io::stdout().flush();
}

fn nodelay(fd: i32) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads an int from a live local.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

pub fn monoio() {
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .build()
        .expect("monoio runtime");
    rt.block_on(async {
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        announce(listener.local_addr().expect("addr"));
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            monoio::spawn(async move {
                use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
                nodelay(stream.as_raw_fd());
                let mut buf = Vec::with_capacity(16 * 1024);
                loop {
                    buf.clear();
                    let (r, b) = stream.read(buf).await;
                    if !matches!(r, Ok(n) if n > 0) {
                        return;
                    }
                    let (r, b) = stream.write_all(b).await;
                    if r.is_err() {
                        return;
                    }
                    buf = b;
                }
            });
        }
    });
}

pub fn compio() {
    let rt = compio::runtime::Runtime::new().expect("compio runtime");
    rt.block_on(async {
        let listener = compio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        announce(listener.local_addr().expect("addr"));
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            compio::runtime::spawn(async move {
                use compio::io::{AsyncRead, AsyncWriteExt};
                nodelay(stream.as_raw_fd());
                let mut buf = Vec::with_capacity(16 * 1024);
                loop {
                    buf.clear();
                    let compio::BufResult(r, b) = stream.read(buf).await;
                    if !matches!(r, Ok(n) if n > 0) {
                        return;
                    }
                    let compio::BufResult(r, b) = stream.write_all(b).await;
                    if r.is_err() {
                        return;
                    }
                    buf = b;
                }
            })
            .detach();
        }
    });
}

pub fn tokio() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        announce(listener.local_addr().expect("addr"));
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let _ = stream.set_nodelay(true);
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}
