//! The `calibrate_rank` example on a micro checkpoint with random weights written here: the
//! calibrated threshold meets its bound on the calibration images, the queue is complete and
//! sorted, a budget stops the run and `resume` finishes it.

use std::path::Path;

use burn::backend::Flex;
use medclipseg_pipeline::Predictor;
use medclipseg_pipeline::rank::{self, RankOptions};
use medclipseg_pipeline::testing::micro_checkpoint_in;
use seg_metrics::ranking::RankBy;

#[allow(dead_code)]
#[path = "../examples/calibrate_rank.rs"]
mod example;

const PROMPT: &str = "one bright round lesion in the center";

/// `count` 32 x 32 scans with a bright disc and their masks, in `dir/img` and `dir/label`.
fn write_scans(dir: &Path, count: u32) {
    for sub in ["img", "label"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for i in 0..count {
        let (cx, cy, r) = (10.0 + i as f32, 12.0 + (i % 3) as f32, 4.0 + (i % 4) as f32);
        let inside =
            |x: u32, y: u32| ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt() < r;
        let scan = image::RgbImage::from_fn(32, 32, |x, y| {
            if inside(x, y) {
                image::Rgb([230, 220, 210])
            } else {
                image::Rgb([40, 50, (x * 5) as u8])
            }
        });
        let mask = image::GrayImage::from_fn(32, 32, |x, y| {
            image::Luma([if inside(x, y) { 255 } else { 0 }])
        });
        scan.save(dir.join("img").join(format!("scan{i}.png")))
            .unwrap();
        mask.save(dir.join("label").join(format!("scan{i}.png")))
            .unwrap();
    }
}

#[test]
fn the_example_calibrates_and_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint_in::<Flex>(dir.path(), &[PROMPT]).unwrap();
    write_scans(&dir.path().join("val"), 6);
    let device = Default::default();
    let predictor = Predictor::<Flex>::load(&checkpoint, &device)
        .unwrap()
        .with_samples(3);
    let val = dir.path().join("val");
    let result = example::calibrate(
        &predictor,
        &val.join("img"),
        &val.join("label"),
        PROMPT,
        0.4,
    )
    .unwrap();
    assert_eq!(result.n, 6);
    assert!(result.bound <= 0.4, "{result:?}");
    // Too few images for a small α is an error that says so, not a threshold.
    let err = example::calibrate(
        &predictor,
        &val.join("img"),
        &val.join("label"),
        PROMPT,
        0.1,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("cannot be certified"), "{err}");

    let out = dir.path().join("queue");
    let rows = example::queue(&predictor, &val.join("img"), PROMPT, &out).unwrap();
    assert_eq!(rows.len(), 6);
    assert!(rows.windows(2).all(|w| w[0].score >= w[1].score));
    assert_eq!(
        rows.iter().map(|r| r.rank).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<_>>()
    );
    assert!(out.join("queue.html").is_file() && out.join("queue.csv").is_file());

    // A budget of 2, then resume: the second run scores only the other 4, same queue.
    let inputs = rank::inputs_with_prompt(&val.join("img"), PROMPT).unwrap();
    let staged = dir.path().join("staged");
    let mut options = RankOptions::new(RankBy::MutualInformation, &staged);
    options.budget = Some(2);
    let first = rank::rank(&predictor, &inputs, &options, &mut |_| {}).unwrap();
    assert_eq!(
        (first.queue.len(), first.scored, first.remaining),
        (2, 2, 4)
    );
    options.budget = None;
    options.resume = true;
    let second = rank::rank(&predictor, &inputs, &options, &mut |_| {}).unwrap();
    assert_eq!(
        (second.queue.len(), second.scored, second.remaining),
        (6, 4, 0)
    );
    let files = |q: &[rank::QueueRow]| q.iter().map(|r| r.file.clone()).collect::<Vec<_>>();
    assert_eq!(files(&second.queue), files(&rows));
    // Resuming a queue ranked by another score is refused.
    options.by = RankBy::Entropy;
    let err = rank::rank(&predictor, &inputs, &options, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("ranked by mutual-information"), "{err}");
}
