//! Directory operations io_uring has no opcode for, run on the blocking pool on every driver:
//! `readlinkat(2)`, `getdents64(2)`, `fchmodat(2)`.

use super::at::At;
use super::cvt;
use super::{OpCode, OpTraits, Plan};
use crate::fd::SharedFd;
use io_uring::squeue::Entry;
use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::OsStringExt;

/// `readlinkat(2)`: the target of a symlink.
pub struct ReadLinkAt {
    at: At,
    path: CString,
    buf: Vec<u8>,
}

impl ReadLinkAt {
    /// Reads the symlink `path` under `at`.
    pub fn new(at: At, path: CString) -> Self {
        ReadLinkAt {
            at,
            path,
            buf: Vec::with_capacity(libc::PATH_MAX as usize),
        }
    }
}

// SAFETY: `perform` points at the op's heap CString and Vec allocation within its capacity.
unsafe impl OpCode for ReadLinkAt {
    type Output = io::Result<OsString>;

    fn uring_entry(&mut self) -> Option<Entry> {
        None
    }

    fn plan(&self) -> Plan {
        Plan::Blocking
    }

    fn traits(&self) -> OpTraits {
        OpTraits::NONE.ring_equivalent(io_uring::opcode::OpenAt2::CODE)
    }

    fn perform(&mut self) -> io::Result<u32> {
        // SAFETY: a live CString, `capacity` writable bytes.
        cvt(unsafe {
            libc::readlinkat(
                self.at.raw(),
                self.path.as_ptr(),
                self.buf.as_mut_ptr().cast(),
                self.buf.capacity(),
            )
        } as libc::c_long)
    }

    fn complete(mut self, result: io::Result<u32>) -> io::Result<OsString> {
        let n = result? as usize;
        // SAFETY: the kernel wrote `n <= capacity` bytes.
        unsafe { self.buf.set_len(n.min(self.buf.capacity())) };
        Ok(OsString::from_vec(self.buf))
    }
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntryRaw {
    /// The entry's name.
    pub name: OsString,
    /// The inode number.
    pub ino: u64,
    /// `DT_*` type (`DT_UNKNOWN` on filesystems that do not report it).
    pub d_type: u8,
}

/// `getdents64(2)`: the next batch of entries of an open directory (`.` and `..` skipped),
/// with the number of bytes the kernel returned (0 at the end).
pub struct GetDents {
    dir: SharedFd,
    buf: Vec<u8>,
}

impl GetDents {
    /// Reads up to `buf_size` bytes of entries from `dir`'s current position.
    pub fn new(dir: &SharedFd, buf_size: usize) -> Self {
        GetDents {
            dir: dir.clone(),
            buf: Vec::with_capacity(buf_size.max(1024)),
        }
    }
}

// SAFETY: `perform` points at the op's heap Vec allocation within its capacity.
unsafe impl OpCode for GetDents {
    type Output = io::Result<(usize, Vec<DirEntryRaw>)>;

    fn uring_entry(&mut self) -> Option<Entry> {
        None
    }

    fn plan(&self) -> Plan {
        Plan::Blocking
    }

    fn traits(&self) -> OpTraits {
        OpTraits::NONE.ring_equivalent(io_uring::opcode::OpenAt2::CODE)
    }

    fn perform(&mut self) -> io::Result<u32> {
        // SAFETY: `capacity` writable bytes of the Vec's allocation.
        cvt(unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                self.dir.raw(),
                self.buf.as_mut_ptr(),
                self.buf.capacity(),
            )
        })
    }

    fn complete(mut self, result: io::Result<u32>) -> io::Result<(usize, Vec<DirEntryRaw>)> {
        let n = (result? as usize).min(self.buf.capacity());
        // SAFETY: the kernel wrote `n` bytes of dirent records.
        unsafe { self.buf.set_len(n) };
        Ok((n, parse_dirents(&self.buf)))
    }
}

/// Parses `linux_dirent64` records: `d_ino: u64, d_off: i64, d_reclen: u16, d_type: u8,
/// d_name: [u8]` (NUL-terminated, padded to `d_reclen`).
fn parse_dirents(mut bytes: &[u8]) -> Vec<DirEntryRaw> {
    let mut out = Vec::new();
    while bytes.len() >= 19 {
        let ino = u64::from_ne_bytes(bytes[0..8].try_into().expect("8 bytes"));
        let reclen = u16::from_ne_bytes(bytes[16..18].try_into().expect("2 bytes")) as usize;
        if reclen < 19 || reclen > bytes.len() {
            break;
        }
        let d_type = bytes[18];
        let name = &bytes[19..reclen];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        if name != b"." && name != b".." {
            out.push(DirEntryRaw {
                name: OsString::from_vec(name.to_vec()),
                ino,
                d_type,
            });
        }
        bytes = &bytes[reclen..];
    }
    out
}

/// `fchmodat(2)`: change permission bits (`fchmod(2)` of an open fd with [`ChmodAt::fd`]).
pub struct ChmodAt {
    at: At,
    path: CString,
    mode: u32,
}

impl ChmodAt {
    /// Sets the mode of `path` under `at` (following symlinks, as chmod does).
    pub fn new(at: At, path: CString, mode: u32) -> Self {
        ChmodAt { at, path, mode }
    }

    /// Sets the mode of the open file `fd` (`fchmod`): no path, so nothing to re-resolve.
    pub fn fd(fd: &SharedFd, mode: u32) -> Self {
        ChmodAt {
            at: At::dir(fd),
            path: CString::default(),
            mode,
        }
    }
}

// SAFETY: `perform` points at the op's heap CString; the dirfd is kept open.
unsafe impl OpCode for ChmodAt {
    type Output = io::Result<()>;

    fn uring_entry(&mut self) -> Option<Entry> {
        None
    }

    fn plan(&self) -> Plan {
        Plan::Blocking
    }

    fn traits(&self) -> OpTraits {
        // `fchmod` changes an open file like `ftruncate`; `fchmodat` is a path operation.
        OpTraits::NONE.ring_equivalent(if self.path.is_empty() {
            io_uring::opcode::Ftruncate::CODE
        } else {
            io_uring::opcode::OpenAt2::CODE
        })
    }

    fn perform(&mut self) -> io::Result<u32> {
        if self.path.is_empty() {
            // SAFETY: a plain syscall on an fd the op keeps open.
            return cvt(unsafe { libc::fchmod(self.at.raw(), self.mode) } as libc::c_long);
        }
        // SAFETY: a live CString and an open dirfd.
        cvt(
            unsafe { libc::fchmodat(self.at.raw(), self.path.as_ptr(), self.mode, 0) }
                as libc::c_long,
        )
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_dirents;

    fn record(ino: u64, d_type: u8, name: &[u8]) -> Vec<u8> {
        let reclen = (19 + name.len() + 1).div_ceil(8) * 8;
        let mut r = vec![0u8; reclen];
        r[0..8].copy_from_slice(&ino.to_ne_bytes());
        r[16..18].copy_from_slice(&(reclen as u16).to_ne_bytes());
        r[18] = d_type;
        r[19..19 + name.len()].copy_from_slice(name);
        r
    }

    #[test]
    fn parses_records_and_skips_dots() {
        let mut bytes = record(1, 4, b".");
        bytes.extend(record(2, 4, b".."));
        bytes.extend(record(42, 8, b"file.txt"));
        bytes.extend(record(43, 4, b"a-longer-directory-name"));
        let entries = parse_dirents(&bytes);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, "file.txt");
        assert_eq!(entries[0].ino, 42);
        assert_eq!(entries[1].d_type, 4);
        assert!(
            parse_dirents(&bytes[..10]).is_empty(),
            "truncated input stops cleanly"
        );
    }
}

super::opaque_debug!(ReadLinkAt, ChmodAt, GetDents);
