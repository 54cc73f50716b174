//! `medclipseg bench`: times one stochastic pass, Monte-Carlo inference of one image and a
//! training step of a model with random weights on the compiled-in backend, and reads the
//! device's memory pool after each. `cargo xtask bench --gpu` builds the GPU binary and runs it;
//! docs/performance.md holds the numbers.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use medclipseg_model::MedClipSegConfig;
use medclipseg_model::workloads::{Inference, Training, WorkloadConfig};
use serde::Serialize;

use crate::backend::{self, DeviceMemory, Inner, Train};
use crate::store::write_json;

/// What `medclipseg bench` measures.
#[derive(Debug, Clone)]
pub struct BenchRequest {
    /// Model preset (full size: `unimedclip-vit-b16`).
    pub preset: String,
    /// `--device`.
    pub device: String,
    /// Timed runs of each workload (after one untimed warm-up run).
    pub runs: usize,
    /// Workload sizes.
    pub sizes: WorkloadConfig,
    /// Also write the report here as JSON; [`JSON_TO_STDOUT`] prints it instead of the table.
    pub json: Option<PathBuf>,
}

/// The `--json` value meaning stdout (what a bare `--json` gives).
pub const JSON_TO_STDOUT: &str = "-";

/// Timings of one workload, in seconds.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// The untimed first run (kernel compilation, autotuning, allocation).
    pub warmup: f64,
    /// Every timed run.
    pub runs: Vec<f64>,
    /// Fastest timed run.
    pub min: f64,
    /// Median timed run.
    pub median: f64,
    /// The memory pool after the runs (GPU backends).
    pub memory: Option<DeviceMemory>,
}

/// Everything `medclipseg bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Backend of this build.
    pub backend: &'static str,
    /// Device used.
    pub device: String,
    /// Model preset.
    pub preset: String,
    /// Where the adapter noise came from.
    pub noise_source: String,
    /// f32 matmul precision (`precise` or `tf32`).
    pub precision: String,
    /// Prompt length.
    pub tokens: usize,
    /// Monte-Carlo samples.
    pub samples: usize,
    /// Training batch.
    pub train_batch: usize,
    /// One stochastic pass at batch 1.
    pub forward: Timing,
    /// Monte-Carlo inference of one image.
    pub mc: Timing,
    /// One training step (forward, losses, backward, Adam).
    pub train: Timing,
}

/// Runs the benchmark and prints a table.
pub fn run(request: &BenchRequest) -> Result<BenchReport> {
    if request.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if request.sizes.samples == 0 {
        bail!("--samples must be at least 1");
    }
    let model = MedClipSegConfig::preset(&request.preset).with_context(|| {
        format!(
            "unknown preset {:?}: use one of {}",
            request.preset,
            medclipseg_model::PRESETS.join(", ")
        )
    })?;
    model
        .validate()
        .map_err(|e| anyhow::anyhow!("preset {}: {e}", request.preset))?;
    let device = backend::device(&request.device)?;
    let noise = || backend::noise::<Inner>(0, 0, &device);
    tracing::info!(
        "{} on {} ({}), {} timed runs each",
        request.preset,
        backend::name(),
        request.device,
        request.runs
    );

    let mut inference = Inference::<Inner>::new(&model, &request.sizes, noise(), &device);
    let forward = time("forward", request.runs, &device, || {
        inference.forward();
        Ok(())
    })?;
    let mc = time("mc", request.runs, &device, || {
        inference.mc().context("no Monte-Carlo sample")?;
        Ok(())
    })?;
    drop(inference);
    release(&device);

    let train_noise = backend::noise::<Train>(0, 0, &device);
    let mut training = Training::<Train>::new(&model, &request.sizes, train_noise, &device);
    let train = time("train", request.runs, &device, || {
        training.step()?;
        Ok(())
    })?;

    let report = BenchReport {
        backend: backend::name(),
        device: request.device.clone(),
        preset: request.preset.clone(),
        noise_source: format!("{:?}", backend::noise_source()).to_lowercase(),
        precision: format!("{:?}", backend::precision()).to_lowercase(),
        tokens: request.sizes.tokens,
        samples: request.sizes.samples,
        train_batch: request.sizes.train_batch,
        forward,
        mc,
        train,
    };
    match request.json.as_deref() {
        // `--json` alone: the report is the only thing on stdout.
        Some(path) if path == Path::new(JSON_TO_STDOUT) => {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Some(path) => {
            print_table(&report);
            write_json(path, &report)?;
        }
        None => print_table(&report),
    }
    Ok(report)
}

/// Frees the pool between workloads, so that each one's reading is its own.
fn release(device: &backend::Device) {
    <Inner as burn::tensor::backend::Backend>::memory_cleanup(device);
}

/// One untimed warm-up run, then `runs` timed ones; every run ends on the host, so the device
/// has finished when the clock stops.
fn time(
    name: &str,
    runs: usize,
    device: &backend::Device,
    mut work: impl FnMut() -> Result<()>,
) -> Result<Timing> {
    let start = Instant::now();
    work().with_context(|| format!("{name}: warm-up run"))?;
    let warmup = start.elapsed().as_secs_f64();
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs {
        let start = Instant::now();
        work().with_context(|| format!("{name}: run {i}"))?;
        times.push(start.elapsed().as_secs_f64());
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    tracing::info!(
        "{name}: warm-up {warmup:.3} s, min {:.4} s, median {:.4} s",
        sorted[0],
        sorted[runs / 2]
    );
    Ok(Timing {
        warmup,
        min: sorted[0],
        median: sorted[runs / 2],
        runs: times,
        memory: backend::device_memory(device),
    })
}

fn print_table(report: &BenchReport) {
    let memory = |t: &Timing| match t.memory {
        Some(m) => format!("{:.2} GiB", m.reserved as f64 / (1u64 << 30) as f64),
        None => "-".into(),
    };
    println!(
        "| workload ({} on {}, {}) | min | median | warm-up | device pool |",
        report.preset, report.backend, report.device
    );
    println!("| --- | --- | --- | --- | --- |");
    for (name, t) in [
        ("one pass, batch 1".to_string(), &report.forward),
        (format!("MC-{} of one image", report.samples), &report.mc),
        (
            format!("training step, batch {}", report.train_batch),
            &report.train,
        ),
    ] {
        println!(
            "| {name} | {:.4} s | {:.4} s | {:.2} s | {} |",
            t.min,
            t.median,
            t.warmup,
            memory(t)
        );
    }
}
