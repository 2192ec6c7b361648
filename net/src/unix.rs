//! Unix-domain sockets: [`UnixListener`], [`UnixStream`], [`UnixDatagram`].

use crate::stream_io;
use hoop_runtime::buf::{BufResult, BufRing, IoBuf, IoBufMut};
use hoop_runtime::fd::{AsSharedFd, SharedFd};
use hoop_runtime::io::RecvStream;
use hoop_runtime::op::accept::Accept;
use hoop_runtime::op::connect::Connect;
use hoop_runtime::op::fd_passing::{peer_credentials, RecvWithFds, SendWithFds};
use hoop_runtime::op::msg::{RecvFrom, SendTo};
use hoop_runtime::op::send_recv::{Recv, Send};
use hoop_runtime::op::Op;
use socket2::{Domain, SockAddr, SockRef, Socket, Type};
use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

fn new_socket(ty: Type) -> io::Result<Socket> {
    Socket::new(Domain::UNIX, ty.nonblocking().cloexec(), None)
}

macro_rules! fd_traits {
    ($t:ident) => {
        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.fd.raw()
            }
        }

        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.fd.as_plain_fd()
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("fd", &self.fd.raw())
                    .finish()
            }
        }
    };
}

/// A Unix-domain socket listening for stream connections.
pub struct UnixListener {
    fd: SharedFd,
}

impl UnixListener {
    /// Binds to the filesystem path `path` and listens.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let socket = new_socket(Type::STREAM)?;
        socket.bind(&SockAddr::unix(path)?)?;
        socket.listen(1024)?;
        Ok(UnixListener {
            fd: SharedFd::new(OwnedFd::from(socket)),
        })
    }

    /// Waits for a connection; the peer's address is usually unnamed (see
    /// `SockAddr::as_pathname`).
    pub async fn accept(&self) -> io::Result<(UnixStream, SockAddr)> {
        let (fd, addr) = Op::new(Accept::new(&self.fd)).await?;
        Ok((UnixStream { fd }, addr))
    }

    /// Waits for a connection and accepts it into a direct descriptor of this worker's ring
    /// (see [`DirectStream`](crate::DirectStream)); a plain fd where the worker has none.
    pub async fn accept_direct(&self) -> io::Result<(crate::DirectStream, SockAddr)> {
        let (fd, addr) = Op::new(Accept::direct(&self.fd)).await?;
        Ok((crate::DirectStream::from_shared(fd), addr))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SockAddr> {
        SockRef::from(self).local_addr()
    }
}

fd_traits!(UnixListener);

/// A Unix-domain stream connection with owned-buffer I/O.
///
/// ```
/// # hoop_runtime::block_on(async {
/// let (a, b) = hoop_net::UnixStream::pair().unwrap();
/// a.write_all(b"over unix".to_vec()).await.0.unwrap();
/// let (res, buf) = b.read_exact(vec![0u8; 9]).await;
/// res.unwrap();
/// assert_eq!(buf, b"over unix");
/// # });
/// ```
pub struct UnixStream {
    fd: SharedFd,
}

impl UnixStream {
    /// Connects to the socket at `path`.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let addr = SockAddr::unix(path)?;
        let fd = SharedFd::new(OwnedFd::from(new_socket(Type::STREAM)?));
        Op::new(Connect::new(&fd, addr)).await?;
        Ok(UnixStream { fd })
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)?;
        Ok((
            UnixStream {
                fd: SharedFd::new(OwnedFd::from(a)),
            },
            UnixStream {
                fd: SharedFd::new(OwnedFd::from(b)),
            },
        ))
    }

    /// Sends `buf` without copying it into the kernel (`IORING_OP_SEND_ZC`); the buffer comes
    /// back only after the kernel's notification that it no longer references it. Worth it for
    /// large buffers (tens of KiB and up) on real NICs; small messages and loopback are faster
    /// with [`write`](Self::write), which stays the default. A plain send on the epoll driver.
    pub async fn send_zc<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        stream_io::send_zc(&self.fd, buf).await
    }

    /// Sends the initialised bytes of `bufs`, in order, in one zero-copy `sendmsg`
    /// (`IORING_OP_SENDMSG_ZC`): a reply's header and payload leave together, and the buffers
    /// come back after the kernel's notification. May send only part of them, like
    /// any stream write. A plain `sendmsg` on the epoll driver and before 6.1.
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

    /// A stream of received chunks in buffers of `ring` (multishot receive with provided
    /// buffers on io_uring): no buffer is tied up while the connection is idle. See
    /// [`RecvStream`](hoop_runtime::io::RecvStream).
    pub fn recv_stream(&self, ring: &BufRing) -> RecvStream {
        stream_io::recv_stream(&self.fd, ring)
    }

    /// Reads into `buf`; `Ok(0)` when the peer closed.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        stream_io::read(&self.fd, buf).await
    }

    /// Fills `buf` to its capacity.
    pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
        stream_io::read_exact(&self.fd, buf).await
    }

    /// Writes some of `buf`.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        stream_io::write(&self.fd, buf).await
    }

    /// Writes all of `buf`.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        stream_io::write_all(&self.fd, buf).await
    }

    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        SockRef::from(self).shutdown(how)
    }

    /// Sends `buf` together with `fds` (`SCM_RIGHTS`, at most 253). The fds are duplicated, so
    /// the caller keeps its own.
    ///
    /// ```
    /// # hoop_runtime::block_on(async {
    /// use std::os::fd::AsFd;
    /// let (a, b) = hoop_net::UnixStream::pair().unwrap();
    /// let file = std::fs::File::open("/proc/self/status").unwrap();
    /// a.send_with_fds(b"here".to_vec(), &[file.as_fd()]).await.0.unwrap();
    /// let (res, buf) = b.recv_with_fds(Vec::with_capacity(16), 4).await;
    /// let (n, fds) = res.unwrap();
    /// assert_eq!((&buf[..n], fds.len()), (&b"here"[..], 1));
    /// # });
    /// ```
    pub async fn send_with_fds<B: IoBuf>(
        &self,
        buf: B,
        fds: &[BorrowedFd<'_>],
    ) -> BufResult<usize, B> {
        let owned: io::Result<Vec<OwnedFd>> = fds.iter().map(|f| f.try_clone_to_owned()).collect();
        let owned = match owned {
            Ok(o) => o,
            Err(e) => return (Err(e), buf),
        };
        match SendWithFds::new(&self.fd, buf, owned) {
            Ok(op) => Op::new(op).await,
            Err((e, buf)) => (Err(e), buf),
        }
    }

    /// Receives into `buf` and up to `max_fds` passed fds (close-on-exec). Extra fds beyond
    /// `max_fds` are closed by the kernel.
    pub async fn recv_with_fds<B: IoBufMut>(
        &self,
        buf: B,
        max_fds: usize,
    ) -> BufResult<(usize, Vec<OwnedFd>), B> {
        Op::new(RecvWithFds::new(&self.fd, buf, max_fds)).await
    }

    /// The peer's process id, user id and group id at connect time (`SO_PEERCRED`).
    pub fn peer_cred(&self) -> io::Result<(i32, u32, u32)> {
        peer_credentials(&self.fd)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SockAddr> {
        SockRef::from(self).peer_addr()
    }
}

fd_traits!(UnixStream);

/// A Unix-domain datagram socket.
pub struct UnixDatagram {
    fd: SharedFd,
}

impl UnixDatagram {
    /// Binds to `path`.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        let socket = new_socket(Type::DGRAM)?;
        socket.bind(&SockAddr::unix(path)?)?;
        Ok(UnixDatagram {
            fd: SharedFd::new(OwnedFd::from(socket)),
        })
    }

    /// An unbound socket (it can send to bound ones).
    pub fn unbound() -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            fd: SharedFd::new(OwnedFd::from(new_socket(Type::DGRAM)?)),
        })
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::DGRAM.nonblocking().cloexec(), None)?;
        Ok((
            UnixDatagram {
                fd: SharedFd::new(OwnedFd::from(a)),
            },
            UnixDatagram {
                fd: SharedFd::new(OwnedFd::from(b)),
            },
        ))
    }

    /// Sends one datagram to the socket at `path`.
    pub async fn send_to<B: IoBuf>(&self, buf: B, path: impl AsRef<Path>) -> BufResult<usize, B> {
        match SockAddr::unix(path) {
            Ok(addr) => Op::new(SendTo::new(&self.fd, buf, addr)).await,
            Err(e) => (Err(e), buf),
        }
    }

    /// Receives one datagram and its sender's address (unnamed for an unbound sender).
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, SockAddr), B> {
        Op::new(RecvFrom::new(&self.fd, buf)).await
    }

    /// Sends one datagram to the connected peer.
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        Op::new(Send::new(&self.fd, buf, 0)).await
    }

    /// Receives one datagram from the connected peer.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        Op::new(Recv::new(&self.fd, buf, 0)).await
    }
}

fd_traits!(UnixDatagram);

impl hoop_runtime::io::CompatSource for UnixStream {
    fn compat_fd(&self) -> &SharedFd {
        &self.fd
    }
    fn compat_kind(&self) -> hoop_runtime::op::rw::FdKind {
        hoop_runtime::op::rw::FdKind::Stream
    }
}

impl UnixStream {
    /// Wraps a std stream (made non-blocking).
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        Ok(UnixStream {
            fd: SharedFd::new(OwnedFd::from(stream)),
        })
    }

    /// Wraps the stream for the ecosystem's poll-based I/O traits; see
    /// [`Compat`](hoop_runtime::io::Compat).
    pub fn compat(self) -> hoop_runtime::io::Compat<UnixStream> {
        hoop_runtime::io::Compat::new(self)
    }
}
