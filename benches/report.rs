//! Collects the last run of the benches — criterion's estimates (`runtime`, `fs`) and the CSVs of
//! the load benches (`echo`) — into `benches/results/results.md` (a table of hoop vs tokio, with
//! the machine) and `benches/results/chart.svg` (a bar per workload: how many times better hoop
//! is than tokio, on a log scale). Run after the benches, e.g. with `benches/compare.sh`:
//!
//! ```sh
//! cargo bench --bench report
//! ```

#[path = "common/results.rs"]
mod results;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A criterion comparison: group and the ids of hoop (io_uring) and of the baseline.
struct Criterion {
    workload: &'static str,
    path: &'static str,
    hoop: &'static str,
    baseline: &'static str,
    /// What one iteration does, to turn its time into a rate.
    per_iter: f64,
    unit: &'static str,
    /// The workload in plain words, to reproduce it outside the bench.
    how: &'static str,
}

const CRITERION: &[Criterion] = &[
    Criterion {
        workload: "spawn + join",
        path: "spawn_join",
        hoop: "hoop-io_uring",
        baseline: "tokio",
        per_iter: 1.0,
        unit: "tasks/s",
        how: "one task spawns a task that returns a number and awaits it, in a loop, on one worker; `cargo bench --bench runtime -- spawn_join`",
    },
    Criterion {
        workload: "yield ping-pong",
        path: "yield_ping_pong",
        hoop: "hoop-io_uring",
        baseline: "tokio",
        per_iter: 1.0,
        unit: "yields/s",
        how: "two tasks on one worker each call `yield_now` in a loop (a rate of one task's yields); `cargo bench --bench runtime -- yield_ping_pong`",
    },
    Criterion {
        workload: "timer insert + cancel",
        path: "timer_insert_cancel",
        hoop: "hoop-io_uring",
        baseline: "tokio",
        per_iter: 1.0,
        unit: "timers/s",
        how: "a 1–2 s `sleep` is created, polled once and dropped, in a loop; `cargo bench --bench runtime -- timer_insert_cancel`",
    },
    Criterion {
        workload: "1-byte pipe round trip",
        path: "io_round_trip/pipe_1B",
        hoop: "hoop-io_uring",
        baseline: "tokio",
        per_iter: 1.0,
        unit: "round trips/s",
        how: "one task writes a byte into a pipe and reads it from the other end, in a loop; `cargo bench --bench runtime -- io_round_trip/pipe_1B`",
    },
    Criterion {
        workload: "4 KiB random read, QD 1",
        path: "read_4k_random_qd1",
        hoop: "hoop-io_uring",
        baseline: "tokio-fs",
        per_iter: 1.0,
        unit: "IOPS",
        how: "`File::read_at` of 4 KiB at random aligned offsets of a page-cached 1 GiB file, one task in a loop (the process not pinned: `benches/fsread.rs` below is the same read as a pinned user program); `cargo bench --bench fs -- read_4k_random_qd1`",
    },
    Criterion {
        workload: "4 KiB random read, QD 32",
        path: "read_4k_random_qd32",
        hoop: "hoop-io_uring",
        baseline: "tokio-fs",
        per_iter: 1.0,
        unit: "IOPS",
        how: "the same reads from 32 tasks on one worker; `cargo bench --bench fs -- read_4k_random_qd32`",
    },
    Criterion {
        workload: "statx, 10k files",
        path: "statx_10k_files",
        hoop: "hoop-io_uring",
        baseline: "tokio-fs",
        per_iter: 10_000.0,
        unit: "statx/s",
        how: "`fs::metadata` of 10,000 empty files by 64 concurrent tasks on one worker; `cargo bench --bench fs -- statx_10k_files`",
    },
];

/// hoop against the synchronous loop a program would otherwise write (same run, same groups).
const SYNC: &[(&str, &str, &str, &str, f64, &str)] = &[
    // (workload, group, hoop id, baseline id, per iteration, unit)
    (
        "4 KiB random read, QD 1, vs pread loop",
        "read_4k_random_qd1",
        "hoop-io_uring",
        "std-pread",
        1.0,
        "IOPS",
    ),
    (
        "4 KiB random read, QD 32, vs pread loop",
        "read_4k_random_qd32",
        "hoop-io_uring",
        "std-pread",
        1.0,
        "IOPS",
    ),
    (
        "4 KiB random read, QD 1, epoll driver vs pread",
        "read_4k_random_qd1",
        "hoop-epoll",
        "std-pread",
        1.0,
        "IOPS",
    ),
    (
        "statx of 10k files vs std loop",
        "statx_10k_files",
        "hoop-io_uring",
        "std-loop",
        10_000.0,
        "statx/s",
    ),
];

/// The harness-less benches whose CSVs (hoop vs tokio rows) and markdown tables (all servers
/// they measured) the report includes, in this order.
const LOAD_BENCHES: &[&str] = &[
    "echo",
    "echo_outside",
    "hyper",
    "download",
    "small_files",
    "fsread",
    "direct",
    "recv_ring",
    "idle",
    "peers",
];

fn target() -> PathBuf {
    results::dir().parent().unwrap().to_path_buf()
}

/// Criterion's median time of one iteration, in ns.
fn criterion_median(group: &str, id: &str) -> Option<f64> {
    let path = target()
        .join("criterion")
        .join(group)
        .join(id)
        .join("new/estimates.json");
    let json = std::fs::read_to_string(path).ok()?;
    let median = &json[json.find("\"median\"")?..];
    let point = &median[median.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = point.find([',', '}'])?;
    point[..end].trim().parse().ok()
}

fn read_csv(bench: &str) -> Vec<results::Row> {
    let Ok(text) = std::fs::read_to_string(results::dir().join(format!("{bench}.csv"))) else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            Some(results::Row {
                workload: f.first()?.to_string(),
                unit: match *f.get(1)? {
                    "ns" | "ns/req" => "ns",
                    "us" => "us",
                    "ms" => "ms",
                    "GB/s" => "GB/s",
                    "GiB/s" => "GiB/s",
                    "s/GiB" => "s/GiB",
                    "B/conn" => "B/conn",
                    "IOPS" => "IOPS",
                    "reads/s" => "reads/s",
                    _ => "req/s",
                },
                hoop: f.get(2)?.parse().ok()?,
                tokio: f.get(3)?.parse().ok()?,
                higher_is_better: f.get(4)? == &"true",
            })
        })
        .collect()
}

/// hoop's advantage: > 1 means hoop is better, whatever the unit.
fn advantage(r: &results::Row) -> f64 {
    if r.higher_is_better {
        r.hoop / r.tokio
    } else {
        r.tokio / r.hoop
    }
}

fn machine() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{cpus} x {model}, Linux {}, {date}", kernel.trim())
}

fn svg(rows: &[results::Row], title: &str) -> String {
    const BAR_H: f64 = 22.0;
    const LEFT: f64 = 330.0;
    const WIDTH: f64 = 900.0;
    let plot_w = WIDTH - LEFT - 60.0;
    let top = 50.0;
    let height = top + BAR_H * rows.len() as f64 + 50.0;
    // Log2 axis from 1/4x to 32x.
    let (lo, hi) = (-2.0f64, 5.0f64);
    let x = |ratio: f64| LEFT + (ratio.log2().clamp(lo, hi) - lo) / (hi - lo) * plot_w;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="15" font-weight="bold">{}</text>"#,
        10,
        escape(title)
    );
    let axis_y = top + BAR_H * rows.len() as f64;
    for t in [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0] {
        let tx = x(t);
        let stroke = if t == 1.0 { "#333" } else { "#ddd" };
        let _ = writeln!(
            s,
            r#"<line x1="{tx:.1}" y1="{}" x2="{tx:.1}" y2="{axis_y}" stroke="{stroke}"/>"#,
            top - 5.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{tx:.1}" y="{}" text-anchor="middle">{t}x</text>"#,
            axis_y + 15.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">hoop (io_uring) vs tokio current_thread: times better (log scale; left of 1x = tokio better)</text>"#,
        LEFT + plot_w / 2.0,
        axis_y + 35.0
    );
    for (i, r) in rows.iter().enumerate() {
        let y = top + BAR_H * i as f64;
        let a = advantage(r);
        let (x0, x1) = (x(1.0).min(x(a)), x(1.0).max(x(a)));
        let color = if a >= 1.0 { "#2b7bb9" } else { "#d9534f" };
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            y + BAR_H * 0.65,
            escape(&r.workload)
        );
        let _ = writeln!(
            s,
            r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"/>"#,
            y + 3.0,
            (x1 - x0).max(1.0),
            BAR_H - 6.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}">{a:.2}x</text>"#,
            x1 + 4.0,
            y + BAR_H * 0.65
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn fmt_value(v: f64, unit: &str) -> String {
    let v = if matches!(unit, "ns" | "ms" | "B/conn") {
        format!("{v:.0}")
    } else if matches!(unit, "GB/s" | "GiB/s" | "us") {
        format!("{v:.2}")
    } else if unit == "s/GiB" {
        format!("{v:.3}")
    } else if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    };
    format!("{v} {unit}")
}

fn main() -> std::io::Result<()> {
    let mut rows = Vec::new();
    for c in CRITERION {
        let (Some(h), Some(b)) = (
            criterion_median(c.path, c.hoop),
            criterion_median(c.path, c.baseline),
        ) else {
            eprintln!("report: no criterion results for {} (skipped)", c.path);
            continue;
        };
        rows.push(results::Row {
            workload: c.workload.to_string(),
            unit: c.unit,
            hoop: c.per_iter * 1e9 / h,
            tokio: c.per_iter * 1e9 / b,
            higher_is_better: true,
        });
    }
    for bench in LOAD_BENCHES {
        rows.extend(read_csv(bench));
    }
    if rows.is_empty() {
        eprintln!("report: no results yet; run benches/compare.sh");
        return Ok(());
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results");
    std::fs::create_dir_all(&out)?;
    let machine = machine();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Machine: {machine}. One run; ratios, not absolute numbers, are the result.\n"
    );
    let _ = writeln!(md, "| workload | hoop (io_uring) | tokio | hoop vs tokio |");
    let _ = writeln!(md, "|---|---|---|---|");
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2}x {} |",
            r.workload,
            fmt_value(r.hoop, r.unit),
            fmt_value(r.tokio, r.unit),
            advantage(r),
            match advantage(r) {
                a if a >= 1.03 => "better",
                a if a <= 0.97 => "worse",
                _ => "on par",
            }
        );
    }
    let _ = writeln!(
        md,
        "\nAgainst the synchronous loop (std, on the same core; the pread loop runs QD 1):\n"
    );
    let _ = writeln!(md, "| workload | hoop | synchronous | hoop vs sync |");
    let _ = writeln!(md, "|---|---|---|---|");
    for &(workload, group, hoop, base, per_iter, unit) in SYNC {
        // The QD 32 group has no pread entry: the loop is QD 1 by nature.
        let base_group = if base == "std-pread" {
            "read_4k_random_qd1"
        } else {
            group
        };
        let (Some(h), Some(b)) = (
            criterion_median(group, hoop),
            criterion_median(base_group, base),
        ) else {
            continue;
        };
        let (h, b) = (per_iter * 1e9 / h, per_iter * 1e9 / b);
        let _ = writeln!(
            md,
            "| {workload} | {} | {} | {:.2}x |",
            fmt_value(h, unit),
            fmt_value(b, unit),
            h / b
        );
    }
    let _ = writeln!(
        md,
        "\nWhat the criterion rows measure (each against the same loop on tokio, and on std for \
         the synchronous table: a `pread` loop, a `statx` loop):\n"
    );
    for c in CRITERION {
        let _ = writeln!(md, "- {}: {}.", c.workload, c.how);
    }
    for bench in LOAD_BENCHES {
        if let Ok(table) = std::fs::read_to_string(results::dir().join(format!("{bench}.md"))) {
            let _ = writeln!(md, "\n{}", table.trim_end());
        }
    }
    std::fs::write(out.join("results.md"), &md)?;
    std::fs::write(
        out.join("chart.svg"),
        svg(&rows, &format!("hoop vs tokio — {machine}")),
    )?;
    print!("{md}");
    println!("\nwrote {}", out.join("chart.svg").display());
    Ok(())
}
