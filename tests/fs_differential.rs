//! Differential test: random sequences of filesystem operations run through `std::fs` in one
//! directory and through `hoop::fs` in another must give the same results (success, or the same
//! OS error) at every step and leave identical trees (names, types, sizes, modes, link counts,
//! contents, symlink targets) — on both drivers, and under `HOOP_NO_OPENAT2` on the path walk.

use hoop::fs as hfs;
use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[path = "common/mod.rs"]
mod common;

use common::Rng;

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let len = [0, 1, 100, 4096, 5000, 70_000][rng.below(6)];
    let b = rng.next() as u8;
    (0..len).map(|i| b.wrapping_add(i as u8)).collect()
}

/// A small namespace, so that operations collide often (existing targets, non-empty
/// directories, missing parents, files where directories are expected).
const NAMES: &[&str] = &[
    "f1", "f2", "d1", "d2", "d1/f3", "d1/d3", "d1/d3/f4", "d2/f5", "l1", "d1/l2", "l1/f3",
];

#[derive(Debug, Clone)]
enum Step {
    Write(String, Vec<u8>),
    WriteAt(String, u64, Vec<u8>),
    SetLen(String, u64),
    CreateDir(String),
    CreateDirAll(String),
    RemoveFile(String),
    RemoveDir(String),
    RemoveDirAll(String),
    Rename(String, String),
    HardLink(String, String),
    Symlink(String, String),
    SetMode(String, u32),
    Copy(String, String),
    Read(String),
    ReadLink(String),
    Metadata(String),
    SymlinkMetadata(String),
    TryExists(String),
    ReadDir(String),
}

fn random_step(rng: &mut Rng) -> Step {
    let a = rng.pick(NAMES).to_string();
    let b = rng.pick(NAMES).to_string();
    match rng.below(19) {
        0 | 1 => Step::Write(a, random_bytes(rng)),
        2 => Step::WriteAt(a, rng.below(10_000) as u64, random_bytes(rng)),
        3 => Step::SetLen(a, rng.below(100_000) as u64),
        4 => Step::CreateDir(a),
        5 => Step::CreateDirAll(a),
        6 => Step::RemoveFile(a),
        7 => Step::RemoveDir(a),
        8 => Step::RemoveDirAll(a),
        9 => Step::Rename(a, b),
        10 => Step::HardLink(a, b),
        // Symlink targets are relative names: the same text works in both trees.
        11 => Step::Symlink(
            rng.pick(&["f1", "d1", "../f2", "nope", "d1/f3"])
                .to_string(),
            a,
        ),
        12 => Step::SetMode(a, [0o600, 0o644, 0o755, 0o700, 0o444][rng.below(5)]),
        13 => Step::Copy(a, b),
        14 => Step::Read(a),
        15 => Step::ReadLink(a),
        16 => Step::Metadata(a),
        17 => Step::SymlinkMetadata(a),
        _ => {
            if rng.below(2) == 0 {
                Step::TryExists(a)
            } else {
                Step::ReadDir(a)
            }
        }
    }
}

/// What a step gave, in a form both sides can be compared with: a value, or the errno (the
/// error kind for errors std makes up without one).
type Outcome = Result<String, String>;

fn errno(e: io::Error) -> String {
    match hfs::os_error(&e) {
        Some(code) => format!("errno {code}"),
        None => format!("{:?}", e.kind()),
    }
}

fn meta_summary(len: u64, is_dir: bool, is_symlink: bool, mode: u32, nlink: u64) -> String {
    // Directory sizes are filesystem details; compare them as 0.
    let len = if is_dir { 0 } else { len };
    format!("len={len} dir={is_dir} link={is_symlink} mode={mode:o} nlink={nlink}")
}

fn run_std(root: &Path, step: &Step) -> Outcome {
    use std::fs;
    let p = |s: &str| root.join(s);
    let r: io::Result<String> = match step {
        Step::Write(a, data) => fs::write(p(a), data).map(|_| String::new()),
        Step::WriteAt(a, off, data) => (|| {
            use std::os::unix::fs::FileExt;
            let f = fs::OpenOptions::new().write(true).open(p(a))?;
            f.write_all_at(data, *off).map(|_| String::new())
        })(),
        Step::SetLen(a, n) => (|| {
            let f = fs::OpenOptions::new().write(true).open(p(a))?;
            f.set_len(*n).map(|_| String::new())
        })(),
        Step::CreateDir(a) => fs::create_dir(p(a)).map(|_| String::new()),
        Step::CreateDirAll(a) => fs::create_dir_all(p(a)).map(|_| String::new()),
        Step::RemoveFile(a) => fs::remove_file(p(a)).map(|_| String::new()),
        Step::RemoveDir(a) => fs::remove_dir(p(a)).map(|_| String::new()),
        Step::RemoveDirAll(a) => fs::remove_dir_all(p(a)).map(|_| String::new()),
        Step::Rename(a, b) => fs::rename(p(a), p(b)).map(|_| String::new()),
        Step::HardLink(a, b) => fs::hard_link(p(a), p(b)).map(|_| String::new()),
        Step::Symlink(t, a) => std::os::unix::fs::symlink(t, p(a)).map(|_| String::new()),
        Step::SetMode(a, m) => {
            fs::set_permissions(p(a), fs::Permissions::from_mode(*m)).map(|_| String::new())
        }
        Step::Copy(a, b) => fs::copy(p(a), p(b)).map(|n| n.to_string()),
        Step::Read(a) => fs::read(p(a)).map(|d| format!("{} bytes {:?}", d.len(), d.first())),
        Step::ReadLink(a) => fs::read_link(p(a)).map(|t| t.display().to_string()),
        Step::Metadata(a) => fs::metadata(p(a))
            .map(|m| meta_summary(m.len(), m.is_dir(), m.is_symlink(), m.mode(), m.nlink())),
        Step::SymlinkMetadata(a) => fs::symlink_metadata(p(a)).map(|m| {
            let t = m.file_type();
            meta_summary(m.len(), t.is_dir(), t.is_symlink(), m.mode(), m.nlink())
        }),
        Step::TryExists(a) => p(a).try_exists().map(|b| b.to_string()),
        Step::ReadDir(a) => fs::read_dir(p(a)).and_then(|rd| {
            let mut names = rd
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<io::Result<Vec<_>>>()?;
            names.sort();
            Ok(names.join(","))
        }),
    };
    r.map_err(errno)
}

async fn run_hoop(root: &Path, step: &Step) -> Outcome {
    let p = |s: &str| root.join(s);
    let r: io::Result<String> = match step {
        Step::Write(a, data) => hfs::write(p(a), data).await.map(|_| String::new()),
        Step::WriteAt(a, off, data) => {
            async {
                let f = hfs::OpenOptions::new().write(true).open(p(a)).await?;
                let (r, _) = f.write_all_at(data.clone(), *off).await;
                r.map(|_| String::new())
            }
            .await
        }
        Step::SetLen(a, n) => {
            async {
                let f = hfs::OpenOptions::new().write(true).open(p(a)).await?;
                f.set_len(*n).await.map(|_| String::new())
            }
            .await
        }
        Step::CreateDir(a) => hfs::create_dir(p(a)).await.map(|_| String::new()),
        Step::CreateDirAll(a) => hfs::create_dir_all(p(a)).await.map(|_| String::new()),
        Step::RemoveFile(a) => hfs::remove_file(p(a)).await.map(|_| String::new()),
        Step::RemoveDir(a) => hfs::remove_dir(p(a)).await.map(|_| String::new()),
        Step::RemoveDirAll(a) => hfs::remove_dir_all(p(a)).await.map(|_| String::new()),
        Step::Rename(a, b) => hfs::rename(p(a), p(b)).await.map(|_| String::new()),
        Step::HardLink(a, b) => hfs::hard_link(p(a), p(b)).await.map(|_| String::new()),
        Step::Symlink(t, a) => hfs::symlink(t, p(a)).await.map(|_| String::new()),
        Step::SetMode(a, m) => hfs::set_permissions(p(a), std::fs::Permissions::from_mode(*m))
            .await
            .map(|_| String::new()),
        Step::Copy(a, b) => hfs::copy(p(a), p(b)).await.map(|n| n.to_string()),
        Step::Read(a) => hfs::read(p(a))
            .await
            .map(|d| format!("{} bytes {:?}", d.len(), d.first())),
        Step::ReadLink(a) => hfs::read_link(p(a)).await.map(|t| t.display().to_string()),
        Step::Metadata(a) => hfs::metadata(p(a))
            .await
            .map(|m| meta_summary(m.len(), m.is_dir(), m.is_symlink(), m.mode(), m.nlink())),
        Step::SymlinkMetadata(a) => hfs::symlink_metadata(p(a))
            .await
            .map(|m| meta_summary(m.len(), m.is_dir(), m.is_symlink(), m.mode(), m.nlink())),
        Step::TryExists(a) => hfs::try_exists(p(a)).await.map(|b| b.to_string()),
        Step::ReadDir(a) => {
            async {
                let mut rd = hfs::read_dir(p(a)).await?;
                let mut names = Vec::new();
                while let Some(e) = rd.next_entry().await? {
                    names.push(e.file_name().to_string_lossy().into_owned());
                }
                names.sort();
                Ok(names.join(","))
            }
            .await
        }
    };
    r.map_err(errno)
}

/// Everything observable about a tree, by relative path.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let t = m.file_type();
            let mut desc = meta_summary(m.len(), t.is_dir(), t.is_symlink(), m.mode(), m.nlink());
            if t.is_symlink() {
                desc += &format!(" -> {}", std::fs::read_link(&path).unwrap().display());
            } else if t.is_file() {
                let data = std::fs::read(&path).unwrap();
                let sum = data
                    .iter()
                    .fold(0u64, |h, &b| h.wrapping_mul(31).wrapping_add(b as u64));
                desc += &format!(" sum={sum:x}");
            } else if t.is_dir() {
                walk(root, &path, out);
            }
            out.insert(rel, desc);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[hoop::test]
async fn random_operation_sequences_match_std_fs() {
    let driver = hoop::runtime_info().unwrap().driver.to_string();
    let base = std::env::temp_dir().join(format!("hoop-diff-{driver}-{}", std::process::id()));
    let seeds: Vec<u64> = match std::env::var("HOOP_DIFF_SEED") {
        Ok(s) => vec![s.parse().expect("HOOP_DIFF_SEED is a number")],
        Err(_) => vec![1, 2, 3, 4],
    };
    let (mut ok, mut failed) = (0, 0);
    for seed in seeds {
        let _ = std::fs::remove_dir_all(&base);
        let (a, b) = (base.join("std"), base.join("hoop"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        for i in 0..300 {
            let step = random_step(&mut rng);
            let expected = run_std(&a, &step);
            let got = run_hoop(&b, &step).await;
            assert_eq!(got, expected, "seed {seed} step {i}: {step:?}");
            if expected.is_ok() {
                ok += 1;
            } else {
                failed += 1;
            }
            if i % 25 == 24 {
                assert_eq!(snapshot(&b), snapshot(&a), "seed {seed} after step {i}");
            }
        }
        assert_eq!(snapshot(&b), snapshot(&a), "seed {seed} at the end");
    }
    let _ = std::fs::remove_dir_all(&base);
    eprintln!("{ok} steps succeeded and {failed} failed identically");
    assert!(ok > 200 && failed > 200, "{ok} ok, {failed} failed");
}
