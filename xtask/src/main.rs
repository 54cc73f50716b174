//! `cargo xtask bench`: speed benchmarks and the paper's ablations as one command.
//!
//! - Speed: runs the criterion benches of `benches/` and collects their estimates into a
//!   Markdown + CSV table with the machine described.
//! - Ablations: trains and evaluates every row of the paper's ablation tables with the
//!   `medclipseg` binary (release build), on the synthetic data by default or on real dataset
//!   folders (`--data-root`), and writes the tables (Markdown + CSV) and the plots (PNG).

mod ablation;
mod gpu;
mod speed;
mod vendor;

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
    Bench(Box<BenchArgs>),
    /// Compares `vendor/*` with the pristine crates.io sources; fails on a change PATCH.md
    /// does not name.
    CheckVendor,
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
    /// Add the backbone ablation (CLIP, BiomedCLIP, PubMedCLIP beside the full setting's
    /// UniMedCLIP): on the synthetic data, the demo-sized towers of each kind (presets
    /// `demo-clip`, `demo-biomedclip`, `demo-pubmedclip`) trained from scratch; with
    /// `--data-root`, the full presets with the weights of `--backbone-weights`.
    #[arg(long)]
    pub backbones: bool,
    /// Weights of a backbone for `--backbones` on real data, `NAME=PATH` with NAME one of
    /// clip, biomedclip, pubmedclip (repeat the option for each).
    #[arg(long = "backbone-weights", value_parser = ablation::parse_backbone_weights)]
    pub backbone_weights: Vec<(String, PathBuf)>,
    /// Only these ablation rows (comma-separated ids, e.g. `full,no-gating`).
    #[arg(long)]
    pub only: Option<String>,
    /// Measure the GPU instead: build `medclipseg` with `--gpu-backend` and time one pass, MC-30
    /// and a training step of the full-size model with the device memory (`--quick`: the micro
    /// model once, a correctness check).
    #[arg(long)]
    pub gpu: bool,
    /// Backend of `--gpu`: cuda or wgpu.
    #[arg(long, default_value = "cuda", value_parser = ["cuda", "wgpu"])]
    pub gpu_backend: String,
    /// Device of `--gpu` (cuda:N, or a wgpu device name).
    #[arg(long, default_value = "default")]
    pub device: String,
    /// Model preset of `--gpu`.
    #[arg(long, default_value = "unimedclip-vit-b16")]
    pub model_config: String,
    /// Timed runs per workload of `--gpu`.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Build the debug binary for `--gpu` (a quick correctness check, not for timings).
    #[arg(long)]
    pub debug: bool,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Task::Bench(args) => bench(&args),
        Task::CheckVendor => vendor::check(&workspace_root()),
    }
}

fn bench(args: &BenchArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create", args.out.display()))?;
    if args.gpu {
        let report = gpu::run(args)?;
        eprintln!("GPU report in {}", report.display());
        return Ok(());
    }
    if !args.skip_ablations {
        let binary = build_binary(&[], true)?;
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

/// Builds the `medclipseg` binary (release or debug) with extra cargo arguments (features)
/// and returns its path.
fn build_binary(extra: &[&str], release: bool) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root())
        .args(["build", "-p", "medclipseg"])
        .args(extra);
    if release {
        command.arg("--release");
    }
    let status = command.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("building medclipseg failed");
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    let profile = if release { "release" } else { "debug" };
    Ok(target.join(profile).join("medclipseg"))
}
