//! The op layer on both drivers: nop, pipes, readiness of foreign fds, multishot, cancellation
//! and buffer ownership, SQ pressure, batching.

#[path = "common/mod.rs"]
mod common;
use common::Tracked;

use futures_util::StreamExt;
use hoop::io::Interest;
use hoop::IoBuf;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

#[hoop::test]
async fn nop_round_trip() {
    for _ in 0..100 {
        hoop::io::nop().await.unwrap();
    }
}

#[hoop::test]
async fn pipe_read_write_and_eof() {
    let (r, w) = hoop::io::pipe().unwrap();
    let (res, buf) = w.write_all(b"hello world".to_vec()).await;
    res.unwrap();
    assert_eq!(buf, b"hello world");
    let (n, buf) = r.read(Vec::with_capacity(64)).await;
    assert_eq!(n.unwrap(), 11);
    assert_eq!(buf, b"hello world");
    drop(w);
    let (n, _) = r.read(Vec::with_capacity(64)).await;
    assert_eq!(n.unwrap(), 0, "EOF once the writer is gone");
}

#[hoop::test]
async fn read_into_a_slice_fills_only_its_range() {
    let (r, w) = hoop::io::pipe().unwrap();
    w.write_all(&b"abc"[..]).await.0.unwrap();
    let buf = b"xxxxxx".to_vec();
    let (n, slice) = r.read(buf.slice(2..5)).await;
    assert_eq!(n.unwrap(), 3);
    assert_eq!(slice.into_inner(), b"xxabcx");
}

#[hoop::test]
async fn errors_keep_the_os_error_and_return_the_buffer() {
    let (r, w) = hoop::io::pipe().unwrap();
    drop(r);
    let (res, buf) = w.write(b"data".to_vec()).await;
    assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EPIPE));
    assert_eq!(buf, b"data", "the buffer comes back on error");
}

#[hoop::test]
async fn wait_ready_on_a_foreign_fd() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let ready = hoop::io::wait_ready(b.as_fd(), Interest::WRITABLE)
        .await
        .unwrap();
    assert!(ready.is_writable());
    let waiter = hoop::spawn(async move {
        let r = hoop::io::wait_ready(a.as_fd(), Interest::READABLE)
            .await
            .unwrap();
        (r.is_readable(), a)
    });
    hoop::time::sleep(Duration::from_millis(10)).await;
    assert!(!waiter.is_finished());
    std::io::Write::write_all(&mut &b, b"x").unwrap();
    let (readable, _a) = waiter.await.unwrap();
    assert!(readable);
    drop(b);
}

#[hoop::test]
async fn wait_ready_reports_a_bad_fd() {
    // A number no process can have open: above the largest fd table the kernel allows
    // (`fs.nr_open` is capped at 2^31 - 64). A number just closed would not do: another test's
    // thread may be given it meanwhile, and the wait would then watch that fd, forever.
    let raw = libc::c_int::MAX;
    // SAFETY: no fd has this number, so nothing is borrowed from anyone; the kernel answers
    // EBADF.
    let closed = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
    let err = hoop::io::wait_ready(closed, Interest::READABLE)
        .await
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
}

#[hoop::test]
async fn multishot_readiness_stream() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let mut stream = hoop::io::ready_stream(a.as_fd(), Interest::READABLE);
    let mut buf = [0u8; 16];
    for round in 0..5u8 {
        std::io::Write::write_all(&mut &b, &[round]).unwrap();
        let ready = stream.next().await.unwrap().unwrap();
        assert!(ready.is_readable());
        let n = std::io::Read::read(&mut &a, &mut buf).unwrap();
        assert_eq!(&buf[..n], &[round]);
    }
    drop(stream); // cancels the multishot poll
    hoop::io::nop().await.unwrap();
}

/// Dropping an in-flight read keeps its buffer alive until the kernel is done with it; the
/// data that arrives later does not land in freed memory, and the buffer is freed afterwards.
#[hoop::test]
async fn dropped_read_keeps_its_buffer_until_completion() {
    let (r, w) = hoop::io::pipe().unwrap();
    let owner = Arc::new(());
    let buf = Tracked::new(64, &owner);
    {
        let mut read = Box::pin(r.read(buf));
        // Poll once: the read is submitted and waits for data.
        assert!(futures_util::FutureExt::poll_unpin(
            &mut read,
            &mut std::task::Context::from_waker(&futures_util::task::noop_waker())
        )
        .is_pending());
        assert_eq!(Arc::strong_count(&owner), 2);
    } // dropped in flight
    if hoop::runtime_info().unwrap().driver == hoop::DriverKind::IoUring {
        assert_eq!(Arc::strong_count(&owner), 2, "the driver holds the buffer");
    }
    hoop::io::nop().await.unwrap();
    let metrics = hoop::metrics().unwrap();
    match hoop::runtime_info().unwrap().driver {
        // The kernel may still write into it: the driver holds it until the cancel completes.
        hoop::DriverKind::IoUring => assert!(metrics.ops_cancelled >= 1),
        // Nothing is in the kernel on epoll: the buffer is freed at once.
        hoop::DriverKind::Epoll => assert_eq!(Arc::strong_count(&owner), 1),
    }
    // Once the cancellation completes, the buffer is released.
    for _ in 0..100 {
        if Arc::strong_count(&owner) == 1 {
            break;
        }
        hoop::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        Arc::strong_count(&owner),
        1,
        "buffer freed after its completion"
    );
    // The pipe still works: the cancelled read consumed nothing.
    w.write_all(b"after".to_vec()).await.0.unwrap();
    let (n, buf) = r.read(vec![0u8; 16]).await;
    assert_eq!(&buf[..n.unwrap()], b"after");
}

/// 10k concurrent operations through a ring of 2 SQ entries: full SQs are flushed, the small CQ
/// overflows into the kernel's backlog, and nothing is lost.
#[hoop::test(entries = 2)]
async fn tiny_ring_many_ops() {
    let handles: Vec<_> = (0..10_000)
        .map(|_| hoop::spawn(async { hoop::io::nop().await }))
        .collect();
    for h in handles {
        h.await.unwrap().unwrap();
    }
    // Reads that all wait at once, then complete together.
    let (r, w) = hoop::io::pipe().unwrap();
    let r = std::rc::Rc::new(r);
    let readers: Vec<_> = (0..200)
        .map(|_| {
            let r = r.clone();
            hoop::spawn(async move { r.read(vec![0u8; 1]).await.0.unwrap() })
        })
        .collect();
    hoop::yield_now().await;
    w.write_all(vec![7u8; 200]).await.0.unwrap();
    let mut total = 0;
    for h in readers {
        total += h.await.unwrap();
    }
    assert_eq!(total, 200);
    if hoop::runtime_info().unwrap().driver == hoop::DriverKind::IoUring {
        // 200 completions at once into a CQ of 4: the backlog was used (and nothing lost).
        assert!(
            hoop::metrics().unwrap().cq_overflows > 0,
            "the CQ never overflowed"
        );
    }
}

/// SQEs pushed by the tasks of one tick go to the kernel in one `io_uring_enter`.
#[hoop::test(driver = "io_uring")]
async fn submissions_are_batched_per_tick() {
    let before = hoop::metrics().unwrap().enters;
    let handles: Vec<_> = (0..50)
        .map(|_| hoop::spawn(async { hoop::io::nop().await.unwrap() }))
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let enters = hoop::metrics().unwrap().enters - before;
    assert!(enters < 10, "50 nops took {enters} io_uring_enter calls");
}

/// On io_uring, pipe I/O with nothing else queued is one non-blocking `read`/`write` on the
/// worker's thread (hoop's pipes are `O_NONBLOCK`), not a ring round trip: a write with room, and a read after a read that filled its
/// buffer (more data is likely waiting). A read of an empty pipe and a write into a full one
/// fall back to the ring, which waits, and every byte arrives in order. On epoll the same code
/// takes the readiness path and is not counted as inline.
#[hoop::test]
async fn pipe_io_completes_inline_when_it_can() {
    let uring = hoop::runtime_info().unwrap().driver == hoop::DriverKind::IoUring;
    let inline = || hoop::metrics().unwrap().ops_inline;
    let (r, w) = hoop::io::pipe().unwrap();
    let before = inline();
    let (res, _) = w.write(b"0123456789abcdef".to_vec()).await;
    assert_eq!(res.unwrap(), 16);
    // No hint yet for reads: the ring. It fills its 8 bytes, so the next read is tried inline.
    let (res, first) = r.read(Vec::with_capacity(8)).await;
    assert_eq!(res.unwrap(), 8);
    let (res, second) = r.read(Vec::with_capacity(8)).await;
    assert_eq!(res.unwrap(), 8);
    assert_eq!([&first[..], &second[..]].concat(), b"0123456789abcdef");
    // hoop's pipes are O_NONBLOCK on both drivers, so the inline attempt is a plain read/write
    // (no RWF_NOWAIT, which pipes only take since Linux 6.4).
    for fd in [r.as_fd(), w.as_fd()] {
        // SAFETY: F_GETFL on fds the pipe ends keep open.
        let flags = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::F_GETFL) };
        assert_ne!(flags & libc::O_NONBLOCK, 0, "pipe fds are non-blocking");
    }
    let expected = if uring { 2 } else { 0 };
    assert_eq!(inline() - before, expected, "the write and the second read");

    // The pipe is empty: the hinted read would block, goes to the ring and waits for the writer.
    let reader = hoop::spawn(async move {
        let (res, buf) = r.read(Vec::with_capacity(8)).await;
        res.unwrap();
        (r, buf)
    });
    hoop::yield_now().await;
    let (res, _) = w.write(b"late".to_vec()).await;
    res.unwrap();
    let (r, buf) = reader.await.unwrap();
    assert_eq!(buf, b"late");

    // 4 MiB through a 64 KiB pipe: writes hit a full pipe (EAGAIN inline, then the ring).
    let data: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    let expected = data.clone();
    let writer = hoop::spawn(async move {
        let (res, _) = w.write_all(data).await;
        res.unwrap();
    });
    let mut got = Vec::with_capacity(expected.len());
    while got.len() < expected.len() {
        let (res, buf) = r.read(Vec::with_capacity(100_000)).await;
        let n = res.unwrap();
        assert!(n > 0, "early EOF");
        got.extend_from_slice(&buf);
    }
    writer.await.unwrap();
    assert!(got == expected, "bytes lost or reordered");
}

/// Review-2 L4: multishot operations run only as `MultiOp` streams; a single-shot `Op` of one
/// is refused instead of dropping every completion but the last (accepted fds, buffer ids).
#[hoop::test]
async fn multishot_operations_are_refused_as_single_shot_futures() {
    use hoop::fd::SharedFd;
    use hoop::op::{accept::AcceptMulti, poll::PollAdd, Op};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fd = SharedFd::new(listener.into());
    let _client = std::net::TcpStream::connect(addr).unwrap();
    let err = Op::new(AcceptMulti::new(&fd)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&a);
    let err = Op::new(PollAdd::multishot(raw, Interest::WRITABLE))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    // Single-shot poll is fine.
    assert!(Op::new(PollAdd::new(raw, Interest::WRITABLE))
        .await
        .unwrap()
        .is_writable());
}

/// A NOP whose first `cancels` submissions complete with `-ECANCELED`, injected by the kernel
/// (`IORING_NOP_INJECT_RESULT`, 6.10+): what io-wq answers before 6.14 when it cannot create a
/// worker thread while a signal is pending.
struct CancelledNop {
    cancels: u32,
    submitted: std::rc::Rc<std::cell::Cell<u32>>,
    repeatable: bool,
}

// SAFETY: the SQE carries no pointers; `perform` does nothing.
unsafe impl hoop::op::OpCode for CancelledNop {
    type Output = std::io::Result<u32>;
    fn uring_entry(&mut self) -> Option<io_uring::squeue::Entry> {
        let n = self.submitted.get();
        self.submitted.set(n + 1);
        let entry = io_uring::opcode::Nop::new().build();
        if n >= self.cancels {
            return Some(entry);
        }
        // SAFETY: `Entry` is the 64-byte `io_uring_sqe` (repr(C)); the bytes are plain integers.
        let mut sqe: [u8; 64] = unsafe { std::mem::transmute(entry) };
        sqe[24..28].copy_from_slice(&(-libc::ECANCELED).to_ne_bytes()); // len: the result
        sqe[28..32].copy_from_slice(&1u32.to_ne_bytes()); // nop_flags: INJECT_RESULT
                                                          // SAFETY: as above, back to the entry it came from.
        Some(unsafe { std::mem::transmute::<[u8; 64], io_uring::squeue::Entry>(sqe) })
    }
    fn plan(&self) -> hoop::op::Plan {
        hoop::op::Plan::Now
    }
    fn traits(&self) -> hoop::op::OpTraits {
        hoop::op::OpTraits::NONE.repeatable(self.repeatable)
    }
    fn perform(&mut self) -> std::io::Result<u32> {
        Ok(0)
    }
    fn complete(self, result: std::io::Result<u32>) -> std::io::Result<u32> {
        result
    }
}

/// An operation the kernel cancels although nobody asked (io-wq before 6.14, under signals) is
/// submitted again if repeating it is harmless, a bounded number of times; past that, or for
/// an operation that must not run twice (a close, a write), the error is returned.
#[hoop::test(driver = "io_uring")]
async fn an_unasked_kernel_cancel_is_retried() {
    let probe = std::rc::Rc::new(std::cell::Cell::new(0));
    let first = hoop::op::Op::new(CancelledNop {
        cancels: 1,
        submitted: probe.clone(),
        repeatable: true,
    })
    .await;
    if first.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::EINVAL) {
        common::skip("the kernel cannot inject NOP results (6.10+)");
        return;
    }
    assert_eq!(first.unwrap(), 0);
    assert_eq!(probe.get(), 2, "submitted again after the cancel");
    let submitted = std::rc::Rc::new(std::cell::Cell::new(0));
    let err = hoop::op::Op::new(CancelledNop {
        cancels: 100,
        submitted: submitted.clone(),
        repeatable: true,
    })
    .await
    .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECANCELED));
    assert_eq!(submitted.get(), 4, "three retries, then the error");
    let once = std::rc::Rc::new(std::cell::Cell::new(0));
    let err = hoop::op::Op::new(CancelledNop {
        cancels: 1,
        submitted: once.clone(),
        repeatable: false,
    })
    .await
    .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECANCELED));
    assert_eq!(
        once.get(),
        1,
        "an operation that must not run twice is not repeated"
    );
}

/// A multishot read of a pipe whose SQE names an opcode no kernel has (255): the ring cannot
/// run it, so it must take the readiness path, as a single-shot `Op` always did.
struct UnknownOpcodeReads {
    fd: std::os::fd::RawFd,
    buf: Vec<u8>,
}

// SAFETY: the SQE is never submitted (the probe refuses its opcode); `perform` reads into the
// op's own buffer, within its capacity.
unsafe impl hoop::op::OpCode for UnknownOpcodeReads {
    type Output = ();
    fn uring_entry(&mut self) -> Option<io_uring::squeue::Entry> {
        let entry = io_uring::opcode::Nop::new().build();
        // SAFETY: `Entry` is the 64-byte `io_uring_sqe` (repr(C)); byte 0 is the opcode.
        let mut sqe: [u8; 64] = unsafe { std::mem::transmute(entry) };
        sqe[0] = 255;
        // SAFETY: as above, back to the entry it came from.
        Some(unsafe { std::mem::transmute::<[u8; 64], io_uring::squeue::Entry>(sqe) })
    }
    fn plan(&self) -> hoop::op::Plan {
        hoop::op::Plan::Readiness {
            fd: self.fd,
            interest: Interest::READABLE,
        }
    }
    fn traits(&self) -> hoop::op::OpTraits {
        hoop::op::OpTraits::NONE.multishot(true)
    }
    fn perform(&mut self) -> std::io::Result<u32> {
        // SAFETY: reads at most the buffer's capacity into its own allocation.
        let n = unsafe { libc::read(self.fd, self.buf.as_mut_ptr().cast(), self.buf.capacity()) };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as u32)
        }
    }
    fn complete(self, _: std::io::Result<u32>) {}
}

// SAFETY: as for `OpCode` above.
unsafe impl hoop::op::MultishotOp for UnknownOpcodeReads {
    type Item = std::io::Result<Vec<u8>>;
    fn item(&mut self, res: std::io::Result<u32>, _flags: u32) -> Self::Item {
        // SAFETY: `perform` initialised the first `n` bytes.
        res.map(|n| unsafe { std::slice::from_raw_parts(self.buf.as_ptr(), n as usize) }.to_vec())
    }
}

/// A multishot operation whose opcode the ring lacks runs on the readiness path (a syscall, then
/// a `POLL_ADD` on the ring) and yields every item, like a single-shot `Op` does: it yielded
/// `EOPNOTSUPP` and ended before the dispatch was one state machine.
#[hoop::test]
async fn a_multishot_op_whose_opcode_the_ring_lacks_takes_the_readiness_path() {
    use std::os::fd::AsRawFd;
    let (r, w) = hoop::io::pipe().unwrap();
    let mut stream = hoop::op::MultiOp::new(UnknownOpcodeReads {
        fd: r.as_raw_fd(),
        buf: Vec::with_capacity(64),
    });
    let writer = hoop::spawn(async move {
        for word in ["one", "two", "three"] {
            hoop::time::sleep(Duration::from_millis(5)).await;
            let (res, _) = w.write_all(word.as_bytes().to_vec()).await;
            res.unwrap();
        }
    });
    let mut got = Vec::new();
    while got.len() < "onetwothree".len() {
        let item = stream.next().await.expect("the stream goes on");
        got.extend(item.expect("a read, not EOPNOTSUPP"));
    }
    assert_eq!(got, b"onetwothree");
    writer.await.unwrap();
    drop(r);
}
