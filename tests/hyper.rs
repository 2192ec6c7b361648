//! hyper 1.x on hoop, both ends: the `hyper_server` example runs as a process (2 workers, on the
//! same driver as the test), and a hyper client on hoop talks HTTP/1.1 and HTTP/2 to it through
//! `hoop::io::Compat`.

#[path = "common/mod.rs"]
mod common;

use common::ExampleServer;
use hoop::io::{Compat, HyperExecutor, HyperTimer};
use hoop::net::TcpStream;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};

fn start_server() -> ExampleServer {
    let driver = hoop::runtime_info().unwrap().driver.to_string();
    let args = ["--addr", "127.0.0.1:0", "--workers", "2"].map(std::ffi::OsStr::new);
    ExampleServer::start("hyper_server", &args, &driver)
}

type Http1 = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect_http1(addr: &str) -> Http1 {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(Compat::new(stream))
        .await
        .unwrap();
    hoop::spawn(async move {
        let _ = conn.await;
    })
    .detach();
    sender
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "hoop.test")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn body_of(resp: hyper::Response<hyper::body::Incoming>) -> Vec<u8> {
    resp.into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

#[hoop::test]
async fn http1_routes_keep_alive_and_every_worker() {
    let server = start_server();
    let mut sender = connect_http1(&server.addr).await;

    // Several requests on one kept-alive connection.
    for _ in 0..3 {
        let resp = sender.send_request(get("/hello.json")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let body = String::from_utf8(body_of(resp).await).unwrap();
        assert!(body.starts_with("{\"hello\":\"world\""), "{body}");
        assert!(body.contains("HTTP/1.1"), "{body}");
    }

    // A streamed (chunked) body, produced on the server's timers.
    let resp = sender.send_request(get("/stream?chunks=20")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let expected: String = (0..20).map(|i| format!("chunk {i}\n")).collect();
    assert_eq!(body_of(resp).await, expected.as_bytes());

    // A large request body echoed back, byte for byte.
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let req = Request::post("/echo")
        .header("host", "hoop.test")
        .body(Full::new(Bytes::from(payload.clone())))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_of(resp).await, payload);

    let resp = sender.send_request(get("/nope")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // New connections land on both workers' SO_REUSEPORT listeners.
    let mut workers = std::collections::HashSet::new();
    for _ in 0..64 {
        let mut sender = connect_http1(&server.addr).await;
        let resp = sender.send_request(get("/hello.json")).await.unwrap();
        let body = String::from_utf8(body_of(resp).await).unwrap();
        let worker = body.split("\"worker\":").nth(1).unwrap().split(',').next();
        workers.insert(worker.unwrap().to_string());
        if workers.len() == 2 {
            break;
        }
    }
    assert_eq!(workers.len(), 2, "connections reached only {workers:?}");
}

#[hoop::test]
async fn http2_multiplexed_streams() {
    let server = start_server();
    let stream = TcpStream::connect(&server.addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::Builder::new(HyperExecutor)
        .timer(HyperTimer)
        .handshake::<_, Empty<Bytes>>(Compat::new(stream))
        .await
        .unwrap();
    hoop::spawn(async move {
        let _ = conn.await;
    })
    .detach();

    // 16 requests in flight at once on one connection.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let mut sender = sender.clone();
        tasks.push(hoop::spawn(async move {
            let path = if i % 2 == 0 {
                "/hello.json".to_string()
            } else {
                format!("/stream?chunks={i}")
            };
            let req = Request::get(format!("http://hoop.test{path}"))
                .body(Empty::<Bytes>::new())
                .unwrap();
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(resp.version(), hyper::Version::HTTP_2);
            let body = body_of(resp).await;
            if i % 2 == 0 {
                assert!(String::from_utf8(body).unwrap().contains("HTTP/2.0"));
            } else {
                let expected: String = (0..i).map(|c| format!("chunk {c}\n")).collect();
                assert_eq!(body, expected.as_bytes());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// `SIGTERM`: a streamed response in flight finishes, the kept-alive connection then closes,
/// and the server exits with status 0. On both drivers.
#[hoop::test]
async fn sigterm_lets_responses_in_flight_finish() {
    let mut server = start_server();
    let mut sender = connect_http1(&server.addr).await;
    let resp = sender
        .send_request(get("/stream?chunks=300"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // SAFETY: kill takes no pointers; the pid is our child's, not yet waited for.
    assert_eq!(
        unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) },
        0
    );
    let body = String::from_utf8(body_of(resp).await).unwrap();
    assert_eq!(body.lines().count(), 300, "the response was cut");
    assert!(body.ends_with("chunk 299\n"));
    // Then the connection is closed, and the server gone.
    assert!(sender.send_request(get("/hello.json")).await.is_err());
    let status = common::wait_for_exit(&mut server.child, 10, "hyper_server");
    assert!(status.success(), "{status}");
}
