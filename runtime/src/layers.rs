//! The layering rules of the runtime's modules, checked against their `crate::` imports: the
//! module map of DESIGN.md, as a table of what each module may import. An import the table does
//! not allow, a module it does not know, or an import circle fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each module may import (DESIGN.md's module map, bottom to top).
const ALLOWED: &[(&str, &[&str])] = &[
    // Leaves.
    ("log", &[]),
    ("sync", &[]),
    ("sys", &[]),
    ("coop", &[]),
    ("fd", &[]),
    ("creds", &["log"]),
    // Below the driver.
    ("blocking", &["sys", "sync", "log"]),
    ("time", &[]),
    ("task", &["coop", "sync", "log"]),
    // The driver.
    ("driver", &["blocking", "coop", "fd", "creds", "log"]),
    // Operations and buffers.
    ("buf", &["driver", "log"]),
    ("op", &["driver", "buf", "fd", "creds", "log"]),
    // Above.
    (
        "io",
        &["op", "buf", "coop", "fd", "time", "rt", "task", "log"],
    ),
    (
        "rt",
        &[
            "blocking", "buf", "coop", "creds", "driver", "fd", "log", "op", "sync", "sys", "task",
            "time",
        ],
    ),
    ("metrics", &["rt"]),
    ("signal", &["op", "fd", "sys"]),
];

/// Imports that must not exist, named in the issue that set the layers: (from, to). Implied by
/// `ALLOWED`; listed so that a change to the table cannot quietly allow them.
const FORBIDDEN: &[(&str, &str)] = &[
    ("driver", "op"),
    ("driver", "rt"),
    ("blocking", "driver"),
    ("blocking", "rt"),
    ("task", "rt"),
    ("time", "rt"),
];

fn src() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))
}

/// False (and the skip recorded) where the test binary runs without the sources it reads: a
/// copy in the old-kernel guest.
pub(crate) fn sources_here() -> bool {
    let here = src().join("lib.rs").exists();
    if !here {
        crate::diagnostics::record_skip("the runtime's sources are not on this machine");
    }
    here
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`lib` for the crate root).
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Code without comment lines (doc links name modules without importing them) and without
/// in-file test modules.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level module each item the crate root re-exports comes from (`crate::spawn` is
/// `rt`'s).
fn root_reexports(modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let lib = code_of(&std::fs::read_to_string(src().join("lib.rs")).unwrap());
    let mut map = BTreeMap::new();
    for stmt in lib.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let module = rest.split("::").next().unwrap_or("").trim();
        if !modules.contains(module) {
            continue;
        }
        for name in rest.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if !name.is_empty() && name != module {
                map.insert(name.to_string(), module.to_string());
            }
        }
    }
    map
}

/// Module → the modules it imports.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let reexports = root_reexports(&modules);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = module_of(file);
        if from == "lib" || from == "loom_models" || from == "layers" {
            continue;
        }
        let text = code_of(&std::fs::read_to_string(file).unwrap());
        let edges = graph.entry(from.clone()).or_default();
        for (at, _) in text.match_indices("crate::") {
            let name: String = text[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let to = if modules.contains(&name) {
                Some(name)
            } else {
                reexports.get(&name).cloned()
            };
            if let Some(to) = to.filter(|to| *to != from && to != "lib") {
                edges.insert(to);
            }
        }
    }
    graph
}

/// A circle in `graph`, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_runtime_modules_import_each_other_in_layers() {
    if !sources_here() {
        return;
    }
    let graph = imports();
    assert!(
        graph.get("op").is_some_and(|e| e.contains("driver")),
        "the scan found no op -> driver import: {graph:?}"
    );
    let allowed = |from: &str, to: &str| {
        ALLOWED
            .iter()
            .find(|(m, _)| *m == from)
            .is_some_and(|(_, ok)| ok.contains(&to))
    };
    for (from, to) in FORBIDDEN {
        assert!(!allowed(from, to), "the table allows {from} -> {to}");
    }
    let unknown: Vec<_> = graph
        .keys()
        .filter(|m| !ALLOWED.iter().any(|(a, _)| a == m))
        .collect();
    assert!(
        unknown.is_empty(),
        "modules missing from the layer table: {unknown:?}"
    );
    let broken: Vec<_> = graph
        .iter()
        .flat_map(|(from, to)| to.iter().map(move |t| (from.clone(), t.clone())))
        .filter(|(from, to)| !allowed(from, to))
        .collect();
    assert!(
        broken.is_empty(),
        "imports against the layering: {broken:?}\n{graph:#?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import circle: {}\n{graph:#?}", cycle.join(" -> "));
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert!(find_cycle(&g).is_some());
}

/// `hoop-net` sends files through `AsSharedFd` and does not depend on `hoop-fs`.
#[test]
fn net_does_not_depend_on_fs() {
    if !sources_here() {
        return;
    }
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../net/Cargo.toml");
    let text = std::fs::read_to_string(manifest).unwrap();
    assert!(text.contains("hoop-runtime"), "read the wrong manifest");
    assert!(
        !text.contains("hoop-fs"),
        "hoop-net depends on hoop-fs again"
    );
}
