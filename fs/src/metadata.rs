//! [`Metadata`]: what `statx(2)` reports about a file.

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The statx fields hoop asks for.
pub(crate) const STATX_MASK: u32 =
    libc::STATX_BASIC_STATS | libc::STATX_BTIME | libc::STATX_DIOALIGN;

/// The type of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A block device.
    BlockDevice,
    /// A character device.
    CharDevice,
    /// A FIFO.
    Fifo,
    /// A socket.
    Socket,
    /// Something else (or not reported by the filesystem).
    Unknown,
}

impl FileType {
    pub(crate) fn from_mode(mode: u32) -> Self {
        match mode & libc::S_IFMT {
            libc::S_IFREG => FileType::File,
            libc::S_IFDIR => FileType::Dir,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFBLK => FileType::BlockDevice,
            libc::S_IFCHR => FileType::CharDevice,
            libc::S_IFIFO => FileType::Fifo,
            libc::S_IFSOCK => FileType::Socket,
            _ => FileType::Unknown,
        }
    }

    pub(crate) fn from_dirent(d_type: u8) -> Self {
        match d_type {
            libc::DT_REG => FileType::File,
            libc::DT_DIR => FileType::Dir,
            libc::DT_LNK => FileType::Symlink,
            libc::DT_BLK => FileType::BlockDevice,
            libc::DT_CHR => FileType::CharDevice,
            libc::DT_FIFO => FileType::Fifo,
            libc::DT_SOCK => FileType::Socket,
            _ => FileType::Unknown,
        }
    }

    /// A regular file.
    pub fn is_file(self) -> bool {
        self == FileType::File
    }

    /// A directory.
    pub fn is_dir(self) -> bool {
        self == FileType::Dir
    }

    /// A symbolic link.
    pub fn is_symlink(self) -> bool {
        self == FileType::Symlink
    }
}

/// Metadata of a file, from `statx(2)`.
#[derive(Clone, Copy)]
pub struct Metadata {
    stx: libc::statx,
}

fn time(ts: libc::statx_timestamp) -> SystemTime {
    let nanos = Duration::new(ts.tv_sec.unsigned_abs(), ts.tv_nsec);
    if ts.tv_sec >= 0 {
        UNIX_EPOCH + nanos
    } else {
        UNIX_EPOCH - nanos
    }
}

impl Metadata {
    pub(crate) fn from_statx(stx: libc::statx) -> Self {
        Metadata { stx }
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.stx.stx_size
    }

    /// True if the size is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file type.
    pub fn file_type(&self) -> FileType {
        FileType::from_mode(u32::from(self.stx.stx_mode))
    }

    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.file_type().is_file()
    }

    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.file_type().is_dir()
    }

    /// A symbolic link (only from `symlink_metadata`).
    pub fn is_symlink(&self) -> bool {
        self.file_type().is_symlink()
    }

    /// Permission bits and file type (`st_mode`).
    pub fn mode(&self) -> u32 {
        u32::from(self.stx.stx_mode)
    }

    /// The permissions, as `std::fs::Permissions` (holding the whole mode, like std's).
    pub fn permissions(&self) -> Permissions {
        Permissions::from_mode(self.mode())
    }

    /// Last modification.
    pub fn modified(&self) -> SystemTime {
        time(self.stx.stx_mtime)
    }

    /// Last access.
    pub fn accessed(&self) -> SystemTime {
        time(self.stx.stx_atime)
    }

    /// Creation (birth) time, if the filesystem records it.
    pub fn created(&self) -> Option<SystemTime> {
        (self.stx.stx_mask & libc::STATX_BTIME != 0).then(|| time(self.stx.stx_btime))
    }

    /// Last status change.
    pub fn changed(&self) -> SystemTime {
        time(self.stx.stx_ctime)
    }

    /// Inode number.
    pub fn ino(&self) -> u64 {
        self.stx.stx_ino
    }

    /// Device of the filesystem holding the file.
    pub fn dev(&self) -> u64 {
        libc::makedev(self.stx.stx_dev_major, self.stx.stx_dev_minor)
    }

    /// Device the file represents (character and block devices).
    pub fn rdev(&self) -> u64 {
        libc::makedev(self.stx.stx_rdev_major, self.stx.stx_rdev_minor)
    }

    /// Hard links.
    pub fn nlink(&self) -> u64 {
        u64::from(self.stx.stx_nlink)
    }

    /// Owner.
    pub fn uid(&self) -> u32 {
        self.stx.stx_uid
    }

    /// Group.
    pub fn gid(&self) -> u32 {
        self.stx.stx_gid
    }

    /// Preferred I/O block size.
    pub fn blksize(&self) -> u64 {
        u64::from(self.stx.stx_blksize)
    }

    /// 512-byte blocks allocated.
    pub fn blocks(&self) -> u64 {
        self.stx.stx_blocks
    }

    /// Direct-I/O alignment: `(memory alignment, file offset alignment)` in bytes, if the kernel
    /// and filesystem report it (`STATX_DIOALIGN`, Linux 6.1+) and support `O_DIRECT` here.
    pub fn dio_alignment(&self) -> Option<(u32, u32)> {
        (self.stx.stx_mask & libc::STATX_DIOALIGN != 0 && self.stx.stx_dio_mem_align != 0)
            .then_some((self.stx.stx_dio_mem_align, self.stx.stx_dio_offset_align))
    }
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metadata")
            .field("file_type", &self.file_type())
            .field("len", &self.len())
            .field("mode", &format_args!("{:o}", self.mode()))
            .field("ino", &self.ino())
            .field("uid", &self.uid())
            .field("gid", &self.gid())
            .finish_non_exhaustive()
    }
}
