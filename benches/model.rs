//! MedCLIPSeg at the full `unimedclip-vit-b16` preset (ViT-B/16 + BiomedBERT-base, ten PVL
//! adapters), random weights, on the CPU backend of the build:
//!
//! - `forward_1x224_256tok`: one stochastic pass of one 224² image with a 256-token prompt;
//! - `mc30_1x224`: `mc_predict` with 30 samples (the `McConfig` defaults otherwise);
//! - `train_step_b4`: one training step at batch 4 (autodiff, frozen encoders, Adam).
//!
//! `cargo bench -p medclipseg-benches --bench model [-- FILTER]`; pick the backend with
//! `--no-default-features --features ndarray` (or `openblas`), the threads with
//! `RAYON_NUM_THREADS`. `examples/model_timing.rs` runs the same workloads without criterion.

#[cfg(not(any(feature = "flex", feature = "ndarray")))]
compile_error!("the model benches need a CPU backend: enable `flex` or `ndarray`");

#[path = "workloads.rs"]
mod workloads;

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, criterion_group, criterion_main};
use medclipseg_benches::backend;
use workloads::{Inference, Training};

/// Long iterations: ten flat samples, a short warm-up.
fn slow_group(c: &mut Criterion, seconds: u64) -> BenchmarkGroup<'_, WallTime> {
    let mut group = c.benchmark_group(format!("model/{}", backend::name()));
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(seconds));
    group
}

fn inference(c: &mut Criterion) {
    let mut work = Inference::new();
    let mut group = slow_group(c, 10);
    group.bench_function("forward_1x224_256tok", |b| {
        b.iter(|| black_box(work.forward()))
    });
    group.finish();

    let mut group = slow_group(c, 60);
    group.bench_function("mc30_1x224", |b| b.iter(|| black_box(work.mc())));
    group.finish();
}

fn training(c: &mut Criterion) {
    let mut work = Training::new();
    let mut group = slow_group(c, 30);
    group.bench_function("train_step_b4", |b| b.iter(|| black_box(work.step())));
    group.finish();
}

criterion_group!(benches, inference, training);
criterion_main!(benches);
