//! Owned read and write halves of a [`TcpStream`], for a reader task and a writer task.

use super::TcpStream;
use crate::stream_io;
use hoop_runtime::buf::{BufResult, IoBuf, IoBufMut};
use std::fmt;
use std::io;
use std::net::Shutdown;
use std::rc::Rc;

/// The reading half of a [`TcpStream`] (see [`TcpStream::into_split`]).
pub struct OwnedReadHalf {
    stream: Rc<TcpStream>,
}

/// The writing half of a [`TcpStream`]. Call [`shutdown`](Self::shutdown) to send FIN; the
/// connection closes when both halves are dropped.
pub struct OwnedWriteHalf {
    stream: Rc<TcpStream>,
}

impl OwnedReadHalf {
    pub(crate) fn new(stream: Rc<TcpStream>) -> Self {
        OwnedReadHalf { stream }
    }

    /// Reads into `buf`; `Ok(0)` when the peer closed.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        stream_io::read(self.stream.shared(), buf).await
    }

    /// Fills `buf` to its capacity.
    pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
        stream_io::read_exact(self.stream.shared(), buf).await
    }

    /// Puts the halves back together; gives them back if they are not of the same stream.
    pub fn reunite(
        self,
        write: OwnedWriteHalf,
    ) -> Result<TcpStream, (OwnedReadHalf, OwnedWriteHalf)> {
        if !Rc::ptr_eq(&self.stream, &write.stream) {
            return Err((self, write));
        }
        drop(write);
        match Rc::try_unwrap(self.stream) {
            Ok(stream) => Ok(stream),
            Err(_) => unreachable!("only the two halves hold the stream"),
        }
    }
}

impl OwnedWriteHalf {
    pub(crate) fn new(stream: Rc<TcpStream>) -> Self {
        OwnedWriteHalf { stream }
    }

    /// Writes some of `buf`.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        stream_io::write(self.stream.shared(), buf).await
    }

    /// Writes all of `buf`.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        stream_io::write_all(self.stream.shared(), buf).await
    }

    /// Shuts the write side down (sends FIN).
    pub fn shutdown(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }
}

impl fmt::Debug for OwnedReadHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OwnedReadHalf").field(&self.stream).finish()
    }
}

impl fmt::Debug for OwnedWriteHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OwnedWriteHalf").field(&self.stream).finish()
    }
}
