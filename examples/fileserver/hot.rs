//! Which files were served a moment ago, per worker: their pages are in the page cache, so
//! their bodies may go out by `sendfile` on the worker (no copy) instead of a read and a send.
//!
//! A file is remembered for [`HOT_FOR`] after it was read, by its device, inode, size and
//! modification time; a file changed or replaced since is not the one remembered. What the
//! guess can cost: a file evicted from the page cache within that second makes the worker wait
//! for one disk read (`sendfile` cannot refuse to wait). Filesystems that keep no page cache for
//! reads (FUSE with `direct_io`, virtiofs or 9p with `cache=none`, DAX) read from the device or
//! host on every `sendfile`: serve such trees with `--no-sendfile`.

use hoop::fs::Metadata;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::time::{Duration, Instant, SystemTime};

/// How long a file read stays "in the page cache" for this guess.
const HOT_FOR: Duration = Duration::from_secs(1);
/// Files remembered per worker; when full, the memory starts over.
const CAPACITY: usize = 4096;

type Key = (u64, u64);

/// Device and inode numbers need no defence against chosen collisions (a client names paths,
/// not inodes): a multiply-and-rotate hash instead of SipHash, which was most of a lookup.
#[derive(Default)]
struct InodeHasher(u64);

impl std::hash::Hasher for InodeHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(26) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Memory = HashMap<Key, (Instant, u64, SystemTime), BuildHasherDefault<InodeHasher>>;

thread_local! {
    static SERVED: RefCell<Memory> = RefCell::new(Memory::default());
}

/// True if this version of the file was read less than [`HOT_FOR`] ago.
pub fn is_hot(meta: &Metadata) -> bool {
    let now = Instant::now();
    SERVED.with(|s| {
        s.borrow()
            .get(&(meta.dev(), meta.ino()))
            .is_some_and(|&(at, len, modified)| {
                now.saturating_duration_since(at) < HOT_FOR
                    && len == meta.len()
                    && modified == meta.modified()
            })
    })
}

/// Remembers that this version of the file was just read whole.
pub fn read_now(meta: &Metadata) {
    let now = Instant::now();
    SERVED.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() >= CAPACITY {
            s.clear();
        }
        s.insert((meta.dev(), meta.ino()), (now, meta.len(), meta.modified()));
    })
}
