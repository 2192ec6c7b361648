//! Sockets for the hoop runtime: TCP, UDP and Unix streams and datagrams.
//!
//! Every operation goes through the worker's io_uring (accept, connect, send, recv, sendmsg,
//! recvmsg), or through non-blocking syscalls on readiness on the epoll driver. I/O takes owned
//! buffers and gives them back with the result. Sockets belong to the worker that created them;
//! a thread-per-core server binds one `SO_REUSEPORT` listener per worker
//! ([`TcpListener::bind_reuseport`]).

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]
#![warn(missing_docs)]

mod direct;
mod owned_io;
mod stream_io;
mod tcp;
mod udp;
mod unix;

pub use direct::DirectStream;
pub use socket2::SockAddr;
pub use std::net::Shutdown;
pub use tcp::{Incoming, OwnedReadHalf, OwnedWriteHalf, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};
