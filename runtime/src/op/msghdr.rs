//! [`MsgParts`]: a `msghdr` with its iovec and control buffer, boxed together so every pointer
//! the kernel follows stays valid until the operation's completion.

use std::os::fd::RawFd;

/// Everything a `msghdr` points at, boxed together so the pointers stay valid.
pub(crate) struct MsgParts {
    pub(crate) hdr: libc::msghdr,
    iov: libc::iovec,
    /// Control data, 8-byte aligned as `cmsghdr` requires.
    control: Vec<u64>,
}

impl MsgParts {
    /// One iovec of `len` bytes at `ptr`, and `control_bytes` of control space (0: none).
    pub(crate) fn new(ptr: *mut u8, len: usize, control_bytes: usize) -> Box<MsgParts> {
        let mut p = Box::new(MsgParts {
            // SAFETY: msghdr is plain old data; all-zero is an empty header.
            hdr: unsafe { std::mem::zeroed() },
            iov: libc::iovec {
                iov_base: ptr.cast(),
                iov_len: len,
            },
            control: vec![0u64; control_bytes.div_ceil(8)],
        });
        p.hdr.msg_iov = &mut p.iov;
        p.hdr.msg_iovlen = 1;
        if control_bytes > 0 {
            p.hdr.msg_control = p.control.as_mut_ptr().cast();
            p.hdr.msg_controllen = control_bytes;
        }
        p
    }

    /// Points the header at a socket address the op keeps alive (boxed).
    pub(crate) fn set_name(&mut self, name: *mut libc::c_void, len: libc::socklen_t) {
        self.hdr.msg_name = name;
        self.hdr.msg_namelen = len;
    }

    /// The fds of the `SCM_RIGHTS` messages the kernel wrote into the control buffer.
    pub(crate) fn received_fds(&self) -> Vec<RawFd> {
        let mut out = Vec::new();
        // SAFETY: the CMSG macros walk the control buffer the kernel filled, within
        // `msg_controllen`; each SCM_RIGHTS payload is an array of ints.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&self.hdr);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(c) as *const RawFd;
                    let n = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                        / std::mem::size_of::<RawFd>();
                    for i in 0..n {
                        out.push(std::ptr::read_unaligned(data.add(i)));
                    }
                }
                c = libc::CMSG_NXTHDR(&self.hdr, c);
            }
        }
        out
    }
}
