//! `medclipseg predict`: masks, overlays and uncertainty maps for unlabelled images, at their
//! original size, through [`medclipseg_pipeline::Predictor`].
//!
//! A folder of real files: an image that cannot be read or predicted is reported and skipped
//! (the run ends with an error that counts and names them), each image's outputs are written
//! as soon as it is done, `--continue` skips images whose outputs exist, and two inputs never
//! write the same output file (`a.png` and `a.jpg` become `a_png` and `a_jpg`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use med_datasets::imaging::{Image8, read_bgr};
use medclipseg_pipeline::{LoadedModel, Prediction, Predictor};
use seg_metrics::BinaryMask;
use serde::{Deserialize, Serialize};

use crate::backend::{self, Device, Inner};
use crate::observers::CutPrompts;
use crate::store::{self, Provenance};

/// What to predict.
#[derive(Debug, Clone)]
pub struct PredictRequest {
    /// Our checkpoint.
    pub checkpoint: PathBuf,
    /// An image, a folder of images, or a list file of images (`.txt`, `.lst`: one path a line,
    /// relative to the list).
    pub input: PathBuf,
    /// One prompt for all images.
    pub prompt: Option<String>,
    /// Or a CSV `Image,Description`.
    pub prompts_csv: Option<PathBuf>,
    /// Output folder.
    pub out: PathBuf,
    /// Monte-Carlo samples.
    pub samples: usize,
    /// Noise seed.
    pub seed: u64,
    /// `--device`.
    pub device: String,
    /// `--continue`: skip inputs whose outputs already exist.
    pub resume: bool,
    /// No progress bar.
    pub quiet: bool,
    /// `--window` for DICOM inputs (else a file's own window, else percentiles).
    pub window: Option<med_volumes::IntensityMap>,
    /// `--shard K/N`: this process takes the images of shard K of N.
    pub shard: Option<Shard>,
}

/// Part `index` (from 1) of `count`: a folder's (or list's) images split by a hash of their
/// output name,
/// so every process agrees without talking, and an image keeps its shard when the folder grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This part, 1..=count.
    pub index: u32,
    /// Number of parts.
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = anyhow::Error;

    /// `K/N` with 1 <= K <= N.
    fn from_str(s: &str) -> Result<Self> {
        let parsed = s
            .split_once('/')
            .and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if index >= 1 && index <= count => Ok(Shard { index, count }),
            _ => bail!("--shard {s:?}: expected K/N with 1 <= K <= N (e.g. 2/8)"),
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
    fn file_name(&self, stem: &str) -> String {
        format!("{stem}.shard-{}-of-{}.json", self.index, self.count)
    }
}

/// One line of `predictions.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PredictionRecord {
    image: String,
    prompt: String,
    mask: String,
    overlay: String,
    uncertainty: String,
    raw: String,
    foreground_fraction: f64,
    mean_uncertainty: f64,
    /// The uncertain band's mask (with a calibration file that has a band level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    band: Option<String>,
    /// How a DICOM image's values became 8-bit (none for image files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    intensity: Option<String>,
}

/// One image to predict.
struct Job {
    path: PathBuf,
    /// Its prompt, or why it has none.
    prompt: Result<String, String>,
    /// Output file stem, unique among the jobs.
    name: String,
}

/// The files written for one image.
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

/// `predictions.json` is rewritten after this many new images (and at the end), so a long run
/// that stops keeps its records without rewriting a large file after every image.
const RECORD_FLUSH_EVERY: usize = 32;

/// Loads the checkpoint as a [`Predictor`] with the request's sampling settings; the stored
/// vocabulary is written into the output folder so the outputs carry it.
pub fn load_predictor(request: &PredictRequest, device: &Device) -> Result<Predictor<Inner>> {
    if request.samples == 0 {
        bail!("Monte-Carlo samples must be at least 1");
    }
    let loaded = LoadedModel::<Inner>::load(&request.checkpoint, device)?;
    std::fs::create_dir_all(&request.out)
        .with_context(|| format!("{}: cannot create", request.out.display()))?;
    if let Some(vocab) = &loaded.vocabulary {
        store::write_atomic(&request.out.join(&vocab.file_name), vocab.text.as_bytes())?;
    }
    Ok(Predictor::new(loaded, device)?
        .with_samples(request.samples)
        .with_seed(request.seed)
        .with_noise(crate::backend::pipeline_noise_source()))
}

/// Runs `predict` on an image or a folder of images.
/// With a calibration file, masks are thresholded at its value (`p ≥ threshold` instead of
/// `p > 0.5`) and the provenance records what the threshold promises.
pub fn run_with_calibration(request: &PredictRequest, calibration: Option<&Path>) -> Result<()> {
    let device = backend::device(&request.device)?;
    // Bad input is reported before the (possibly large) model is read.
    let mut jobs: Vec<(usize, Job)> = jobs(request)?.into_iter().enumerate().collect();
    if jobs.is_empty() {
        bail!("{}: no images found", request.input.display());
    }
    let calibration = calibration
        .map(|path| {
            medclipseg_pipeline::calibrator::read_calibration_for(path, &request.checkpoint)
        })
        .transpose()?;
    let thresholds = calibration.as_ref().map(|c| CalibratedThresholds {
        mask: c.threshold,
        band: c.band_range(),
    });
    if let Some(shard) = request.shard {
        // The index stays the one in the whole folder: an image gets the same noise either way.
        jobs.retain(|(_, job)| shard.takes(&job.name));
        tracing::info!(
            "shard {}/{}: {} images",
            shard.index,
            shard.count,
            jobs.len()
        );
    }
    if jobs.is_empty() {
        tracing::info!("nothing in this shard");
        return Ok(());
    }
    let predictor = load_predictor(request, &device)?;
    let json_name = |stem: &str| {
        request
            .shard
            .map_or(format!("{stem}.json"), |shard| shard.file_name(stem))
    };
    let records_path = request.out.join(json_name("predictions"));
    let previous = if request.resume {
        previous_records(&records_path)
    } else {
        BTreeMap::new()
    };
    let progress = crate::observers::progress_bar(jobs.len() as u64, request.quiet);
    progress.set_message("predict");
    let (mut records, mut failures, mut skipped, mut unsaved) = (Vec::new(), Vec::new(), 0, 0);
    let mut cut_prompts = CutPrompts::default();
    for (index, job) in &jobs {
        if let Ok(prompt) = &job.prompt {
            let what = job.path.display().to_string();
            progress.suspend(|| cut_prompts.check(&predictor, prompt, &what))?;
        }
        let with_band = thresholds.is_some_and(|t| t.band.is_some());
        let outputs = OutputPaths::new(&request.out, &job.name, with_band);
        let key = job.path.display().to_string();
        match previous.get(&key) {
            Some(record) if outputs.all_exist() => {
                records.push(record.clone());
                skipped += 1;
            }
            _ => match predict_one(
                &predictor,
                job,
                *index as u64,
                &outputs,
                request.window,
                thresholds,
            ) {
                Ok(record) => {
                    records.push(record);
                    unsaved += 1;
                }
                Err(error) => {
                    progress
                        .suspend(|| tracing::warn!("skipped {}: {error:#}", job.path.display()));
                    failures.push(job.path.display().to_string());
                }
            },
        }
        if unsaved >= RECORD_FLUSH_EVERY {
            store::write_json(&records_path, &records)?;
            unsaved = 0;
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    store::write_json(&records_path, &records)?;
    let mut provenance = Provenance::new().with_checkpoint(&request.checkpoint)?;
    provenance.seed = Some(request.seed);
    provenance.samples = Some(request.samples);
    provenance.prompt = request.prompt.clone();
    provenance.model_config = Some(serde_json::to_value(predictor.config())?);
    provenance.calibration = calibration.map(|c| calibration_note(&c));
    store::write_json(&request.out.join(json_name("provenance")), &provenance)?;
    let done_before = if skipped > 0 {
        format!(" ({skipped} done before, skipped)")
    } else {
        String::new()
    };
    tracing::info!(
        "{} images -> {}{done_before}",
        records.len(),
        request.out.display()
    );
    if !failures.is_empty() {
        bail!(
            "{} of {} images failed (reported above; the others were written): {}",
            failures.len(),
            jobs.len(),
            failures.join(", ")
        );
    }
    Ok(())
}

/// The thresholds a calibration file sets: the mask's, and the uncertain band's `[low, high)`.
#[derive(Debug, Clone, Copy)]
struct CalibratedThresholds {
    mask: f32,
    band: Option<(f32, f32)>,
}

/// What the provenance says about a calibrated threshold (the library's note, plus where the
/// band masks are).
fn calibration_note(file: &seg_metrics::conformal::CalibrationFile) -> serde_json::Value {
    let mut note = medclipseg_pipeline::calibrator::calibration_note(file);
    if let Some(band) = note.get_mut("band").and_then(|b| b.as_object_mut()) {
        band.insert(
            "masks".into(),
            "band/<name>.png: pixels with low <= probability < high".into(),
        );
    }
    note
}

/// Records of an earlier run, by image path; none when the file is missing or unreadable.
fn previous_records(path: &Path) -> BTreeMap<String, PredictionRecord> {
    let records: Vec<PredictionRecord> = std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    records.into_iter().map(|r| (r.image.clone(), r)).collect()
}

/// Reads, predicts and writes one image.
fn predict_one(
    predictor: &Predictor<Inner>,
    job: &Job,
    key: u64,
    outputs: &OutputPaths,
    window: Option<med_volumes::IntensityMap>,
    thresholds: Option<CalibratedThresholds>,
) -> Result<PredictionRecord> {
    let prompt = job.prompt.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
    // A DICOM file (found by content, whatever its name) is read as the PNG of it would be.
    let (image, intensity) = if med_volumes::is_dicom_file(&job.path) {
        let dicom = medclipseg_pipeline::dicom_image(&job.path, window)?;
        if dicom.monochrome1_inverted {
            tracing::info!("MONOCHROME1 (high values dark): inverted before the model");
        }
        (dicom.image, Some(dicom.note))
    } else {
        (read_bgr(&job.path)?, None)
    };
    let mut prediction = predictor.predict_image_keyed(&image, prompt, key)?;
    if let Some(thresholds) = thresholds {
        prediction.apply_threshold(thresholds.mask)?;
    }
    write_outputs(outputs, &image, &prediction)?;
    if let (Some(path), Some((low, high))) = (&outputs.band, thresholds.and_then(|t| t.band)) {
        medclipseg_pipeline::predictor::write_mask_png(path, &prediction.band_mask(low, high)?)?;
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

/// `(image, prompt)` jobs from the input and the prompt options, with unique output names.
fn jobs(request: &PredictRequest) -> Result<Vec<Job>> {
    let images: Vec<PathBuf> = if request.input.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&request.input)
            .with_context(|| format!("{}: cannot list", request.input.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && med_datasets::imaging::has_image_extension(p))
            .collect();
        files.sort();
        files
    } else if is_list_file(&request.input) {
        read_list_file(&request.input)?
    } else if request.input.is_file() {
        vec![request.input.clone()]
    } else {
        bail!("{}: no such file or folder", request.input.display());
    };
    let prompts: Vec<Result<String, String>> = match (&request.prompt, &request.prompts_csv) {
        (Some(p), _) => images
            .iter()
            .map(|image| {
                medclipseg_pipeline::check_prompt(p)
                    .map(|()| p.clone())
                    .map_err(|e| format!("{}: --prompt: {e}", image.display()))
            })
            .collect(),
        (None, Some(csv)) => {
            let table = med_datasets::ImagePrompts::read_csv(csv)?;
            images
                .iter()
                .map(|i| {
                    let name = i.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                    let prompt = table.prompt(name).map_err(|e| e.to_string())?;
                    medclipseg_pipeline::check_prompt(prompt)
                        .map(|()| prompt.to_string())
                        .map_err(|e| {
                            let line = table.line(name).unwrap_or_default();
                            format!("{} line {line} (image {name}): {e}", csv.display())
                        })
                })
                .collect()
        }
        (None, None) => bail!("give a prompt: --prompt TEXT or --prompts CSV"),
    };
    let names = output_names(&images);
    Ok(images
        .into_iter()
        .zip(prompts)
        .zip(names)
        .map(|((path, prompt), name)| Job { path, prompt, name })
        .collect())
}

/// A list of inputs: a `.txt` or `.lst` file that is not DICOM by its content.
fn is_list_file(path: &Path) -> bool {
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
    let text = std::fs::read_to_string(list)
        .with_context(|| format!("{}: cannot read the list", list.display()))?;
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
            bail!("{}: no such file", at());
        }
        if med_volumes::is_3d_volume_input(&path, &med_datasets::imaging::IMAGE_EXTENSIONS) {
            bail!(
                "{}: a volume; a list holds 2-D images (predict a volume on its own)",
                at()
            );
        }
        images.push(path);
    }
    if images.is_empty() {
        bail!("{}: the list names no file", list.display());
    }
    Ok(images)
}

/// Output stems, unique even on a case-insensitive file system: the file stem, or the whole
/// file name (`a_png`, `a_jpg`) when stems collide, then a counter if names still collide.
fn output_names(paths: &[PathBuf]) -> Vec<String> {
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
    let mut sd = torch_checkpoint::StateDict::new(&outputs.raw);
    for (key, values) in [
        ("mean_prob", &prediction.probability),
        ("predictive_entropy", &prediction.entropy),
        ("expected_entropy", &prediction.aleatoric),
        ("mutual_information", &prediction.epistemic),
    ] {
        sd.insert(
            key,
            torch_checkpoint::RawTensor::from_f32(vec![h, w], values)?,
        );
    }
    store::save_safetensors(&outputs.raw, &sd)?;
    Ok(())
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
}
