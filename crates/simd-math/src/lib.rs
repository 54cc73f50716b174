//! Vectorisable f32 element kernels: `exp`, `erf`, the exact (erf) GELU, QuickGELU, sigmoid,
//! softplus and softmax rows, each in place over a slice.
//!
//! Each kernel is one plain loop of branch-free arithmetic, compiled three times: for
//! AVX-512, for AVX2 + FMA and for the baseline target, and picked at run time. LLVM turns
//! the loops into vector code (16 or 8 lanes), where `f32::exp` and libm's `erff` are scalar
//! calls (~6 ns per element each).
//!
//! Accuracy: `exp` is Cephes' `expf` (range reduction by ln 2, degree-6 polynomial), within
//! 2 ulp of the exact value; `erfc` is Numerical Recipes' `erfcc` (Chebyshev fit, fractional
//! error < 1.2e-7 everywhere), so GELU keeps its relative accuracy in the far negative tail;
//! `erf` below 0.5 in magnitude comes from its Taylor series, so it keeps its relative
//! accuracy near 0 too.

/// The x86 vector extensions the kernels were compiled for, detected once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    Avx512,
    Avx2Fma,
    Baseline,
}

fn isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            if std::is_x86_feature_detected!("avx512f") {
                Isa::Avx512
            } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
            {
                Isa::Avx2Fma
            } else {
                Isa::Baseline
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    Isa::Baseline
}

/// `a·b + c`, fused where the instruction exists (a libm call would be slower than two ops).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// Cephes `expf`: `e^x = 2^n · e^r`, `r = x - n ln 2` in `[-ln2/2, ln2/2]`.
#[inline(always)]
fn exp1<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // The ends keep 2^(n-1) a normal float: below -86.5 the result stays at e^-86.5 ≈ 2.6e-38
    // (0 for every use here: softmax weights, sigmoid tails), above 88.7 it is near f32::MAX.
    let x = x.clamp(-86.5, 88.7);
    let n = madd::<FMA>(x, LOG2E, 0.5).floor();
    let r = madd::<FMA>(n, -LN2_LO, madd::<FMA>(n, -LN2_HI, x));
    let mut p = 1.987_569_1e-4;
    p = madd::<FMA>(p, r, 1.398_199_9e-3);
    p = madd::<FMA>(p, r, 8.333_452e-3);
    p = madd::<FMA>(p, r, 4.166_579_6e-2);
    p = madd::<FMA>(p, r, 1.666_666_5e-1);
    p = madd::<FMA>(p, r, 5e-1);
    let e_r = madd::<FMA>(p, r * r, r + 1.0);
    // 2^n as 2·2^(n-1): n reaches 128 near the top, which has no f32 exponent of its own.
    // n + 126 ∈ [1, 254] lands in the low mantissa bits of 2^23 + n + 126 (a float cast to
    // int would saturate-check every lane and stay scalar).
    let biased = (n + (8_388_608.0 + 126.0)).to_bits() & 0xff;
    let half_two_n = f32::from_bits(biased << 23);
    e_r * half_two_n * 2.0
}

/// `erfc(z)` for `z ≥ 0` (Numerical Recipes `erfcc`).
#[inline(always)]
fn erfc_nonneg<const FMA: bool>(z: f32) -> f32 {
    let t = 1.0 / madd::<FMA>(0.5, z, 1.0);
    let mut p = 0.170_872_77;
    p = madd::<FMA>(p, t, -0.822_152_23);
    p = madd::<FMA>(p, t, 1.488_515_9);
    p = madd::<FMA>(p, t, -1.135_204);
    p = madd::<FMA>(p, t, 0.278_868_07);
    p = madd::<FMA>(p, t, -0.186_288_06);
    p = madd::<FMA>(p, t, 0.096_784_18);
    p = madd::<FMA>(p, t, 0.374_091_96);
    p = madd::<FMA>(p, t, 1.000_023_7);
    p = madd::<FMA>(p, t, -1.265_512_2);
    t * exp1::<FMA>(madd::<FMA>(-z, z, p))
}

/// Exact GELU `x·Φ(x)`, with `Φ(x) = erfc(-x/√2)/2` computed from the tail that does not cancel.
#[inline(always)]
fn gelu1<const FMA: bool>(x: f32) -> f32 {
    let half_tail = 0.5 * erfc_nonneg::<FMA>(x.abs() * std::f32::consts::FRAC_1_SQRT_2);
    let cdf = if x >= 0.0 { 1.0 - half_tail } else { half_tail };
    x * cdf
}

/// `erf(x)`: the Taylor series below |x| = 0.5 (relative error < 2e-8 there), `1 - erfc(|x|)`
/// above it, with the sign of `x`.
#[inline(always)]
fn erf1<const FMA: bool>(x: f32) -> f32 {
    let a = x.abs();
    let a2 = a * a;
    // 2/√π (x - x³/3 + x⁵/10 - x⁷/42 + x⁹/216 - x¹¹/1320)
    let mut p = -1.0 / 1320.0;
    p = madd::<FMA>(p, a2, 1.0 / 216.0);
    p = madd::<FMA>(p, a2, -1.0 / 42.0);
    p = madd::<FMA>(p, a2, 1.0 / 10.0);
    p = madd::<FMA>(p, a2, -1.0 / 3.0);
    p = madd::<FMA>(p, a2, 1.0);
    let series = p * a * std::f32::consts::FRAC_2_SQRT_PI;
    let tail = 1.0 - erfc_nonneg::<FMA>(a);
    let magnitude = if a < 0.5 { series } else { tail };
    magnitude.copysign(x)
}

/// The logistic sigmoid `1 / (1 + e^(-x))`.
#[inline(always)]
fn sigmoid1<const FMA: bool>(x: f32) -> f32 {
    1.0 / (1.0 + exp1::<FMA>(-x))
}

/// `ln(1 + t)` for `t` in `[0, 1]`: `2·atanh(s)` with `s = t/(2 + t)` in `[0, 1/3]` (no
/// cancellation for small `t`), by its odd series to `s¹³` (the first term left out is
/// below 1.3e-8 of the sum).
#[inline(always)]
fn ln_1p_unit<const FMA: bool>(t: f32) -> f32 {
    let s = t / (2.0 + t);
    let s2 = s * s;
    let mut p = 1.0 / 13.0;
    for c in [1.0 / 11.0, 1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0] {
        p = madd::<FMA>(p, s2, c);
    }
    2.0 * s * p
}

/// `softplus(x) = ln(1 + eˣ) = max(x, 0) + ln(1 + e^(-|x|))`, without overflow.
#[inline(always)]
fn softplus1<const FMA: bool>(x: f32) -> f32 {
    x.max(0.0) + ln_1p_unit::<FMA>(exp1::<FMA>(-x.abs()))
}

/// QuickGELU `x·σ(1.702x) = x / (1 + e^(-1.702x))`.
#[inline(always)]
fn quick_gelu1<const FMA: bool>(x: f32) -> f32 {
    x / (1.0 + exp1::<FMA>(-1.702 * x))
}

/// Independent accumulators of a reduction: one per vector lane, so that the loop is not one
/// serial chain of additions (float addition does not reassociate by itself).
const LANES: usize = 16;

/// In-place softmax of one row: max, `exp(x - max)` with the sum, scale.
#[inline(always)]
fn softmax_row<const FMA: bool>(row: &mut [f32]) {
    let mut maxes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, &x) in maxes.iter_mut().zip(chunk) {
            *m = if x > *m { x } else { *m };
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&maxes)
        .fold(f32::NEG_INFINITY, |m, &x| m.max(x));

    let mut sums = [0.0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (s, x) in sums.iter_mut().zip(chunk) {
            *x = exp1::<FMA>(*x - max);
            *s += *x;
        }
    }
    let mut sum = 0.0;
    for x in chunks.into_remainder() {
        *x = exp1::<FMA>(*x - max);
        sum += *x;
    }
    let inv = 1.0 / (sum + sums.iter().sum::<f32>());
    for x in row.iter_mut() {
        *x *= inv;
    }
}

/// Declares `pub fn $name(xs: &mut [f32])` applying `$body::<FMA>` to every element, compiled
/// per ISA and dispatched at run time.
macro_rules! elementwise {
    ($(#[$doc:meta])* $name:ident, $body:ident) => {
        $(#[$doc])*
        pub fn $name(xs: &mut [f32]) {
            #[inline(always)]
            fn run<const FMA: bool>(xs: &mut [f32]) {
                for x in xs.iter_mut() {
                    *x = $body::<FMA>(*x);
                }
            }
            dispatch!(run, xs)
        }
    };
}

/// Calls `$run::<FMA>($($arg),*)` compiled for the best ISA of this CPU.
macro_rules! dispatch {
    ($run:ident, $($arg:expr),*) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn avx512(xs: &mut [f32]) { $run::<true>(xs) }
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2(xs: &mut [f32]) { $run::<true>(xs) }
            match isa() {
                // SAFETY: `isa()` detected these features on this CPU.
                Isa::Avx512 => unsafe { avx512($($arg),*) },
                Isa::Avx2Fma => unsafe { avx2($($arg),*) },
                Isa::Baseline => $run::<false>($($arg),*),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        { $run::<false>($($arg),*) }
    }};
}

elementwise!(
    /// `e^x` in place.
    exp_in_place,
    exp1
);
elementwise!(
    /// Exact GELU in place.
    gelu_in_place,
    gelu1
);
elementwise!(
    /// `erf(x)` in place.
    erf_in_place,
    erf1
);
elementwise!(
    /// The logistic sigmoid in place.
    sigmoid_in_place,
    sigmoid1
);
elementwise!(
    /// `softplus(x) = ln(1 + eˣ)` in place.
    softplus_in_place,
    softplus1
);
elementwise!(
    /// QuickGELU in place.
    quick_gelu_in_place,
    quick_gelu1
);

/// `grads[i] *= $derivative(xs[i])`, compiled for the best ISA of this CPU.
macro_rules! backward {
    ($(#[$doc:meta])* $name:ident, $derivative:ident) => {
        $(#[$doc])*
        pub fn $name(xs: &[f32], grads: &mut [f32]) {
            assert_eq!(xs.len(), grads.len(), concat!(stringify!($name), ": lengths differ"));
            #[inline(always)]
            fn run<const FMA: bool>(xs: &[f32], grads: &mut [f32]) {
                for (g, &x) in grads.iter_mut().zip(xs) {
                    *g *= $derivative::<FMA>(x);
                }
            }
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512(xs: &[f32], grads: &mut [f32]) {
                    run::<true>(xs, grads)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2(xs: &[f32], grads: &mut [f32]) {
                    run::<true>(xs, grads)
                }
                match isa() {
                    // SAFETY: `isa()` detected these features on this CPU.
                    Isa::Avx512 => unsafe { avx512(xs, grads) },
                    Isa::Avx2Fma => unsafe { avx2(xs, grads) },
                    Isa::Baseline => run::<false>(xs, grads),
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            run::<false>(xs, grads)
        }
    };
}

/// `d/dx x·σ(1.702x) = σ + 1.702·x·σ·(1 − σ)` with `σ = σ(1.702x)`.
#[inline(always)]
fn quick_gelu_slope<const FMA: bool>(x: f32) -> f32 {
    let s = sigmoid1::<FMA>(1.702 * x);
    madd::<FMA>(1.702 * x * s, 1.0 - s, s)
}

/// `d/dx x·Φ(x) = Φ(x) + x·φ(x)` (exact GELU).
#[inline(always)]
fn gelu_slope<const FMA: bool>(x: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let half_tail = 0.5 * erfc_nonneg::<FMA>(x.abs() * std::f32::consts::FRAC_1_SQRT_2);
    let cdf = if x >= 0.0 { 1.0 - half_tail } else { half_tail };
    madd::<FMA>(x * INV_SQRT_2PI, exp1::<FMA>(-0.5 * x * x), cdf)
}

backward!(
    /// QuickGELU's backward: `grads[i] *= d/dx x·σ(1.702x)` at `x = xs[i]`.
    quick_gelu_backward,
    quick_gelu_slope
);
backward!(
    /// Softplus's backward: `grads[i] *= σ(x)` at `x = xs[i]`.
    softplus_backward,
    sigmoid1
);
backward!(
    /// Exact GELU's backward: `grads[i] *= Φ(x) + x·φ(x)` at `x = xs[i]`.
    gelu_backward,
    gelu_slope
);

/// Softmax of every row of length `row_len` of `xs`, in place.
pub fn softmax_rows_in_place(xs: &mut [f32], row_len: usize) {
    assert!(
        row_len > 0 && xs.len().is_multiple_of(row_len),
        "softmax rows: {} by {row_len}",
        xs.len()
    );
    #[inline(always)]
    fn run<const FMA: bool>(xs: &mut [f32], row_len: usize) {
        for row in xs.chunks_exact_mut(row_len) {
            softmax_row::<FMA>(row);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn avx512(xs: &mut [f32], row_len: usize) {
            run::<true>(xs, row_len)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(xs: &mut [f32], row_len: usize) {
            run::<true>(xs, row_len)
        }
        match isa() {
            // SAFETY: `isa()` detected these features on this CPU.
            Isa::Avx512 => unsafe { avx512(xs, row_len) },
            Isa::Avx2Fma => unsafe { avx2(xs, row_len) },
            Isa::Baseline => run::<false>(xs, row_len),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    run::<false>(xs, row_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf to double precision by its Taylor series, for |x| < 3.
    fn erf_series(x: f64) -> f64 {
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 * sum.abs().max(1e-300) {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    /// erfc(z) for z >= 3 by its continued fraction (no cancellation in the tail).
    fn erfc_tail(z: f64) -> f64 {
        let mut f = z;
        for k in (1..80).rev() {
            f = z + (k as f64 / 2.0) / f;
        }
        (-z * z).exp() / (std::f64::consts::PI.sqrt() * f)
    }

    /// The standard normal CDF to double precision, accurate in both tails.
    fn phi(x: f64) -> f64 {
        let z = x / std::f64::consts::SQRT_2;
        if z <= -3.0 {
            0.5 * erfc_tail(-z)
        } else if z >= 3.0 {
            1.0 - 0.5 * erfc_tail(z)
        } else {
            0.5 * (1.0 + erf_series(z))
        }
    }

    fn grid() -> Vec<f32> {
        (-4000..=4000).map(|i| i as f32 * 0.0025).collect()
    }

    fn check(name: &str, kernel: fn(&mut [f32]), exact: impl Fn(f64) -> f64, rel: f64) {
        let xs = grid();
        let mut ys = xs.clone();
        kernel(&mut ys);
        for (&x, &y) in xs.iter().zip(&ys) {
            let want = exact(x as f64);
            let err = (y as f64 - want).abs();
            assert!(
                err <= rel * want.abs() + 1e-30,
                "{name}({x}) = {y}, exact {want}, relative error {}",
                err / want.abs()
            );
        }
    }

    #[test]
    fn exp_is_within_two_ulp_over_its_range() {
        check("exp", exp_in_place, f64::exp, 2.5e-7);
        let mut wide: Vec<f32> = (-865..=886).map(|i| i as f32 * 0.1).collect();
        let xs = wide.clone();
        exp_in_place(&mut wide);
        for (&x, &y) in xs.iter().zip(&wide) {
            let want = (x as f64).exp();
            assert!(
                (y as f64 - want).abs() <= 3e-7 * want,
                "exp({x}) = {y}, exact {want}"
            );
        }
    }

    #[test]
    fn exp_saturates_instead_of_producing_garbage() {
        let mut xs = [-1000.0f32, -88.0, 89.0, f32::NEG_INFINITY];
        exp_in_place(&mut xs);
        assert!(
            xs[0] >= 0.0 && xs[0] < 3e-38 && xs[1] < 3e-38 && xs[3] < 3e-38,
            "{xs:?}"
        );
        assert!(xs[2] > 1e38 && xs[2].is_finite());
    }

    #[test]
    fn gelu_keeps_its_relative_accuracy_in_both_tails() {
        let exact = |x: f64| x * phi(x);
        let xs = grid();
        let mut ys = xs.clone();
        gelu_in_place(&mut ys);
        for (&x, &y) in xs.iter().zip(&ys) {
            let want = exact(x as f64);
            // erfcc's fractional error, plus float round-off of x/√2 amplified by x² in the tail.
            let tol = 4e-7 * want.abs() * (1.0 + (x as f64).powi(2)) + 1e-30;
            assert!(
                (y as f64 - want).abs() <= tol,
                "gelu({x}) = {y}, exact {want}"
            );
        }
    }

    #[test]
    fn erf_keeps_its_relative_accuracy_near_zero_and_in_the_tails() {
        let erf = |x: f64| {
            if x.abs() < 3.0 {
                erf_series(x)
            } else {
                x.signum() * (1.0 - erfc_tail(x.abs()))
            }
        };
        let mut xs = grid();
        xs.extend([1e-30f32, -3e-8, 1e-4, 0.4999, 0.5, 0.5001]);
        let mut ys = xs.clone();
        erf_in_place(&mut ys);
        for (&x, &y) in xs.iter().zip(&ys) {
            let want = erf(x as f64);
            let tol = 3e-7 * want.abs() + 1e-37;
            assert!(
                (y as f64 - want).abs() <= tol,
                "erf({x}) = {y}, exact {want}"
            );
        }
    }

    #[test]
    fn sigmoid_matches_its_formula() {
        check(
            "sigmoid",
            sigmoid_in_place,
            |x| 1.0 / (1.0 + (-x).exp()),
            1e-6,
        );
    }

    #[test]
    fn softplus_keeps_its_relative_accuracy_in_both_tails() {
        let exact = |x: f64| x.max(0.0) + (-x.abs()).exp().ln_1p();
        check("softplus", softplus_in_place, exact, 4e-7);
        let mut tails = [-80.0f32, -30.0, -17.0, 17.0, 30.0, 1e6];
        let xs = tails;
        softplus_in_place(&mut tails);
        for (&x, &y) in xs.iter().zip(&tails) {
            let want = exact(x as f64);
            assert!(
                (y as f64 - want).abs() <= 4e-7 * want,
                "softplus({x}) = {y}, exact {want}"
            );
        }
    }

    #[test]
    fn softplus_backward_is_the_sigmoid() {
        let xs = grid();
        let mut grads: Vec<f32> = xs.iter().map(|x| 0.5 + x.abs()).collect();
        let upstream = grads.clone();
        softplus_backward(&xs, &mut grads);
        for ((&x, &g), &up) in xs.iter().zip(&grads).zip(&upstream) {
            let expected = up as f64 / (1.0 + (-x as f64).exp());
            assert!(
                (g as f64 - expected).abs() <= 1e-6 * expected,
                "x = {x}: {g} vs {expected}"
            );
        }
    }

    #[test]
    fn quick_gelu_matches_its_formula() {
        // 3e-6: the f32 rounding of 1.702·x, amplified by |1.702·x| ≤ 17 in the tail.
        check(
            "quick_gelu",
            quick_gelu_in_place,
            |x| x / (1.0 + (-1.702 * x).exp()),
            3e-6,
        );
    }

    #[test]
    fn quick_gelu_backward_matches_central_differences() {
        let xs: Vec<f32> = (-400..=400).map(|i| i as f32 * 0.025).collect();
        let mut grads: Vec<f32> = xs.iter().map(|x| 0.5 + x.abs()).collect();
        let upstream = grads.clone();
        quick_gelu_backward(&xs, &mut grads);
        let f = |x: f64| x / (1.0 + (-1.702 * x).exp());
        for ((&x, &g), &up) in xs.iter().zip(&grads).zip(&upstream) {
            let h = 1e-5;
            let slope = (f(x as f64 + h) - f(x as f64 - h)) / (2.0 * h);
            let expected = slope * up as f64;
            assert!(
                (g as f64 - expected).abs() <= 1e-5 * (1.0 + expected.abs()),
                "x = {x}: {g} vs {expected}"
            );
        }
    }

    #[test]
    fn gelu_backward_matches_central_differences() {
        let xs: Vec<f32> = (-400..=400).map(|i| i as f32 * 0.025).collect();
        let mut grads: Vec<f32> = xs.iter().map(|x| 0.5 + x.abs()).collect();
        let upstream = grads.clone();
        gelu_backward(&xs, &mut grads);
        let erf = |z: f64| {
            if z.abs() < 3.0 {
                erf_series(z)
            } else {
                z.signum() * (1.0 - erfc_tail(z.abs()))
            }
        };
        let f = |x: f64| x * 0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2));
        for ((&x, &g), &up) in xs.iter().zip(&grads).zip(&upstream) {
            let h = 1e-5;
            let expected = (f(x as f64 + h) - f(x as f64 - h)) / (2.0 * h) * up as f64;
            assert!(
                (g as f64 - expected).abs() <= 1e-5 * (1.0 + expected.abs()),
                "x = {x}: {g} vs {expected}"
            );
        }
    }

    #[test]
    fn softmax_rows_sum_to_one_and_match_the_formula() {
        let mut xs: Vec<f32> = (0..3 * 197)
            .map(|i| ((i * 37) % 101) as f32 * 0.37 - 20.0)
            .collect();
        let reference: Vec<f64> = xs
            .chunks(197)
            .flat_map(|row| {
                let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
                let e: Vec<f64> = row.iter().map(|&x| (x as f64 - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                e.into_iter().map(move |v| v / sum)
            })
            .collect();
        softmax_rows_in_place(&mut xs, 197);
        for row in xs.chunks(197) {
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "row sums to {sum}");
        }
        for (&y, &want) in xs.iter().zip(&reference) {
            assert!(
                (y as f64 - want).abs() <= 2e-6 * want + 1e-12,
                "{y} vs {want}"
            );
        }
    }

    #[test]
    fn every_isa_path_agrees_with_the_baseline() {
        let xs = grid();
        let mut fast = xs.clone();
        gelu_in_place(&mut fast);
        let slow: Vec<f32> = xs.iter().map(|&x| gelu1::<false>(x)).collect();
        for ((a, b), x) in fast.iter().zip(&slow).zip(&xs) {
            let tol = 4e-7 * b.abs() * (1.0 + x * x) + 1e-30;
            assert!((a - b).abs() <= tol, "gelu({x}): {a} vs {b}");
        }
    }
}
