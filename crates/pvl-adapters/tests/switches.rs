//! Behaviour of the adapter and its ablation switches.

use burn::backend::Flex;
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::softmax;
use clip_encoders::softplus;
use pvl_adapters::{
    Interaction, Noise, ProbAttentionOutput, ProbAttentionSwitches, ProbCrossAttentionConfig,
    PvlAdapterConfig, PvlAdapterSwitches,
};

type B = Flex;

fn randn(shape: [usize; 3], seed: u64) -> Tensor<B, 3> {
    B::seed(&Default::default(), seed);
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
}

/// A width-8 attention with `switches`.
fn attention(switches: ProbAttentionSwitches) -> ProbCrossAttentionConfig {
    ProbCrossAttentionConfig::new(8).with_switches(switches)
}

fn max_diff(a: Tensor<B, 3>, b: Tensor<B, 3>) -> f32 {
    (a - b).abs().max().into_scalar()
}

#[test]
fn gate_mixes_the_query_convexly() {
    let device = Default::default();
    let mut attn = ProbCrossAttentionConfig::new(8).init::<B>(&device);
    let (q, c) = (randn([2, 5, 8], 1), randn([2, 7, 8], 2));
    attn.gate = Param::from_tensor(Tensor::full([1], -40.0, &device));
    let closed = attn.forward(q.clone(), c.clone(), &mut Noise::Zero);
    assert!(
        max_diff(closed.output, q.clone()) < 1e-6,
        "sigmoid(-40) ~ 0 keeps the query"
    );
    attn.gate = Param::from_tensor(Tensor::full([1], 40.0, &device));
    let open = attn.forward(q.clone(), c, &mut Noise::Zero);
    assert!(
        max_diff(open.output, open.projected) < 1e-6,
        "sigmoid(40) ~ 1 keeps the attention"
    );
}

#[test]
fn without_gating_the_update_is_a_residual_add() {
    let attn =
        attention(ProbAttentionSwitches::new().with_gating(false)).init::<B>(&Default::default());
    let (q, c) = (randn([1, 3, 8], 3), randn([1, 4, 8], 4));
    let out = attn.forward(q.clone(), c, &mut Noise::Zero);
    assert!(max_diff(out.output, q + out.projected) < 1e-6);
}

#[test]
fn sampling_changes_values_and_deterministic_mode_does_not() {
    let device = Default::default();
    let (q, c) = (randn([1, 3, 8], 5), randn([1, 6, 8], 6));
    let stochastic = ProbCrossAttentionConfig::new(8).init::<B>(&device);
    let a = stochastic
        .forward(q.clone(), c.clone(), &mut Noise::seeded(1))
        .output;
    let b = stochastic
        .forward(q.clone(), c.clone(), &mut Noise::seeded(2))
        .output;
    let a2 = stochastic
        .forward(q.clone(), c.clone(), &mut Noise::seeded(1))
        .output;
    assert!(
        max_diff(a.clone(), b) > 1e-4,
        "different seeds give different samples"
    );
    assert!(max_diff(a, a2) < 1e-7, "the same seed reproduces");

    let deterministic =
        attention(ProbAttentionSwitches::new().with_sample_values(false)).init::<B>(&device);
    let x = deterministic
        .forward(q.clone(), c.clone(), &mut Noise::seeded(1))
        .output;
    let y = deterministic.forward(q, c, &mut Noise::seeded(2)).output;
    assert!(max_diff(x, y) < 1e-7);
}

/// `softmax(Q·K̄ᵀ/√d − β·sqrt(Q²·(softplus(r_K) + 1e-6)/d))` from an attention's own
/// intermediates: the reference logits, written out.
fn penalised_attention(out: &ProbAttentionOutput<B>, beta: f64) -> Tensor<B, 3> {
    let d = out.query.dims()[2];
    let plain = out
        .query
        .clone()
        .matmul(out.key_mean.clone().swap_dims(1, 2))
        / (d as f64).sqrt();
    softmax(plain - logit_std(out) * beta, 2)
}

/// The standard deviation of each attention logit, `[B, Tq, Tk]`.
fn logit_std(out: &ProbAttentionOutput<B>) -> Tensor<B, 3> {
    let d = out.query.dims()[2];
    let key_var = softplus(out.key_out.clone().narrow(2, d, d)) + 1e-6;
    (out.query.clone().square().matmul(key_var.swap_dims(1, 2)) / d as f64).sqrt()
}

fn rows(t: Tensor<B, 3>) -> Vec<Vec<f32>> {
    let [_, _, keys] = t.dims();
    let flat = t.into_data().into_vec::<f32>().unwrap();
    flat.chunks(keys).map(|r| r.to_vec()).collect()
}

#[test]
fn variance_penalty_lowers_uncertain_logits() {
    let device = Default::default();
    let (q, c) = (randn([1, 3, 8], 7), randn([1, 6, 8], 8));
    let attn = attention(ProbAttentionSwitches::new().with_beta(2.35)).init::<B>(&device);
    assert!(ProbAttentionSwitches::new().probabilistic);
    let out = attn.forward(q, c, &mut Noise::Zero);
    assert!(max_diff(out.attention.clone(), penalised_attention(&out, 2.35)) < 1e-5);
    let plain = penalised_attention(&out, 0.0);
    assert!(
        max_diff(out.attention.clone(), plain.clone()) > 1e-3,
        "the penalty changes the attention"
    );
    // Relative to plain attention, a key loses weight in proportion to its logit's spread:
    // within each query row, the more uncertain key always keeps the smaller share.
    let ratio = rows(out.attention.clone() / plain);
    let spread = rows(logit_std(&out));
    for (ratio, spread) in ratio.iter().zip(&spread) {
        for i in 0..spread.len() {
            for j in 0..spread.len() {
                if spread[i] > spread[j] + 1e-4 {
                    assert!(ratio[i] < ratio[j], "{spread:?} {ratio:?}");
                }
            }
        }
    }
}

#[test]
fn beta_scales_the_penalty() {
    let device = Default::default();
    let (q, c) = (randn([1, 3, 8], 20), randn([1, 6, 8], 21));
    for beta in [0.0, 5.0] {
        let attn = attention(ProbAttentionSwitches::new().with_beta(beta)).init::<B>(&device);
        let out = attn.forward(q.clone(), c.clone(), &mut Noise::Zero);
        let expected = penalised_attention(&out, beta);
        assert!(
            max_diff(out.attention.clone(), expected) < 1e-5,
            "beta {beta}"
        );
        let other = penalised_attention(&out, 2.35);
        assert!(max_diff(out.attention, other) > 1e-3, "beta {beta}");
    }
}

#[test]
fn attnpvl_off_is_plain_attention_on_the_means() {
    let device = Default::default();
    let (q, c) = (randn([1, 2, 8], 7), randn([1, 5, 8], 8));
    let plain =
        attention(ProbAttentionSwitches::new().with_probabilistic(false)).init::<B>(&device);
    let out = plain.forward(q, c, &mut Noise::seeded(3));
    assert!(max_diff(out.attention.clone(), penalised_attention(&out, 0.0)) < 1e-6);
    // No sampling either: the values are their means.
    let av = out.attention.clone().matmul(out.value_mean.clone());
    assert!(max_diff(out.attended, av) < 1e-5);
}

#[test]
fn given_noise_is_consumed_in_call_order() {
    let device = Default::default();
    let adapter = PvlAdapterConfig::new(16, 12, 8).init::<B>(&device);
    let (img, txt) = (randn([1, 5, 16], 9), randn([1, 4, 12], 10));
    // img->txt samples text values [1,4,8]; txt->img samples image values [1,5,8].
    let mut given = Noise::Given(vec![randn([1, 4, 8], 11), randn([1, 5, 8], 12)].into());
    let out = adapter.forward(img.clone(), txt.clone(), &mut given);
    assert_eq!(given.remaining(), 0);
    assert_eq!(out.dv.unwrap().dims(), [1, 5, 16]);
    assert_eq!(out.dt.unwrap().dims(), [1, 4, 12]);
}

#[test]
fn unimodal_adapters_ignore_the_other_modality() {
    let device = Default::default();
    let adapter = PvlAdapterConfig::new(16, 12, 8)
        .with_switches(PvlAdapterSwitches::new().with_interaction(Interaction::Unimodal))
        .init::<B>(&device);
    let (img, txt) = (randn([1, 5, 16], 13), randn([1, 4, 12], 14));
    // Another text leaves the image update alone, and another image the text update.
    let a = adapter.forward(img.clone(), txt.clone(), &mut Noise::Zero);
    let b = adapter.forward(img.clone(), randn([1, 4, 12], 15), &mut Noise::Zero);
    let c = adapter.forward(randn([1, 5, 16], 22), txt, &mut Noise::Zero);
    assert!(max_diff(a.dv.clone().unwrap(), b.dv.clone().unwrap()) < 1e-6);
    assert!(max_diff(a.dt.clone().unwrap(), c.dt.clone().unwrap()) < 1e-6);
    // And each does follow its own modality.
    assert!(max_diff(a.dt.unwrap(), b.dt.unwrap()) > 1e-5);
    assert!(max_diff(a.dv.unwrap(), c.dv.unwrap()) > 1e-5);
}

#[test]
fn two_way_text_update_sees_the_updated_image_tokens_and_parallel_does_not() {
    let device = Default::default();
    let config = PvlAdapterConfig::new(16, 12, 8);
    // Lazily initialised parameters draw their values when first used, separately in each
    // clone: take one record and load it into both models.
    let two_way = config.init::<B>(&device);
    let parallel = config
        .clone()
        .with_switches(PvlAdapterSwitches::new().with_interaction(Interaction::Parallel))
        .init::<B>(&device)
        .load_record(two_way.clone().into_record());
    let two_way = config
        .init::<B>(&device)
        .load_record(parallel.clone().into_record());
    let (img, txt) = (randn([1, 5, 16], 16), randn([1, 4, 12], 17));
    let tw = two_way.forward(img.clone(), txt.clone(), &mut Noise::Zero);
    let pa = parallel.forward(img, txt, &mut Noise::Zero);
    assert!(
        max_diff(tw.dv.clone().unwrap(), pa.dv.unwrap()) < 1e-6,
        "image update is the same"
    );
    assert!(
        max_diff(tw.dt.unwrap(), pa.dt.unwrap()) > 1e-5,
        "text update differs"
    );
}

#[test]
fn switched_off_modalities_get_no_update() {
    let adapter = PvlAdapterConfig::new(16, 12, 8)
        .with_switches(PvlAdapterSwitches::new().with_adapt_vision(false))
        .init::<B>(&Default::default());
    let out = adapter.forward(
        randn([1, 5, 16], 18),
        randn([1, 4, 12], 19),
        &mut Noise::Zero,
    );
    assert!(out.dv.is_none());
    assert!(out.dt.is_some());
}

#[test]
fn text_adaptation_off_leaves_only_the_image_update() {
    let config = PvlAdapterConfig::new(16, 12, 8);
    // Same weights in both (see the two-way test on lazily initialised parameters).
    let full = config.init::<B>(&Default::default());
    let image_only = config
        .clone()
        .with_switches(PvlAdapterSwitches::new().with_adapt_text(false))
        .init::<B>(&Default::default())
        .load_record(full.clone().into_record());
    let full = config
        .init::<B>(&Default::default())
        .load_record(image_only.clone().into_record());
    let (img, txt) = (randn([1, 5, 16], 23), randn([1, 4, 12], 24));
    let out = image_only.forward(img.clone(), txt.clone(), &mut Noise::Zero);
    assert!(out.dt.is_none());
    let reference = full.forward(img, txt, &mut Noise::Zero);
    assert!(max_diff(out.dv.unwrap(), reference.dv.unwrap()) < 1e-6);
}
