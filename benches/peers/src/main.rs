//! hoop's peers (monoio, compio) running the workloads of hoop's own benches, so that
//! `benches/compare.sh` (with PEERS=1) can put them side by side with hoop and tokio:
//!
//! - `hoop-peers echo monoio|compio|tokio`: the echo server of `benches/echo.rs` (owned-buffer
//!   read, then write_all of what was read) on that runtime, one thread; prints its address and
//!   serves until killed. `benches/echo.rs --peers PATH` starts it pinned to CPU 0 and loads it
//!   like the others.
//! - `hoop-peers load --addr A --conns N --size S --secs T`: an echo load generator on a bare
//!   io_uring, for `benches/echo_outside.rs` (see `load.rs`).
//! - `hoop-peers fsread --file F [--secs S --rounds R --out MD]`: 4 KiB random reads of a
//!   page-cached file at queue depth 1 and 32 on hoop, monoio, compio and a synchronous pread
//!   loop, each on a thread pinned to CPU 0, runtimes interleaved round by round; prints (and
//!   writes to MD) a table of median IOPS with ratios.

mod echo;
mod fsread;
mod load;

fn pin(cpu: usize) {
    // SAFETY: a local cpu_set_t the kernel only reads.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("echo") => match args.get(2).map(String::as_str) {
            Some("monoio") => echo::monoio(),
            Some("compio") => echo::compio(),
            Some("tokio") => echo::tokio(),
            _ => usage(),
        },
        Some("fsread") => fsread::main(),
        Some("load") => load::main(),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: hoop-peers echo monoio|compio|tokio | fsread --file F [--secs S --rounds R --out MD] \
         | load --addr A [--conns N --size S --secs T --warm W]"
    );
    std::process::exit(2);
}
