//! One request's response: the file (or directory) it names, opened beneath the root, checked by
//! one `statx` of the open fd, then its preconditions, its range and its body.

use crate::hot;
use crate::listing;
use crate::request::Request;
use crate::response::{self, Head};
use crate::validators::{self, Precondition, Validators};
use hoop::fs::{Dir, File, Metadata, OpenOptions};
use hoop::net::TcpStream;
use hoop::IoBuf;
use std::future::Future;
use std::io;
use std::path::Path;
use std::time::Duration;

/// What every request of a worker shares.
pub struct Site {
    pub root: Dir,
    /// Directories without `index.html` are listed (else 403).
    pub listing: bool,
    /// Small files read a moment ago go out by `sendfile` (see `hot.rs`).
    pub sendfile: bool,
    /// How long one chunk of a response may take to go out.
    pub send_timeout: Duration,
}

/// What a response was, for the access log.
pub struct Served {
    pub status: u16,
    pub bytes: u64,
}

/// Bodies up to this size go out with their head in one send (read into the head's buffer).
const SMALL_BODY: u64 = 64 * 1024;
/// Bytes of a large body sent per `send_file` call, each within the send timeout.
const SEND_CHUNK: u64 = 4 << 20;

/// `fut`, or `TimedOut` if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, fut: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    hoop::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// A response on its way: the connection, its reusable output buffer, and how to answer.
pub struct Reply<'a> {
    pub stream: &'a TcpStream,
    /// The connection's buffer, reused from response to response.
    pub out: &'a mut Vec<u8>,
    pub send_timeout: Duration,
    pub head_only: bool,
    pub keep: bool,
    /// `Site::sendfile`.
    pub sendfile: bool,
}

impl Reply<'_> {
    /// Sends what `out` holds (within the send timeout); how many bytes.
    async fn send(&mut self) -> io::Result<u64> {
        let bytes = std::mem::take(self.out);
        let n = bytes.len() as u64;
        match hoop::time::timeout(self.send_timeout, self.stream.write_all(bytes)).await {
            Ok((res, bytes)) => {
                *self.out = bytes;
                res.map(|()| n)
            }
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    /// A short response with no file behind it.
    async fn short(&mut self, status: u16, extra: &[(&str, &str)]) -> io::Result<Served> {
        response::simple(self.out, status, self.head_only, self.keep, extra);
        let bytes = self.send().await?;
        Ok(Served { status, bytes })
    }
}

/// Answers `req`.
pub async fn respond(reply: &mut Reply<'_>, site: &Site, req: &Request) -> io::Result<Served> {
    if req.method != "GET" && !reply.head_only {
        return reply.short(405, &[("Allow", "GET, HEAD")]).await;
    }
    let (file, meta, rel) = match open(&site.root, &req.path).await {
        Ok(found) => found,
        Err(status) => return reply.short(status, &[]).await,
    };
    if !meta.is_dir() {
        return send_file(reply, req, &file, &meta, &rel).await;
    }
    if !req.trailing_slash {
        // Relative links in the page need the slash: send the client to it. Built from the
        // resolved path, never the raw target (`//host` would be another site).
        let location = format!("{}/{}", url_path(&rel), req.query);
        return reply.short(301, &[("Location", &location)]).await;
    }
    let index = rel.join("index.html");
    if let Ok((file, meta, rel)) = open(&site.root, &index).await {
        if meta.is_file() {
            return send_file(reply, req, &file, &meta, &rel).await;
        }
    }
    if !site.listing {
        return reply.short(403, &[]).await;
    }
    let shown = match url_path(&rel) {
        root if root.is_empty() => "/".to_string(),
        _ => format!("/{}", rel.to_string_lossy()),
    };
    let page = match listing::render(&site.root, &rel, &shown).await {
        Ok(page) => page,
        Err(e) => return reply.short(status_of(&e), &[]).await,
    };
    Head::start(reply.out, 200)
        .header("Content-Type", "text/html; charset=utf-8")
        .header("Content-Length", page.len())
        .header("Cache-Control", "no-cache")
        .finish(reply.keep);
    if !reply.head_only {
        reply.out.extend_from_slice(page.as_bytes());
    }
    let bytes = reply.send().await?;
    Ok(Served { status: 200, bytes })
}

/// Opens `rel` beneath the root for reading, and takes its metadata from the open fd: a
/// regular file or a directory, or the status to answer with.
///
/// The open is `O_NONBLOCK | O_NOCTTY`, so a FIFO someone put in the tree neither blocks the
/// open (a FIFO's open waits for a writer) nor is ever read (it is not a regular file): 404. A
/// device node is opened before it is refused, as nginx does: opening some devices has side
/// effects, and creating one takes `CAP_MKNOD`; serve trees from a `nodev` mount to rule it out.
async fn open(root: &Dir, rel: &Path) -> Result<(File, Metadata, std::path::PathBuf), u16> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let options = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .clone();
    let file = root
        .open_file(rel, &options)
        .await
        .map_err(|e| status_of(&e))?;
    // One metadata call per request, on the worker (no io-wq or pool hop).
    let meta = file.cached_metadata().await.map_err(|e| status_of(&e))?;
    if !meta.is_file() && !meta.is_dir() {
        return Err(404);
    }
    Ok((file, meta, rel.to_path_buf()))
}

/// `rel` as the path of a URL: `/` and each component percent-encoded.
fn url_path(rel: &Path) -> String {
    let mut url = String::new();
    for part in rel.components() {
        if let std::path::Component::Normal(name) = part {
            url.push('/');
            url.push_str(&listing::percent_encode(
                std::os::unix::ffi::OsStrExt::as_bytes(name),
            ));
        }
    }
    url
}

/// The status for a failed open or stat.
fn status_of(e: &io::Error) -> u16 {
    match hoop::fs::os_error(e) {
        Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG) => 404,
        // No permission, or a path that leads outside the root (`..`, a symlink).
        Some(libc::EACCES | libc::EPERM | libc::EXDEV | libc::ELOOP) => 403,
        Some(libc::EINVAL) => 400,
        _ => 500,
    }
}

/// The response for a regular file: 304, 412, 416, 206 or 200.
async fn send_file(
    reply: &mut Reply<'_>,
    req: &Request,
    file: &File,
    meta: &Metadata,
    rel: &Path,
) -> io::Result<Served> {
    let len = meta.len();
    let v = Validators::of(meta);
    match validators::evaluate(req, &v) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            Head::start(reply.out, 304)
                .header("ETag", &v.etag)
                .header("Last-Modified", v.last_modified())
                .finish(reply.keep);
            let bytes = reply.send().await?;
            return Ok(Served { status: 304, bytes });
        }
        Precondition::Failed => return reply.short(412, &[]).await,
    }
    // Range is defined for GET only (RFC 9110 14.2).
    let range = match req.range.as_deref() {
        Some(r) if !reply.head_only && validators::range_applies(req, &v) => {
            validators::parse_range(r, len)
        }
        _ => Ok(None),
    };
    let (status, start, body_len) = match range {
        Ok(None) => (200, 0, len),
        Ok(Some((start, end))) => (206, start, end - start + 1),
        Err(()) => {
            let range = format!("bytes */{len}");
            return reply.short(416, &[("Content-Range", &range)]).await;
        }
    };
    let mime = mime_guess::from_path(rel).first_or_octet_stream();
    let charset = if mime.type_() == "text" || mime.essence_str() == "application/javascript" {
        "; charset=utf-8"
    } else {
        ""
    };
    let mut head = Head::start(reply.out, status)
        .header("ETag", &v.etag)
        .header("Last-Modified", v.last_modified())
        .header(
            "Content-Type",
            format_args!("{}{charset}", mime.essence_str()),
        )
        .header("Content-Length", body_len)
        .header("Accept-Ranges", "bytes");
    if status == 206 {
        head = head.header(
            "Content-Range",
            format_args!("bytes {start}-{}/{len}", start + body_len - 1),
        );
    }
    let head_len = head.finish(reply.keep);
    if reply.head_only || body_len == 0 {
        let bytes = reply.send().await?;
        return Ok(Served { status, bytes });
    }
    if body_len <= SMALL_BODY && reply.sendfile && hot::is_hot(meta) {
        // Read a moment ago, so in the page cache: the body goes by `sendfile`, no copy.
        let sent = within(
            reply.send_timeout,
            reply
                .stream
                .send_file_cached(&reply.out[..head_len], file, start, body_len),
        )
        .await?;
        if sent < body_len {
            return Err(truncated());
        }
        return Ok(Served {
            status,
            bytes: head_len as u64 + sent,
        });
    }
    if body_len <= SMALL_BODY {
        // Head and body in one buffer, one send: the file is read right behind the head.
        let body_len = body_len as usize;
        reply.out.reserve(body_len);
        let buf = std::mem::take(reply.out);
        let (res, slice) = file
            .read_exact_at(buf.slice(head_len..head_len + body_len), start)
            .await;
        *reply.out = slice.into_inner();
        // A file that shrank since its stat cannot give the promised bytes: the connection
        // closes without a response it could not complete.
        res?;
        if start == 0 && body_len as u64 == len {
            hot::read_now(meta);
        }
        let bytes = reply.send().await?;
        return Ok(Served { status, bytes });
    }
    let mut sent = reply.send().await?;
    // The body goes out by the fastest way the driver has (see `hoop::io::send_file`), a chunk
    // at a time, each within the send timeout.
    let end = start + body_len;
    let mut at = start;
    while at < end {
        let n = within(
            reply.send_timeout,
            reply.stream.send_file(file, at, (end - at).min(SEND_CHUNK)),
        )
        .await?;
        if n == 0 {
            return Err(truncated());
        }
        at += n;
        sent += n;
    }
    Ok(Served {
        status,
        bytes: sent,
    })
}

/// The file shrank while it was sent: its body cannot be completed, and the connection must
/// close (the client would wait for the promised bytes).
fn truncated() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "file truncated while sent")
}
