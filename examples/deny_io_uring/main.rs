//! Runs a command with `io_uring_setup` denied by a seccomp filter, as in a container whose
//! profile forbids io_uring, to check that a hoop program falls back to epoll and still works.
//!
//! ```sh
//! cargo run --example deny_io_uring -- [--enosys] COMMAND [ARGS...]
//! ```
//!
//! The syscall fails with EPERM (Docker's default profile) or, with `--enosys`, ENOSYS (a kernel
//! or profile that does not know it). The filter is inherited by every process the command
//! starts. The command also gets `HOOP_EXPECT_NO_IO_URING=1`, which makes `#[hoop::test]` check
//! that io_uring really is unavailable and skip its io_uring variants, so a whole test suite can
//! run this way — as a cargo runner:
//!
//! ```sh
//! cargo build --example deny_io_uring && cp target/debug/examples/deny_io_uring target/
//! CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$PWD/target/deny_io_uring" cargo test --tests
//! ```

mod seccomp;

use std::os::unix::process::CommandExt;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let errno = match args.first().map(String::as_str) {
        Some("--enosys") => {
            args.remove(0);
            libc::ENOSYS
        }
        Some("--eperm") => {
            args.remove(0);
            libc::EPERM
        }
        _ => libc::EPERM,
    };
    if args.first().map(String::as_str) == Some("--") {
        args.remove(0);
    }
    let Some(program) = args.first().cloned() else {
        eprintln!("usage: deny_io_uring [--eperm|--enosys] COMMAND [ARGS...]");
        std::process::exit(2);
    };
    if let Err(e) = seccomp::deny_syscall(libc::SYS_io_uring_setup, errno) {
        eprintln!("deny_io_uring: cannot install the seccomp filter: {e}");
        std::process::exit(1);
    }
    // `exec` only returns on failure.
    let e = std::process::Command::new(&program)
        .args(&args[1..])
        .env("HOOP_EXPECT_NO_IO_URING", "1")
        .exec();
    eprintln!("deny_io_uring: cannot run {program}: {e}");
    std::process::exit(127);
}
