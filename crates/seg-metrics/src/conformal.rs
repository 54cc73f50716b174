//! Conformal risk control of the mask threshold (Angelopoulos et al., "Conformal Risk Control",
//! ICLR 2024): from `n` labelled calibration images, a probability threshold `t̂` such that a
//! new image drawn like the calibration images has an expected risk (missed lesion fraction,
//! false-discovery rate or 1 − DSC) of at most `α`.
//!
//! # The rule
//!
//! A pixel is foreground when its Monte-Carlo mean probability `p ≥ t`. The thresholds searched
//! are the grid `k / 1000` (`k = 0..=1000`) plus [`EMPTY_THRESHOLD`] (above every probability:
//! an empty mask). Each risk has a *conservative end* where its per-image loss is smallest, and
//! the grid is walked from there:
//!
//! | risk | per-image loss `L_i(t)` | bound `B` | walk | monotone? |
//! |---|---|---|---|---|
//! | [`Risk::Fnr`] | missed lesion pixels / lesion pixels (0 without lesion) | 1 | `t = 0` (every pixel) upwards | yes: non-decreasing in `t` |
//! | [`Risk::Fdr`] | false foreground / predicted foreground (0 for an empty mask) | 1 | empty mask downwards | no |
//! | [`Risk::Dice`] | 1 − DSC (0 when both masks are empty) | 1 | `t = 0.5` upwards (only `t ≥ 0.5` is searched) | no: U-shaped |
//!
//! Where the loss is not monotone along the walk, each image's loss is replaced by its running
//! maximum from the conservative end, `L̃_i(t) = max over t' between the end and t of L_i(t')`.
//! `L̃_i` is monotone, bounded by `B` and never below `L_i`, so the conformal guarantee for
//! `L̃` holds for `L` too: conservative, never optimistic. For 1 − DSC, which rises on both
//! sides of its best threshold, the walk starts at the default 0.5 (a choice made before seeing
//! data, so the guarantee stands): calibrating the Dice loss certifies the default threshold
//! and raises it only while the bound allows.
//!
//! With `R̃(t)` the mean of `L̃_i(t)` over the `n` images, the calibrated threshold is the last
//! grid point of the walk such that `(n / (n + 1)) · R̃(t) + B / (n + 1) ≤ α` (in the paper's
//! notation, the smallest `λ` when `λ` orders the masks from the conservative end). Then, for a
//! new image exchangeable with the calibration images, `E[L(t̂)] ≤ α`: in expectation over
//! both the calibration set and the new image, marginal over images, not for each image.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, Result};

/// Steps of the threshold grid on [0, 1].
pub const GRID_STEPS: usize = 1000;

/// A threshold above every probability (including exactly 1.0): the empty mask.
pub const EMPTY_THRESHOLD: f32 = 1.000_000_1;

/// The lowest threshold searched for [`Risk::Dice`] (the default mask threshold).
pub const DICE_START: f32 = 0.5;

/// The risk a threshold is calibrated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// False-negative rate: the fraction of lesion pixels the mask misses.
    Fnr,
    /// False-discovery rate: the fraction of the mask that is not lesion.
    Fdr,
    /// 1 − DSC.
    Dice,
}

impl Risk {
    /// Every risk.
    pub const ALL: [Risk; 3] = [Risk::Fnr, Risk::Fdr, Risk::Dice];

    /// The upper bound `B` of the per-image loss.
    pub fn bound(self) -> f64 {
        1.0
    }

    /// The command-line name (`fnr`, `fdr`, `dice`).
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Fnr => "fnr",
            Risk::Fdr => "fdr",
            Risk::Dice => "dice",
        }
    }

    /// What the guarantee bounds, in words (`FNR`, `FDR`, `1 − DSC`).
    pub fn label(self) -> &'static str {
        match self {
            Risk::Fnr => "FNR",
            Risk::Fdr => "FDR",
            Risk::Dice => "1 - DSC",
        }
    }

    /// The per-image loss from pixel counts: `truth` lesion pixels, `predicted` foreground
    /// pixels of which `hits` are lesion.
    pub fn loss(self, truth: u64, predicted: u64, hits: u64) -> f64 {
        match self {
            Risk::Fnr if truth == 0 => 0.0,
            Risk::Fnr => (truth - hits) as f64 / truth as f64,
            Risk::Fdr if predicted == 0 => 0.0,
            Risk::Fdr => (predicted - hits) as f64 / predicted as f64,
            Risk::Dice if truth + predicted == 0 => 0.0,
            Risk::Dice => 1.0 - 2.0 * hits as f64 / (truth + predicted) as f64,
        }
    }

    /// Indices into [`thresholds`] in walking order, from the conservative end.
    fn walk(self) -> Vec<usize> {
        let grid = thresholds();
        match self {
            Risk::Fnr => (0..grid.len()).collect(),
            Risk::Fdr => (0..grid.len()).rev().collect(),
            Risk::Dice => (0..grid.len()).filter(|&i| grid[i] >= DICE_START).collect(),
        }
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Risk {
    type Err = MetricsError;

    fn from_str(s: &str) -> Result<Self> {
        Risk::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| conformal_error(format!("unknown risk {s:?}: fnr, fdr or dice")))
    }
}

fn conformal_error(reason: impl Into<String>) -> MetricsError {
    MetricsError::Conformal {
        reason: reason.into(),
    }
}

/// The searched thresholds, ascending: `k / 1000` for `k = 0..=1000`, then [`EMPTY_THRESHOLD`].
pub fn thresholds() -> Vec<f32> {
    (0..=GRID_STEPS)
        .map(|k| (k as f64 / GRID_STEPS as f64) as f32)
        .chain(std::iter::once(EMPTY_THRESHOLD))
        .collect()
}

/// A threshold as the shortest decimal that reads back as the same `f32` (`0.424`, not the
/// `0.42399999499320984` a plain widening to `f64` prints in JSON).
pub fn threshold_value(threshold: f32) -> f64 {
    threshold
        .to_string()
        .parse()
        .unwrap_or(f64::from(threshold))
}

/// `p ≥ threshold`, the mask rule of a calibrated threshold.
pub fn threshold_mask(probability: &[f32], threshold: f32) -> Vec<bool> {
    probability.iter().map(|&p| p >= threshold).collect()
}

/// The uncertain band between two calibrated thresholds: `low ≤ p < high` (pixels in the mask
/// at the lower threshold but not at the higher one).
pub fn band_mask(probability: &[f32], low: f32, high: f32) -> Vec<bool> {
    probability.iter().map(|&p| p >= low && p < high).collect()
}

/// One image's pixel counts at every grid threshold (the sufficient statistics of every risk).
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdCounts {
    /// Lesion pixels.
    pub truth: u64,
    /// Foreground pixels at each threshold of [`thresholds`].
    pub predicted: Vec<u64>,
    /// Lesion pixels among them.
    pub hits: Vec<u64>,
}

impl ThresholdCounts {
    /// Counts of a probability map against its ground truth (same length, row-major).
    /// Refuses maps of different lengths and probabilities outside [0, 1] or NaN.
    pub fn new(probability: &[f32], truth: &[bool]) -> Result<Self> {
        if probability.len() != truth.len() {
            return Err(MetricsError::ShapeMismatch {
                gt: vec![truth.len()],
                pred: vec![probability.len()],
            });
        }
        let grid = thresholds();
        // Pixel with `c` grid thresholds ≤ p is foreground at exactly the first `c` thresholds.
        let (mut on_lesion, mut on_background) =
            (vec![0u64; grid.len() + 1], vec![0u64; grid.len() + 1]);
        for (&p, &t) in probability.iter().zip(truth) {
            if !(0.0..=1.0).contains(&p) {
                return Err(conformal_error(format!("probability {p} outside [0, 1]")));
            }
            let c = grid.partition_point(|&g| g <= p);
            if t {
                on_lesion[c] += 1;
            } else {
                on_background[c] += 1;
            }
        }
        let (mut predicted, mut hits) = (vec![0; grid.len()], vec![0; grid.len()]);
        let (mut above_all, mut above_lesion) = (0, 0);
        for j in (0..grid.len()).rev() {
            above_all += on_lesion[j + 1] + on_background[j + 1];
            above_lesion += on_lesion[j + 1];
            predicted[j] = above_all;
            hits[j] = above_lesion;
        }
        let truth = truth.iter().filter(|&&t| t).count() as u64;
        Ok(Self {
            truth,
            predicted,
            hits,
        })
    }

    /// The loss at grid index `i`.
    pub fn loss(&self, risk: Risk, i: usize) -> f64 {
        risk.loss(self.truth, self.predicted[i], self.hits[i])
    }
}

/// The loss of one image at a threshold (mask `p ≥ threshold`): the test-time risk.
pub fn image_loss(probability: &[f32], truth: &[bool], threshold: f32, risk: Risk) -> Result<f64> {
    if probability.len() != truth.len() {
        return Err(MetricsError::ShapeMismatch {
            gt: vec![truth.len()],
            pred: vec![probability.len()],
        });
    }
    let (mut predicted, mut hits) = (0u64, 0u64);
    for (&p, &t) in probability.iter().zip(truth) {
        if p >= threshold {
            predicted += 1;
            hits += u64::from(t);
        }
    }
    let lesion = truth.iter().filter(|&&t| t).count() as u64;
    Ok(risk.loss(lesion, predicted, hits))
}

/// Checks `0 < α < 1`.
pub fn check_alpha(alpha: f64) -> Result<()> {
    if alpha.is_finite() && alpha > 0.0 && alpha < 1.0 {
        Ok(())
    } else {
        Err(conformal_error(format!(
            "alpha {alpha} must lie strictly between 0 and 1"
        )))
    }
}

/// The risk along the walk, for the figure and the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskCurve {
    /// Thresholds in walking order.
    pub thresholds: Vec<f32>,
    /// Mean per-image loss at each threshold.
    pub risk: Vec<f64>,
    /// Mean of the monotonised losses (equal to `risk` for FNR).
    pub monotone_risk: Vec<f64>,
    /// `(n / (n + 1)) · monotone_risk + B / (n + 1)`, compared with α.
    pub bound: Vec<f64>,
}

/// The calibrated threshold and the numbers behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct CrcResult {
    /// Risk controlled.
    pub risk: Risk,
    /// Target level.
    pub alpha: f64,
    /// Calibrated threshold `t̂` (mask `p ≥ t̂`).
    pub threshold: f32,
    /// Calibration images.
    pub n: usize,
    /// Mean calibration loss at `t̂`.
    pub calibration_risk: f64,
    /// The conformal bound at `t̂` (≤ α).
    pub bound: f64,
    /// The whole walk.
    pub curve: RiskCurve,
}

/// Conformal risk control over `images` (see the module documentation). Errors: α outside
/// (0, 1), no image, no lesion pixel in the whole set, or α below what `n` images can certify
/// (the bound is at least `B / (n + 1)`, so `n ≥ B / α − 1` is needed).
pub fn calibrate_threshold(
    images: &[ThresholdCounts],
    risk: Risk,
    alpha: f64,
) -> Result<CrcResult> {
    check_alpha(alpha)?;
    if images.is_empty() {
        return Err(conformal_error("the calibration set has no image"));
    }
    if images.iter().all(|c| c.truth == 0) {
        return Err(conformal_error(
            "the calibration set has no lesion pixel: there is nothing to miss or find, \
             so no threshold can be calibrated (use images that contain lesions)",
        ));
    }
    let grid = thresholds();
    let walk = risk.walk();
    let n = images.len() as f64;
    let b = risk.bound();
    let (mut raw, mut monotone) = (vec![0.0; walk.len()], vec![0.0; walk.len()]);
    for image in images {
        let mut running = f64::NEG_INFINITY;
        for (k, &i) in walk.iter().enumerate() {
            let loss = image.loss(risk, i);
            running = running.max(loss);
            raw[k] += loss / n;
            monotone[k] += running / n;
        }
    }
    let bound: Vec<f64> = monotone
        .iter()
        .map(|r| n / (n + 1.0) * r + b / (n + 1.0))
        .collect();
    // The monotone bound is non-decreasing along the walk: the admissible points are a prefix.
    let admissible = bound.iter().take_while(|&&v| v <= alpha).count();
    if admissible == 0 {
        return Err(conformal_error(format!(
            "alpha {alpha} cannot be certified for {} with {} calibration images: the bound is \
             {:.4} even at the most conservative threshold (at least B/(n+1) = {:.4}; more images \
             or a larger alpha are needed)",
            risk.label(),
            images.len(),
            bound[0],
            b / (n + 1.0)
        )));
    }
    let k = admissible - 1;
    Ok(CrcResult {
        risk,
        alpha,
        threshold: grid[walk[k]],
        n: images.len(),
        calibration_risk: raw[k],
        bound: bound[k],
        curve: RiskCurve {
            thresholds: walk.iter().map(|&i| grid[i]).collect(),
            risk: raw,
            monotone_risk: monotone,
            bound,
        },
    })
}

/// What a calibration file holds: enough to apply the threshold and to know when it applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationFile {
    /// Format version (1).
    pub version: u32,
    /// Risk controlled.
    pub risk: Risk,
    /// Target level α.
    pub alpha: f64,
    /// Calibrated threshold λ̂: a pixel is foreground when its mean probability is ≥ it.
    pub threshold: f32,
    /// Calibration images.
    pub n: usize,
    /// Mean calibration loss at the threshold.
    pub calibration_risk: f64,
    /// Conformal bound at the threshold (≤ α).
    pub bound: f64,
    /// SHA-256 over the calibration images, masks and prompts.
    pub calibration_sha256: String,
    /// SHA-256 of the checkpoint the probabilities came from.
    pub checkpoint_sha256: String,
    /// Prompt style of the calibration prompts (e.g. `original`, or `custom`).
    pub prompt_style: String,
    /// Monte-Carlo samples per image.
    pub samples: usize,
    /// What the threshold promises, in words.
    pub statement: String,
    /// A second level of the same risk on the same images, for the uncertain band
    /// ([`CalibrationFile::band_range`]); absent in files without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<BandLevel>,
}

/// The second level of a calibration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandLevel {
    /// Its level α.
    pub alpha: f64,
    /// Its calibrated threshold.
    pub threshold: f32,
    /// Its conformal bound (≤ α).
    pub bound: f64,
}

impl CalibrationFile {
    /// The record of a calibration.
    pub fn new(result: &CrcResult, provenance: CalibrationProvenance) -> Self {
        Self {
            version: 1,
            risk: result.risk,
            alpha: result.alpha,
            threshold: result.threshold,
            n: result.n,
            calibration_risk: result.calibration_risk,
            bound: result.bound,
            calibration_sha256: provenance.calibration_sha256,
            checkpoint_sha256: provenance.checkpoint_sha256,
            prompt_style: provenance.prompt_style,
            samples: provenance.samples,
            statement: statement(result.risk, result.alpha),
            band: None,
        }
    }

    /// Adds a second level calibrated on the same images for the same risk; errors when the
    /// risk, the image count or the level does not fit (equal levels give no band).
    pub fn with_band(mut self, band: &CrcResult) -> Result<Self> {
        if band.risk != self.risk || band.n != self.n {
            return Err(conformal_error(format!(
                "the band level was calibrated for {} on {} images, the threshold for {} on {}",
                band.risk.label(),
                band.n,
                self.risk.label(),
                self.n
            )));
        }
        if band.alpha == self.alpha {
            return Err(conformal_error(format!(
                "the band level must differ from alpha {}",
                self.alpha
            )));
        }
        self.band = Some(BandLevel {
            alpha: band.alpha,
            threshold: band.threshold,
            bound: band.bound,
        });
        Ok(self)
    }

    /// `(low, high)`: the two thresholds in order, when the file has a band level.
    pub fn band_range(&self) -> Option<(f32, f32)> {
        let band = self.band.as_ref()?;
        Some((
            self.threshold.min(band.threshold),
            self.threshold.max(band.threshold),
        ))
    }

    /// Reads and checks a calibration file (α in (0, 1), threshold in [0, 1] or empty).
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| MetricsError::io(path, e))?;
        let file: Self = serde_json::from_slice(&bytes).map_err(|e| {
            conformal_error(format!("{}: not a calibration file: {e}", path.display()))
        })?;
        let band = file.band.as_ref();
        let alphas = std::iter::once(file.alpha).chain(band.map(|b| b.alpha));
        let thresholds = std::iter::once(file.threshold).chain(band.map(|b| b.threshold));
        for alpha in alphas {
            check_alpha(alpha).map_err(|e| conformal_error(format!("{}: {e}", path.display())))?;
        }
        for threshold in thresholds {
            if !(0.0..=EMPTY_THRESHOLD).contains(&threshold) {
                return Err(conformal_error(format!(
                    "{}: threshold {threshold} outside [0, 1]",
                    path.display(),
                )));
            }
        }
        Ok(file)
    }

    /// Writes it as pretty JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("plain data serialises");
        crate::eval::write_atomic(path, text.as_bytes())
    }

    /// Errors unless `checkpoint_sha256` is the checkpoint this file was calibrated with:
    /// another model's threshold carries no guarantee.
    pub fn check_checkpoint(&self, checkpoint_sha256: &str) -> Result<()> {
        if self.checkpoint_sha256 == checkpoint_sha256 {
            return Ok(());
        }
        Err(conformal_error(format!(
            "the calibration was made with checkpoint sha256 {} but this checkpoint is {}: \
             a threshold calibrated for another model carries no guarantee (calibrate again)",
            self.checkpoint_sha256, checkpoint_sha256
        )))
    }
}

/// Where a calibration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalibrationProvenance {
    /// SHA-256 over the calibration images, masks and prompts.
    pub calibration_sha256: String,
    /// SHA-256 of the checkpoint.
    pub checkpoint_sha256: String,
    /// Prompt style.
    pub prompt_style: String,
    /// Monte-Carlo samples per image.
    pub samples: usize,
}

/// "FNR ≤ 0.1 in expectation over images like the calibration set".
pub fn statement(risk: Risk, alpha: f64) -> String {
    format!(
        "{} <= {alpha} in expectation over images like the calibration set",
        risk.label()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A synthetic image: a disc lesion (or none) and a model whose probability is a noisy,
    /// blurred version of the truth; per-image quality varies, as a real model's does.
    fn synthetic_image(rng: &mut ChaCha8Rng) -> (Vec<f32>, Vec<bool>) {
        let side = 24;
        let (cx, cy) = (rng.random_range(6.0..18.0), rng.random_range(6.0..18.0));
        let radius: f64 = rng.random_range(2.0..6.0);
        let sharpness: f64 = rng.random_range(0.5..3.0);
        let bias: f64 = rng.random_range(-1.5..1.5);
        let mut prob = Vec::with_capacity(side * side);
        let mut truth = Vec::with_capacity(side * side);
        for r in 0..side {
            for c in 0..side {
                let d = ((r as f64 - cy).powi(2) + (c as f64 - cx).powi(2)).sqrt();
                truth.push(d <= radius);
                let logit = sharpness * (radius - d) + bias + rng.random_range(-1.0..1.0);
                prob.push((1.0 / (1.0 + (-logit).exp())) as f32);
            }
        }
        (prob, truth)
    }

    /// Mean test loss at the calibrated threshold over `splits` random calibration/test splits
    /// of a pool of synthetic images; `shift` moves the threshold away (a wrong threshold).
    fn mean_test_risk(risk: Risk, alpha: f64, splits: usize, shift: f32) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(23);
        let pool: Vec<(Vec<f32>, Vec<bool>)> =
            (0..300).map(|_| synthetic_image(&mut rng)).collect();
        let counts: Vec<ThresholdCounts> = pool
            .iter()
            .map(|(p, t)| ThresholdCounts::new(p, t).unwrap())
            .collect();
        let mut total = 0.0;
        for _ in 0..splits {
            let mut order: Vec<usize> = (0..pool.len()).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.random_range(0..=i));
            }
            let (cal, test) = order.split_at(100);
            let cal_counts: Vec<ThresholdCounts> = cal.iter().map(|&i| counts[i].clone()).collect();
            let result = calibrate_threshold(&cal_counts, risk, alpha).unwrap();
            let threshold = (result.threshold + shift).clamp(0.0, EMPTY_THRESHOLD);
            let losses: f64 = test
                .iter()
                .map(|&i| image_loss(&pool[i].0, &pool[i].1, threshold, risk).unwrap())
                .sum();
            total += losses / test.len() as f64;
        }
        total / splits as f64
    }

    /// Monte-Carlo margin: the mean over 60 splits of a test mean over 200 images has a standard
    /// error well under 0.01 here (per-image losses in [0, 1], split means correlated through the
    /// shared pool); 0.02 is about three of them.
    const MC_MARGIN: f64 = 0.02;

    #[test]
    fn the_guarantee_holds_over_random_splits_for_two_alphas() {
        for alpha in [0.1, 0.2] {
            let mean = mean_test_risk(Risk::Fnr, alpha, 60, 0.0);
            assert!(mean <= alpha + MC_MARGIN, "FNR {mean} at alpha {alpha}");
            // Not vacuous: the threshold is not the trivial all-foreground one.
            assert!(
                mean > alpha / 4.0,
                "FNR {mean} at alpha {alpha} is far below alpha"
            );
        }
        let fdr = mean_test_risk(Risk::Fdr, 0.2, 60, 0.0);
        assert!(fdr <= 0.2 + MC_MARGIN, "FDR {fdr}");
    }

    #[test]
    fn a_deliberately_wrong_threshold_breaks_the_guarantee() {
        // Raising the FNR threshold by 0.3 misses more lesion than α allows.
        let mean = mean_test_risk(Risk::Fnr, 0.1, 60, 0.3);
        assert!(
            mean > 0.1 + MC_MARGIN,
            "a too-high threshold still met alpha: {mean}"
        );
    }

    /// Three images of 4 pixels (probabilities, lesion pixels marked true), worked by hand.
    fn hand_worked_images() -> [(Vec<f32>, Vec<bool>); 3] {
        [
            (vec![0.9f32, 0.6, 0.2, 0.1], vec![true, true, false, false]),
            (vec![0.8, 0.3, 0.7, 0.05], vec![true, true, false, false]),
            (vec![0.95, 0.4, 0.1, 0.0], vec![true, false, false, false]),
        ]
    }

    fn hand_worked_counts(images: &[(Vec<f32>, Vec<bool>)]) -> Vec<ThresholdCounts> {
        images
            .iter()
            .map(|(p, t)| ThresholdCounts::new(p, t).unwrap())
            .collect()
    }

    #[test]
    fn hand_worked_fnr_threshold() {
        let images = hand_worked_images();
        let counts = hand_worked_counts(&images);
        // n = 3, B = 1: need (3/4)·R + 1/4 ≤ α. With α = 0.5: R ≤ 1/3.
        // FNR per image at t: image 1 misses 0.6 above t=0.6, 0.9 above 0.9; image 2 misses 0.3
        // above 0.3, 0.8 above 0.8; image 3 misses 0.95 above 0.95.
        // t ≤ 0.3: R = 0. 0.3 < t ≤ 0.6: R = (0 + 1/2 + 0)/3 = 1/6. 0.6 < t ≤ 0.8:
        // R = (1/2 + 1/2 + 0)/3 = 1/3 (admissible). 0.8 < t: R = (1/2 + 1 + 0)/3 = 1/2 (not).
        // So t̂ = the last grid point ≤ 0.8 (p ≥ 0.8 keeps the 0.8 pixel): 0.8.
        let independent = |t: f32| {
            let r: f64 = images
                .iter()
                .map(|(p, truth)| image_loss(p, truth, t, Risk::Fnr).unwrap())
                .sum::<f64>()
                / 3.0;
            0.75 * r + 0.25
        };
        let result = calibrate_threshold(&counts, Risk::Fnr, 0.5).unwrap();
        assert_eq!(result.threshold, 0.8);
        assert!((result.calibration_risk - 1.0 / 3.0).abs() < 1e-12);
        assert!((result.bound - 0.5).abs() < 1e-12);
        assert!(independent(0.8) <= 0.5 && independent(0.801) > 0.5);
        // α = 0.3 needs R ≤ 1/15: only t ≤ 0.3.
        let strict = calibrate_threshold(&counts, Risk::Fnr, 0.3).unwrap();
        assert_eq!(strict.threshold, 0.3);
    }

    #[test]
    fn the_band_lies_between_the_two_levels_and_round_trips() {
        // The hand-worked case above: α = 0.5 gives 0.8, α = 0.3 gives 0.3.
        let images = hand_worked_images();
        let counts = hand_worked_counts(&images);
        let provenance = CalibrationProvenance {
            calibration_sha256: "cal".into(),
            checkpoint_sha256: "abc".into(),
            prompt_style: "original".into(),
            samples: 4,
        };
        let main = calibrate_threshold(&counts, Risk::Fnr, 0.3).unwrap();
        let loose = calibrate_threshold(&counts, Risk::Fnr, 0.5).unwrap();
        let file = CalibrationFile::new(&main, provenance.clone())
            .with_band(&loose)
            .unwrap();
        assert_eq!(file.band_range(), Some((0.3, 0.8)));
        // Image 2: 0.8 is in the mask at both, 0.3 and 0.7 only at the lower, 0.05 at neither.
        assert_eq!(
            band_mask(&images[1].0, 0.3, 0.8),
            [false, true, true, false]
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cal.json");
        file.write(&path).unwrap();
        assert_eq!(CalibrationFile::read(&path).unwrap(), file);
        // A file without a band reads as before; the same level twice, or another risk, is refused.
        let plain = CalibrationFile::new(&loose, provenance.clone());
        assert_eq!(plain.band_range(), None);
        let same = CalibrationFile::new(&main, provenance.clone()).with_band(&main);
        assert!(same.unwrap_err().to_string().contains("must differ"));
        let fdr = calibrate_threshold(&counts, Risk::Fdr, 0.9).unwrap();
        assert!(
            CalibrationFile::new(&main, provenance)
                .with_band(&fdr)
                .is_err()
        );
        // A band level outside (0, 1) in a file is an error naming it.
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("0.5", "1.5");
        std::fs::write(&path, text).unwrap();
        let err = CalibrationFile::read(&path).unwrap_err().to_string();
        assert!(err.contains("cal.json") && err.contains("1.5"), "{err}");
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let empty_truth = ThresholdCounts::new(&[0.2, 0.9], &[false, false]).unwrap();
        let err =
            calibrate_threshold(std::slice::from_ref(&empty_truth), Risk::Fnr, 0.1).unwrap_err();
        assert!(err.to_string().contains("no lesion pixel"), "{err}");
        for alpha in [0.0, 1.0, -0.1, 1.5, f64::NAN] {
            let err = calibrate_threshold(std::slice::from_ref(&empty_truth), Risk::Fnr, alpha)
                .unwrap_err();
            assert!(
                err.to_string().contains("strictly between 0 and 1"),
                "{err}"
            );
        }
        // Two images cannot certify α = 0.1 (the bound is at least 1/3).
        let one = ThresholdCounts::new(&[0.9, 0.1], &[true, false]).unwrap();
        let err = calibrate_threshold(&[one.clone(), one], Risk::Fnr, 0.1).unwrap_err();
        assert!(err.to_string().contains("cannot be certified"), "{err}");
        assert!(ThresholdCounts::new(&[1.5], &[true]).is_err());
        assert!(ThresholdCounts::new(&[0.5, 0.5], &[true]).is_err());
        assert!("fnx".parse::<Risk>().is_err());
        assert_eq!("FDR".parse::<Risk>().unwrap(), Risk::Fdr);
    }

    #[test]
    fn a_checkpoint_mismatch_is_an_error_and_files_round_trip() {
        let counts =
            vec![ThresholdCounts::new(&[0.9, 0.4, 0.1], &[true, true, false]).unwrap(); 30];
        let result = calibrate_threshold(&counts, Risk::Fnr, 0.2).unwrap();
        let file = CalibrationFile::new(
            &result,
            CalibrationProvenance {
                calibration_sha256: "cal".into(),
                checkpoint_sha256: "abc".into(),
                prompt_style: "original".into(),
                samples: 4,
            },
        );
        assert!(file.statement.starts_with("FNR <= 0.2 in expectation"));
        assert_eq!(threshold_value(0.424), 0.424);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cal.json");
        file.write(&path).unwrap();
        let read = CalibrationFile::read(&path).unwrap();
        assert_eq!(read, file);
        read.check_checkpoint("abc").unwrap();
        let err = read.check_checkpoint("def").unwrap_err().to_string();
        assert!(err.contains("abc") && err.contains("def"), "{err}");
        std::fs::write(&path, b"{\"risk\": 3}").unwrap();
        assert!(
            CalibrationFile::read(&path)
                .unwrap_err()
                .to_string()
                .contains("cal.json")
        );
    }

    proptest! {
        #[test]
        fn counts_agree_with_direct_thresholding(
            pixels in proptest::collection::vec((0.0f32..=1.0, any::<bool>()), 1..40),
            k in 0usize..=GRID_STEPS + 1,
        ) {
            let (prob, truth): (Vec<f32>, Vec<bool>) = pixels.into_iter().unzip();
            let counts = ThresholdCounts::new(&prob, &truth).unwrap();
            let t = thresholds()[k];
            for risk in Risk::ALL {
                let direct = image_loss(&prob, &truth, t, risk).unwrap();
                prop_assert!((counts.loss(risk, k) - direct).abs() < 1e-12);
            }
        }

        #[test]
        fn the_bound_at_the_threshold_is_within_alpha_and_fnr_is_monotone(
            maps in proptest::collection::vec(
                proptest::collection::vec((0.0f32..=1.0, any::<bool>()), 4..12), 20..40),
            alpha in 0.06f64..0.9,
        ) {
            let counts: Vec<ThresholdCounts> = maps
                .iter()
                .map(|m| {
                    let (p, t): (Vec<f32>, Vec<bool>) = m.iter().cloned().unzip();
                    ThresholdCounts::new(&p, &t).unwrap()
                })
                .collect();
            prop_assume!(counts.iter().any(|c| c.truth > 0));
            for risk in Risk::ALL {
                if let Ok(result) = calibrate_threshold(&counts, risk, alpha) {
                    prop_assert!(result.bound <= alpha);
                    prop_assert!(result.curve.monotone_risk.windows(2).all(|w| w[0] <= w[1] + 1e-12));
                    if risk == Risk::Fnr {
                        prop_assert_eq!(&result.curve.risk, &result.curve.monotone_risk);
                    }
                }
            }
        }
    }
}
