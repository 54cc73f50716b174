//! Invariants of the metrics on random masks: identity, symmetry, monotonicity in the tolerance,
//! and scaling with the spacing.

use proptest::prelude::*;

use crate::dice::dice;
use crate::mask::{BinaryMask, Mask2d, Mask3d};
use crate::protocol::{MedClipSegSurface, Protocol};
use crate::surface::SurfaceDistances;

const PROTOCOLS: [Protocol; 3] = [Protocol::DeepMind, Protocol::Monai, Protocol::MedClipSeg];

fn mask_pair_2d() -> impl Strategy<Value = (Mask2d, Mask2d)> {
    (1usize..12, 1usize..12, 0.05f64..0.7).prop_flat_map(|(r, c, density)| {
        let cells = move || proptest::collection::vec(proptest::bool::weighted(density), r * c);
        (cells(), cells())
            .prop_map(move |(a, b)| (Mask2d::new(r, c, a).unwrap(), Mask2d::new(r, c, b).unwrap()))
    })
}

fn mask_pair_3d() -> impl Strategy<Value = (Mask3d, Mask3d)> {
    (1usize..5, 1usize..6, 1usize..6).prop_flat_map(|(d, r, c)| {
        let cells = move || proptest::collection::vec(proptest::bool::weighted(0.4), d * r * c);
        (cells(), cells()).prop_map(move |(a, b)| {
            (
                Mask3d::new(d, r, c, a).unwrap(),
                Mask3d::new(d, r, c, b).unwrap(),
            )
        })
    })
}

fn spacing() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.5), Just(1.0), Just(1.25), Just(2.0), 0.2f64..3.0]
}

fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Like [`same`], but MedCLIPSeg's absolute `+1e-8` in the denominators is allowed for.
fn same_for(p: Protocol, a: f64, b: f64) -> bool {
    match p {
        Protocol::MedClipSeg => same(a, b) || (a - b).abs() <= 1e-6,
        _ => same(a, b),
    }
}

fn distances_2d(p: Protocol, a: &Mask2d, b: &Mask2d, s: [f64; 2]) -> SurfaceDistances {
    p.surface_distances_2d(a, b, s, MedClipSegSurface::Slab)
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn identical_masks_score_perfectly((a, _) in mask_pair_2d(), s0 in spacing(), s1 in spacing()) {
        prop_assume!(!a.is_empty());
        for p in PROTOCOLS {
            let d = distances_2d(p, &a, &a, [s0, s1]);
            prop_assert!(same_for(p, p.nsd(&d, 0.0), 1.0), "{p:?}");
            prop_assert_eq!(p.hd95(&d), 0.0);
            prop_assert_eq!(p.assd(&d), 0.0);
            prop_assert!(same_for(p, dice(&a, &a, p.dice_convention()).unwrap(), 1.0));
        }
    }

    #[test]
    fn dsc_nsd_hd95_assd_are_symmetric((a, b) in mask_pair_2d(), s0 in spacing(), s1 in spacing()) {
        for p in PROTOCOLS {
            let ab = distances_2d(p, &a, &b, [s0, s1]);
            let ba = distances_2d(p, &b, &a, [s0, s1]);
            prop_assert!(same(p.hd95(&ab), p.hd95(&ba)), "{p:?}");
            prop_assert!(same(p.assd(&ab), p.assd(&ba)), "{p:?}");
            // MedCLIPSeg and MONAI treat an empty ground truth specially, so NSD is symmetric
            // only when both masks have a surface.
            if !a.is_empty() && !b.is_empty() {
                for t in [0.0, 1.0, 2.5] {
                    prop_assert!(same(p.nsd(&ab, t), p.nsd(&ba, t)), "{p:?}");
                }
                let c = p.dice_convention();
                prop_assert!(same(dice(&a, &b, c).unwrap(), dice(&b, &a, c).unwrap()));
            }
        }
    }

    #[test]
    fn nsd_grows_with_the_tolerance((a, b) in mask_pair_2d(), s0 in spacing(), s1 in spacing()) {
        for p in PROTOCOLS {
            let d = distances_2d(p, &a, &b, [s0, s1]);
            let mut last = f64::NEG_INFINITY;
            for t in [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 100.0] {
                let v = p.nsd(&d, t);
                if v.is_nan() {
                    continue;
                }
                prop_assert!(v >= last, "{p:?}: {v} < {last} at {t}");
                prop_assert!((0.0..=1.0).contains(&v));
                last = v;
            }
        }
    }

    #[test]
    fn scaling_spacing_and_tolerance_together_keeps_nsd(
        (a, b) in mask_pair_2d(), s0 in spacing(), s1 in spacing(), k in prop_oneof![Just(2.0), Just(0.5), Just(3.0)]
    ) {
        // The slab's third spacing stays 1, so it is not scale invariant; its clean variant is.
        for (p, surface) in [
            (Protocol::DeepMind, MedClipSegSurface::Slab),
            (Protocol::Monai, MedClipSegSurface::Slab),
            (Protocol::MedClipSeg, MedClipSegSurface::Contour),
        ] {
            let base = p.surface_distances_2d(&a, &b, [s0, s1], surface).unwrap();
            let scaled = p.surface_distances_2d(&a, &b, [k * s0, k * s1], surface).unwrap();
            for t in [0.0, 1.0, 2.0, 4.0] {
                prop_assert!(same_for(p, p.nsd(&base, t), p.nsd(&scaled, k * t)), "{p:?} t={t}");
            }
            let (h0, h1) = (p.hd95(&base), p.hd95(&scaled));
            prop_assert!(same(h0 * k, h1) || (h0.is_infinite() && h1.is_infinite()), "{p:?}: {h0} {h1}");
            let (a0, a1) = (p.assd(&base), p.assd(&scaled));
            prop_assert!(same(a0 * k, a1) || (a0.is_infinite() && a1.is_infinite()), "{p:?}: {a0} {a1}");
        }
    }

    #[test]
    fn properties_hold_in_3d((a, b) in mask_pair_3d(), s in (spacing(), spacing(), spacing())) {
        let spacing = [s.0, s.1, s.2];
        for p in [Protocol::DeepMind, Protocol::Monai] {
            let ab = p.surface_distances_3d(&a, &b, spacing).unwrap();
            let ba = p.surface_distances_3d(&b, &a, spacing).unwrap();
            prop_assert!(same(p.hd95(&ab), p.hd95(&ba)));
            prop_assert!(same(p.assd(&ab), p.assd(&ba)));
            let mut last = f64::NEG_INFINITY;
            for t in [0.0, 1.0, 2.0, 4.0] {
                let v = p.nsd(&ab, t);
                prop_assert!(same(v, p.nsd(&ba, t)));
                if !v.is_nan() {
                    prop_assert!(v >= last);
                    last = v;
                }
            }
            let scaled = p.surface_distances_3d(&a, &b, [2.0 * s.0, 2.0 * s.1, 2.0 * s.2]).unwrap();
            prop_assert!(same(p.nsd(&ab, 1.5), p.nsd(&scaled, 3.0)));
            let (h0, h1) = (p.hd95(&ab), p.hd95(&scaled));
            prop_assert!(same(2.0 * h0, h1) || (h0.is_infinite() && h1.is_infinite()));
            if !a.is_empty() {
                let aa = p.surface_distances_3d(&a, &a, spacing).unwrap();
                prop_assert!((p.nsd(&aa, 0.0) - 1.0).abs() < 1e-12);
                prop_assert_eq!(p.hd95(&aa), 0.0);
            }
        }
    }
}
