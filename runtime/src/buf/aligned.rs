//! [`AlignedBuf`]: a heap buffer whose address and capacity are multiples of an alignment, as
//! `O_DIRECT` I/O requires.

use super::{IoBuf, IoBufMut};
use std::alloc::{self, Layout};
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// An owned byte buffer aligned for direct I/O.
///
/// `O_DIRECT` reads and writes need the memory address, the file offset and the length aligned
/// (the alignments `statx` reports as `STATX_DIOALIGN`; see `hoop::fs::File::direct_io_buf`).
/// The capacity is rounded up to a multiple of the alignment, so a full-capacity read or write
/// is always aligned. Like a `Vec<u8>`, it has initialised bytes (`len`) within its capacity;
/// reads fill it from the start.
///
/// ```
/// use hoop_runtime::buf::AlignedBuf;
/// let mut buf = AlignedBuf::new(1000, 512).unwrap();
/// assert_eq!(buf.capacity(), 1024);
/// assert_eq!(buf.as_ptr() as usize % 512, 0);
/// buf.extend_from_slice(b"abc");
/// assert_eq!(&buf[..], b"abc");
/// ```
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    layout: Layout,
}

// SAFETY: the buffer exclusively owns its allocation, like a `Vec<u8>`.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only reads the initialised bytes.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of at least `capacity` bytes (rounded up to `align`) at an address that
    /// is a multiple of `align`, with no initialised bytes. `align` must be a power of two;
    /// `capacity` must not be zero.
    pub fn new(capacity: usize, align: usize) -> io::Result<Self> {
        let invalid = |what| io::Error::new(io::ErrorKind::InvalidInput, what);
        if !align.is_power_of_two() {
            return Err(invalid("hoop: buffer alignment must be a power of two"));
        }
        if capacity == 0 {
            return Err(invalid("hoop: an aligned buffer needs a capacity"));
        }
        let size = capacity
            .checked_next_multiple_of(align)
            .ok_or_else(|| invalid("hoop: aligned buffer capacity overflows"))?;
        let layout = Layout::from_size_align(size, align)
            .map_err(|_| invalid("hoop: aligned buffer too large"))?;
        // SAFETY: the layout has a non-zero size (capacity > 0). Zeroed so that the bytes past
        // `len` never expose stale heap contents through a full-capacity write.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        Ok(AlignedBuf {
            ptr,
            len: 0,
            layout,
        })
    }

    /// The buffer's alignment.
    pub fn align(&self) -> usize {
        self.layout.align()
    }

    /// Bytes of memory the buffer holds.
    pub fn capacity(&self) -> usize {
        self.layout.size()
    }

    /// Number of initialised bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no byte is initialised.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the initialised bytes (the memory is kept).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Shortens the initialised part to `len` bytes (no effect if it is shorter).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Marks the whole capacity as initialised (the allocation is zeroed, so this exposes only
    /// zeroes or bytes written before), e.g. to write a full aligned block.
    pub fn fill_to_capacity(&mut self) {
        self.len = self.capacity();
    }

    /// Appends `data`. Panics if it does not fit in the capacity (the buffer never grows: its
    /// address must stay put and aligned).
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        let end = self.len + data.len();
        assert!(
            end <= self.capacity(),
            "AlignedBuf overflow: {} + {} bytes > capacity {}",
            self.len,
            data.len(),
            self.capacity()
        );
        // SAFETY: `end <= capacity`, so the destination is inside the allocation, which does
        // not overlap `data` (we hold `&mut self`).
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.ptr.as_ptr().add(self.len),
                data.len(),
            )
        };
        self.len = end;
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with exactly this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are initialised (the allocation is zeroed, `len` only
        // grows after writes) and owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`, with exclusive access through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .field("align", &self.align())
            .finish()
    }
}

// SAFETY: the allocation is on the heap and does not move with the value; `len <= capacity`; the
// pointer and sizes change only through `&mut self`.
unsafe impl IoBuf for AlignedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: the whole capacity is writable memory of the allocation.
unsafe impl IoBufMut for AlignedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    // SAFETY (contract): callers only pass `pos` after writing the first `pos` bytes; the
    // length is clamped to the capacity and never shrinks.
    unsafe fn set_init(&mut self, pos: usize) {
        self.len = self.len.max(pos.min(self.capacity()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_and_aligns() {
        for align in [1, 512, 4096] {
            let b = AlignedBuf::new(4097, align).unwrap();
            assert_eq!(b.as_ptr() as usize % align, 0);
            assert_eq!(b.capacity() % align, 0);
            assert!(b.capacity() >= 4097);
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(AlignedBuf::new(10, 3).is_err());
        assert!(AlignedBuf::new(0, 512).is_err());
        assert!(AlignedBuf::new(usize::MAX, 4096).is_err());
    }

    #[test]
    fn init_tracking() {
        let mut b = AlignedBuf::new(8, 8).unwrap();
        // SAFETY: the allocation is zeroed, so every byte is initialised.
        unsafe { b.set_init(100) };
        assert_eq!(b.len(), 8, "set_init clamps to the capacity");
        b.truncate(2);
        assert_eq!(&b[..], &[0, 0]);
    }
}
