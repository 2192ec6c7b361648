//! hoop::fs on both drivers: files, path functions, metadata against std, xattrs, fallocate,
//! errors with context, ENOSPC on a small tmpfs, and `Dir` confinement against escapes.

#[path = "common/mod.rs"]
mod common;

use futures_util::StreamExt;
use hoop::fs::{self, Dir, File, OpenOptions, Resolve};
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory under the target dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hoop-fs-{}-{}-{}-{}",
            name,
            std::process::id(),
            hoop::runtime_info().map_or("none".into(), |i| i.driver.to_string()),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[hoop::test]
async fn file_positioned_io() {
    let s = Scratch::new("io");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .open(s.path("f"))
        .await
        .unwrap();
    let (r, buf) = f.write_all_at(b"0123456789".to_vec(), 0).await;
    r.unwrap();
    assert_eq!(buf, b"0123456789");
    f.write_all_at(&b"AB"[..], 4).await.0.unwrap();
    let (r, buf) = f.read_at(Vec::with_capacity(4), 3).await;
    assert_eq!(r.unwrap(), 4);
    assert_eq!(buf, b"3AB6");
    let (r, buf) = f.read_exact_at(vec![0u8; 3], 7).await;
    r.unwrap();
    assert_eq!(buf, b"789");
    let (r, _) = f.read_exact_at(vec![0u8; 5], 8).await;
    assert_eq!(r.unwrap_err().kind(), ErrorKind::UnexpectedEof);
    let (r, _) = f.read_at(Vec::with_capacity(8), 100).await;
    assert_eq!(r.unwrap(), 0, "EOF past the end");
    let (r, bufs) = f.writev_at(vec![b"ab".to_vec(), b"cde".to_vec()], 20).await;
    assert_eq!(r.unwrap(), 5);
    assert_eq!(bufs.len(), 2);
    let (r, bufs) = f
        .readv_at(
            vec![
                Vec::with_capacity(1),
                Vec::with_capacity(3),
                Vec::with_capacity(4),
            ],
            20,
        )
        .await;
    assert_eq!(r.unwrap(), 5);
    assert_eq!(bufs, vec![b"a".to_vec(), b"bcd".to_vec(), b"e".to_vec()]);
    f.sync_all().await.unwrap();
    f.sync_data().await.unwrap();
    f.set_len(3).await.unwrap();
    assert_eq!(f.metadata().await.unwrap().len(), 3);
    f.set_len(1 << 20).await.unwrap();
    assert_eq!(std::fs::metadata(s.path("f")).unwrap().len(), 1 << 20);
    f.fadvise(0, 0, fs::Advice::Sequential).await.unwrap();
    f.close().await.unwrap();
    assert_eq!(&std::fs::read(s.path("f")).unwrap()[..3], b"012");
}

/// A read the page cache can serve, with no other file read in flight, completes on the
/// worker's thread with one `preadv2(RWF_NOWAIT)` — no ring round trip, no pool hand-off. Data
/// not in the cache (evicted) takes the asynchronous path and is read all the same.
#[hoop::test]
async fn page_cache_reads_complete_inline() {
    use std::os::fd::AsRawFd;
    let dir = Scratch::new("inline");
    let path = dir.path("data");
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 % 253) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let inline = || hoop::metrics().unwrap().ops_inline;

    let file = File::open(&path).await.unwrap();
    let before = inline();
    let (r, buf) = file.read_at(Vec::with_capacity(4096), 8192).await;
    assert_eq!(r.unwrap(), 4096);
    assert_eq!(&buf[..], &data[8192..8192 + 4096]);
    assert_eq!(inline(), before + 1, "a cached read is served inline");

    // Written back and dropped from the page cache (clean pages of an unmapped file).
    let std_file = std::fs::File::open(&path).unwrap();
    std_file.sync_all().unwrap();
    // SAFETY: fdatasync and posix_fadvise on an fd this test owns; no memory is passed.
    let evicted = unsafe {
        libc::fdatasync(std_file.as_raw_fd()) == 0
            && libc::posix_fadvise(std_file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) == 0
    };
    let before = inline();
    let (r, buf) = file.read_at(Vec::with_capacity(4096), 512 * 1024).await;
    assert_eq!(r.unwrap(), 4096);
    assert_eq!(&buf[..], &data[512 * 1024..512 * 1024 + 4096]);
    let tmpfs = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" /tmp ") && l.contains("tmpfs"));
    if evicted && !tmpfs {
        assert_eq!(inline(), before, "evicted data was read asynchronously");
    }

    // At the end of the file: 0, as from a blocking read.
    let (r, _) = file.read_at(Vec::with_capacity(10), 1 << 20).await;
    assert_eq!(r.unwrap(), 0);
}

#[hoop::test]
async fn metadata_matches_std() {
    let s = Scratch::new("meta");
    std::fs::write(s.path("a"), b"hello").unwrap();
    std::os::unix::fs::symlink("a", s.path("link")).unwrap();
    let ours = fs::metadata(s.path("link")).await.unwrap();
    let std_m = std::fs::metadata(s.path("link")).unwrap();
    assert!(ours.is_file());
    assert_eq!(ours.len(), std_m.len());
    assert_eq!(ours.ino(), std_m.ino());
    assert_eq!(ours.dev(), std_m.dev());
    assert_eq!(ours.mode(), std_m.mode());
    assert_eq!(ours.nlink(), std_m.nlink());
    assert_eq!(ours.uid(), std_m.uid());
    assert_eq!(ours.gid(), std_m.gid());
    assert_eq!(ours.blocks(), std_m.blocks());
    assert_eq!(ours.blksize(), std_m.blksize());
    assert_eq!(ours.modified(), std_m.modified().unwrap());
    assert_eq!(ours.accessed(), std_m.accessed().unwrap());
    assert_eq!(ours.permissions(), std_m.permissions());
    let l = fs::symlink_metadata(s.path("link")).await.unwrap();
    assert!(l.is_symlink());
    assert_eq!(
        l.ino(),
        std::fs::symlink_metadata(s.path("link")).unwrap().ino()
    );
    let d = fs::metadata(&s.0).await.unwrap();
    assert!(d.is_dir());
    let f = File::open(s.path("a")).await.unwrap();
    assert_eq!(f.metadata().await.unwrap().ino(), std_m.ino());
    // ext4 and most local filesystems report the O_DIRECT alignment on 6.1+ kernels.
    if let Some((mem, off)) = f.metadata().await.unwrap().dio_alignment() {
        assert!(mem.is_power_of_two() && off.is_power_of_two());
    }
}

/// `cached_metadata` of an open file is `metadata`'s answer, taken on the worker: nothing goes to
/// the ring or the pool, on either driver.
#[hoop::test]
async fn cached_metadata_is_metadata_without_a_hop() {
    let s = Scratch::new("cached-meta");
    std::fs::write(s.path("a"), b"hello").unwrap();
    let f = File::open(s.path("a")).await.unwrap();
    let full = f.metadata().await.unwrap();
    let before = hoop::metrics().unwrap();
    let cached = f.cached_metadata().await.unwrap();
    let after = hoop::metrics().unwrap();
    assert_eq!(
        after.ops_submitted, before.ops_submitted,
        "went to the ring"
    );
    assert_eq!(after.ops_blocking, before.ops_blocking, "went to the pool");
    assert_eq!(after.ops_completed, before.ops_completed + 1);
    assert_eq!(
        (cached.len(), cached.ino(), cached.modified(), cached.mode()),
        (full.len(), full.ino(), full.modified(), full.mode())
    );
    // Attributes changed through another fd are seen.
    std::fs::write(s.path("a"), b"hello, world").unwrap();
    assert_eq!(f.cached_metadata().await.unwrap().len(), 12);
}

/// An open whose path is in the dentry cache is made on the worker on epoll (`RESOLVE_CACHED`),
/// with no blocking-pool hop; a create still goes to the pool; on io_uring the ring makes that
/// attempt itself, so the open is an SQE.
#[hoop::test]
async fn cached_opens_skip_the_pool_on_epoll() {
    if std::env::var_os("HOOP_NO_OPENAT2").is_some_and(|v| v != "0") {
        hoop::diagnostics::record_skip("opens take the openat path walk, not openat2");
        return;
    }
    let s = Scratch::new("cached-open");
    std::fs::write(s.path("a"), b"cached").unwrap();
    std::fs::read(s.path("a")).unwrap(); // its dentry is cached now
    let epoll = hoop::runtime_info().unwrap().driver == hoop::DriverKind::Epoll;
    let before = hoop::metrics().unwrap();
    let f = File::open(s.path("a")).await.unwrap();
    let after = hoop::metrics().unwrap();
    let (n, buf) = f.read_at(Vec::with_capacity(16), 0).await;
    assert_eq!(&buf[..n.unwrap()], b"cached");
    if epoll {
        assert_eq!(after.ops_inline, before.ops_inline + 1, "not inline");
        assert_eq!(after.ops_blocking, before.ops_blocking, "went to the pool");
    } else {
        assert_eq!(after.ops_inline, before.ops_inline);
        assert_eq!(after.ops_submitted, before.ops_submitted + 1);
    }
    // Opened as asked: not left O_NONBLOCK by the attempt.
    use std::os::fd::AsRawFd;
    // SAFETY: F_GETFL on an fd `f` keeps open.
    let flags = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) };
    assert_eq!(flags & libc::O_NONBLOCK, 0);
    // A FIFO opens as asked, on both drivers: a read open waits for a writer, a write open
    // for a reader (the inline or ring attempt, non-blocking, must not answer for them), and
    // neither blocks the worker.
    common::mkfifo(&s.path("fifo"), 0o644);
    let fifo = s.path("fifo");
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = std::thread::spawn({
        let (fifo, writing) = (fifo.clone(), writing.clone());
        move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            writing.store(true, std::sync::atomic::Ordering::SeqCst);
            std::fs::OpenOptions::new().write(true).open(fifo).unwrap()
        }
    });
    let r = File::open(&fifo).await.unwrap();
    assert!(
        writing.load(std::sync::atomic::Ordering::SeqCst),
        "the read open did not wait for a writer"
    );
    // SAFETY: F_GETFL on an fd `r` keeps open.
    assert_eq!(
        unsafe { libc::fcntl(r.as_raw_fd(), libc::F_GETFL) } & libc::O_NONBLOCK,
        0
    );
    drop(writer.join().unwrap());
    drop(r);
    let reader = std::thread::spawn({
        let fifo = fifo.clone();
        move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            std::fs::File::open(fifo).unwrap()
        }
    });
    let w = OpenOptions::new().write(true).open(&fifo).await.unwrap();
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::fcntl(w.as_raw_fd(), libc::F_GETFL) } & libc::O_NONBLOCK,
        0
    );
    drop(reader.join().unwrap());
    drop(w);
    // Missing files fail the same way from the cache.
    let err = File::open(s.path("missing")).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    // A create never takes the inline path.
    let before = hoop::metrics().unwrap();
    fs::write(s.path("b"), b"new").await.unwrap();
    if epoll {
        assert!(hoop::metrics().unwrap().ops_blocking > before.ops_blocking);
    }
}

/// Page-cache reads at queue depth 32 stay on the worker (one `preadv2(RWF_NOWAIT)` each) even
/// after a read misses the cache: one miss (an uncached block, read through the ring or the
/// pool) must not send every later read through the ring. On both drivers.
#[hoop::test]
async fn a_cache_miss_does_not_end_inline_reads() {
    use std::os::unix::fs::FileExt;
    let s = Scratch::new("hot-cache");
    let blocks = 1024u64;
    let data: Vec<u8> = (0..blocks * 4096).map(|i| (i % 251) as u8).collect();
    std::fs::write(s.path("f"), &data).unwrap();
    let std_file = std::fs::File::open(s.path("f")).unwrap();
    std_file.sync_all().unwrap();
    // Out of the cache (large folios are dropped whole: the whole file), then the first half
    // back in: a read of the second half misses.
    use std::os::fd::AsRawFd;
    // SAFETY: fadvise on an open fd, no memory passed.
    let r = unsafe { libc::posix_fadvise(std_file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0);
    let mut half = vec![0u8; data.len() / 2];
    std_file.read_exact_at(&mut half, 0).unwrap();
    let file = std::rc::Rc::new(File::open(s.path("f")).await.unwrap());
    let before = hoop::metrics().unwrap().ops_inline;
    let per_task = 64u64;
    let tasks: Vec<_> = (0..32u64)
        .map(|t| {
            let file = file.clone();
            hoop::spawn(async move {
                let mut buf = Vec::with_capacity(4096);
                for i in 0..per_task {
                    // Task 0 reads an uncached block first; the rest stride over the cached half.
                    let block = if t == 0 && i == 0 {
                        blocks - 1
                    } else {
                        (t * 131 + i * 37) % (blocks / 2)
                    };
                    buf.clear();
                    let (n, b) = file.read_at(buf, block * 4096).await;
                    assert_eq!(n.unwrap(), 4096);
                    assert_eq!(b[0], ((block * 4096) % 251) as u8);
                    buf = b;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let inline = hoop::metrics().unwrap().ops_inline - before;
    let reads = 32 * per_task;
    assert!(
        inline * 10 >= reads * 9,
        "{inline} of {reads} reads inline: the miss sent the rest through the ring"
    );
}

#[hoop::test]
async fn path_functions() {
    let s = Scratch::new("paths");
    fs::create_dir_all(s.path("a/b/c")).await.unwrap();
    fs::create_dir_all(s.path("a/b/c")).await.unwrap(); // idempotent
    assert!(std::fs::metadata(s.path("a/b/c")).unwrap().is_dir());
    fs::write(s.path("a/b/c/f.txt"), "text").await.unwrap();
    assert_eq!(
        fs::read_to_string(s.path("a/b/c/f.txt")).await.unwrap(),
        "text"
    );
    fs::rename(s.path("a/b/c/f.txt"), s.path("a/g.txt"))
        .await
        .unwrap();
    assert!(!fs::try_exists(s.path("a/b/c/f.txt")).await.unwrap());
    assert!(fs::try_exists(s.path("a/g.txt")).await.unwrap());
    fs::hard_link(s.path("a/g.txt"), s.path("a/h.txt"))
        .await
        .unwrap();
    assert_eq!(fs::metadata(s.path("a/h.txt")).await.unwrap().nlink(), 2);
    fs::symlink("g.txt", s.path("a/s")).await.unwrap();
    assert_eq!(
        fs::read_link(s.path("a/s")).await.unwrap(),
        Path::new("g.txt")
    );
    assert_eq!(fs::read(s.path("a/s")).await.unwrap(), b"text");
    let copied = fs::copy(s.path("a/g.txt"), s.path("copy.txt"))
        .await
        .unwrap();
    assert_eq!(copied, 4);
    fs::set_permissions(s.path("copy.txt"), std::fs::Permissions::from_mode(0o640))
        .await
        .unwrap();
    assert_eq!(
        std::fs::metadata(s.path("copy.txt")).unwrap().mode() & 0o777,
        0o640
    );
    let mut names = Vec::new();
    let mut rd = fs::read_dir(s.path("a")).await.unwrap();
    while let Some(e) = rd.next().await {
        let e = e.unwrap();
        names.push((
            e.file_name().to_string_lossy().into_owned(),
            e.file_type().await.unwrap(),
        ));
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        names,
        vec![
            ("b".into(), fs::FileType::Dir),
            ("g.txt".into(), fs::FileType::File),
            ("h.txt".into(), fs::FileType::File),
            ("s".into(), fs::FileType::Symlink),
        ]
    );
    fs::remove_file(s.path("a/h.txt")).await.unwrap();
    assert_eq!(
        fs::remove_dir(s.path("a")).await.unwrap_err().kind(),
        ErrorKind::DirectoryNotEmpty
    );
    fs::remove_dir_all(s.path("a")).await.unwrap();
    assert!(!s.path("a").exists());
    fs::create_dir(s.path("e")).await.unwrap();
    fs::remove_dir(s.path("e")).await.unwrap();
}

#[hoop::test]
async fn read_dir_of_many_entries() {
    let s = Scratch::new("many");
    for i in 0..2000 {
        std::fs::write(s.path(&format!("file-with-a-long-name-{i:05}")), b"").unwrap();
    }
    let mut rd = fs::read_dir(&s.0).await.unwrap();
    let mut n = 0;
    while let Some(e) = rd.next_entry().await.unwrap() {
        assert!(e.file_name().to_string_lossy().starts_with("file-with"));
        if n % 500 == 0 {
            assert!(e.metadata().await.unwrap().is_file());
        }
        n += 1;
    }
    assert_eq!(n, 2000);
}

#[hoop::test]
async fn errors_name_the_operation_and_path() {
    let s = Scratch::new("errors");
    let missing = s.path("missing");
    let err = File::open(&missing).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(fs::os_error(&err), Some(libc::ENOENT));
    assert!(
        err.to_string()
            .starts_with(&format!("open {}: ", missing.display())),
        "{err}"
    );
    let err = fs::remove_dir(&missing).await.unwrap_err();
    assert!(err.to_string().starts_with("rmdir "), "{err}");
    let err = fs::write(s.path("a\0b"), b"x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    std::fs::write(s.path("ro"), b"x").unwrap();
    let f = File::open(s.path("ro")).await.unwrap();
    let (res, buf) = f.write_at(b"y".to_vec(), 0).await;
    assert_eq!(fs::os_error(&res.unwrap_err()), Some(libc::EBADF));
    assert_eq!(buf, b"y", "the buffer comes back on error");
    let err = OpenOptions::new().open(s.path("ro")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "no access mode");
}

#[hoop::test]
async fn xattrs_by_path_and_fd() {
    let s = Scratch::new("xattr");
    std::fs::write(s.path("f"), b"").unwrap();
    let f = File::open(s.path("f")).await.unwrap();
    f.set_xattr("user.small", "v1").await.unwrap();
    let big = vec![7u8; 4000]; // larger than the first guess: exercises ERANGE + resize
    fs::set_xattr(s.path("f"), "user.big", big.clone())
        .await
        .unwrap();
    assert_eq!(f.get_xattr("user.small").await.unwrap(), b"v1");
    assert_eq!(fs::get_xattr(s.path("f"), "user.big").await.unwrap(), big);
    let mut names = fs::list_xattr(s.path("f")).await.unwrap();
    names.sort();
    assert_eq!(names, vec!["user.big", "user.small"]);
    f.remove_xattr("user.small").await.unwrap();
    assert_eq!(f.list_xattr().await.unwrap(), vec!["user.big"]);
    let err = fs::get_xattr(s.path("f"), "user.gone").await.unwrap_err();
    assert_eq!(fs::os_error(&err), Some(libc::ENODATA));
    let dir = Dir::open(&s.0).await.unwrap();
    dir.set_xattr("f", "user.d", "x").await.unwrap();
    assert_eq!(dir.get_xattr("f", "user.d").await.unwrap(), b"x");
    assert_eq!(dir.list_xattr("f").await.unwrap().len(), 2);
    dir.remove_xattr("f", "user.d").await.unwrap();
}

#[hoop::test]
async fn fallocate_and_punch_hole() {
    let s = Scratch::new("falloc");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .open(s.path("f"))
        .await
        .unwrap();
    f.fallocate(0, 1 << 20, 0).await.unwrap();
    assert_eq!(f.metadata().await.unwrap().len(), 1 << 20);
    f.write_all_at(vec![0xAAu8; 64 * 1024], 0).await.0.unwrap();
    f.fallocate(4096, 8192, libc::FALLOC_FL_KEEP_SIZE)
        .await
        .unwrap();
    f.fallocate(
        0,
        16 * 1024,
        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
    )
    .await
    .unwrap();
    let (r, buf) = f.read_exact_at(vec![1u8; 32 * 1024], 0).await;
    r.unwrap();
    assert!(
        buf[..16 * 1024].iter().all(|&b| b == 0),
        "punched range reads as zeros"
    );
    assert!(buf[16 * 1024..].iter().all(|&b| b == 0xAA));
    assert_eq!(f.metadata().await.unwrap().len(), 1 << 20, "size kept");
}

/// `write_all_at` on a full disk reports `StorageFull`, never a silent short write.
#[hoop::test]
async fn enospc_on_a_small_tmpfs() {
    let s = Scratch::new("enospc");
    let mnt = s.path("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "the test mounts a 1 MiB tmpfs (needs root)"
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let f = File::create(mnt.join("big")).await.unwrap();
    let (res, buf) = f.write_all_at(vec![1u8; 2 << 20], 0).await;
    let err = res.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StorageFull, "{err}");
    assert_eq!(buf.len(), 2 << 20);
    drop(f);
    std::fs::remove_file(mnt.join("big")).unwrap();
}

#[hoop::test]
async fn dir_operations_stay_inside() {
    let s = Scratch::new("dir");
    let dir = Dir::open(&s.0).await.unwrap();
    dir.create_dir("d").await.unwrap();
    let f = dir
        .open_file("d/f", OpenOptions::new().write(true).create(true))
        .await
        .unwrap();
    f.write_all_at(b"data".to_vec(), 0).await.0.unwrap();
    assert_eq!(std::fs::read(s.path("d/f")).unwrap(), b"data");
    assert!(dir.metadata("d/f").await.unwrap().is_file());
    assert!(
        dir.metadata("d/../d/f").await.unwrap().is_file(),
        ".. that stays inside is fine"
    );
    dir.symlink("f", "d/l").await.unwrap();
    assert!(dir.symlink_metadata("d/l").await.unwrap().is_symlink());
    assert!(dir.metadata("d/l").await.unwrap().is_file());
    assert_eq!(dir.read_link("d/l").await.unwrap(), Path::new("f"));
    let sub = dir.open_dir("d").await.unwrap();
    dir.rename("d/f", &sub, "g").await.unwrap();
    assert!(s.path("d/g").exists());
    dir.hard_link("d/g", &dir, "h").await.unwrap();
    assert_eq!(dir.metadata("h").await.unwrap().nlink(), 2);
    let mut names: Vec<_> = Vec::new();
    let mut rd = sub.read_dir().await.unwrap();
    while let Some(e) = rd.next_entry().await.unwrap() {
        names.push(e.file_name().to_owned());
    }
    names.sort();
    assert_eq!(names, vec!["g", "l"]);
    dir.remove_file("h").await.unwrap();
    sub.remove_file("g").await.unwrap();
    sub.remove_file("l").await.unwrap();
    dir.remove_dir("d").await.unwrap();
    assert!(!s.path("d").exists());
    for bad in ["", ".", "..", "d/.."] {
        let err = dir.remove_file(bad).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}: {err}");
    }
}

#[hoop::test]
async fn dir_refuses_escapes() {
    let s = Scratch::new("escape");
    std::fs::create_dir(s.path("root")).unwrap();
    std::fs::write(s.path("secret"), b"outside").unwrap();
    std::os::unix::fs::symlink("../secret", s.path("root/up")).unwrap();
    std::os::unix::fs::symlink(s.path("secret"), s.path("root/abs")).unwrap();
    std::os::unix::fs::symlink("/proc/self/root/etc/passwd", s.path("root/magic")).unwrap();
    std::fs::write(s.path("root/inside"), b"in").unwrap();
    std::os::unix::fs::symlink("inside", s.path("root/ok")).unwrap();
    let dir = Dir::open(s.path("root")).await.unwrap();
    let read = OpenOptions::new().read(true).clone();
    for escape in [
        "../secret",
        "up",
        "abs",
        "magic",
        "/etc/passwd",
        "sub/../../secret",
    ] {
        let err = dir.open_file(escape, &read).await.unwrap_err();
        assert!(
            matches!(
                fs::os_error(&err),
                Some(libc::EXDEV | libc::ELOOP | libc::ENOENT)
            ),
            "{escape}: {err}"
        );
        assert!(dir.metadata(escape).await.is_err(), "{escape}");
    }
    let err = dir.open_file("../secret", &read).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("outside the directory"), "{err}");
    // Creating or removing through an escaping parent is refused too.
    assert!(dir.create_dir("up/x").await.is_err());
    assert!(dir.remove_file("../secret").await.is_err());
    assert!(s.path("secret").exists());
    // A symlink that stays inside works, unless symlinks are refused altogether.
    assert!(dir.open_file("ok", &read).await.is_ok());
    let strict = dir.clone().with_resolve(Resolve {
        no_symlinks: true,
        ..Resolve::default()
    });
    assert!(strict.open_file("ok", &read).await.is_err());
    // In-root mode: `..` at the top and absolute symlinks stay inside.
    let jail = dir.clone().with_resolve(Resolve {
        in_root: true,
        ..Resolve::default()
    });
    let f = jail.open_file("../inside", &read).await.unwrap();
    assert_eq!(f.read_at(Vec::with_capacity(8), 0).await.1, b"in");
}

/// Another thread keeps swapping a directory for a symlink to the outside while tasks open a
/// file through `Dir`: the kernel's resolution is atomic, so the outside file is never opened.
#[hoop::test]
async fn dir_survives_a_racing_symlink_swap() {
    let s = Scratch::new("race");
    std::fs::create_dir_all(s.path("root/d")).unwrap();
    std::fs::write(s.path("root/d/target"), b"inside").unwrap();
    std::fs::create_dir(s.path("outside")).unwrap();
    std::fs::write(s.path("outside/target"), b"OUTSIDE").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (root, outside, stop2) = (s.path("root"), s.path("outside"), stop.clone());
    let swapper = std::thread::spawn(move || {
        let (d, real, link) = (root.join("d"), root.join("real"), root.join("link"));
        let _ = std::os::unix::fs::symlink(&outside, &link);
        while !stop2.load(Ordering::Relaxed) {
            let _ = std::fs::rename(&d, &real);
            let _ = std::fs::rename(&link, &d); // d -> outside
            let _ = std::fs::rename(&d, &link);
            let _ = std::fs::rename(&real, &d); // d is the real directory again
        }
    });
    let dir = Dir::open(s.path("root")).await.unwrap();
    let read = OpenOptions::new().read(true).clone();
    let (mut inside, mut refused) = (0, 0);
    // 3000 opens, and more until one found the real directory (the swapper's window for that is
    // short, and a loaded machine may schedule it badly), for at most 20 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while inside + refused < 3000 || (inside == 0 && std::time::Instant::now() < deadline) {
        if inside == 0 && refused % 1000 == 999 {
            hoop::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        match dir.open_file("d/target", &read).await {
            Ok(f) => {
                let (r, buf) = f.read_at(Vec::with_capacity(16), 0).await;
                r.unwrap();
                assert_eq!(buf, b"inside", "opened a file outside the directory");
                inside += 1;
            }
            Err(_) => refused += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(
        inside > 0,
        "never opened the real directory's file ({refused} refused)"
    );
}

/// Personalities: a 0600 file created as one user can't be opened as another, but can be as its
/// owner — on io_uring through registered personalities, on epoll through the pool thread's
/// filesystem credentials.
#[hoop::test]
async fn credentials_impersonate_users() {
    use hoop::Credentials;
    let s = Scratch::new("creds");
    std::fs::set_permissions(&s.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let alice = Credentials::new(1000, 1000, vec![]);
    let bob = Credentials::new(1001, 1001, vec![]);
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .credentials(alice.clone())
        .open(s.path("alice.txt"))
        .await
        .unwrap();
    f.write_all_at(b"private".to_vec(), 0).await.0.unwrap();
    let meta = std::fs::metadata(s.path("alice.txt")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000), "created as alice");
    assert_eq!(meta.mode() & 0o777, 0o600);
    let err = OpenOptions::new()
        .read(true)
        .credentials(bob.clone())
        .open(s.path("alice.txt"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    let again = OpenOptions::new()
        .read(true)
        .credentials(alice.clone())
        .open(s.path("alice.txt"))
        .await
        .unwrap();
    assert_eq!(again.read_at(Vec::with_capacity(16), 0).await.1, b"private");
    // Through a Dir: every operation as bob, who may not write into a 0755 root-owned directory.
    std::fs::create_dir(s.path("rootonly")).unwrap();
    std::fs::set_permissions(s.path("rootonly"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_bob = Dir::open(&s.0).await.unwrap().with_credentials(bob.clone());
    let err = as_bob.create_dir("rootonly/x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    as_bob.create_dir("bobs").await.unwrap();
    assert_eq!(std::fs::metadata(s.path("bobs")).unwrap().uid(), 1001);
    // Supplementary groups count: a 0070 directory of group 2000 is open to a member.
    std::fs::create_dir(s.path("team")).unwrap();
    std::os::unix::fs::chown(s.path("team"), Some(0), Some(2000)).unwrap();
    std::fs::set_permissions(s.path("team"), std::fs::Permissions::from_mode(0o070)).unwrap();
    let member = Dir::open(&s.0)
        .await
        .unwrap()
        .with_credentials(Credentials::new(1002, 1002, vec![2000]));
    member.create_dir("team/ok").await.unwrap();
    assert!(as_bob.create_dir("team/no").await.is_err());
    // The worker's own identity is untouched afterwards.
    let mine = File::create(s.path("mine")).await.unwrap();
    drop(mine);
    assert_eq!(std::fs::metadata(s.path("mine")).unwrap().uid(), 0);
}

/// Runs `swap` in a loop on another thread until `body` returns.
async fn while_swapping<F: Future>(swap: impl Fn() + Send + 'static, body: F) -> F::Output {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let swapper = std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            swap();
        }
    });
    let out = body.await;
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    out
}

use std::future::Future;

/// Review-2 H1 (CVE-2022-21658): a subdirectory swapped for a symlink to `outside` while
/// `remove_dir_all` walks the tree must not make it remove anything outside.
#[hoop::test]
async fn remove_dir_all_survives_a_racing_symlink_swap() {
    let s = Scratch::new("rmrace");
    let (victim, outside) = (s.path("victim"), s.path("outside"));
    std::fs::create_dir(&outside).unwrap();
    let names: Vec<String> = (0..40).map(|i| format!("f{i}")).collect();
    for n in &names {
        std::fs::write(outside.join(n), b"keep").unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(6);
    let mut rounds = 0;
    while rounds < 20 || std::time::Instant::now() < deadline && rounds < 200 {
        rounds += 1;
        std::fs::create_dir_all(victim.join("sub")).unwrap();
        for n in &names {
            std::fs::write(victim.join("sub").join(n), b"x").unwrap();
        }
        let (v, o) = (victim.clone(), outside.clone());
        let swap = move || {
            let (sub, real, link) = (v.join("sub"), v.join("real"), v.join("link"));
            let _ = std::os::unix::fs::symlink(&o, &link);
            let _ = std::fs::rename(&sub, &real);
            let _ = std::fs::rename(&link, &sub); // sub -> outside
            let _ = std::fs::rename(&sub, &link);
            let _ = std::fs::rename(&real, &sub);
        };
        // Errors are fine (the tree changes under the walk); deleting outside is not.
        let _ = while_swapping(swap, fs::remove_dir_all(&victim)).await;
        let _ = std::fs::remove_dir_all(&victim);
        for n in &names {
            assert!(
                outside.join(n).exists(),
                "round {rounds}: remove_dir_all deleted {n} outside the tree"
            );
        }
    }
}

/// `create_dir_all` enters each directory it creates by fd, refusing a symlink swapped in for
/// it: nothing is created outside the tree.
#[hoop::test]
async fn create_dir_all_survives_a_racing_symlink_swap() {
    let s = Scratch::new("mkrace");
    let (victim, outside) = (s.path("victim"), s.path("outside"));
    std::fs::create_dir(&outside).unwrap();
    std::fs::create_dir(&victim).unwrap();
    for round in 0..300 {
        let (v, o) = (victim.clone(), outside.clone());
        let swap = move || {
            let a = v.join("a");
            if std::fs::symlink_metadata(&a).is_ok_and(|m| m.is_dir())
                && std::fs::rename(&a, v.join(format!("moved{round}"))).is_ok()
            {
                let _ = std::os::unix::fs::symlink(&o, &a);
            }
        };
        let _ = while_swapping(swap, fs::create_dir_all(victim.join("a/b/c/d"))).await;
        let created: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
        assert!(
            created.is_empty(),
            "round {round}: created {created:?} outside the tree"
        );
        std::fs::remove_dir_all(&victim).unwrap();
        std::fs::create_dir(&victim).unwrap();
    }
    // Without a race it builds the whole tree, and an existing one is fine.
    fs::create_dir_all(victim.join("x/y/z")).await.unwrap();
    fs::create_dir_all(victim.join("x/y/z")).await.unwrap();
    assert!(victim.join("x/y/z").is_dir());
}

/// Review-2 M4: `copy` sets the permission bits on the file it opened, not on whatever the
/// destination path names afterwards.
#[hoop::test]
async fn copy_sets_permissions_on_the_file_it_wrote() {
    let s = Scratch::new("cprace");
    let (src, out, victim) = (s.path("src"), s.path("out"), s.path("victim"));
    std::fs::write(&src, b"data").unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::create_dir(&victim).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (o, v, link) = (out.clone(), victim.clone(), s.path("link"));
    let swap = move || {
        let _ = std::os::unix::fs::symlink(&v, &link);
        let _ = std::fs::rename(&link, &o); // out -> victim (a directory: opening it fails)
        let _ = std::fs::remove_file(&o);
    };
    let copies = while_swapping(swap, async {
        let mut ok = 0;
        for _ in 0..2000 {
            ok += fs::copy(&src, &out).await.is_ok() as usize;
        }
        ok
    })
    .await;
    let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        mode, 0o700,
        "copy chmodded the symlink's target ({copies} copies)"
    );
}

/// Review-2 L9: offsets past `i64::MAX` are refused, not taken as the fd's position (`u64::MAX`
/// is the runtime's "current position" sentinel).
#[hoop::test]
async fn offsets_past_i64_max_are_refused() {
    let s = Scratch::new("offsets");
    let path = s.path("f");
    std::fs::write(&path, b"0123456789").unwrap();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .await
        .unwrap();
    for pos in [u64::MAX, i64::MAX as u64 + 1] {
        let (res, _) = f.read_at(Vec::with_capacity(4), pos).await;
        assert_eq!(
            res.unwrap_err().kind(),
            ErrorKind::InvalidInput,
            "read at {pos}"
        );
        let (res, _) = f.write_at(b"XX".to_vec(), pos).await;
        assert_eq!(
            res.unwrap_err().kind(),
            ErrorKind::InvalidInput,
            "write at {pos}"
        );
        let (res, _) = f.write_all_at(b"XX".to_vec(), pos).await;
        assert_eq!(
            res.unwrap_err().kind(),
            ErrorKind::InvalidInput,
            "write_all at {pos}"
        );
        let (res, _) = f.readv_at(vec![Vec::with_capacity(4)], pos).await;
        assert_eq!(
            res.unwrap_err().kind(),
            ErrorKind::InvalidInput,
            "readv at {pos}"
        );
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"0123456789",
        "nothing was written"
    );
}

/// Review-2 (low): `Dir` attribute calls reach their file without opening it for reading: an
/// owner who may write but not read a file (mode 0200) sets and removes its attributes, as
/// `setxattr(2)` by path allows (the target is opened `O_PATH` and named by its
/// `/proc/thread-self/fd` link).
#[hoop::test]
async fn dir_xattrs_need_no_read_permission() {
    use hoop::Credentials;
    // SAFETY: a plain query.
    if unsafe { libc::geteuid() } != 0 {
        hoop::__private::record_skip("needs root to impersonate the owner");
        return;
    }
    let s = Scratch::new("xattr-noread");
    std::fs::set_permissions(&s.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(s.path("w"), b"").unwrap();
    std::os::unix::fs::chown(s.path("w"), Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(s.path("w"), std::fs::Permissions::from_mode(0o200)).unwrap();
    let owner = Dir::open(&s.0)
        .await
        .unwrap()
        .with_credentials(Credentials::new(1000, 1000, vec![]));
    match owner.set_xattr("w", "user.note", b"x".to_vec()).await {
        Err(e) if fs::os_error(&e) == Some(libc::EOPNOTSUPP) => {
            hoop::__private::record_skip("the temp filesystem has no user.* attributes");
            return;
        }
        res => res.unwrap(),
    }
    owner.remove_xattr("w", "user.note").await.unwrap();
}
