//! [`BufReader`] and [`BufWriter`] over owned-buffer streams.

use super::owned::{AsyncReadOwned, AsyncWriteOwned};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use std::fmt;
use std::io;

const DEFAULT_CAPACITY: usize = 8 * 1024;

/// Copies `src` into the spare capacity of `dst` from its start, as a read would.
fn fill<B: IoBufMut>(mut dst: B, src: &[u8]) -> (usize, B) {
    let n = src.len().min(dst.bytes_total());
    // SAFETY: `dst` has `bytes_total() >= n` writable bytes at its stable pointer, which cannot
    // overlap `src` (the reader's own buffer); after the copy the first `n` bytes are written.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), dst.stable_mut_ptr(), n);
        dst.set_init(n);
    }
    (n, dst)
}

/// The initialised bytes of an owned buffer.
fn init_bytes<B: IoBuf>(buf: &B) -> &[u8] {
    // SAFETY: `IoBuf` guarantees `bytes_init()` initialised bytes at `stable_ptr()`, alive as
    // long as the borrow of `buf`.
    unsafe { std::slice::from_raw_parts(buf.stable_ptr(), buf.bytes_init()) }
}

/// Buffers reads from an [`AsyncReadOwned`]: many small reads cost one read of the stream, and
/// line- or delimiter-oriented reading becomes possible.
///
/// ```
/// # hoop_runtime::block_on(async {
/// use hoop_runtime::io::BufReader;
/// let (r, w) = hoop_runtime::io::pipe().unwrap();
/// w.write_all(b"one\ntwo\n".to_vec()).await.0.unwrap();
/// drop(w);
/// let mut reader = BufReader::new(r);
/// let mut line = String::new();
/// reader.read_line(&mut line).await.unwrap();
/// assert_eq!(line, "one\n");
/// # });
/// ```
pub struct BufReader<R> {
    inner: R,
    /// `None` only while a read of the inner stream is in flight (or after one was cancelled).
    buf: Option<Vec<u8>>,
    pos: usize,
    capacity: usize,
}

impl<R: AsyncReadOwned> BufReader<R> {
    /// A reader with an 8 KiB buffer.
    pub fn new(inner: R) -> Self {
        Self::with_capacity(DEFAULT_CAPACITY, inner)
    }

    /// A reader with a buffer of `capacity` bytes.
    pub fn with_capacity(capacity: usize, inner: R) -> Self {
        let capacity = capacity.max(1);
        BufReader {
            inner,
            buf: Some(Vec::with_capacity(capacity)),
            pos: 0,
            capacity,
        }
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The underlying stream (reading from it directly skips buffered bytes).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The underlying stream; buffered bytes are lost.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The bytes buffered and not yet consumed.
    pub fn buffer(&self) -> &[u8] {
        self.buf.as_deref().map_or(&[], |b| &b[self.pos..])
    }

    /// The buffered bytes, reading from the stream first if there are none; empty at the end
    /// of the stream.
    pub async fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.buffer().is_empty() {
            // A read cancelled earlier took the buffer with it (its bytes are lost with it, as
            // for any cancelled read): start a fresh one.
            let capacity = self.capacity;
            let mut buf = self
                .buf
                .take()
                .unwrap_or_else(|| Vec::with_capacity(capacity));
            buf.clear();
            self.pos = 0;
            let (res, buf) = self.inner.read(buf).await;
            self.buf = Some(buf);
            if let Err(e) = res {
                self.buf.as_mut().expect("just put back").clear();
                return Err(e);
            }
        }
        Ok(self.buffer())
    }

    /// Marks `n` buffered bytes as read.
    pub fn consume(&mut self, n: usize) {
        let len = self.buf.as_ref().map_or(0, Vec::len);
        self.pos = (self.pos + n).min(len);
    }

    /// Appends bytes to `out` up to and including `byte` (or the end of the stream); returns
    /// how many were appended.
    pub async fn read_until(&mut self, byte: u8, out: &mut Vec<u8>) -> io::Result<usize> {
        let mut total = 0;
        loop {
            let available = self.fill_buf().await?;
            if available.is_empty() {
                return Ok(total);
            }
            let (found, n) = match available.iter().position(|&b| b == byte) {
                Some(i) => (true, i + 1),
                None => (false, available.len()),
            };
            out.extend_from_slice(&available[..n]);
            self.consume(n);
            total += n;
            if found {
                return Ok(total);
            }
        }
    }

    /// Appends one line (with its `\n`, if any) to `out`; `Ok(0)` at the end of the stream.
    /// Invalid UTF-8 is an `InvalidData` error, and `out` is left as it was.
    pub async fn read_line(&mut self, out: &mut String) -> io::Result<usize> {
        let mut bytes = Vec::new();
        let n = self.read_until(b'\n', &mut bytes).await?;
        let line =
            String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        out.push_str(&line);
        Ok(n)
    }
}

impl<R: AsyncReadOwned> AsyncReadOwned for BufReader<R> {
    async fn read<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
        // Large reads with nothing buffered go straight to the stream.
        if self.buffer().is_empty() && buf.bytes_total() >= self.capacity {
            return self.inner.read(buf).await;
        }
        if let Err(e) = self.fill_buf().await {
            return (Err(e), buf);
        }
        let (n, buf) = fill(buf, self.buffer());
        self.consume(n);
        (Ok(n), buf)
    }
}

impl<R: fmt::Debug> fmt::Debug for BufReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufReader")
            .field("inner", &self.inner)
            .field(
                "buffered",
                &self.buf.as_ref().map_or(0, |b| b.len() - self.pos),
            )
            .finish()
    }
}

/// Buffers writes to an [`AsyncWriteOwned`]: small writes are gathered and go out together on
/// [`flush`](AsyncWriteOwned::flush), when the buffer fills, or on `shutdown`. Bytes still
/// buffered when the writer is dropped are lost: flush first. A cancelled flush (or a cancelled
/// write that was flushing) loses the bytes it was writing, some of which may have been sent.
///
/// ```
/// # hoop_runtime::block_on(async {
/// use hoop_runtime::io::{AsyncWriteOwned, BufWriter};
/// let (r, w) = hoop_runtime::io::pipe().unwrap();
/// let mut writer = BufWriter::new(w);
/// writer.write_all(b"a".to_vec()).await.0.unwrap();
/// writer.write_all(b"b".to_vec()).await.0.unwrap();
/// writer.flush().await.unwrap();
/// let (n, buf) = r.read(Vec::with_capacity(8)).await;
/// assert_eq!(&buf[..n.unwrap()], b"ab");
/// # });
/// ```
pub struct BufWriter<W> {
    inner: W,
    /// `None` only while a write of the buffer is in flight.
    buf: Option<Vec<u8>>,
    capacity: usize,
}

impl<W: AsyncWriteOwned> BufWriter<W> {
    /// A writer with an 8 KiB buffer.
    pub fn new(inner: W) -> Self {
        Self::with_capacity(DEFAULT_CAPACITY, inner)
    }

    /// A writer with a buffer of `capacity` bytes.
    pub fn with_capacity(capacity: usize, inner: W) -> Self {
        let capacity = capacity.max(1);
        BufWriter {
            inner,
            buf: Some(Vec::with_capacity(capacity)),
            capacity,
        }
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The underlying stream (writing to it directly skips buffered bytes).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The underlying stream; buffered bytes are lost (flush first).
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// The bytes buffered and not yet written.
    pub fn buffer(&self) -> &[u8] {
        self.buf.as_deref().unwrap_or_default()
    }

    async fn flush_buf(&mut self) -> io::Result<()> {
        if self.buffer().is_empty() {
            return Ok(());
        }
        let Some(buf) = self.buf.take() else {
            return Ok(());
        };
        let (res, mut buf) = self.inner.write_all(buf).await;
        buf.clear();
        self.buf = Some(buf);
        res
    }
}

impl<W: AsyncWriteOwned> AsyncWriteOwned for BufWriter<W> {
    async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        let len = buf.bytes_init();
        if self.buffer().len() + len > self.capacity {
            if let Err(e) = self.flush_buf().await {
                return (Err(e), buf);
            }
        }
        if len >= self.capacity {
            return self.inner.write(buf).await;
        }
        // A flush cancelled earlier took the buffer (and the bytes it was writing) with it.
        let capacity = self.capacity;
        self.buf
            .get_or_insert_with(|| Vec::with_capacity(capacity))
            .extend_from_slice(init_bytes(&buf));
        (Ok(len), buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.flush_buf().await?;
        self.inner.flush().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.flush_buf().await?;
        self.inner.shutdown().await
    }
}

impl<W: fmt::Debug> fmt::Debug for BufWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufWriter")
            .field("inner", &self.inner)
            .field("buffered", &self.buf.as_ref().map_or(0, Vec::len))
            .finish()
    }
}
