//! TCP: [`TcpListener`], [`TcpStream`] and its owned halves.

mod incoming;
mod listener;
mod split;
mod stream;

pub use incoming::Incoming;
pub use listener::TcpListener;
pub use split::{OwnedReadHalf, OwnedWriteHalf};
pub use stream::TcpStream;

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;

/// A new non-blocking, close-on-exec TCP socket for `addr`'s family (non-blocking so that the
/// same socket works on both drivers; io_uring waits for readiness itself either way).
pub(crate) fn new_socket(addr: &SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(*addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    Ok(socket)
}

pub(crate) fn to_socket_addr(addr: socket2::SockAddr) -> io::Result<SocketAddr> {
    addr.as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP socket address"))
}
