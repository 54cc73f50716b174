use burn::prelude::*;

/// The MLP activation of a transformer block.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Activation {
    /// OpenAI CLIP's `x * sigmoid(1.702 x)` (UniMedCLIP is trained with it).
    QuickGelu,
    /// Exact GELU, `x * Φ(x)` with the error function (BERT, open_clip non-quickgelu models).
    Gelu,
}

impl Activation {
    /// Applies the activation element-wise.
    pub fn apply<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Activation::QuickGelu => crate::fast::quick_gelu(x),
            Activation::Gelu => gelu(x),
        }
    }
}

/// Exact GELU, `x·Φ(x) = x·(1 + erf(x/√2))/2`.
///
/// Under autodiff it is composed from `erf`, so that its gradient is exact on every backend:
/// Burn 0.21's default `gelu_backward`, which the cubecl backends (CUDA, WGPU) use, is the
/// derivative of the tanh approximation, and put the golden gradients ~1e-3 off.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if B::ad_enabled(&x.device()) {
        // On flex: one fused operation with the exact derivative.
        let x = match crate::fast::gelu_autodiff(x) {
            Ok(y) => return y,
            Err(x) => x,
        };
        x.clone() * ((x / std::f64::consts::SQRT_2).erf() + 1.0) * 0.5
    } else {
        burn::tensor::activation::gelu(x)
    }
}

/// `softplus(x) = log(1 + exp(x))`, computed without overflow for large `x` (one fused
/// operation on flex, with and without autodiff).
pub fn softplus<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let x = match crate::fast::softplus(x) {
        Ok(y) => return y,
        Err(x) => x,
    };
    x.clone().clamp_min(0.0) + (x.abs().neg().exp() + 1.0).log()
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{TensorData, Tolerance, activation};

    use super::*;

    #[test]
    fn gelu_gradient_is_the_exact_derivative() {
        let device = Default::default();
        let xs = [-3.0f32, -1.2, -0.3, 0.0, 0.4, 1.7, 2.5];
        let x = Tensor::<Autodiff<Flex>, 1>::from_floats(xs, &device).require_grad();
        let grads = gelu(x.clone()).sum().backward();
        let grad = x.grad(&grads).expect("gradient");
        // d/dx x·Φ(x) = Φ(x) + x·φ(x).
        let expected: Vec<f32> = xs
            .iter()
            .map(|&x| {
                let x = x as f64;
                let cdf = 0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2));
                let pdf = (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
                (cdf + x * pdf) as f32
            })
            .collect();
        grad.into_data().assert_approx_eq::<f32>(
            &TensorData::from(expected.as_slice()),
            Tolerance::absolute(1e-6),
        );
        let plain = Tensor::<Flex, 1>::from_floats(xs, &device);
        gelu(plain.clone()).into_data().assert_approx_eq::<f32>(
            &activation::gelu(plain).into_data(),
            Tolerance::absolute(1e-6),
        );
    }

    /// The fused softplus (flex, `Autodiff<Flex>`) against the formula on a strided view:
    /// values and gradient.
    #[test]
    fn softplus_and_its_gradient_equal_the_formula() {
        let device = Default::default();
        // Not 0 itself: there the formula's subgradient (clamp 1, |x| 0) is 1, the derivative ½.
        let values: Vec<f32> = (0..40).map(|i| (i as f32 - 20.0) * 1.3 + 0.1).collect();
        let formula = |x: Tensor<Autodiff<Flex>, 2>| {
            x.clone().clamp_min(0.0) + (x.abs().neg().exp() + 1.0).log()
        };
        let x = Tensor::<Autodiff<Flex>, 1>::from_floats(values.as_slice(), &device)
            .reshape([5, 8])
            .require_grad();
        let weights = Tensor::<Autodiff<Flex>, 2>::random(
            [8, 5],
            burn::tensor::Distribution::Default,
            &device,
        );
        let run = |f: &dyn Fn(Tensor<Autodiff<Flex>, 2>) -> Tensor<Autodiff<Flex>, 2>| {
            let y = f(x.clone().transpose());
            let grads = (y.clone() * weights.clone()).sum().backward();
            (y.into_data(), x.grad(&grads).expect("tracked").into_data())
        };
        let (y, grad) = run(&|x| softplus(x));
        let (y_f, grad_f) = run(&formula);
        let tolerance = Tolerance::rel_abs(1e-6, 1e-7);
        y.assert_approx_eq::<f32>(&y_f, tolerance);
        grad.assert_approx_eq::<f32>(&grad_f, tolerance);
        let plain = Tensor::<Flex, 1>::from_floats(values.as_slice(), &device);
        softplus(plain.clone()).into_data().assert_approx_eq::<f32>(
            &(plain.clone().clamp_min(0.0) + (plain.abs().neg().exp() + 1.0).log()).into_data(),
            tolerance,
        );
    }

    /// erf to double precision (Abramowitz–Stegun 7.1.26 is not enough here): the series
    /// `2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1))`, fine for |x| < 3.
    fn erf(x: f64) -> f64 {
        let mut term = x;
        let mut sum = x;
        for n in 1..80 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }
}
