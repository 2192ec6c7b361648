//! Choosing the backend: forced by the builder or `HOOP_DRIVER`, automatic fallback to epoll
//! when io_uring is unavailable (fault injection, and a real seccomp filter in a child process),
//! and real errors reported instead of hidden.

use hoop::{DriverChoice, DriverKind, Runtime};

#[path = "common/mod.rs"]
mod common;

fn kind_with(driver: DriverChoice) -> std::io::Result<(DriverKind, String)> {
    let rt = Runtime::builder().workers(1).driver(driver).build()?;
    Ok((rt.info().driver, rt.info().reason.clone()))
}

#[test]
fn builder_forces_each_driver() {
    if std::env::var_os("HOOP_DRIVER").is_some() {
        return; // the child-process tests below control the variable
    }
    let (kind, reason) = kind_with(DriverChoice::Epoll).unwrap();
    assert_eq!(kind, DriverKind::Epoll);
    assert_eq!(reason, "requested by the builder");
    if common::io_uring_denied() {
        // Under a seccomp filter (the `deny_io_uring` runner): io_uring is an error, Auto is epoll.
        let err = kind_with(DriverChoice::IoUring).unwrap_err();
        assert!(err.to_string().contains("unavailable"), "{err}");
        let (kind, reason) = kind_with(DriverChoice::Auto).unwrap();
        assert_eq!(kind, DriverKind::Epoll);
        assert!(reason.contains("io_uring unavailable"), "{reason}");
        return;
    }
    let (kind, _) = kind_with(DriverChoice::IoUring).unwrap();
    assert_eq!(kind, DriverKind::IoUring);
    let (kind, reason) = kind_with(DriverChoice::Auto).unwrap();
    assert_eq!(
        kind,
        DriverKind::IoUring,
        "io_uring is available on this machine"
    );
    assert_eq!(reason, "io_uring available");
}

#[test]
fn auto_falls_back_only_when_io_uring_is_unavailable() {
    for errno in [libc::ENOSYS, libc::EPERM, libc::EOPNOTSUPP] {
        let rt = Runtime::builder()
            .workers(1)
            .uring_setup_fault(errno)
            .build()
            .unwrap();
        if std::env::var_os("HOOP_DRIVER").is_none() {
            assert!(
                rt.info().reason.contains("io_uring unavailable"),
                "{}",
                rt.info().reason
            );
        }
        assert_eq!(rt.info().driver, DriverKind::Epoll);
        // The fallback runtime does real I/O.
        rt.block_on(async {
            let (r, w) = hoop::io::pipe().unwrap();
            w.write_all(b"ok".to_vec()).await.0.unwrap();
            let (n, buf) = r.read(vec![0; 4]).await;
            assert_eq!(&buf[..n.unwrap()], b"ok");
        });
    }
    // Resource errors are reported, not hidden behind a fallback.
    for errno in [libc::ENOMEM, libc::EMFILE] {
        let err = Runtime::builder()
            .workers(1)
            .driver(DriverChoice::Auto)
            .uring_setup_fault(errno)
            .build();
        if std::env::var_os("HOOP_DRIVER").is_none() {
            assert_eq!(err.unwrap_err().raw_os_error(), Some(errno));
        }
    }
    // Insisting on io_uring where it is unavailable is an error.
    let err = Runtime::builder()
        .workers(1)
        .driver(DriverChoice::IoUring)
        .uring_setup_fault(libc::EPERM)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("unavailable"), "{err}");
}

#[test]
fn env_var_forces_the_driver() {
    common::run_child(
        "child_reports_env_choice",
        &[("HOOP_DRIVER", "epoll"), ("EXPECT", "epoll")],
    );
    common::run_child(
        "child_reports_env_choice",
        &[
            ("HOOP_DRIVER", "io_uring"),
            (
                "EXPECT",
                if common::io_uring_denied() {
                    "error"
                } else {
                    "io_uring"
                },
            ),
        ],
    );
    common::run_child(
        "child_reports_env_choice",
        &[("HOOP_DRIVER", "bogus"), ("EXPECT", "error")],
    );
}

#[test]
fn child_reports_env_choice() {
    let Ok(expect) = std::env::var("EXPECT") else {
        common::skip("child-process helper: runs under its parent test");
        return;
    };
    let built = Runtime::builder().workers(1).build();
    match expect.as_str() {
        "error" => assert!(built.unwrap_err().to_string().contains("HOOP_DRIVER")),
        kind => {
            let rt = built.unwrap();
            assert_eq!(rt.info().driver.to_string(), kind);
            assert!(
                rt.info().reason.starts_with("HOOP_DRIVER="),
                "{}",
                rt.info().reason
            );
        }
    }
}

/// A real seccomp filter makes `io_uring_setup` fail, as Docker's default profile does: the
/// runtime falls back to epoll and works.
#[test]
fn seccomp_denied_io_uring_falls_back_to_epoll() {
    common::run_child("child_under_seccomp", &[("SECCOMP_ERRNO", "EPERM")]);
    common::run_child("child_under_seccomp", &[("SECCOMP_ERRNO", "ENOSYS")]);
}

#[test]
fn child_under_seccomp() {
    let errno = match std::env::var("SECCOMP_ERRNO").as_deref() {
        Ok("EPERM") => libc::EPERM,
        Ok("ENOSYS") => libc::ENOSYS,
        _ => {
            common::skip("child-process helper: runs under its parent test");
            return;
        }
    };
    common::deny_syscall(libc::SYS_io_uring_setup, errno).unwrap();
    let rt = Runtime::builder().workers(2).build().unwrap();
    assert_eq!(rt.info().driver, DriverKind::Epoll);
    assert!(rt.info().reason.contains("unavailable"));
    let out = rt.run(|_| async {
        let (r, w) = hoop::io::pipe().unwrap();
        w.write_all(b"seccomp".to_vec()).await.0.unwrap();
        let (n, buf) = r.read(vec![0; 16]).await;
        buf[..n.unwrap()].to_vec()
    });
    assert_eq!(out, vec![b"seccomp".to_vec(), b"seccomp".to_vec()]);
    let err = Runtime::builder()
        .workers(1)
        .driver(DriverChoice::IoUring)
        .build()
        .unwrap_err();
    assert_eq!(err.raw_os_error(), None, "wrapped with context: {err}");
    assert!(err.to_string().contains("unavailable"));
}

/// Pipe I/O and a timed wait: every kind of enter the worker makes (and allowed on a ring
/// restricted to file I/O).
fn exercise(rt: &Runtime) {
    rt.block_on(async {
        let (r, w) = hoop::io::pipe().unwrap();
        let (res, _) = w.write(b"x".to_vec()).await;
        res.unwrap();
        let (res, buf) = r.read(Vec::with_capacity(1)).await;
        assert_eq!((res.unwrap(), &buf[..]), (1, &b"x"[..]));
        hoop::time::sleep(std::time::Duration::from_millis(2)).await;
    });
}

/// The worker enters its ring by a registered index (no fd lookup per enter); the registration
/// is released with the runtime — the thread's table has 16 slots, so 40 runtimes in a row
/// would run out if it were not — and a thread with more live rings than slots enters the
/// others by fd. Restricted rings release theirs too (the unregister call is on their
/// allowlist).
#[test]
fn ring_fd_is_registered_and_released_with_its_runtime() {
    if common::io_uring_denied() {
        return;
    }
    let build = || {
        Runtime::builder()
            .workers(1)
            .driver(DriverChoice::IoUring)
            .build()
            .unwrap()
    };
    if !common::kernel_at_least((5, 18)) {
        // No ring fd registration (5.18): every enter goes by fd, and the runtime works.
        let rt = build();
        assert!(!rt.info().uring_setup.contains("REGISTERED_RING_FD"));
        rt.block_on(hoop::io::nop()).unwrap();
        return;
    }
    assert!(build().info().uring_setup.contains("REGISTERED_RING_FD"));
    for i in 0..40 {
        let rt = if i % 2 == 0 {
            build()
        } else {
            Runtime::builder()
                .workers(1)
                .driver(DriverChoice::IoUring)
                .restrict_to(&[hoop::OpClass::Files])
                .build()
                .unwrap()
        };
        assert!(
            rt.info().uring_setup.contains("REGISTERED_RING_FD"),
            "{}",
            rt.info().uring_setup
        );
        exercise(&rt);
    }
    let live: Vec<Runtime> = (0..20).map(|_| build()).collect();
    let registered = live
        .iter()
        .filter(|rt| rt.info().uring_setup.contains("REGISTERED_RING_FD"))
        .count();
    assert_eq!(registered, 16, "the kernel's per-thread table has 16 slots");
    for rt in &live {
        exercise(rt);
    }
}
