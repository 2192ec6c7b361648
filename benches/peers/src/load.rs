//! `hoop-peers load --addr A --conns N --size S --secs T [--warm W] [--rate R]`: an echo load
//! generator that shares no code with any runtime under test. One io_uring (the io-uring crate,
//! no executor), `N` connections, each sending `S` bytes and reading `S` bytes back, then again,
//! one request in flight per connection. A short send or receive is continued where it stopped.
//!
//! With `--rate R` at most `R` requests a second start (a token bucket refilled by a 1 ms ring
//! timeout; a connection whose response came waits for a token): at a rate every server
//! sustains, the servers' CPU per request compares their work at equal load, where an unpaced
//! run measures each server as busy as the generator can make it.
//!
//! It prints `measuring` when the warm-up ends and `done` when the measured window ends (so that
//! the caller can read the server's CPU time at those instants), then one line
//! `requests=R secs=T p50_us=X p99_us=Y sleeps=Z cpu_ms=C`: the requests that started inside the
//! window, the latency percentiles of those, how often the generator waited for the server (its
//! voluntary context switches) and its CPU time, both over the whole run.

use io_uring::{opcode, types, IoUring};
use std::collections::VecDeque;
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

const SEND: u64 = 0;
const RECV: u64 = 1;
const TICK: u64 = 2;

/// `user_data`: the connection's index (0 for the pacing tick), and which op completed.
fn token(conn: usize, kind: u64) -> u64 {
    (conn as u64) << 2 | kind
}

fn send(c: &mut Conn, i: usize) -> io_uring::squeue::Entry {
    let rest = &c.out[c.sent..];
    opcode::Send::new(
        types::Fd(c.stream.as_raw_fd()),
        rest.as_ptr(),
        rest.len() as u32,
    )
    .build()
    .user_data(token(i, SEND))
}

fn recv(c: &mut Conn, i: usize) -> io_uring::squeue::Entry {
    let rest = &mut c.back[c.received..];
    opcode::Recv::new(
        types::Fd(c.stream.as_raw_fd()),
        rest.as_mut_ptr(),
        rest.len() as u32,
    )
    .build()
    .user_data(token(i, RECV))
}

/// The ring and what its SQEs point to.
struct Load {
    ring: IoUring,
    conns: Vec<Conn>,
    /// The pacing tick's interval, read by the kernel while the tick is armed.
    tick: Box<types::Timespec>,
    in_flight: usize,
}

impl Load {
    fn push(&mut self, sqe: io_uring::squeue::Entry) -> io::Result<()> {
        // SAFETY: every SQE points into a `Conn`'s buffers or at `tick`, which stay where they
        // are (the Vecs are never resized, `conns` never grows, `tick` is boxed) until `run`
        // returns, and `run` returns only once nothing is in flight (each connection has at most
        // one op, the tick is one more, and the loop waits for them all) or by exiting.
        while unsafe { self.ring.submission().push(&sqe) }.is_err() {
            self.ring.submit()?;
        }
        self.in_flight += 1;
        Ok(())
    }

    fn start(&mut self, i: usize) -> io::Result<()> {
        let c = &mut self.conns[i];
        (c.sent, c.received, c.started) = (0, 0, Instant::now());
        let sqe = send(c, i);
        self.push(sqe)
    }
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
    let rate: f64 = crate::arg("--rate", 0.0);
    if let Err(e) = run(addr, conns, size, warm, secs, rate) {
        eprintln!("hoop-peers load: {e}");
        std::process::exit(1);
    }
}

fn run(
    addr: SocketAddr,
    n: usize,
    size: usize,
    warm: Duration,
    secs: Duration,
    rate: f64,
) -> io::Result<()> {
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
    let entries = (n as u32 + 1).next_power_of_two().clamp(8, 4096);
    let mut load = Load {
        ring: IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(entries)?,
        conns,
        tick: Box::new(types::Timespec::new().nsec(1_000_000)),
        in_flight: 0,
    };
    let paced = rate > 0.0;
    let t0 = Instant::now();
    let (measure_from, end) = (t0 + warm, t0 + warm + secs);
    // Paced: connections waiting for a token, and the requests started so far.
    let mut idle: VecDeque<usize> = VecDeque::new();
    let mut started: u64 = 0;
    let tick = |load: &mut Load| {
        let sqe = opcode::Timeout::new(&*load.tick)
            .build()
            .user_data(token(0, TICK));
        load.push(sqe)
    };
    if paced {
        idle.extend(0..n);
        tick(&mut load)?;
    } else {
        for i in 0..n {
            load.start(i)?;
        }
    }
    let mut lat_us: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut out = io::stdout();
    let mut announced = false;
    let mut done: Vec<(u64, i32)> = Vec::new();
    while load.in_flight > 0 {
        load.ring.submit_and_wait(1)?;
        done.clear();
        done.extend(
            load.ring
                .completion()
                .map(|cqe| (cqe.user_data(), cqe.result())),
        );
        for &(data, res) in &done {
            load.in_flight -= 1;
            let (i, kind) = ((data >> 2) as usize, data & 3);
            if kind == TICK {
                if res != -libc::ETIME && res < 0 {
                    return Err(io::Error::from_raw_os_error(-res));
                }
                if Instant::now() < end {
                    tick(&mut load)?;
                }
                continue;
            }
            if res < 0 {
                return Err(io::Error::from_raw_os_error(-res));
            }
            let c = &mut load.conns[i];
            if kind == SEND {
                c.sent += res as usize;
                let sqe = if c.sent < size {
                    send(c, i)
                } else {
                    recv(c, i)
                };
                load.push(sqe)?;
                continue;
            }
            if res == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed a connection",
                ));
            }
            c.received += res as usize;
            if c.received < size {
                let sqe = recv(c, i);
                load.push(sqe)?;
                continue;
            }
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
            if paced {
                idle.push_back(i);
            } else {
                load.start(i)?;
            }
        }
        if paced && Instant::now() < end {
            // Tokens: the requests the rate allows by now, less those started.
            let allowed = (t0.elapsed().as_secs_f64() * rate) as u64;
            while started < allowed {
                let Some(i) = idle.pop_front() else { break };
                load.start(i)?;
                started += 1;
            }
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
