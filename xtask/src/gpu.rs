//! `cargo xtask bench --gpu`: builds `medclipseg` with a GPU backend and runs `medclipseg bench`
//! (one pass, MC inference, a training step, the device memory pool) with the full-size model,
//! then writes the report as JSON and Markdown. `--quick` runs the micro model instead: a
//! correctness check of the GPU code path (Mesa's llvmpipe is enough), not a timing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{BenchArgs, build_binary};

/// The `medclipseg bench` arguments of a `--gpu` run.
pub fn bench_arguments(args: &BenchArgs, json: &Path) -> Vec<String> {
    let mut out: Vec<String> = vec![
        "bench".into(),
        "--device".into(),
        args.device.clone(),
        "--json".into(),
        json.display().to_string(),
    ];
    if args.quick {
        let quick = [
            "--model-config",
            "micro",
            "--tokens",
            "16",
            "--samples",
            "4",
            "--train-batch",
            "2",
            "--runs",
            "1",
        ];
        out.extend(quick.iter().map(|s| s.to_string()));
    } else {
        out.extend([
            "--model-config".into(),
            args.model_config.clone(),
            "--runs".into(),
            args.runs.to_string(),
        ]);
    }
    out
}

/// Builds the GPU binary, runs the benchmark, writes `gpu_bench.{json,md}` under `args.out`.
pub fn run(args: &BenchArgs) -> Result<PathBuf> {
    if !["cuda", "wgpu"].contains(&args.gpu_backend.as_str()) {
        bail!("--gpu-backend {:?}: use cuda or wgpu", args.gpu_backend);
    }
    let features = ["--no-default-features", "--features", &args.gpu_backend];
    let binary = build_binary(&features, !args.debug)?;
    let json = args.out.join("gpu_bench.json");
    let output = Command::new(&binary)
        .args(bench_arguments(args, &json))
        .env(
            "XDG_RUNTIME_DIR",
            std::env::var("XDG_RUNTIME_DIR").unwrap_or("/tmp".into()),
        )
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        bail!("medclipseg bench failed ({})", output.status);
    }
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    print!("{table}");
    let markdown = format!(
        "# GPU benchmark\n\n{} · {} build · `{}`\n\n{table}",
        gpu_name().unwrap_or_else(|| "no NVIDIA GPU found by nvidia-smi".into()),
        if args.debug { "debug" } else { "release" },
        std::iter::once(binary.display().to_string())
            .chain(bench_arguments(args, &json))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let md = args.out.join("gpu_bench.md");
    std::fs::write(&md, markdown).with_context(|| format!("{}: cannot write", md.display()))?;
    Ok(json)
}

/// The GPU's name from `nvidia-smi`, when there is one.
fn gpu_name() -> Option<String> {
    let out = Command::new("nvidia-smi")
        .args(["--query-gpu=name,driver_version", "--format=csv,noheader"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: BenchArgs,
    }

    #[test]
    fn quick_gpu_runs_the_micro_model_once() {
        let args = Wrapper::parse_from(["x", "--gpu", "--quick", "--device", "cpu"]).args;
        let line = bench_arguments(&args, Path::new("o.json")).join(" ");
        assert!(
            line.starts_with("bench --device cpu --json o.json"),
            "{line}"
        );
        assert!(line.contains("--model-config micro") && line.contains("--runs 1"));
    }

    #[test]
    fn full_gpu_runs_the_paper_model() {
        let args = Wrapper::parse_from(["x", "--gpu", "--runs", "7"]).args;
        let line = bench_arguments(&args, Path::new("o.json")).join(" ");
        assert!(
            line.contains("--model-config unimedclip-vit-b16 --runs 7"),
            "{line}"
        );
        assert_eq!(args.gpu_backend, "cuda");
    }
}
