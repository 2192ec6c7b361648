//! [`Compat`]: the ecosystem's poll-based I/O traits over hoop's streams and files.

mod futures_io;
#[cfg(feature = "hyper")]
mod hyper_rt;
#[cfg(feature = "tokio")]
mod tokio_io;

#[cfg(feature = "hyper")]
pub use hyper_rt::{HyperExecutor, HyperTimer};

use crate::buf::{IoBuf, Slice};
use crate::fd::SharedFd;
use crate::op::rw::{FdKind, Read, Write, CURRENT_POSITION};
use crate::op::Op;
use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice, SeekFrom};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// What [`Compat`] needs from an I/O object: its fd and whether it is a stream or a file.
///
/// Implemented by hoop's TCP and Unix streams, pipes and files.
pub trait CompatSource {
    /// The fd reads and writes go to; operations keep a clone of it while in flight.
    fn compat_fd(&self) -> &SharedFd;

    /// [`FdKind::Stream`] for sockets and pipes, [`FdKind::File`] for regular files.
    fn compat_kind(&self) -> FdKind;
}

/// Default size of the read buffer: a read asks the kernel for at least this much.
const READ_CAPACITY: usize = 16 * 1024;
/// Default size of the write buffer: how much `poll_write` accepts before waiting for the kernel.
const WRITE_CAPACITY: usize = 64 * 1024;
/// A large caller buffer gets a read this large at most in one operation.
const MAX_READ: usize = 1 << 20;

/// An I/O object with `futures::io::{AsyncRead, AsyncWrite, AsyncBufRead, AsyncSeek}`, and (with
/// the `tokio` feature) `tokio::io::{AsyncRead, AsyncWrite, AsyncBufRead, AsyncSeek}`, and (with
/// the `hyper` feature) `hyper::rt::{Read, Write}`.
///
/// The poll traits lend the caller's buffer for the duration of one `poll_read`, but io_uring
/// writes into a buffer *after* the call returns. So `Compat` reads into a buffer of its own and
/// copies out, and writes by copying into a buffer of its own that it submits behind the caller
/// (write-behind, like a `BufWriter`). The costs and the rules that follow:
///
/// - **one extra copy per byte** each way. For bulk transfers the owned-buffer API
///   ([`AsyncReadOwned`](super::AsyncReadOwned), `read(buf).await`) avoids it; `Compat` is for
///   code written against the poll traits: hyper, codecs, TLS, `tokio-util`;
/// - **no data is lost to cancellation**: the read operation lives in the `Compat`, not in the
///   caller's future. If a `read()` future is dropped (a `select!`, a timeout) while the kernel
///   is filling the buffer, the bytes wait in the `Compat` for the next read;
/// - **writes are accepted before they reach the kernel**: `poll_write` returns as soon as the
///   bytes are copied; the kernel's answer to them (an `EPIPE`, a reset) comes back from a later
///   `poll_write`, `poll_flush` or `poll_shutdown`. Flush (or shut down) before dropping a
///   `Compat`: bytes still in its buffer are dropped with it (the write already in the kernel
///   completes);
/// - files are read and written at their current position (`IORING_OP_READ` at offset -1), so
///   `O_APPEND` works and [`poll_seek`](Compat::poll_seek) moves the position.
///
/// ```
/// use futures_util::io::{AsyncReadExt, AsyncWriteExt};
/// # hoop_runtime::block_on(async {
/// let (r, w) = hoop_runtime::io::pipe().unwrap();
/// let (mut r, mut w) = (hoop_runtime::io::Compat::new(r), hoop_runtime::io::Compat::new(w));
/// w.write_all(b"hello").await.unwrap();
/// w.flush().await.unwrap();
/// let mut got = [0u8; 5];
/// r.read_exact(&mut got).await.unwrap();
/// assert_eq!(&got, b"hello");
/// # });
/// ```
pub struct Compat<S> {
    io: S,
    fd: SharedFd,
    kind: FdKind,
    reader: Reader,
    writer: Writer,
    /// A seek started with tokio's `start_seek`, finished by `poll_complete`.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    seek: Option<SeekFrom>,
}

struct Reader {
    /// Bytes read and not yet consumed are `data[pos..]`; empty while a read is in flight (the
    /// vector is inside the operation).
    data: Vec<u8>,
    pos: usize,
    pending: Option<Op<Read<Vec<u8>>>>,
    capacity: usize,
}

struct Writer {
    /// Bytes accepted and not yet submitted.
    staged: Vec<u8>,
    /// The write in the kernel: the rest of an earlier `staged` buffer.
    pending: Option<Op<Write<Slice<Vec<u8>>>>>,
    /// A spare vector, to stage into while another is in flight without allocating.
    spare: Vec<u8>,
    /// The kernel's error for bytes already accepted, reported by the next call.
    error: Option<io::Error>,
    capacity: usize,
}

impl<S: CompatSource> Compat<S> {
    /// Wraps `io` with the default buffer sizes (16 KiB read, 64 KiB write).
    pub fn new(io: S) -> Self {
        Self::with_capacity(READ_CAPACITY, WRITE_CAPACITY, io)
    }

    /// Wraps `io`, reading at least `read` bytes per operation and accepting up to `write` bytes
    /// before waiting for the kernel (both at least 1).
    pub fn with_capacity(read: usize, write: usize, io: S) -> Self {
        let fd = io.compat_fd().clone();
        let kind = io.compat_kind();
        Compat {
            io,
            fd,
            kind,
            reader: Reader {
                data: Vec::new(),
                pos: 0,
                pending: None,
                capacity: read.max(1),
            },
            writer: Writer {
                staged: Vec::new(),
                pending: None,
                spare: Vec::new(),
                error: None,
                capacity: write.max(1),
            },
            seek: None,
        }
    }
}

impl<S> Compat<S> {
    /// The wrapped object.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The wrapped object. Reading or writing it directly while the `Compat` holds buffered
    /// bytes reorders the stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// Bytes read from the kernel and not yet returned to the caller.
    pub fn buffered_read(&self) -> &[u8] {
        &self.reader.data[self.reader.pos..]
    }

    /// Gives back the wrapped object. Flush first: bytes accepted but not yet written are
    /// dropped, and so are bytes read but not yet returned (see [`buffered_read`]).
    ///
    /// [`buffered_read`]: Compat::buffered_read
    pub fn into_inner(self) -> S {
        self.io
    }

    /// `futures::io::AsyncBufRead::poll_fill_buf`: the buffered bytes, reading more if there are
    /// none; empty at end of stream.
    pub fn poll_fill_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        if self.kind == FdKind::File
            && self.reader.pos == self.reader.data.len()
            && self.reader.pending.is_none()
        {
            // A file has one position: bytes accepted by `poll_write` go out before a read, so
            // the read sees them and starts after them.
            ready!(self.poll_flush(cx))?;
        }
        let r = &mut self.reader;
        if r.pos == r.data.len() {
            if r.pending.is_none() {
                let mut buf = std::mem::take(&mut r.data);
                buf.clear();
                buf.reserve(r.capacity);
                r.pos = 0;
                r.pending = Some(Op::new(Read::new(
                    &self.fd,
                    buf,
                    CURRENT_POSITION,
                    self.kind,
                )));
            }
            let op = r.pending.as_mut().expect("a read is pending");
            let (res, buf) = ready!(Pin::new(op).poll(cx));
            r.pending = None;
            r.data = buf;
            r.pos = 0;
            if let Err(e) = res {
                r.data.clear();
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(&self.reader.data[self.reader.pos..]))
    }

    /// Marks `n` buffered bytes as returned to the caller.
    pub fn consume(&mut self, n: usize) {
        let r = &mut self.reader;
        r.pos = (r.pos + n).min(r.data.len());
    }

    /// Reads into `dst`; `Ok(0)` at end of stream (or for an empty `dst`).
    pub fn poll_read(&mut self, cx: &mut Context<'_>, dst: &mut [u8]) -> Poll<io::Result<usize>> {
        if dst.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let r = &mut self.reader;
        if r.pos == r.data.len() && r.pending.is_none() {
            // Let a large caller buffer be filled by one operation.
            r.data.reserve(dst.len().min(MAX_READ));
        }
        let got = ready!(self.poll_fill_buf(cx))?;
        let n = got.len().min(dst.len());
        dst[..n].copy_from_slice(&got[..n]);
        self.consume(n);
        Poll::Ready(Ok(n))
    }

    /// Accepts bytes from `src` into the write buffer (submitting it if the kernel is idle) and
    /// returns how many; waits only while the buffer is full.
    pub fn poll_write(&mut self, cx: &mut Context<'_>, src: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(src)])
    }

    /// Like [`poll_write`](Compat::poll_write), gathering from several slices.
    pub fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        srcs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = srcs.iter().map(|s| s.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        if self.kind == FdKind::File {
            // The kernel's position is past the bytes read ahead: move it back to where the
            // caller is, so the write lands there.
            ready!(self.poll_drop_read_ahead(cx))?;
        }
        loop {
            // Collect a finished write without waiting, so the next one can start at once.
            let _ = self.poll_pending_write(cx);
            if let Some(e) = self.writer.error.take() {
                return Poll::Ready(Err(e));
            }
            let room = self
                .writer
                .capacity
                .saturating_sub(self.writer.staged.len());
            if room > 0 {
                let mut taken = 0;
                for s in srcs {
                    let n = s.len().min(room - taken);
                    self.writer.staged.extend_from_slice(&s[..n]);
                    taken += n;
                    if taken == room {
                        break;
                    }
                }
                // Start the write now if the kernel is idle; its result is collected later.
                // (The poll registers `cx`'s waker, so a completion wakes whoever wrote last.)
                if self.writer.pending.is_none() {
                    self.submit_staged();
                    let _ = self.poll_pending_write(cx);
                }
                return Poll::Ready(Ok(taken));
            }
            ready!(self.poll_pending_write(cx));
            if self.writer.pending.is_none() {
                self.submit_staged();
            }
        }
    }

    /// Waits until every accepted byte was written (or the kernel refused one).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_pending_write(cx));
            if let Some(e) = self.writer.error.take() {
                return Poll::Ready(Err(e));
            }
            if self.writer.staged.is_empty() {
                return Poll::Ready(Ok(()));
            }
            self.submit_staged();
        }
    }

    /// Flushes, then ends the write side: `shutdown(SHUT_WR)` for sockets (the peer reads end of
    /// stream), nothing more for pipes and files.
    pub fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_flush(cx))?;
        if self.kind == FdKind::Stream {
            // SAFETY: plain syscall on an fd this object keeps open.
            let rc = unsafe { libc::shutdown(self.fd.raw(), libc::SHUT_WR) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                // A pipe has no write side to shut down; ENOTCONN means the peer is gone already.
                if !matches!(e.raw_os_error(), Some(libc::ENOTSOCK | libc::ENOTCONN)) {
                    return Poll::Ready(Err(e));
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Moves a file's position (after flushing, and after the read in flight, if any, landed);
    /// bytes read ahead are dropped and accounted for, so `SeekFrom::Current` is relative to what
    /// the caller has read. Streams refuse with `ESPIPE`, like `lseek`.
    pub fn poll_seek(&mut self, cx: &mut Context<'_>, to: SeekFrom) -> Poll<io::Result<u64>> {
        ready!(self.poll_flush(cx))?;
        ready!(self.poll_land_read(cx));
        let ahead = (self.reader.data.len() - self.reader.pos) as i64;
        let (offset, whence) = match to {
            SeekFrom::Start(n) => (n as i64, libc::SEEK_SET),
            SeekFrom::End(n) => (n, libc::SEEK_END),
            SeekFrom::Current(n) => (n - ahead, libc::SEEK_CUR),
        };
        // SAFETY: plain syscall on an fd this object keeps open; no operation is in flight on it
        // (the write and read above finished), so nothing races the position.
        let pos = unsafe { libc::lseek(self.fd.raw(), offset, whence) };
        if pos < 0 {
            return Poll::Ready(Err(io::Error::last_os_error()));
        }
        self.reader.data.clear();
        self.reader.pos = 0;
        Poll::Ready(Ok(pos as u64))
    }

    /// Waits for the read in flight, if any, to land in the read buffer (a failed one leaves it
    /// empty).
    fn poll_land_read(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(op) = self.reader.pending.as_mut() {
            let (res, buf) = ready!(Pin::new(op).poll(cx));
            self.reader.pending = None;
            self.reader.data = buf;
            self.reader.pos = 0;
            if res.is_err() {
                self.reader.data.clear();
            }
        }
        Poll::Ready(())
    }

    /// For a file: drops the bytes read ahead and not returned, moving the file position back
    /// over them (`tokio::fs::File` does the same before a write).
    fn poll_drop_read_ahead(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_land_read(cx));
        let ahead = (self.reader.data.len() - self.reader.pos) as i64;
        if ahead > 0 {
            // SAFETY: plain syscall on an fd this object keeps open; no read is in flight (landed
            // above) and writes do not move the position until they are submitted.
            let rc = unsafe { libc::lseek(self.fd.raw(), -ahead, libc::SEEK_CUR) };
            if rc < 0 {
                return Poll::Ready(Err(io::Error::last_os_error()));
            }
        }
        self.reader.data.clear();
        self.reader.pos = 0;
        Poll::Ready(Ok(()))
    }

    /// Submits the staged bytes (the kernel must be idle).
    fn submit_staged(&mut self) {
        let w = &mut self.writer;
        debug_assert!(w.pending.is_none());
        if w.staged.is_empty() {
            return;
        }
        let buf = std::mem::replace(&mut w.staged, std::mem::take(&mut w.spare));
        let len = buf.len();
        w.pending = Some(Op::new(Write::new(
            &self.fd,
            buf.slice(..len),
            CURRENT_POSITION,
            self.kind,
        )));
    }

    /// Drives the write in flight to its end, resubmitting after short writes; `Ready` when the
    /// kernel is idle (an error is kept in `writer.error`).
    fn poll_pending_write(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let w = &mut self.writer;
            let Some(op) = w.pending.as_mut() else {
                return Poll::Ready(());
            };
            let (res, slice) = ready!(Pin::new(op).poll(cx));
            w.pending = None;
            let left = slice.bytes_init();
            let begin = slice.begin();
            let mut buf = slice.into_inner();
            match res {
                Ok(n) if n < left && n > 0 => {
                    let end = buf.len();
                    w.pending = Some(Op::new(Write::new(
                        &self.fd,
                        buf.slice(begin + n..end),
                        CURRENT_POSITION,
                        self.kind,
                    )));
                    continue;
                }
                Ok(n) if n == left => {}
                Ok(_) => w.error = Some(io::ErrorKind::WriteZero.into()),
                Err(e) => {
                    // The stream is broken: what was staged behind the failed write goes too.
                    w.staged.clear();
                    w.error = Some(e);
                }
            }
            buf.clear();
            if w.spare.capacity() < buf.capacity() {
                w.spare = buf;
            }
            return Poll::Ready(());
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Compat<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compat")
            .field("io", &self.io)
            .field("read_buffered", &(self.reader.data.len() - self.reader.pos))
            .field("read_in_flight", &self.reader.pending.is_some())
            .field("write_staged", &self.writer.staged.len())
            .field("write_in_flight", &self.writer.pending.is_some())
            .finish()
    }
}
