//! `predict` on a folder of real files: a corrupt file is reported and skipped, the others are
//! written, the exit is non-zero naming it; `--continue` redoes only what is missing; inputs
//! sharing a stem get distinct outputs. The checkpoint is a micro model with random weights
//! written by the library (config, run config and vocabulary in its metadata).

use std::path::{Path, PathBuf};
use std::process::Output;

use burn::backend::Flex;

mod common;
use medclipseg_pipeline::testing::micro_checkpoint_in;

const PROMPT: &str = "one bright round lesion in the center";

/// `a.png`, `a.jpg` (same stem), `b.bmp`, and `corrupt.png` (not an image).
fn scans(dir: &Path) -> PathBuf {
    let input = dir.join("scans");
    std::fs::create_dir_all(&input).unwrap();
    let img = image::RgbImage::from_fn(36, 20, |x, y| {
        image::Rgb([(x * 7) as u8, (y * 12) as u8, 80])
    });
    for name in ["a.png", "a.jpg", "b.bmp"] {
        img.save(input.join(name)).unwrap();
    }
    std::fs::write(
        input.join("corrupt.png"),
        b"\x89PNG\r\n\x1a\nthis is not a png",
    )
    .unwrap();
    input
}

/// `predict` with the tests' prompt: they read its info lines (skips, counts).
fn predict(checkpoint: &Path, input: &Path, out: &Path, extra: &[&str]) -> Output {
    common::medclipseg(&common::predict_args(checkpoint, input, out, PROMPT, extra))
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn a_corrupt_file_is_skipped_and_named_and_continue_redoes_only_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint_in::<Flex>(dir.path(), &[PROMPT]).unwrap();
    let input = scans(dir.path());
    let out = dir.path().join("pred");

    let first = predict(&checkpoint, &input, &out, &[]);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(!first.status.success(), "{stderr}");
    assert!(stderr.contains("1 of 4 images failed"), "{stderr}");
    assert!(stderr.contains("corrupt.png"), "{stderr}");
    // Every other image was written, with distinct names for a.png and a.jpg, at its size.
    for name in ["a_png", "a_jpg", "b"] {
        let mask = image::open(out.join("masks").join(format!("{name}.png"))).unwrap();
        assert_eq!((mask.width(), mask.height()), (36, 20), "{name}");
        for folder in ["overlays", "uncertainty"] {
            assert!(out.join(folder).join(format!("{name}.png")).is_file());
        }
        assert!(
            out.join("raw")
                .join(format!("{name}.safetensors"))
                .is_file()
        );
    }
    assert!(!out.join("masks").join("corrupt.png").exists());
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("predictions.json")).unwrap())
            .unwrap();
    assert_eq!(records.len(), 3);

    // --continue: only the image whose outputs are gone is predicted again.
    std::fs::remove_file(out.join("masks").join("b.png")).unwrap();
    std::fs::remove_file(input.join("corrupt.png")).unwrap();
    let kept = modified(&out.join("masks").join("a_png.png"));
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = predict(&checkpoint, &input, &out, &["--continue"]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(stderr.contains("2 done before, skipped"), "{stderr}");
    assert!(out.join("masks").join("b.png").is_file());
    assert_eq!(modified(&out.join("masks").join("a_png.png")), kept);
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("predictions.json")).unwrap())
            .unwrap();
    assert_eq!(records.len(), 3);
}

#[test]
fn continue_skips_a_volume_already_predicted() {
    use med_volumes::{OutputKind, Volume, diagonal_affine, write_nifti};
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint_in::<Flex>(dir.path(), &[PROMPT]).unwrap();
    let input = dir.path().join("case_1.nii.gz");
    let data = (0..10 * 8 * 2).map(|v| (v % 13) as f32 * 20.0).collect();
    let volume = Volume::new([10, 8, 2], data, [1.0; 3], diagonal_affine([1.0; 3])).unwrap();
    write_nifti(&input, &volume, OutputKind::Float).unwrap();
    let out = dir.path().join("pred");
    let first = predict(&checkpoint, &input, &out, &[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let mask = out.join("case_1.nii.gz");
    let written = modified(&mask);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = predict(&checkpoint, &input, &out, &["--continue"]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(stderr.contains("already predicted"), "{stderr}");
    assert_eq!(modified(&mask), written);
}

#[test]
fn an_empty_prompt_is_an_error_naming_the_image_or_the_csv_row() {
    let tmp = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint_in::<Flex>(tmp.path(), &[PROMPT]).unwrap();
    let input = scans(tmp.path());
    let b = input.join("b.bmp");
    let out = common::medclipseg(&common::predict_args(
        &checkpoint,
        &b,
        &tmp.path().join("o1"),
        " ",
        &[],
    ));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: --prompt: the prompt is empty", b.display())),
        "{stderr}"
    );

    let csv = tmp.path().join("prompts.csv");
    std::fs::write(&csv, format!("Image,Description\na.png,{PROMPT}\nb.bmp,\n")).unwrap();
    let out = common::medclipseg(&[
        "predict",
        "--checkpoint",
        common::s(&checkpoint),
        "--input",
        common::s(&b),
        "--prompts",
        common::s(&csv),
        "--out",
        common::s(&tmp.path().join("o2")),
        "--samples",
        "2",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}, row 3: image b.bmp: empty Description", csv.display());
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn three_shards_write_the_same_outputs_as_one_run_without_collisions() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint_in::<Flex>(dir.path(), &[PROMPT]).unwrap();
    let input = dir.path().join("many");
    std::fs::create_dir_all(&input).unwrap();
    for i in 0..9u32 {
        let img = image::RgbImage::from_fn(24, 16, |x, y| {
            image::Rgb([(x * 9 + i * 20) as u8, (y * 13) as u8, (i * 25) as u8])
        });
        img.save(input.join(format!("case_{i}.png"))).unwrap();
    }
    let whole = dir.path().join("whole");
    let out = predict(&checkpoint, &input, &whole, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sharded = dir.path().join("sharded");
    let mut counts = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let out = predict(&checkpoint, &input, &sharded, &["--shard", &shard]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let records: Vec<serde_json::Value> = serde_json::from_str(
            &std::fs::read_to_string(sharded.join(format!("predictions.shard-{k}-of-3.json")))
                .unwrap(),
        )
        .unwrap();
        counts.push(records.len());
    }
    assert_eq!(counts.iter().sum::<usize>(), 9, "{counts:?}");
    assert!(!sharded.join("predictions.json").exists());
    for kind in ["masks", "uncertainty", "overlays"] {
        let listing = |root: &Path| {
            let mut names: Vec<String> = std::fs::read_dir(root.join(kind))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(listing(&sharded), listing(&whole), "{kind}");
        for name in listing(&whole) {
            let a = std::fs::read(whole.join(kind).join(&name)).unwrap();
            let b = std::fs::read(sharded.join(kind).join(&name)).unwrap();
            assert!(
                a == b,
                "{kind}/{name} differs between the shards and one run"
            );
        }
    }
    // A re-run shard with --continue redoes nothing.
    let mask = sharded.join("masks").join("case_0.png");
    let before = modified(&mask);
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let out = predict(
            &checkpoint,
            &input,
            &sharded,
            &["--shard", &shard, "--continue"],
        );
        assert!(out.status.success());
    }
    assert_eq!(modified(&mask), before);
    let bad = predict(&checkpoint, &input, &sharded, &["--shard", "4/3"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--shard"));
}

#[test]
fn a_prompt_longer_than_the_context_is_cut_with_a_warning_saying_what_was_kept() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint_in::<Flex>(dir.path(), &[PROMPT]).unwrap();
    let input = scans(dir.path()).join("b.bmp");
    let out = dir.path().join("pred");
    // 2,000 words: far past the micro BERT's context.
    let long = vec!["lesion"; 2000].join(" ");
    let run = common::medclipseg(&common::predict_args(&checkpoint, &input, &out, &long, &[]));
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    let warning = stderr
        .lines()
        .find(|l| l.contains("the prompt has 2002 tokens"))
        .unwrap_or_else(|| panic!("no warning in {stderr}"));
    assert!(warning.contains("only the first 32 were kept"), "{warning}");
    assert!(warning.contains("b.bmp"), "{warning}");
    // A prompt that fits says nothing.
    let run = predict(&checkpoint, &input, &dir.path().join("short"), &[]);
    assert!(!String::from_utf8_lossy(&run.stderr).contains("only the first"));
}

#[test]
fn a_list_file_is_predicted_in_its_order_and_sharded_like_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint_in::<Flex>(dir.path(), &[PROMPT]).unwrap();
    // Images in two folders, named by a list beside them (paths relative to the list).
    for (folder, i) in [
        ("left", 0u32),
        ("left", 1),
        ("right", 2),
        ("right", 3),
        ("right", 4),
    ] {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        let img = image::RgbImage::from_fn(20, 14, |x, y| {
            image::Rgb([(x * 11 + i * 30) as u8, (y * 17) as u8, (i * 40) as u8])
        });
        img.save(dir.path().join(folder).join(format!("scan_{i}.png")))
            .unwrap();
    }
    // scan_0 is in both folders: the same stem, distinct outputs.
    std::fs::copy(
        dir.path().join("left/scan_0.png"),
        dir.path().join("right/scan_0.png"),
    )
    .unwrap();
    let list = dir.path().join("inputs.txt");
    std::fs::write(
        &list,
        "# one image a line\nright/scan_2.png\nleft/scan_0.png\n\nleft/scan_1.png\r\n\
         right/scan_3.png\nright/scan_4.png\nright/scan_0.png\n",
    )
    .unwrap();
    let whole = dir.path().join("whole");
    let out = predict(&checkpoint, &list, &whole, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(whole.join("predictions.json")).unwrap())
            .unwrap();
    let images: Vec<&str> = records
        .iter()
        .map(|r| r["image"].as_str().unwrap())
        .collect();
    assert_eq!(images.len(), 6, "{images:?}");
    assert!(images[0].ends_with("right/scan_2.png"), "{images:?}");
    assert!(images[5].ends_with("right/scan_0.png"), "{images:?}");
    let masks = |root: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(root.join("masks"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(masks(&whole).len(), 6, "{:?}", masks(&whole));

    let sharded = dir.path().join("sharded");
    let mut count = 0;
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let out = predict(&checkpoint, &list, &sharded, &["--shard", &shard]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json = sharded.join(format!("predictions.shard-{k}-of-3.json"));
        if json.is_file() {
            let records: Vec<serde_json::Value> =
                serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
            count += records.len();
        }
    }
    assert_eq!(count, 6);
    assert_eq!(masks(&sharded), masks(&whole));
    for name in masks(&whole) {
        let a = std::fs::read(whole.join("masks").join(&name)).unwrap();
        let b = std::fs::read(sharded.join("masks").join(&name)).unwrap();
        assert!(
            a == b,
            "masks/{name} differs between the shards and one run"
        );
    }

    // A line naming a missing file is an error naming the list and the line, before any work.
    std::fs::write(&list, "left/scan_0.png\nleft/missing.png\n").unwrap();
    let bad = predict(&checkpoint, &list, &dir.path().join("bad"), &[]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("inputs.txt line 2") && stderr.contains("missing.png"),
        "{stderr}"
    );
}
