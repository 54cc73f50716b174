//! Calibration of foreground-probability maps: reliability-diagram bins, ECE / ACE / MCE, Brier
//! score, and AUROC of an uncertainty map for finding pixel errors.
//!
//! Binning follows MONAI `monai.metrics.calibration.calibration_binning` (MONAI ≥ 1.5): `num_bins`
//! equal-width bins with float32 boundaries `torch.linspace(0, 1 + eps_f32, num_bins + 1)`, a
//! probability `p` goes to bin `torch.bucketize(p, boundaries[1:], right)` clamped to the last bin.
//! With `right = false` (MONAI's default) that is the number of upper boundaries strictly below
//! `p`, so a bin holds `(b_k, b_{k+1}]` (the first bin also holds 0). Per bin: mean probability
//! ("confidence"), mean ground truth ("accuracy") and count; ECE is the count-weighted mean of
//! `|confidence − accuracy|` (`CalibrationReduction.EXPECTED`). MONAI sums in float32; this crate
//! sums in f64.

use crate::error::{MetricsError, Result};

/// One bin of a reliability diagram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReliabilityBin {
    /// Lower boundary of the bin (float32 boundary, as MONAI computes it).
    pub lower: f64,
    /// Upper boundary of the bin.
    pub upper: f64,
    /// Mean predicted probability in the bin (NaN when empty).
    pub confidence: f64,
    /// Mean ground truth (fraction of foreground) in the bin (NaN when empty).
    pub accuracy: f64,
    /// Number of pixels in the bin.
    pub count: u64,
}

/// Per-bin statistics of a probability map against its ground truth.
#[derive(Clone, Debug, PartialEq)]
pub struct ReliabilityDiagram {
    /// The bins, from low to high probability.
    pub bins: Vec<ReliabilityBin>,
}

impl ReliabilityDiagram {
    /// Expected calibration error: count-weighted mean of |confidence − accuracy| (NaN when no pixel).
    pub fn ece(&self) -> f64 {
        let total: u64 = self.bins.iter().map(|b| b.count).sum();
        if total == 0 {
            return f64::NAN;
        }
        let weighted: f64 = self
            .bins
            .iter()
            .filter(|b| b.count > 0)
            .map(|b| (b.confidence - b.accuracy).abs() * b.count as f64)
            .sum();
        weighted / total as f64
    }

    /// Average calibration error: unweighted mean over non-empty bins (MONAI `AVERAGE`).
    pub fn ace(&self) -> f64 {
        let gaps: Vec<f64> = self.gaps().collect();
        if gaps.is_empty() {
            return f64::NAN;
        }
        gaps.iter().sum::<f64>() / gaps.len() as f64
    }

    /// Maximum calibration error over non-empty bins (MONAI `MAXIMUM`).
    pub fn mce(&self) -> f64 {
        self.gaps().fold(f64::NAN, f64::max)
    }

    fn gaps(&self) -> impl Iterator<Item = f64> + '_ {
        self.bins
            .iter()
            .filter(|b| b.count > 0)
            .map(|b| (b.confidence - b.accuracy).abs())
    }
}

/// `torch.linspace(0, 1 + eps_f32, n + 1)` in float32, with torch's two-sided formula.
fn monai_boundaries(num_bins: usize) -> Vec<f32> {
    let steps = num_bins + 1;
    let start = 0.0f32;
    let end = 1.0f32 + f32::EPSILON;
    let step = (end - start) / num_bins as f32;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| {
            if i < halfway {
                start + step * i as f32
            } else {
                end - step * (steps - i - 1) as f32
            }
        })
        .collect()
}

fn check_probabilities(probabilities: &[f32], gt: &[bool]) -> Result<()> {
    if probabilities.len() != gt.len() {
        return Err(MetricsError::Calibration {
            reason: format!(
                "{} probabilities but {} ground-truth values",
                probabilities.len(),
                gt.len()
            ),
        });
    }
    if let Some((i, p)) = probabilities
        .iter()
        .enumerate()
        .find(|(_, p)| !(0.0..=1.0).contains(*p))
    {
        return Err(MetricsError::Calibration {
            reason: format!("probability {p} at index {i} is not within [0, 1]"),
        });
    }
    Ok(())
}

/// Reliability-diagram bins of a probability map (MONAI binning, see the module doc).
pub fn reliability_diagram(
    probabilities: &[f32],
    gt: &[bool],
    num_bins: usize,
    right: bool,
) -> Result<ReliabilityDiagram> {
    check_probabilities(probabilities, gt)?;
    if num_bins == 0 {
        return Err(MetricsError::Calibration {
            reason: "num_bins must be >= 1".into(),
        });
    }
    let boundaries = monai_boundaries(num_bins);
    let upper = &boundaries[1..];
    let mut sum_p = vec![0.0f64; num_bins];
    let mut sum_gt = vec![0.0f64; num_bins];
    let mut count = vec![0u64; num_bins];
    for (&p, &g) in probabilities.iter().zip(gt) {
        let index = if right {
            upper.partition_point(|&b| b <= p)
        } else {
            upper.partition_point(|&b| b < p)
        };
        let bin = index.min(num_bins - 1);
        sum_p[bin] += f64::from(p);
        sum_gt[bin] += f64::from(u8::from(g));
        count[bin] += 1;
    }
    let bins = (0..num_bins)
        .map(|k| {
            let n = count[k];
            let mean = |s: f64| if n == 0 { f64::NAN } else { s / n as f64 };
            ReliabilityBin {
                lower: f64::from(boundaries[k]),
                upper: f64::from(boundaries[k + 1]),
                confidence: mean(sum_p[k]),
                accuracy: mean(sum_gt[k]),
                count: n,
            }
        })
        .collect();
    Ok(ReliabilityDiagram { bins })
}

/// Expected calibration error with MONAI's defaults (`right = false`).
pub fn expected_calibration_error(
    probabilities: &[f32],
    gt: &[bool],
    num_bins: usize,
) -> Result<f64> {
    Ok(reliability_diagram(probabilities, gt, num_bins, false)?.ece())
}

/// Brier score: mean of `(p − y)²` (NaN for an empty map).
pub fn brier_score(probabilities: &[f32], gt: &[bool]) -> Result<f64> {
    check_probabilities(probabilities, gt)?;
    if probabilities.is_empty() {
        return Ok(f64::NAN);
    }
    let sum: f64 = probabilities
        .iter()
        .zip(gt)
        .map(|(&p, &g)| {
            let d = f64::from(p) - f64::from(u8::from(g));
            d * d
        })
        .sum();
    Ok(sum / probabilities.len() as f64)
}

/// AUROC of `uncertainty` as a detector of pixel errors, where a pixel is wrong when
/// `(p > 0.5) != gt`. Exact Mann–Whitney statistic with tied scores given their average rank
/// (ties count one half). NaN when there is no error or no correct pixel.
pub fn error_detection_auroc(
    probabilities: &[f32],
    uncertainty: &[f32],
    gt: &[bool],
) -> Result<f64> {
    check_probabilities(probabilities, gt)?;
    if uncertainty.len() != gt.len() {
        return Err(MetricsError::Calibration {
            reason: format!(
                "{} uncertainty values but {} ground-truth values",
                uncertainty.len(),
                gt.len()
            ),
        });
    }
    if let Some(i) = uncertainty.iter().position(|u| u.is_nan()) {
        return Err(MetricsError::Calibration {
            reason: format!("uncertainty at index {i} is NaN"),
        });
    }
    let errors: Vec<bool> = probabilities
        .iter()
        .zip(gt)
        .map(|(&p, &g)| (p > 0.5) != g)
        .collect();
    Ok(auroc(uncertainty, &errors))
}

/// AUROC of `scores` for the positive `labels`, average ranks for ties. Scores must not be NaN.
pub(crate) fn auroc(scores: &[f32], labels: &[bool]) -> f64 {
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return f64::NAN;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut positive_rank_sum = 0.0f64;
    let mut start = 0;
    while start < order.len() {
        let value = scores[order[start]];
        let end = start
            + order[start..]
                .iter()
                .take_while(|&&i| scores[i] == value)
                .count();
        // Ranks start + 1 ..= end share their mean.
        let mean_rank = (start + 1 + end) as f64 / 2.0;
        let tied_positives = order[start..end].iter().filter(|&&i| labels[i]).count();
        positive_rank_sum += mean_rank * tied_positives as f64;
        start = end;
    }
    let p = positives as f64;
    (positive_rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn boundaries_are_monai_float32() {
        let b = monai_boundaries(4);
        assert_eq!(b.len(), 5);
        assert_eq!(b[0], 0.0);
        assert_eq!(b[4], 1.0 + f32::EPSILON);
        assert!((b[2] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn binning_puts_boundary_values_in_the_lower_bin() {
        // right = false: 0.5 with 2 bins goes to bin 0 (0.5 < 0.5 * (1 + eps) = b1).
        let d = reliability_diagram(&[0.0, 0.5, 0.75, 1.0], &[false, true, true, true], 2, false)
            .unwrap();
        assert_eq!(d.bins[0].count, 2);
        assert_eq!(d.bins[1].count, 2);
        assert_eq!(d.bins[0].confidence, 0.25);
        assert_eq!(d.bins[0].accuracy, 0.5);
        assert_eq!(d.bins[1].accuracy, 1.0);
        // Hand computation: bin 0 gap |0.25 - 0.5| * 2, bin 1 gap |0.875 - 1| * 2, over 4 pixels.
        assert!((d.ece() - (0.25 * 2.0 + 0.125 * 2.0) / 4.0).abs() < 1e-12);
        assert!((d.ace() - (0.25 + 0.125) / 2.0).abs() < 1e-12);
        assert_eq!(d.mce(), 0.25);
    }

    #[test]
    fn empty_bins_are_nan_and_ignored() {
        let d = reliability_diagram(&[0.9, 0.95], &[true, true], 10, false).unwrap();
        assert!(d.bins[0].confidence.is_nan());
        assert_eq!(d.bins.iter().map(|b| b.count).sum::<u64>(), 2);
        assert!((d.ece() - 0.075).abs() < 1e-7);
    }

    #[test]
    fn perfectly_confident_and_right_is_calibrated() {
        let p = [0.0, 1.0, 1.0, 0.0];
        let g = [false, true, true, false];
        assert_eq!(expected_calibration_error(&p, &g, 15).unwrap(), 0.0);
        assert_eq!(brier_score(&p, &g).unwrap(), 0.0);
    }

    #[test]
    fn brier_hand_computed() {
        let b = brier_score(&[0.5, 0.25], &[true, false]).unwrap();
        assert_eq!(b, (0.25 + 0.0625) / 2.0);
    }

    #[test]
    fn invalid_inputs_are_errors() {
        assert!(brier_score(&[0.5], &[true, false]).is_err());
        assert!(brier_score(&[1.5], &[true]).is_err());
        assert!(brier_score(&[f32::NAN], &[true]).is_err());
        assert!(reliability_diagram(&[0.5], &[true], 0, false).is_err());
        assert!(error_detection_auroc(&[0.5], &[f32::NAN], &[true]).is_err());
        assert!(error_detection_auroc(&[0.5], &[0.1, 0.2], &[true]).is_err());
    }

    #[test]
    fn auroc_hand_computed_with_ties() {
        // Errors at the two highest scores, one tied with a correct pixel.
        // sklearn.metrics.roc_auc_score([0, 0, 1, 0, 1], [0.1, 0.2, 0.3, 0.3, 0.9]) = 0.9166666
        let labels = [false, false, true, false, true];
        let scores = [0.1, 0.2, 0.3, 0.3, 0.9];
        assert!((auroc(&scores, &labels) - 11.0 / 12.0).abs() < 1e-12);
        assert!(auroc(&[0.1, 0.2], &[false, false]).is_nan());
    }

    #[test]
    fn error_detection_uses_the_half_threshold() {
        // p = 0.6 with gt false is an error, p = 0.5 with gt true is an error (0.5 is not > 0.5).
        let p = [0.6, 0.5, 0.9, 0.1];
        let g = [false, true, true, false];
        let u = [0.8, 0.7, 0.1, 0.2];
        assert_eq!(error_detection_auroc(&p, &u, &g).unwrap(), 1.0);
        let inverted = [0.1, 0.2, 0.8, 0.7];
        assert_eq!(error_detection_auroc(&p, &inverted, &g).unwrap(), 0.0);
    }

    proptest! {
        #[test]
        fn auroc_equals_pairwise_count(
            data in proptest::collection::vec((0u8..6, any::<bool>()), 2..40)
        ) {
            let scores: Vec<f32> = data.iter().map(|d| f32::from(d.0) / 5.0).collect();
            let labels: Vec<bool> = data.iter().map(|d| d.1).collect();
            let fast = auroc(&scores, &labels);
            let (mut wins, mut pairs) = (0.0, 0.0);
            for (i, &li) in labels.iter().enumerate() {
                for (j, &lj) in labels.iter().enumerate() {
                    if li && !lj {
                        pairs += 1.0;
                        wins += if scores[i] > scores[j] { 1.0 } else if scores[i] == scores[j] { 0.5 } else { 0.0 };
                    }
                }
            }
            if pairs == 0.0 {
                prop_assert!(fast.is_nan());
            } else {
                prop_assert!((fast - wins / pairs).abs() < 1e-12);
            }
        }

        #[test]
        fn ece_is_bounded(data in proptest::collection::vec((0.0f32..=1.0, any::<bool>()), 1..50), bins in 1usize..30) {
            let p: Vec<f32> = data.iter().map(|d| d.0).collect();
            let g: Vec<bool> = data.iter().map(|d| d.1).collect();
            let d = reliability_diagram(&p, &g, bins, false).unwrap();
            prop_assert_eq!(d.bins.iter().map(|b| b.count).sum::<u64>(), p.len() as u64);
            let ece = d.ece();
            prop_assert!((0.0..=1.0).contains(&ece));
            prop_assert!(ece <= d.mce() + 1e-12);
        }
    }
}
