//! Dropout masks follow the backend seed (`Flex::seed`), as Burn's `Dropout` does. Alone in its
//! test binary: the seed is process-wide state that other tests' random draws would consume.

use burn::backend::{Autodiff, Flex};
use burn::nn::{DropoutConfig, LayerNormConfig};
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use clip_encoders::fast::residual_layer_norm;

type Ad = Autodiff<Flex>;

#[test]
fn the_same_seed_draws_the_same_dropout_mask() {
    let device = Default::default();
    let norm = LayerNormConfig::new(16).init::<Ad>(&device);
    let dropout = DropoutConfig::new(0.5).init();
    let x = Tensor::<Ad, 3>::random([2, 8, 16], Distribution::Normal(0.0, 1.0), &device);
    let residual = Tensor::<Ad, 3>::zeros([2, 8, 16], &device);
    let run = |seed: u64| -> TensorData {
        Flex::seed(&device, seed);
        residual_layer_norm(&norm, x.clone(), residual.clone(), &dropout).into_data()
    };
    let (first, again, other) = (run(3), run(3), run(4));
    assert_eq!(first, again);
    assert_ne!(first, other);
}
