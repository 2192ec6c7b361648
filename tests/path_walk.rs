//! The component-by-component walk (used where `openat2` is missing or denied) against the
//! kernel's `openat2`: on a generated tree full of symlink traps, thousands of random paths,
//! open flags and `RESOLVE_*` combinations must give the same answer from both — the same file
//! (device and inode) or the same errno.

use hoop::fd::SharedFd;
use hoop::op::at::{c_path, At};
use hoop::op::open::OpenAt2;
use hoop::op::open_walk::OpenWalk;
use hoop::op::Op;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};

#[path = "common/mod.rs"]
mod common;

use common::Rng;

struct Tree {
    base: PathBuf,
    mounted: bool,
}

impl Drop for Tree {
    fn drop(&mut self) {
        if self.mounted {
            let mnt = c_path(&self.base.join("root/mnt")).unwrap();
            // SAFETY: a NUL-terminated path.
            unsafe { libc::umount2(mnt.as_ptr(), libc::MNT_DETACH) };
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// root/ with directories, files and symlinks that stay inside, lead outside, loop, dangle, go
/// through `..`, are absolute, point into /proc, or cross into a tmpfs mount.
fn make_tree(tag: &str) -> Tree {
    let base = std::env::temp_dir().join(format!("hoop-walk-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("root");
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::create_dir_all(base.join("outside")).unwrap();
    std::fs::write(base.join("outside/secret"), b"s").unwrap();
    std::fs::write(root.join("f"), b"f").unwrap();
    std::fs::write(root.join("a/b/g"), b"g").unwrap();
    std::fs::create_dir(root.join("mnt")).unwrap();
    let links: &[(&str, String)] = &[
        ("l_in", "a/b".into()),
        ("l_up", "../outside".into()),
        ("l_abs", root.join("a").display().to_string()),
        ("l_slash", "/a".into()),
        ("l_loop1", "l_loop2".into()),
        ("l_loop2", "l_loop1".into()),
        ("l_dangling", "nope".into()),
        ("l_dotdot", "..".into()),
        ("l_file", "f".into()),
        ("l_proc", "/proc/self/cwd".into()),
        ("l_trail", "a/".into()),
        ("a/l_parent", "../f".into()),
        ("a/b/l_deep", "../../a/b/g".into()),
        ("a/b/l_escape", "../../../outside/secret".into()),
        ("a/l_mnt", "../mnt".into()),
    ];
    for (name, target) in links {
        symlink(target, root.join(name)).unwrap();
    }
    let mnt = c_path(&root.join("mnt")).unwrap();
    // SAFETY: NUL-terminated strings; a fresh tmpfs on a directory the test owns.
    let mounted = unsafe {
        libc::mount(
            c"hoop-walk".as_ptr(),
            mnt.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            c"size=64k".as_ptr().cast(),
        )
    } == 0;
    if mounted {
        std::fs::write(root.join("mnt/m"), b"m").unwrap();
    } else {
        eprintln!("no tmpfs mount (not root?): the NO_XDEV cases cross no mount");
    }
    Tree { base, mounted }
}

const NAMES: &[&str] = &[
    "a",
    "b",
    "f",
    "g",
    "m",
    "mnt",
    "x",
    "..",
    ".",
    "l_in",
    "l_up",
    "l_abs",
    "l_slash",
    "l_loop1",
    "l_dangling",
    "l_dotdot",
    "l_file",
    "l_proc",
    "l_trail",
    "l_parent",
    "l_deep",
    "l_escape",
    "l_mnt",
];

const FLAGS: &[i32] = &[
    libc::O_RDONLY,
    libc::O_PATH,
    libc::O_RDONLY | libc::O_DIRECTORY,
    libc::O_PATH | libc::O_NOFOLLOW,
    libc::O_RDONLY | libc::O_NOFOLLOW,
    libc::O_PATH | libc::O_DIRECTORY,
];

const RESOLVE: &[u64] = &[
    libc::RESOLVE_BENEATH,
    libc::RESOLVE_IN_ROOT,
    libc::RESOLVE_NO_SYMLINKS,
    libc::RESOLVE_NO_MAGICLINKS,
    libc::RESOLVE_NO_XDEV,
];

fn random_path(rng: &mut Rng, root: &Path) -> String {
    // Mostly names that exist where they are likely to be looked up, so that both successes and
    // failures are common.
    const COMMON: &[&str] = &["a", "b", "l_in", "..", ".", "f", "g", "l_deep", "l_parent"];
    let mut parts: Vec<&str> = (0..1 + rng.below(3))
        .map(|_| match rng.below(2) {
            0 => *rng.pick(COMMON),
            _ => *rng.pick(NAMES),
        })
        .collect();
    let mut p = match rng.below(10) {
        0 => format!("{}/", root.display()),
        1 => "/".to_string(),
        _ => String::new(),
    };
    if rng.below(12) == 0 {
        parts.push(""); // a trailing slash
    }
    p.push_str(&parts.join("/"));
    if p.is_empty() {
        p.push('.');
    }
    p
}

fn random_resolve(rng: &mut Rng) -> u64 {
    let mut r = 0;
    for (i, flag) in RESOLVE.iter().enumerate() {
        // BENEATH and IN_ROOT together are refused by openat2 (EINVAL); keep at most one.
        if i == 1 && r & libc::RESOLVE_BENEATH != 0 {
            continue;
        }
        // Confinement often; the flags that refuse whole classes of paths less.
        if rng.below(if i < 2 { 2 } else { 4 }) == 0 {
            r |= flag;
        }
    }
    if r == 0 {
        libc::RESOLVE_BENEATH
    } else {
        r
    }
}

/// What an open gave: the file's identity, or the errno.
fn outcome(res: std::io::Result<SharedFd>) -> Result<(u64, u64), i32> {
    match res {
        Ok(fd) => {
            // SAFETY: `stat` is plain old data; `fd` is open for the call.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            assert_eq!(unsafe { libc::fstat(fd.raw(), &mut st) }, 0);
            Ok((st.st_dev, st.st_ino))
        }
        Err(e) => Err(e.raw_os_error().expect("an OS error")),
    }
}

#[hoop::test]
async fn walk_matches_openat2_on_random_paths() {
    let driver = hoop::runtime_info().unwrap().driver.to_string();
    let tree = make_tree(&driver);
    let root_path = tree.base.join("root");
    let root: OwnedFd = std::fs::File::open(&root_path).unwrap().into();
    let root = SharedFd::new(root);
    // HOOP_WALK_SEED explores other trees of choices; the default is what CI runs.
    let seed = std::env::var("HOOP_WALK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0000_0000_0001u64);
    let mut rng = Rng(seed);
    let (mut same_ok, mut same_err) = (0, 0);
    for case in 0..5000 {
        let path = random_path(&mut rng, &root_path);
        let flags = *rng.pick(FLAGS);
        let resolve = random_resolve(&mut rng);
        let c = c_path(Path::new(&path)).unwrap();
        let kernel =
            outcome(Op::new(OpenAt2::new(At::dir(&root), c.clone(), flags, 0, resolve)).await);
        let walk = outcome(Op::new(OpenWalk::new(At::dir(&root), c, flags, 0, resolve)).await);
        assert_eq!(
            walk, kernel,
            "case {case} (seed {seed:#x}): path {path:?} flags {flags:#o} resolve {resolve:#x}"
        );
        if kernel.is_ok() {
            same_ok += 1;
        } else {
            same_err += 1;
        }
    }
    // The generator must exercise both answers a lot, or the comparison proves little.
    eprintln!("{same_ok} opened, {same_err} refused, identically");
    assert!(
        same_ok > 500 && same_err > 500,
        "{same_ok} ok, {same_err} errors"
    );
    // The identity of the root is what a successful `.` gives.
    let meta = std::fs::metadata(&root_path).unwrap();
    let dot = outcome(
        Op::new(OpenWalk::new(
            At::dir(&root),
            c".".to_owned(),
            libc::O_PATH,
            0,
            libc::RESOLVE_BENEATH,
        ))
        .await,
    );
    assert_eq!(dot, Ok((meta.dev(), meta.ino())));
    let _ = root.raw().as_raw_fd();
}

/// Magic links (`/proc/<pid>/fd/*`, `cwd`, ...) are refused with `RESOLVE_NO_MAGICLINKS`, while
/// ordinary procfs symlinks (`/proc/self`) are followed — by both resolvers.
#[hoop::test]
async fn walk_refuses_magic_links_like_openat2() {
    let cases = [
        ("/proc/self/cwd", libc::RESOLVE_NO_MAGICLINKS),
        ("/proc/self/root/etc", libc::RESOLVE_NO_MAGICLINKS),
        ("/proc/self/fd/0", libc::RESOLVE_NO_MAGICLINKS),
        ("/proc/self/status", libc::RESOLVE_NO_MAGICLINKS),
        ("/proc/self/cwd", libc::RESOLVE_NO_XDEV),
        ("/proc/self", libc::RESOLVE_NO_SYMLINKS),
    ];
    for (path, resolve) in cases {
        let c = c_path(Path::new(path)).unwrap();
        let kernel =
            outcome(Op::new(OpenAt2::new(At::cwd(), c.clone(), libc::O_PATH, 0, resolve)).await);
        let walk = outcome(Op::new(OpenWalk::new(At::cwd(), c, libc::O_PATH, 0, resolve)).await);
        assert_eq!(walk, kernel, "{path} resolve {resolve:#x}");
    }
}

/// A seccomp profile denies `openat2` (with `ENOSYS`, as for an old kernel, and with `EPERM`,
/// as container profiles do): `Dir` and every open keep working through the walk, confinement
/// included. On io_uring the ring's OPENAT2 is not subject to seccomp, so the child uses epoll.
#[test]
fn openat2_denied_by_seccomp_falls_back_to_the_walk() {
    if std::env::var_os("HOOP_NO_OPENAT2").is_some() {
        return;
    }
    common::run_child("child_without_openat2", &[("SECCOMP_ERRNO", "ENOSYS")]);
    common::run_child("child_without_openat2", &[("SECCOMP_ERRNO", "EPERM")]);
}

#[test]
fn child_without_openat2() {
    let errno = match std::env::var("SECCOMP_ERRNO").as_deref() {
        Ok("EPERM") => libc::EPERM,
        Ok("ENOSYS") => libc::ENOSYS,
        _ => return,
    };
    let tree = make_tree(&format!("seccomp-{errno}"));
    let root = tree.base.join("root");
    common::deny_syscall(libc::SYS_openat2, errno).unwrap();
    assert!(!hoop::op::open_walk::openat2_works());
    let rt = hoop::Runtime::builder()
        .driver(hoop::DriverChoice::Epoll)
        .build()
        .unwrap();
    rt.block_on(async {
        use hoop::fs::{Dir, OpenOptions};
        let read = OpenOptions::new().read(true).clone();
        let dir = Dir::open(&root).await.unwrap();
        let f = dir.open_file("a/b/l_deep", &read).await.unwrap();
        assert_eq!(f.read_at(Vec::with_capacity(4), 0).await.1, b"g");
        for escape in [
            "../outside/secret",
            "l_up/secret",
            "a/b/l_escape",
            "/etc/passwd",
        ] {
            let err = dir.open_file(escape, &read).await.unwrap_err();
            assert_eq!(
                hoop::fs::os_error(&err),
                Some(libc::EXDEV),
                "{escape}: {err}"
            );
        }
        // Plain path functions work too.
        assert_eq!(hoop::fs::read(root.join("f")).await.unwrap(), b"f");
        dir.create_dir("new").await.unwrap();
        assert!(root.join("new").is_dir());
    });
}
