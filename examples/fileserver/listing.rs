//! The HTML listing of a directory without `index.html`: directories first, then files, each
//! sorted by name; names HTML-escaped and links percent-encoded (names need not be UTF-8);
//! sizes and modification times; dotfiles hidden, and so are entries the server would not serve
//! (FIFOs, devices, symlinks leading outside the root).

use hoop::fs::Dir;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::UNIX_EPOCH;

/// Entries listed at most; the page says how many more there are.
const MAX_ENTRIES: usize = 10_000;

struct Entry {
    name: OsString,
    dir: bool,
    len: u64,
    modified: u64,
}

/// The listing of `rel` (a directory beneath `root`), titled with the request's path `shown`.
pub async fn render(root: &Dir, rel: &Path, shown: &str) -> io::Result<String> {
    let dir = root.open_dir(rel).await?;
    let mut read = dir.read_dir().await?;
    let mut entries = Vec::new();
    let mut more = 0usize;
    while let Some(e) = read.next_entry().await? {
        let name = e.file_name().to_os_string();
        if name.as_bytes().starts_with(b".") {
            continue;
        }
        if entries.len() == MAX_ENTRIES {
            more += 1;
            continue;
        }
        let mut meta = e.metadata().await;
        if meta.as_ref().is_ok_and(|m| m.is_symlink()) {
            // Where it leads, if that is inside the root (resolved as a request would be).
            meta = root.metadata(rel.join(&name)).await;
        }
        let Ok(meta) = meta else { continue };
        if !meta.is_dir() && !meta.is_file() {
            continue;
        }
        entries.push(Entry {
            name,
            dir: meta.is_dir(),
            len: meta.len(),
            modified: meta
                .modified()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        });
    }
    entries.sort_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));
    Ok(page(shown, &entries, more))
}

fn page(shown: &str, entries: &[Entry], more: usize) -> String {
    let title = escape(shown);
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>Index of {title}</title>\n<style>\
         body{{font-family:system-ui,sans-serif;margin:2em}}\
         table{{border-collapse:collapse}}\
         td,th{{padding:.2em 1.5em .2em 0;text-align:left}}\
         td.n{{text-align:right;font-variant-numeric:tabular-nums}}\
         </style></head>\n<body><h1>Index of {title}</h1>\n<table>\n\
         <tr><th>Name</th><th>Size</th><th>Modified (UTC)</th></tr>\n"
    );
    if shown != "/" {
        html.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for e in entries {
        let slash = if e.dir { "/" } else { "" };
        let size = if e.dir {
            "<td></td>".to_string()
        } else {
            format!(
                "<td class=\"n\" title=\"{} bytes\">{}</td>",
                e.len,
                size(e.len)
            )
        };
        let _ = writeln!(
            html,
            "<tr><td><a href=\"{}{slash}\">{}{slash}</a></td>{size}<td>{}</td></tr>",
            percent_encode(e.name.as_bytes()),
            escape(&e.name.to_string_lossy()),
            utc(e.modified),
        );
    }
    html.push_str("</table>\n");
    if more > 0 {
        let _ = writeln!(html, "<p>and {more} more entries not shown</p>");
    }
    html.push_str("</body></html>\n");
    html
}

/// Text as HTML: the five characters that could end an element or an attribute, escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A name as one path segment of a URL: everything but RFC 3986's unreserved characters
/// percent-encoded (so `/`, `?`, `#`, `%` and non-UTF-8 bytes survive the round trip).
pub fn percent_encode(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `len` bytes for a person: `512 B`, `4.0 KiB`, `1.5 GiB`.
fn size(len: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if len < 1024 {
        return format!("{len} B");
    }
    let mut v = len as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `secs` since the epoch as `YYYY-MM-DD HH:MM` (UTC), by the days-to-civil algorithm of
/// H. Hinnant's date library.
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::utc(0), "1970-01-01 00:00");
        assert_eq!(super::utc(1_796_612_400), "2026-12-07 03:00");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(super::percent_encode(b"a b/\xff%"), "a%20b%2F%FF%25");
        assert_eq!(
            super::escape("<a href='x'>&"),
            "&lt;a href=&#39;x&#39;&gt;&amp;"
        );
        assert_eq!(super::size(4096), "4.0 KiB");
    }
}
