//! Asynchronous files and directories for the hoop runtime.
//!
//! Every operation goes through the worker's io_uring where the kernel has the opcode (open,
//! read, write, fsync, statx, fallocate, fadvise, ftruncate, rename, unlink, mkdir, symlink, link,
//! xattrs), and through the blocking pool on the epoll driver or for calls io_uring lacks
//! (readlink, getdents, chmod, listing and removing xattrs) — never a blocking syscall on a
//! worker thread.
//!
//! - [`File`] and [`OpenOptions`]: positioned, owned-buffer I/O (`read_at(buf, pos)` gives the
//!   buffer back with the result);
//! - free functions like `std::fs` / `tokio::fs`: [`read()`], [`write()`], [`metadata()`],
//!   [`rename`], [`read_dir`], [`copy`], …;
//! - [`Dir`]: a directory capability whose paths can never escape it (`openat2` with
//!   `RESOLVE_BENEATH`; where `openat2` is missing or denied by seccomp, a component-by-component
//!   `O_NOFOLLOW` walk with the same answers);
//! - registered buffers ([`File::read_fixed_at`] with a `hoop::buf::FixedBufPool`) and aligned
//!   buffers for `O_DIRECT` ([`File::direct_io_buf`]);
//! - [`Metadata`] from `statx`, including the direct-I/O alignment.
//!
//! Errors are `std::io::Error`s with their kind kept; path functions wrap the OS error in an
//! [`FsError`] that names the operation and path (see [`os_error`] to get the errno back).

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]
#![warn(missing_docs)]

mod dir;
mod direct_file;
mod error;
mod file;
mod functions;
mod metadata;
mod open_options;
mod openat;
mod read_dir;
mod tree;
mod xattr;

pub use dir::{Dir, Resolve};
pub use direct_file::DirectFile;
pub use error::{os_error, FsError};
pub use file::{Advice, File};
pub use functions::*;
pub use metadata::{FileType, Metadata};
pub use open_options::OpenOptions;
pub use read_dir::{DirEntry, ReadDir};
pub use tree::{create_dir_all, remove_dir_all};
