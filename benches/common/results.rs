//! Results the harness-less benches leave for `benches/report.rs`: one CSV per bench under
//! `target/hoop-bench/`, one row per measured workload.

#![allow(dead_code)] // each bench uses part of it

use std::io::Write;
use std::path::PathBuf;

/// Where the benches write their CSVs.
pub fn dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target")));
    target.join("hoop-bench")
}

/// One workload measured on hoop and on tokio in the same run. `higher_is_better` says how to
/// read the values (requests/s: yes; CPU ns per request: no).
pub struct Row {
    pub workload: String,
    pub unit: &'static str,
    pub hoop: f64,
    pub tokio: f64,
    pub higher_is_better: bool,
}

/// Replaces `target/hoop-bench/<bench>.csv` with `rows`.
pub fn write(bench: &str, rows: &[Row]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir())?;
    let mut f = std::fs::File::create(dir().join(format!("{bench}.csv")))?;
    writeln!(f, "workload,unit,hoop,tokio,higher_is_better")?;
    for r in rows {
        assert!(!r.workload.contains(','), "a workload label is a CSV field");
        writeln!(
            f,
            "{},{},{},{},{}",
            r.workload, r.unit, r.hoop, r.tokio, r.higher_is_better
        )?;
    }
    Ok(())
}

/// Replaces `target/hoop-bench/<bench>.md`: a bench's own table (e.g. with more servers than
/// hoop and tokio), which `report` appends to `results.md`.
pub fn write_md(bench: &str, markdown: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir())?;
    std::fs::write(dir().join(format!("{bench}.md")), markdown)
}
