//! Properties of the OpenAI CLIP text tower (no golden run exists for it).

use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::TensorData;
use clip_encoders::{ClipTextConfig, StateWriter, TextConfig, WeightMap};

type B = Flex;

fn tiny() -> ClipTextConfig {
    ClipTextConfig::new(100, 8, 16, 2, 2, 12)
}

fn ids(rows: &[[i64; 8]]) -> Tensor<B, 2, Int> {
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), 8]), &Default::default())
}

#[test]
fn causal_mask_hides_later_tokens_and_pooling_reads_the_end_of_text_token() {
    let device = Default::default();
    let tower = tiny().init::<B>(&device);
    // 99 is the largest id: the end-of-text token at position 3.
    let a = ids(&[[98, 5, 6, 99, 0, 0, 0, 0]]);
    let b = ids(&[[98, 5, 6, 99, 7, 8, 9, 10]]);
    let hidden = |x: Tensor<B, 2, Int>| {
        let mut h = tower.embed(x.clone());
        let bias = tower.causal_bias(8, &device);
        for i in 0..tower.num_layers() {
            h = tower.layer(i, h, bias.clone());
        }
        h
    };
    let (ha, hb) = (hidden(a.clone()), hidden(b.clone()));
    // Positions 0..=3 cannot see positions 4.. under the causal mask.
    let diff = (ha.clone().narrow(1, 0, 4) - hb.clone().narrow(1, 0, 4))
        .abs()
        .max()
        .into_scalar();
    assert!(diff < 1e-6, "{diff}");
    let later = (ha.clone().narrow(1, 4, 4) - hb.clone().narrow(1, 4, 4))
        .abs()
        .max()
        .into_scalar();
    assert!(later > 1e-4);
    // So the pooled vectors (taken at the end-of-text token) agree too.
    let pa = tower.pool(ha, a);
    let pb = tower.pool(hb, b);
    assert_eq!(pa.dims(), [1, 12]);
    assert!((pa - pb).abs().max().into_scalar() < 1e-6);
}

#[test]
fn text_encoder_forward_has_the_projection_width_and_weights_round_trip() {
    let device = Default::default();
    let encoder = TextConfig::Clip(tiny()).init::<B>(&device);
    let x = ids(&[[98, 5, 99, 0, 0, 0, 0, 0], [98, 7, 8, 9, 99, 0, 0, 0]]);
    let mask = x.clone().not_equal_elem(0).int();
    let out = encoder.forward(x.clone(), mask.clone());
    assert_eq!(out.dims(), [2, 12]);

    let mut writer = StateWriter::new();
    encoder.save(&mut writer, "text");
    let mut map = WeightMap::new("round-trip");
    for (k, t) in writer.into_tensors() {
        map.insert(k, t);
    }
    let reloaded = TextConfig::Clip(tiny())
        .init::<B>(&device)
        .load(&map, "text", &device);
    map.finish(true).expect("every key consumed");
    let again = reloaded.forward(x, mask);
    assert!((out - again).abs().max().into_scalar() < 1e-6);
}
