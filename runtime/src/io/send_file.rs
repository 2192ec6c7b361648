//! [`send_file`]: a file's bytes to a socket, by the fastest way the driver has.

use crate::buf::IoBuf;
use crate::fd::SharedFd;
use crate::op::rw::{FdKind, Read};
use crate::op::send_recv::Send;
use crate::op::splice::Splice;
use crate::op::Op;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Bytes moved per splice pair; the pipe is grown to hold this much where allowed.
const CHUNK: u32 = 1 << 20;
/// Chunk size of the io_uring path.
const BUF: usize = 256 * 1024;

/// Sends `len` bytes of `file` from `offset` to the stream socket `socket`, and returns how many
/// were sent (fewer only if the file ends first).
///
/// The way is chosen by measurement (`cargo bench --bench download` and `--bench sendfile`, in
/// the README): a 256 KiB read, then sends until the chunk is out, on both drivers. Page-cached
/// chunks are read without leaving the worker thread (on io_uring inline in the submission, on
/// epoll by `preadv2(RWF_NOWAIT)` before the blocking pool). `IORING_OP_SPLICE` is always run by
/// the kernel's io-wq threads (a thread hop per splice) and loses by 1.3–2×; on epoll the file
/// side of a splice needs the blocking pool, and serving a 1 GiB file that way measured 0.8×
/// tokio against 1.1× for read + send. [`splice_file`] remains for callers who want the bytes to
/// stay out of user space.
///
/// ```
/// # hoop_runtime::block_on(async {
/// use hoop_runtime::fd::SharedFd;
/// use std::io::Read;
/// # let path = std::env::temp_dir().join(format!("hoop-doc-sendfile-{}", std::process::id()));
/// std::fs::write(&path, b"0123456789").unwrap();
/// let file = SharedFd::new(std::fs::File::open(&path).unwrap().into());
/// let (mut peer, ours) = std::os::unix::net::UnixStream::pair().unwrap();
/// ours.set_nonblocking(true).unwrap();
/// let sent = hoop_runtime::io::send_file(&file, 2, 5, &SharedFd::new(ours.into())).await;
/// assert_eq!(sent.unwrap(), 5);
/// let mut got = [0u8; 5];
/// peer.read_exact(&mut got).unwrap();
/// assert_eq!(&got, b"23456");
/// # std::fs::remove_file(&path).unwrap();
/// # });
/// ```
pub async fn send_file(
    file: &SharedFd,
    offset: u64,
    len: u64,
    socket: &SharedFd,
) -> io::Result<u64> {
    read_send(file, offset, len, socket).await
}

/// Reads up to [`BUF`] bytes at a time and sends each chunk before the next read.
async fn read_send(file: &SharedFd, offset: u64, len: u64, socket: &SharedFd) -> io::Result<u64> {
    let mut buf = Vec::with_capacity(BUF.min(len as usize).max(1));
    let mut sent = 0u64;
    while sent < len {
        buf.clear();
        let want = (len - sent).min(buf.capacity() as u64) as usize;
        let (res, s) = Op::new(Read::new(
            file,
            buf.slice(..want),
            offset + sent,
            FdKind::File,
        ))
        .await;
        buf = s.into_inner();
        let n = res?;
        if n == 0 {
            break; // end of file
        }
        buf.truncate(n);
        let mut done = 0;
        while done < n {
            let (res, s) = Op::new(Send::new(socket, buf.slice(done..n), 0)).await;
            buf = s.into_inner();
            match res? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                m => done += m,
            }
        }
        sent += n as u64;
    }
    Ok(sent)
}

/// [`send_file`] through `splice(2)` on every driver: file → pipe → socket, two splices per chunk
/// of up to 1 MiB, never through user space. Each call uses its own pipe, so a cancelled
/// transfer leaves nothing behind.
pub async fn splice_file(
    file: &SharedFd,
    offset: u64,
    len: u64,
    socket: &SharedFd,
) -> io::Result<u64> {
    let (pipe_out, pipe_in) = splice_pipe()?;
    let mut sent = 0u64;
    while sent < len {
        let chunk = (len - sent).min(u64::from(CHUNK)) as u32;
        let filled = Op::new(Splice::file_to_pipe(file, offset + sent, &pipe_in, chunk)).await?;
        if filled == 0 {
            break; // end of file
        }
        let mut in_pipe = filled;
        while in_pipe > 0 {
            let n = Op::new(Splice::pipe_to_socket(&pipe_out, socket, in_pipe as u32)).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            in_pipe -= n;
            sent += n as u64;
        }
    }
    Ok(sent)
}

/// A close-on-exec pipe (read end, write end) sized for [`CHUNK`] where the system allows.
fn splice_pipe() -> io::Result<(SharedFd, SharedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just created both fds and nobody else owns them.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // A bigger pipe means fewer splice pairs; unprivileged users may be capped (then the
    // default 64 KiB stays, and chunks are split by short splices).
    // SAFETY: fcntl on an fd we own.
    unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, CHUNK as libc::c_int) };
    Ok((SharedFd::new(r), SharedFd::new(w)))
}

/// Sends `head`, then `len` bytes of `file` from `offset`, to the stream socket `socket`, with
/// `sendfile(2)` on the worker thread: the file's page-cache pages go to the socket without a
/// copy, where [`send_file`] reads them into a buffer and sends that (two copies). Returns how
/// many bytes of the file were sent (fewer only if the file ends first); the head always goes
/// out whole first.
///
/// **For ranges known to be in the page cache** (a file served or read a moment ago): unlike
/// every other operation of hoop, this one can wait on the worker thread. `sendfile` has no
/// non-blocking mode for its file side, so a range that is not cached makes the worker wait
/// for the disk, and every task of the worker with it. Measured on 4 KiB files over HTTP
/// (`benches/small_files.rs`, README): +7–9 % requests/s against reading and sending, in
/// interleaved A/B runs.
///
/// A full socket does not block the worker: `sendfile` takes its blocking mode from the
/// socket's `O_NONBLOCK` (set on the sockets hoop creates), which is read on every call and
/// after every await (only a holder on another thread clearing it between that read and the
/// call could make one `sendfile` wait). A blocking socket, a direct descriptor (no fd number
/// for the syscall), an `O_DIRECT` file, a file `sendfile` refuses and the rest of a transfer
/// that found the socket full go the way [`send_file`] takes. A call that ends short (the file
/// ended) pushes out what it held back for the body (it clears `TCP_CORK`, unless the socket
/// was corked before). A peer that is gone is an `EPIPE` error: `SIGPIPE` is blocked on the
/// threads that run hoop.
///
/// ```
/// # hoop_runtime::block_on(async {
/// use hoop_runtime::fd::SharedFd;
/// use std::io::Read;
/// # let path = std::env::temp_dir().join(format!("hoop-doc-sendcached-{}", std::process::id()));
/// std::fs::write(&path, b"0123456789").unwrap();
/// let file = SharedFd::new(std::fs::File::open(&path).unwrap().into());
/// let (mut peer, ours) = std::os::unix::net::UnixStream::pair().unwrap();
/// ours.set_nonblocking(true).unwrap();
/// let socket = SharedFd::new(ours.into());
/// let sent = hoop_runtime::io::send_file_cached(b"head:", &file, 2, 5, &socket).await;
/// assert_eq!(sent.unwrap(), 5);
/// drop(socket);
/// let mut got = String::new();
/// peer.read_to_string(&mut got).unwrap();
/// assert_eq!(got, "head:23456");
/// # std::fs::remove_file(&path).unwrap();
/// # });
/// ```
pub async fn send_file_cached(
    head: &[u8],
    file: &SharedFd,
    offset: u64,
    len: u64,
    socket: &SharedFd,
) -> io::Result<u64> {
    let sent = head_then_sendfile(head, file, offset, len, socket).await?;
    if sent < len && (!head.is_empty() || sent > 0) {
        // The file ended early: what `MSG_MORE` (or, before Linux 6.5, `sendfile`'s own
        // `SPLICE_F_MORE` when asked for more than the file holds) held back for more bytes
        // would wait 200 ms for them. A socket its owner corked stays corked (`MSG_MORE` does
        // not set the option, so this reads the owner's choice).
        if let Some(sock) = socket.borrow_fd().filter(|s| !is_corked(*s)) {
            uncork(sock);
        }
    }
    Ok(sent)
}

/// The body of [`send_file_cached`].
async fn head_then_sendfile(
    head: &[u8],
    file: &SharedFd,
    offset: u64,
    len: u64,
    socket: &SharedFd,
) -> io::Result<u64> {
    let (Some(sock), Some(src)) = (socket.borrow_fd(), file.borrow_fd()) else {
        return send_head_then_file(head, file, offset, len, socket).await;
    };
    if !crate::coop::consume() {
        // Every call completes without waiting while the socket has room: a task sending
        // file after file still yields to the others, as every operation does.
        crate::task::yield_now().await;
    }
    if !crate::rt::context::is_entered() || file.is_o_direct() || !nonblocking(sock) {
        // Outside a runtime the copying way fails as every operation does; `O_DIRECT` reads go
        // to the device each time; and on a blocking socket `sendfile` (which takes its
        // blocking mode from the socket) would sleep on the worker until the peer reads.
        return send_head_then_file(head, file, offset, len, socket).await;
    }
    // The head is held back (`MSG_MORE`) to leave with the first body bytes, unless there are
    // none to come.
    let more = if len > 0 { libc::MSG_MORE } else { 0 };
    let mut at = 0;
    while at < head.len() {
        let rest = &head[at..];
        // SAFETY: `rest` is valid for reads of its length for the duration of the call.
        let n = unsafe {
            libc::send(
                sock.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                more | libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n > 0 {
            at += n as usize;
            continue;
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        match io::Error::last_os_error() {
            e if e.kind() == io::ErrorKind::Interrupted => {}
            // A full socket: the rest waits on the driver, the copying way. No `sendfile`
            // follows an await, so the `O_NONBLOCK` read above is the one each runs on.
            e if e.kind() == io::ErrorKind::WouldBlock => {
                return send_head_then_file(rest, file, offset, len, socket).await;
            }
            e => return Err(e),
        }
    }
    let mut sent = 0u64;
    while sent < len {
        // Chunks of the copying way's size: one coop unit each, as one of its reads.
        let want = (len - sent).min(BUF as u64) as usize;
        let mut off = (offset + sent) as libc::off_t;
        // SAFETY: both fds are borrowed and open; `off` is a valid, writable offset. No
        // SIGPIPE can kill the process here: hoop's threads block it (`sys::signals`).
        let n = unsafe { libc::sendfile(sock.as_raw_fd(), src.as_raw_fd(), &mut off, want) };
        if n > 0 {
            sent += n as u64;
            if sent < len && !crate::coop::consume() {
                // A long transfer to a fast reader yields like any operation; the socket's mode
                // is read again after the other tasks ran.
                crate::task::yield_now().await;
                if !nonblocking(sock) {
                    return Ok(sent + send_file(file, offset + sent, len - sent, socket).await?);
                }
            }
            continue;
        }
        if n == 0 {
            break; // end of file
        }
        match io::Error::last_os_error() {
            e if e.kind() == io::ErrorKind::Interrupted => {}
            // A full socket, or a file (filesystem, seccomp profile) `sendfile` refuses: the
            // rest goes the copying way, which waits on the driver.
            e if e.kind() == io::ErrorKind::WouldBlock
                || matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL | libc::ENOSYS | libc::EPERM)
                ) =>
            {
                return Ok(sent + send_file(file, offset + sent, len - sent, socket).await?);
            }
            e => return Err(e),
        }
    }
    Ok(sent)
}

/// True if the socket's open file description is `O_NONBLOCK` now.
fn nonblocking(sock: std::os::fd::BorrowedFd<'_>) -> bool {
    // SAFETY: F_GETFL on a borrowed, open fd writes nothing.
    let flags = unsafe { libc::fcntl(sock.as_raw_fd(), libc::F_GETFL) };
    flags >= 0 && flags & libc::O_NONBLOCK != 0
}

/// True if `TCP_CORK` is set on the socket (false for other sockets).
fn is_corked(sock: std::os::fd::BorrowedFd<'_>) -> bool {
    let mut on: libc::c_int = 0;
    let mut size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `on` and `size` are valid for writes of the option's length.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&mut on as *mut libc::c_int).cast(),
            &mut size,
        )
    };
    rc == 0 && on != 0
}

/// Sends what `MSG_MORE` left queued on a TCP socket (clearing `TCP_CORK` pushes pending
/// frames); a harmless error on other sockets.
fn uncork(sock: std::os::fd::BorrowedFd<'_>) {
    let off: libc::c_int = 0;
    // SAFETY: `off` is a valid c_int of the option's length; the call only reads it.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&off as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// The way of [`send_file_cached`] where `sendfile` cannot be used: the head by the ring's send,
/// then [`send_file`].
async fn send_head_then_file(
    head: &[u8],
    file: &SharedFd,
    offset: u64,
    len: u64,
    socket: &SharedFd,
) -> io::Result<u64> {
    let mut buf = head.to_vec();
    let mut at = 0;
    while at < buf.len() {
        let (res, s) = Op::new(Send::new(socket, buf.slice(at..), 0)).await;
        buf = s.into_inner();
        match res? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => at += n,
        }
    }
    send_file(file, offset, len, socket).await
}
