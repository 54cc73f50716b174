//! `examples/train_eval.rs` of medclipseg-pipeline builds the config of
//! `medclipseg train --config demo` and trains through the library: the two runs must give the
//! same losses, epoch by epoch (same config object, same seeds, same backend).

use std::path::Path;

mod common;
use common::{ok, s};

#[allow(dead_code)]
#[path = "../../medclipseg-pipeline/examples/train_eval.rs"]
mod example;

const OVERRIDES: [&str; 5] = [
    "model.preset=micro",
    "train.epochs=2",
    "train.batch_size=4",
    "train.seed=5",
    "train.min_steps=0",
];

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn the_library_example_reproduces_train_config_demo() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    common::synth(&root, [8, 4, 2], Some(3));
    let cli_run = tmp.path().join("cli");
    let mut args = vec![
        "train",
        "--config",
        "demo",
        "--data-root",
        s(&root),
        "--dataset",
        "Synthetic",
        "--out",
        s(&cli_run),
        "--quiet",
    ];
    for item in OVERRIDES {
        args.extend(["--set", item]);
    }
    ok(&args);

    let overrides = OVERRIDES.map(String::from);
    let config = example::demo_config(&root, "Synthetic", &overrides).unwrap();
    let library_run = tmp.path().join("library");
    let summary = example::train(&config, library_run.clone()).unwrap();
    assert_eq!(summary.epochs, 2);

    let (cli, library) = (metrics(&cli_run), metrics(&library_run));
    assert_eq!(cli.len(), 2);
    for (c, l) in cli.iter().zip(&library) {
        for key in [
            "lr",
            "train_total",
            "train_dice",
            "train_bce",
            "train_softcon",
            "val_loss",
            "val_dice",
        ] {
            assert_eq!(c[key], l[key], "epoch {} {key}", c["epoch"]);
        }
    }
    // The same planned config lands in both run folders.
    let read = |dir: &Path| std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert_eq!(read(&cli_run), read(&library_run));
}
