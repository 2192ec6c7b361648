//! One connection: requests read within their timeouts, bodies discarded or refused, responses
//! in order, an access log line per request with `--log`.

use crate::request::{self, Body, Parsed};
use crate::response;
use crate::serve::{self, Site};
use hoop::net::TcpStream;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Per-connection limits (`--head-timeout`, `--idle-timeout`), and the log switch.
#[derive(Clone, Copy)]
pub struct Limits {
    /// How long a client may take to send a request head (and a body to discard), once it
    /// started one.
    pub head: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub idle: Duration,
    /// Print one access log line per request.
    pub log: bool,
}

/// The largest request body read (and thrown away) to keep the connection; larger is a 413.
const MAX_DISCARD: u64 = 64 * 1024;

/// What the client sent so far, and a buffer to read more into.
struct Input {
    pending: Vec<u8>,
    buf: Vec<u8>,
}

impl Input {
    /// Reads once; false at end of file.
    async fn fill(&mut self, stream: &TcpStream) -> io::Result<bool> {
        let (n, mut buf) = stream.read(std::mem::take(&mut self.buf)).await;
        let n = n?;
        self.pending.extend_from_slice(&buf[..n]);
        buf.clear();
        self.buf = buf;
        Ok(n > 0)
    }
}

pub async fn serve(stream: &TcpStream, site: &Site, limits: Limits) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr().ok();
    let mut input = Input {
        pending: Vec::new(),
        buf: Vec::with_capacity(8192),
    };
    loop {
        // Idle until the first byte of the next request, then the whole head within its limit.
        if input.pending.is_empty() {
            match hoop::time::timeout(limits.idle, input.fill(stream)).await {
                Err(_) => return Ok(()), // idle keep-alive connection: closed
                Ok(filled) => {
                    if !filled? {
                        return Ok(());
                    }
                }
            }
        }
        let started = Instant::now();
        let head_deadline = started + limits.head;
        let parsed = loop {
            match request::parse(&input.pending) {
                Parsed::Partial => {}
                done => break done,
            }
            let left = head_deadline.saturating_duration_since(Instant::now());
            match hoop::time::timeout(left, input.fill(stream)).await {
                Err(_) => return Ok(()), // too slow: closed without an answer
                Ok(filled) => {
                    if !filled? {
                        return Ok(());
                    }
                }
            }
        };
        let (req, head_len) = match parsed {
            Parsed::Done(req, len) => (req, len),
            Parsed::Bad(status) => {
                let bytes = response::simple(status, false, false, &[]);
                let _ = stream.write_all(bytes).await;
                if limits.log {
                    log(peer, "-", status, 0, started);
                }
                return Ok(());
            }
            Parsed::Partial => unreachable!(),
        };
        input.pending.drain(..head_len);
        let mut keep = req.keep_alive;
        match req.body {
            Body::Length(n) if n > MAX_DISCARD => {
                // Refused unread; the connection closes (the body would be read as requests).
                let head_only = req.method == "HEAD";
                let bytes = response::simple(413, head_only, false, &[]);
                let _ = stream.write_all(bytes).await;
                if limits.log {
                    log(peer, &req_line(&req), 413, 0, started);
                }
                return Ok(());
            }
            Body::Length(n) => {
                // Read and thrown away, so that the next request starts where it should.
                let mut left = n as usize;
                loop {
                    let here = left.min(input.pending.len());
                    input.pending.drain(..here);
                    left -= here;
                    if left == 0 {
                        break;
                    }
                    let wait = head_deadline.saturating_duration_since(Instant::now());
                    match hoop::time::timeout(wait, input.fill(stream)).await {
                        Ok(Ok(true)) => {}
                        _ => return Ok(()), // cut short or too slow
                    }
                }
            }
            Body::Unread => keep = false,
            Body::None => {}
        }
        let served = match serve::respond(stream, site, &req, keep).await {
            Ok(served) => served,
            Err(e) => {
                if limits.log {
                    log(peer, &req_line(&req), 0, 0, started);
                }
                return Err(e);
            }
        };
        if limits.log {
            log(peer, &req_line(&req), served.status, served.bytes, started);
        }
        if !keep {
            return Ok(());
        }
    }
}

fn req_line(req: &request::Request) -> String {
    let version = if req.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    format!("{} {} {version}", req.method, req.target)
}

/// One access log line: peer, request, status (0: the response failed), bytes sent, time.
fn log(peer: Option<SocketAddr>, line: &str, status: u16, bytes: u64, started: Instant) {
    let peer = peer.map_or("-".to_string(), |p| p.to_string());
    println!(
        "{peer} \"{}\" {status} {bytes} {:.3}ms",
        line.escape_debug(),
        started.elapsed().as_secs_f64() * 1e3
    );
}
