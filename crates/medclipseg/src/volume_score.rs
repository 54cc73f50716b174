//! 3-D scores of label volumes, with the command's warning when the voxel sizes differ
//! (shared by `metrics` and `eval --volumes`).

use std::path::Path;

use anyhow::Result;
use seg_metrics::{ImageReport, MetricsRequest};

/// [`medclipseg_pipeline::volume_metrics`], with a warning when the voxel sizes differ.
pub fn volume_metrics(
    pred: &Path,
    gt: &Path,
    label: Option<i64>,
    request: &MetricsRequest,
) -> Result<ImageReport> {
    let score = medclipseg_pipeline::volume_metrics(pred, gt, label, request)?;
    if let Some((p, g)) = score.spacing_mismatch {
        tracing::warn!(
            "voxel sizes differ ({p:?} in {}, {g:?} in {}); using the ground truth's",
            pred.display(),
            gt.display()
        );
    }
    Ok(score.report)
}
