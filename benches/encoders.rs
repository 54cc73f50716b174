//! Full-size encoder towers with random weights, batch 1, on the CPU backend of the build:
//! the UniMedCLIP/OpenAI ViT-B/16 image tower (1x3x224x224) and the BiomedBERT-base text
//! tower (1x256 tokens).
//!
//! `cargo bench -p medclipseg-benches --bench encoders [--no-default-features --features ndarray]`

#[cfg(not(any(feature = "flex", feature = "ndarray")))]
compile_error!("the encoder benches need a CPU backend: enable `flex` or `ndarray`");

use std::hint::black_box;
use std::time::Duration;

use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use clip_encoders::{BertConfig, TextConfig, VisionConfig};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use medclipseg_benches::backend::{self, Cpu};

/// Prompt length of the MedCLIPSeg text tower.
const TOKENS: usize = 256;

/// Deterministic in-vocabulary token ids `[1, len]`.
fn token_ids<B: Backend>(len: usize, vocab: usize, device: &B::Device) -> Tensor<B, 2, Int> {
    let ids: Vec<i64> = (0..len)
        .map(|i| ((i * 7919 + 101) % vocab) as i64)
        .collect();
    Tensor::from_data(TensorData::new(ids, [1, len]), device)
}

fn vision_tower(c: &mut Criterion) {
    let device = Default::default();
    let vit = VisionConfig::vit_b16().init::<Cpu>(&device);
    let images = Tensor::<Cpu, 4>::random([1, 3, 224, 224], Distribution::Default, &device);
    let mut group = c.benchmark_group(format!("encoders/{}", backend::name()));
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("vit_b16_forward_1x224", |b| {
        b.iter(|| black_box(vit.forward(images.clone()).into_data()))
    });
    group.finish();
}

fn text_tower(c: &mut Criterion) {
    let device = Default::default();
    let config = BertConfig::biomedbert_base();
    let vocab = config.vocab_size;
    let bert = TextConfig::Bert(config).init::<Cpu>(&device);
    let ids = token_ids::<Cpu>(TOKENS, vocab, &device);
    let mask = Tensor::<Cpu, 2, Int>::ones([1, TOKENS], &device);
    let mut group = c.benchmark_group(format!("encoders/{}", backend::name()));
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("bert_base_forward_1x256", |b| {
        b.iter(|| black_box(bert.forward(ids.clone(), mask.clone()).into_data()))
    });
    group.finish();
}

criterion_group!(benches, vision_tower, text_tower);
criterion_main!(benches);
