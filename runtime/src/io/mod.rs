//! I/O building blocks: the owned-buffer traits ([`AsyncReadOwned`], [`AsyncWriteOwned`]) with
//! [`BufReader`], [`BufWriter`] and [`copy`]; pipes; receiving into buffer rings
//! ([`RecvStream`]); [`send_file`]; readiness of foreign fds; the no-op operation.

mod buffered;
mod compat;
mod owned;
mod pipe;
mod ready;
mod recv_stream;
mod send_file;

pub use crate::op::poll::Ready;
pub use crate::op::Interest;
pub use buffered::{BufReader, BufWriter};
pub use compat::{Compat, CompatSource};
#[cfg(feature = "hyper")]
pub use compat::{HyperExecutor, HyperTimer};
pub use owned::{copy, AsyncReadOwned, AsyncWriteOwned};
pub use pipe::{pipe, PipeReader, PipeWriter};
pub use ready::{ready_stream, wait_ready, ReadyStream, WaitReady};
pub use recv_stream::RecvStream;
pub use send_file::{send_file, send_file_cached, splice_file};

use crate::op::{nop::Nop, Op};

/// An operation that does nothing: one round trip through the ring (`IORING_OP_NOP`), or an
/// immediate completion on the epoll driver. Useful to measure the op path.
///
/// ```
/// # hoop_runtime::block_on(async {
/// hoop_runtime::io::nop().await.unwrap();
/// # });
/// ```
pub fn nop() -> Op<Nop> {
    Op::new(Nop)
}
