//! `medclipseg eval --volumes DIR --labels DIR --prompt TEXT`: every volume of a folder (NIfTI
//! files or DICOM series folders) is segmented slice by slice exactly as `predict` does
//! ([`crate::volume_predict`]: mask and entropy volumes on the input's grid) and scored in 3-D
//! against the label volume of the same name, with the label volume's header spacing (the
//! DeepMind surface protocol: DSC, NSD at each tolerance, HD95, ASSD).
//!
//! Outputs under `--out`: `volumes/<name>/` (what `predict` writes), `volumes.csv` (one row a
//! volume) and `volumes_summary.json` (the means). A volume without a label volume, or one that
//! fails, is reported and skipped; the command then exits non-zero naming them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use med_volumes::is_nifti_path;
use seg_metrics::{ImageReport, MetricsRequest};
use serde::Serialize;

use crate::predict_cmd::PredictRequest;
use crate::store;
use crate::volume_predict::{self, VolumeOptions};

/// What `eval --volumes` needs.
#[derive(Debug, Clone)]
pub struct VolumeEvalRequest {
    /// Checkpoint of ours.
    pub checkpoint: PathBuf,
    /// Folder of volumes (`.nii`, `.nii.gz`, DICOM series folders).
    pub volumes: PathBuf,
    /// Folder of label volumes named like the volumes (`<name>.nii.gz` or `<name>.nii`).
    pub labels: PathBuf,
    /// The prompt of every volume.
    pub prompt: String,
    /// Label to score in the label volumes (`None`: any non-zero voxel).
    pub label: Option<i64>,
    /// Slicing axis and intensity mapping, as in `predict`.
    pub options: VolumeOptions,
    /// NSD tolerances in the header's units (mm for most volumes).
    pub tolerances: Vec<f64>,
    /// Monte-Carlo samples per slice.
    pub samples: usize,
    /// Noise seed.
    pub seed: u64,
    /// `--device`.
    pub device: String,
    /// Output folder.
    pub out: PathBuf,
    /// No progress bar.
    pub quiet: bool,
}

/// One row of `volumes.csv`.
#[derive(Debug, Serialize)]
struct VolumeRow {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "DSC")]
    dsc: f64,
    #[serde(rename = "NSD")]
    nsd: f64,
    #[serde(rename = "HD95")]
    hd95: f64,
    #[serde(rename = "ASSD")]
    assd: f64,
}

/// `volumes_summary.json`.
#[derive(Debug, Serialize)]
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
    /// Volumes skipped, each with the reason.
    pub skipped: Vec<String>,
}

/// Runs `eval --volumes`; fails after scoring the others when a volume had to be skipped.
pub fn run(request: &VolumeEvalRequest) -> Result<VolumeEvalSummary> {
    let inputs = volume_inputs(&request.volumes)?;
    let metrics = MetricsRequest {
        protocol: seg_metrics::Protocol::DeepMind,
        tolerances: request.tolerances.clone(),
        ..MetricsRequest::default()
    };
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for input in &inputs {
        let name = volume_predict::volume_name(input);
        match score_volume(request, input, &name, &metrics) {
            Ok(report) => rows.push(row(name, &report)),
            Err(e) => {
                tracing::error!("{}: {e:#}", input.display());
                skipped.push(format!("{}: {e:#}", input.display()));
            }
        }
    }
    let summary = summarise(&rows, request.tolerances[0], skipped);
    write_csv(&request.out.join("volumes.csv"), &rows)?;
    store::write_json(&request.out.join("volumes_summary.json"), &summary)?;
    if !summary.skipped.is_empty() {
        bail!(
            "{} of {} volumes could not be scored: {}",
            summary.skipped.len(),
            inputs.len(),
            summary.skipped.join("; ")
        );
    }
    Ok(summary)
}

/// The volumes of `dir`, sorted by name: NIfTI files and folders (DICOM series).
fn volume_inputs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot read the volume folder", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_nifti_path(p) || p.is_dir() || med_volumes::is_volume_input(p))
        .collect();
    inputs.sort();
    if inputs.is_empty() {
        bail!(
            "{}: no volumes (.nii, .nii.gz or DICOM series folders)",
            dir.display()
        );
    }
    Ok(inputs)
}

/// The label volume of `name` under `labels`.
fn label_for(labels: &Path, name: &str) -> Result<PathBuf> {
    [format!("{name}.nii.gz"), format!("{name}.nii")]
        .into_iter()
        .map(|file| labels.join(file))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "no label volume {name}.nii.gz or {name}.nii in {}",
                labels.display()
            )
        })
}

/// Predicts one volume into `out/volumes/<name>/` and scores its mask.
fn score_volume(
    request: &VolumeEvalRequest,
    input: &Path,
    name: &str,
    metrics: &MetricsRequest,
) -> Result<ImageReport> {
    let label = label_for(&request.labels, name)?;
    let predict = PredictRequest {
        checkpoint: request.checkpoint.clone(),
        input: input.to_path_buf(),
        prompt: Some(request.prompt.clone()),
        prompts_csv: None,
        out: request.out.join("volumes").join(name),
        samples: request.samples,
        seed: request.seed,
        device: request.device.clone(),
        resume: false,
        quiet: request.quiet,
        window: None,
        shard: None,
    };
    volume_predict::run(&predict, &request.options)?;
    let mask = predict.out.join(format!("{name}.nii.gz"));
    let report = crate::volume_score::volume_metrics(&mask, &label, request.label, metrics)?;
    tracing::info!(
        "{name}: DSC {:.4} NSD {:.4} HD95 {:.2}",
        report.dsc,
        report.first_nsd(),
        report.hd95
    );
    Ok(report)
}

fn row(name: String, report: &ImageReport) -> VolumeRow {
    VolumeRow {
        name,
        dsc: report.dsc,
        nsd: report.first_nsd(),
        hd95: report.hd95,
        assd: report.assd,
    }
}

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
    let bytes = writer.into_inner().context("CSV buffer")?;
    atomic_io::write_atomic(path, &bytes)?;
    Ok(())
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
        let err = format!("{:#}", label_for(dir.path(), "c").unwrap_err());
        assert!(err.contains("c.nii.gz"), "{err}");
    }

    #[test]
    fn the_summary_averages_the_scored_volumes() {
        let rows = [
            VolumeRow {
                name: "a".into(),
                dsc: 0.5,
                nsd: 0.25,
                hd95: 2.0,
                assd: 1.0,
            },
            VolumeRow {
                name: "b".into(),
                dsc: 1.0,
                nsd: 0.75,
                hd95: 4.0,
                assd: 3.0,
            },
        ];
        let s = summarise(&rows, 2.0, vec![]);
        assert_eq!(
            (s.volumes, s.dsc, s.nsd, s.hd95, s.assd),
            (2, 0.75, 0.5, 3.0, 2.0)
        );
        assert!(summarise(&[], 2.0, vec!["x".into()]).dsc.is_nan());
    }
}
