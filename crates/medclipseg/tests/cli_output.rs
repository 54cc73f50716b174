//! What goes where: results on stdout, logs on stderr at the level of `-q` / `-v`, `--json`
//! meaning "the machine-readable result on stdout and nothing else", and `--help` listing the
//! values of enumerated options.

use std::path::{Path, PathBuf};

mod common;
use common::{ok, s};

/// A synthetic data root (2 test images a dataset); returns the folder of test masks.
fn synthetic_masks(root: &Path) -> PathBuf {
    common::synth(root, [2, 1, 2], None);
    root.join("Synthetic/Test_Folder/label")
}

/// `metrics` on a folder against itself, with the global flags `flags` after the subcommand.
fn metrics_stderr(masks: &Path, csv: &Path, flags: &[&str]) -> String {
    let mut args = vec![
        "metrics",
        "--pred",
        s(masks),
        "--gt",
        s(masks),
        "--csv",
        s(csv),
    ];
    args.extend_from_slice(flags);
    String::from_utf8_lossy(&ok(&args).stderr).into_owned()
}

#[test]
fn quiet_silences_info_lines_and_verbose_shows_debug_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let masks = synthetic_masks(&tmp.path().join("data"));
    let csv = tmp.path().join("metrics.csv");
    let summary_line = "2 images; per-image CSV";

    let normal = metrics_stderr(&masks, &csv, &[]);
    assert!(normal.contains(summary_line), "{normal}");
    assert!(!normal.contains("DEBUG"), "{normal}");

    for quiet in ["-q", "--quiet"] {
        let quiet_err = metrics_stderr(&masks, &csv, &[quiet]);
        assert!(!quiet_err.contains(summary_line), "{quiet}: {quiet_err}");
    }

    let verbose = metrics_stderr(&masks, &csv, &["-v"]);
    assert!(verbose.contains(summary_line), "{verbose}");
    assert!(verbose.contains("DEBUG"), "{verbose}");
    assert!(verbose.contains("backend"), "{verbose}");

    // The global flags also go before the subcommand; -q and -v together are refused.
    let before = ok(&["-v", "datasets"]);
    assert!(String::from_utf8_lossy(&before.stderr).contains("DEBUG"));
    assert!(
        !common::medclipseg(&["-q", "-v", "datasets"])
            .status
            .success()
    );
}

/// Parses all of stdout as one JSON value: anything else printed there fails.
fn stdout_json(args: &[&str]) -> serde_json::Value {
    let out = ok(args);
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("medclipseg {args:?}: stdout is not only JSON ({e}):\n{text}"))
}

#[test]
fn json_output_is_only_json_on_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let masks = synthetic_masks(&root);
    let csv = tmp.path().join("metrics.csv");

    // -v adds log lines: they go to stderr, never into the JSON.
    let metrics = stdout_json(&[
        "-v",
        "metrics",
        "--pred",
        s(&masks),
        "--gt",
        s(&masks),
        "--csv",
        s(&csv),
        "--json",
    ]);
    assert_eq!(metrics["dsc"].as_f64(), Some(1.0));

    let datasets = stdout_json(&["-v", "datasets", "--json"]);
    assert!(datasets.to_string().contains("BUSI"));

    let inspect = stdout_json(&[
        "-v",
        "data",
        "inspect",
        "--root",
        s(&root),
        "--dataset",
        "Synthetic",
        "--json",
    ]);
    assert!(inspect.is_object(), "{inspect}");

    // A bare --json on bench: the report instead of the Markdown table.
    let bench = stdout_json(&[
        "bench",
        "--model-config",
        "micro",
        "--tokens",
        "16",
        "--samples",
        "2",
        "--runs",
        "1",
        "--train-batch",
        "1",
        "--json",
    ]);
    assert_eq!(bench["preset"], "micro");
    assert!(bench["mc"]["median"].as_f64().is_some(), "{bench}");
}

/// `--help` of a command, as text.
fn help(args: &[&str]) -> String {
    let mut args = args.to_vec();
    args.push("--help");
    String::from_utf8_lossy(&ok(&args).stdout).into_owned()
}

#[test]
fn help_lists_the_values_of_enumerated_options() {
    let eval = help(&["eval"]);
    for value in [
        "missing_location",
        "underdescriptive",
        "all",
        "deepmind",
        "monai",
    ] {
        assert!(eval.contains(value), "eval --help lacks {value}:\n{eval}");
    }
    let metrics = help(&["metrics"]);
    assert!(
        metrics.contains("deepmind") && metrics.contains("medclipseg"),
        "{metrics}"
    );
    let convert = help(&["data", "convert"]);
    for value in ["busi", "kvasir-seg", "isic2016", "brisc2025"] {
        assert!(
            convert.contains(value),
            "data convert --help lacks {value}:\n{convert}"
        );
    }
    let predict = help(&["predict"]);
    assert!(predict.contains("[possible values: 0, 1, 2]"), "{predict}");
    let top = help(&[]);
    for flag in ["--verbose", "--quiet", "--json", "RUST_LOG"] {
        assert!(top.contains(flag), "medclipseg --help lacks {flag}:\n{top}");
    }
}

#[test]
fn rust_log_overrides_the_flags_and_a_bad_one_is_said() {
    let run = |rust_log: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_medclipseg"))
            .args(["-q", "datasets", "--json"])
            .env("RUST_LOG", rust_log)
            .output()
            .expect("the medclipseg binary runs");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run("medclipseg=debug").contains("DEBUG"));
    let bad = run("medclipseg=loud");
    assert!(bad.contains("RUST_LOG") && !bad.contains("DEBUG"), "{bad}");
}

/// The error line of a failed `predict` of a grey 8 x 8 PNG with `checkpoint`.
fn predict_error(dir: &Path, checkpoint: &Path) -> String {
    let input = dir.join("scan.png");
    image::GrayImage::from_pixel(8, 8, image::Luma([128]))
        .save(&input)
        .unwrap();
    error_line(&[
        "predict",
        "--checkpoint",
        s(checkpoint),
        "--input",
        s(&input),
        "--prompt",
        "a lesion",
        "--out",
        s(&dir.join("out")),
    ])
}

#[test]
fn checkpoint_errors_say_each_cause_once() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nonexistent.safetensors");
    let line = predict_error(tmp.path(), &missing);
    let expected = format!(
        "error: {}: cannot load the checkpoint: No such file or directory (os error 2)",
        missing.display()
    );
    assert_eq!(line, expected);

    let legacy = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/legacy/run_config_v1.safetensors");
    let truncated = tmp.path().join("truncated.safetensors");
    std::fs::write(&truncated, &std::fs::read(legacy).unwrap()[..100]).unwrap();
    let line = predict_error(tmp.path(), &truncated);
    assert_eq!(
        line.matches(&*truncated.display().to_string()).count(),
        1,
        "{line}"
    );
    assert_eq!(line.matches("truncated").count(), 2, "{line}");
    assert!(
        line.ends_with(
            "cannot load the checkpoint: file is truncated: safetensors invalid header length"
        ),
        "{line}"
    );
}

/// The `error:` line of a failed run of `args`.
fn error_line(args: &[&str]) -> String {
    let out = common::medclipseg(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in {stderr}"))
        .to_string()
}

#[test]
fn file_errors_say_each_cause_once() {
    let tmp = tempfile::tempdir().unwrap();
    // A folder that cannot be read (the pipeline's read error).
    let missing = tmp.path().join("no_volumes");
    let line = error_line(&[
        "eval",
        "--checkpoint",
        s(&tmp.path().join("model.safetensors")),
        "--volumes",
        s(&missing),
        "--labels",
        s(tmp.path()),
        "--prompt",
        "a lesion",
        "--out",
        s(&tmp.path().join("out")),
    ]);
    assert_eq!(
        line,
        format!(
            "error: {}: cannot read: No such file or directory (os error 2)",
            missing.display()
        )
    );
    // A file that cannot be written (an atomic write under a regular file).
    let masks = synthetic_masks(&tmp.path().join("data"));
    let blocker = tmp.path().join("blocker");
    std::fs::write(&blocker, b"a file, not a folder").unwrap();
    let csv = blocker.join("metrics.csv");
    let line = error_line(&[
        "metrics",
        "--pred",
        s(&masks),
        "--gt",
        s(&masks),
        "--csv",
        s(&csv),
    ]);
    assert_eq!(
        line.matches(&*csv.display().to_string()).count(),
        1,
        "{line}"
    );
    // create_dir_all says "File exists" or "Not a directory" by platform: one OS error.
    assert_eq!(line.matches("(os error").count(), 1, "{line}");
}
