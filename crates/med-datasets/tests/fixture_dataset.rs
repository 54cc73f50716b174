//! End-to-end checks on the committed tiny dataset `fixtures/Tiny` (made by
//! `fixtures/make_tiny.py` with openpyxl and Pillow; expected pixel values from OpenCV 4.10).
//!
//! It holds the oddities of the real data: a duplicated image row, a row whose files are missing,
//! a validation sheet with the `Mask` header, a completely empty sheet, CSV sheets, prompts with
//! a trailing newline, and a BKAI-style pure-red JPEG mask.

use std::path::{Path, PathBuf};

use med_datasets::imaging::read_bgr;
use med_datasets::resize::resize_linear;
use med_datasets::{
    DataLoader, LoaderConfig, MaskRead, Percent, PreprocessConfig, PromptStyle, ReadOptions,
    SheetKind, SheetRecords, inspect, load_sample, read_records,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The usable rows of one sheet of the `Tiny` fixture.
fn tiny_records(kind: SheetKind) -> SheetRecords {
    read_records(&fixtures(), "Tiny", kind, ReadOptions::default()).unwrap()
}

#[test]
fn inspect_counts_and_reports_the_oddities() {
    let report = inspect(&fixtures(), "Tiny", false).unwrap();
    let expected = serde_json::json!({
        "dataset": "Tiny",
        "train": {"100": 3},
        "val": {"10": 0, "100": 1},
        "test": {"original": 1, "underdescriptive": 1},
        "problems": [
            {"file": "Prompts_Folder/Train_text.xlsx", "row": 5, "problem": "duplicate of row 3 (image a.png)"},
            {"file": "Prompts_Folder/Train_text.xlsx", "row": 6, "problem": "image file not found: Train_Folder/img/c.png"},
        ]
    });
    assert_eq!(serde_json::to_value(&report).unwrap(), expected);
    let err = inspect(&fixtures(), "Tiny", true).unwrap_err().to_string();
    assert!(
        err.contains("Train_text.xlsx, row 5") && err.contains("duplicate"),
        "{err}"
    );
}

#[test]
fn records_keep_raw_prompts_and_the_mask_column_alias() {
    let train = tiny_records(SheetKind::Train(Percent::P100));
    let names: Vec<&str> = train.records.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a.png", "b.png", "k.png"], "sorted by image name");
    assert_eq!(
        train.records[0].prompt,
        "one small bright lesion, located in right of the image\n"
    );
    assert!(
        train.records[2]
            .mask_path
            .ends_with("Train_Folder/label/k.jpeg")
    );
    let val = tiny_records(SheetKind::Val(Percent::P100));
    assert_eq!(val.records[0].prompt, "validation prompt");
    let test = tiny_records(SheetKind::Test(PromptStyle::Underdescriptive));
    assert_eq!(test.records[0].prompt, "Lesion visible.");
}

#[test]
fn preprocessing_matches_opencv_on_the_fixture() {
    let train = tiny_records(SheetKind::Train(Percent::P100));
    let a = &train.records[0];
    let bgr = read_bgr(&a.image_path).unwrap();
    // cv2.imread: B = row * 60, G = 100, R = column * 40.
    assert_eq!(&bgr.data[..9], &[0, 100, 0, 0, 100, 40, 0, 100, 80]);
    // cv2.resize(img, (8, 8)): first pixels and the sum of all samples (OpenCV 4.10.0).
    let resized = resize_linear(&bgr, 8, 8);
    assert_eq!(&resized.data[..6], &[0, 100, 0, 0, 100, 25]);
    assert_eq!(
        resized.data.iter().map(|&v| u32::from(v)).sum::<u32>(),
        18560
    );
    let cfg = PreprocessConfig {
        size: 8,
        ..Default::default()
    };
    let sample = load_sample(a, &cfg, None).unwrap();
    assert_eq!(sample.original_size, (4, 6));
    // Plane 0 is blue with the "red" statistics: (0/255 - 0.485) / 0.229.
    assert!((sample.image[0] - (-0.485 / 0.229)).abs() < 1e-6);
    // Plane 2 (red) at pixel 1: (25/255 - 0.406) / 0.225.
    assert!((sample.image[2 * 64 + 1] - (25.0 / 255.0 - 0.406) / 0.225).abs() < 1e-6);
    assert!(sample.mask.iter().all(|&v| v == 0.0 || v == 1.0));
}

#[test]
fn red_jpeg_mask_vanishes_in_a_grey_read_but_not_with_any_channel() {
    let train = tiny_records(SheetKind::Train(Percent::P100));
    let k = &train.records[2];
    let faithful = PreprocessConfig {
        size: 16,
        ..Default::default()
    };
    let grey = load_sample(k, &faithful, None).unwrap();
    assert_eq!(
        grey.mask.iter().sum::<f32>(),
        0.0,
        "pure red is 76 < 127 in cv2.imread(.., 0)"
    );
    let clean = PreprocessConfig {
        mask_read: MaskRead::AnyChannel,
        ..faithful
    };
    let any = load_sample(k, &clean, None).unwrap();
    let area = any.mask.iter().sum::<f32>();
    assert!(
        (56.0..=72.0).contains(&area),
        "the 8x8 red square survives: {area}"
    );
}

#[test]
fn loader_runs_over_the_fixture() {
    let train = tiny_records(SheetKind::Train(Percent::P100));
    let cfg = PreprocessConfig {
        size: 16,
        ..Default::default()
    };
    let loader = DataLoader::new(train.records, cfg, LoaderConfig::train(2, 666)).unwrap();
    let batches: Vec<_> = loader.iter_epoch(0).map(Result::unwrap).collect();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].images.len(), 2 * 3 * 16 * 16);
    assert_eq!(batches[1].len(), 1);
    let again: Vec<_> = loader.iter_epoch(0).map(Result::unwrap).collect();
    assert_eq!(batches, again, "same seed and epoch, same batches");
}
