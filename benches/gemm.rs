//! The f32 matrix product alone, at the shapes that carry a MedCLIPSeg pass: the ceiling the
//! whole model cannot beat on a CPU. Throughput is reported in FLOP/s (criterion's "elem/s"
//! with one element per floating-point operation, 2·M·N·K per product).
//!
//! `cargo bench -p medclipseg-benches --bench gemm` (`RAYON_NUM_THREADS=1|2` for the threads)

#[cfg(not(any(feature = "flex", feature = "ndarray")))]
compile_error!("the gemm bench needs a CPU backend: enable `flex` or `ndarray`");

use std::hint::black_box;
use std::time::Duration;

use burn::prelude::*;
use burn::tensor::Distribution;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use medclipseg_benches::backend::{self, Cpu};

/// `[M, K] × [K, N]`: BERT's MLP at 256 tokens, batch 1 and an MC chunk of 8.
const SHAPES: [(&str, usize, usize, usize); 2] = [
    ("bert_mlp_1x256", 256, 768, 3072),
    ("bert_mlp_8x256", 2048, 768, 3072),
];

fn products(c: &mut Criterion) {
    let device = Default::default();
    let mut group = c.benchmark_group(format!("gemm/{}", backend::name()));
    group
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(5));
    for (name, m, k, n) in SHAPES {
        let a = Tensor::<Cpu, 2>::random([m, k], Distribution::Default, &device);
        let b = Tensor::<Cpu, 2>::random([k, n], Distribution::Default, &device);
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        group.bench_function(name, |bench| {
            bench.iter(|| black_box(a.clone().matmul(b.clone()).into_data()))
        });
    }
    group.finish();
}

criterion_group!(benches, products);
criterion_main!(benches);
