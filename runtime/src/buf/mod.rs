//! Owned buffers for completion-based I/O.
//!
//! The kernel reads from or writes into a buffer *after* the call that submitted the operation has
//! returned, possibly after the future that asked for it is gone. So an operation takes its buffer
//! by value, keeps it (heap-stable) until the completion arrives, and hands it back with the result
//! as a [`BufResult`] — on error too.
//!
//! [`IoBuf`] is a buffer the kernel may read from (writes, sends); [`IoBufMut`] one it may write
//! into (reads, receives). [`Slice`] narrows an owned buffer to a sub-range without copying.
//! [`AlignedBuf`] is aligned for `O_DIRECT`; [`FixedBufPool`] lends [`FixedBuf`]s registered with
//! the ring, for `READ_FIXED`/`WRITE_FIXED`; [`BufRing`] is a provided-buffer ring that receives
//! pick buffers from only when data arrives, yielding [`RingBuf`]s.

mod aligned;
mod buf_ring;
mod fixed;
mod io_buf;
mod slice;

pub use aligned::AlignedBuf;
pub(crate) use buf_ring::Landing;
pub use buf_ring::{BufRing, BufRingBuilder, Received, RingBuf, RingBufMut};
pub use fixed::{FixedBuf, FixedBufPool};
pub use io_buf::{IoBuf, IoBufMut};
pub use slice::Slice;

/// The result of an owned-buffer operation: the operation's result and the buffer, which comes
/// back whether the operation succeeded or not.
///
/// ```
/// # hoop_runtime::block_on(async {
/// let (r1, r2) = hoop_runtime::io::pipe().unwrap();
/// let (res, buf) = r2.write(b"hi".to_vec()).await;
/// assert_eq!(res.unwrap(), 2);
/// assert_eq!(buf, b"hi");
/// # let _ = r1;
/// # });
/// ```
pub type BufResult<T, B> = (std::io::Result<T>, B);

/// Marks the `n` bytes a read reported as written into `buf` from its start, and returns how many
/// that is. A kernel count is never trusted past the buffer: it is clamped to `bytes_total()`
/// (and asserted in debug builds, where a larger count is a bug in the op that let it happen).
///
/// # Safety
///
/// The first `min(n, bytes_total())` bytes of `buf` must have been written.
pub(crate) unsafe fn mark_filled<B: IoBufMut>(buf: &mut B, n: u32) -> usize {
    let total = buf.bytes_total();
    debug_assert!(
        n as usize <= total,
        "a read reported {n} bytes into a {total}-byte buffer"
    );
    let n = (n as usize).min(total);
    // SAFETY: the caller guarantees these `n` bytes were written; `n <= bytes_total()`.
    unsafe { buf.set_init(n) };
    n
}
