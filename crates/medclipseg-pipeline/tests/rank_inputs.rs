//! `rank` on what a folder of unlabelled data holds: pictures, a NIfTI volume, a DICOM series
//! folder, and corrupt files, on a micro checkpoint with random weights written here. A volume
//! scores what predicting it whole gives, its overlay shows its most uncertain slice, and the
//! corrupt files are listed (rank.json, the page) while the others are ranked.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use med_volumes::{IntensityMap, OutputKind, Volume, diagonal_affine, write_nifti};
use medclipseg_pipeline::Predictor;
use medclipseg_pipeline::rank::{self, QueueRow, RankEvent, RankOptions};
use medclipseg_pipeline::testing::micro_checkpoint_in;
use seg_metrics::ranking::RankBy;

const PROMPT: &str = "one bright round lesion in the center";

/// A 24 x 20 x 5 CT-like volume whose bright blob grows with k.
fn ct_volume() -> Volume {
    let (nx, ny, nz) = (24, 20, 5);
    let data = (0..nx * ny * nz)
        .map(|v| {
            let (i, j, k) = (v % nx, (v / nx) % ny, v / (nx * ny));
            let d = ((i as f32 - 12.0).powi(2) + (j as f32 - 10.0).powi(2)).sqrt();
            if d < 2.0 + k as f32 {
                60.0
            } else {
                -800.0 + i as f32 * 12.0 + j as f32 * 5.0
            }
        })
        .collect();
    let spacing = [0.8, 0.8, 2.0];
    Volume::new([nx, ny, nz], data, spacing, diagonal_affine(spacing)).unwrap()
}

fn write_scan(path: &Path, shift: u32) {
    let scan = image::RgbImage::from_fn(32, 32, |x, y| {
        let d = ((x as f32 - 12.0 - shift as f32).powi(2) + (y as f32 - 14.0).powi(2)).sqrt();
        if d < 5.0 {
            image::Rgb([230, 220, 210])
        } else {
            image::Rgb([40, 50, (x * 5) as u8])
        }
    });
    scan.save(path).unwrap();
}

fn testdata(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(path)
}

#[test]
fn volumes_series_and_corrupt_files_in_one_queue() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint_in::<Flex>(dir.path(), &[PROMPT]).unwrap();
    let input = dir.path().join("unlabelled");
    std::fs::create_dir_all(&input).unwrap();
    write_scan(&input.join("a.png"), 0);
    write_scan(&input.join("b.png"), 6);
    let volume = ct_volume();
    write_nifti(&input.join("ct.nii.gz"), &volume, OutputKind::Float).unwrap();
    let series = input.join("series");
    std::fs::create_dir_all(&series).unwrap();
    let source = testdata("dicom/ct2_series");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, series.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(input.join("broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    std::fs::write(input.join("broken.nii.gz"), b"\x1f\x8b\x08\x00garbage").unwrap();
    std::fs::write(input.join("notes.txt"), b"not an input").unwrap();

    let names: Vec<String> = rank::input_files(&input)
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "a.png",
            "b.png",
            "broken.nii.gz",
            "broken.png",
            "ct.nii.gz",
            "series"
        ]
    );

    let predictor = Predictor::<Flex>::load(&checkpoint, &Default::default())
        .unwrap()
        .with_samples(2)
        .with_seed(3);
    let inputs = rank::inputs_with_prompt(&input, PROMPT).unwrap();
    let out = dir.path().join("queue");
    let options = RankOptions::new(RankBy::Entropy, &out);
    let mut failed_events = Vec::new();
    let summary = rank::rank(&predictor, &inputs, &options, &mut |event| {
        if let RankEvent::Failed(path, _) = event {
            failed_events.push(path.to_path_buf());
        }
    })
    .unwrap();

    // The corrupt files: skipped, named, listed; the others ranked.
    let failed: Vec<&str> = summary
        .failed
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(failed, ["broken.nii.gz", "broken.png"]);
    assert_eq!(failed_events.len(), 2);
    for (path, error) in &summary.failed {
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(error.contains(name), "{error}");
    }
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("rank.json")).unwrap()).unwrap();
    assert_eq!(record["by"], "entropy");
    assert_eq!(record["failed"][1]["file"], "broken.png");
    assert!(
        record["failed"][1]["error"]
            .as_str()
            .unwrap()
            .contains("broken.png")
    );
    let page = std::fs::read_to_string(&summary.html).unwrap();
    assert!(
        page.contains("Not ranked") && page.contains("broken.nii.gz"),
        "{page}"
    );

    let row = |file: &str| -> QueueRow {
        summary
            .queue
            .iter()
            .find(|r| r.file == file)
            .unwrap_or_else(|| panic!("{file} not in the queue"))
            .clone()
    };
    assert_eq!(summary.queue.len(), 4);
    assert_eq!(row("a.png").slice, None);

    // The NIfTI volume scores the voxel mean of predicting it whole (same noise per slice),
    // and shows the slice with the highest mean entropy.
    let whole = predictor
        .predict_volume(&volume, PROMPT, 2, &IntensityMap::default())
        .unwrap();
    let entropy = whole.entropy.data();
    let mean = entropy.iter().map(|&e| f64::from(e)).sum::<f64>() / entropy.len() as f64;
    let ct = row("ct.nii.gz");
    assert!((ct.score - mean).abs() < 1e-6, "{} vs {mean}", ct.score);
    let voxels = whole.mask.data().iter().filter(|&&v| v > 0.5).count() as u64;
    assert_eq!(ct.area, voxels);
    let plane = 24 * 20;
    let slice_mean = |k: usize| entropy[k * plane..(k + 1) * plane].iter().sum::<f32>();
    let hardest = (0..5)
        .reduce(|b, k| if slice_mean(k) > slice_mean(b) { k } else { b })
        .unwrap();
    assert_eq!(ct.slice, Some(hardest));
    let overlay = image::open(out.join("overlays").join("ct.nii.gz.png")).unwrap();
    assert!(overlay.width() > 0);

    // The DICOM series folder: one row, a slice among its files.
    let series_row = row("series");
    let slices = std::fs::read_dir(&source).unwrap().count();
    assert!(
        series_row.slice.is_some_and(|k| k < slices),
        "{series_row:?}"
    );
    assert!(out.join("overlays").join("series.png").is_file());

    // queue.csv: one row per input, rank order, the slice column filled for volumes only.
    let csv = std::fs::read_to_string(&summary.csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "file,score,area,rank,slice");
    assert_eq!(lines.len(), 5);
    let scores: Vec<f64> = summary.queue.iter().map(|r| r.score).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!(
        csv.contains(&format!("ct.nii.gz,{},{voxels},", ct.score)),
        "{csv}"
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("a.png,") && l.ends_with(',')),
        "{csv}"
    );

    // Resumed: nothing new is scored, the queue reads back the same (slices included).
    let again = RankOptions {
        resume: true,
        ..options
    };
    let resumed = rank::rank(&predictor, &inputs, &again, &mut |_| {}).unwrap();
    assert_eq!(resumed.scored, 0);
    assert_eq!(resumed.queue, summary.queue);
}
