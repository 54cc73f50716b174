//! Bilinear resizing as two matrix products, `Wy · X · Wxᵀ`.
//!
//! PyTorch's `F.interpolate(mode="bilinear", align_corners=False)` is separable: each output row
//! mixes two input rows and each output column two input columns, with weights fixed by the
//! sizes alone. Written as matrix products, its backward is two more matrix products, which
//! every Burn backend differentiates; Burn 0.21's own bilinear `interpolate` has no backward on
//! the cubecl (CUDA, WGPU) backends.

use burn::prelude::*;
use burn::tensor::TensorData;

/// The `[output, input]` matrix of 1-D linear interpolation with `align_corners = False`.
///
/// Row `i` samples the input at `(i + 0.5)·input/output − 0.5`, clamped below at 0 and with the
/// upper neighbour clamped to the last index, exactly as PyTorch's `upsample_bilinear2d`.
pub fn linear_weights(input: usize, output: usize) -> Vec<f32> {
    let mut weights = vec![0f32; output * input];
    if input == 0 {
        return weights;
    }
    let scale = input as f64 / output as f64;
    for (i, row) in weights.chunks_exact_mut(input).enumerate() {
        let source = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
        let lower = (source.floor() as usize).min(input - 1);
        let upper = (lower + 1).min(input - 1);
        let frac = (source - lower as f64) as f32;
        row[lower] += 1.0 - frac;
        row[upper] += frac;
    }
    weights
}

/// Resizes `[N, h, w]` maps to `[N, H, W]` bilinearly (`align_corners = False`).
pub fn resize_bilinear<B: Backend>(maps: Tensor<B, 3>, size: [usize; 2]) -> Tensor<B, 3> {
    let [n, h, w] = maps.dims();
    let [out_h, out_w] = size;
    if [h, w] == size {
        return maps;
    }
    let device = maps.device();
    let rows = interpolation_matrix::<B>(h, out_h, &device);
    let columns = interpolation_matrix::<B>(w, out_w, &device).transpose();
    let rows = rows.unsqueeze::<3>().repeat_dim(0, n);
    let columns = columns.unsqueeze::<3>().repeat_dim(0, n);
    rows.matmul(maps).matmul(columns)
}

/// [`linear_weights`] as a `[output, input]` tensor on `device`.
fn interpolation_matrix<B: Backend>(
    input: usize,
    output: usize,
    device: &B::Device,
) -> Tensor<B, 2> {
    Tensor::from_data(
        TensorData::new(linear_weights(input, output), [output, input]),
        device,
    )
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::module::interpolate;
    use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
    use burn::tensor::{Distribution, Tolerance};
    use proptest::prelude::*;

    use super::*;

    fn burn_bilinear(x: Tensor<Flex, 3>, size: [usize; 2]) -> Tensor<Flex, 3> {
        let [n, h, w] = x.dims();
        interpolate(
            x.reshape([n, 1, h, w]),
            size,
            InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false),
        )
        .reshape([n, size[0], size[1]])
    }

    #[test]
    fn weights_rows_sum_to_one_and_match_pytorch_upsampling_by_two() {
        // torch: F.interpolate(eye(2)[None, None], size=(4, 2)) rows -> [1,0],[.75,.25],[.25,.75],[0,1]
        assert_eq!(
            linear_weights(2, 4),
            vec![1.0, 0.0, 0.75, 0.25, 0.25, 0.75, 0.0, 1.0]
        );
        for (input, output) in [(7, 3), (56, 224), (5, 5), (1, 4), (4, 1)] {
            for row in linear_weights(input, output).chunks(input) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn equals_burns_bilinear_interpolate(
            n in 1usize..3, h in 1usize..9, w in 1usize..9, out_h in 1usize..20, out_w in 1usize..20,
        ) {
            let device = Default::default();
            let x = Tensor::<Flex, 3>::random([n, h, w], Distribution::Default, &device);
            resize_bilinear(x.clone(), [out_h, out_w])
                .into_data()
                .assert_approx_eq::<f32>(
                    &burn_bilinear(x, [out_h, out_w]).into_data(),
                    Tolerance::absolute(1e-6),
                );
        }
    }

    #[test]
    fn gradient_is_the_transposed_resize() {
        // d/dX sum(G ∘ resize(X)) = Wyᵀ G Wx: each input pixel collects the weights it spread.
        let device = Default::default();
        let x = Tensor::<Autodiff<Flex>, 3>::random([1, 3, 4], Distribution::Default, &device)
            .require_grad();
        let y = resize_bilinear(x.clone(), [6, 8]);
        let grads = y.sum().backward();
        let grad = x.grad(&grads).expect("gradient").into_data();
        // Every output weight row sums to one, so the input gradients sum to the output count.
        let total: f32 = grad.iter::<f32>().sum();
        assert!((total - 48.0).abs() < 1e-4, "{total}");
        let expected_rows = linear_weights(3, 6);
        let expected_cols = linear_weights(4, 8);
        let col_sums: Vec<f32> = (0..4)
            .map(|j| (0..8).map(|o| expected_cols[o * 4 + j]).sum())
            .collect();
        let row_sums: Vec<f32> = (0..3)
            .map(|i| (0..6).map(|o| expected_rows[o * 3 + i]).sum())
            .collect();
        let expected: Vec<f32> = row_sums
            .iter()
            .flat_map(|r| col_sums.iter().map(move |c| r * c))
            .collect();
        grad.assert_approx_eq::<f32>(
            &TensorData::new(expected, [1, 3, 4]),
            Tolerance::absolute(1e-5),
        );
    }
}
