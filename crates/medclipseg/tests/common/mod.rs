//! Helpers of the end-to-end tests: run the `medclipseg` binary built with the tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The binary under test: the one built with the tests, or `MEDCLIPSEG_BIN` (test binaries
/// built on one machine and run on another, such as a GPU machine without a Rust toolchain).
fn binary() -> std::path::PathBuf {
    std::env::var_os("MEDCLIPSEG_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_medclipseg").into())
}

/// Runs the binary with `args`.
pub fn medclipseg(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        // The log level comes from the flags the test passes, not the caller's environment.
        .env_remove("RUST_LOG")
        .output()
        .expect("the medclipseg binary runs")
}

/// Runs the binary and asserts that it succeeded, showing its stderr otherwise.
pub fn ok(args: &[&str]) -> Output {
    let out = medclipseg(args);
    assert!(
        out.status.success(),
        "medclipseg {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The arguments of `predict` of `input` with `prompt` and two Monte-Carlo samples, plus `extra`
/// options, at the default log level (no progress bar is drawn: stderr is not a terminal).
pub fn predict_args<'a>(
    checkpoint: &'a Path,
    input: &'a Path,
    out: &'a Path,
    prompt: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "predict",
        "--checkpoint",
        s(checkpoint),
        "--input",
        s(input),
        "--prompt",
        prompt,
        "--out",
        s(out),
        "--samples",
        "2",
    ];
    args.extend_from_slice(extra);
    args
}

/// A temporary path as an argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A JSON file the binary wrote.
pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

/// `data synth` of 32-pixel images with `[train, val, test]` images per split under `root`.
pub fn synth(root: &Path, [train, val, test]: [usize; 3], seed: Option<u64>) {
    let (train, val, test) = (train.to_string(), val.to_string(), test.to_string());
    let seed = seed.map(|s| s.to_string());
    let mut args = vec![
        "data",
        "synth",
        "--root",
        s(root),
        "--size",
        "32",
        "--train",
        &train,
        "--val",
        &val,
        "--test",
        &test,
    ];
    if let Some(seed) = &seed {
        args.extend(["--seed", seed.as_str()]);
    }
    ok(&args);
}
