//! Monte-Carlo inference and the training step's guard against non-finite losses.

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use medclipseg_model::train::{TrainBatch, reference_adam, train_step};
use medclipseg_model::{McConfig, MedClipSegConfig, Noise, mc_predict};
use seg_losses::SegLossConfig;

type B = Flex;

fn inputs<Bk: Backend>(
    device: &Bk::Device,
) -> (Tensor<Bk, 4>, Tensor<Bk, 2, Int>, Tensor<Bk, 2, Int>) {
    Bk::seed(device, 5);
    let images = Tensor::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), device);
    let ids = Tensor::from_data(
        TensorData::new(vec![2i64, 7, 9, 3, 0, 0, 2, 11, 3, 0, 0, 0], [2, 6]),
        device,
    );
    let mask = ids.clone().not_equal_elem(0).int();
    (images, ids, mask)
}

// Zero noise (one pass, no epistemic uncertainty, chunking-invariant) is tested next to
// `mc_predict` in `src/mc.rs`.

#[test]
fn seeded_monte_carlo_is_reproducible_and_uncertain() {
    let device = Default::default();
    let model = MedClipSegConfig::micro().init::<B>(&device);
    let (images, ids, mask) = inputs::<B>(&device);
    let config = McConfig::new().with_samples(6).with_max_batch(6);
    let run = |seed| {
        mc_predict(
            &model,
            images.clone(),
            ids.clone(),
            mask.clone(),
            &[0, 1],
            &config,
            &mut Noise::seeded(seed),
        )
        .unwrap()
    };
    let (a, b, c) = (run(1), run(1), run(2));
    assert_eq!(a.mean_prob.to_data(), b.mean_prob.to_data());
    assert!(
        (a.mean_prob.clone() - c.mean_prob)
            .abs()
            .max()
            .into_scalar()
            > 0.0
    );
    assert!(a.mutual_information.clone().max().into_scalar() > 0.0);
    let mask = a.mask();
    assert_eq!(mask.dims(), [2, 32, 32]);
}

#[test]
fn a_non_finite_loss_leaves_the_model_unchanged() {
    type A = Autodiff<Flex>;
    let device = Default::default();
    let model = MedClipSegConfig::micro().init::<A>(&device);
    let (images, ids, attention_mask) = inputs::<A>(&device);
    let images = images.mask_fill(
        Tensor::<A, 4>::ones([2, 3, 32, 32], &device).bool(),
        f32::NAN,
    );
    let batch = TrainBatch {
        images,
        ids,
        attention_mask,
        masks: Tensor::zeros([2, 32, 32], &device),
    };
    let before = model.state_dict();
    let mut optimizer = reference_adam().init();
    let (model, result) = train_step(
        model,
        &mut optimizer,
        &batch,
        &SegLossConfig::new(),
        1e-3,
        &mut Noise::Zero,
    );
    let error = result.unwrap_err().to_string();
    assert!(error.contains("not finite"), "{error}");
    assert_eq!(before, model.state_dict());
}

#[test]
fn monte_carlo_runs_on_clip_towers_whose_causal_mask_is_shared() {
    use clip_encoders::{ClipTextConfig, TextConfig, VisionConfig};
    let device = Default::default();
    // CLIP text (causal mask `[1, 1, L, L]`, shared by the batch) with a value-feature ViT; the
    // ids end on their largest id, where CLIP pools.
    let model = MedClipSegConfig::new(
        VisionConfig::new(32, 8, 32, 2, 2, 64, 32).with_value_features(Some(true)),
        TextConfig::Clip(ClipTextConfig::new(64, 6, 32, 2, 2, 32)),
    )
    .with_adapter_dim(16)
    .with_adapter_layers(vec![1])
    .init::<B>(&device);
    let (images, _, _) = inputs::<B>(&device);
    let ids = Tensor::from_data(
        TensorData::new(vec![62i64, 7, 9, 63, 0, 0, 62, 11, 63, 0, 0, 0], [2, 6]),
        &device,
    );
    let mask = Tensor::<B, 2, Int>::ones([2, 6], &device);
    let config = McConfig::new().with_samples(3).with_max_batch(6);
    let prediction = mc_predict(
        &model,
        images,
        ids,
        mask,
        &[0, 1],
        &config,
        &mut Noise::seeded(3),
    )
    .unwrap();
    assert_eq!(prediction.mean_prob.dims(), [2, 32, 32]);
    assert!(prediction.mutual_information.max().into_scalar() > 0.0);
}

/// A pass without a trace runs the last text layer for the pooled rows only (BERT: the CLS
/// row); the traced pass runs every row. Both give the same text vector and logits, on the
/// BERT tower and on CLIP's (which keeps the whole layer), with padded prompts.
#[test]
fn a_pass_computing_only_the_pooled_text_rows_equals_the_full_pass() {
    let device = Default::default();
    for preset in ["micro", "demo-pubmedclip"] {
        let config = MedClipSegConfig::preset(preset).expect("a preset");
        let model = config.init::<B>(&device);
        let (_, ids, mask) = inputs::<B>(&device);
        let side = config.image_size();
        let images = Tensor::random([2, 3, side, side], Distribution::Default, &device);
        let pooled_only =
            model.forward(images.clone(), ids.clone(), mask.clone(), &mut Noise::Zero);
        let (every_row, _) = model.forward_traced(images, ids, mask, &mut Noise::Zero);
        let tolerance = burn::tensor::Tolerance::<f32>::absolute(1e-5);
        pooled_only
            .txt_vec
            .into_data()
            .assert_approx_eq(&every_row.txt_vec.into_data(), tolerance);
        pooled_only
            .seg_logits
            .into_data()
            .assert_approx_eq(&every_row.seg_logits.into_data(), tolerance);
    }
}
