//! The request head: parsed by `httparse`, then held to what RFC 9112 asks of a server. Whatever
//! is ambiguous (two different lengths, a length and a transfer coding, a second `Host`) is a
//! 400 and the connection closes: a server that guesses is what request smuggling exploits.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// The longest request head accepted (431 beyond it).
pub const MAX_HEAD: usize = 16 * 1024;
/// The most header lines accepted (431 beyond it).
const MAX_HEADERS: usize = 64;

/// How the request's body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    None,
    /// `Content-Length` bytes follow the head.
    Length(u64),
    /// Chunked, or `Expect`ed: never read; the connection closes after the response.
    Unread,
}

pub struct Request {
    pub method: String,
    /// The request target as sent (for the log and redirects).
    pub target: String,
    /// The path of the target, percent-decoded, without its leading `/`.
    pub path: PathBuf,
    /// The target's path ends with `/` (a directory is asked for).
    pub trailing_slash: bool,
    /// The target's query, with its `?`, or empty.
    pub query: String,
    pub http10: bool,
    /// The client allows the connection to stay open after the response.
    pub keep_alive: bool,
    pub body: Body,
    pub range: Option<String>,
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    pub if_unmodified_since: Option<String>,
    pub if_range: Option<String>,
}

/// What a buffer holding the start of a request amounts to.
pub enum Parsed {
    /// More bytes are needed.
    Partial,
    /// A request, and the length of its head.
    Done(Box<Request>, usize),
    /// A head that must be refused with this status (the connection then closes).
    Bad(u16),
}

pub fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => Parsed::Bad(431),
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => Parsed::Bad(431),
        Ok(httparse::Status::Complete(len)) => match check(&req) {
            Ok(r) => Parsed::Done(Box::new(r), len),
            Err(status) => Parsed::Bad(status),
        },
        Err(httparse::Error::TooManyHeaders) => Parsed::Bad(431),
        Err(httparse::Error::Version) => Parsed::Bad(505),
        Err(_) => Parsed::Bad(400),
    }
}

/// The checks `httparse` leaves to the server.
fn check(req: &httparse::Request) -> Result<Request, u16> {
    let method = req.method.ok_or(400u16)?.to_string();
    let target = req.path.ok_or(400u16)?.to_string();
    let http10 = req.version.ok_or(400u16)? == 0;
    let mut hosts = 0;
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut expect = false;
    let mut close = false;
    let mut keep_alive = false;
    let mut if_none_match: Option<String> = None;
    let mut if_match: Option<String> = None;
    let (mut range, mut ims, mut ius, mut if_range) = (None, None, None, None);
    for h in req.headers.iter() {
        let Some(name) = KNOWN.iter().find(|k| h.name.eq_ignore_ascii_case(k)) else {
            continue; // none of the server's business
        };
        // Values are matched as text: obs-text (bytes >= 0x80) in a header this server reads
        // makes the request bad.
        let value = std::str::from_utf8(h.value).map_err(|_| 400u16)?.trim();
        match *name {
            "host" => {
                hosts += 1;
                if !valid_host(value) {
                    return Err(400);
                }
            }
            "content-length" => {
                // A list of equal values is one length (RFC 9112 6.3); anything else is not.
                for v in value.split(',').map(str::trim) {
                    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(400);
                    }
                    let n: u64 = v.parse().map_err(|_| 400u16)?;
                    if length.is_some_and(|l| l != n) {
                        return Err(400);
                    }
                    length = Some(n);
                }
            }
            "transfer-encoding" => {
                // Only the last coding decides whether the body is chunked.
                chunked = Some(
                    value
                        .rsplit(',')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .eq_ignore_ascii_case("chunked"),
                );
            }
            "connection" => {
                for token in value.split(',').map(str::trim) {
                    close |= token.eq_ignore_ascii_case("close");
                    keep_alive |= token.eq_ignore_ascii_case("keep-alive");
                }
            }
            "expect" => expect = true,
            "if-none-match" => append(&mut if_none_match, value),
            "if-match" => append(&mut if_match, value),
            "range" => once(&mut range, value)?,
            "if-modified-since" => once(&mut ims, value)?,
            "if-unmodified-since" => once(&mut ius, value)?,
            "if-range" => once(&mut if_range, value)?,
            _ => {}
        }
    }
    // RFC 9112 3.2: exactly one Host in HTTP/1.1, at most one in 1.0.
    if hosts > 1 || (hosts == 0 && !http10) {
        return Err(400);
    }
    let body = match (chunked, length) {
        // Both framings: a smuggling attempt or a broken proxy (RFC 9112 6.3).
        (Some(_), Some(_)) => return Err(400),
        // A transfer coding in 1.0, or a last coding other than chunked: the body's end cannot
        // be known (RFC 9112 6.1, 6.3).
        (Some(_), None) if http10 => return Err(400),
        (Some(false), None) => return Err(400),
        (Some(true), None) => Body::Unread,
        // A client that waits for `100 Continue` may never send the body: do not wait for it.
        (None, Some(n)) if n > 0 && expect => Body::Unread,
        (None, Some(0)) | (None, None) => Body::None,
        (None, Some(n)) => Body::Length(n),
    };
    let (path, trailing_slash, query) = split_target(&target).ok_or(400u16)?;
    Ok(Request {
        method,
        target,
        path,
        trailing_slash,
        query,
        http10,
        keep_alive: !close && (!http10 || keep_alive) && body != Body::Unread,
        body,
        range,
        if_match,
        if_none_match,
        if_modified_since: ims,
        if_unmodified_since: ius,
        if_range,
    })
}

/// The headers `check` reads.
const KNOWN: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
    "if-none-match",
    "if-match",
    "range",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
];

/// A header that may appear once: a second one is a bad request.
fn once(slot: &mut Option<String>, value: &str) -> Result<(), u16> {
    if slot.replace(value.to_string()).is_some() {
        return Err(400);
    }
    Ok(())
}

/// A list header: lines join into one list (RFC 9110 5.3).
fn append(slot: &mut Option<String>, value: &str) {
    match slot {
        Some(list) => {
            list.push_str(", ");
            list.push_str(value);
        }
        None => *slot = Some(value.to_string()),
    }
}

/// `uri-host [ ":" port ]`: the characters RFC 3986 allows in a reg-name or an IP literal.
fn valid_host(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:[]".contains(&b))
}

/// The decoded path (without its leading `/`), whether it ends with `/`, and the query (`?...`
/// or empty) of an origin-form (`/path?q`) or absolute-form (`http://host/path`) target.
fn split_target(target: &str) -> Option<(PathBuf, bool, String)> {
    let scheme = ["http://", "https://"].into_iter().find(|p| {
        target
            .get(..p.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(p))
    });
    let rest = match scheme {
        // absolute-form: the path starts where the authority ends.
        Some(p) => {
            let after = &target[p.len()..];
            &after[after.find(['/', '?']).unwrap_or(after.len())..]
        }
        None => target,
    };
    let rest = if rest.is_empty() { "/" } else { rest };
    if !rest.starts_with('/') {
        return None; // asterisk-form and authority-form are not for GET or HEAD
    }
    let (raw_path, query) = match rest.find('?') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let decoded = percent_decode(raw_path.as_bytes())?;
    let trailing_slash = decoded.ends_with(b"/");
    let start = decoded
        .iter()
        .position(|&b| b != b'/')
        .unwrap_or(decoded.len());
    let path = PathBuf::from(OsString::from_vec(decoded[start..].to_vec()));
    Some((path, trailing_slash, query.to_string()))
}

/// Percent-decodes `bytes`; `None` for a bad escape or a NUL byte. Names need not be UTF-8.
fn percent_decode(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    (!out.contains(&0)).then_some(out)
}
