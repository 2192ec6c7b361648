//! `hoop-peers load --addr A --conns N --size S --secs T [--warm W]`: an echo load generator
//! that shares no code with any runtime under test. One io_uring (the io-uring crate, no
//! executor), `N` connections, each sending `S` bytes and reading `S` bytes back, then again,
//! one request in flight per connection. A short send or receive is continued where it stopped.
//!
//! It prints `measuring` when the warm-up ends and `done` when the measured window ends (so that
//! the caller can read the server's CPU time at those instants), then one line
//! `requests=R secs=T p50_us=X p99_us=Y sleeps=Z`: the requests that started inside the window,
//! the latency percentiles of those, and how often the generator waited for the server (its
//! voluntary context switches over the whole run).

use io_uring::{opcode, types, IoUring};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// One connection's request in flight.
struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
    back: Vec<u8>,
    /// Bytes of `out` sent / of `back` received in the current request.
    sent: usize,
    received: usize,
    started: Instant,
}

/// `user_data`: the connection's index, and whether the op is its receive.
fn token(conn: usize, recv: bool) -> u64 {
    (conn as u64) << 1 | recv as u64
}

fn send(c: &mut Conn, i: usize) -> io_uring::squeue::Entry {
    let rest = &c.out[c.sent..];
    opcode::Send::new(
        types::Fd(c.stream.as_raw_fd()),
        rest.as_ptr(),
        rest.len() as u32,
    )
    .build()
    .user_data(token(i, false))
}

fn recv(c: &mut Conn, i: usize) -> io_uring::squeue::Entry {
    let rest = &mut c.back[c.received..];
    opcode::Recv::new(
        types::Fd(c.stream.as_raw_fd()),
        rest.as_mut_ptr(),
        rest.len() as u32,
    )
    .build()
    .user_data(token(i, true))
}

fn push(ring: &mut IoUring, sqe: io_uring::squeue::Entry) -> io::Result<()> {
    // SAFETY: every SQE points into a `Conn`'s buffers, which live (unmoved: the Vecs are never
    // resized) in `conns` until `run` returns, and `run` returns only once no op is in flight
    // (each connection has at most one, and the loop waits for it) or by exiting the process.
    while unsafe { ring.submission().push(&sqe) }.is_err() {
        ring.submit()?;
    }
    Ok(())
}

pub fn main() {
    let addr: SocketAddr = match crate::arg("--addr", String::new()).parse() {
        Ok(a) => a,
        Err(_) => crate::usage(),
    };
    let conns: usize = crate::arg("--conns", 64);
    let size: usize = crate::arg("--size", 64);
    let secs = Duration::from_secs_f64(crate::arg("--secs", 3.0));
    let warm = Duration::from_secs_f64(crate::arg("--warm", 0.3));
    if let Err(e) = run(addr, conns, size, warm, secs) {
        eprintln!("hoop-peers load: {e}");
        std::process::exit(1);
    }
}

fn run(addr: SocketAddr, n: usize, size: usize, warm: Duration, secs: Duration) -> io::Result<()> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        conns.push(Conn {
            stream,
            out: vec![7; size],
            back: vec![0; size],
            sent: 0,
            received: 0,
            started: Instant::now(),
        });
    }
    let entries = (n as u32).next_power_of_two().clamp(8, 4096);
    let mut ring = if std::env::var_os("LOAD_PLAIN").is_some() {
        IoUring::new(entries)?
    } else {
        IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(entries)?
    };
    let t0 = Instant::now();
    let (measure_from, end) = (t0 + warm, t0 + warm + secs);
    let mut lat_us: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut in_flight = 0usize;
    for (i, c) in conns.iter_mut().enumerate() {
        c.started = Instant::now();
        push(&mut ring, send(c, i))?;
        in_flight += 1;
    }
    let mut out = io::stdout();
    let mut announced = false;
    while in_flight > 0 {
        ring.submit_and_wait(1)?;
        let done: Vec<(u64, i32)> = ring
            .completion()
            .map(|cqe| (cqe.user_data(), cqe.result()))
            .collect();
        for (data, res) in done {
            in_flight -= 1;
            let (i, is_recv) = ((data >> 1) as usize, data & 1 == 1);
            if res < 0 {
                return Err(io::Error::from_raw_os_error(-res));
            }
            let c = &mut conns[i];
            let next = if !is_recv {
                c.sent += res as usize;
                if c.sent < size {
                    send(c, i)
                } else {
                    recv(c, i)
                }
            } else if res == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed a connection",
                ));
            } else {
                c.received += res as usize;
                if c.received < size {
                    recv(c, i)
                } else {
                    if c.started >= measure_from && c.started < end {
                        lat_us.push(c.started.elapsed().as_micros() as u32);
                    }
                    let now = Instant::now();
                    if !announced && now >= measure_from {
                        announced = true;
                        writeln!(out, "measuring")?;
                        out.flush()?;
                    }
                    if now >= end {
                        continue;
                    }
                    (c.sent, c.received, c.started) = (0, 0, now);
                    send(c, i)
                }
            };
            push(&mut ring, next)?;
            in_flight += 1;
        }
    }
    writeln!(out, "done")?;
    // SAFETY: getrusage writes the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    lat_us.sort_unstable();
    let pct = |p: usize| lat_us.get(lat_us.len() * p / 100).copied().unwrap_or(0);
    writeln!(
        out,
        "requests={} secs={} p50_us={} p99_us={} sleeps={} cpu_ms={}",
        lat_us.len(),
        secs.as_secs_f64(),
        pct(50),
        pct(99),
        usage.ru_nvcsw,
        (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000
            + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1000
    )?;
    out.flush()
}
