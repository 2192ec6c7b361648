//! [`TcpListener`].

use super::{new_socket, to_socket_addr, Incoming, TcpStream};
use hoop_runtime::fd::SharedFd;
use hoop_runtime::op::accept::Accept;
use hoop_runtime::op::Op;
use socket2::SockRef;
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// A TCP socket listening for connections.
///
/// ```
/// # hoop_runtime::block_on(async {
/// use hoop_net::{TcpListener, TcpStream};
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// let client = hoop_runtime::spawn(async move { TcpStream::connect(addr).await });
/// let (server_side, peer) = listener.accept().await.unwrap();
/// let client = client.await.unwrap().unwrap();
/// assert_eq!(peer, client.local_addr().unwrap());
/// # drop(server_side);
/// # });
/// ```
pub struct TcpListener {
    fd: SharedFd,
}

const BACKLOG: i32 = 1024;

fn first_addr(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind to"))
}

impl TcpListener {
    fn bind_with(addr: SocketAddr, reuseport: bool) -> io::Result<TcpListener> {
        let socket = new_socket(&addr)?;
        socket.set_reuse_address(true)?;
        if reuseport {
            socket.set_reuse_port(true)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        Ok(TcpListener {
            fd: SharedFd::new(OwnedFd::from(socket)),
        })
    }

    /// Binds to `addr` (the first address it resolves to) and listens (`SO_REUSEADDR` on).
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        Self::bind_with(first_addr(addr)?, false)
    }

    /// Binds with `SO_REUSEPORT` too, so that every worker of a thread-per-core server can bind
    /// its own listener to the same address and the kernel spreads connections among them.
    pub fn bind_reuseport(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        Self::bind_with(first_addr(addr)?, true)
    }

    /// Waits for a connection; returns the stream and the peer's address.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, addr) = Op::new(Accept::new(&self.fd)).await?;
        Ok((TcpStream::from_shared(fd), to_socket_addr(addr)?))
    }

    /// Waits for a connection and accepts it into a direct descriptor of this worker's ring
    /// (see [`DirectStream`](crate::DirectStream)); a plain fd where the worker has none.
    pub async fn accept_direct(&self) -> io::Result<(crate::DirectStream, SocketAddr)> {
        let (fd, addr) = Op::new(Accept::direct(&self.fd)).await?;
        Ok((crate::DirectStream::from_shared(fd), to_socket_addr(addr)?))
    }

    /// A stream of connections backed by multishot accept (one SQE for many connections,
    /// re-armed when the kernel ends it). When the process runs out of fds it backs off and
    /// retries instead of spinning.
    ///
    /// ```
    /// # hoop_runtime::block_on(async {
    /// use futures_util::StreamExt;
    /// use hoop_net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let addr = listener.local_addr().unwrap();
    /// let clients = hoop_runtime::spawn(async move {
    ///     for _ in 0..3 {
    ///         let c = TcpStream::connect(addr).await.unwrap();
    ///         c.write_all(b"hi".to_vec()).await.0.unwrap();
    ///     }
    /// });
    /// let mut incoming = listener.incoming();
    /// for _ in 0..3 {
    ///     let conn = incoming.next().await.unwrap().unwrap();
    ///     let (res, buf) = conn.read_exact(vec![0u8; 2]).await;
    ///     res.unwrap();
    ///     assert_eq!(buf, b"hi");
    /// }
    /// clients.await.unwrap();
    /// # });
    /// ```
    pub fn incoming(&self) -> Incoming {
        Incoming::new(&self.fd)
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        to_socket_addr(SockRef::from(self).local_addr()?)
    }

    /// Wraps a std listener (made non-blocking).
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener {
            fd: SharedFd::new(OwnedFd::from(listener)),
        })
    }

    /// Converts into a std listener, if no operation still holds the fd.
    pub fn into_std(self) -> Result<std::net::TcpListener, TcpListener> {
        match self.fd.try_unwrap() {
            Ok(fd) => Ok(std::net::TcpListener::from(fd)),
            Err(fd) => Err(TcpListener { fd }),
        }
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_plain_fd()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("fd", &self.fd.raw())
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}
