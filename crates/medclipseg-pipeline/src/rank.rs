//! An annotation queue: unlabelled images and volumes scored by the model's uncertainty
//! ([`seg_metrics::ranking`]), most informative first.
//!
//! Inputs ([`input_files`]): pictures (by extension), NIfTI volumes, DICOM files (by content) and
//! sub-folders holding a DICOM series. A volume is predicted slice by slice along
//! [`RankOptions::axis`] (intensities mapped as `predict` maps them: the file's window for DICOM,
//! else percentiles) and scored by [`seg_metrics::ranking::volume_score`]: the same per-voxel
//! mean as a picture's score, so both share one queue; its most uncertain slice is shown.
//!
//! Files under the output folder: `queue.csv` (`file,score,area,rank,slice`; `area` is the
//! predicted mask in pixels, or voxels for a volume; rank 1 is looked at first; `slice` is the
//! volume's most uncertain slice, empty for a picture), `rank.json` (the score, and the inputs
//! that failed with why), `overlays/<file>.png` (the image, or that slice, with the predicted
//! mask | entropy map) and `queue.html` / `queue.md` showing the top of the queue and the
//! failures. An input that cannot be read or predicted (a corrupt file) is skipped and listed,
//! never fatal to the others. The queue is rewritten after every input, so a run that stops
//! keeps what it scored, and `resume` scores only the inputs not yet in it.
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
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use med_volumes::{DicomVolume, Input, InputOptions, Volume};
use seg_metrics::BinaryMask;
use seg_metrics::ranking::{
    RankBy, SliceScore, image_score, more_uncertain, rank_order, volume_score,
};
use serde::{Deserialize, Serialize};

use crate::Image8;
use crate::error::{PipelineError, Result};
use crate::predictor::{Prediction, Predictor, write_atomic};

/// One unlabelled image or volume and its prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankInput {
    /// The picture, volume file or DICOM series folder.
    pub path: PathBuf,
    /// Its prompt.
    pub prompt: String,
}

/// What `rank` reads in a folder, sorted: pictures (by extension), NIfTI files (by name or
/// content), DICOM files (by content, whatever their name) and sub-folders holding DICOM files
/// (one series each). Other files are not inputs.
pub fn input_files(dir: &Path) -> Result<Vec<PathBuf>> {
    crate::run_files::folder_entries(dir, |p| {
        crate::run_files::is_image_file(p) || med_volumes::is_volume_input(p)
    })
}

/// Every input of a folder ([`input_files`]) with one prompt.
pub fn inputs_with_prompt(dir: &Path, prompt: &str) -> Result<Vec<RankInput>> {
    Ok(input_files(dir)?
        .into_iter()
        .map(|path| RankInput {
            path,
            prompt: prompt.to_string(),
        })
        .collect())
}

/// Every input of a folder ([`input_files`]) with its prompt from a CSV with
/// `Image,Description` columns ([`med_datasets::ImagePrompts`]; a series folder by its folder
/// name); an input without a row or with an empty `Description` is an error naming it (and the
/// CSV line).
pub fn inputs_with_prompt_csv(dir: &Path, csv_path: &Path) -> Result<Vec<RankInput>> {
    let table = med_datasets::ImagePrompts::read_csv(csv_path)?;
    input_files(dir)?
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
    /// The axis volumes are sliced along (0 = i, 1 = j, 2 = k, as `predict --axis`).
    pub axis: usize,
}

impl RankOptions {
    /// All inputs, from scratch, the top 20 on the page, volumes sliced along k.
    pub fn new(by: RankBy, out: impl Into<PathBuf>) -> Self {
        Self {
            by,
            out: out.into(),
            budget: None,
            resume: false,
            top: 20,
            axis: 2,
        }
    }
}

/// One row of the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueRow {
    /// File (or series folder) name.
    pub file: String,
    /// Its score (higher: look first).
    pub score: f64,
    /// Predicted mask area in pixels (voxels for a volume).
    pub area: u64,
    /// Position in the queue, 1 first.
    pub rank: usize,
    /// A volume's most uncertain slice along [`RankOptions::axis`] (the one its overlay shows);
    /// `None` for a picture.
    #[serde(default)]
    pub slice: Option<usize>,
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

/// The settings a resumed queue must share (`rank.json`, which also lists the failures).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct QueueSettings {
    by: RankBy,
}

/// `rank.json`.
#[derive(Serialize)]
struct RankRecord<'a> {
    by: RankBy,
    axis: usize,
    /// Inputs not ranked, with why.
    failed: Vec<FailedInput<'a>>,
}

#[derive(Serialize)]
struct FailedInput<'a> {
    file: String,
    error: &'a str,
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
        // A decoder that panics on a hostile file fails that input, not the run.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            score_one(predictor, input, index as u64, options)
        }))
        .unwrap_or_else(|_| {
            Err(PipelineError::BadInput(format!(
                "{}: reading or predicting it panicked",
                input.path.display()
            )))
        });
        match outcome {
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
    let record = RankRecord {
        by: options.by,
        axis: options.axis,
        failed: failed
            .iter()
            .map(|(path, error)| FailedInput {
                file: file_name(path),
                error,
            })
            .collect(),
    };
    write_json(&settings_path, &record)?;
    let html = write_page(&rows, &failed, options)?;
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

/// An input's score, its mask area, and the picture (or slice) its overlay shows.
struct Scored {
    score: f64,
    area: u64,
    slice: Option<usize>,
    image: Image8,
    prediction: Prediction,
}

fn score_one<B: Backend>(
    predictor: &Predictor<B>,
    input: &RankInput,
    key: u64,
    options: &RankOptions,
) -> Result<QueueRow> {
    let scored = match med_volumes::open_input(&input.path, &InputOptions::default())? {
        Input::Image2d(path) => score_picture(
            predictor,
            crate::read_image(&path)?,
            &input.prompt,
            key,
            options.by,
        )?,
        Input::Nifti(volumes) => {
            let volume = volumes.into_iter().next().ok_or_else(|| {
                PipelineError::BadInput(format!("{}: no volume", input.path.display()))
            })?;
            let (lo, hi) = med_volumes::IntensityMap::default().bounds(volume.data())?;
            let grey =
                |_: usize, slice: &med_volumes::Slice2d| crate::volume::slice_to_bgr(slice, lo, hi);
            score_volume(predictor, &volume, &input.prompt, options, &grey)?
        }
        Input::Dicom(dicom) => score_dicom(predictor, &dicom, input, options)?,
    };
    let file = file_name(&input.path);
    write_overlay(
        &options.out.join("overlays").join(format!("{file}.png")),
        &scored.image,
        &scored.prediction,
    )?;
    Ok(QueueRow {
        file,
        score: scored.score,
        area: scored.area,
        rank: 0,
        slice: scored.slice,
    })
}

fn score_picture<B: Backend>(
    predictor: &Predictor<B>,
    image: Image8,
    prompt: &str,
    key: u64,
    by: RankBy,
) -> Result<Scored> {
    let prediction = predictor.predict_image_keyed(&image, prompt, key)?;
    Ok(Scored {
        score: image_score(by, &prediction.uncertainty_maps())?,
        area: mask_pixels(&prediction) as u64,
        slice: None,
        image,
        prediction,
    })
}

/// A DICOM file or series: a volume through its own window (or percentiles), colour frames as
/// stored; one frame is scored as a picture (as `predict` treats it).
fn score_dicom<B: Backend>(
    predictor: &Predictor<B>,
    dicom: &DicomVolume,
    input: &RankInput,
    options: &RankOptions,
) -> Result<Scored> {
    let (map, _) = dicom.intensity(None);
    let bounds = if dicom.rgb.is_some() {
        (0.0, 255.0)
    } else {
        map.bounds(dicom.volume.data())?
    };
    let [cols, rows, frames] = dicom.volume.dims();
    let frame = |k: usize| -> Image8 {
        let rgb = dicom.rgb8_slice(k, bounds).unwrap_or_default();
        Image8 {
            width: cols,
            height: rows,
            channels: 3,
            data: rgb
                .chunks_exact(3)
                .flat_map(|p| [p[2], p[1], p[0]])
                .collect(),
        }
    };
    if frames == 1 {
        return score_picture(predictor, frame(0), &input.prompt, 0, options.by);
    }
    if dicom.rgb.is_some() {
        if options.axis != 2 {
            return Err(PipelineError::BadInput(format!(
                "{}: a colour image is sliced along its frames only (axis 2)",
                input.path.display()
            )));
        }
        return score_volume(predictor, &dicom.volume, &input.prompt, options, &|k, _| {
            frame(k)
        });
    }
    let grey = |_: usize, slice: &med_volumes::Slice2d| {
        crate::volume::slice_to_bgr(slice, bounds.0, bounds.1)
    };
    score_volume(predictor, &dicom.volume, &input.prompt, options, &grey)
}

/// Predicts every slice, keeps one [`SliceScore`] per slice and the most uncertain slice's
/// picture, and aggregates with [`volume_score`].
fn score_volume<B: Backend>(
    predictor: &Predictor<B>,
    volume: &Volume,
    prompt: &str,
    options: &RankOptions,
    image: &dyn Fn(usize, &med_volumes::Slice2d) -> Image8,
) -> Result<Scored> {
    let mut slices: Vec<SliceScore> = Vec::new();
    let mut best: Option<(usize, Image8, Prediction)> = None;
    predictor.visit_slice_predictions(
        volume,
        prompt,
        options.axis,
        image,
        &mut |_| ControlFlow::Continue(()),
        &mut |index, picture, prediction| {
            let score = SliceScore::of(options.by, &prediction.uncertainty_maps())?;
            let better = best
                .as_ref()
                .is_none_or(|(b, _, _)| more_uncertain(options.by, &score, &slices[*b]));
            if better {
                best = Some((index, picture, prediction));
            }
            slices.push(score);
            Ok(())
        },
    )?;
    let (index, image, prediction) = best.ok_or_else(|| {
        PipelineError::BadInput(format!(
            "the volume has no slice along axis {}",
            options.axis
        ))
    })?;
    Ok(Scored {
        score: volume_score(options.by, &slices),
        area: slices.iter().map(|s| s.mask_pixels as u64).sum(),
        slice: Some(index),
        image,
        prediction,
    })
}

fn mask_pixels(prediction: &Prediction) -> usize {
    prediction.mask.data().iter().filter(|&&b| b).count()
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

/// `queue.html` and `queue.md`: the top of the queue with overlays, and the failures.
fn write_page(
    rows: &[QueueRow],
    failed: &[(PathBuf, String)],
    options: &RankOptions,
) -> Result<PathBuf> {
    let mut report = seg_viz::report::Report::new("Annotation queue").paragraph(format!(
        "{} inputs ranked by {}, most informative first ({}). A volume scores the mean over \
         all its voxels, like a picture; its most uncertain slice (axis {}) is shown. The full \
         queue is queue.csv.",
        rows.len(),
        options.by,
        describe(options.by),
        options.axis
    ));
    for row in rows.iter().take(options.top) {
        let what = match row.slice {
            Some(k) => format!("predicted volume {} voxels, slice {k} shown", row.area),
            None => format!("predicted area {} px", row.area),
        };
        report = report.figure(
            format!("overlays/{}.png", row.file),
            format!("#{} {}: score {:.4}, {what}", row.rank, row.file, row.score),
        );
    }
    if !failed.is_empty() {
        let lines: Vec<String> = failed
            .iter()
            .map(|(path, error)| format!("{}: {error}", file_name(path)))
            .collect();
        report = report
            .section("Not ranked")
            .paragraph(format!(
                "{} inputs could not be read or predicted (also in rank.json):",
                failed.len()
            ))
            .code(lines.join("\n"));
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
