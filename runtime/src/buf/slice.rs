//! [`Slice`]: an owned buffer narrowed to a sub-range.

use super::{IoBuf, IoBufMut};

/// An owned buffer restricted to `begin..end` of its capacity; made by [`IoBuf::slice`].
///
/// Operations on a slice read the initialised bytes of the range and write into its capacity;
/// [`Slice::into_inner`] returns the whole buffer.
#[derive(Debug)]
pub struct Slice<B> {
    buf: B,
    begin: usize,
    end: usize,
}

impl<B: IoBuf> Slice<B> {
    pub(crate) fn new(buf: B, begin: usize, end: usize) -> Self {
        Slice { buf, begin, end }
    }

    /// Offset of the slice's first byte in the buffer.
    pub fn begin(&self) -> usize {
        self.begin
    }

    /// Offset just past the slice's last byte in the buffer.
    pub fn end(&self) -> usize {
        self.end
    }

    /// The underlying buffer.
    pub fn get_ref(&self) -> &B {
        &self.buf
    }

    /// Gives back the whole buffer.
    pub fn into_inner(self) -> B {
        self.buf
    }

    /// The initialised bytes of the range.
    pub fn as_slice(&self) -> &[u8] {
        let len = self.bytes_init();
        // SAFETY: `IoBuf` guarantees `bytes_init()` initialised bytes at `stable_ptr()`, and the
        // slice's range starts within them (`bytes_init` clamps to the initialised part).
        unsafe { std::slice::from_raw_parts(self.stable_ptr(), len) }
    }
}

// SAFETY: the pointer is the inner buffer's stable pointer offset within its capacity (checked when
// the slice was made), and the lengths are clamped to the inner buffer's.
unsafe impl<B: IoBuf> IoBuf for Slice<B> {
    fn stable_ptr(&self) -> *const u8 {
        // SAFETY: `begin <= bytes_total()` was checked in `IoBuf::slice`.
        unsafe { self.buf.stable_ptr().add(self.begin) }
    }
    fn bytes_init(&self) -> usize {
        self.buf.bytes_init().clamp(self.begin, self.end) - self.begin
    }
    fn bytes_total(&self) -> usize {
        self.end - self.begin
    }
    fn fixed_index(&self) -> Option<u16> {
        // A range of a registered buffer lies within it.
        self.buf.fixed_index()
    }
}

// SAFETY: as for `IoBuf`; writes stay within `begin..end` of the inner buffer's capacity.
unsafe impl<B: IoBufMut> IoBufMut for Slice<B> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        // SAFETY: `begin <= bytes_total()` was checked in `IoBuf::slice`.
        unsafe { self.buf.stable_mut_ptr().add(self.begin) }
    }
    // SAFETY: the caller upholds `IoBufMut::set_init`'s contract for the slice's range.
    unsafe fn set_init(&mut self, pos: usize) {
        debug_assert!(
            pos <= self.end - self.begin,
            "set_init({pos}) past the slice"
        );
        // Never past the slice's end: the bytes after it belong to the inner buffer's caller.
        let pos = pos.min(self.end - self.begin);
        // A read into a slice that starts past the initialised part would leave a gap of
        // uninitialised bytes, so the inner buffer only grows when there is no gap.
        if self.buf.bytes_init() >= self.begin {
            // SAFETY: the caller wrote `pos` bytes from the slice's start, and the bytes before
            // `begin` are initialised (checked above), so `begin + pos` bytes are initialised.
            unsafe { self.buf.set_init(self.begin + pos) };
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::buf::IoBuf;

    #[test]
    fn slice_ranges() {
        let v = b"hello world".to_vec();
        let s = v.slice(6..);
        assert_eq!(s.as_slice(), b"world");
        assert_eq!(s.begin(), 6);
        let v = s.into_inner();
        let s = v.slice(..=4);
        assert_eq!(s.as_slice(), b"hello");
    }

    #[test]
    #[should_panic(expected = "out of buffer capacity")]
    fn slice_out_of_range_panics() {
        let v: &'static [u8] = b"abc";
        let _ = v.slice(2..10);
    }
}
