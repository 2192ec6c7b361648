//! One connection: requests read within their timeouts, bodies discarded or refused, responses
//! in order, an access log line per request with `--log`.

use crate::request::{self, Body, Parsed};
use crate::response;
use crate::serve::{self, Reply, Site};
use hoop::net::TcpStream;
use hoop::IoBuf;
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

/// What the client sent and the server has not used yet.
struct Input {
    pending: Vec<u8>,
}

impl Input {
    /// Reads once, into `pending`'s spare room; false at end of file.
    async fn fill(&mut self, stream: &TcpStream) -> io::Result<bool> {
        if self.pending.capacity() - self.pending.len() < 4096 {
            self.pending.reserve(8192);
        }
        let (len, cap) = (self.pending.len(), self.pending.capacity());
        let room = std::mem::take(&mut self.pending).slice(len..cap);
        let (n, room) = stream.read(room).await;
        self.pending = room.into_inner();
        Ok(n? > 0)
    }
}

pub async fn serve(stream: &TcpStream, site: &Site, limits: Limits) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr().ok();
    let mut input = Input {
        pending: Vec::with_capacity(8192),
    };
    // Every response is written here first; reused, so that no response allocates for it.
    let mut out = Vec::with_capacity(8192);
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
        // Parsed only once the blank line is there: a client sending a byte at a time costs a
        // scan of each new byte, not a parse of the whole head per read.
        let mut from = 0usize;
        let parsed = 'head: loop {
            while let Some(end) = head_end(&input.pending[from..]) {
                match request::parse(&input.pending[..from + end]) {
                    // Only empty lines so far, which may precede a request (RFC 9112 2.2): on
                    // to the next blank line (from the last byte of this one, so that the
                    // search moves on).
                    Parsed::Partial => from += end - 1,
                    done => break 'head done,
                }
            }
            // The next search starts where a blank line split by this read could begin.
            from = input.pending.len().saturating_sub(2).max(from);
            let scanned = input.pending.len();
            if scanned > request::MAX_HEAD {
                break Parsed::Bad(431);
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
                response::simple(&mut out, status, false, false, &[]);
                let _ = stream.write_all(out).await;
                if limits.log {
                    log(peer, "-", status, 0, started);
                }
                close_gently(stream).await;
                return Ok(());
            }
            Parsed::Partial => unreachable!("the loop above ends only with a whole head"),
        };
        input.pending.drain(..head_len);
        let mut keep = req.keep_alive;
        match req.body {
            Body::Length(n) if n > MAX_DISCARD => {
                // Refused unread; the connection closes (the body would be read as requests).
                response::simple(&mut out, 413, req.method == "HEAD", false, &[]);
                let _ = stream.write_all(out).await;
                if limits.log {
                    log(peer, &req_line(&req), 413, 0, started);
                }
                close_gently(stream).await;
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
        let mut reply = Reply {
            stream,
            out: &mut out,
            send_timeout: site.send_timeout,
            head_only: req.method == "HEAD",
            keep,
            sendfile: site.sendfile,
        };
        let served = match serve::respond(&mut reply, site, &req).await {
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
            // The client may have sent more (a pipelined request, an unread body).
            close_gently(stream).await;
            return Ok(());
        }
        // A large response's buffer is not kept for the life of an idle connection.
        if out.capacity() > 16 * 1024 {
            out = Vec::with_capacity(8192);
        }
    }
}

/// Where the head in `bytes` ends (after its blank line: `\r\n\r\n`, or a bare `\n\n`,
/// which RFC 9112 lets a recipient accept), if it does.
fn head_end(bytes: &[u8]) -> Option<usize> {
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = bytes.windows(3).position(|w| w == b"\n\r\n").map(|i| i + 3);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Closes a connection whose client may still be sending (a body never read, a refused
/// request): the write side first, then what arrives is read and dropped for a moment, so that
/// the close does not reset the connection (and lose the response in the client's buffer)
/// because unread bytes were left behind (RFC 9112 9.6).
pub async fn close_gently(stream: &TcpStream) {
    const LINGER: Duration = Duration::from_secs(2);
    const AT_MOST: usize = 256 * 1024;
    if stream.shutdown(std::net::Shutdown::Write).is_err() {
        return;
    }
    let mut dropped = 0;
    let mut buf = Vec::with_capacity(16 * 1024);
    let _ = hoop::time::timeout(LINGER, async {
        while dropped < AT_MOST {
            buf.clear();
            let (n, b) = stream.read(std::mem::take(&mut buf)).await;
            buf = b;
            match n {
                Ok(n) if n > 0 => dropped += n,
                _ => break,
            }
        }
    })
    .await;
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
