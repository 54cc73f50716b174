//! The resolved config on the command line (`train --print-config`), the paper config per
//! dataset, and inputs that used to fail silently.

use std::path::Path;

mod common;
use common::{medclipseg, ok, s};

/// Fails with exit status 1 (an error, not a panic's 101) and returns stderr.
fn refused(args: &[&str]) -> String {
    let out = medclipseg(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_ne!(out.status.code(), Some(0), "medclipseg {args:?} succeeded");
    assert_ne!(
        out.status.code(),
        Some(101),
        "medclipseg {args:?} panicked:\n{stderr}"
    );
    stderr
}

fn print_config(dataset: &str, extra: &[&str]) -> toml::Value {
    let tmp = tempfile::tempdir().unwrap();
    // A data root that does not exist: printing the config must not look at data.
    let root = tmp.path().join("no-data-here");
    let mut args = vec![
        "train",
        "--config",
        "paper",
        "--data-root",
        s(&root),
        "--dataset",
        dataset,
        "--print-config",
    ];
    args.extend_from_slice(extra);
    let out = ok(&args);
    assert!(!root.exists());
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "--print-config wrote files"
    );
    toml::from_str(&String::from_utf8_lossy(&out.stdout)).expect("--print-config prints TOML")
}

#[test]
fn print_config_gives_the_official_values_per_dataset() {
    let eus = print_config("EUS", &[]);
    assert_eq!(eus["train"]["epochs"].as_integer(), Some(10));
    assert_eq!(eus["dataset"]["name"].as_str(), Some("EUS"));
    let covid = print_config("Covid19", &[]);
    assert_eq!(covid["model"]["gate_init"].as_float(), Some(-0.02));
    assert_eq!(covid["train"]["epochs"].as_integer(), Some(100));
    let busi = print_config("BUSI", &["--set", "test.num_samples=7"]);
    assert_eq!(busi["train"]["epochs"].as_integer(), Some(100));
    assert!(busi["model"].get("gate_init").is_none());
    assert_eq!(busi["test"]["num_samples"].as_integer(), Some(7));
    assert_eq!(busi["test"]["use_latest"].as_bool(), Some(true));
    assert_eq!(busi["test"]["nsd_tolerance"].as_float(), Some(2.0));
    // --set still wins over the dataset's official value.
    let eus = print_config("EUS", &["--set", "TRAIN.NUM_EPOCHS=3"]);
    assert_eq!(eus["train"]["epochs"].as_integer(), Some(3));
}

#[test]
fn overflowing_num_upscale_is_an_error_not_a_panic() {
    let stderr = refused(&[
        "train",
        "--dataset",
        "BUSI",
        "--print-config",
        "--set",
        "model.num_upscale=64",
    ]);
    assert!(stderr.contains("num_upscale 64"), "{stderr}");
}

#[test]
fn frozen_towers_without_a_backbone_are_refused_before_any_data_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("no-data-here");
    let stderr = refused(&[
        "train",
        "--config",
        "paper",
        "--data-root",
        s(&root),
        "--dataset",
        "BUSI",
        "--out",
        s(&tmp.path().join("run")),
    ]);
    assert!(stderr.contains("model.backbone_checkpoint"), "{stderr}");
    assert!(stderr.contains("model.allow_random_towers"), "{stderr}");
}

#[test]
fn zero_samples_are_refused() {
    for command in ["eval", "predict"] {
        let stderr = refused(&[command, "--samples", "0"]);
        assert!(stderr.contains("at least 1"), "{command}: {stderr}");
    }
}

fn micro_train<'a>(root: &'a str, out: &'a str) -> Vec<&'a str> {
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
        "train.epochs=1",
        "--set",
        "train.batch_size=4",
    ]
}

fn prompts_sheet(root: &Path, stem: &str) -> std::path::PathBuf {
    let dir = root.join("Synthetic").join("Prompts_Folder");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_stem().and_then(|s| s.to_str()) == Some(stem))
        .unwrap_or_else(|| panic!("{}: no {stem} sheet", dir.display()))
}

#[test]
fn an_unreadable_val_sheet_is_an_error_and_a_missing_one_is_said() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    synth(&root);
    let val = prompts_sheet(&root, "Val_text");
    std::fs::write(&val, b"not a spreadsheet").unwrap();
    let stderr = refused(&micro_train(s(&root), s(&tmp.path().join("bad"))));
    let name = val.file_name().unwrap().to_str().unwrap();
    assert!(stderr.contains(name), "{stderr}");

    std::fs::remove_file(&val).unwrap();
    let run = tmp.path().join("run");
    let out = ok(&micro_train(s(&root), s(&run)));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("training without validation"), "{stderr}");

    // The run folder stands for its latest checkpoint (test.use_latest); protocol and
    // tolerance reach the scores and the summary.
    let eval_out = tmp.path().join("eval");
    ok(&[
        "eval",
        "--checkpoint",
        s(&run),
        "--data-root",
        s(&root),
        "--dataset",
        "Synthetic",
        "--samples",
        "2",
        "--protocol",
        "deepmind",
        "--tolerance",
        "1",
        "--panels",
        "0",
        "--quiet",
        "--out",
        s(&eval_out),
    ]);
    let text = std::fs::read_to_string(eval_out.join("summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(summary["nsd_protocol"], "deepmind");
    assert_eq!(summary["nsd_tolerance"], 1.0);
    assert_eq!(summary["rounded_per_image"], true);
    assert!(!text.contains("-0.0"), "{text}");
    let csv = std::fs::read_to_string(eval_out.join("Synthetic").join("test_Prompt-original.csv"))
        .unwrap();
    assert!(!csv.contains("-0.0000"), "{csv}");
}

fn synth(root: &Path) {
    common::synth(root, [8, 4, 4], Some(5));
}
