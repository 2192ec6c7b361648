//! Response heads, and the short responses that have no file behind them (errors, redirects,
//! `304`). Every response has `Date` and `Server`; a `HEAD` gets the `GET`'s head without its
//! body.

use std::cell::RefCell;
use std::fmt::Write as _;
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

/// Today's `Date` value, formatted once a second per worker.
fn date() -> String {
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
        c.1.clone()
    })
}

/// A response head under construction.
pub struct Head(String);

impl Head {
    pub fn new(status: u16) -> Head {
        let mut s = String::with_capacity(256);
        let _ = write!(
            s,
            "HTTP/1.1 {status} {}\r\nDate: {}\r\nServer: hoop-fileserver\r\n",
            reason(status),
            date()
        );
        Head(s)
    }

    pub fn header(mut self, name: &str, value: impl std::fmt::Display) -> Head {
        let _ = write!(self.0, "{name}: {value}\r\n");
        self
    }

    /// The head, ended, as bytes (with room for `extra` bytes of body after it).
    pub fn finish(self, keep_alive: bool, extra: usize) -> Vec<u8> {
        let mut s = self.0;
        s.push_str(if keep_alive {
            "Connection: keep-alive\r\n\r\n"
        } else {
            "Connection: close\r\n\r\n"
        });
        let mut bytes = s.into_bytes();
        bytes.reserve_exact(extra);
        bytes
    }
}

/// A complete response with a short text body (none for `HEAD`), as bytes.
pub fn simple(status: u16, head_only: bool, keep_alive: bool, extra: &[(&str, &str)]) -> Vec<u8> {
    let body = format!("{status} {}\n", reason(status));
    let mut head = Head::new(status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Content-Length", body.len());
    for (name, value) in extra {
        head = head.header(name, value);
    }
    let mut bytes = head.finish(keep_alive, body.len());
    if !head_only {
        bytes.extend_from_slice(body.as_bytes());
    }
    bytes
}
