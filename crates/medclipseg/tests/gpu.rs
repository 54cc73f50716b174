//! The GPU code path end to end, through a binary built with `--features wgpu` or `cuda`:
//! cubecl's JIT kernels on whatever Vulkan adapter exists (Mesa's llvmpipe on a machine without a
//! GPU) or on an NVIDIA GPU. `demo --quick`, train + resume-free reproducibility, eval, predict,
//! bench, and a clear error for a device that does not exist.
//!
//! `XDG_RUNTIME_DIR=/tmp cargo test -p medclipseg --features wgpu --test gpu`
//! `cargo test -p medclipseg --no-default-features --features cuda --test gpu` (NVIDIA GPU)
//!
//! Built on one machine and run on another: `MEDCLIPSEG_BIN=path/to/medclipseg target/.../gpu-*`.
#![cfg(any(feature = "wgpu", feature = "cuda"))]

use std::path::Path;

mod common;
use common::{json, medclipseg, ok, s};

/// The backend of the binary under test.
const BACKEND: &str = if cfg!(feature = "cuda") {
    "cuda"
} else {
    "wgpu"
};

fn train(root: &Path, out: &Path) {
    ok(&[
        "train",
        "--config",
        "demo",
        "--data-root",
        s(root),
        "--dataset",
        "Synthetic",
        "--out",
        s(out),
        "--quiet",
        "--set",
        "model.preset=micro",
        "--set",
        "train.epochs=2",
        "--set",
        "train.batch_size=4",
        "--set",
        "train.seed=5",
        "--set",
        "train.min_steps=0",
    ]);
}

#[test]
fn train_eval_predict_and_bench_run_on_the_gpu() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    common::synth(&root, [8, 4, 4], Some(3));

    // Training runs (backward through every op of the graph) and is reproducible.
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    train(&root, &a);
    train(&root, &b);
    let (sa, sb) = (json(&a.join("summary.json")), json(&b.join("summary.json")));
    assert_eq!(sa["epochs"], 2);
    let provenance = json(&a.join("provenance.json"));
    assert!(
        provenance.to_string().contains(BACKEND),
        "provenance names the backend: {provenance}"
    );
    let history = std::fs::read_to_string(a.join("metrics.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 2);
    for line in history.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let loss = record["train_total"].as_f64().expect("a training loss");
        assert!(loss.is_finite() && loss > 0.0, "{record}");
    }
    // The same seed trains the same on the same device (every number but the wall time).
    let numbers = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|line| {
                let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
                record.as_object_mut().unwrap().remove("seconds");
                record
            })
            .collect()
    };
    let again = std::fs::read_to_string(b.join("metrics.jsonl")).unwrap();
    assert_eq!(numbers(&again), numbers(&history));
    assert_eq!(sb["epochs"], 2);

    let eval_dir = tmp.path().join("eval");
    #[rustfmt::skip]
    ok(&["eval", "--checkpoint", s(&a.join("latest.safetensors")), "--data-root", s(&root),
         "--dataset", "Synthetic", "--samples", "3", "--out", s(&eval_dir), "--quiet"]);
    let summary = json(&eval_dir.join("summary.json"));
    assert_eq!(summary["n_images"], 4);
    let dsc = summary["dsc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&dsc), "{summary}");

    let image = root
        .join("Synthetic/Test_Folder/img")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let pred_dir = tmp.path().join("pred");
    #[rustfmt::skip]
    ok(&["predict", "--checkpoint", s(&a.join("latest.safetensors")), "--input", s(&image),
         "--prompt", "one small round lesion in the center", "--out", s(&pred_dir),
         "--samples", "3"]);
    assert!(pred_dir.join("predictions.json").is_file());

    let report = tmp.path().join("bench.json");
    #[rustfmt::skip]
    ok(&["bench", "--model-config", "micro", "--tokens", "8", "--samples", "3", "--train-batch",
         "2", "--runs", "1", "--json", s(&report)]);
    let report = json(&report);
    assert_eq!(report["backend"], BACKEND);
    assert_eq!(report["noise_source"], "device");
    assert_eq!(report["precision"], "precise");
    for workload in ["forward", "mc", "train"] {
        let median = report[workload]["median"].as_f64().unwrap();
        assert!(median > 0.0, "{workload}: {report}");
        let reserved = report[workload]["memory"]["reserved"].as_u64().unwrap();
        assert!(
            reserved > 0,
            "{workload}: the device pool is read: {report}"
        );
    }
}

#[test]
fn demo_quick_runs_on_the_gpu() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    ok(&["demo", "--quick", "--out", s(&out)]);
    let summary = json(&out.join("summary.json"));
    assert!(summary.is_object(), "{summary}");
}

#[test]
fn a_missing_device_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (device, expected) = if BACKEND == "cuda" {
        ("cuda:7", "cuda:7")
    } else {
        ("discrete:7", "wgpu adapter")
    };
    let out = medclipseg(&[
        "bench",
        "--model-config",
        "micro",
        "--device",
        device,
        "--runs",
        "1",
        "--json",
        s(&tmp.path().join("b.json")),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(expected), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn tf32_precision_is_accepted_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("bench.json");
    #[rustfmt::skip]
    ok(&["bench", "--precision", "tf32", "--model-config", "micro", "--tokens", "8", "--samples",
         "2", "--train-batch", "2", "--runs", "1", "--json", s(&report)]);
    let report = json(&report);
    assert_eq!(report["precision"], "tf32");
    let median = report["forward"]["median"].as_f64().unwrap();
    assert!(median > 0.0, "{report}");
}
