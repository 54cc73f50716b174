//! Cross-checks against the reference implementations on fixed pseudo-random masks.
//!
//! How the expected numbers were produced (Python 3.11, numpy 1.26.4, scipy 1.17.1):
//! - `DM2D`, `DM3D`: the real DeepMind package, PyPI `surface-distance` 0.1
//!   (`compute_surface_distances`, `compute_surface_dice_at_tolerance`, `compute_robust_hausdorff(·, 95)`,
//!   `compute_average_surface_distance`, `compute_dice_coefficient`).
//! - `SLAB`: MedCLIPSeg's own `utils/SurfaceDice.py` (HealthX-Lab/MedCLIPSeg at 8d7ef36), called as
//!   its `eval.py` does: `compute_surface_distances(gt[..., None], pred[..., None], [1, 1, 1])`.
//! - `MONAI`: MONAI itself was not installed (it needs torch); these come from a scipy transcription
//!   of metrics spec §2.2 (`edges = m ^ binary_erosion(m)`, `distance_transform_edt(~edges_other,
//!   sampling)`, NSD by counts, `max(np.quantile(d, 0.95))` per direction, pooled mean for ASSD).
//!
//! The masks come from [`blob`], a splitmix64 noise field smoothed by 3x3 (3x3x3) majority votes,
//! written identically in the Python generator so both sides see the same pixels.

use crate::dice::{DiceConvention, dice};
use crate::mask::{BinaryMask, Mask2d, Mask3d};
use crate::protocol::{MetricsRequest, Protocol, evaluate_masks_2d};
use crate::surface::SurfaceDistances;

fn splitmix_noise(len: usize, seed: u64, permille: u64) -> Vec<bool> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            z % 1000 < permille
        })
        .collect()
}

/// `blob(shape, seed, permille, rounds)` of the Python generator, for 2-D (depth 1) or 3-D shapes.
fn blob(shape: [usize; 3], seed: u64, permille: u64, rounds: usize) -> Vec<bool> {
    let [d, h, w] = shape;
    let mut m = splitmix_noise(d * h * w, seed, permille);
    let flat = d == 1;
    for _ in 0..rounds {
        let mut next = vec![false; m.len()];
        for z in 0..d {
            for r in 0..h {
                for c in 0..w {
                    let mut count = 0;
                    for dz in if flat { 1..2 } else { 0..3 } {
                        for dr in 0..3 {
                            for dc in 0..3 {
                                let (zz, rr, cc) = (z + dz, r + dr, c + dc);
                                if zz >= 1 && zz <= d && rr >= 1 && rr <= h && cc >= 1 && cc <= w {
                                    count += usize::from(m[((zz - 1) * h + rr - 1) * w + cc - 1]);
                                }
                            }
                        }
                    }
                    next[(z * h + r) * w + c] = count >= if flat { 5 } else { 14 };
                }
            }
        }
        m = next;
    }
    m
}

fn blobs_2d() -> (Mask2d, Mask2d) {
    let a = Mask2d::new(40, 52, blob([1, 40, 52], 1, 450, 2)).unwrap();
    let b = Mask2d::new(40, 52, blob([1, 40, 52], 2, 450, 2)).unwrap();
    (a, b)
}

fn blobs_3d() -> (Mask3d, Mask3d) {
    let a = Mask3d::new(7, 12, 14, blob([7, 12, 14], 3, 500, 1)).unwrap();
    let b = Mask3d::new(7, 12, 14, blob([7, 12, 14], 4, 500, 1)).unwrap();
    (a, b)
}

#[track_caller]
fn close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0),
        "rust={actual}, python={expected}"
    );
}

const TOLERANCES_2D: [f64; 4] = [0.5, 1.0, 2.0, 3.0];

#[test]
fn generator_matches_python_counts() {
    let (a, b) = blobs_2d();
    assert_eq!((a.count(), b.count()), (731, 753));
    let (va, vb) = blobs_3d();
    assert_eq!((va.count(), vb.count()), (258, 311));
}

#[test]
fn deepmind_2d_matches_surface_distance_package() {
    let (a, b) = blobs_2d();
    close(
        dice(&a, &b, DiceConvention::DeepMind).unwrap(),
        0.3921832884097035,
    );
    // (spacing, NSD at TOLERANCES_2D, HD95, ASD gt->pred, ASD pred->gt, contour lengths)
    type Row = ([f64; 2], [f64; 4], f64, f64, f64, f64, f64);
    let rows: [Row; 4] = [
        (
            [1.0, 1.0],
            [
                0.3493059452934378,
                0.7055448705921394,
                0.8931366999542257,
                0.9607263370963429,
            ],
            3.0,
            0.9822068807172034,
            1.0349199434599274,
            548.9259735953043,
            590.4823227814084,
        ),
        (
            [1.0, 0.5],
            [
                0.602995462598248,
                0.8319007586175603,
                0.9595403344910143,
                0.989658960088258,
            ],
            2.0615528128088303,
            0.6512382172578768,
            0.6624734874182214,
            424.61995336747543,
            454.4183272437242,
        ),
        (
            [1.25, 2.0],
            [
                0.3499185496693384,
                0.3499185496693384,
                0.7056777606843263,
                0.8468218110330449,
            ],
            4.716990566028302,
            1.4747373893665545,
            1.64362206923653,
            906.8878962253112,
            978.0813443384668,
        ),
        (
            [0.7, 1.3],
            [
                0.3501136145411232,
                0.6056069172960947,
                0.8842317316016063,
                0.9596501503584349,
            ],
            2.95296461204668,
            0.8711324332367838,
            0.9924095683352179,
            564.0968596094617,
            608.7381649757183,
        ),
    ];
    for (spacing, nsd, hd95, asd_gt, asd_pred, len_gt, len_pred) in rows {
        let sd = SurfaceDistances::deepmind_2d(&a, &b, spacing).unwrap();
        for (t, expected) in TOLERANCES_2D.iter().zip(nsd) {
            close(sd.surface_dice(*t), expected);
        }
        close(sd.robust_hausdorff(95.0).unwrap(), hd95);
        let (g, p) = sd.average_surface_distance();
        close(g, asd_gt);
        close(p, asd_pred);
        close(sd.gt_surface(), len_gt);
        close(sd.pred_surface(), len_pred);
    }
}

#[test]
fn monai_2d_matches_scipy_transcription() {
    let (a, b) = blobs_2d();
    // (spacing, NSD at TOLERANCES_2D, HD95, ASSD); 417 and 444 edge pixels.
    let rows: [([f64; 2], [f64; 4], f64, f64); 4] = [
        (
            [1.0, 1.0],
            [
                0.22067363530778164,
                0.5563298490127758,
                0.8083623693379791,
                0.9337979094076655,
            ],
            3.2509323832274966,
            1.3392196949108486,
        ),
        (
            [1.0, 0.5],
            [
                0.4819976771196283,
                0.7096399535423926,
                0.9314750290360047,
                0.9860627177700348,
            ],
            2.23606797749979,
            0.8689091172362068,
        ),
        (
            [1.25, 2.0],
            [
                0.22067363530778164,
                0.22067363530778164,
                0.5563298490127758,
                0.7491289198606271,
            ],
            6.0,
            2.0787786949279106,
        ),
        (
            [0.7, 1.3],
            [
                0.22067363530778164,
                0.4738675958188153,
                0.8176538908246226,
                0.9442508710801394,
            ],
            3.8881491952362817,
            1.24443517725626,
        ),
    ];
    for (spacing, nsd, hd95, assd) in rows {
        let sd = SurfaceDistances::monai_2d(&a, &b, spacing).unwrap();
        assert_eq!((sd.gt_weights.len(), sd.pred_weights.len()), (417, 444));
        for (t, expected) in TOLERANCES_2D.iter().zip(nsd) {
            close(sd.surface_dice(*t), expected);
        }
        close(sd.quantile_hausdorff(95.0).unwrap(), hd95);
        close(sd.assd(), assd);
    }
}

#[test]
fn medclipseg_slab_matches_the_repository_code() {
    let (a, b) = blobs_2d();
    let mut request = MetricsRequest::new(Protocol::MedClipSeg);
    request.tolerances = vec![1.0, 2.0, 3.0];
    let report = evaluate_masks_2d(&a, &b, &request).unwrap();
    close(report.dsc, 0.3921832884070608);
    close(report.nsd[0].1, 0.7890426538058838);
    close(report.nsd[1].1, 0.9156669106334326);
    close(report.nsd[2].1, 0.9675077863451813);
    assert_eq!(report.hd95, 3.0);
    let sd = SurfaceDistances::medclipseg_slab(&a, &b, [1.0, 1.0]).unwrap();
    close(sd.gt_surface(), 1694.1535818397813);
    close(sd.pred_surface(), 1751.7795409220325);
    // DeepMind package on gt[..., None] with spacing (0.5, 1.5, 1.0), tolerance 2.
    let aniso = SurfaceDistances::medclipseg_slab(&a, &b, [0.5, 1.5]).unwrap();
    close(aniso.surface_dice(2.0), 0.9445754297250093);
}

#[test]
fn deepmind_and_monai_3d_match() {
    let (a, b) = blobs_3d();
    close(
        dice(&a, &b, DiceConvention::DeepMind).unwrap(),
        0.43233743409490333,
    );
    // (spacing, DeepMind NSD@1, NSD@2, HD95, ASD gt->pred, ASD pred->gt, gt area,
    //  MONAI NSD@1, NSD@2, HD95, ASSD)
    type Row = ([f64; 3], [f64; 2], f64, [f64; 2], f64, [f64; 2], f64, f64);
    let rows: [Row; 2] = [
        (
            [1.0, 1.0, 1.0],
            [0.9430370697146891, 0.9946642889525061],
            std::f64::consts::SQRT_2, // printed by Python as 1.4142135623730951
            [0.32515071324572586, 0.3566806337202794],
            471.1278466774619,
            [0.821969696969697, 0.9659090909090909],
            2.0,
            0.7178842336339476,
        ),
        (
            [2.0, 0.75, 1.5],
            [0.8623059981238953, 0.9743958655518846],
            2.0,
            [0.38139831369374194, 0.37463670540044275],
            925.9512911589744,
            [0.6818181818181818, 0.9109848484848485],
            2.25,
            0.7969310937191301,
        ),
    ];
    for (spacing, dm_nsd, dm_hd, asd, area, mo_nsd, mo_hd, mo_assd) in rows {
        let dm = SurfaceDistances::deepmind_3d(&a, &b, spacing).unwrap();
        close(dm.surface_dice(1.0), dm_nsd[0]);
        close(dm.surface_dice(2.0), dm_nsd[1]);
        close(dm.robust_hausdorff(95.0).unwrap(), dm_hd);
        let (g, p) = dm.average_surface_distance();
        close(g, asd[0]);
        close(p, asd[1]);
        close(dm.gt_surface(), area);
        let mo = SurfaceDistances::monai_3d(&a, &b, spacing).unwrap();
        assert_eq!((mo.gt_weights.len(), mo.pred_weights.len()), (244, 284));
        close(mo.surface_dice(1.0), mo_nsd[0]);
        close(mo.surface_dice(2.0), mo_nsd[1]);
        close(mo.quantile_hausdorff(95.0).unwrap(), mo_hd);
        close(mo.assd(), mo_assd);
    }
}
