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
    // A 304 has no body, and no length.
    let len: usize = resp
        .header("content-length")
        .map_or(0, |l| l.parse().unwrap());
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
        // A directory whose index.html is a FIFO is listed, without it.
        let r = request(&mut conn, "GET", "/fifodir/", "");
        assert_eq!(r.status, 200, "{driver}");
        assert!(!String::from_utf8_lossy(&r.body).contains("index.html"));
        assert_eq!(request(&mut conn, "GET", "/", "").status, 200, "{driver}");

        // A body is not the next request: it is read and dropped, and the request after it
        // is answered; the one inside the body is not.
        let mut c = TcpStream::connect(&server.addr).unwrap();
        let smuggled = "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n";
        let req = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{smuggled}\
             GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            smuggled.len()
        );
        c.write_all(req.as_bytes()).unwrap();
        let all = String::from_utf8_lossy(&read_to_close(&mut c).unwrap()).into_owned();
        assert_eq!(all.matches("HTTP/1.1 ").count(), 2, "{driver}: {all}");
        assert!(all.starts_with("HTTP/1.1 405"), "{driver}: {all}");
        assert!(all.contains("HTTP/1.1 404"), "{driver}: {all}");
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

/// Sends `bytes` on a new connection and returns everything the server sends until it closes.
fn exchange(addr: &str, bytes: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(bytes).unwrap();
    let reply = read_to_close(&mut c)
        .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(bytes)));
    String::from_utf8_lossy(&reply).into_owned()
}

/// Directory listings: sorted (directories first), names escaped and links percent-encoded
/// (a non-UTF-8 name included), dotfiles and FIFOs hidden, a link that works, a 301 to the
/// slash, and 403 with `--no-listing`. On both drivers.
#[test]
fn fileserver_lists_directories() {
    use std::os::unix::ffi::OsStrExt;
    let base = std::env::temp_dir().join(format!("hoop-fileserver-list-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("www");
    std::fs::create_dir_all(root.join("b-dir")).unwrap();
    std::fs::create_dir_all(root.join("a-dir")).unwrap();
    std::fs::write(root.join("z.txt"), "zed").unwrap();
    std::fs::write(root.join("<b>&'\".html"), "tricky").unwrap();
    let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    std::fs::write(root.join(latin1), "latin-1 name").unwrap();
    std::fs::write(root.join(".secret"), "hidden").unwrap();
    common::mkfifo(&root.join("a-fifo"), 0o644);
    std::os::unix::fs::symlink(std::env::temp_dir(), root.join("outside")).unwrap();
    std::os::unix::fs::symlink("z.txt", root.join("y-link")).unwrap();
    for driver in common::driver_names() {
        let server = start(&root, driver);
        let mut conn = BufReader::new(TcpStream::connect(&server.addr).unwrap());
        let r = request(&mut conn, "GET", "/", "");
        assert_eq!(r.status, 200, "{driver}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        let page = String::from_utf8(r.body).unwrap();
        let links: Vec<&str> = page
            .split("<a href=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap())
            .collect();
        assert_eq!(
            links,
            [
                "a-dir/",
                "b-dir/",
                "%3Cb%3E%26%27%22.html",
                "caf%E9.txt",
                "y-link",
                "z.txt"
            ],
            "{driver}: {page}"
        );
        assert!(page.contains("&lt;b&gt;&amp;&#39;&quot;.html"), "{page}");
        assert!(!page.contains("secret") && !page.contains("fifo") && !page.contains("outside"));
        assert!(page.contains("<title>Index of /</title>"));
        // The links lead to the files.
        let r = request(&mut conn, "GET", "/caf%E9.txt", "");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"latin-1 name"[..]));
        let r = request(&mut conn, "GET", "/%3Cb%3E%26%27%22.html", "");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"tricky"[..]));
        // A directory without its slash: sent to it.
        let r = request(&mut conn, "GET", "/a-dir?x=1", "");
        assert_eq!((r.status, r.header("location")), (301, Some("/a-dir/?x=1")));
        // Built from the resolved path: `//a-dir` must not send the client to host `a-dir`.
        let r = request(&mut conn, "GET", "//a-dir", "");
        assert_eq!((r.status, r.header("location")), (301, Some("/a-dir/")));
        let r = request(&mut conn, "GET", "/a-dir/", "");
        assert_eq!(r.status, 200);
        let page = String::from_utf8(r.body).unwrap();
        assert!(page.contains("Index of /a-dir") && page.contains("href=\"../\""));
        drop(server);

        let server = start_with(&root, driver, &["--workers", "1", "--no-listing"]);
        let mut conn = BufReader::new(TcpStream::connect(&server.addr).unwrap());
        assert_eq!(request(&mut conn, "GET", "/", "").status, 403, "{driver}");
        assert_eq!(request(&mut conn, "GET", "/z.txt", "").status, 200);
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// Validators and preconditions: `ETag`, `Last-Modified` and `Date`; 304 for `If-None-Match`
/// (strong or weak) and `If-Modified-Since`; 412 for `If-Match`; `If-Range` decides between 206
/// and 200; `HEAD` has `GET`'s headers; content types by extension. On both drivers.
#[test]
fn fileserver_answers_conditional_requests() {
    let base = std::env::temp_dir().join(format!("hoop-fileserver-cond-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("page.css"), "body{}\n".repeat(100)).unwrap();
    for (name, _) in [("app.wasm", ""), ("pic.png", ""), ("data.json", "")] {
        std::fs::write(root.join(name), "x").unwrap();
    }
    for driver in common::driver_names() {
        let server = start(&root, driver);
        let mut conn = BufReader::new(TcpStream::connect(&server.addr).unwrap());
        let r = request(&mut conn, "GET", "/page.css", "");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
        let etag = r.header("etag").unwrap().to_string();
        let modified = r.header("last-modified").unwrap().to_string();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        assert!(r.header("date").is_some_and(|d| d.ends_with(" GMT")));
        // HEAD: the same headers, no body.
        let h = request(&mut conn, "HEAD", "/page.css", "");
        for name in ["content-length", "etag", "last-modified", "content-type"] {
            assert_eq!(h.header(name), r.header(name), "{driver}: HEAD {name}");
        }
        let r304 = request(
            &mut conn,
            "GET",
            "/page.css",
            &format!("If-None-Match: {etag}\r\n"),
        );
        assert_eq!((r304.status, r304.body.len()), (304, 0), "{driver}");
        assert_eq!(r304.header("etag"), Some(etag.as_str()));
        let weak = format!("If-None-Match: \"other\", W/{etag}\r\n");
        assert_eq!(request(&mut conn, "GET", "/page.css", &weak).status, 304);
        let other = "If-None-Match: \"other\"\r\n";
        assert_eq!(request(&mut conn, "GET", "/page.css", other).status, 200);
        let ims = format!("If-Modified-Since: {modified}\r\n");
        assert_eq!(request(&mut conn, "GET", "/page.css", &ims).status, 304);
        let old = "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n";
        assert_eq!(request(&mut conn, "GET", "/page.css", old).status, 200);
        // If-None-Match wins over If-Modified-Since.
        let both = format!("If-None-Match: \"other\"\r\n{ims}");
        assert_eq!(request(&mut conn, "GET", "/page.css", &both).status, 200);
        assert_eq!(
            request(&mut conn, "GET", "/page.css", "If-Match: \"other\"\r\n").status,
            412
        );
        let m = format!("If-Match: {etag}\r\n");
        assert_eq!(request(&mut conn, "GET", "/page.css", &m).status, 200);
        // If-Range: the current version gets its range, another the whole file.
        let ranged = format!("Range: bytes=0-3\r\nIf-Range: {etag}\r\n");
        let r = request(&mut conn, "GET", "/page.css", &ranged);
        assert_eq!((r.status, r.body.as_slice()), (206, &b"body"[..]));
        let ranged = format!("Range: bytes=0-3\r\nIf-Range: {modified}\r\n");
        assert_eq!(request(&mut conn, "GET", "/page.css", &ranged).status, 206);
        let stale = "Range: bytes=0-3\r\nIf-Range: \"other\"\r\n";
        let r = request(&mut conn, "GET", "/page.css", stale);
        assert_eq!((r.status, r.body.len()), (200, 700));
        for (path, mime) in [
            ("/app.wasm", "application/wasm"),
            ("/pic.png", "image/png"),
            ("/data.json", "application/json"),
        ] {
            assert_eq!(
                request(&mut conn, "GET", path, "").header("content-type"),
                Some(mime)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// A file served a moment ago goes out by `sendfile` (`examples/fileserver/hot.rs`): the same
/// bytes and headers as the first time, ranges from the right offset, and a file changed in
/// place is served as it is now. One worker, so every request meets the same memory.
#[test]
fn fileserver_serves_hot_files_by_sendfile_with_the_right_bytes() {
    let base = std::env::temp_dir().join(format!("hoop-fileserver-hot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("www");
    std::fs::create_dir_all(&root).unwrap();
    let first: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let second: Vec<u8> = (0..5000u32).map(|i| (i * 13 % 241) as u8).collect();
    for driver in common::driver_names() {
        std::fs::write(root.join("hot.bin"), &first).unwrap();
        let server = start_with(&root, driver, &["--workers", "1"]);
        let mut conn = BufReader::new(TcpStream::connect(&server.addr).unwrap());
        let cold = request(&mut conn, "GET", "/hot.bin", "");
        assert_eq!((cold.status, &cold.body), (200, &first), "{driver}");
        let hot = request(&mut conn, "GET", "/hot.bin", "");
        assert_eq!((hot.status, &hot.body), (200, &first), "{driver}: hot");
        for name in ["content-length", "etag", "last-modified"] {
            assert_eq!(hot.header(name), cold.header(name), "{driver}: {name}");
        }
        let r = request(&mut conn, "GET", "/hot.bin", "Range: bytes=4000-4999\r\n");
        assert_eq!((r.status, &r.body[..]), (206, &first[4000..]), "{driver}");
        // Rewritten in place, same size: a new modification time, so not the file remembered.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(root.join("hot.bin"), &second).unwrap();
        for round in 0..2 {
            let now = request(&mut conn, "GET", "/hot.bin", "");
            assert_eq!((now.status, &now.body), (200, &second), "{driver} {round}");
            assert_ne!(now.header("etag"), cold.header("etag"));
        }
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// Framing and syntax RFC 9112 asks a server to refuse, and the forms it must accept; on both
/// drivers.
#[test]
fn fileserver_is_strict_about_request_heads() {
    let base = std::env::temp_dir().join(format!("hoop-fileserver-strict-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("f"), "file").unwrap();
    for driver in common::driver_names() {
        let server = start(&root, driver);
        let addr = server.addr.as_str();
        let status = |reply: &str| -> u16 {
            reply
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{driver}: no status in {reply:?}"))
        };
        let big_header = format!("X: {}\r\n", "a".repeat(17 * 1024));
        let many_headers: String = (0..70).map(|i| format!("X-{i}: y\r\n")).collect();
        let cases: Vec<(String, u16)> = vec![
            ("GET /f HTTP/1.1\r\n\r\n".into(), 400), // no Host
            ("GET /f HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(), 400),
            ("GET /f HTTP/1.1\r\nHost: a b\r\n\r\n".into(), 400),
            (
                "GET /f HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
                400,
            ),
            ("GET /f HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".into(), 400),
            ("GET /f HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n".into(), 400),
            ("GET /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n".into(), 400),
            ("GET /f HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".into(), 400),
            ("GET /f HTTP/1.1\r\nHost: a\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\n\r\n".into(), 400),
            ("GET /f\r\n\r\n".into(), 400), // HTTP/0.9
            ("GET /f HTTP/2.0\r\nHost: a\r\n\r\n".into(), 505),
            ("GET  /f HTTP/1.1\r\nHost: a\r\n\r\n".into(), 400),
            ("GET f HTTP/1.1\r\nHost: a\r\n\r\n".into(), 400),
            (format!("GET /f HTTP/1.1\r\nHost: a\r\n{big_header}\r\n"), 431),
            (format!("GET /f HTTP/1.1\r\nHost: a\r\n{many_headers}\r\n"), 431),
            (
                format!("POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n", 1 << 20),
                413,
            ),
            // Chunked: answered, never read, and the connection closes.
            (
                "GET /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
                200,
            ),
            // HTTP/1.0 needs no Host and closes by default.
            ("GET /f HTTP/1.0\r\n\r\n".into(), 200),
            // absolute-form must be accepted.
            ("GET http://a/f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".into(), 200),
            ("GET /f?x=%zz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".into(), 200),
            ("GET /f%00 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".into(), 400),
            ("DELETE /f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".into(), 405),
            // Empty lines before a request are allowed (RFC 9112 2.2).
            (
                "\r\n\r\nGET /f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".into(),
                200,
            ),
            ("GET HTTP://a/f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".into(), 200),
            // A range that does not parse is ignored; HEAD ignores ranges.
            (
                "GET /f HTTP/1.1\r\nHost: a\r\nRange: bytes=abc\r\nConnection: close\r\n\r\n".into(),
                200,
            ),
            (
                "HEAD /f HTTP/1.1\r\nHost: a\r\nRange: bytes=0-1\r\nConnection: close\r\n\r\n".into(),
                200,
            ),
        ];
        for (req, want) in cases {
            let reply = exchange(addr, req.as_bytes());
            assert_eq!(status(&reply), want, "{driver}: {req:?} -> {reply}");
            assert_eq!(
                reply.matches("HTTP/1.1 ").count(),
                1,
                "{driver}: {req:?} -> {reply}"
            );
        }
        // 405 says what is allowed; a HEAD error has no body.
        let reply = exchange(
            addr,
            b"PUT /f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        assert!(reply.contains("Allow: GET, HEAD"), "{reply}");
        let reply = exchange(
            addr,
            b"HEAD /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        assert!(
            reply.starts_with("HTTP/1.1 404") && reply.ends_with("\r\n\r\n"),
            "{reply}"
        );
        // Bytes that are not UTF-8 in a header the server does not read are no reason to refuse.
        let reply = exchange(
            addr,
            b"GET /f HTTP/1.1\r\nHost: a\r\nX-Name: caf\xe9\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(status(&reply), 200, "{driver}: {reply}");
        // A head a byte at a time is served.
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_nodelay(true).unwrap();
        for b in b"GET /f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" {
            c.write_all(&[*b]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let reply = String::from_utf8_lossy(&read_to_close(&mut c).unwrap()).into_owned();
        assert_eq!(status(&reply), 200, "{driver}: {reply}");
        // A refused body still on its way: the client gets the whole 413, not a reset.
        let mut c = TcpStream::connect(addr).unwrap();
        let mut req = format!(
            "POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            1 << 20
        )
        .into_bytes();
        req.extend(std::iter::repeat_n(b'x', 200 << 10));
        c.write_all(&req).unwrap();
        let reply = String::from_utf8_lossy(&read_to_close(&mut c).unwrap()).into_owned();
        assert!(
            reply.starts_with("HTTP/1.1 413") && reply.ends_with("Too Large\n"),
            "{driver}: {reply}"
        );
        // Pipelined requests are answered in order on one connection.
        let reply = exchange(
            addr,
            b"GET /f HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\n\r\n\
              GET /f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        let statuses: Vec<&str> = reply
            .match_indices("HTTP/1.1 ")
            .map(|(i, _)| &reply[i + 9..i + 12])
            .collect();
        assert_eq!(statuses, ["200", "404", "200"], "{driver}: {reply}");
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// `SIGTERM` (io_uring run) or `SIGINT` (epoll run): new connections are refused, an idle
/// keep-alive connection is closed, a download in flight completes in full, and the process
/// exits with status 0. `--log` prints a line per request.
#[test]
fn fileserver_stops_gracefully_on_a_signal() {
    use std::io::BufRead;
    let base = std::env::temp_dir().join(format!("hoop-fileserver-stop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("www");
    std::fs::create_dir_all(&root).unwrap();
    let big: Vec<u8> = (0..32u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big"), &big).unwrap();
    for driver in common::driver_names() {
        let mut server = start_with(&root, driver, &["--workers", "1", "--log", "--grace", "20"]);
        let mut idle = BufReader::new(TcpStream::connect(&server.addr).unwrap());
        assert_eq!(request(&mut idle, "HEAD", "/big", "").status, 200);
        let mut line = String::new();
        server.stdout.read_line(&mut line).unwrap();
        assert!(
            line.contains("\"HEAD /big HTTP/1.1\" 200"),
            "{driver}: log {line:?}"
        );
        // A download that has only begun when the signal comes.
        let mut download = TcpStream::connect(&server.addr).unwrap();
        download
            .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut first = vec![0u8; 64 << 10];
        download.read_exact(&mut first).unwrap();
        let signal = if driver == "epoll" {
            libc::SIGINT
        } else {
            libc::SIGTERM
        };
        // SAFETY: kill takes no pointers; the pid is our child's, which we have not waited for.
        assert_eq!(unsafe { libc::kill(server.child.id() as i32, signal) }, 0);
        // The idle connection is closed; new ones are refused.
        assert_eq!(read_to_close(idle.get_mut()).unwrap(), b"", "{driver}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while TcpStream::connect(&server.addr).is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "{driver}: still accepting"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // The download goes on to its last byte, then the connection closes.
        let rest = read_to_close(&mut download).unwrap();
        let mut all = first;
        all.extend_from_slice(&rest);
        let body_at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(all[body_at..] == big[..], "{driver}: the download was cut");
        let status = common::wait_for_exit(&mut server.child, 10, driver);
        assert!(status.success(), "{driver}: {status}");
    }
    let _ = std::fs::remove_dir_all(&base);
}
