//! [`UdpSocket`].

use crate::tcp::to_socket_addr;
use hoop_runtime::buf::{BufResult, IoBuf, IoBufMut};
use hoop_runtime::fd::SharedFd;
use hoop_runtime::op::connect::Connect;
use hoop_runtime::op::msg::{RecvFrom, SendTo};
use hoop_runtime::op::send_recv::{Recv, Send};
use hoop_runtime::op::send_zc::{SendToZc, SendZc};
use hoop_runtime::op::Op;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// A UDP socket with owned-buffer datagram I/O.
///
/// ```
/// # hoop_runtime::block_on(async {
/// use hoop_net::UdpSocket;
/// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
/// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
/// a.send_to(b"hi".to_vec(), b.local_addr().unwrap()).await.0.unwrap();
/// let (res, buf) = b.recv_from(Vec::with_capacity(16)).await;
/// let (n, from) = res.unwrap();
/// assert_eq!((&buf[..n], from), (&b"hi"[..], a.local_addr().unwrap()));
/// # });
/// ```
pub struct UdpSocket {
    fd: SharedFd,
}

fn one_addr(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))
}

impl UdpSocket {
    /// Binds to `addr`.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let addr = one_addr(addr)?;
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::DGRAM.nonblocking().cloexec(),
            Some(Protocol::UDP),
        )?;
        socket.bind(&addr.into())?;
        Ok(UdpSocket {
            fd: SharedFd::new(OwnedFd::from(socket)),
        })
    }

    /// Sets the default peer for `send`/`recv` and filters datagrams from others.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let addr = one_addr(addr)?;
        Op::new(Connect::new(&self.fd, addr.into())).await
    }

    /// Sends one datagram of `buf`'s initialised bytes to `addr`.
    pub async fn send_to<B: IoBuf>(&self, buf: B, addr: impl ToSocketAddrs) -> BufResult<usize, B> {
        let addr = match one_addr(addr) {
            Ok(a) => a,
            Err(e) => return (Err(e), buf),
        };
        Op::new(SendTo::new(&self.fd, buf, addr.into())).await
    }

    /// Sends one datagram to `addr` without copying `buf` into the kernel
    /// (`IORING_OP_SENDMSG_ZC`); the buffer comes back after the kernel's notification. A plain
    /// `sendmsg` on the epoll driver.
    pub async fn send_to_zc<B: IoBuf>(
        &self,
        buf: B,
        addr: impl ToSocketAddrs,
    ) -> BufResult<usize, B> {
        let addr = match one_addr(addr) {
            Ok(a) => a,
            Err(e) => return (Err(e), buf),
        };
        Op::new(SendToZc::new(&self.fd, buf, addr.into())).await
    }

    /// Sends one datagram to the connected peer without copying (`IORING_OP_SEND_ZC`).
    pub async fn send_zc<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        Op::new(SendZc::new(&self.fd, buf)).await
    }

    /// Receives one datagram into `buf`; returns its length and sender.
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, SocketAddr), B> {
        let (res, buf) = Op::new(RecvFrom::new(&self.fd, buf)).await;
        (
            res.and_then(|(n, addr)| Ok((n, to_socket_addr(addr)?))),
            buf,
        )
    }

    /// Sends one datagram to the connected peer.
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        Op::new(Send::new(&self.fd, buf, 0)).await
    }

    /// Receives one datagram from the connected peer.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        Op::new(Recv::new(&self.fd, buf, 0)).await
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        to_socket_addr(SockRef::from(self).local_addr()?)
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        to_socket_addr(SockRef::from(self).peer_addr()?)
    }

    /// Other socket options, through socket2.
    pub fn socket(&self) -> SockRef<'_> {
        SockRef::from(self)
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_plain_fd()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("fd", &self.fd.raw())
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}
