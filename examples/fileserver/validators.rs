//! Validators and preconditions (RFC 9110 8.8, 13): a file's `ETag` and `Last-Modified`, what
//! `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since` and `If-Range` make of
//! them, and the one `Range` form served (a single byte range).

use crate::request::Request;
use hoop::fs::Metadata;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What identifies one version of a file.
pub struct Validators {
    /// A strong entity tag: the modification time in nanoseconds and the size, as nginx builds
    /// it (with seconds).
    pub etag: String,
    /// The modification time, whole seconds (what an HTTP date can say).
    pub modified: SystemTime,
}

impl Validators {
    pub fn of(meta: &Metadata) -> Validators {
        let since = meta
            .modified()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Validators {
            etag: format!("\"{:x}-{:x}\"", since.as_nanos(), meta.len()),
            modified: UNIX_EPOCH + Duration::from_secs(since.as_secs()),
        }
    }

    /// `Last-Modified`'s value.
    pub fn last_modified(&self) -> httpdate::HttpDate {
        self.modified.into()
    }
}

/// What the preconditions of a GET or HEAD decide (RFC 9110 13.2.2, in its order).
#[derive(Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Serve it.
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

pub fn evaluate(req: &Request, v: &Validators) -> Precondition {
    if let Some(list) = &req.if_match {
        if !matches_list(list, &v.etag, true) {
            return Precondition::Failed;
        }
    } else if let Some(date) = req.if_unmodified_since.as_deref().and_then(date) {
        if v.modified > date {
            return Precondition::Failed;
        }
    }
    if let Some(list) = &req.if_none_match {
        if matches_list(list, &v.etag, false) {
            return Precondition::NotModified;
        }
    } else if let Some(date) = req.if_modified_since.as_deref().and_then(date) {
        if v.modified <= date {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// Whether `Range` applies: without `If-Range`, or with one that names this version (a strong
/// tag equal to ours, or our exact `Last-Modified` date).
pub fn range_applies(req: &Request, v: &Validators) -> bool {
    match req.if_range.as_deref() {
        None => true,
        Some(tag) if tag.starts_with('"') => tag == v.etag,
        Some(tag) if tag.starts_with("W/") => false, // weak tags never validate a range
        Some(d) => date(d) == Some(v.modified),
    }
}

fn date(text: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(text).ok()
}

/// `*` or a list of entity tags; `strong` compares as `If-Match` does (weak tags never match),
/// otherwise as `If-None-Match` (the `W/` prefix ignored).
fn matches_list(list: &str, etag: &str, strong: bool) -> bool {
    list.split(',').map(str::trim).any(|tag| {
        tag == "*"
            || match tag.strip_prefix("W/") {
                Some(weak) => !strong && weak == etag,
                None => tag == etag,
            }
    })
}

/// A single byte range of a `len`-byte body: `Ok(None)` for the whole body (no range, or one
/// this server does not split: several ranges, another unit), `Err(())` if unsatisfiable.
pub fn parse_range(header: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header
        .split_once('=')
        .filter(|(unit, _)| unit.trim().eq_ignore_ascii_case("bytes"))
        .map(|(_, spec)| spec.trim())
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // several ranges: the whole body is a valid answer
    }
    // A position too large for u64 is past any file: as good as the largest.
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().unwrap_or(u64::MAX))
    };
    // A range that does not parse is ignored (RFC 9110 14.2): the whole body.
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let Some(n) = num(n) else { return Ok(None) };
            if n == 0 || len == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len - 1)
        }
        (s, "") => match num(s) {
            Some(s) => (s, len.saturating_sub(1)),
            None => return Ok(None),
        },
        (s, e) => match (num(s), num(e)) {
            (Some(s), Some(e)) if s <= e => (s, e.min(len.saturating_sub(1))),
            _ => return Ok(None),
        },
    };
    if start >= len {
        return Err(());
    }
    Ok(Some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-1000", 100), Ok(Some((0, 99))));
        assert_eq!(
            parse_range("bytes=0-99999999999999999999999", 100),
            Ok(Some((0, 99)))
        );
        assert_eq!(
            parse_range("bytes=-99999999999999999999999", 100),
            Ok(Some((0, 99)))
        );
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=-0", 100), Err(()));
        for ignored in [
            "bytes=",
            "bytes=abc",
            "bytes=5-1",
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=1",
        ] {
            assert_eq!(parse_range(ignored, 100), Ok(None), "{ignored}");
        }
    }
}
