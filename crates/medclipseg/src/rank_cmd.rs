//! `medclipseg rank`: an uncertainty-ranked annotation queue of unlabelled images and volumes
//! (NIfTI, DICOM files and series folders), through [`medclipseg_pipeline::rank`]: `queue.csv`
//! (most informative first) and `queue.html`. Inputs that cannot be read are skipped, listed in
//! rank.json and on the page, and make the command exit non-zero after the others are ranked.

use std::path::PathBuf;

use anyhow::{Result, bail};
use medclipseg_pipeline::rank::{self, RankEvent, RankOptions, RankSummary};
use medclipseg_pipeline::{LoadedModel, Predictor, with_causes};
use seg_metrics::ranking::RankBy;

use crate::backend::{self, Inner};

/// What to rank.
#[derive(Debug, Clone)]
pub struct RankRequest {
    /// Our checkpoint.
    pub checkpoint: PathBuf,
    /// Folder of unlabelled images, volumes and DICOM series folders.
    pub input: PathBuf,
    /// One prompt for every image.
    pub prompt: Option<String>,
    /// Or a CSV `Image,Description`.
    pub prompts_csv: Option<PathBuf>,
    /// Score.
    pub by: RankBy,
    /// Output folder.
    pub out: PathBuf,
    /// At most this many new images in this run.
    pub budget: Option<usize>,
    /// Keep the queue of an earlier run.
    pub resume: bool,
    /// Images on the HTML page.
    pub top: usize,
    /// Monte-Carlo samples.
    pub samples: usize,
    /// Noise seed.
    pub seed: u64,
    /// `--device`.
    pub device: String,
    /// No progress bar.
    pub quiet: bool,
}

/// Scores the folder and writes the queue.
pub fn run(request: &RankRequest) -> Result<RankSummary> {
    if !request.input.is_dir() {
        bail!(
            "{}: not a folder of images or volumes",
            request.input.display()
        );
    }
    let inputs = match (&request.prompt, &request.prompts_csv) {
        (Some(prompt), _) => rank::inputs_with_prompt(&request.input, prompt)?,
        (None, Some(csv)) => rank::inputs_with_prompt_csv(&request.input, csv)?,
        (None, None) => bail!("give a prompt: --prompt TEXT or --prompts CSV"),
    };
    if inputs.is_empty() {
        bail!("{}: no images or volumes found", request.input.display());
    }
    let device = backend::device(&request.device)?;
    let loaded = LoadedModel::<Inner>::load(&request.checkpoint, &device)?;
    let predictor = Predictor::new(loaded, &device)?
        .with_samples(request.samples)
        .with_seed(request.seed)
        .with_noise(backend::pipeline_noise_source());
    let options = RankOptions {
        by: request.by,
        out: request.out.clone(),
        budget: request.budget,
        resume: request.resume,
        top: request.top,
        axis: 2,
    };
    let progress = crate::observers::progress_bar(inputs.len() as u64, request.quiet);
    progress.set_message("rank");
    let summary = rank::rank(&predictor, &inputs, &options, &mut |event| {
        if let RankEvent::Failed(path, error) = event {
            progress
                .suspend(|| tracing::warn!("skipped {}: {}", path.display(), with_causes(error)));
        }
        progress.inc(1);
    })?;
    progress.finish_and_clear();
    tracing::info!(
        "{} inputs ranked by {} ({} new, {} left by the budget) -> {}",
        summary.queue.len(),
        request.by,
        summary.scored,
        summary.remaining,
        summary.csv.display()
    );
    if !summary.failed.is_empty() {
        let names: Vec<String> = summary
            .failed
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        bail!(
            "{} inputs failed (reported above and in rank.json; the others are in the queue): {}",
            names.len(),
            names.join(", ")
        );
    }
    Ok(summary)
}
