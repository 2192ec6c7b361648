//! Linked chains (`op::link`) on both drivers: members run in order, a failure cancels the rest
//! unless the link is hard, dropping a chain midway is safe; and `hoop::fs::read`, which opens,
//! reads and finds the end of a file in one linked submission into a reserved direct slot on
//! io_uring, gives the same bytes and errors as the plain path for every kind of file.

#[path = "common/mod.rs"]
mod common;

use hoop::fd::SharedFd;
use hoop::op::link::{link, link3, reserved_slot};
use hoop::op::nop::Nop;
use hoop::op::rw::{FdKind, Read, Write, CURRENT_POSITION};
use hoop::op::Op;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "hoop-link-{}-{:?}-{name}",
        std::process::id(),
        std::thread::current().id()
    ))
}

/// A new empty file at `path`, open for reading and writing.
fn scratch_fd(path: &std::path::Path) -> SharedFd {
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    SharedFd::new(OwnedFd::from(file))
}

/// Writes `bytes` at 0 and reads them back, linked; checks both results.
async fn write_then_read(fd: &SharedFd, bytes: &'static [u8]) {
    let write = Write::new(fd, bytes.to_vec(), 0, FdKind::File);
    let read = Read::new(fd, Vec::with_capacity(64), 0, FdKind::File);
    let ((w, _), (r, buf)) = link(write, read).await;
    assert_eq!(w.unwrap(), bytes.len());
    assert_eq!(r.unwrap(), bytes.len());
    assert_eq!(buf, bytes);
}

/// A pipe: (read end, write end), blocking, close-on-exec.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds are new and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn on_uring() -> bool {
    hoop::runtime_info().unwrap().driver == hoop::DriverKind::IoUring
}

/// A write, then a read of what it wrote, linked: the read sees the write's bytes.
#[hoop::test]
async fn members_run_in_order() {
    let path = temp("order");
    write_then_read(&scratch_fd(&path), b"linked bytes").await;
    std::fs::remove_file(path).unwrap();
}

/// A failed member cancels the members after it (`ECANCELED`), unless its link is hard.
#[hoop::test]
async fn a_failure_cancels_the_rest_unless_the_link_is_hard() {
    // Reading the write end of a pipe fails with EBADF.
    let (_r, w) = pipe();
    let bad = SharedFd::new(w);
    let failing = || {
        Read::new(
            &bad,
            Vec::with_capacity(8),
            CURRENT_POSITION,
            FdKind::Stream,
        )
    };

    let ((res, _), after, last) = link3(failing(), Nop, Nop).await;
    assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));
    assert_eq!(after.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert_eq!(last.unwrap_err().raw_os_error(), Some(libc::ECANCELED));

    let ((res, _), after, last) = link3(failing(), Nop, Nop).hard(0).await;
    assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));
    after.unwrap();
    last.unwrap();

    // A member cancelled by a broken link breaks the chain after it, even if its own link is
    // hard (the kernel's rule, kept by the one-by-one path too).
    let ((res, _), after, last) = link3(failing(), Nop, Nop).hard(1).await;
    assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));
    assert_eq!(after.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert_eq!(last.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
}

/// On a restricted ring, whose allowlist refuses linked SQEs, a chain runs one by one and gives
/// the same results.
#[test]
fn a_chain_on_a_restricted_ring_runs_one_by_one() {
    if common::io_uring_denied() {
        return;
    }
    let rt = hoop::Runtime::builder()
        .workers(1)
        .driver(hoop::DriverChoice::IoUring)
        .restrict_to(&[hoop::OpClass::Files])
        .build()
        .unwrap();
    let path = temp("restricted");
    rt.block_on(async {
        write_then_read(&scratch_fd(&path), b"restricted").await;
        assert_eq!(hoop::metrics().unwrap().chains, 0, "not one submission");
    });
    std::fs::remove_file(path).unwrap();
}

/// A chain dropped while its first member waits (a read of an empty pipe): the members are
/// cancelled, and the pipe, the buffers and the runtime are fine afterwards.
#[hoop::test]
async fn a_chain_dropped_midway_is_cancelled() {
    let (r, w) = pipe();
    // Non-blocking, as hoop's own pipes: the epoll driver reads it with a syscall.
    // SAFETY: fcntl on an fd this test owns.
    unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let r = SharedFd::new(r);
    let read = Read::new(&r, Vec::with_capacity(8), CURRENT_POSITION, FdKind::Stream);
    let mut chain = Box::pin(link(read, Nop));
    assert!(futures_util::poll!(chain.as_mut()).is_pending());
    drop(chain);
    drop(w);
    // The runtime still runs operations.
    Op::new(Nop).await.unwrap();
    hoop::time::sleep(std::time::Duration::from_millis(5)).await;
}

/// An open into a reserved slot and reads of the slot, linked: the reads use the file the open
/// put there. 200 such chains in a row: slots go back to the reserved range when dropped.
#[hoop::test]
async fn reads_of_a_slot_opened_in_the_same_chain() {
    if !on_uring() {
        assert!(reserved_slot().is_none(), "epoll has no direct descriptors");
        return;
    }
    if !common::kernel_at_least((6, 0)) {
        common::skip("no direct-descriptor table before 6.0");
        return;
    }
    let path = temp("slot");
    std::fs::write(&path, b"opened in the chain").unwrap();
    let chains = hoop::metrics().unwrap().chains;
    for _ in 0..200 {
        let slot = reserved_slot().expect("a reserved slot is free");
        let c = hoop::op::at::c_path(&path).unwrap();
        let open = hoop::op::open::OpenAt2::new(hoop::op::at::At::cwd(), c, libc::O_RDONLY, 0, 0)
            .into_slot(&slot);
        let read = Read::new(&slot, Vec::with_capacity(64), 0, FdKind::File);
        let (opened, (n, buf)) = link(open, read).await;
        opened.unwrap();
        assert_eq!(n.unwrap(), 19);
        assert_eq!(buf, b"opened in the chain");
    }
    assert_eq!(
        hoop::metrics().unwrap().chains - chains,
        200,
        "each in one submission"
    );

    // An open into a slot that is not a reserved one (a direct file's) is refused: it would
    // replace, and so close, the file there.
    let file = hoop::fs::OpenOptions::new()
        .read(true)
        .open_direct(&path)
        .await
        .unwrap();
    assert!(file.is_direct());
    let c = hoop::op::at::c_path(&path).unwrap();
    let open = hoop::op::open::OpenAt2::new(hoop::op::at::At::cwd(), c, libc::O_RDONLY, 0, 0)
        .into_slot(file.shared_fd());
    let e = Op::new(open).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
    let (res, buf) = file.read_exact_at(vec![0u8; 6], 0).await;
    res.unwrap();
    assert_eq!(buf, b"opened");
    std::fs::remove_file(path).unwrap();
}

/// `fs::read` agrees with `std::fs::read` on every kind of file: empty, small, exactly the first
/// read's size, longer than the first read and the probe, `/proc` files (which come a page at a
/// time, so a short read is not their end), a directory and a missing path (errors).
#[hoop::test]
async fn fs_read_matches_std_for_every_kind_of_file() {
    let chains = || hoop::metrics().unwrap().chains;
    let before = chains();
    for len in [
        0usize,
        1,
        4096,
        32 * 1024,
        32 * 1024 + 1,
        36 * 1024,
        300_000,
    ] {
        let path = temp(&format!("len{len}"));
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let got = hoop::fs::read(&path).await.unwrap();
        assert!(got == data, "length {len}: got {} bytes", got.len());
        std::fs::remove_file(path).unwrap();
    }
    // One linked chain per read where the worker has direct descriptors.
    let linked = on_uring() && common::kernel_at_least((6, 0));
    assert_eq!(chains() - before, if linked { 7 } else { 0 });
    for proc_file in [
        "/proc/self/status",
        "/proc/self/maps",
        "/proc/self/mountinfo",
    ] {
        let got = hoop::fs::read(proc_file).await.unwrap();
        let text = String::from_utf8(got).unwrap();
        // The files change between two reads; their shape does not.
        let want = std::fs::read_to_string(proc_file).unwrap();
        assert_eq!(
            text.lines().next(),
            want.lines().next(),
            "{proc_file}: first line"
        );
        assert!(text.ends_with('\n'), "{proc_file} cut short");
        assert!(
            text.len() * 2 > want.len(),
            "{proc_file}: {} of {}",
            text.len(),
            want.len()
        );
    }
    let dir = std::env::temp_dir();
    let e = hoop::fs::read(&dir).await.unwrap_err();
    assert_eq!(hoop::fs::os_error(&e), Some(libc::EISDIR), "{e}");
    let e = hoop::fs::read(temp("missing")).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
}

/// Many `fs::read`s at once, more than the 64 reserved slots: the ones that find no slot take
/// the plain path, and every one gets its file.
#[hoop::test]
async fn concurrent_fs_reads_beyond_the_reserved_slots() {
    let paths: Vec<PathBuf> = (0..100).map(|i| temp(&format!("many{i}"))).collect();
    for (i, p) in paths.iter().enumerate() {
        std::fs::write(p, format!("file {i}")).unwrap();
    }
    let reads = paths.iter().map(hoop::fs::read);
    let got = futures_util::future::join_all(reads).await;
    for (i, g) in got.into_iter().enumerate() {
        assert_eq!(g.unwrap(), format!("file {i}").into_bytes());
    }
    for p in paths {
        std::fs::remove_file(p).unwrap();
    }
}
