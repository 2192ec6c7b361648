//! Response heads, and the short responses that have no file behind them (errors, redirects,
//! `304`). Every response has `Date` and `Server`; a `HEAD` gets the `GET`'s head without its
//! body.

use std::cell::RefCell;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Appends today's `Date` value, formatted once a second per worker.
fn push_date(out: &mut Vec<u8>) {
    thread_local! {
        static CACHE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            *c = (secs, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(c.1.as_bytes());
    })
}

/// A header's value, appended without `core::fmt` where it is text or a number (every response
/// has several: the formatting machinery was a measurable part of a small file's CPU).
pub trait HeaderValue {
    fn push_to(self, out: &mut Vec<u8>);
}

impl HeaderValue for &str {
    fn push_to(self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl HeaderValue for &String {
    fn push_to(self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl HeaderValue for u64 {
    fn push_to(self, out: &mut Vec<u8>) {
        push_number(out, self);
    }
}

impl HeaderValue for usize {
    fn push_to(self, out: &mut Vec<u8>) {
        push_number(out, self as u64);
    }
}

impl HeaderValue for httpdate::HttpDate {
    fn push_to(self, out: &mut Vec<u8>) {
        let _ = write!(out, "{self}");
    }
}

impl HeaderValue for std::fmt::Arguments<'_> {
    fn push_to(self, out: &mut Vec<u8>) {
        let _ = out.write_fmt(self);
    }
}

/// Appends `n` in decimal.
fn push_number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A response head written into a connection's reusable buffer.
pub struct Head<'a>(&'a mut Vec<u8>);

impl<'a> Head<'a> {
    /// Starts the head of a `status` response in `out` (emptied first).
    pub fn start(out: &'a mut Vec<u8>, status: u16) -> Head<'a> {
        out.clear();
        out.extend_from_slice(b"HTTP/1.1 ");
        push_number(out, u64::from(status));
        out.push(b' ');
        out.extend_from_slice(reason(status).as_bytes());
        out.extend_from_slice(b"\r\nDate: ");
        push_date(out);
        out.extend_from_slice(b"\r\nServer: hoop-fileserver\r\n");
        Head(out)
    }

    pub fn header(self, name: &str, value: impl HeaderValue) -> Head<'a> {
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b": ");
        value.push_to(self.0);
        self.0.extend_from_slice(b"\r\n");
        self
    }

    /// Ends the head; its length.
    pub fn finish(self, keep_alive: bool) -> usize {
        self.0.extend_from_slice(if keep_alive {
            b"Connection: keep-alive\r\n\r\n"
        } else {
            b"Connection: close\r\n\r\n"
        });
        self.0.len()
    }
}

/// A complete response with a short text body (none for `HEAD`), in `out`.
pub fn simple(
    out: &mut Vec<u8>,
    status: u16,
    head_only: bool,
    keep_alive: bool,
    extra: &[(&str, &str)],
) {
    let reason = reason(status);
    // The body: "404 Not Found\n".
    let body_len = 3 + 1 + reason.len() + 1;
    let mut head = Head::start(out, status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Content-Length", body_len);
    for (name, value) in extra {
        head = head.header(name, *value);
    }
    head.finish(keep_alive);
    if !head_only {
        let _ = writeln!(out, "{status} {reason}");
    }
}
