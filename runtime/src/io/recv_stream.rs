//! [`RecvStream`]: chunks received on a socket into a [`BufRing`].

use crate::buf::{BufRing, Received, RingBuf, RingBufMut};
use crate::fd::SharedFd;
use crate::op::poll::Readable;
use crate::op::recv_multi::RecvRing;
use crate::op::send_recv::Recv;
use crate::op::{MultiOp, Op};
use futures_core::Stream;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// A stream of received chunks, each in a buffer of a [`BufRing`] that goes back to the ring
/// when the chunk is dropped. Ends (`None`) when the peer closes its side; an error ends it too.
///
/// On io_uring with a registered ring this is one multishot receive (one SQE for any number of
/// chunks, re-armed when the kernel ends it). With a ring built for bundles one completion may
/// fill several buffers, yielded one after the other; with an incremental ring, consecutive
/// chunks may be pieces of the same buffer. When the ring runs dry the kernel ends the receive
/// with `ENOBUFS`; the data stays in the socket, and the stream waits until a buffer is given back
/// before arming again — nothing is lost or duplicated, and nothing spins. Elsewhere (epoll, an
/// unregistered ring) the stream waits for its socket to be readable, then makes a plain
/// receive into a buffer taken from the ring: there too an idle connection holds no buffer.
///
/// Dropping the stream discards chunks the kernel already received into ring buffers but the
/// stream had not yielded yet (their buffers return to the ring).
///
/// ```
/// # hoop_runtime::block_on(async {
/// use futures_util::StreamExt;
/// use hoop_runtime::{buf::BufRing, fd::SharedFd, io::RecvStream};
/// use std::io::Write;
/// let (mut peer, ours) = std::os::unix::net::UnixStream::pair().unwrap();
/// ours.set_nonblocking(true).unwrap();
/// let ring = BufRing::new(8, 4096).unwrap(); // 8 buffers of 4 KiB, for any number of sockets
/// let mut chunks = RecvStream::new(&SharedFd::new(ours.into()), &ring);
/// peer.write_all(b"hello").unwrap();
/// let chunk = chunks.next().await.unwrap().unwrap();
/// assert_eq!(&chunk[..], b"hello"); // the buffer goes back to the ring when `chunk` drops
/// drop(peer);
/// drop(chunk);
/// assert!(chunks.next().await.is_none());
/// # });
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct RecvStream {
    fd: SharedFd,
    ring: BufRing,
    state: State,
    /// Buffers of the last completion not yet yielded (a bundle's later ones).
    pending: Option<Received>,
    exhausted: u64,
    completions: u64,
    /// Unregistered ring: the last receive filled its buffer, so more data likely waits.
    likely_more: bool,
}

enum State {
    Idle,
    /// A multishot receive, armed when the ring had seen `gen` buffers returned.
    Multi(MultiOp<RecvRing>, u64),
    /// Unregistered ring: waiting for data, holding no buffer.
    Readable(Op<Readable>),
    /// Unregistered ring: one non-blocking receive into a buffer taken from it.
    Plain(Op<Recv<RingBufMut>>),
    /// Out of buffers: wait for one returned after generation `gen`.
    WaitBuffers(u64),
    Done,
}

impl RecvStream {
    /// Receives on `fd` (a stream socket) into `ring`.
    pub fn new(fd: &SharedFd, ring: &BufRing) -> Self {
        RecvStream {
            fd: fd.clone(),
            ring: ring.clone(),
            state: State::Idle,
            pending: None,
            exhausted: 0,
            completions: 0,
            likely_more: false,
        }
    }

    /// How many times the ring ran out of buffers under this stream (each time it waited for a
    /// buffer to come back, then went on without losing data).
    pub fn times_exhausted(&self) -> u64 {
        self.exhausted
    }

    /// Receives that delivered data so far (completions, or plain receives): fewer than the
    /// chunks yielded when bundles fill several buffers at once.
    pub fn completions(&self) -> u64 {
        self.completions
    }
}

impl Stream for RecvStream {
    type Item = io::Result<RingBuf>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(pending) = &mut this.pending {
            if let Some(chunk) = pending.next() {
                return Poll::Ready(Some(Ok(chunk)));
            }
            this.pending = None;
        }
        loop {
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Idle => {
                    let gen = this.ring.returned_count();
                    this.state = match RecvRing::new(&this.fd, &this.ring) {
                        Some(op) => State::Multi(MultiOp::new(op), gen),
                        None if !this.likely_more && this.fd.direct_slot().is_none() => {
                            State::Readable(Op::new(Readable::new(&this.fd)))
                        }
                        None => match this.ring.try_take() {
                            // A direct descriptor has no fd for the plain syscalls: its
                            // receive goes to the ring, which waits for data with the buffer.
                            Some(buf) if this.fd.direct_slot().is_some() => {
                                State::Plain(Op::new(Recv::new(&this.fd, buf, 0)))
                            }
                            Some(buf) => State::Plain(Op::new(Recv::once(&this.fd, buf, 0))),
                            None => {
                                this.exhausted += 1;
                                State::WaitBuffers(gen)
                            }
                        },
                    };
                }
                State::WaitBuffers(gen) => {
                    ready!(this.ring.poll_returned_since(*gen, cx));
                    this.state = State::Idle;
                }
                State::Multi(op, gen) => match ready!(Pin::new(op).poll_next(cx)) {
                    Some(Ok(Some(mut received))) => {
                        this.completions += 1;
                        if let Some(chunk) = received.next() {
                            this.pending = Some(received);
                            return Poll::Ready(Some(Ok(chunk)));
                        }
                    }
                    Some(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        tracing::debug!(
                            target: "hoop",
                            "recv_stream: buffer ring empty (ENOBUFS); waiting for a buffer"
                        );
                        this.exhausted += 1;
                        this.state = State::WaitBuffers(*gen);
                    }
                    Some(Err(e)) => {
                        this.state = State::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                    Some(Ok(None)) | None => {
                        this.state = State::Done;
                        return Poll::Ready(None);
                    }
                },
                State::Readable(op) => match ready!(Pin::new(op).poll(cx)) {
                    Ok(()) => {
                        this.likely_more = true;
                        this.state = State::Idle;
                    }
                    Err(e) => {
                        this.state = State::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                },
                State::Plain(op) => {
                    let (res, buf) = ready!(Pin::new(op).poll(cx));
                    match res {
                        Ok(0) => {
                            this.state = State::Done;
                            return Poll::Ready(None);
                        }
                        Ok(n) => {
                            this.likely_more = n == this.ring.buffer_size();
                            this.state = State::Idle;
                            this.completions += 1;
                            return Poll::Ready(Some(Ok(buf.into_filled())));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            // Nothing after all (the buffer goes back as `buf` drops): wait
                            // for data without it.
                            this.likely_more = false;
                            this.state = State::Idle;
                        }
                        Err(e) => {
                            this.state = State::Done;
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
            }
        }
    }
}

impl fmt::Debug for RecvStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Idle => "idle",
            State::Multi(..) => "multishot receive armed",
            State::Readable(_) => "waiting for data",
            State::Plain(_) => "receive in flight",
            State::WaitBuffers(_) => "waiting for a buffer",
            State::Done => "ended",
        };
        f.debug_struct("RecvStream")
            .field("fd", &self.fd.raw())
            .field("ring", &self.ring)
            .field("state", &state)
            .finish()
    }
}
