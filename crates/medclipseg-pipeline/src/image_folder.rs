//! Many 2-D images in one run, as `medclipseg predict` runs them: a folder, a list file or one
//! image, each with its prompt (one for all, or a CSV `Image,Description`).
//!
//! Each image's outputs are written as soon as it is done (mask, overlay, uncertainty map, raw
//! maps, and the uncertain band with a two-level calibration), its record goes to
//! `predictions.json`; an image that cannot be read or predicted is reported and skipped;
//! `resume` skips images whose outputs exist; [`Shard`]s split a folder between processes
//! without talking; two inputs never write the same file (`a.png` and `a.jpg` become `a_png`
//! and `a_jpg`).
//!
//! ```no_run
//! use burn::backend::Flex;
//! use medclipseg_pipeline::Predictor;
//! use medclipseg_pipeline::image_folder::{FolderRun, PromptSource, image_jobs};
//!
//! let predictor = Predictor::<Flex>::load("busi.safetensors", &Default::default())?;
//! let prompt = PromptSource::One("one small round tumor at the center".into());
//! let jobs = image_jobs("scans/".as_ref(), &prompt)?;
//! let outcome = FolderRun::new(&predictor, "predictions").run(&jobs, &mut ())?;
//! println!("{} written, {} failed", outcome.records.len(), outcome.failed.len());
//! # Ok::<(), medclipseg_pipeline::PipelineError>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::prelude::Backend;
use med_datasets::imaging::{Image8, read_bgr};
use med_volumes::IntensityMap;
use seg_metrics::BinaryMask;
use seg_metrics::conformal::CalibrationFile;
use serde::{Deserialize, Serialize};

use crate::predictor::write_mask_png;
use crate::prompts::PromptLength;
use crate::run_files::write_json;
use crate::{PipelineError, Prediction, Predictor, Result, check_prompt};

/// `predictions.json` is rewritten after this many new images (and at the end), so a long run
/// that stops keeps its records without rewriting a large file after every image.
const RECORD_FLUSH_EVERY: usize = 32;

/// Where the prompts come from.
#[derive(Debug, Clone)]
pub enum PromptSource {
    /// One prompt for every image.
    One(String),
    /// A CSV `Image,Description`, looked up by file name.
    Csv(PathBuf),
}

/// Part `index` (from 1) of `count`: a folder's (or list's) images split by a hash of their
/// output name, so every process agrees without talking, and an image keeps its shard when the
/// folder grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This part, 1..=count.
    pub index: u32,
    /// Number of parts.
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = PipelineError;

    /// `K/N` with 1 <= K <= N.
    fn from_str(s: &str) -> Result<Self> {
        let parsed = s
            .split_once('/')
            .and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if index >= 1 && index <= count => Ok(Shard { index, count }),
            _ => Err(PipelineError::BadInput(format!(
                "{s:?}: a shard is K/N with 1 <= K <= N (e.g. 2/8)"
            ))),
        }
    }
}

impl Shard {
    /// True when the image with output name `name` belongs to this shard (FNV-1a of the name).
    pub fn takes(&self, name: &str) -> bool {
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        hash % u64::from(self.count) == u64::from(self.index - 1)
    }

    /// `<stem>.shard-K-of-N.json`: each shard's records and provenance, side by side.
    pub fn file_name(&self, stem: &str) -> String {
        format!("{stem}.shard-{}-of-{}.json", self.index, self.count)
    }
}

/// `<stem>.json`, or the shard's own file.
pub fn json_file_name(shard: Option<Shard>, stem: &str) -> String {
    shard.map_or(format!("{stem}.json"), |shard| shard.file_name(stem))
}

/// One line of `predictions.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PredictionRecord {
    /// The input image.
    pub image: String,
    /// Its prompt.
    pub prompt: String,
    /// `masks/<name>.png`.
    pub mask: String,
    /// `overlays/<name>.png`.
    pub overlay: String,
    /// `uncertainty/<name>.png`.
    pub uncertainty: String,
    /// `raw/<name>.safetensors`: the probability and the three uncertainty maps.
    pub raw: String,
    /// Fraction of the image in the mask.
    pub foreground_fraction: f64,
    /// Mean predictive entropy.
    pub mean_uncertainty: f64,
    /// The uncertain band's mask (with a calibration file that has a band level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
    /// How a DICOM image's values became 8-bit (none for image files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intensity: Option<String>,
}

/// One image to predict.
#[derive(Debug, Clone)]
pub struct ImageJob {
    /// Its place among all the input's images: the key of its noise, the same in every shard.
    pub index: usize,
    /// The file.
    pub path: PathBuf,
    /// Its prompt, or why it has none (an empty prompt, a file missing from the CSV).
    pub prompt: std::result::Result<String, String>,
    /// Output file stem, unique among the jobs.
    pub name: String,
}

/// The thresholds a calibration file sets: the mask's, and the uncertain band's `[low, high)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibratedThresholds {
    /// `mask = probability ≥ mask`.
    pub mask: f32,
    /// `low ≤ probability < high`.
    pub band: Option<(f32, f32)>,
}

impl CalibratedThresholds {
    /// The thresholds of a calibration file.
    pub fn of(file: &CalibrationFile) -> Self {
        Self {
            mask: file.threshold,
            band: file.band_range(),
        }
    }
}

/// The files written for one image.
#[derive(Debug, Clone)]
struct OutputPaths {
    mask: PathBuf,
    overlay: PathBuf,
    uncertainty: PathBuf,
    raw: PathBuf,
    /// `band/<name>.png`, when the calibration has a band level.
    band: Option<PathBuf>,
}

impl OutputPaths {
    fn new(out: &Path, name: &str, with_band: bool) -> Self {
        Self {
            mask: out.join("masks").join(format!("{name}.png")),
            overlay: out.join("overlays").join(format!("{name}.png")),
            uncertainty: out.join("uncertainty").join(format!("{name}.png")),
            raw: out.join("raw").join(format!("{name}.safetensors")),
            band: with_band.then(|| out.join("band").join(format!("{name}.png"))),
        }
    }

    fn all_exist(&self) -> bool {
        [&self.mask, &self.overlay, &self.uncertainty, &self.raw]
            .into_iter()
            .chain(&self.band)
            .all(|p| p.is_file())
    }
}

/// What a [`FolderRun`] reports while it runs; every method does nothing by default (`()` is
/// the silent observer).
pub trait FolderObserver {
    /// `job`'s prompt is longer than the text tower's context and was cut (once per prompt).
    fn prompt_cut(&mut self, _job: &ImageJob, _length: PromptLength) {}
    /// `job` could not be read or predicted; the run goes on without it.
    fn image_failed(&mut self, _job: &ImageJob, _error: &PipelineError) {}
    /// `job` is a MONOCHROME1 DICOM image (high values dark): it was inverted before the model.
    fn monochrome1_inverted(&mut self, _job: &ImageJob) {}
    /// One more image is done (predicted, skipped as done before, or failed).
    fn image_finished(&mut self) {}
}

impl FolderObserver for () {}

/// What a [`FolderRun`] did.
#[derive(Debug, Clone)]
pub struct FolderOutcome {
    /// The records written to `predictions.json`, in the jobs' order.
    pub records: Vec<PredictionRecord>,
    /// The images that failed (reported to the observer).
    pub failed: Vec<PathBuf>,
    /// Images skipped because an earlier run wrote them (`resume`).
    pub skipped: usize,
    /// The records file.
    pub records_path: PathBuf,
}

/// A [`Predictor`] over many images, writing under one output folder.
pub struct FolderRun<'a, B: Backend> {
    predictor: &'a Predictor<B>,
    out: PathBuf,
    resume: bool,
    window: Option<IntensityMap>,
    shard: Option<Shard>,
    thresholds: Option<CalibratedThresholds>,
}

impl<'a, B: Backend> FolderRun<'a, B> {
    /// Outputs under `out`; no resume, no shard, no calibration, DICOM files in their own window.
    pub fn new(predictor: &'a Predictor<B>, out: impl Into<PathBuf>) -> Self {
        Self {
            predictor,
            out: out.into(),
            resume: false,
            window: None,
            shard: None,
            thresholds: None,
        }
    }

    /// Skip images whose outputs and record an earlier run wrote.
    pub fn with_resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// The intensity window of DICOM inputs (else a file's own window, else percentiles).
    pub fn with_window(mut self, window: Option<IntensityMap>) -> Self {
        self.window = window;
        self
    }

    /// Records go to this shard's file (the caller keeps the shard's jobs: [`Shard::takes`]).
    pub fn with_shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard;
        self
    }

    /// Masks at a calibrated threshold, and the band when it has two levels.
    pub fn with_thresholds(mut self, thresholds: Option<CalibratedThresholds>) -> Self {
        self.thresholds = thresholds;
        self
    }

    /// Predicts `jobs`, writing each image's outputs as it goes and `predictions.json` every
    /// [`RECORD_FLUSH_EVERY`] images and at the end. A failed image is reported and skipped;
    /// only a failure to write the records ends the run early.
    pub fn run(
        &self,
        jobs: &[ImageJob],
        observer: &mut dyn FolderObserver,
    ) -> Result<FolderOutcome> {
        let records_path = self.out.join(json_file_name(self.shard, "predictions"));
        let previous = if self.resume {
            previous_records(&records_path)
        } else {
            BTreeMap::new()
        };
        let with_band = self.thresholds.is_some_and(|t| t.band.is_some());
        let mut outcome = FolderOutcome {
            records: Vec::new(),
            failed: Vec::new(),
            skipped: 0,
            records_path,
        };
        // Each distinct prompt is tokenized once for its length (one prompt serves a folder).
        let (mut unsaved, mut measured) = (0, BTreeSet::new());
        for job in jobs {
            if let Ok(prompt) = &job.prompt
                && measured.insert(prompt.clone())
            {
                let length = self.predictor.prompt_length(prompt)?;
                if length.is_cut() {
                    observer.prompt_cut(job, length);
                }
            }
            let outputs = OutputPaths::new(&self.out, &job.name, with_band);
            match previous.get(&job.path.display().to_string()) {
                Some(record) if outputs.all_exist() => {
                    outcome.records.push(record.clone());
                    outcome.skipped += 1;
                }
                _ => match self.predict_one(job, &outputs, observer) {
                    Ok(record) => {
                        outcome.records.push(record);
                        unsaved += 1;
                    }
                    Err(error) => {
                        observer.image_failed(job, &error);
                        outcome.failed.push(job.path.clone());
                    }
                },
            }
            if unsaved >= RECORD_FLUSH_EVERY {
                write_json(&outcome.records_path, &outcome.records)?;
                unsaved = 0;
            }
            observer.image_finished();
        }
        write_json(&outcome.records_path, &outcome.records)?;
        Ok(outcome)
    }

    /// Reads, predicts and writes one image.
    fn predict_one(
        &self,
        job: &ImageJob,
        outputs: &OutputPaths,
        observer: &mut dyn FolderObserver,
    ) -> Result<PredictionRecord> {
        let prompt = job
            .prompt
            .as_ref()
            .map_err(|e| PipelineError::BadInput(e.clone()))?;
        // A DICOM file (found by content, whatever its name) is read as the PNG of it would be.
        let (image, intensity) = if med_volumes::is_dicom_file(&job.path) {
            let dicom = crate::dicom_image(&job.path, self.window)?;
            if dicom.monochrome1_inverted {
                observer.monochrome1_inverted(job);
            }
            (dicom.image, Some(dicom.note))
        } else {
            (read_bgr(&job.path)?, None)
        };
        let mut prediction =
            self.predictor
                .predict_image_keyed(&image, prompt, job.index as u64)?;
        if let Some(thresholds) = self.thresholds {
            prediction.apply_threshold(thresholds.mask)?;
        }
        write_outputs(outputs, &image, &prediction)?;
        let band = self.thresholds.and_then(|t| t.band);
        if let (Some(path), Some((low, high))) = (&outputs.band, band) {
            write_mask_png(path, &prediction.band_mask(low, high)?)?;
        }
        Ok(PredictionRecord {
            image: job.path.display().to_string(),
            prompt: prompt.clone(),
            mask: outputs.mask.display().to_string(),
            overlay: outputs.overlay.display().to_string(),
            uncertainty: outputs.uncertainty.display().to_string(),
            raw: outputs.raw.display().to_string(),
            foreground_fraction: prediction.foreground_fraction(),
            mean_uncertainty: prediction.mean_entropy(),
            band: outputs.band.as_ref().map(|p| p.display().to_string()),
            intensity,
        })
    }
}

/// Records of an earlier run, by image path; none when the file is missing or unreadable.
fn previous_records(path: &Path) -> BTreeMap<String, PredictionRecord> {
    let records: Vec<PredictionRecord> = std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    records.into_iter().map(|r| (r.image.clone(), r)).collect()
}

/// `(image, prompt)` jobs of `input` (an image, a folder of images or a list file), with unique
/// output names. A missing input, a list naming a missing file or a volume, or a CSV that cannot
/// be read is an error; an image without a usable prompt is a job whose prompt says why (the run
/// reports it and goes on).
pub fn image_jobs(input: &Path, prompts: &PromptSource) -> Result<Vec<ImageJob>> {
    let images = input_images(input)?;
    let prompts: Vec<std::result::Result<String, String>> = match prompts {
        PromptSource::One(prompt) => images
            .iter()
            .map(|image| {
                check_prompt(prompt)
                    .map(|()| prompt.clone())
                    .map_err(|e| format!("{}: --prompt: {e}", image.display()))
            })
            .collect(),
        PromptSource::Csv(csv) => {
            let table = med_datasets::ImagePrompts::read_csv(csv)?;
            images
                .iter()
                .map(|i| {
                    let name = i.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                    let prompt = table.prompt(name).map_err(|e| e.to_string())?;
                    check_prompt(prompt)
                        .map(|()| prompt.to_string())
                        .map_err(|e| {
                            let line = table.line(name).unwrap_or_default();
                            format!("{} line {line} (image {name}): {e}", csv.display())
                        })
                })
                .collect()
        }
    };
    let names = output_names(&images);
    Ok(images
        .into_iter()
        .zip(prompts)
        .zip(names)
        .enumerate()
        .map(|(index, ((path, prompt), name))| ImageJob {
            index,
            path,
            prompt,
            name,
        })
        .collect())
}

/// The images of a folder (by extension, sorted), of a list file, or the one image given.
fn input_images(input: &Path) -> Result<Vec<PathBuf>> {
    let images = if input.is_dir() {
        crate::calibrator::image_files(input)?
    } else if is_list_file(input) {
        read_list_file(input)?
    } else if input.is_file() {
        vec![input.to_path_buf()]
    } else {
        return Err(PipelineError::BadInput(format!(
            "{}: no such file or folder",
            input.display()
        )));
    };
    if images.is_empty() {
        return Err(PipelineError::BadInput(format!(
            "{}: no images found",
            input.display()
        )));
    }
    Ok(images)
}

/// A list of inputs: a `.txt` or `.lst` file that is not DICOM by its content.
pub fn is_list_file(path: &Path) -> bool {
    let listed = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["txt", "lst"].contains(&e.to_ascii_lowercase().as_str()));
    listed && path.is_file() && !med_volumes::is_dicom_file(path)
}

/// The images a list file names, one path a line (relative to the list's folder; blank lines
/// and `#` comments skipped), in its order. A missing file, a folder or a volume is an error
/// naming the line: a list holds 2-D images (and single-frame DICOM files), as a folder does.
fn read_list_file(list: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(list).map_err(|source| PipelineError::Read {
        path: list.to_path_buf(),
        source,
    })?;
    let base = list.parent().unwrap_or(Path::new(""));
    let mut images = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let entry = line.trim();
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        let path = base.join(entry);
        let at = || format!("{} line {}: {}", list.display(), number + 1, path.display());
        if !path.is_file() {
            return Err(PipelineError::BadInput(format!("{}: no such file", at())));
        }
        if med_volumes::is_3d_volume_input(&path, &med_datasets::imaging::IMAGE_EXTENSIONS) {
            return Err(PipelineError::BadInput(format!(
                "{}: a volume; a list holds 2-D images (predict a volume on its own)",
                at()
            )));
        }
        images.push(path);
    }
    if images.is_empty() {
        return Err(PipelineError::BadInput(format!(
            "{}: the list names no file",
            list.display()
        )));
    }
    Ok(images)
}

/// Output stems, unique even on a case-insensitive file system: the file stem, or the whole
/// file name (`a_png`, `a_jpg`) when stems collide, then a counter if names still collide.
pub fn output_names(paths: &[PathBuf]) -> Vec<String> {
    let stem = |p: &PathBuf| {
        p.file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "image".into())
    };
    let mut stem_count: BTreeMap<String, usize> = BTreeMap::new();
    for p in paths {
        *stem_count.entry(stem(p).to_lowercase()).or_default() += 1;
    }
    let mut taken = BTreeSet::new();
    paths
        .iter()
        .map(|p| {
            let base = if stem_count[&stem(p).to_lowercase()] > 1 {
                p.file_name()
                    .map(|n| n.to_string_lossy().replace('.', "_"))
                    .unwrap_or_else(|| stem(p))
            } else {
                stem(p)
            };
            let mut name = base.clone();
            let mut n = 2;
            while !taken.insert(name.to_lowercase()) {
                name = format!("{base}_{n}");
                n += 1;
            }
            name
        })
        .collect()
}

/// Writes the mask, overlay, uncertainty map and raw maps of one image (each atomically).
fn write_outputs(outputs: &OutputPaths, image: &Image8, prediction: &Prediction) -> Result<()> {
    let (h, w) = (image.height, image.width);
    prediction.write_mask_png(&outputs.mask)?;
    let mut rgb = seg_viz::RgbImage::new(w as u32, h as u32);
    for (i, pixel) in rgb.pixels_mut().enumerate() {
        let p = &image.data[i * 3..i * 3 + 3];
        pixel.0 = [p[2], p[1], p[0]];
    }
    let overlay = seg_viz::overlay_mask(
        &rgb,
        prediction.mask.data(),
        &seg_viz::OverlayStyle::filled([255, 64, 64]),
    )?;
    seg_viz::write_png(&outputs.overlay, &overlay)?;
    seg_viz::write_uncertainty_png(
        &outputs.uncertainty,
        &prediction.entropy,
        w as u32,
        h as u32,
        seg_viz::ChannelOrder::Rgb,
    )?;
    // The raw maps at the image's size, as the mask.
    crate::predictor::save_raw_maps(
        &outputs.raw,
        [h, w],
        [
            &prediction.probability,
            &prediction.entropy,
            &prediction.aleatoric,
            &prediction.epistemic,
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_names_between_them_once() {
        assert!("0/3".parse::<Shard>().is_err());
        assert!("4/3".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
        let shards: Vec<Shard> = (1..=3).map(|k| format!("{k}/3").parse().unwrap()).collect();
        let names: Vec<String> = (0..200).map(|i| format!("case_{i}")).collect();
        let mut sizes = [0usize; 3];
        for name in &names {
            let owners: Vec<usize> = (0..3).filter(|&s| shards[s].takes(name)).collect();
            assert_eq!(owners.len(), 1, "{name}");
            sizes[owners[0]] += 1;
        }
        assert!(sizes.iter().all(|&n| n > 40), "{sizes:?}");
    }

    #[test]
    fn two_inputs_never_share_an_output_name() {
        let paths: Vec<PathBuf> = ["d/a.png", "d/a.jpg", "d/b.png", "d/A.tif", "d/a_png.bmp"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let names = output_names(&paths);
        assert_eq!(names, vec!["a_png", "a_jpg", "b", "A_tif", "a_png_2"]);
        let lower: BTreeSet<String> = names.iter().map(|n| n.to_lowercase()).collect();
        assert_eq!(lower.len(), paths.len());
    }

    #[test]
    fn a_list_names_the_line_of_a_missing_file_or_a_volume() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("scans.txt");
        std::fs::write(dir.path().join("ct.nii"), [0u8; 10]).unwrap();
        std::fs::write(&list, "# scans\n\nct.nii\n").unwrap();
        let error = image_jobs(&list, &PromptSource::One("a lesion".into()))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 3") && error.contains("a volume"),
            "{error}"
        );
        std::fs::write(&list, "missing.png\n").unwrap();
        let error = image_jobs(&list, &PromptSource::One("a lesion".into()))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 1") && error.contains("no such file"),
            "{error}"
        );
    }
}
