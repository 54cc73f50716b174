//! End to end through the binary, at the `micro` model size (debug build, seconds):
//! synthetic data -> train -> interrupt -> resume -> evaluate, and bad inputs.

use std::path::{Path, PathBuf};

mod common;
use common::{json, medclipseg, ok, s};

fn synth(root: &Path) {
    common::synth(root, [8, 4, 4], Some(3));
}

fn train_args<'a>(root: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--config",
        "demo",
        "--data-root",
        root,
        "--dataset",
        "Synthetic",
        "--out",
        out,
        "--quiet",
        "--set",
        "model.preset=micro",
        "--set",
        "train.epochs=3",
        "--set",
        "train.batch_size=4",
        "--set",
        "train.seed=11",
        // These tests exercise the run mechanics: no from-scratch step budget.
        "--set",
        "train.min_steps=0",
    ]
}

fn history(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Both runs have `epochs` epochs whose `keys` agree within `rel` (relative, absolute below 1).
fn assert_same_curves(a: &Path, b: &Path, epochs: usize, keys: &[&str], rel: f64) {
    let (ha, hb) = (history(a), history(b));
    assert_eq!((ha.len(), hb.len()), (epochs, epochs));
    for (ra, rb) in ha.iter().zip(&hb) {
        for key in keys {
            let (x, y) = (ra[key].as_f64().unwrap(), rb[key].as_f64().unwrap());
            assert!(
                (x - y).abs() <= rel * x.abs().max(1.0),
                "epoch {} {key}: {} {x}, {} {y}",
                ra["epoch"],
                a.display(),
                b.display()
            );
        }
    }
}

/// `predict` on the first test image with a free-text prompt; checks it wrote its summary.
fn predict_one_test_image(root: &Path, checkpoint: &Path, out: &Path) {
    let image = root
        .join("Synthetic/Test_Folder/img")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    ok(&[
        "predict",
        "--checkpoint",
        s(checkpoint),
        "--input",
        s(&image),
        "--prompt",
        "one small round lesion located in center of the image",
        "--out",
        s(out),
        "--samples",
        "2",
    ]);
    assert!(out.join("predictions.json").is_file());
}

#[test]
fn train_interrupt_resume_equals_uninterrupted_and_evaluates() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    synth(&root);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));

    ok(&train_args(s(&root), s(&a)));
    let mut first = train_args(s(&root), s(&b));
    first.extend(["--stop-after", "1"]);
    ok(&first);
    assert_eq!(history(&b).len(), 1);
    // Starting again without --resume must not clobber the run.
    let refused = medclipseg(&train_args(s(&root), s(&b)));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--resume"));
    let mut resumed = train_args(s(&root), s(&b));
    resumed.push("--resume");
    ok(&resumed);

    // The resumed run's curve continues the same: every epoch's numbers agree.
    let keys = [
        "train_total",
        "train_dice",
        "train_bce",
        "train_softcon",
        "val_loss",
        "val_dice",
        "lr",
    ];
    assert_same_curves(&a, &b, 3, &keys, 1e-6);
    let summary = json(&b.join("summary.json"));
    assert_eq!(summary["epochs"], 3);
    for file in [
        "latest.safetensors",
        "best.safetensors",
        "loss_curve.png",
        "metrics.csv",
        "provenance.json",
    ] {
        assert!(b.join(file).is_file(), "{file} missing");
    }

    let eval_dir = tmp.path().join("eval");
    ok(&[
        "eval",
        "--checkpoint",
        s(&b.join("latest.safetensors")),
        "--data-root",
        s(&root),
        "--dataset",
        "Synthetic",
        "--prompt-style",
        "all",
        "--samples",
        "2",
        "--out",
        s(&eval_dir),
        "--quiet",
    ]);
    let summary = json(&eval_dir.join("summary.json"));
    assert_eq!(summary["n_images"], 4);
    assert_eq!(summary["results"].as_array().unwrap().len(), 5);
    let dsc = summary["dsc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&dsc));
    let csv = std::fs::read_to_string(eval_dir.join("Synthetic/test_Prompt-original.csv")).unwrap();
    assert!(csv.starts_with("Name,DSC,NSD\n"));
    assert_eq!(csv.lines().count(), 5);
    assert!(eval_dir.join("provenance.json").is_file());
    let masks: Vec<PathBuf> =
        std::fs::read_dir(eval_dir.join("Synthetic/seg_results/Prompt-original"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
    assert_eq!(masks.len(), 4);

    // predict on one test image with a free-text prompt.
    let pred_dir = tmp.path().join("pred");
    predict_one_test_image(&root, &b.join("latest.safetensors"), &pred_dir);
}

/// A user's own data as a new user would bring it: the packaged layout, no `vocab.txt`, no
/// tokenizer, and too few images for the demo config's 12 epochs.
#[test]
fn own_data_without_a_vocabulary_builds_one_and_trains_long_enough() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    synth(&root);
    std::fs::remove_file(root.join("Synthetic/vocab.txt")).unwrap();
    let run = tmp.path().join("own");
    let mut args = train_args(s(&root), s(&run));
    // 8 training images in batches of 4: 2 steps an epoch, so 6 steps take 3 epochs.
    args.extend(["--set", "train.epochs=1", "--set", "train.min_steps=6"]);
    let out = ok(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("built a vocabulary"), "{stderr}");
    assert!(stderr.contains("3 epochs instead of 1"), "{stderr}");
    assert_eq!(json(&run.join("summary.json"))["epochs"], 3);
    let h = history(&run);
    assert_eq!(h.len(), 3);
    // The DSC-0 warning fires exactly when no epoch's validation DSC prints above 0.00.
    let stuck = h.iter().all(|r| r["val_dice"].as_f64().unwrap() < 0.005);
    assert_eq!(
        stderr.contains("validation DSC stayed at 0.00"),
        stuck,
        "{stderr}"
    );

    // The vocabulary travels inside the checkpoint: predict needs no file for it.
    std::fs::remove_file(run.join("vocab.txt")).unwrap();
    let pred_dir = tmp.path().join("pred");
    predict_one_test_image(&root, &run.join("latest.safetensors"), &pred_dir);
}

/// Overwrites every mask of a split with one grey level.
fn fill_masks(root: &Path, split: &str, level: u8) {
    for entry in root.join(split).join("label").read_dir().unwrap() {
        let path = entry.unwrap().path();
        let (w, h) = image::image_dimensions(&path).unwrap();
        image::GrayImage::from_pixel(w, h, image::Luma([level]))
            .save(&path)
            .unwrap();
    }
}

#[test]
fn a_validation_dsc_stuck_at_zero_is_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    synth(&root);
    // Nothing to find in training, everything to find in validation: empty predictions, DSC 0.
    fill_masks(&root.join("Synthetic"), "Train_Folder", 0);
    fill_masks(&root.join("Synthetic"), "Val_Folder", 255);
    let run = tmp.path().join("stuck");
    let mut args = train_args(s(&root), s(&run));
    args.extend([
        "--set",
        "train.epochs=2",
        "--set",
        "train.learning_rate=0.01",
    ]);
    let out = ok(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for r in history(&run) {
        assert!(r["val_dice"].as_f64().unwrap() < 0.005, "{r}");
    }
    assert!(
        stderr.contains("validation DSC stayed at 0.00 for all 2 epochs"),
        "{stderr}"
    );
}

#[test]
fn data_parallel_training_matches_one_device() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    synth(&root);
    // Terms that split exactly over equal shards: per-image Dice and pixel-mean BCE, no
    // SoftCon (it contrasts within a shard) and no sampled noise (drawn per shard).
    let exact = [
        "--set",
        "train.epochs=2",
        "--set",
        "train.clip_weight=0",
        "--set",
        "model.sample_values=false",
    ];
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    let mut args = train_args(s(&root), s(&one));
    args.extend(exact);
    ok(&args);
    let mut args = train_args(s(&root), s(&two));
    args.extend(exact);
    args.extend(["--device", "cpu,cpu"]);
    ok(&args);
    let keys = [
        "train_total",
        "train_dice",
        "train_bce",
        "val_loss",
        "val_dice",
    ];
    assert_same_curves(&one, &two, 2, &keys, 1e-4);
}

#[test]
fn corrupt_image_and_missing_checkpoint_fail_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    synth(&root);
    let img_dir = root.join("Synthetic/Train_Folder/img");
    let victim = img_dir.read_dir().unwrap().next().unwrap().unwrap().path();
    std::fs::write(&victim, b"not a png at all").unwrap();
    let out = medclipseg(&train_args(s(&root), s(&tmp.path().join("run"))));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = victim.file_name().unwrap().to_str().unwrap();
    assert!(stderr.contains(name), "{stderr}");

    let missing = tmp.path().join("nope.safetensors");
    let out = medclipseg(&[
        "eval",
        "--checkpoint",
        s(&missing),
        "--data-root",
        s(&root),
        "--dataset",
        "Synthetic",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.safetensors"));

    let garbage = tmp.path().join("garbage.pth");
    std::fs::write(&garbage, b"PK\x03\x04 truncated zip").unwrap();
    let out = medclipseg(&["import", s(&garbage), s(&tmp.path().join("x.safetensors"))]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("garbage.pth"));
}

#[test]
fn forward_matches_the_golden_seg_logits() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden/tiny");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    // The golden file holds `image` and `input_ids` among its tensors.
    ok(&[
        "forward",
        "--model-config",
        "tiny",
        "--checkpoint",
        s(&golden.join("tiny_model.safetensors")),
        "--inputs",
        s(&golden.join("tiny_golden.safetensors")),
        "--noise",
        "zero",
        "--out",
        s(&out),
    ]);
    let bytes = std::fs::read(&out).unwrap();
    let ours = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let gold_bytes = std::fs::read(golden.join("tiny_golden.safetensors")).unwrap();
    let gold = safetensors::SafeTensors::deserialize(&gold_bytes).unwrap();
    for key in ["seg_logits", "txt_vec", "img_tokens"] {
        let (a, b) = (ours.tensor(key).unwrap(), gold.tensor(key).unwrap());
        assert_eq!(a.shape(), b.shape(), "{key}");
        let f = |d: &[u8]| -> Vec<f32> {
            d.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        for (x, y) in f(a.data()).iter().zip(f(b.data())) {
            assert!((x - y).abs() <= 1e-4 + 1e-4 * y.abs(), "{key}: {x} vs {y}");
        }
    }
}

#[test]
fn predict_and_forward_name_the_bad_file() {
    let tmp = tempfile::tempdir().unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden/tiny");
    let predict_fails = |input: &Path| {
        let out = medclipseg(&[
            "predict",
            "--checkpoint",
            s(&golden.join("tiny_model.safetensors")),
            "--input",
            s(input),
            "--prompt",
            "x",
            "--out",
            s(&tmp.path().join("p")),
        ]);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // The input is checked first, before the model is read.
    let stderr = predict_fails(&tmp.path().join("no_such_scan.png"));
    assert!(
        stderr.contains("no_such_scan.png: no such file"),
        "{stderr}"
    );
    // An existing scan with the golden state dict, which carries no model config: the error
    // says so, naming the checkpoint.
    let scan = tmp.path().join("scan.png");
    image::GrayImage::from_pixel(8, 8, image::Luma([90]))
        .save(&scan)
        .unwrap();
    let stderr = predict_fails(&scan);
    assert!(stderr.contains("tiny_model.safetensors"), "{stderr}");
    assert!(stderr.contains("medclipseg.model_config"), "{stderr}");

    // Inputs without the `image` tensor: the model file itself.
    let out = medclipseg(&[
        "forward",
        "--model-config",
        "tiny",
        "--checkpoint",
        s(&golden.join("tiny_model.safetensors")),
        "--inputs",
        s(&golden.join("tiny_model.safetensors")),
        "--out",
        s(&tmp.path().join("o.safetensors")),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs `image`"), "{stderr}");
    assert!(!tmp.path().join("o.safetensors").exists());
}

#[test]
fn metrics_command_prints_the_documented_json() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, on: &dyn Fn(u32, u32) -> bool| {
        let img =
            image::GrayImage::from_fn(16, 16, |x, y| image::Luma([if on(x, y) { 255 } else { 0 }]));
        let path = tmp.path().join(name);
        img.save(&path).unwrap();
        path
    };
    let gt = write("gt.png", &|x, y| {
        (4..12).contains(&x) && (4..12).contains(&y)
    });
    let pred = write("pred.png", &|x, y| {
        (5..13).contains(&x) && (4..12).contains(&y)
    });
    let out = ok(&[
        "metrics",
        "--pred",
        s(&pred),
        "--gt",
        s(&gt),
        "--tolerance",
        "2",
        "--tolerance",
        "0.5",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!((v["dsc"].as_f64().unwrap() - 0.875).abs() < 1e-9);
    // Each tolerance lands under its own key, computed with the default (MedCLIPSeg) protocol:
    // at 2 px every surface element of one mask is within reach of the other, at 0.5 px the
    // unshared column of each is not.
    let gt_mask =
        seg_metrics::Mask2d::from_fn(16, 16, |r, c| (4..12).contains(&r) && (4..12).contains(&c));
    let pred_mask =
        seg_metrics::Mask2d::from_fn(16, 16, |r, c| (4..12).contains(&r) && (5..13).contains(&c));
    let nsd = |tolerance: f64| {
        use seg_metrics::Protocol;
        seg_metrics::nsd_2d(
            &gt_mask,
            &pred_mask,
            Protocol::MedClipSeg,
            [1.0, 1.0],
            tolerance,
        )
        .unwrap()
    };
    let (at2, at05) = (
        v["nsd"]["2"].as_f64().unwrap(),
        v["nsd"]["0.5"].as_f64().unwrap(),
    );
    assert!((at2 - nsd(2.0)).abs() < 1e-9, "{v}");
    assert!((at05 - nsd(0.5)).abs() < 1e-9, "{v}");
    assert!((at2 - 1.0).abs() < 1e-6, "{v}");
    assert!(at05 < 0.95, "{v}");
    let bad = tmp.path().join("bad.png");
    std::fs::write(&bad, b"garbage").unwrap();
    let out = medclipseg(&["metrics", "--pred", s(&bad), "--gt", s(&gt)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.png"));
}

#[test]
fn datasets_lists_the_sixteen_datasets() {
    let out = ok(&["datasets", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "BUSI",
        "BTMRI",
        "ISIC",
        "Kvasir",
        "Covid19",
        "EUS",
        "BKAI",
        "UWaterlooSkinCancer",
    ] {
        assert!(text.contains(name), "{name}");
    }
}
