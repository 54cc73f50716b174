//! `cargo xtask bench`: speed benchmarks and the paper's ablations as one command.
//!
//! - Speed: runs the criterion benches of `benches/` and collects their estimates into a
//!   Markdown + CSV table with the machine described.
//! - Ablations: trains and evaluates every row of the paper's ablation tables with the
//!   `medclipseg` binary (release build), on the synthetic data by default or on real dataset
//!   folders (`--data-root`), and writes the tables (Markdown + CSV) and the plots (PNG).

mod ablation;
mod speed;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "MedCLIPSeg-rs project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Speed benchmarks and the paper's ablations.
    Bench(BenchArgs),
}

/// Options of `cargo xtask bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Small model, few steps, synthetic data: about 15 minutes on 2 CPU cores.
    #[arg(long)]
    pub quick: bool,
    /// Real data root (packaged layout); the ablations then train on `--source` and test on its
    /// DG targets. Without it the synthetic data are generated.
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Source dataset for real-data ablations.
    #[arg(long, default_value = "BUSI")]
    pub source: String,
    /// Backbone checkpoint for real-data ablations (UniMedCLIP).
    #[arg(long)]
    pub backbone: Option<PathBuf>,
    /// BERT vocabulary for real-data ablations.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Output folder of tables and plots.
    #[arg(long, default_value = "target/xtask-bench")]
    pub out: PathBuf,
    /// Skip the criterion benches.
    #[arg(long)]
    pub skip_speed: bool,
    /// Skip the ablations.
    #[arg(long)]
    pub skip_ablations: bool,
    /// Only these ablation rows (comma-separated ids, e.g. `full,no-gating`).
    #[arg(long)]
    pub only: Option<String>,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Task::Bench(args) => bench(&args),
    }
}

fn bench(args: &BenchArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create", args.out.display()))?;
    if !args.skip_ablations {
        let binary = build_binary()?;
        ablation::run(args, &binary)?;
    }
    if !args.skip_speed {
        speed::run(args)?;
    }
    eprintln!("results in {}", args.out.display());
    Ok(())
}

/// The workspace root (xtask lives in `<root>/xtask`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Builds the release `medclipseg` binary and returns its path.
fn build_binary() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["build", "--release", "-p", "medclipseg"])
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("building medclipseg failed");
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    Ok(target.join("release").join("medclipseg"))
}
