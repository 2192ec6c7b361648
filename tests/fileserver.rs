//! The `fileserver` example, run as a process on each driver and queried over HTTP: bytes
//! identical to the files, HEAD, Range (206, 416), keep-alive, 404/405, and refused traversal.

#[path = "common/mod.rs"]
mod common;

use common::ExampleServer;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;

fn start(root: &std::path::Path, driver: &str) -> ExampleServer {
    start_with(root, driver, &["--workers", "2"])
}

fn start_with(root: &std::path::Path, driver: &str, extra: &[&str]) -> ExampleServer {
    let mut args: Vec<&std::ffi::OsStr> = ["--addr", "127.0.0.1:0"]
        .iter()
        .chain(extra)
        .map(std::ffi::OsStr::new)
        .collect();
    args.push(std::ffi::OsStr::new("--root"));
    args.push(root.as_os_str());
    ExampleServer::start("fileserver", &args, driver)
}

/// Reads until the peer closes (`Ok(bytes)`), or fails on the read timeout.
fn read_to_close(conn: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    let mut all = Vec::new();
    conn.read_to_end(&mut all)?;
    Ok(all)
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request on `conn` and reads one response (by Content-Length).
fn request(conn: &mut BufReader<TcpStream>, method: &str, path: &str, extra: &str) -> Response {
    let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
    conn.get_mut().write_all(req.as_bytes()).unwrap();
    let mut status_line = String::new();
    conn.read_line(&mut status_line).unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (n, v) = line.split_once(':').unwrap();
        headers.push((n.to_string(), v.trim().to_string()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let len: usize = resp.header("content-length").unwrap().parse().unwrap();
    if method != "HEAD" {
        resp.body = vec![0; len];
        conn.read_exact(&mut resp.body).unwrap();
    }
    resp
}

#[test]
fn fileserver_serves_files_and_refuses_traversal() {
    let base = std::env::temp_dir().join(format!("hoop-fileserver-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("www");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>hoop</h1>\n").unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(root.join("sub/data.bin"), &data).unwrap();
    std::fs::write(base.join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(base.join("secret.txt"), root.join("escape")).unwrap();
    for driver in common::driver_names() {
        let server = start(&root, driver);
        let mut conn = BufReader::new(TcpStream::connect(&server.addr).unwrap_or_else(|e| {
            panic!(
                "{driver}: the server said it listens on {}: {e}",
                server.addr
            )
        }));
        // Keep-alive: every request below goes over the same connection.
        let r = request(&mut conn, "GET", "/", "");
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"<h1>hoop</h1>\n"[..])
        );
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        let r = request(&mut conn, "GET", "/sub/data.bin", "");
        assert_eq!(r.status, 200);
        assert!(r.body == data, "{driver}: body differs from the file");
        let r = request(&mut conn, "HEAD", "/sub/data.bin", "");
        assert_eq!(
            (r.status, r.header("content-length")),
            (200, Some("300000"))
        );
        let r = request(
            &mut conn,
            "GET",
            "/sub/data.bin",
            "Range: bytes=1000-1999\r\n",
        );
        assert_eq!(r.status, 206);
        assert_eq!(r.header("content-range"), Some("bytes 1000-1999/300000"));
        assert_eq!(r.body, data[1000..2000]);
        let r = request(&mut conn, "GET", "/sub/data.bin", "Range: bytes=-10\r\n");
        assert_eq!(
            (r.status, r.body.as_slice()),
            (206, &data[data.len() - 10..])
        );
        let r = request(
            &mut conn,
            "GET",
            "/sub/data.bin",
            "Range: bytes=400000-\r\n",
        );
        assert_eq!(
            (r.status, r.header("content-range")),
            (416, Some("bytes */300000"))
        );
        assert_eq!(request(&mut conn, "GET", "/missing", "").status, 404);
        assert_eq!(request(&mut conn, "POST", "/", "").status, 405);
        for attack in [
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/sub/..%2f..%2fsecret.txt",
            "/escape",
        ] {
            let r = request(&mut conn, "GET", attack, "");
            assert!(
                matches!(r.status, 403 | 404),
                "{driver}: {attack} gave {}",
                r.status
            );
            assert!(
                !String::from_utf8_lossy(&r.body).contains("secret"),
                "{attack}"
            );
        }
        let r = request(&mut conn, "GET", "/bad%zz", "");
        assert_eq!(r.status, 400);
        // curl, when the machine has it, gets the same bytes.
        if let Ok(out) = Command::new("curl")
            .args(["-sf", &format!("http://{}/sub/data.bin", server.addr)])
            .output()
        {
            if out.status.success() {
                assert!(out.stdout == data, "{driver}: curl got different bytes");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// Review-2 M3: a FIFO (or device) in the root is refused without being opened, a request
/// body is never read as the next request, clients that send nothing or too slowly are closed,
/// and each worker caps its connections. On both drivers.
#[test]
fn fileserver_refuses_fifos_bodies_and_slow_clients() {
    let base = std::env::temp_dir().join(format!("hoop-fileserver-m3-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("www");
    std::fs::create_dir_all(root.join("fifodir")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>hoop</h1>\n").unwrap();
    std::fs::write(root.join("big"), vec![0u8; 64 << 20]).unwrap();
    for fifo in [root.join("pipe"), root.join("fifodir/index.html")] {
        common::mkfifo(&fifo, 0o644);
    }
    for driver in common::driver_names() {
        let server = start_with(
            &root,
            driver,
            &[
                "--workers",
                "1",
                "--head-timeout",
                "1",
                "--idle-timeout",
                "1",
            ],
        );
        let mut conn = BufReader::new(TcpStream::connect(&server.addr).unwrap());
        conn.get_ref()
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        // Refused at once (a plain open would wait for a writer).
        assert_eq!(
            request(&mut conn, "GET", "/pipe", "").status,
            404,
            "{driver}"
        );
        assert_eq!(
            request(&mut conn, "GET", "/fifodir/", "").status,
            404,
            "{driver}"
        );
        assert_eq!(request(&mut conn, "GET", "/", "").status, 200, "{driver}");

        // A body is not the next request: one answer, then the connection closes.
        let mut c = TcpStream::connect(&server.addr).unwrap();
        let smuggled = "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n";
        let req = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{smuggled}",
            smuggled.len()
        );
        c.write_all(req.as_bytes()).unwrap();
        let all = String::from_utf8_lossy(&read_to_close(&mut c).unwrap()).into_owned();
        assert_eq!(all.matches("HTTP/1.1 ").count(), 1, "{driver}: {all}");
        assert!(all.starts_with("HTTP/1.1 405"), "{driver}: {all}");
        // A space before the colon is a bad request (RFC 9112).
        let mut c = TcpStream::connect(&server.addr).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n").unwrap();
        let all = String::from_utf8_lossy(&read_to_close(&mut c).unwrap()).into_owned();
        assert!(all.starts_with("HTTP/1.1 400"), "{driver}: {all}");

        // Silent and slow clients are closed after their timeouts (1 s here).
        let mut idle = TcpStream::connect(&server.addr).unwrap();
        assert_eq!(read_to_close(&mut idle).unwrap(), b"", "{driver}: idle");
        let mut slow = TcpStream::connect(&server.addr).unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        assert_eq!(
            read_to_close(&mut slow).unwrap(),
            b"",
            "{driver}: slow head"
        );
        // A folded header line (obs-fold) is a bad request.
        let mut c = TcpStream::connect(&server.addr).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n Transfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        let all = String::from_utf8_lossy(&read_to_close(&mut c).unwrap()).into_owned();
        assert!(all.starts_with("HTTP/1.1 400"), "{driver}: {all}");

        drop(server);

        // At the connection cap, a new connection gets a 503 and is closed; a client that
        // stops reading a large body gives its slot back after the send timeout (1 s here).
        let server = start_with(
            &root,
            driver,
            &[
                "--workers",
                "1",
                "--max-connections",
                "1",
                "--send-timeout",
                "1",
            ],
        );
        let mut first = BufReader::new(TcpStream::connect(&server.addr).unwrap());
        assert_eq!(request(&mut first, "GET", "/", "").status, 200);
        let mut second = TcpStream::connect(&server.addr).unwrap();
        let all = String::from_utf8_lossy(&read_to_close(&mut second).unwrap()).into_owned();
        assert!(all.starts_with("HTTP/1.1 503"), "{driver}: {all}");
        // The first asks for 64 MiB and never reads.
        first
            .get_mut()
            .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        std::thread::sleep(std::time::Duration::from_secs(3));
        let mut third = BufReader::new(TcpStream::connect(&server.addr).unwrap());
        third
            .get_ref()
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let r = request(&mut third, "GET", "/", "");
        assert_eq!(
            r.status, 200,
            "{driver}: the stalled client's slot was never freed"
        );
        drop(first);
    }
    let _ = std::fs::remove_dir_all(&base);
}
