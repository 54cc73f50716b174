//! Volumes scored in 3-D: every volume of a folder (NIfTI files or DICOM series folders) is
//! segmented slice by slice as `predict` does ([`Predictor::predict_volume_input`]) and scored in
//! memory against the label volume of the same name, in the label volume's header spacing (the
//! DeepMind surface protocol: DSC, NSD at each tolerance, HD95, ASSD).
//!
//! The model is loaded once by the caller (the [`Predictor`]); [`VolumeEvaluator::evaluate`]
//! writes under the plan's `out`: `volumes/<name>/` (mask and entropy NIfTI, `volume.json`, as
//! `predict` writes them), `volumes.csv` (one row a volume) and `volumes_summary.json` (the
//! means). A volume without a label volume, or one that fails, is skipped and named in the
//! report; the others are scored.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use med_volumes::{InputOptions, IntensityMap, is_nifti_path};
use seg_metrics::{MetricsRequest, Protocol};
use serde::Serialize;

use crate::error::{PipelineError, Result, with_causes};
use crate::predictor::Predictor;
use crate::predictor::write_atomic;
use crate::run_files::write_json;
use crate::train_observer::Silent;
use crate::volume::{VolumeScore, score_volume_mask};
use crate::volume_input::{
    VolumeFiles, VolumeRecord, open_volume_inputs, volume_name, write_volume_maps,
};

/// What to evaluate and where the results go.
#[derive(Debug, Clone)]
pub struct VolumeEvalPlan {
    /// Folder of volumes (`.nii`, `.nii.gz`, DICOM series folders).
    pub volumes: PathBuf,
    /// Folder of label volumes named like the volumes (`<name>.nii.gz` or `<name>.nii`).
    pub labels: PathBuf,
    /// The prompt of every volume.
    pub prompt: String,
    /// Label to score in the label volumes (`None`: any non-zero voxel).
    pub label: Option<i64>,
    /// Axis to slice along (0, 1 or 2).
    pub axis: usize,
    /// Intensity mapping to 8 bits; `None`: a DICOM's own window, else percentiles.
    pub window: Option<IntensityMap>,
    /// NSD tolerances in the header's units (mm for most volumes); at least one.
    pub tolerances: Vec<f64>,
    /// Output folder.
    pub out: PathBuf,
}

/// One row of `volumes.csv`: the scores of one volume.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VolumeRow {
    /// The volume's name ([`volume_name`]).
    #[serde(rename = "Name")]
    pub name: String,
    /// Dice similarity.
    #[serde(rename = "DSC")]
    pub dsc: f64,
    /// NSD at the first tolerance.
    #[serde(rename = "NSD")]
    pub nsd: f64,
    /// 95th percentile Hausdorff distance (header units).
    #[serde(rename = "HD95")]
    pub hd95: f64,
    /// Average symmetric surface distance (header units).
    #[serde(rename = "ASSD")]
    pub assd: f64,
}

/// `volumes_summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeEvalSummary {
    /// Volumes scored.
    pub volumes: usize,
    /// Mean DSC over the scored volumes.
    pub dsc: f64,
    /// Mean NSD at the first tolerance.
    pub nsd: f64,
    /// The tolerance of `nsd`.
    pub nsd_tolerance: f64,
    /// Mean HD95 (header units); volumes with an empty mask on one side give infinity.
    pub hd95: f64,
    /// Mean ASSD (header units).
    pub assd: f64,
    /// Volumes skipped, each as `<input>: <reason>`.
    pub skipped: Vec<String>,
}

/// A volume that could not be scored.
#[derive(Debug, Clone)]
pub struct SkippedVolume {
    /// The volume file or folder.
    pub input: PathBuf,
    /// Why, with every cause.
    pub reason: String,
}

/// What [`VolumeEvaluator::evaluate`] found.
#[derive(Debug, Clone)]
pub struct VolumeEvalReport {
    /// Volumes found in the folder.
    pub inputs: usize,
    /// One row per scored volume, in name order.
    pub rows: Vec<VolumeRow>,
    /// The volumes skipped.
    pub skipped: Vec<SkippedVolume>,
    /// The means, as written to `volumes_summary.json`.
    pub summary: VolumeEvalSummary,
}

/// A volume predicted and scored.
#[derive(Debug, Clone)]
pub struct ScoredVolume<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its label volume.
    pub label: &'a Path,
    /// Its mask file.
    pub mask: &'a Path,
    /// The scores.
    pub score: &'a VolumeScore,
}

/// What a volume evaluation reports while it runs; every method has an empty default.
pub trait VolumeEvalObserver {
    /// A volume's maps and `volume.json` were written into `folder`.
    fn volume_written(&mut self, _folder: &Path, _record: &VolumeRecord) {}
    /// A volume was scored.
    fn volume_scored(&mut self, _volume: &ScoredVolume) {}
    /// A volume was skipped.
    fn volume_skipped(&mut self, _skipped: &SkippedVolume) {}
}

impl VolumeEvalObserver for Silent {}

/// Evaluates folders of volumes with one loaded model.
pub struct VolumeEvaluator<'a, B: Backend> {
    predictor: &'a Predictor<B>,
}

impl<'a, B: Backend> VolumeEvaluator<'a, B> {
    /// An evaluator predicting with `predictor` (its samples, seed and noise).
    pub fn new(predictor: &'a Predictor<B>) -> Self {
        Self { predictor }
    }

    /// Predicts and scores every volume of `plan.volumes`, writes the outputs and returns the
    /// rows and the summary. Fails only when the folder cannot be read, holds no volume, or an
    /// output of the whole run cannot be written; a volume that fails is skipped.
    pub fn evaluate(
        &self,
        plan: &VolumeEvalPlan,
        observer: &mut dyn VolumeEvalObserver,
    ) -> Result<VolumeEvalReport> {
        let Some(&first_tolerance) = plan.tolerances.first() else {
            return Err(PipelineError::BadInput(
                "volume evaluation needs at least one NSD tolerance".into(),
            ));
        };
        let inputs = list_volumes(&plan.volumes)?;
        let metrics = MetricsRequest {
            protocol: Protocol::DeepMind,
            tolerances: plan.tolerances.clone(),
            ..MetricsRequest::default()
        };
        let mut rows = Vec::new();
        let mut skipped = Vec::new();
        for input in &inputs {
            let name = volume_name(input);
            match self.score_volume(plan, input, &name, &metrics, observer) {
                Ok(row) => rows.push(row),
                Err(e) => {
                    let volume = SkippedVolume {
                        input: input.clone(),
                        reason: with_causes(&e),
                    };
                    observer.volume_skipped(&volume);
                    skipped.push(volume);
                }
            }
        }
        let reasons = skipped
            .iter()
            .map(|s| format!("{}: {}", s.input.display(), s.reason))
            .collect();
        let summary = summarise(&rows, first_tolerance, reasons);
        write_csv(&plan.out.join("volumes.csv"), &rows)?;
        write_json(&plan.out.join("volumes_summary.json"), &summary)?;
        Ok(VolumeEvalReport {
            inputs: inputs.len(),
            rows,
            skipped,
            summary,
        })
    }

    /// Predicts one volume into `out/volumes/<name>/` and scores its mask in memory.
    fn score_volume(
        &self,
        plan: &VolumeEvalPlan,
        input: &Path,
        name: &str,
        metrics: &MetricsRequest,
        observer: &mut dyn VolumeEvalObserver,
    ) -> Result<VolumeRow> {
        let label = label_for(&plan.labels, name)?;
        let volumes = open_volume_inputs(input, &InputOptions::default())?;
        let [volume] = volumes.as_slice() else {
            return Err(PipelineError::BadInput(format!(
                "{}: {} volumes in one input (a 4-D NIfTI): give one 3-D volume",
                input.display(),
                volumes.len()
            )));
        };
        volume.check(plan.axis, plan.window)?;
        let predicted =
            self.predictor
                .predict_volume_input(volume, &plan.prompt, plan.axis, plan.window)?;
        let folder = plan.out.join("volumes").join(name);
        std::fs::create_dir_all(&folder).map_err(|source| PipelineError::Write {
            path: folder.clone(),
            source,
        })?;
        let (mask, entropy) = (
            folder.join(format!("{name}.nii.gz")),
            folder.join(format!("{name}_entropy.nii.gz")),
        );
        let files = VolumeFiles {
            mask: &mask,
            entropy: &entropy,
        };
        write_volume_maps(&predicted.prediction, &files)?;
        let record = VolumeRecord::new(volume, &plan.prompt, &predicted, &files);
        write_json(&folder.join("volume.json"), &record)?;
        observer.volume_written(&folder, &record);
        let score = score_volume_mask(
            &predicted.prediction.mask,
            input,
            &label,
            plan.label,
            metrics,
        )?;
        observer.volume_scored(&ScoredVolume {
            name,
            label: &label,
            mask: &mask,
            score: &score,
        });
        Ok(VolumeRow {
            name: name.to_string(),
            dsc: score.report.dsc,
            nsd: score.report.first_nsd(),
            hd95: score.report.hd95,
            assd: score.report.assd,
        })
    }
}

/// The volumes of `dir`, sorted by name: NIfTI files and folders (DICOM series).
pub fn list_volumes(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| PipelineError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut inputs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_nifti_path(p) || p.is_dir() || med_volumes::is_volume_input(p))
        .collect();
    inputs.sort();
    if inputs.is_empty() {
        return Err(PipelineError::BadInput(format!(
            "{}: no volumes (.nii, .nii.gz or DICOM series folders)",
            dir.display()
        )));
    }
    Ok(inputs)
}

/// The label volume of `name` under `labels`: `<name>.nii.gz`, else `<name>.nii`.
pub fn label_for(labels: &Path, name: &str) -> Result<PathBuf> {
    [format!("{name}.nii.gz"), format!("{name}.nii")]
        .into_iter()
        .map(|file| labels.join(file))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            PipelineError::BadInput(format!(
                "no label volume {name}.nii.gz or {name}.nii in {}",
                labels.display()
            ))
        })
}

/// The means of `rows` (NaN when none was scored).
fn summarise(rows: &[VolumeRow], tolerance: f64, skipped: Vec<String>) -> VolumeEvalSummary {
    let mean = |f: fn(&VolumeRow) -> f64| {
        if rows.is_empty() {
            f64::NAN
        } else {
            rows.iter().map(f).sum::<f64>() / rows.len() as f64
        }
    };
    VolumeEvalSummary {
        volumes: rows.len(),
        dsc: mean(|r| r.dsc),
        nsd: mean(|r| r.nsd),
        nsd_tolerance: tolerance,
        hd95: mean(|r| r.hd95),
        assd: mean(|r| r.assd),
        skipped,
    }
}

fn write_csv(path: &Path, rows: &[VolumeRow]) -> Result<()> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for r in rows {
        writer.serialize(r)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| PipelineError::Csv(e.into_error().into()))?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_found_by_name_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.nii.gz"), b"").unwrap();
        std::fs::write(dir.path().join("b.nii"), b"").unwrap();
        assert_eq!(
            label_for(dir.path(), "a").unwrap(),
            dir.path().join("a.nii.gz")
        );
        assert_eq!(
            label_for(dir.path(), "b").unwrap(),
            dir.path().join("b.nii")
        );
        let err = label_for(dir.path(), "c").unwrap_err().to_string();
        assert!(err.contains("c.nii.gz"), "{err}");
    }

    #[test]
    fn the_summary_averages_the_scored_volumes() {
        let row = |name: &str, dsc, nsd, hd95, assd| VolumeRow {
            name: name.into(),
            dsc,
            nsd,
            hd95,
            assd,
        };
        let rows = [row("a", 0.5, 0.25, 2.0, 1.0), row("b", 1.0, 0.75, 4.0, 3.0)];
        let s = summarise(&rows, 2.0, vec![]);
        assert_eq!(
            (s.volumes, s.dsc, s.nsd, s.hd95, s.assd),
            (2, 0.75, 0.5, 3.0, 2.0)
        );
        assert!(summarise(&[], 2.0, vec!["x".into()]).dsc.is_nan());
    }

    #[test]
    fn an_empty_folder_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = list_volumes(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no volumes"), "{err}");
    }
}
