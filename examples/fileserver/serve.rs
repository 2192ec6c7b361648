//! One request's response: the file (or directory) it names, opened beneath the root, checked by
//! one `statx` of the open fd, then its preconditions, its range and its body.

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

/// Answers `req` on `stream`; `keep` says whether the connection stays open after it.
pub async fn respond(
    stream: &TcpStream,
    site: &Site,
    req: &Request,
    keep: bool,
) -> io::Result<Served> {
    let head_only = req.method == "HEAD";
    let send = |bytes: Vec<u8>| async {
        let n = bytes.len() as u64;
        within(site.send_timeout, async { stream.write_all(bytes).await.0 }).await?;
        Ok::<u64, io::Error>(n)
    };
    let short =
        |status: u16, extra: &[(&str, &str)]| response::simple(status, head_only, keep, extra);
    if req.method != "GET" && !head_only {
        let bytes = send(short(405, &[("Allow", "GET, HEAD")])).await?;
        return Ok(Served { status: 405, bytes });
    }
    let (file, meta, rel) = match open(&site.root, &req.path).await {
        Ok(found) => found,
        Err(status) => {
            let bytes = send(short(status, &[])).await?;
            return Ok(Served { status, bytes });
        }
    };
    if meta.is_dir() {
        if !req.trailing_slash {
            // Relative links in the page need the slash: send the client to it. Built from the
            // resolved path, never the raw target (`//host` would be another site).
            let location = format!("{}/{}", url_path(&rel), req.query);
            let bytes = send(short(301, &[("Location", &location)])).await?;
            return Ok(Served { status: 301, bytes });
        }
        let index = rel.join("index.html");
        if let Ok((file, meta, rel)) = open(&site.root, &index).await {
            if meta.is_file() {
                return send_file(stream, site, req, keep, &file, &meta, &rel).await;
            }
        }
        if !site.listing {
            let bytes = send(short(403, &[])).await?;
            return Ok(Served { status: 403, bytes });
        }
        let shown = format!("/{}", rel.to_string_lossy());
        let shown = if shown == "/." {
            "/".to_string()
        } else {
            shown
        };
        let page = match listing::render(&site.root, &rel, &shown).await {
            Ok(page) => page,
            Err(e) => {
                let status = status_of(&e);
                let bytes = send(short(status, &[])).await?;
                return Ok(Served { status, bytes });
            }
        };
        let mut bytes = Head::new(200)
            .header("Content-Type", "text/html; charset=utf-8")
            .header("Content-Length", page.len())
            .header("Cache-Control", "no-cache")
            .finish(keep, page.len());
        if !head_only {
            bytes.extend_from_slice(page.as_bytes());
        }
        let bytes = send(bytes).await?;
        return Ok(Served { status: 200, bytes });
    }
    send_file(stream, site, req, keep, &file, &meta, &rel).await
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
    stream: &TcpStream,
    site: &Site,
    req: &Request,
    keep: bool,
    file: &File,
    meta: &Metadata,
    rel: &Path,
) -> io::Result<Served> {
    let head_only = req.method == "HEAD";
    let len = meta.len();
    let v = Validators::of(meta);
    let last_modified = v.last_modified();
    let with_validators = |h: Head| {
        h.header("ETag", &v.etag)
            .header("Last-Modified", &last_modified)
    };
    let answer = |bytes: Vec<u8>, status: u16| async move {
        let n = bytes.len() as u64;
        within(site.send_timeout, async { stream.write_all(bytes).await.0 }).await?;
        Ok::<_, io::Error>(Served { status, bytes: n })
    };
    match validators::evaluate(req, &v) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            return answer(with_validators(Head::new(304)).finish(keep, 0), 304).await;
        }
        Precondition::Failed => {
            return answer(response::simple(412, head_only, keep, &[]), 412).await;
        }
    }
    // Range is defined for GET only (RFC 9110 14.2).
    let range = match req.range.as_deref() {
        Some(r) if !head_only && validators::range_applies(req, &v) => {
            validators::parse_range(r, len)
        }
        _ => Ok(None),
    };
    let (status, start, body_len) = match range {
        Ok(None) => (200, 0, len),
        Ok(Some((start, end))) => (206, start, end - start + 1),
        Err(()) => {
            let range = format!("bytes */{len}");
            let bytes = response::simple(416, head_only, keep, &[("Content-Range", &range)]);
            return answer(bytes, 416).await;
        }
    };
    let mut head = with_validators(Head::new(status))
        .header("Content-Type", content_type(rel))
        .header("Content-Length", body_len)
        .header("Accept-Ranges", "bytes");
    if status == 206 {
        head = head.header(
            "Content-Range",
            format!("bytes {start}-{}/{len}", start + body_len - 1),
        );
    }
    if head_only {
        return answer(head.finish(keep, 0), status).await;
    }
    if body_len <= SMALL_BODY {
        // Head and body in one buffer, one send: the file is read right behind the head.
        let bytes = head.finish(keep, body_len as usize);
        let at = bytes.len();
        let (res, slice) = file
            .read_exact_at(bytes.slice(at..at + body_len as usize), start)
            .await;
        // A file that shrank since its stat cannot give the promised bytes: the connection
        // closes without a response it could not complete.
        res?;
        return answer(slice.into_inner(), status).await;
    }
    let head = head.finish(keep, 0);
    let mut sent = head.len() as u64;
    within(site.send_timeout, async { stream.write_all(head).await.0 }).await?;
    // The body goes out by the fastest way the driver has (see `hoop::io::send_file`), a chunk
    // at a time, each within the send timeout.
    let end = start + body_len;
    let mut at = start;
    while at < end {
        let n = within(
            site.send_timeout,
            stream.send_file(file, at, (end - at).min(SEND_CHUNK)),
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

fn content_type(path: &Path) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    if mime.type_() == "text" || mime.essence_str() == "application/javascript" {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.essence_str().to_string()
    }
}
