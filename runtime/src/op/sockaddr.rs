//! A heap slot for a socket address the kernel writes (accept, recvmsg).

use socket2::{SockAddr, SockAddrStorage};

/// Room for any socket address, and its length. Ops keep it boxed so the kernel's pointer stays
/// valid until the completion.
pub(crate) struct AddrSlot {
    storage: SockAddrStorage,
    len: libc::socklen_t,
}

impl AddrSlot {
    pub(crate) fn new() -> Box<Self> {
        let storage = SockAddrStorage::zeroed();
        let len = storage.size_of();
        Box::new(AddrSlot { storage, len })
    }

    /// The address buffer, as the kernel wants it.
    pub(crate) fn ptr(&mut self) -> *mut libc::sockaddr {
        (&mut self.storage as *mut SockAddrStorage).cast()
    }

    /// The length in/out parameter.
    pub(crate) fn len_ptr(&mut self) -> *mut libc::socklen_t {
        &mut self.len
    }

    pub(crate) fn set_len(&mut self, len: libc::socklen_t) {
        self.len = len;
    }

    /// A copy of the address the kernel wrote.
    pub(crate) fn addr(&self) -> SockAddr {
        let mut storage = SockAddrStorage::zeroed();
        // SAFETY: both are the platform's sockaddr_storage; a plain byte copy.
        unsafe {
            std::ptr::copy_nonoverlapping(&self.storage as *const SockAddrStorage, &mut storage, 1);
        }
        let len = self.len.min(storage.size_of());
        // SAFETY: the kernel wrote a valid address of `len` bytes (or left the zeroed storage
        // with `len` 0, an unnamed address).
        unsafe { SockAddr::new(storage, len) }
    }
}
