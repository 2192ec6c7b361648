//! The examples behave like tools: `--help` prints the usage and exits 0; a bad value, a
//! missing value or an unknown option is refused with a message naming it and exit status 2,
//! never silently replaced by a default (a bad `--workers` used to be ignored).

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/examples/<name>`, built by `cargo test`.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name)
}

/// Runs `name` with `args`: (exit code, stdout, stderr). An example that does not exit within
/// 20 s (a server that took the bad value and started) is killed: -1.
fn run(name: &str, args: &[&str]) -> (i32, String, String) {
    use std::io::Read;
    let mut child = Command::new(example(name))
        .args(args)
        .env("HOOP_DRIVER", "epoll")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: {e} (built by cargo test)"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (code, out, err)
}

/// The examples and a bad value for one of their options.
fn examples() -> Vec<(&'static str, &'static [&'static str])> {
    let mut all: Vec<(&str, &[&str])> = vec![
        ("tour", &["--workers", "zero"]),
        ("echo", &["--workers", "0"]),
        ("metrics", &["--workers=-1"]),
        ("du", &["--jobs", "many"]),
        ("copy", &["a", "b", "--depth", "0"]),
        ("fileserver", &["--head-timeout", "-3"]),
    ];
    if cfg!(feature = "hyper") {
        all.push(("hyper_server", &["--workers", "x"]));
    }
    all
}

#[test]
fn help_prints_the_usage() {
    for (name, _) in examples() {
        let (code, out, _) = run(name, &["--help"]);
        assert_eq!(code, 0, "{name}");
        assert!(out.starts_with(&format!("usage: {name}")), "{name}: {out}");
    }
}

#[test]
fn bad_values_are_refused() {
    for (name, bad) in examples() {
        let (code, _, err) = run(name, bad);
        assert_eq!(code, 2, "{name} {bad:?}: {err}");
        let flag = bad.iter().find(|a| a.starts_with("--")).unwrap();
        let flag = flag.split('=').next().unwrap();
        assert!(
            err.contains(flag),
            "{name}: the message names {flag}: {err}"
        );
        assert!(err.contains("usage:"), "{name}: {err}");
    }
}

#[test]
fn unknown_options_and_missing_values_are_refused() {
    for (name, _) in examples() {
        let (code, _, err) = run(name, &["--no-such-option"]);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(
            err.contains("unknown option --no-such-option"),
            "{name}: {err}"
        );
    }
    let (code, _, err) = run("fileserver", &["--addr"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--addr needs a value"), "{err}");
    let (code, _, err) = run("copy", &["only-one"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("SRC and DST"), "{err}");
}

/// `echo` on `SIGTERM`, on both drivers, receiving into its ring and with `--owned`: what a
/// connection sent before the signal is echoed, then the connection closes; new connections are
/// refused; the process exits with status 0.
#[test]
fn echo_stops_gracefully_on_sigterm() {
    use std::io::{BufRead, Read, Write};
    let runs = common::driver_names()
        .into_iter()
        .flat_map(|d| [(d, None), (d, Some("--owned"))]);
    for (driver, owned) in runs {
        struct Kill(std::process::Child);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let mut child = Kill(
            Command::new(example("echo"))
                .args(["--workers", "1", "--addr", "127.0.0.1:0"])
                .args(owned)
                .env("HOOP_DRIVER", driver)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let child = &mut child.0;
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.contains(&format!(" on {driver}")), "{line}");
        let addr = line.split(' ').nth(3).unwrap().to_string();
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        conn.write_all(b"hello").unwrap();
        let mut got = [0u8; 5];
        conn.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
        // Sent right before the signal: echoed whether the server reads it before or after.
        conn.write_all(b"tail").unwrap();
        // SAFETY: kill takes no pointers; the pid is our child's, not yet waited for.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"tail", "{driver}");
        // The listener closed before the connections were told to end.
        assert!(
            std::net::TcpStream::connect(&addr).is_err(),
            "{driver}: still accepting"
        );
        let status = common::wait_for_exit(child, 10, driver);
        assert!(status.success(), "{driver}: {status}");
        assert!(
            std::net::TcpStream::connect(&addr).is_err(),
            "{driver}: still accepting"
        );
        let mut last = String::new();
        out.read_line(&mut last).unwrap();
        assert!(
            last.contains("SIGTERM: stopped (0 connection(s) cut)"),
            "{driver}: {last}"
        );
    }
}
