//! Graceful shutdown for the example servers, one worker at a time: on `SIGINT` or `SIGTERM` the
//! worker stops accepting, shuts the read side of each of its connections (a read waiting for
//! the next request returns end-of-file, a response being written goes on), and waits for the
//! connections to end, up to a deadline.

#![allow(dead_code)] // each example uses part of it

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use hoop::net::{TcpListener, TcpStream};
use hoop::signal::{signal, SignalKind};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Poll, Waker};
use std::time::Duration;

/// Startup of a multi-worker server: each worker arrives once it listens for the stop signals
/// (and for connections), and the announcement waits for all of them, so that a signal sent by
/// whoever saw it is never met by the default action (the process killed) or missed by a
/// worker that was not listening yet.
pub struct AllReady {
    left: AtomicUsize,
    done: hoop::sync::Notify,
}

impl AllReady {
    pub fn new(workers: usize) -> AllReady {
        AllReady {
            left: AtomicUsize::new(workers),
            done: hoop::sync::Notify::new(),
        }
    }

    /// This worker's arrival, made when the guard is dropped: also when its setup fails or
    /// panics, so that the announcement (and the stop) never waits for a worker that is gone.
    pub fn arrival(self: &std::sync::Arc<Self>) -> Arrival {
        Arrival(self.clone())
    }

    /// Until every worker arrived (one waiter only).
    pub async fn wait(&self) {
        while self.left.load(Ordering::SeqCst) > 0 {
            self.done.notified().await;
        }
    }
}

/// See [`AllReady::arrival`].
pub struct Arrival(std::sync::Arc<AllReady>);

impl Drop for Arrival {
    fn drop(&mut self) {
        if self.0.left.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.done.notify_one(); // kept as a permit if nobody waits yet
        }
    }
}

/// The setup of a worker failed: said, and the process ends (a server short of a worker, or
/// without its listener, should not look healthy).
pub fn setup_failed(server: &str, worker: usize, e: io::Error) -> ! {
    eprintln!("{server}: worker {worker}: {e}");
    std::process::exit(1);
}

/// Waits for `SIGINT` or `SIGTERM`; the signal's name. Both are listened to from the call on;
/// polled again after one came, it waits for the next.
pub fn stop_requested() -> io::Result<impl std::future::Future<Output = &'static str>> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(poll_fn(move |cx| {
        if int.poll_recv(cx).is_ready() {
            return Poll::Ready("SIGINT");
        }
        term.poll_recv(cx).map(|_| "SIGTERM")
    }))
}

/// A worker's accept loop: each connection to `serve` until `stop` fires, then the listener
/// closed (new connections are refused), the worker's `connections` stopped, and a wait for
/// them of at most `grace`. What happened is printed, prefixed by `server`.
pub async fn serve_until_stopped(
    server: &str,
    worker: usize,
    listener: TcpListener,
    mut stop: Pin<&mut impl Future<Output = &'static str>>,
    connections: &Connections,
    grace: Duration,
    mut serve: impl FnMut(TcpStream),
) {
    let mut incoming = listener.incoming();
    let signal = loop {
        match select(incoming.next(), stop.as_mut()).await {
            Either::Left((Some(Ok(stream)), _)) => serve(stream),
            Either::Left((Some(Err(e)), _)) => eprintln!("{server}: accept: {e}"),
            Either::Left((None, _)) => return,
            Either::Right((signal, _)) => break signal,
        }
    };
    drop(incoming);
    drop(listener);
    connections.stop();
    let left = connections.drain(grace).await;
    println!("{server}: worker {worker}: {signal}: stopped ({left} connection(s) cut)");
}

/// A worker's open connections.
#[derive(Default)]
pub struct Connections {
    /// Each connection's stream, where the server lets the worker shut its read side.
    open: RefCell<HashMap<u64, Option<Rc<TcpStream>>>>,
    /// Connections waiting in [`Tracked::stopping`], one waker each (by their key).
    waiting: RefCell<HashMap<u64, Waker>>,
    next_key: Cell<u64>,
    stopping: Cell<bool>,
    /// Woken when the last connection ends.
    drained: Cell<Option<Waker>>,
}

/// A connection's place in [`Connections`], given back when dropped.
pub struct Tracked {
    key: u64,
    connections: Rc<Connections>,
}

impl Connections {
    /// How many are open.
    pub fn len(&self) -> usize {
        self.open.borrow().len()
    }

    /// Tracks `stream` until the returned guard is dropped.
    pub fn track(self: &Rc<Self>, stream: TcpStream) -> (Rc<TcpStream>, Tracked) {
        let stream = Rc::new(stream);
        if self.stopping.get() {
            let _ = stream.shutdown(Shutdown::Read);
        }
        let tracked = self.track_task(Some(stream.clone()));
        (stream, tracked)
    }

    /// Tracks a connection whose stream is not the worker's to shut (a hyper connection owns
    /// its own): it learns of the stop from [`Tracked::stopping`].
    pub fn track_task(self: &Rc<Self>, stream: Option<Rc<TcpStream>>) -> Tracked {
        let key = self.next_key.get();
        self.next_key.set(key + 1);
        self.open.borrow_mut().insert(key, stream);
        Tracked {
            key,
            connections: self.clone(),
        }
    }

    /// Shuts the read side of every connection, and of every one tracked from now on, and
    /// wakes those waiting in [`Tracked::stopping`].
    pub fn stop(&self) {
        self.stopping.set(true);
        for stream in self.open.borrow().values().flatten() {
            let _ = stream.shutdown(Shutdown::Read);
        }
        for (_, waker) in self.waiting.take() {
            waker.wake();
        }
    }

    /// Waits until every connection ended, or `grace` passed; how many are still open.
    pub async fn drain(&self, grace: Duration) -> usize {
        let all_closed = poll_fn(|cx| {
            if self.len() == 0 {
                return Poll::Ready(());
            }
            self.drained.set(Some(cx.waker().clone()));
            Poll::Pending
        });
        let _ = hoop::time::timeout(grace, all_closed).await;
        self.len()
    }
}

impl Tracked {
    /// Returns once the worker is stopping.
    pub async fn stopping(&self) {
        let connections = &self.connections;
        poll_fn(|cx| {
            if connections.stopping.get() {
                return Poll::Ready(());
            }
            // One waker per connection, the latest: polls do not pile them up.
            connections
                .waiting
                .borrow_mut()
                .insert(self.key, cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.connections.waiting.borrow_mut().remove(&self.key);
        let mut open = self.connections.open.borrow_mut();
        open.remove(&self.key);
        if open.is_empty() {
            if let Some(waker) = self.connections.drained.take() {
                waker.wake();
            }
        }
    }
}
