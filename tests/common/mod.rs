//! Helpers shared by the integration tests.

#![allow(dead_code)]

use hoop::{IoBuf, IoBufMut};
use std::sync::Arc;

/// A buffer that counts its owners, to see when the runtime lets go of it.
pub struct Tracked {
    pub data: Vec<u8>,
    pub owner: Arc<()>,
}

impl Tracked {
    pub fn new(capacity: usize, owner: &Arc<()>) -> Self {
        Tracked {
            data: Vec::with_capacity(capacity),
            owner: owner.clone(),
        }
    }
}

// SAFETY: delegates to the Vec, whose heap allocation is stable.
unsafe impl IoBuf for Tracked {
    fn stable_ptr(&self) -> *const u8 {
        self.data.stable_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.data.bytes_init()
    }
    fn bytes_total(&self) -> usize {
        self.data.bytes_total()
    }
}

// SAFETY: delegates to the Vec.
unsafe impl IoBufMut for Tracked {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.data.stable_mut_ptr()
    }
    // SAFETY: the caller upholds `IoBufMut::set_init`'s contract, which is forwarded as is.
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.data.set_init(pos) }
    }
}
