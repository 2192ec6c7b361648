//! [`TcpStream`].

use super::split::{OwnedReadHalf, OwnedWriteHalf};
use super::{new_socket, to_socket_addr};
use crate::stream_io;
use hoop_runtime::buf::{BufResult, BufRing, IoBuf, IoBufMut};
use hoop_runtime::fd::{AsSharedFd, SharedFd};
use hoop_runtime::io::RecvStream;
use hoop_runtime::op::connect::Connect;
use hoop_runtime::op::Op;
use socket2::SockRef;
use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;

/// A TCP connection with owned-buffer I/O.
///
/// ```
/// # hoop_runtime::block_on(async {
/// use hoop_net::{TcpListener, TcpStream};
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// let server = hoop_runtime::spawn(async move {
///     let (s, _) = listener.accept().await.unwrap();
///     let (n, buf) = s.read(Vec::with_capacity(64)).await;
///     n.unwrap();
///     s.write_all(buf).await.0.unwrap(); // echo it back
/// });
/// let c = TcpStream::connect(addr).await.unwrap();
/// c.write_all(b"ping".to_vec()).await.0.unwrap();
/// let (res, buf) = c.read_exact(vec![0u8; 4]).await;
/// res.unwrap();
/// assert_eq!(buf, b"ping");
/// server.await.unwrap();
/// # });
/// ```
pub struct TcpStream {
    fd: SharedFd,
}

impl TcpStream {
    pub(crate) fn from_shared(fd: SharedFd) -> Self {
        TcpStream { fd }
    }

    /// Connects to `addr`, trying each address it resolves to until one works.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let mut last = None;
        for addr in addr.to_socket_addrs()? {
            match Self::connect_addr(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to")
        }))
    }

    async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = new_socket(&addr)?;
        let fd = SharedFd::new(OwnedFd::from(socket));
        Op::new(Connect::new(&fd, addr.into())).await?;
        Ok(TcpStream { fd })
    }

    /// Reads into `buf` (from its start, up to its capacity); `Ok(0)` when the peer closed.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        stream_io::read(&self.fd, buf).await
    }

    /// A stream of received chunks in buffers of `ring` (multishot receive with provided
    /// buffers on io_uring): no buffer is tied up while the connection is idle. See
    /// [`RecvStream`](hoop_runtime::io::RecvStream).
    pub fn recv_stream(&self, ring: &BufRing) -> RecvStream {
        stream_io::recv_stream(&self.fd, ring)
    }

    /// Fills `buf` to its capacity; `UnexpectedEof` if the peer closes first.
    pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
        stream_io::read_exact(&self.fd, buf).await
    }

    /// Sends `buf` without copying it into the kernel (`IORING_OP_SEND_ZC`); the buffer comes
    /// back only after the kernel's notification that it no longer references it. Worth it for
    /// large buffers (tens of KiB and up) on real NICs; small messages and loopback are faster
    /// with [`write`](Self::write), which stays the default. A plain send on the epoll driver.
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

    /// Sends the initialised bytes of `bufs`, in order, in one zero-copy `sendmsg`
    /// (`IORING_OP_SENDMSG_ZC`): a reply's header and payload leave together, and the buffers
    /// come back after the kernel's notification. May send only part of them, like
    /// [`writev`](Self::writev). A plain `sendmsg` on the epoll driver and before 6.1.
    pub async fn send_vectored_zc<B: IoBuf>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        stream_io::send_vectored_zc(&self.fd, bufs).await
    }

    /// Sends `len` bytes of `file` from `offset`; returns the bytes sent (fewer only if the file
    /// ends first). 256 KiB reads and sends (page-cached data never leaves the worker thread):
    /// the fastest way measured, see [`hoop_runtime::io::send_file`]; for a transfer that never
    /// passes through user space, [`hoop_runtime::io::splice_file`].
    pub async fn send_file(
        &self,
        file: &(impl AsSharedFd + ?Sized),
        offset: u64,
        len: u64,
    ) -> io::Result<u64> {
        stream_io::send_file(&self.fd, file, offset, len).await
    }

    /// Sends `head`, then `len` bytes of `file` from `offset`, with `sendfile(2)`: no copy of the
    /// file's bytes. For files known to be in the page cache only: an uncached range makes the
    /// worker thread wait for the disk. See [`hoop_runtime::io::send_file_cached`].
    pub async fn send_file_cached(
        &self,
        head: &[u8],
        file: &(impl AsSharedFd + ?Sized),
        offset: u64,
        len: u64,
    ) -> io::Result<u64> {
        stream_io::send_file_cached(&self.fd, head, file, offset, len).await
    }

    /// Reads like [`read`](Self::read) without consuming the data (`MSG_PEEK`).
    pub async fn peek<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        stream_io::peek(&self.fd, buf).await
    }

    /// Reads into several buffers in turn.
    pub async fn readv<B: IoBufMut>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        stream_io::readv(&self.fd, bufs).await
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

    /// Shuts down the read side, the write side (sends FIN; reads still work) or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        SockRef::from(self).shutdown(how)
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        SockRef::from(self).set_tcp_nodelay(on)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        SockRef::from(self).tcp_nodelay()
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        to_socket_addr(SockRef::from(self).peer_addr()?)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        to_socket_addr(SockRef::from(self).local_addr()?)
    }

    /// Other socket options, through socket2.
    pub fn socket(&self) -> SockRef<'_> {
        SockRef::from(self)
    }

    /// Splits into halves that can be used by different tasks of this worker at the same time.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let shared = Rc::new(self);
        (
            OwnedReadHalf::new(shared.clone()),
            OwnedWriteHalf::new(shared),
        )
    }

    /// The socket's fd as the runtime's operations hold it (for building operations on it).
    pub fn shared_fd(&self) -> &SharedFd {
        &self.fd
    }

    /// Wraps a std stream (made non-blocking).
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        Ok(TcpStream {
            fd: SharedFd::new(OwnedFd::from(stream)),
        })
    }

    /// Converts into a std stream (non-blocking), if no operation still holds the fd.
    pub fn into_std(self) -> Result<std::net::TcpStream, TcpStream> {
        match self.fd.try_unwrap() {
            Ok(fd) => Ok(std::net::TcpStream::from(fd)),
            Err(fd) => Err(TcpStream { fd }),
        }
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_plain_fd()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("fd", &self.fd.raw())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}

impl hoop_runtime::io::CompatSource for TcpStream {
    fn compat_fd(&self) -> &SharedFd {
        &self.fd
    }
    fn compat_kind(&self) -> hoop_runtime::op::rw::FdKind {
        hoop_runtime::op::rw::FdKind::Stream
    }
}

impl TcpStream {
    /// Wraps the stream for the ecosystem's poll-based I/O traits (`futures::io`, and
    /// `tokio::io` / `hyper::rt` with those features); see [`Compat`](hoop_runtime::io::Compat)
    /// for what the extra copy costs.
    pub fn compat(self) -> hoop_runtime::io::Compat<TcpStream> {
        hoop_runtime::io::Compat::new(self)
    }
}
