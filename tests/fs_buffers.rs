//! Registered buffers (`read_fixed_at`/`write_fixed_at`) and O_DIRECT with aligned buffers, on
//! both drivers.

use hoop::buf::{AlignedBuf, FixedBufPool};
use hoop::fs::{File, OpenOptions};
use hoop::DriverKind;
use std::path::PathBuf;

#[path = "common/mod.rs"]
mod common;

fn scratch(name: &str) -> PathBuf {
    let driver = hoop::runtime_info().map_or("none".into(), |i| i.driver.to_string());
    let dir =
        std::env::temp_dir().join(format!("hoop-bufs-{name}-{}-{driver}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn on_uring() -> bool {
    hoop::runtime_info().unwrap().driver == DriverKind::IoUring
}

/// True where pools get registered: io_uring with a sparse buffer table (5.19); elsewhere they
/// do plain I/O, which these tests check just the same.
fn registers() -> bool {
    on_uring() && common::kernel_at_least((5, 19))
}

#[hoop::test]
async fn fixed_buffers_round_trip() {
    let dir = scratch("fixed");
    let path = dir.join("f");
    let pool = FixedBufPool::new(4, 10_000).unwrap();
    assert_eq!(pool.is_registered(), registers(), "{pool:?}");
    assert_eq!(pool.buffer_size(), 12_288, "rounded up to pages");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .open(&path)
        .await
        .unwrap();

    let mut buf = pool.try_get().unwrap();
    let data: Vec<u8> = (0..pool.buffer_size()).map(|i| (i * 7) as u8).collect();
    buf.extend_from_slice(&data);
    assert_eq!(buf.fixed_index().is_some(), registers());
    let (n, buf) = file.write_fixed_at(buf, 100).await;
    assert_eq!(n.unwrap(), data.len());
    drop(buf);
    assert_eq!(&std::fs::read(&path).unwrap()[100..], &data[..]);

    let (n, buf) = file.read_fixed_at(pool.try_get().unwrap(), 100).await;
    assert_eq!(n.unwrap(), data.len());
    assert!(buf[..] == data[..]);
    // Past the end: a short read, then zero.
    let (n, buf) = file.read_fixed_at(buf, 100 + data.len() as u64 - 5).await;
    assert_eq!(n.unwrap(), 5);
    assert!(
        buf[..] == data[data.len() - 5..],
        "a read replaces the contents"
    );
    let (n, _) = file.read_fixed_at(buf, 1 << 20).await;
    assert_eq!(n.unwrap(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[hoop::test]
async fn many_pools_share_and_reuse_the_ring_table() {
    let dir = scratch("pools");
    let path = dir.join("f");
    std::fs::write(&path, b"abc").unwrap();
    let file = File::open(&path).await.unwrap();
    // Two live pools at once, then far more buffers over time than the table has slots.
    let a = FixedBufPool::new(8, 4096).unwrap();
    let b = FixedBufPool::new(8, 4096).unwrap();
    assert_eq!(a.is_registered(), registers());
    assert_eq!(b.is_registered(), registers());
    for _ in 0..100 {
        let p = FixedBufPool::new(64, 4096).unwrap();
        assert_eq!(p.is_registered(), registers());
        let (n, buf) = file.read_fixed_at(p.try_get().unwrap(), 0).await;
        assert_eq!(n.unwrap(), 3);
        assert_eq!(&buf[..], b"abc");
    }
    for pool in [&a, &b] {
        let (n, buf) = file.read_fixed_at(pool.try_get().unwrap(), 1).await;
        assert_eq!(n.unwrap(), 2);
        assert_eq!(&buf[..], b"bc");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[hoop::test]
async fn pool_get_waits_for_a_returned_buffer() {
    let pool = FixedBufPool::new(1, 4096).unwrap();
    let held = pool.get().await;
    assert!(pool.try_get().is_none());
    let p2 = pool.clone();
    let waiter = hoop::spawn(async move { p2.get().await.capacity() });
    // A second waiter that gives up must not strand the buffer.
    let p3 = pool.clone();
    let quitter = hoop::spawn(async move { p3.get().await.capacity() });
    hoop::yield_now().await;
    quitter.abort();
    hoop::yield_now().await;
    drop(held);
    assert_eq!(waiter.await.unwrap(), 4096);
    assert_eq!(pool.available(), 1);
}

#[hoop::test]
async fn pool_bad_input_is_an_error() {
    assert!(FixedBufPool::new(0, 4096).is_err());
    assert!(FixedBufPool::new(1 << 15, 4096).is_err());
    assert!(FixedBufPool::new(1, 0).is_err());
}

#[test]
fn pool_outside_a_runtime_is_an_error() {
    assert!(FixedBufPool::new(1, 4096).is_err());
}

#[hoop::test]
async fn o_direct_with_aligned_buffers() {
    let dir = scratch("direct");
    let path = dir.join("f");
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .await;
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            common::skip("the temp filesystem refuses O_DIRECT");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let meta = file.metadata().await.unwrap();
    let mut buf = file.direct_io_buf(8192).await.unwrap();
    if let Some((mem, off)) = meta.dio_alignment() {
        assert_eq!(buf.as_ptr() as usize % mem as usize, 0);
        assert_eq!(buf.capacity() % off as usize, 0);
    }
    let pattern: Vec<u8> = (0..buf.capacity()).map(|i| (i % 251) as u8).collect();
    buf.extend_from_slice(&pattern);
    let at = buf.align() as u64 * 3;
    let (r, _) = file.write_all_at(buf, at).await;
    r.unwrap();

    let back = AlignedBuf::new(pattern.len(), 4096).unwrap();
    let inline = hoop::metrics().unwrap().ops_inline;
    let (r, back) = file.read_exact_at(back, at).await;
    r.unwrap();
    assert_eq!(&back[..], &pattern[..]);
    // O_DIRECT reads never take the inline page-cache path (it would wait for the device).
    assert_eq!(hoop::metrics().unwrap().ops_inline, inline);

    // Registered pool buffers are page aligned, so they work with O_DIRECT too.
    let pool = FixedBufPool::new(1, 8192).unwrap();
    let (n, fixed) = file.read_fixed_at(pool.try_get().unwrap(), at).await;
    assert_eq!(n.unwrap(), 8192);
    assert_eq!(&fixed[..], &pattern[..8192]);

    // A misaligned buffer is refused by the kernel with a clear error, not silently copied.
    let mut odd = Vec::with_capacity(4097);
    odd.push(0u8);
    let (r, _) = file.read_at(odd.slice_tail(), at).await;
    assert_eq!(hoop::fs::os_error(&r.unwrap_err()), Some(libc::EINVAL));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Reads of an `O_DIRECT` file wait for the device, so io_uring gets each one at once (an
/// `io_uring_enter` per read) instead of with the tick's batch; buffered reads stay batched.
// io_uring only: on epoll file reads go to the blocking pool either way.
#[hoop::test(driver = "io_uring")]
async fn o_direct_reads_are_submitted_at_once() {
    let dir = scratch("direct-eager");
    let path = dir.join("f");
    std::fs::write(&path, vec![7u8; 16 * 4096]).unwrap();
    /// `io_uring_enter` calls made while 16 reads are first polled, all in one task poll (the
    /// tick's own enter comes after, so batched reads count 0).
    async fn enters_while_queueing_16_reads(file: &File) -> u64 {
        let reads = (0..16u64).map(|i| async move {
            let buf = AlignedBuf::new(4096, 4096).unwrap();
            let (r, buf) = file.read_exact_at(buf, i * 4096).await;
            r.unwrap();
            assert!(buf.iter().all(|&b| b == 7));
        });
        let mut all = std::pin::pin!(futures_util::future::join_all(reads));
        let before = hoop::metrics().unwrap().enters;
        let first = futures_util::poll!(all.as_mut());
        let enters = hoop::metrics().unwrap().enters - before;
        if first.is_pending() {
            all.await;
        }
        enters
    }
    let direct = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .await
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            common::skip("the temp filesystem refuses O_DIRECT");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let buffered = File::open(&path).await.unwrap();
    let (d, b) = (
        enters_while_queueing_16_reads(&direct).await,
        enters_while_queueing_16_reads(&buffered).await,
    );
    assert_eq!(d, 16, "O_DIRECT: one enter per read");
    assert_eq!(b, 0, "buffered: left for the tick's batch");
    std::fs::remove_dir_all(&dir).unwrap();
}

trait SliceTail: Sized {
    fn slice_tail(self) -> hoop::Slice<Self>;
}

impl SliceTail for Vec<u8> {
    /// A view starting one byte into the allocation: misaligned for O_DIRECT.
    fn slice_tail(self) -> hoop::Slice<Self> {
        use hoop::IoBuf;
        self.slice(1..4097)
    }
}

/// Without CAP_IPC_LOCK and with `RLIMIT_MEMLOCK` at zero the kernel refuses to pin registered
/// buffers (`ENOMEM`): the pool falls back to plain reads and writes, which still work.
#[test]
fn memlock_limit_falls_back_to_plain_io() {
    if common::io_uring_denied() {
        return; // registration needs a ring; epoll pools are never registered
    }
    common::run_child("child_with_no_memlock", &[("HOOP_CHILD", "memlock")]);
}

#[test]
fn child_with_no_memlock() {
    if std::env::var("HOOP_CHILD").as_deref() != Ok("memlock") {
        common::skip("child-process helper: runs under its parent test");
        return;
    }
    drop_ipc_lock();
    let rt = hoop::Runtime::builder()
        .driver(hoop::DriverChoice::IoUring)
        .build()
        .unwrap();
    rt.block_on(async {
        // The limit is read when buffers are pinned; the ring itself was created before.
        let zero = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a plain setrlimit with a valid struct.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &zero) }, 0);
        let pool = FixedBufPool::new(2, 64 * 1024).unwrap();
        assert!(!pool.is_registered(), "pinning must have been refused");
        let dir = scratch("memlock");
        std::fs::write(dir.join("f"), b"still works").unwrap();
        let file = File::open(dir.join("f")).await.unwrap();
        let buf = pool.try_get().unwrap();
        assert_eq!(buf.fixed_index(), None);
        let (n, buf) = file.read_fixed_at(buf, 0).await;
        assert_eq!(&buf[..n.unwrap()], b"still works");
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

/// Removes CAP_IPC_LOCK from this process's effective set (io_uring then charges pinned memory
/// to RLIMIT_MEMLOCK).
fn drop_ipc_lock() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_IPC_LOCK: u32 = 14;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget/capset with a v3 header and two data words, as the ABI requires.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()),
            0
        );
        data[0].effective &= !(1 << CAP_IPC_LOCK);
        data[0].permitted &= !(1 << CAP_IPC_LOCK);
        assert_eq!(
            libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()),
            0
        );
    }
}
