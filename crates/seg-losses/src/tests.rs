use burn::backend::{Autodiff, Flex};
use burn::tensor::TensorData;
use proptest::prelude::*;

use super::*;

type B = Flex;

fn tensor3(values: &[f32], shape: [usize; 3]) -> Tensor<B, 3> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), &Default::default())
}

fn scalar(t: Tensor<B, 1>) -> f32 {
    t.into_scalar()
}

fn sigmoid_f(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn bce_matches_the_definition() {
    let logits = [2.0f32, -1.0, 0.5, 30.0];
    let targets = [1.0f32, 0.0, 0.0, 1.0];
    let expected: f32 = logits
        .iter()
        .zip(targets)
        .map(|(&x, y)| {
            let p = sigmoid_f(x) as f64;
            -(y as f64 * p.ln() + (1.0 - y as f64) * (1.0 - p).max(1e-300).ln()) as f32
        })
        .sum::<f32>()
        / 4.0;
    let got = scalar(bce_with_logits(
        tensor3(&logits, [1, 2, 2]),
        tensor3(&targets, [1, 2, 2]),
    ));
    assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
}

#[test]
fn reference_dice_is_row_wise_and_ignores_row_zero() {
    // Two rows of three pixels; only row 1 counts.
    let logits = [0.0f32, 0.0, 0.0, 1.0, -1.0, 2.0];
    let targets = [1.0f32, 1.0, 1.0, 1.0, 0.0, 0.0];
    let p: Vec<f64> = logits[3..].iter().map(|&x| sigmoid_f(x) as f64).collect();
    let g = [1.0f64, 0.0, 0.0];
    let inter: f64 = p.iter().zip(g).map(|(a, b)| a * b).sum();
    let expected = 1.0 - (2.0 * inter + 1e-5) / (p.iter().sum::<f64>() + 1.0 + 1e-5);
    let got = scalar(dice_loss(
        tensor3(&logits, [1, 2, 3]),
        tensor3(&targets, [1, 2, 3]),
        DiceMode::Reference,
    ));
    assert!((got as f64 - expected).abs() < 1e-6, "{got} vs {expected}");

    let mut changed = logits;
    changed[0] = 5.0;
    let again = scalar(dice_loss(
        tensor3(&changed, [1, 2, 3]),
        tensor3(&targets, [1, 2, 3]),
        DiceMode::Reference,
    ));
    assert_eq!(got, again);
}

#[test]
fn per_image_dice_of_a_confident_correct_prediction_is_near_zero() {
    let targets = [1.0f32, 0.0, 1.0, 0.0];
    let logits: Vec<f32> = targets
        .iter()
        .map(|&t| if t > 0.5 { 20.0 } else { -20.0 })
        .collect();
    let got = scalar(dice_loss(
        tensor3(&logits, [1, 2, 2]),
        tensor3(&targets, [1, 2, 2]),
        DiceMode::PerImage,
    ));
    assert!(got < 1e-6, "{got}");
}

fn img_and_text(batch: usize) -> (Tensor<B, 3>, Tensor<B, 2>) {
    let device = Default::default();
    let img: Vec<f32> = (0..batch * 5 * 4)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0)
        .collect();
    let txt: Vec<f32> = (0..batch * 4)
        .map(|i| ((i * 5 % 7) as f32 - 3.0) / 2.0)
        .collect();
    (
        Tensor::from_data(TensorData::new(img, [batch, 5, 4]), &device),
        Tensor::from_data(TensorData::new(txt, [batch, 4]), &device),
    )
}

#[test]
fn softcon_of_a_single_pair_is_zero() {
    let (img, txt) = img_and_text(1);
    let loss = scalar(soft_contrastive_loss(img, txt, &SoftConConfig::new()));
    assert!(loss.abs() < 1e-7, "{loss}");
}

#[test]
fn softcon_matches_a_host_computation() {
    let (img, txt) = img_and_text(3);
    let got = scalar(soft_contrastive_loss(
        img.clone(),
        txt.clone(),
        &SoftConConfig::new(),
    ));
    let img = img.into_data().into_vec::<f32>().unwrap();
    let txt = txt.into_data().into_vec::<f32>().unwrap();
    let expected = host_softcon(&img, &txt, [3, 5, 4], 0.2, HostVariant::PAPER);
    assert!((got as f64 - expected).abs() < 1e-5, "{got} vs {expected}");
}

/// The variant switches of [`host_softcon`].
#[derive(Clone, Copy)]
struct HostVariant {
    /// Identity targets (a standard InfoNCE) instead of the soft text-similarity targets.
    hard: bool,
    /// Text-guided attention over the patches instead of their mean.
    attention_pool: bool,
}

impl HostVariant {
    const PAPER: Self = Self {
        hard: false,
        attention_pool: false,
    };
}

/// Runs SoftCon on [`img_and_text`] with `config` and on the host with `variant`.
fn softcon_pair(config: SoftConConfig, variant: HostVariant) -> (f64, f64) {
    let (img, txt) = img_and_text(3);
    let got = scalar(soft_contrastive_loss(img.clone(), txt.clone(), &config));
    let img = img.into_data().into_vec::<f32>().unwrap();
    let txt = txt.into_data().into_vec::<f32>().unwrap();
    (
        got as f64,
        host_softcon(&img, &txt, [3, 5, 4], 0.2, variant),
    )
}

#[test]
fn hard_softcon_is_a_standard_infonce() {
    let config = SoftConConfig::new().with_targets(SoftConTargets::Hard);
    let hard = HostVariant {
        hard: true,
        ..HostVariant::PAPER
    };
    let (got, expected) = softcon_pair(config, hard);
    assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
    let (_, soft) = softcon_pair(config, HostVariant::PAPER);
    assert!((got - soft).abs() > 1e-3, "hard {got} vs soft {soft}");
}

#[test]
fn attention_pooled_softcon_weighs_patches_by_their_text_similarity() {
    let config = SoftConConfig::new().with_pooling(SoftConPooling::Attention);
    let attention = HostVariant {
        attention_pool: true,
        ..HostVariant::PAPER
    };
    let (got, expected) = softcon_pair(config, attention);
    assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
    let (_, mean) = softcon_pair(config, HostVariant::PAPER);
    assert!((got - mean).abs() > 1e-3, "attention {got} vs mean {mean}");
}

fn normalize(v: &[f64]) -> Vec<f64> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    v.iter().map(|x| x / n).collect()
}

fn dot(a: &[f64], c: &[f64]) -> f64 {
    a.iter().zip(c).map(|(x, y)| x * y).sum()
}

fn softmax(row: &[f64]) -> Vec<f64> {
    let m = row.iter().cloned().fold(f64::MIN, f64::max);
    let e: Vec<f64> = row.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

/// The image vector of sample `i`: the mean of its normalised patches, or (attention pooling)
/// their sum weighted by `softmax_p(patch_p · text / τ)` with the text normalised.
fn host_pool(
    img: &[f32],
    text: &[f64],
    [t, d]: [usize; 2],
    i: usize,
    tau: f64,
    attention: bool,
) -> Vec<f64> {
    let patches: Vec<Vec<f64>> = (1..t)
        .map(|p| {
            let start = (i * t + p) * d;
            normalize(
                &img[start..start + d]
                    .iter()
                    .map(|&x| x as f64)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let weights = if attention {
        let query = normalize(text);
        softmax(
            &patches
                .iter()
                .map(|p| dot(p, &query) / tau)
                .collect::<Vec<_>>(),
        )
    } else {
        vec![1.0 / (t - 1) as f64; t - 1]
    };
    let mut acc = vec![0.0; d];
    for (patch, w) in patches.iter().zip(weights) {
        for (a, v) in acc.iter_mut().zip(patch) {
            *a += w * v;
        }
    }
    acc
}

/// A plain transcription of the reference SoftCon (and its two variants) in f64.
fn host_softcon(
    img: &[f32],
    txt: &[f32],
    [b, t, d]: [usize; 3],
    tau: f64,
    variant: HostVariant,
) -> f64 {
    let text: Vec<Vec<f64>> = (0..b)
        .map(|i| txt[i * d..(i + 1) * d].iter().map(|&x| x as f64).collect())
        .collect();
    let pooled: Vec<Vec<f64>> = (0..b)
        .map(|i| host_pool(img, &text[i], [t, d], i, tau, variant.attention_pool))
        .collect();
    let targets: Vec<Vec<f64>> = (0..b)
        .map(|i| {
            if variant.hard {
                return (0..b).map(|j| if i == j { 1.0 } else { 0.0 }).collect();
            }
            let row: Vec<f64> = (0..b).map(|j| dot(&text[i], &text[j]) / tau).collect();
            softmax(&normalize(&row))
        })
        .collect();
    let soft_ce = |logits: &dyn Fn(usize, usize) -> f64, y: &dyn Fn(usize, usize) -> f64| {
        let mut total = 0.0;
        for i in 0..b {
            let row: Vec<f64> = (0..b).map(|j| logits(i, j)).collect();
            let lp: Vec<f64> = softmax(&row).iter().map(|p| p.ln()).collect();
            total -= (0..b).map(|j| y(i, j) * lp[j]).sum::<f64>();
        }
        total / b as f64
    };
    let i2t = soft_ce(&|i, j| dot(&pooled[i], &text[j]) / tau, &|i, j| {
        targets[i][j]
    });
    let t2i = soft_ce(&|i, j| dot(&text[i], &pooled[j]) / tau, &|i, j| {
        targets[j][i]
    });
    (i2t + t2i) / 2.0
}

#[test]
fn softcon_targets_carry_no_gradient_but_the_logits_do() {
    type A = Autodiff<Flex>;
    let device = Default::default();
    let (img, txt) = img_and_text(3);
    let img: Tensor<A, 3> = Tensor::from_data(img.into_data(), &device).require_grad();
    let txt: Tensor<A, 2> = Tensor::from_data(txt.into_data(), &device).require_grad();
    let loss = soft_contrastive_loss(img.clone(), txt.clone(), &SoftConConfig::new());
    let grads = loss.backward();
    let g_txt = txt.grad(&grads).expect("text gradient");
    let g_img = img.grad(&grads).expect("image gradient");
    // The class token (index 0) is not pooled, so it gets no gradient.
    let cls = g_img.narrow(1, 0, 1).abs().sum().into_scalar();
    assert_eq!(cls, 0.0);
    assert!(g_txt.abs().sum().into_scalar() > 0.0);
}

#[test]
fn weighted_total_combines_the_terms() {
    let (img, txt) = img_and_text(2);
    let logits = tensor3(&[0.3, -0.2, 1.0, 0.1, 0.0, -1.0, 2.0, 0.5], [2, 2, 2]);
    let targets = tensor3(&[1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0], [2, 2, 2]);
    let loss = SegLossConfig::new().compute(logits, targets, img, txt);
    let (d, b, s, t) = (
        scalar(loss.dice),
        scalar(loss.bce),
        scalar(loss.softcon),
        scalar(loss.total),
    );
    assert!((t - (0.5 * d + 0.5 * b + 0.1 * s)).abs() < 1e-6);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn dice_is_within_unit_interval_and_bce_non_negative(
        logits in proptest::collection::vec(-8.0f32..8.0, 12),
        targets in proptest::collection::vec(0u8..2, 12),
    ) {
        let targets: Vec<f32> = targets.into_iter().map(f32::from).collect();
        for mode in [DiceMode::Reference, DiceMode::PerImage] {
            let d = scalar(dice_loss(tensor3(&logits, [1, 3, 4]), tensor3(&targets, [1, 3, 4]), mode));
            prop_assert!((0.0..=1.0 + 1e-6).contains(&d), "{d}");
        }
        let b = scalar(bce_with_logits(tensor3(&logits, [1, 3, 4]), tensor3(&targets, [1, 3, 4])));
        prop_assert!(b >= 0.0);
    }
}
