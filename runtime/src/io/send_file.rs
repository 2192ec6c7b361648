//! [`send_file`]: a file's bytes to a socket, by the fastest way the driver has.

use crate::buf::IoBuf;
use crate::fd::SharedFd;
use crate::op::rw::{FdKind, Read};
use crate::op::send_recv::Send;
use crate::op::splice::Splice;
use crate::op::Op;

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

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
