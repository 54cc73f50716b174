//! NIfTI volumes through the binary: `metrics` on two label volumes against the DeepMind
//! `surface-distance` package, with the header spacing.

use std::path::{Path, PathBuf};

use med_volumes::{OutputKind, Volume, diagonal_affine, write_nifti};

mod common;
use common::{medclipseg, ok};

const DIMS: [usize; 3] = [20, 16, 12];
const SPACING: [f64; 3] = [0.8, 1.1, 2.5];
const LESION: &str = "one bright round lesion in the center";

/// Label 1: an ellipsoid (voxel units); label 2: a box; written as a u8 NIfTI label map.
fn write_labels(path: &Path, centre: [f64; 3], radii: [f64; 3], lo: [usize; 3], hi: [usize; 3]) {
    let [nx, ny, nz] = DIMS;
    let mut data = Vec::with_capacity(nx * ny * nz);
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let idx = [i, j, k];
                let e: f64 = (0..3)
                    .map(|a| ((idx[a] as f64 - centre[a]) / radii[a]).powi(2))
                    .sum();
                let in_box = (0..3).all(|a| idx[a] >= lo[a] && idx[a] < hi[a]);
                data.push(if in_box {
                    2.0
                } else if e <= 1.0 {
                    1.0
                } else {
                    0.0
                });
            }
        }
    }
    let volume = Volume::new(DIMS, data, SPACING, diagonal_affine(SPACING)).unwrap();
    write_nifti(path, &volume, OutputKind::Labels).unwrap();
}

fn pair(dir: &Path) -> (PathBuf, PathBuf) {
    let gt = dir.join("gt.nii.gz");
    let pred = dir.join("pred.nii");
    write_labels(
        &gt,
        [9.5, 7.3, 5.6],
        [6.0, 4.5, 3.2],
        [1, 12, 1],
        [5, 15, 4],
    );
    write_labels(
        &pred,
        [10.4, 7.0, 6.1],
        [5.5, 5.0, 3.0],
        [2, 11, 1],
        [6, 15, 5],
    );
    (pred, gt)
}

fn metrics(pred: &Path, gt: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "metrics",
        "--pred",
        pred.to_str().unwrap(),
        "--gt",
        gt.to_str().unwrap(),
    ];
    args.extend_from_slice(&["--tolerance", "1", "--tolerance", "2"]);
    args.extend_from_slice(extra);
    let out = medclipseg(&args);
    assert!(
        out.status.success(),
        "medclipseg {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn assert_close(report: &serde_json::Value, key: &[&str], expected: f64) {
    let value = key.iter().fold(report, |v, k| &v[*k]).as_f64().unwrap();
    assert!(
        (value - expected).abs() < 1e-6,
        "{key:?}: {value} vs DeepMind {expected} in {report}"
    );
}

/// Expected values: the real DeepMind package (PyPI `surface-distance` 0.1, numpy 1.26) on the same
/// label maps built with numpy in (i, j, k) order, spacing (0.8, 1.1, 2.5):
/// `compute_dice_coefficient`, `compute_surface_dice_at_tolerance(d, 1 | 2)`,
/// `compute_robust_hausdorff(d, 95)` with `d = compute_surface_distances(gt == L, pred == L, spacing)`.
/// GT / prediction voxel counts: label 1 368 / 338, label 2 36 / 64, any label 404 / 402.
const EXPECTED: [(Option<&str>, [f64; 4]); 3] = [
    (
        Some("1"),
        [
            0.8101983002832861,
            0.8503312581549545,
            0.9422257475467128,
            2.5,
        ],
    ),
    (
        Some("2"),
        [
            0.54,
            0.7476496325981208,
            0.9020031276273038,
            2.6248809496813377,
        ],
    ),
    (
        None,
        [
            0.7766749379652605,
            0.8364295418952001,
            0.9434488790544431,
            2.5,
        ],
    ),
];

#[test]
fn nifti_metrics_match_deepmind_with_the_header_spacing() {
    let dir = tempfile::tempdir().unwrap();
    let (pred, gt) = pair(dir.path());
    for (label, [dsc, nsd1, nsd2, hd95]) in EXPECTED {
        for protocol in ["deepmind", "medclipseg"] {
            let mut extra = vec!["--protocol", protocol];
            if let Some(l) = label {
                extra.extend_from_slice(&["--label", l]);
            }
            let report = metrics(&pred, &gt, &extra);
            assert_close(&report, &["dsc"], dsc);
            assert_close(&report, &["nsd", "1"], nsd1);
            assert_close(&report, &["nsd", "2"], nsd2);
            assert_close(&report, &["hd95"], hd95);
        }
    }
}

/// `--label N` picks structure N in a multi-label ground truth; a model's binary prediction
/// (0/1) of that structure is read as it is, not searched for the value N.
#[test]
fn a_label_is_picked_in_the_ground_truth_and_a_binary_prediction_stays_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (_, gt) = pair(dir.path());
    let labels = med_volumes::read_volume(&gt).unwrap();
    let box_only = labels.data().iter().map(|&v| f32::from(v == 2.0)).collect();
    let binary = dir.path().join("binary_box.nii.gz");
    write_nifti(
        &binary,
        &labels.same_grid(box_only).unwrap(),
        OutputKind::Labels,
    )
    .unwrap();
    for protocol in ["deepmind", "medclipseg"] {
        let on_box = metrics(&binary, &gt, &["--protocol", protocol, "--label", "2"]);
        assert_close(&on_box, &["dsc"], 1.0);
        assert_close(&on_box, &["hd95"], 0.0);
        let elsewhere = metrics(&binary, &gt, &["--protocol", protocol, "--label", "1"]);
        assert_close(&elsewhere, &["dsc"], 0.0);
    }
}

#[test]
fn nifti_metrics_reject_mismatched_inputs_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (pred, gt) = pair(dir.path());
    let small = dir.path().join("small.nii.gz");
    let volume = Volume::new([2, 2, 2], vec![0.0; 8], [1.0; 3], diagonal_affine([1.0; 3])).unwrap();
    write_nifti(&small, &volume, OutputKind::Labels).unwrap();
    let out = medclipseg(&[
        "metrics",
        "--pred",
        small.to_str().unwrap(),
        "--gt",
        gt.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("small.nii.gz"));
    let png = dir.path().join("mask.png");
    let out = medclipseg(&[
        "metrics",
        "--pred",
        pred.to_str().unwrap(),
        "--gt",
        png.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mask.png"));
    let out = medclipseg(&[
        "metrics",
        "--pred",
        pred.to_str().unwrap(),
        "--gt",
        gt.to_str().unwrap(),
        "--spacing",
        "1,1",
    ]);
    assert!(!out.status.success());
}

/// A micro model trained for one epoch on a few synthetic images (seconds in a debug build).
fn micro_checkpoint(dir: &Path) -> PathBuf {
    let root = dir.join("data");
    let run = dir.join("run");
    let (root_s, run_s) = (root.to_str().unwrap(), run.to_str().unwrap());
    common::synth(&root, [4, 2, 2], Some(3));
    ok(&[
        "train",
        "--config",
        "demo",
        "--data-root",
        root_s,
        "--dataset",
        "Synthetic",
        "--out",
        run_s,
        "--quiet",
        "--set",
        "model.preset=micro",
        "--set",
        "train.epochs=1",
        "--set",
        "train.batch_size=4",
        "--set",
        "train.seed=11",
    ]);
    run.join("latest.safetensors")
}

/// An oblique, anisotropic CT-like volume in HU: a bright ball in soft tissue.
fn ct_volume() -> Volume {
    let dims = [24, 20, 5];
    let spacing = [0.7, 0.9, 3.0];
    let (s, c) = (0.2f64.sin(), 0.2f64.cos());
    let affine = [
        [c * 0.7, -s * 0.9, 0.0, -40.0],
        [s * 0.7, c * 0.9, 0.0, 12.5],
        [0.0, 0.0, 3.0, 90.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let mut data = Vec::new();
    for k in 0..5 {
        for j in 0..20 {
            for i in 0..24 {
                let d = ((i as f64 - 12.0).powi(2) + (j as f64 - 9.0).powi(2)).sqrt() + k as f64;
                data.push(if d < 6.0 {
                    300.0
                } else {
                    40.0 - k as f32 * 10.0
                });
            }
        }
    }
    Volume::new(dims, data, spacing, affine).unwrap()
}

/// `predict` of one volume with a lesion prompt, plus `extra` options; must succeed.
fn predict_volume(checkpoint: &Path, input: &Path, out: &Path, extra: &[&str]) {
    ok(&common::predict_args(checkpoint, input, out, LESION, extra));
}

/// An output volume on the input's grid: the same dims, spacing (as the f32 NIfTI header keeps
/// it) and affine.
fn assert_same_grid(v: &Volume, input: &Volume) {
    assert_eq!(v.dims(), input.dims());
    assert_eq!(
        v.spacing().map(|s| s as f32),
        input.spacing().map(|s| s as f32)
    );
    for (a, b) in v
        .affine()
        .iter()
        .flatten()
        .zip(input.affine().iter().flatten())
    {
        assert!(
            (a - b).abs() < 1e-5,
            "{:?} vs {:?}",
            v.affine(),
            input.affine()
        );
    }
}

#[test]
fn predict_segments_a_nifti_volume_into_masks_on_the_same_grid() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint(dir.path());
    let input = dir.path().join("case_3.nii.gz");
    let ct = ct_volume();
    write_nifti(&input, &ct, OutputKind::Float).unwrap();
    for (axis, window) in [(None, Some("40,400")), (Some("0"), None)] {
        let out = dir.path().join(format!("pred_{axis:?}"));
        let mut extra = Vec::new();
        if let Some(a) = axis {
            extra.extend_from_slice(&["--axis", a]);
        }
        if let Some(w) = window {
            extra.extend_from_slice(&["--window", w]);
        }
        predict_volume(&checkpoint, &input, &out, &extra);
        let mask = med_volumes::read_nifti(&out.join("case_3.nii.gz")).unwrap();
        let entropy = med_volumes::read_nifti(&out.join("case_3_entropy.nii.gz")).unwrap();
        for v in [&mask, &entropy] {
            assert_same_grid(v, &ct);
        }
        assert_eq!(mask.header().datatype, 2, "masks are written as uint8");
        assert!(mask.data().iter().all(|&v| v == 0.0 || v == 1.0));
        let ln2 = std::f32::consts::LN_2 + 1e-4;
        assert!(entropy.data().iter().all(|&e| (0.0..=ln2).contains(&e)));
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("volume.json")).unwrap())
                .unwrap();
        assert_eq!(record["slices"], if axis.is_some() { 24 } else { 5 });
    }
    // A bad window is an error that says which option is wrong.
    let bad = dir.path().join("bad");
    let out = medclipseg(&common::predict_args(
        &checkpoint,
        &input,
        &bad,
        LESION,
        &["--window", "40"],
    ));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--window"));
}

#[test]
fn predict_turns_a_dicom_series_folder_into_nifti_masks_on_its_grid() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint(dir.path());
    let series = dir.path().join("ct_series");
    std::fs::create_dir(&series).unwrap();
    med_volumes::testing::write_ct_series(&series, 20, 24, 3).unwrap();
    let ct = med_volumes::read_dicom_series(&series).unwrap();
    let out = dir.path().join("pred");
    predict_volume(&checkpoint, &series, &out, &["--window", "40,400"]);
    let mask = med_volumes::read_nifti(&out.join("ct_series.nii.gz")).unwrap();
    let entropy = med_volumes::read_nifti(&out.join("ct_series_entropy.nii.gz")).unwrap();
    for v in [&mask, &entropy] {
        assert_same_grid(v, &ct);
    }
    assert!(mask.data().iter().all(|&v| v == 0.0 || v == 1.0));
}

#[test]
fn eval_scores_a_folder_of_volumes_and_names_the_one_without_labels() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint(dir.path());
    let (volumes, labels, out) = (
        dir.path().join("volumes"),
        dir.path().join("labels"),
        dir.path().join("eval"),
    );
    std::fs::create_dir_all(&volumes).unwrap();
    std::fs::create_dir_all(&labels).unwrap();
    let ct = ct_volume();
    write_nifti(&volumes.join("case_a.nii.gz"), &ct, OutputKind::Float).unwrap();
    write_nifti(&volumes.join("case_b.nii"), &ct, OutputKind::Float).unwrap();
    // The label of case_a: the bright ball, on the volume's grid. case_b has none.
    let ball: Vec<f32> = ct.data().iter().map(|&v| f32::from(v > 200.0)).collect();
    let label = Volume::new(ct.dims(), ball, ct.spacing(), *ct.affine()).unwrap();
    write_nifti(&labels.join("case_a.nii.gz"), &label, OutputKind::Labels).unwrap();

    let run = medclipseg(&[
        "eval",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--volumes",
        volumes.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--prompt",
        LESION,
        "--window",
        "40,400",
        "--samples",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        !run.status.success(),
        "a volume without labels must fail the run"
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("case_b") && stderr.contains("no label volume"),
        "{stderr}"
    );

    // case_a was predicted and scored anyway; its row equals `metrics` on the written mask.
    let mask = out.join("volumes/case_a/case_a.nii.gz");
    assert!(mask.is_file() && out.join("volumes/case_a/case_a_entropy.nii.gz").is_file());
    let csv = std::fs::read_to_string(out.join("volumes.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "Name,DSC,NSD,HD95,ASSD");
    assert_eq!(lines.len(), 2, "{csv}");
    let dsc: f64 = lines[1].split(',').nth(1).unwrap().parse().unwrap();
    let reference = metrics(
        &mask,
        &labels.join("case_a.nii.gz"),
        &["--protocol", "deepmind"],
    );
    assert_close(&reference, &["dsc"], dsc);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("volumes_summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["volumes"], 1);
    assert_eq!(summary["skipped"].as_array().unwrap().len(), 1);
}
