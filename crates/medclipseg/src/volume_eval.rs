//! `medclipseg eval --volumes DIR --labels DIR --prompt TEXT`: a shell over
//! [`medclipseg_pipeline::VolumeEvaluator`] (the model loaded once, every volume predicted and
//! scored in memory). It adds `provenance.json` (and the checkpoint's vocabulary) to every
//! `volumes/<name>/` folder, logs each volume, and exits non-zero naming the volumes that had to
//! be skipped.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use medclipseg_pipeline::{
    LoadedModel, Predictor, ScoredVolume, SkippedVolume, Vocabulary, VolumeEvalObserver,
    VolumeEvalPlan, VolumeEvalSummary, VolumeEvaluator, VolumeRecord,
};

use crate::backend::{self, Inner};
use crate::observers::CutPrompts;
use crate::store::{self, Provenance};

/// What `eval --volumes` needs.
#[derive(Debug, Clone)]
pub struct VolumeEvalRequest {
    /// Checkpoint of ours.
    pub checkpoint: PathBuf,
    /// Volumes, labels, prompt, slicing and output folder.
    pub plan: VolumeEvalPlan,
    /// Monte-Carlo samples per slice.
    pub samples: usize,
    /// Noise seed.
    pub seed: u64,
    /// `--device`.
    pub device: String,
}

/// Runs `eval --volumes`; fails after scoring the others when a volume had to be skipped.
pub fn run(request: &VolumeEvalRequest) -> Result<VolumeEvalSummary> {
    // A bad folder is reported before the model is read.
    medclipseg_pipeline::volume_eval::list_volumes(&request.plan.volumes)?;
    let device = backend::device(&request.device)?;
    let loaded = LoadedModel::<Inner>::load(&request.checkpoint, &device)?;
    let vocabulary = loaded.vocabulary.clone();
    let predictor = Predictor::new(loaded, &device)?
        .with_samples(request.samples)
        .with_seed(request.seed)
        .with_noise(backend::pipeline_noise_source());
    let prompt = &request.plan.prompt;
    CutPrompts::default().check(
        &predictor,
        prompt,
        &request.plan.volumes.display().to_string(),
    )?;
    let mut observer = VolumeLog {
        request,
        predictor: &predictor,
        vocabulary: vocabulary.as_ref(),
        failed: None,
    };
    let report = VolumeEvaluator::new(&predictor).evaluate(&request.plan, &mut observer)?;
    if let Some(error) = observer.failed {
        return Err(error);
    }
    if !report.skipped.is_empty() {
        bail!(
            "{} of {} volumes could not be scored: {}",
            report.skipped.len(),
            report.inputs,
            report.summary.skipped.join("; ")
        );
    }
    Ok(report.summary)
}

/// Logs every volume and writes what the command adds to each volume folder.
struct VolumeLog<'a> {
    request: &'a VolumeEvalRequest,
    predictor: &'a Predictor<Inner>,
    vocabulary: Option<&'a Vocabulary>,
    /// The first provenance file that could not be written.
    failed: Option<anyhow::Error>,
}

impl VolumeLog<'_> {
    /// `provenance.json` (and the vocabulary) of one volume folder, as `predict` writes them.
    fn write_provenance(&self, folder: &Path, record: &VolumeRecord) -> Result<()> {
        if let Some(vocabulary) = self.vocabulary {
            store::write_atomic(
                &folder.join(&vocabulary.file_name),
                vocabulary.text.as_bytes(),
            )?;
        }
        let mut provenance = Provenance::new().with_checkpoint(&self.request.checkpoint)?;
        provenance.seed = Some(self.request.seed);
        provenance.samples = Some(self.request.samples);
        provenance.prompt = Some(record.prompt.clone());
        provenance.model_config = Some(serde_json::to_value(self.predictor.config())?);
        provenance.config = Some(serde_json::json!({ "intensity": [{
            "output": record.mask,
            "intensity": record.intensity,
            "source": record.intensity_source,
        }]}));
        provenance
            .write(folder)
            .with_context(|| format!("{}: provenance", folder.display()))
    }
}

impl VolumeEvalObserver for VolumeLog<'_> {
    fn volume_written(&mut self, folder: &Path, record: &VolumeRecord) {
        if record.monochrome1_inverted {
            tracing::info!("MONOCHROME1 (high values dark): inverted before the model");
        }
        if let Some(uneven) = &record.uneven_spacing {
            tracing::warn!("{}: {uneven}", record.input);
        }
        tracing::info!(
            "{} slices along axis {} -> {}",
            record.slices,
            record.axis,
            record.mask
        );
        if let Err(e) = self.write_provenance(folder, record) {
            self.failed.get_or_insert(e);
        }
    }

    fn volume_scored(&mut self, volume: &ScoredVolume) {
        if let Some((p, g)) = volume.score.spacing_mismatch {
            tracing::warn!(
                "voxel sizes differ ({p:?} in {}, {g:?} in {}); using the ground truth's",
                volume.mask.display(),
                volume.label.display()
            );
        }
        let report = &volume.score.report;
        tracing::info!(
            "{}: DSC {:.4} NSD {:.4} HD95 {:.2}",
            volume.name,
            report.dsc,
            report.first_nsd(),
            report.hd95
        );
    }

    fn volume_skipped(&mut self, skipped: &SkippedVolume) {
        tracing::error!("{}: {}", skipped.input.display(), skipped.reason);
    }
}
