//! `medclipseg predict`: masks, overlays and uncertainty maps for unlabelled images, at their
//! original size, through [`medclipseg_pipeline::image_folder::FolderRun`] (volumes:
//! `volume_predict`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use medclipseg_pipeline::image_folder::{
    CalibratedThresholds, FolderObserver, FolderRun, ImageJob, PromptSource, Shard, image_jobs,
    json_file_name,
};
use medclipseg_pipeline::prompts::PromptLength;
use medclipseg_pipeline::{LoadedModel, PipelineError, Predictor};

use crate::backend::{self, Device, Inner};
use crate::store::{self, Provenance};

/// Where the provenance says the uncertain band's masks are.
const BAND_MASKS: &str = "band/<name>.png: pixels with low <= probability < high";

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

/// Runs `predict` on an image, a folder of images or a list file.
/// With a calibration file, masks are thresholded at its value (`p ≥ threshold` instead of
/// `p > 0.5`) and the provenance records what the threshold promises.
pub fn run_with_calibration(request: &PredictRequest, calibration: Option<&Path>) -> Result<()> {
    let device = backend::device(&request.device)?;
    // Bad input is reported before the (possibly large) model is read.
    let prompts = match (&request.prompt, &request.prompts_csv) {
        (Some(prompt), _) => PromptSource::One(prompt.clone()),
        (None, Some(csv)) => PromptSource::Csv(csv.clone()),
        (None, None) => bail!("give a prompt: --prompt TEXT or --prompts CSV"),
    };
    let mut jobs = image_jobs(&request.input, &prompts)?;
    let calibration = calibration
        .map(|path| {
            medclipseg_pipeline::calibrator::read_calibration_for(path, &request.checkpoint)
        })
        .transpose()?;
    if let Some(shard) = request.shard {
        // Each job keeps its index in the whole folder: an image gets the same noise either way.
        jobs.retain(|job| shard.takes(&job.name));
        tracing::info!(
            "shard {}/{}: {} images",
            shard.index,
            shard.count,
            jobs.len()
        );
        if jobs.is_empty() {
            tracing::info!("nothing in this shard");
            return Ok(());
        }
    }
    let predictor = load_predictor(request, &device)?;
    let run = FolderRun::new(&predictor, &request.out)
        .with_resume(request.resume)
        .with_window(request.window)
        .with_shard(request.shard)
        .with_thresholds(calibration.as_ref().map(CalibratedThresholds::of));
    let mut progress = FolderProgress(crate::observers::progress_bar(
        jobs.len() as u64,
        request.quiet,
    ));
    progress.0.set_message("predict");
    let outcome = run.run(&jobs, &mut progress)?;
    progress.0.finish_and_clear();

    let mut provenance = Provenance::new().with_checkpoint(&request.checkpoint)?;
    provenance.seed = Some(request.seed);
    provenance.samples = Some(request.samples);
    provenance.prompt = request.prompt.clone();
    provenance.model_config = Some(serde_json::to_value(predictor.config())?);
    provenance.calibration = calibration
        .map(|c| medclipseg_pipeline::calibrator::calibration_note_with_band_masks(&c, BAND_MASKS));
    let provenance_path = request
        .out
        .join(json_file_name(request.shard, "provenance"));
    store::write_json(&provenance_path, &provenance)?;
    let done_before = match outcome.skipped {
        0 => String::new(),
        n => format!(" ({n} done before, skipped)"),
    };
    tracing::info!(
        "{} images -> {}{done_before}",
        outcome.records.len(),
        request.out.display()
    );
    if !outcome.failed.is_empty() {
        let failed: Vec<String> = outcome
            .failed
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        bail!(
            "{} of {} images failed (reported above; the others were written): {}",
            failed.len(),
            jobs.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// The progress bar and the log lines of a folder run.
struct FolderProgress(ProgressBar);

impl FolderObserver for FolderProgress {
    fn prompt_cut(&mut self, job: &ImageJob, length: PromptLength) {
        self.0.suspend(|| {
            tracing::warn!(
                "{}: the prompt has {} tokens, more than the text tower's context: only the \
                 first {} were kept",
                job.path.display(),
                length.tokens,
                length.kept
            )
        });
    }

    fn image_failed(&mut self, job: &ImageJob, error: &PipelineError) {
        let error = medclipseg_pipeline::with_causes(error);
        self.0
            .suspend(|| tracing::warn!("skipped {}: {error}", job.path.display()));
    }

    fn monochrome1_inverted(&mut self, _job: &ImageJob) {
        self.0.suspend(|| {
            tracing::info!("MONOCHROME1 (high values dark): inverted before the model")
        });
    }

    fn image_finished(&mut self) {
        self.0.inc(1);
    }
}
