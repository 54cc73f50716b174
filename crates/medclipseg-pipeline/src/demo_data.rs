//! The embedded default's data: the synthetic dataset `medclipseg demo` generates before it
//! trains [`crate::RunConfig::demo`], so that a program or a test regenerates the same images.

use med_datasets::SynthConfig;
use med_datasets::synth::ShiftedConfig;

/// The demo's synthetic dataset for a model of `image_size` pixels, drawn from `seed` (the
/// run's `train.seed`): 600 / 60 / 100 train / val / test images and a shifted-domain test split
/// of 100 (`quick`, the smoke test: 48 / 8 / 12 and 12).
pub fn demo_synth_config(image_size: usize, quick: bool, seed: u64) -> SynthConfig {
    let (train, val, test) = if quick { (48, 8, 12) } else { (600, 60, 100) };
    SynthConfig {
        seed,
        image_size,
        train,
        val,
        test,
        shifted: Some(ShiftedConfig {
            test,
            ..ShiftedConfig::default()
        }),
        ..SynthConfig::default()
    }
}
