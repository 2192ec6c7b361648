//! [`DirectStream`]: a connection accepted into a direct descriptor.

use crate::stream_io;
use hoop_runtime::buf::{BufResult, BufRing, IoBuf, IoBufMut};
use hoop_runtime::fd::{AsSharedFd, SharedFd};
use hoop_runtime::io::{AsyncReadOwned, AsyncWriteOwned, RecvStream};
use hoop_runtime::op::direct::{InstallFd, Shutdown as ShutdownOp};
use hoop_runtime::op::Op;
use hoop_runtime::{Handle, JoinHandle};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::os::fd::OwnedFd;

/// A connected stream socket (TCP or Unix) accepted into a *direct descriptor*: a slot in the
/// accepting worker's io_uring table of registered files, not an fd in the process's table
/// ([`TcpListener::accept_direct`](crate::TcpListener::accept_direct),
/// [`UnixListener::accept_direct`](crate::UnixListener::accept_direct)).
///
/// Each operation on it names the slot, so the kernel skips the fd-table lookup and reference
/// count of every send and receive, and the connection never contends for the process's fd
/// table with other threads. The price: it has no fd number. It belongs to the worker that
/// accepted it, has no `AsRawFd`, and socket options are those it inherited from the listener
/// (set `TCP_NODELAY` there); [`into_fd`](Self::into_fd) gives it an fd when one is needed
/// (Linux 6.8). It is closed through the ring when dropped.
///
/// Where the worker has no table (the epoll driver, Linux before 6.0, a restricted ring,
/// `Builder::direct_descriptors(0)`) or the table is full, the accept gives a plain fd, and the
/// same methods work on it: [`is_direct`](Self::is_direct) tells which.
///
/// ```
/// # hoop_runtime::block_on(async {
/// use hoop_net::{TcpListener, TcpStream};
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// let client = hoop_runtime::spawn(async move {
///     let c = TcpStream::connect(addr).await.unwrap();
///     c.write_all(b"ping".to_vec()).await.0.unwrap();
///     c.read_exact(vec![0u8; 4]).await
/// });
/// let (conn, _peer) = listener.accept_direct().await.unwrap();
/// let (res, buf) = conn.read_exact(vec![0u8; 4]).await;
/// res.unwrap();
/// conn.write_all(buf).await.0.unwrap(); // echo it back
/// let (res, echoed) = client.await.unwrap();
/// res.unwrap();
/// assert_eq!(echoed, b"ping");
/// # });
/// ```
pub struct DirectStream {
    fd: SharedFd,
}

impl DirectStream {
    pub(crate) fn from_shared(fd: SharedFd) -> Self {
        DirectStream { fd }
    }

    /// True if this is a direct descriptor; false if the accept gave a plain fd (see the type's
    /// documentation).
    pub fn is_direct(&self) -> bool {
        self.fd.direct_slot().is_some()
    }

    /// Reads into `buf` (from its start, up to its capacity); `Ok(0)` when the peer closed.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        stream_io::read(&self.fd, buf).await
    }

    /// Fills `buf` to its capacity; `UnexpectedEof` if the peer closes first.
    pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
        stream_io::read_exact(&self.fd, buf).await
    }

    /// Reads like [`read`](Self::read) without consuming the data (`MSG_PEEK`).
    pub async fn peek<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        stream_io::peek(&self.fd, buf).await
    }

    /// Reads into several buffers in turn.
    pub async fn readv<B: IoBufMut>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        stream_io::readv(&self.fd, bufs).await
    }

    /// A stream of received chunks in buffers of `ring` (multishot receive with provided
    /// buffers), as [`TcpStream::recv_stream`](crate::TcpStream::recv_stream).
    pub fn recv_stream(&self, ring: &BufRing) -> RecvStream {
        stream_io::recv_stream(&self.fd, ring)
    }

    /// Writes some of `buf`'s initialised bytes.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        stream_io::write(&self.fd, buf).await
    }

    /// Writes all of `buf`'s initialised bytes.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        stream_io::write_all(&self.fd, buf).await
    }

    /// Writes several buffers in order (possibly not all of them).
    pub async fn writev<B: IoBuf>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        stream_io::writev(&self.fd, bufs).await
    }

    /// Sends `buf` without copying it, as [`TcpStream::send_zc`](crate::TcpStream::send_zc). On
    /// a direct Unix socket (which has no zero-copy path) it fails with `Unsupported`: use
    /// [`write`](Self::write).
    pub async fn send_zc<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        stream_io::send_zc(&self.fd, buf).await
    }

    /// As [`send_zc`](Self::send_zc), and says whether the kernel copied the data after all
    /// ([`ZcSent::copied`](hoop_runtime::op::send_zc::ZcSent::copied), from
    /// `IORING_SEND_ZC_REPORT_USAGE`, 6.2): a sender can drop back to plain sends on a route
    /// where zero copy never happens (loopback, devices without scatter-gather).
    pub async fn send_zc_reported<B: IoBuf>(
        &self,
        buf: B,
    ) -> BufResult<hoop_runtime::op::send_zc::ZcSent, B> {
        stream_io::send_zc_reported(&self.fd, buf).await
    }

    /// Sends several buffers in one zero-copy `sendmsg`, as
    /// [`TcpStream::send_vectored_zc`](crate::TcpStream::send_vectored_zc); on a direct Unix
    /// socket it fails with `Unsupported`, as [`send_zc`](Self::send_zc) does.
    pub async fn send_vectored_zc<B: IoBuf>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        stream_io::send_vectored_zc(&self.fd, bufs).await
    }

    /// Sends `len` bytes of `file` from `offset`, as
    /// [`TcpStream::send_file`](crate::TcpStream::send_file).
    pub async fn send_file(
        &self,
        file: &(impl AsSharedFd + ?Sized),
        offset: u64,
        len: u64,
    ) -> io::Result<u64> {
        stream_io::send_file(&self.fd, file, offset, len).await
    }

    /// Shuts down the read side, the write side (sends FIN; reads still work) or both, through
    /// the ring (`IORING_OP_SHUTDOWN`).
    pub async fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        Op::new(ShutdownOp::new(&self.fd, how)).await
    }

    /// An fd for the connection, for code that needs one (`IORING_OP_FIXED_FD_INSTALL`, Linux
    /// 6.8; an older kernel gives `Unsupported`). Wrap it with `TcpStream::from_std` (or the
    /// Unix one), which makes it non-blocking. A plain fd is handed over as it is (or
    /// duplicated, if a dropped operation still holds it).
    pub async fn into_fd(self) -> io::Result<OwnedFd> {
        let fd = match self.fd.try_unwrap() {
            Ok(fd) => return Ok(fd),
            Err(fd) => fd,
        };
        // The slot closes when `fd` drops, after the install.
        Op::new(InstallFd::new(&fd)).await
    }

    /// Moves the connection to worker `worker` of the current runtime and spawns the future
    /// `make(stream)` builds there (see
    /// [`Handle::spawn_on_with_fd`](hoop_runtime::Handle::spawn_on_with_fd): a direct
    /// descriptor goes ring to ring with `MSG_RING`, and never gets an fd). Gives the stream
    /// back with the error where it cannot move.
    pub async fn spawn_on<M, F>(
        self,
        worker: usize,
        make: M,
    ) -> Result<JoinHandle<F::Output>, (io::Error, DirectStream)>
    where
        M: FnOnce(DirectStream) -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        Handle::current()
            .spawn_on_with_fd(worker, self.fd, move |fd| make(DirectStream { fd }))
            .await
            .map_err(|(e, fd)| (e, DirectStream { fd }))
    }

    /// The socket as the runtime's operations hold it (for building operations on it).
    pub fn shared_fd(&self) -> &SharedFd {
        &self.fd
    }
}

impl AsSharedFd for DirectStream {
    fn as_shared_fd(&self) -> &SharedFd {
        &self.fd
    }
}

impl AsyncReadOwned for DirectStream {
    async fn read<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
        DirectStream::read(self, buf).await
    }
}

impl AsyncWriteOwned for DirectStream {
    async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        DirectStream::write(self, buf).await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        DirectStream::shutdown(self, Shutdown::Write).await
    }
}

impl fmt::Debug for DirectStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectStream")
            .field("fd", &self.fd)
            .finish()
    }
}
