//! An annotation queue: unlabelled images scored by the model's uncertainty
//! ([`seg_metrics::ranking`]), most informative first.
//!
//! Files under the output folder: `queue.csv` (`file,score,area,rank`; `area` is the predicted
//! mask in pixels, rank 1 is looked at first), `rank.json` (the score and its settings),
//! `overlays/<file>.png` (image with the predicted mask | entropy map) and `queue.html` /
//! `queue.md` showing the top of the queue. The queue is rewritten after every image, so a
//! run that stops keeps what it scored, and `resume` scores only the images not yet in it.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use medclipseg_pipeline::{Predictor, rank};
//! use seg_metrics::ranking::RankBy;
//!
//! let device = Default::default();
//! let predictor = Predictor::<Flex>::load("busi.safetensors", &device)?.with_samples(10);
//! let inputs = rank::inputs_with_prompt("unlabelled/".as_ref(), "a tumour")?;
//! let options = rank::RankOptions::new(RankBy::MutualInformation, "queue/");
//! let summary = rank::rank(&predictor, &inputs, &options, &mut |_| {})?;
//! println!("look at {} first", summary.queue[0].file);
//! # Ok::<(), medclipseg_pipeline::PipelineError>(())
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use seg_metrics::BinaryMask;
use seg_metrics::ranking::{RankBy, image_score, rank_order};
use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};
use crate::predictor::{Prediction, Predictor, write_atomic};

/// One unlabelled image and its prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankInput {
    /// The image.
    pub path: PathBuf,
    /// Its prompt.
    pub prompt: String,
}

/// Every image of a folder (sorted) with one prompt.
pub fn inputs_with_prompt(dir: &Path, prompt: &str) -> Result<Vec<RankInput>> {
    Ok(crate::calibrator::image_files(dir)?
        .into_iter()
        .map(|path| RankInput {
            path,
            prompt: prompt.to_string(),
        })
        .collect())
}

/// Every image of a folder (sorted) with its prompt from a CSV with `Image,Description`
/// columns ([`med_datasets::ImagePrompts`]); an image without a row or with an empty
/// `Description` is an error naming it (and the CSV line).
pub fn inputs_with_prompt_csv(dir: &Path, csv_path: &Path) -> Result<Vec<RankInput>> {
    let table = med_datasets::ImagePrompts::read_csv(csv_path)?;
    crate::calibrator::image_files(dir)?
        .into_iter()
        .map(|path| {
            let prompt = table.prompt(&file_name(&path))?.to_string();
            Ok(RankInput { path, prompt })
        })
        .collect()
}

/// How to rank and where to write.
#[derive(Debug, Clone)]
pub struct RankOptions {
    /// The score.
    pub by: RankBy,
    /// Output folder.
    pub out: PathBuf,
    /// Score at most this many new images in this run (`None`: all).
    pub budget: Option<usize>,
    /// Keep the images already in `out/queue.csv` and score only the others.
    pub resume: bool,
    /// Images shown on the HTML page.
    pub top: usize,
}

impl RankOptions {
    /// All images, from scratch, the top 20 on the page.
    pub fn new(by: RankBy, out: impl Into<PathBuf>) -> Self {
        Self {
            by,
            out: out.into(),
            budget: None,
            resume: false,
            top: 20,
        }
    }
}

/// One row of the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueRow {
    /// Image file name.
    pub file: String,
    /// Its score (higher: look first).
    pub score: f64,
    /// Predicted mask area in pixels.
    pub area: u64,
    /// Position in the queue, 1 first.
    pub rank: usize,
}

/// What happened to one image.
pub enum RankEvent<'a> {
    /// Scored.
    Scored(&'a QueueRow),
    /// Already in the queue of an earlier run.
    Kept(&'a Path),
    /// Could not be read or predicted (skipped, listed in [`RankSummary::failed`]).
    Failed(&'a Path, &'a PipelineError),
}

/// The result of [`rank`].
#[derive(Debug, Clone)]
pub struct RankSummary {
    /// The whole queue, rank order.
    pub queue: Vec<QueueRow>,
    /// Images scored in this run.
    pub scored: usize,
    /// Images neither scored nor in the queue (left by the budget).
    pub remaining: usize,
    /// Images that failed, with the reason.
    pub failed: Vec<(PathBuf, String)>,
    /// `queue.csv`.
    pub csv: PathBuf,
    /// `queue.html`.
    pub html: PathBuf,
}

/// The settings a resumed queue must share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct QueueSettings {
    by: RankBy,
}

/// Scores `inputs` and writes the queue (see the module documentation).
pub fn rank<B: Backend>(
    predictor: &Predictor<B>,
    inputs: &[RankInput],
    options: &RankOptions,
    progress: &mut dyn FnMut(RankEvent),
) -> Result<RankSummary> {
    check_unique_names(inputs)?;
    let csv = options.out.join("queue.csv");
    let settings_path = options.out.join("rank.json");
    let mut rows = if options.resume {
        // Images no longer in the input leave the queue.
        let names: BTreeSet<String> = inputs.iter().map(|i| file_name(&i.path)).collect();
        let mut rows = previous_rows(&csv, &settings_path, options.by)?;
        rows.retain(|r| names.contains(&r.file));
        rows
    } else {
        Vec::new()
    };
    let settings = QueueSettings { by: options.by };
    write_json(&settings_path, &settings)?;
    let done: BTreeSet<String> = rows.iter().map(|r| r.file.clone()).collect();
    let (mut scored, mut remaining, mut failed) = (0, 0, Vec::new());
    for (index, input) in inputs.iter().enumerate() {
        let file = file_name(&input.path);
        if done.contains(&file) {
            progress(RankEvent::Kept(&input.path));
            continue;
        }
        if options.budget.is_some_and(|b| scored >= b) {
            remaining += 1;
            continue;
        }
        match score_one(predictor, input, index as u64, options) {
            Ok(row) => {
                scored += 1;
                progress(RankEvent::Scored(&row));
                rows.push(row);
                write_atomic(&csv, queue_csv(&mut rows)?.as_bytes())?;
            }
            Err(error) => {
                progress(RankEvent::Failed(&input.path, &error));
                failed.push((input.path.clone(), crate::error::with_causes(&error)));
            }
        }
    }
    write_atomic(&csv, queue_csv(&mut rows)?.as_bytes())?;
    let html = write_page(&rows, options)?;
    Ok(RankSummary {
        queue: rows,
        scored,
        remaining,
        failed,
        csv,
        html,
    })
}

/// Two inputs with one file name would share a queue row and an overlay.
fn check_unique_names(inputs: &[RankInput]) -> Result<()> {
    let mut seen = BTreeSet::new();
    for input in inputs {
        if !seen.insert(file_name(&input.path)) {
            return Err(PipelineError::BadInput(format!(
                "{}: two inputs have this file name",
                input.path.display()
            )));
        }
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn score_one<B: Backend>(
    predictor: &Predictor<B>,
    input: &RankInput,
    key: u64,
    options: &RankOptions,
) -> Result<QueueRow> {
    let image = crate::read_image(&input.path)?;
    let prediction = predictor.predict_image_keyed(&image, &input.prompt, key)?;
    let score = image_score(options.by, &prediction.uncertainty_maps())?;
    let file = file_name(&input.path);
    write_overlay(
        &options.out.join("overlays").join(format!("{file}.png")),
        &image,
        &prediction,
    )?;
    Ok(QueueRow {
        file,
        score,
        area: prediction.mask.data().iter().filter(|&&b| b).count() as u64,
        rank: 0,
    })
}

/// Image with the predicted mask | entropy map.
fn write_overlay(path: &Path, image: &crate::Image8, prediction: &Prediction) -> Result<()> {
    let (w, h) = (image.width as u32, image.height as u32);
    let mut rgb = seg_viz::RgbImage::new(w, h);
    for (i, pixel) in rgb.pixels_mut().enumerate() {
        let p = &image.data[i * 3..i * 3 + 3];
        pixel.0 = [p[2], p[1], p[0]];
    }
    let style = seg_viz::OverlayStyle::filled(seg_viz::palette::PREDICTION);
    let overlay = seg_viz::overlay_mask(&rgb, prediction.mask.data(), &style)?;
    let entropy =
        seg_viz::uncertainty_image(&prediction.entropy, w, h, seg_viz::ChannelOrder::Rgb)?;
    let row = seg_viz::overlay::panel_row(
        &[
            seg_viz::overlay::Panel {
                title: "mask".into(),
                image: overlay,
            },
            seg_viz::overlay::Panel {
                title: "entropy".into(),
                image: entropy,
            },
        ],
        128,
    )?;
    Ok(seg_viz::write_png(path, &row)?)
}

/// Sorts `rows` most informative first, numbers them, and renders the CSV.
fn queue_csv(rows: &mut Vec<QueueRow>) -> Result<String> {
    let scores: Vec<f64> = rows.iter().map(|r| r.score).collect();
    let order = rank_order(&scores);
    let mut sorted: Vec<QueueRow> = order.into_iter().map(|i| rows[i].clone()).collect();
    for (i, row) in sorted.iter_mut().enumerate() {
        row.rank = i + 1;
    }
    *rows = sorted;
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows.iter() {
        writer
            .serialize(row)
            .map_err(|e| PipelineError::BadInput(format!("queue.csv: {e}")))?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| PipelineError::BadInput(format!("queue.csv: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The rows of an earlier run; refuses a queue ranked by another score.
fn previous_rows(csv_path: &Path, settings_path: &Path, by: RankBy) -> Result<Vec<QueueRow>> {
    if !csv_path.is_file() {
        return Ok(Vec::new());
    }
    if let Ok(bytes) = std::fs::read(settings_path) {
        let previous: QueueSettings =
            serde_json::from_slice(&bytes).map_err(|source| PipelineError::Json {
                path: settings_path.to_path_buf(),
                source,
            })?;
        if previous.by != by {
            return Err(PipelineError::BadInput(format!(
                "{}: the queue was ranked by {}, not {by}: use another --out or the same --by",
                settings_path.display(),
                previous.by
            )));
        }
    }
    let mut reader = csv::Reader::from_path(csv_path).map_err(|e| {
        PipelineError::BadInput(format!("{}: cannot read: {e}", csv_path.display()))
    })?;
    reader
        .deserialize()
        .map(|row| row.map_err(|e| PipelineError::BadInput(format!("{}: {e}", csv_path.display()))))
        .collect()
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| PipelineError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, text.as_bytes())
}

/// `queue.html` and `queue.md`: the top of the queue with overlays.
fn write_page(rows: &[QueueRow], options: &RankOptions) -> Result<PathBuf> {
    let mut report = seg_viz::report::Report::new("Annotation queue").paragraph(format!(
        "{} images ranked by {}, most informative first ({}). The full queue is queue.csv.",
        rows.len(),
        options.by,
        describe(options.by)
    ));
    for row in rows.iter().take(options.top) {
        report = report.figure(
            format!("overlays/{}.png", row.file),
            format!(
                "#{} {}: score {:.4}, predicted area {} px",
                row.rank, row.file, row.score, row.area
            ),
        );
    }
    Ok(report.write(&options.out, "queue")?.html)
}

/// One line on what a score means.
pub fn describe(by: RankBy) -> &'static str {
    match by {
        RankBy::Entropy => "mean predictive entropy of the Monte-Carlo mean: total uncertainty",
        RankBy::MutualInformation => {
            "mean mutual information between the prediction and the model: the epistemic part, \
             high on images unlike the training data"
        }
        RankBy::MaskEntropy => "mean predictive entropy inside the predicted mask",
        RankBy::Disagreement => {
            "mean pairwise disagreement of the Monte-Carlo samples' masks: the expected share \
             of pixels on which two samples differ"
        }
    }
}
