//! Owned-buffer I/O traits — [`AsyncReadOwned`], [`AsyncWriteOwned`] — and [`copy`].
//!
//! Like `std::io::Read`/`Write`, but each call takes its buffer by value and gives it back with
//! the result, because the kernel fills or drains it after the call was submitted (see
//! [`crate::buf`]). Streams (TCP, Unix, pipes, their halves) implement them, and so do
//! [`BufReader`](super::BufReader) and [`BufWriter`](super::BufWriter), so code can be written
//! once for any of them.

use crate::buf::{BufResult, IoBuf, IoBufMut};
use std::future::Future;
use std::io;

/// A source of bytes read into owned buffers.
pub trait AsyncReadOwned {
    /// Reads into `buf` from its start up to its capacity; `Ok(0)` at end of stream.
    fn read<B: IoBufMut>(&mut self, buf: B) -> impl Future<Output = BufResult<usize, B>>;

    /// Fills `buf` to its capacity; `UnexpectedEof` if the stream ends first.
    fn read_exact<B: IoBufMut>(&mut self, buf: B) -> impl Future<Output = BufResult<(), B>> {
        async move {
            let total = buf.bytes_total();
            let mut done = 0;
            let mut slice = buf.slice(..);
            while done < total {
                let (res, s) = self.read(slice).await;
                let buf = s.into_inner();
                match res {
                    Ok(0) => return (Err(io::ErrorKind::UnexpectedEof.into()), buf),
                    Ok(n) => done += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return (Err(e), buf),
                }
                slice = buf.slice(done..);
            }
            (Ok(()), slice.into_inner())
        }
    }
}

/// A sink of bytes written from owned buffers.
pub trait AsyncWriteOwned {
    /// Writes some of `buf`'s initialised bytes; returns how many.
    fn write<B: IoBuf>(&mut self, buf: B) -> impl Future<Output = BufResult<usize, B>>;

    /// Writes everything buffered so far to the underlying sink (nothing to do for unbuffered
    /// streams).
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> {
        async { Ok(()) }
    }

    /// Flushes, then ends the stream (for sockets: sends FIN).
    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>>;

    /// Writes all of `buf`'s initialised bytes.
    fn write_all<B: IoBuf>(&mut self, buf: B) -> impl Future<Output = BufResult<(), B>> {
        async move {
            let total = buf.bytes_init();
            let mut done = 0;
            let mut slice = buf.slice(..total);
            while done < total {
                let (res, s) = self.write(slice).await;
                let buf = s.into_inner();
                match res {
                    Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                    Ok(n) => done += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return (Err(e), buf),
                }
                slice = buf.slice(done..total);
            }
            (Ok(()), slice.into_inner())
        }
    }
}

/// Copies everything `reader` gives until its end into `writer`, then flushes `writer`;
/// returns the number of bytes copied. Uses one 64 KiB buffer, moved between the two.
///
/// ```
/// # hoop_runtime::block_on(async {
/// let (r, mut w) = hoop_runtime::io::pipe().unwrap();
/// let (mut r2, mut w2) = hoop_runtime::io::pipe().unwrap();
/// w.write_all(b"copied".to_vec()).await.0.unwrap();
/// drop(w);
/// let mut r = r;
/// let n = hoop_runtime::io::copy(&mut r, &mut w2).await.unwrap();
/// drop(w2);
/// assert_eq!(n, 6);
/// let (res, buf) = r2.read(Vec::with_capacity(16)).await;
/// assert_eq!(&buf[..res.unwrap()], b"copied");
/// # });
/// ```
pub async fn copy<R, W>(reader: &mut R, writer: &mut W) -> io::Result<u64>
where
    R: AsyncReadOwned + ?Sized,
    W: AsyncWriteOwned + ?Sized,
{
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut total = 0u64;
    loop {
        buf.clear();
        let (res, b) = reader.read(buf).await;
        let n = match res {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                buf = b;
                continue;
            }
            Err(e) => return Err(e),
        };
        let (res, b) = writer.write_all(b).await;
        res?;
        buf = b;
        total += n as u64;
    }
    writer.flush().await?;
    Ok(total)
}
