//! [`send_file`]: a file's bytes to a socket without passing through user space.

use crate::fd::SharedFd;
use crate::op::splice::Splice;
use crate::op::Op;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Bytes moved per splice pair; the pipe is grown to hold this much where allowed.
const CHUNK: u32 = 1 << 20;

/// Sends `len` bytes of `file` from `offset` to the stream socket `socket`, and returns how many
/// were sent (fewer only if the file ends first).
///
/// The bytes go file → pipe → socket with two `splice` calls per chunk of up to 1 MiB, so they
/// are never copied to user space (on io_uring both are `IORING_OP_SPLICE`; on epoll the file
/// side runs on the blocking pool and the socket side waits for writability). Each call uses its
/// own pipe, so a cancelled transfer leaves nothing behind.
pub async fn send_file(
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
