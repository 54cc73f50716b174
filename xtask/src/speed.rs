//! Criterion benches collected into one table with the machine described.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use seg_viz::Table;

use crate::{BenchArgs, workspace_root};

/// Bench targets that stay cheap (run by `--quick`); the others run full-size models.
const QUICK_BENCHES: [&str; 2] = ["nsd", "data_pipeline"];

pub fn run(args: &BenchArgs) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root())
        .args(["bench", "-p", "medclipseg-benches"]);
    if args.quick {
        for b in QUICK_BENCHES {
            command.args(["--bench", b]);
        }
    }
    let status = command.status().context("cannot run cargo bench")?;
    if !status.success() {
        bail!("cargo bench failed");
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    let mut rows = Vec::new();
    let root = target.join("criterion");
    collect(&root, &root, &mut rows)?;
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut table = Table::new([
        "benchmark",
        "mean (ms)",
        "95% CI low (ms)",
        "95% CI high (ms)",
    ]);
    for (name, mean, lo, hi) in &rows {
        table.push_row(vec![
            name.clone(),
            format!("{mean:.3}"),
            format!("{lo:.3}"),
            format!("{hi:.3}"),
        ])?;
    }
    let machine = describe_machine();
    let md = format!("# Speed\n\n{machine}\n\n{}", table.to_markdown());
    seg_viz::write_atomic(&args.out.join("speed.md"), md.as_bytes())?;
    seg_viz::write_atomic(&args.out.join("speed.csv"), table.to_csv().as_bytes())?;
    eprintln!("{md}");
    Ok(())
}

/// `(name, mean, ci_low, ci_high)` in ms from every `new/estimates.json` under `dir`, named by
/// their path below `root` (`group/bench`).
fn collect(root: &Path, dir: &Path, rows: &mut Vec<(String, f64, f64, f64)>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let estimates = path.join("new").join("estimates.json");
        if estimates.is_file() {
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&estimates)?)?;
            let mean = &v["mean"];
            let ms = |x: &serde_json::Value| x.as_f64().unwrap_or(f64::NAN) / 1e6;
            let name = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            rows.push((
                name,
                ms(&mean["point_estimate"]),
                ms(&mean["confidence_interval"]["lower_bound"]),
                ms(&mean["confidence_interval"]["upper_bound"]),
            ));
        } else if path.is_dir() && path.file_name().is_some_and(|n| n != "report") {
            collect(root, &path, rows)?;
        }
    }
    Ok(())
}

fn describe_machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or("unknown".into(), |kb| {
            format!("{:.1} GiB", kb / 1024.0 / 1024.0)
        });
    format!(
        "Machine: {cpu}, {cores} cores available, {memory} RAM, `{}`.",
        std::env::consts::ARCH
    )
}
