//! Helpers shared by the integration tests.

#![allow(dead_code)]

use hoop::{IoBuf, IoBufMut};
use std::sync::Arc;

/// A buffer that counts its owners, to see when the runtime lets go of it.
pub struct Tracked {
    pub data: Vec<u8>,
    pub owner: Arc<()>,
}

impl Tracked {
    pub fn new(capacity: usize, owner: &Arc<()>) -> Self {
        Tracked {
            data: Vec::with_capacity(capacity),
            owner: owner.clone(),
        }
    }
}

// SAFETY: delegates to the Vec, whose heap allocation is stable.
unsafe impl IoBuf for Tracked {
    fn stable_ptr(&self) -> *const u8 {
        self.data.stable_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.data.bytes_init()
    }
    fn bytes_total(&self) -> usize {
        self.data.bytes_total()
    }
}

// SAFETY: delegates to the Vec.
unsafe impl IoBufMut for Tracked {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.data.stable_mut_ptr()
    }
    // SAFETY: the caller upholds `IoBufMut::set_init`'s contract, which is forwarded as is.
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.data.set_init(pos) }
    }
}

/// Runs test `test` of the current test binary in a child process with `env` set (and
/// `HOOP_DRIVER` unset), and fails unless it passed.
pub fn run_child(test: &str, env: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"]);
    cmd.env_remove("HOOP_DRIVER");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {test} {env:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Installs a seccomp filter that fails syscall `nr` with `errno` in this process (shared with
/// the `deny_io_uring` example).
#[path = "../../examples/deny_io_uring/seccomp.rs"]
mod seccomp;
#[allow(unused_imports)]
pub use seccomp::deny_syscall;

/// xorshift64*: a deterministic generator, so a failure names a reproducible seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// An example binary run as a server process for a test; killed when dropped.
pub struct ExampleServer {
    pub child: std::process::Child,
    /// `host:port` from the `http://host:port/` the example prints on its first line.
    pub addr: String,
    /// The rest of its standard output (kept open: a closed pipe would fail its prints).
    pub stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Drop for ExampleServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ExampleServer {
    /// Starts `target/<profile>/examples/<name>` (built by `cargo test`) with `args` on
    /// `driver`, and waits for its first line, which must name the driver and the address.
    pub fn start(name: &str, args: &[&std::ffi::OsStr], driver: &str) -> ExampleServer {
        use std::io::BufRead;
        // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
        let exe = std::env::current_exe().unwrap();
        let bin = exe
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("examples")
            .join(name);
        let mut child = std::process::Command::new(&bin)
            .args(args)
            .env("HOOP_DRIVER", driver)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e} (built by cargo test)", bin.display()));
        let mut line = String::new();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        assert!(line.contains(&format!(" on {driver}")), "{line}");
        let addr = line
            .split("http://")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string();
        ExampleServer {
            child,
            addr,
            stdout,
        }
    }
}

/// The drivers a test that loops over drivers itself should run on: both, or epoll alone when
/// the suite runs with io_uring denied (`deny_io_uring` example, `HOOP_EXPECT_NO_IO_URING`).
pub fn drivers() -> Vec<hoop::DriverChoice> {
    if hoop::__private::io_uring_denied() {
        vec![hoop::DriverChoice::Epoll]
    } else {
        vec![hoop::DriverChoice::IoUring, hoop::DriverChoice::Epoll]
    }
}

/// True when io_uring is denied to this test run (see [`drivers`]); tests of io_uring-only
/// behaviour return early then, and the skip is recorded (see [`skip`]).
pub fn io_uring_denied() -> bool {
    let denied = hoop::__private::io_uring_denied();
    if denied {
        skip("io_uring denied");
    }
    denied
}

/// Records that this test skips its check (`.ci/run` prints the count and the reasons).
pub fn skip(reason: &str) {
    hoop::__private::record_skip(reason);
}

/// [`drivers`] by the names `HOOP_DRIVER` takes.
pub fn driver_names() -> Vec<&'static str> {
    drivers()
        .into_iter()
        .map(|d| match d {
            hoop::DriverChoice::IoUring => "io_uring",
            _ => "epoll",
        })
        .collect()
}

/// True if a runtime may use io_uring features of kernel `release` (the running kernel, or the
/// older one `HOOP_EMULATE_KERNEL` names).
pub fn kernel_at_least(release: (u32, u32)) -> bool {
    let kernel = match hoop::runtime_info() {
        Some(info) => info.kernel,
        None => hoop::block_on(async { hoop::runtime_info().unwrap().kernel }),
    };
    kernel >= release
}

/// Makes a FIFO at `path` with `mode`.
pub fn mkfifo(path: &std::path::Path, mode: libc::mode_t) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid, NUL-terminated path string alive for the call.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), mode) },
        0,
        "{}",
        path.display()
    );
}

/// A thread that calls `fire` every millisecond until stopped, counting the calls that
/// returned true (signals sent).
pub struct Storm {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Storm {
    pub fn start(fire: impl Fn() -> usize + Send + 'static) -> Storm {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut sent = 0;
            while !stop2.load(Ordering::Relaxed) {
                sent += fire();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            sent
        });
        Storm {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the thread; returns how many signals it sent.
    pub fn stop(mut self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// Waits for `child` to exit, at most `secs` seconds (then panics, naming `what`).
pub fn wait_for_exit(
    child: &mut std::process::Child,
    secs: u64,
    what: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: did not exit");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
