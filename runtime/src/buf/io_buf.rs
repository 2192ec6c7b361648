//! The [`IoBuf`] and [`IoBufMut`] traits and their implementations for the standard owned types.

use super::Slice;
use std::ops::{Bound, RangeBounds};

/// A buffer whose initialised bytes the kernel may read while an operation is in flight.
///
/// # Safety
///
/// `stable_ptr()` must point to at least `bytes_init()` initialised bytes, and
/// `bytes_total() >= bytes_init()` bytes of allocation, and that memory must not move or be freed
/// while the value is alive, even if the value itself is moved (so the memory lives on the heap
/// or in static memory, never inline). The pointer and lengths must not change unless the buffer
/// is accessed through `&mut` (which an in-flight operation never gives away).
pub unsafe trait IoBuf: Unpin + 'static {
    /// Pointer to the first byte.
    fn stable_ptr(&self) -> *const u8;

    /// Number of initialised bytes (what a write sends).
    fn bytes_init(&self) -> usize;

    /// Total capacity in bytes (how much a read may fill).
    fn bytes_total(&self) -> usize;

    /// The index of the registered buffer (in the table of the ring running on this thread)
    /// that holds all of this buffer's capacity, if there is one: operations that can name a
    /// registered buffer (zero-copy sends) then skip pinning its pages for each call.
    ///
    /// `None` by default; [`FixedBuf`](super::FixedBuf) from a registered pool, and slices of
    /// one, give their index. An implementor that returns `Some` must return the index of a
    /// registered buffer containing `stable_ptr()..stable_ptr() + bytes_total()`; the kernel
    /// checks that range against the registered buffer and fails the operation with `EFAULT`
    /// where it does not hold, so a wrong index never reads other memory.
    fn fixed_index(&self) -> Option<u16> {
        None
    }

    /// A view of `range` of this buffer that owns the buffer; `into_inner` gives it back.
    ///
    /// Panics if the range is out of the buffer's capacity, like slice indexing.
    fn slice(self, range: impl RangeBounds<usize>) -> Slice<Self>
    where
        Self: Sized,
    {
        let begin = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n.checked_add(1).expect("slice range overflows usize"),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&n) => n.checked_add(1).expect("slice range overflows usize"),
            Bound::Excluded(&n) => n,
            Bound::Unbounded => self.bytes_total(),
        };
        assert!(
            begin <= end && end <= self.bytes_total(),
            "slice range {begin}..{end} out of buffer capacity {}",
            self.bytes_total()
        );
        Slice::new(self, begin, end)
    }
}

/// A buffer the kernel may write into while an operation is in flight.
///
/// # Safety
///
/// Everything [`IoBuf`] requires, and `stable_mut_ptr()` points to `bytes_total()` writable bytes
/// with the same stability guarantee. `set_init(n)` is only called after the first `n` bytes were
/// written.
pub unsafe trait IoBufMut: IoBuf {
    /// Mutable pointer to the first byte.
    fn stable_mut_ptr(&mut self) -> *mut u8;

    /// Marks the first `pos` bytes as initialised (grows the initialised length, never shrinks it).
    ///
    /// # Safety
    ///
    /// The first `pos` bytes must have been written.
    unsafe fn set_init(&mut self, pos: usize);
}

// SAFETY: a Vec's heap allocation does not move when the Vec value moves; `len <= capacity`, and the
// allocation only changes through `&mut Vec`, which an operation holding the Vec never exposes.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as for `IoBuf`; the spare capacity is writable memory of the same allocation.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    // SAFETY (contract): callers only pass `pos` after writing the first `pos` bytes; the
    // length is clamped to the capacity and never shrinks.
    unsafe fn set_init(&mut self, pos: usize) {
        debug_assert!(pos <= self.capacity(), "set_init({pos}) past the capacity");
        // A kernel result is never trusted to stay within the buffer (`recv(MSG_TRUNC)` returns
        // a datagram's real length): a length past the capacity would break the Vec.
        let pos = pos.min(self.capacity());
        if self.len() < pos {
            // SAFETY: the caller guarantees the first `pos` bytes are written, and `pos` is within
            // the capacity (clamped above).
            unsafe { self.set_len(pos) };
        }
    }
}

// SAFETY: a boxed slice is a heap allocation that does not move with the box; all of it is initialised.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: the boxed slice is writable through the owning box, and fully initialised already.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _pos: usize) {}
}

// SAFETY: static memory never moves and is never freed.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: static memory never moves and is never freed.
unsafe impl IoBuf for &'static str {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_reports_len_and_capacity() {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(b"abc");
        assert_eq!(v.bytes_init(), 3);
        assert!(v.bytes_total() >= 16);
        // SAFETY: nothing beyond the current length is claimed.
        unsafe { v.set_init(2) };
        assert_eq!(v.len(), 3, "set_init never shrinks");
    }

    #[test]
    fn static_bufs() {
        let s: &'static str = "hello";
        assert_eq!(s.bytes_init(), 5);
        let b: &'static [u8] = b"xy";
        assert_eq!(b.bytes_total(), 2);
    }
}
