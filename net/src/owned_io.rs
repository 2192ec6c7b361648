//! The runtime's owned-buffer I/O traits for the stream types, so `hoop::io::copy`,
//! `BufReader` and `BufWriter` work on them.

use crate::{OwnedReadHalf, OwnedWriteHalf, TcpStream, UnixStream};
use hoop_runtime::buf::{BufResult, IoBuf, IoBufMut};
use hoop_runtime::io::{AsyncReadOwned, AsyncWriteOwned};
use std::io;
use std::net::Shutdown;

/// Implements both traits by forwarding to the type's inherent `read`/`write`, with `shutdown`
/// closing the write side.
macro_rules! stream_traits {
    ($read:ty, $write:ty, $shutdown:expr) => {
        impl AsyncReadOwned for $read {
            async fn read<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
                <$read>::read(self, buf).await
            }
        }

        impl AsyncWriteOwned for $write {
            async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
                <$write>::write(self, buf).await
            }

            async fn shutdown(&mut self) -> io::Result<()> {
                let shutdown: fn(&$write) -> io::Result<()> = $shutdown;
                shutdown(self)
            }
        }
    };
}

stream_traits!(TcpStream, TcpStream, |s| s.shutdown(Shutdown::Write));
stream_traits!(UnixStream, UnixStream, |s| s.shutdown(Shutdown::Write));
stream_traits!(OwnedReadHalf, OwnedWriteHalf, |s| s.shutdown());
