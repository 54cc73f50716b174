//! Dice similarity coefficient with every empty-mask convention of the references (metrics spec §1).

use crate::error::Result;
use crate::mask::{BinaryMask, check_same_shape};

/// How a reference computes DSC = 2|G ∩ P| / (|G| + |P|), in particular on empty masks.
///
/// | convention | both empty | G empty, P not | formula |
/// |---|---|---|---|
/// | `DeepMind` | NaN | 0 | 2I / (G + P) |
/// | `MonaiIgnoreEmpty` (MONAI default) | NaN | **NaN** | 2I / (G + P) |
/// | `MonaiKeepEmpty` (also VLSM-Adapter) | 1 | 0 | 2I / (G + P) |
/// | `MedPy` | 1 | 0 | 2I / (G + P) |
/// | `MetricsReloaded` | 1 | 0 | 2I / (G + P) |
/// | `MedClipSeg` | 1 | 0 | 2I / (G + P + 1e-8) |
/// | `LvitTest` | 0 | 0 | 2I / (G + P + 1e-5) |
/// | `LvitTrain` | 1 | ≈0 (1e-5 / (P + 1e-5)) | (2I + 1e-5) / (G + P + 1e-5) |
///
/// G not empty and P empty gives 0 everywhere (LViT-train: 1e-5 / (G + 1e-5)). Values are f64
/// (MONAI computes in float32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum DiceConvention {
    /// DeepMind `compute_dice_coefficient`.
    DeepMind,
    /// MONAI `compute_dice` / `DiceMetric` with `ignore_empty=True` (its default): NaN whenever G is empty.
    MonaiIgnoreEmpty,
    /// MONAI with `ignore_empty=False`.
    MonaiKeepEmpty,
    /// MedPy `dc`.
    MedPy,
    /// MetricsReloaded `dsc`.
    MetricsReloaded,
    /// MedCLIPSeg `eval.py` (+ its `compute_dice_coefficient`).
    #[default]
    MedClipSeg,
    /// LViT `test_model.py`.
    LvitTest,
    /// LViT training-time `utils.dice_coef`.
    LvitTrain,
}

/// DSC of two same-shape masks under `convention`.
pub fn dice<M: BinaryMask>(gt: &M, pred: &M, convention: DiceConvention) -> Result<f64> {
    check_same_shape(gt, pred)?;
    let (mut g, mut p, mut both) = (0u64, 0u64, 0u64);
    for (&a, &b) in gt.data().iter().zip(pred.data()) {
        g += u64::from(a);
        p += u64::from(b);
        both += u64::from(a & b);
    }
    Ok(dice_from_counts(g, p, both, convention))
}

/// DSC from the foreground counts |G|, |P| and |G ∩ P|.
pub fn dice_from_counts(gt: u64, pred: u64, intersection: u64, convention: DiceConvention) -> f64 {
    let sum = (gt + pred) as f64;
    let twice_i = 2.0 * intersection as f64;
    use DiceConvention::*;
    match convention {
        DeepMind if sum == 0.0 => f64::NAN,
        MonaiIgnoreEmpty if gt == 0 => f64::NAN,
        MonaiKeepEmpty | MedPy | MetricsReloaded | MedClipSeg if sum == 0.0 => 1.0,
        MedClipSeg => twice_i / (sum + 1e-8),
        LvitTest => twice_i / (sum + 1e-5),
        LvitTrain => (twice_i + 1e-5) / (sum + 1e-5),
        DeepMind | MonaiIgnoreEmpty | MonaiKeepEmpty | MedPy | MetricsReloaded => twice_i / sum,
    }
}

/// Harmonic mean `2ab / (a + b)` of two scores (the paper's HM of ID and OOD DSC); 0 when
/// both are 0.
pub fn harmonic_mean(a: f64, b: f64) -> f64 {
    if a + b <= 0.0 {
        0.0
    } else {
        2.0 * a * b / (a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{Mask2d, Mask3d};
    use proptest::prelude::*;

    const ALL: [DiceConvention; 8] = [
        DiceConvention::DeepMind,
        DiceConvention::MonaiIgnoreEmpty,
        DiceConvention::MonaiKeepEmpty,
        DiceConvention::MedPy,
        DiceConvention::MetricsReloaded,
        DiceConvention::MedClipSeg,
        DiceConvention::LvitTest,
        DiceConvention::LvitTrain,
    ];

    #[test]
    fn harmonic_mean_of_id_and_ood() {
        assert!((harmonic_mean(0.8, 0.4) - 0.64 / 1.2).abs() < 1e-15);
        assert_eq!(harmonic_mean(0.5, 0.5), 0.5);
        assert_eq!(harmonic_mean(0.9, 0.0), 0.0);
        assert_eq!(harmonic_mean(0.0, 0.0), 0.0);
    }

    #[test]
    fn hand_computed_2d_and_3d() {
        let gt = Mask2d::from_fn(4, 4, |r, c| r < 2 && c < 2); // 4 pixels
        let pred = Mask2d::from_fn(4, 4, |r, c| r < 2 && c < 3); // 6 pixels, 4 shared
        assert_eq!(dice(&gt, &pred, DiceConvention::DeepMind).unwrap(), 0.8);
        let v1 = Mask3d::from_fn(2, 2, 2, |z, _, _| z == 0);
        let v2 = Mask3d::from_fn(2, 2, 2, |_, r, _| r == 0);
        assert_eq!(dice(&v1, &v2, DiceConvention::MedPy).unwrap(), 0.5);
        assert!(
            (dice(&gt, &pred, DiceConvention::MedClipSeg).unwrap() - 8.0 / (10.0 + 1e-8)).abs()
                < 1e-15
        );
    }

    #[test]
    fn every_empty_mask_convention() {
        let empty = Mask2d::empty(3, 3);
        let some = Mask2d::from_fn(3, 3, |r, _| r == 0);
        let expect = |c: DiceConvention| -> (f64, f64, f64) {
            // (both empty, G empty & P not, G not & P empty)
            let both = dice(&empty, &empty, c).unwrap();
            let g_empty = dice(&empty, &some, c).unwrap();
            let p_empty = dice(&some, &empty, c).unwrap();
            (both, g_empty, p_empty)
        };
        let (b, g, p) = expect(DiceConvention::DeepMind);
        assert!(b.is_nan() && g == 0.0 && p == 0.0);
        let (b, g, p) = expect(DiceConvention::MonaiIgnoreEmpty);
        assert!(b.is_nan() && g.is_nan() && p == 0.0);
        for c in [
            DiceConvention::MonaiKeepEmpty,
            DiceConvention::MedPy,
            DiceConvention::MetricsReloaded,
            DiceConvention::MedClipSeg,
            DiceConvention::LvitTrain,
        ] {
            let (b, g, p) = expect(c);
            assert_eq!(b, 1.0, "{c:?}");
            // LViT-train's numerator epsilon leaves 1e-5 / (n + 1e-5) instead of 0.
            assert!(g.abs() < 1e-5 && p.abs() < 1e-5, "{c:?}");
        }
        let (b, g, p) = expect(DiceConvention::LvitTest);
        assert_eq!((b, g, p), (0.0, 0.0, 0.0));
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        assert!(
            dice(
                &Mask2d::empty(2, 3),
                &Mask2d::empty(3, 2),
                DiceConvention::DeepMind
            )
            .is_err()
        );
    }

    fn pair() -> impl Strategy<Value = (Mask2d, Mask2d)> {
        (1usize..10, 1usize..10).prop_flat_map(|(r, c)| {
            (
                proptest::collection::vec(any::<bool>(), r * c),
                proptest::collection::vec(any::<bool>(), r * c),
            )
                .prop_map(move |(a, b)| {
                    (Mask2d::new(r, c, a).unwrap(), Mask2d::new(r, c, b).unwrap())
                })
        })
    }

    proptest! {
        #[test]
        fn symmetric_bounded_and_one_on_identity((a, b) in pair()) {
            for c in ALL {
                let ab = dice(&a, &b, c).unwrap();
                let ba = dice(&b, &a, c).unwrap();
                if c != DiceConvention::MonaiIgnoreEmpty {
                    prop_assert!(ab == ba || (ab.is_nan() && ba.is_nan()));
                }
                prop_assert!(ab.is_nan() || (0.0..=1.0).contains(&ab));
                if !a.is_empty() {
                    let same = dice(&a, &a, c).unwrap();
                    prop_assert!((same - 1.0).abs() < 1e-5, "{c:?}: {same}");
                }
            }
        }
    }
}
