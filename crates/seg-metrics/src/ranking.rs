//! Scores that rank unlabelled images for annotation: the images the model is least sure
//! about come first. Every score is a per-image mean of a per-pixel map from the Monte-Carlo
//! samples, in nats (entropy, mutual information) or as a fraction (disagreement):
//!
//! - [`RankBy::Entropy`]: mean predictive entropy `H(p̄)` of the mean probability: total
//!   uncertainty, high where the model says "50/50".
//! - [`RankBy::MutualInformation`]: mean mutual information `H(p̄) − mean_s H(p_s)`, the
//!   epistemic part: high where the samples disagree with each other (the model has not seen
//!   images like this), low where every sample is unsure the same way (ambiguous borders).
//! - [`RankBy::MaskEntropy`]: mean predictive entropy inside the predicted mask: how unsure the
//!   model is about what it segmented (an empty mask scores its whole-image mean entropy).
//! - [`RankBy::Disagreement`]: mean pairwise disagreement of the samples' masks: per pixel,
//!   the fraction of pairs of distinct samples whose masks (`p_s > 0.5`) differ there,
//!   `2 v (1 − v) N / (N − 1)` with `v` the fraction of the `N` samples voting foreground. Its
//!   image mean is the expected share of pixels on which two random samples disagree.
//!
//! A volume is scored slice by slice ([`SliceScore`]) and [`volume_score`] aggregates them into
//! the same per-voxel mean a picture's score is: each slice's score weighted by its pixels (by its
//! mask pixels for [`RankBy::MaskEntropy`]), so a volume's score is the score of all its voxels
//! taken as one image.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, Result};

/// What ranks the images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RankBy {
    /// Mean predictive entropy.
    Entropy,
    /// Mean mutual information (epistemic uncertainty).
    MutualInformation,
    /// Mean predictive entropy inside the predicted mask.
    MaskEntropy,
    /// Mean pairwise disagreement of the Monte-Carlo samples' masks.
    Disagreement,
}

impl RankBy {
    /// Every score.
    pub const ALL: [RankBy; 4] = [
        RankBy::Entropy,
        RankBy::MutualInformation,
        RankBy::MaskEntropy,
        RankBy::Disagreement,
    ];

    /// The command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            RankBy::Entropy => "entropy",
            RankBy::MutualInformation => "mutual-information",
            RankBy::MaskEntropy => "mask-entropy",
            RankBy::Disagreement => "disagreement",
        }
    }
}

impl fmt::Display for RankBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RankBy {
    type Err = MetricsError;

    fn from_str(s: &str) -> Result<Self> {
        RankBy::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| MetricsError::Conformal {
                reason: format!(
                    "unknown ranking score {s:?}: entropy, mutual-information, mask-entropy or disagreement"
                ),
            })
    }
}

/// The per-pixel maps of one image (all the same length, row-major).
#[derive(Debug, Clone, Copy)]
pub struct UncertaintyMaps<'a> {
    /// Predictive entropy of the mean probability.
    pub entropy: &'a [f32],
    /// Mutual information (epistemic part).
    pub mutual_information: &'a [f32],
    /// The predicted mask.
    pub mask: &'a [bool],
    /// Fraction of samples whose probability is above 0.5.
    pub vote_fraction: &'a [f32],
    /// Monte-Carlo samples.
    pub samples: usize,
}

/// Pairwise disagreement of `samples` binary votes of which a fraction `vote` is foreground:
/// the share of pairs of distinct samples that differ (0 with one sample).
pub fn pairwise_disagreement(vote: f64, samples: usize) -> f64 {
    if samples < 2 {
        return 0.0;
    }
    let n = samples as f64;
    2.0 * vote * (1.0 - vote) * n / (n - 1.0)
}

/// The image's score under `by`.
pub fn image_score(by: RankBy, maps: &UncertaintyMaps) -> Result<f64> {
    let len = maps.entropy.len();
    let lengths = [
        maps.mutual_information.len(),
        maps.mask.len(),
        maps.vote_fraction.len(),
    ];
    if lengths.iter().any(|&l| l != len) {
        return Err(MetricsError::ShapeMismatch {
            gt: vec![len],
            pred: lengths.to_vec(),
        });
    }
    let mean = |values: &mut dyn Iterator<Item = f64>| {
        let (sum, count) = values.fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
        (count > 0).then(|| sum / count as f64)
    };
    let score = match by {
        RankBy::Entropy => mean(&mut maps.entropy.iter().map(|&v| f64::from(v))),
        RankBy::MutualInformation => {
            mean(&mut maps.mutual_information.iter().map(|&v| f64::from(v)))
        }
        RankBy::MaskEntropy => mean(
            &mut maps
                .entropy
                .iter()
                .zip(maps.mask)
                .filter(|(_, on)| **on)
                .map(|(&v, _)| f64::from(v)),
        )
        .or_else(|| mean(&mut maps.entropy.iter().map(|&v| f64::from(v)))),
        RankBy::Disagreement => mean(
            &mut maps
                .vote_fraction
                .iter()
                .map(|&v| pairwise_disagreement(f64::from(v), maps.samples)),
        ),
    };
    Ok(score.unwrap_or(0.0))
}

/// What [`volume_score`] needs of one slice of a volume.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliceScore {
    /// The slice's score ([`image_score`]).
    pub score: f64,
    /// Its pixels.
    pub pixels: usize,
    /// Its predicted mask pixels.
    pub mask_pixels: usize,
    /// Its mean predictive entropy (the score of a volume whose mask is empty, for
    /// [`RankBy::MaskEntropy`]).
    pub mean_entropy: f64,
}

impl SliceScore {
    /// The slice's numbers from its maps.
    pub fn of(by: RankBy, maps: &UncertaintyMaps) -> Result<Self> {
        Ok(Self {
            score: image_score(by, maps)?,
            pixels: maps.entropy.len(),
            mask_pixels: maps.mask.iter().filter(|&&on| on).count(),
            mean_entropy: image_score(RankBy::Entropy, maps)?,
        })
    }
}

/// A volume's score: the per-voxel mean [`image_score`] takes over a picture, over all its
/// voxels. Each slice's score is weighted by its pixel count (the same for every slice along one
/// axis: a plain mean over slices), or for [`RankBy::MaskEntropy`] by its mask pixels; a volume
/// whose mask is empty scores its mean entropy, as an image does. 0 for no slices.
///
/// Why a mean and not a sum or a maximum: a sum would rank large volumes first whatever the
/// model's doubt, and the maximum would rank by one slice's noise; the mean keeps pictures and
/// volumes on one scale in one queue. A small uncertain lesion in a large volume is diluted by
/// the confident slices around it; the most uncertain slice ([`most_uncertain_slice`]) is
/// reported beside the score for that reason.
pub fn volume_score(by: RankBy, slices: &[SliceScore]) -> f64 {
    let weighted = |weight: &dyn Fn(&SliceScore) -> usize, value: &dyn Fn(&SliceScore) -> f64| {
        let total: usize = slices.iter().map(weight).sum();
        let sum: f64 = slices.iter().map(|s| weight(s) as f64 * value(s)).sum();
        (total > 0).then(|| sum / total as f64)
    };
    let by_pixels = |value: &dyn Fn(&SliceScore) -> f64| weighted(&|s| s.pixels, value);
    let score = match by {
        RankBy::MaskEntropy => {
            weighted(&|s| s.mask_pixels, &|s| s.score).or_else(|| by_pixels(&|s| s.mean_entropy))
        }
        _ => by_pixels(&|s| s.score),
    };
    score.unwrap_or(0.0)
}

/// Whether slice `a` is more uncertain than slice `b` under `by` (for
/// [`RankBy::MaskEntropy`], a slice with mask pixels beats one without).
pub fn more_uncertain(by: RankBy, a: &SliceScore, b: &SliceScore) -> bool {
    let counts = |s: &SliceScore| by != RankBy::MaskEntropy || s.mask_pixels > 0;
    match (counts(a), counts(b)) {
        (true, false) => true,
        (false, true) => false,
        _ => a.score > b.score,
    }
}

/// The index of the slice to show for a volume: the highest score (the first of ties), among
/// the slices with mask pixels for [`RankBy::MaskEntropy`] when there are any.
pub fn most_uncertain_slice(by: RankBy, slices: &[SliceScore]) -> Option<usize> {
    (0..slices.len()).reduce(|best, i| {
        if more_uncertain(by, &slices[i], &slices[best]) {
            i
        } else {
            best
        }
    })
}

/// Indices of `scores` from most to least informative (highest score first); ties and NaN
/// keep their input order, NaN last.
pub fn rank_order(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| {
            if scores[i].is_nan() {
                f64::NEG_INFINITY
            } else {
                scores[i]
            }
        };
        key(b).total_cmp(&key(a))
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scores_follow_their_definitions() {
        let entropy = [0.1f32, 0.5, 0.3, 0.7];
        let mi = [0.0f32, 0.2, 0.0, 0.4];
        let mask = [false, true, true, false];
        let votes = [0.0f32, 0.5, 1.0, 0.25];
        let maps = UncertaintyMaps {
            entropy: &entropy,
            mutual_information: &mi,
            mask: &mask,
            vote_fraction: &votes,
            samples: 4,
        };
        let close = |by, want: f64| {
            let got = image_score(by, &maps).unwrap();
            assert!((got - want).abs() < 1e-6, "{by}: {got} vs {want}");
        };
        close(RankBy::Entropy, 0.4);
        close(RankBy::MutualInformation, 0.15);
        close(RankBy::MaskEntropy, 0.4);
        // 4 samples: 2 of 4 foreground -> 4 of 6 pairs differ; 1 of 4 -> 3 of 6.
        close(
            RankBy::Disagreement,
            (0.0 + 4.0 / 6.0 + 0.0 + 3.0 / 6.0) / 4.0,
        );
        let short = UncertaintyMaps {
            mask: &mask[..2],
            ..maps
        };
        assert!(image_score(RankBy::Entropy, &short).is_err());
        assert_eq!(pairwise_disagreement(0.5, 1), 0.0);
        assert_eq!(
            "mask-entropy".parse::<RankBy>().unwrap(),
            RankBy::MaskEntropy
        );
        assert!("variance".parse::<RankBy>().is_err());
    }

    #[test]
    fn an_empty_mask_scores_its_whole_image_entropy() {
        let maps = UncertaintyMaps {
            entropy: &[0.2, 0.4],
            mutual_information: &[0.0, 0.0],
            mask: &[false, false],
            vote_fraction: &[0.0, 0.0],
            samples: 3,
        };
        assert!((image_score(RankBy::MaskEntropy, &maps).unwrap() - 0.3).abs() < 1e-6);
    }

    /// Entropy, mutual information, mask and vote fraction of a 4-pixel slice.
    type SliceMaps = ([f32; 4], [f32; 4], [bool; 4], [f32; 4]);

    /// Three slices of 4 pixels; the middle one has no mask.
    fn three_slices() -> [SliceMaps; 3] {
        [
            (
                [0.1, 0.5, 0.3, 0.7],
                [0.0, 0.2, 0.0, 0.4],
                [false, true, true, false],
                [0.0, 0.5, 1.0, 0.25],
            ),
            (
                [0.6, 0.6, 0.2, 0.1],
                [0.3, 0.1, 0.0, 0.0],
                [false; 4],
                [0.5, 0.25, 0.0, 0.0],
            ),
            (
                [0.05, 0.69, 0.4, 0.4],
                [0.01, 0.5, 0.2, 0.1],
                [true, true, false, true],
                [1.0, 0.5, 0.75, 0.75],
            ),
        ]
    }

    #[test]
    fn a_volume_scores_as_all_its_voxels_taken_as_one_image() {
        let slices = three_slices();
        let whole = |i: usize| -> Vec<f32> {
            slices
                .iter()
                .flat_map(|s| match i {
                    0 => s.0,
                    1 => s.1,
                    _ => s.3,
                })
                .collect()
        };
        let mask: Vec<bool> = slices.iter().flat_map(|s| s.2).collect();
        let (entropy, mi, votes) = (whole(0), whole(1), whole(2));
        let volume = UncertaintyMaps {
            entropy: &entropy,
            mutual_information: &mi,
            mask: &mask,
            vote_fraction: &votes,
            samples: 4,
        };
        for by in RankBy::ALL {
            let per_slice: Vec<SliceScore> = slices
                .iter()
                .map(|s| {
                    let maps = UncertaintyMaps {
                        entropy: &s.0,
                        mutual_information: &s.1,
                        mask: &s.2,
                        vote_fraction: &s.3,
                        samples: 4,
                    };
                    SliceScore::of(by, &maps).unwrap()
                })
                .collect();
            let want = image_score(by, &volume).unwrap();
            let got = volume_score(by, &per_slice);
            assert!((got - want).abs() < 1e-9, "{by}: {got} vs {want}");
        }
        // An empty mask everywhere: the mean entropy, as for an image.
        let empty = [false; 12];
        let blank = UncertaintyMaps {
            mask: &empty,
            ..volume
        };
        let per_slice: Vec<SliceScore> = (0..3)
            .map(|k| {
                let maps = UncertaintyMaps {
                    entropy: &entropy[k * 4..k * 4 + 4],
                    mutual_information: &mi[k * 4..k * 4 + 4],
                    mask: &empty[..4],
                    vote_fraction: &votes[k * 4..k * 4 + 4],
                    samples: 4,
                };
                SliceScore::of(RankBy::MaskEntropy, &maps).unwrap()
            })
            .collect();
        let want = image_score(RankBy::MaskEntropy, &blank).unwrap();
        assert!((volume_score(RankBy::MaskEntropy, &per_slice) - want).abs() < 1e-9);
        assert_eq!(volume_score(RankBy::Entropy, &[]), 0.0);
    }

    #[test]
    fn the_slice_shown_is_the_most_uncertain_one() {
        let slice = |score: f64, mask_pixels: usize| SliceScore {
            score,
            pixels: 4,
            mask_pixels,
            mean_entropy: score,
        };
        let slices = [slice(0.2, 1), slice(0.9, 0), slice(0.5, 2), slice(0.5, 3)];
        assert_eq!(most_uncertain_slice(RankBy::Entropy, &slices), Some(1));
        // Mask entropy: only slices with a mask compete; the first of ties wins.
        assert_eq!(most_uncertain_slice(RankBy::MaskEntropy, &slices), Some(2));
        assert_eq!(most_uncertain_slice(RankBy::Entropy, &[]), None);
    }

    proptest! {
        #[test]
        fn rank_order_is_a_descending_permutation(
            scores in proptest::collection::vec(-5.0f64..5.0, 0..30)
        ) {
            let order = rank_order(&scores);
            let mut seen = order.clone();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..scores.len()).collect::<Vec<_>>());
            prop_assert!(order.windows(2).all(|w| scores[w[0]] >= scores[w[1]]));
        }

        #[test]
        fn disagreement_counts_differing_pairs(samples in 2usize..12, on in 0usize..12) {
            let on = on.min(samples);
            let differing = on * (samples - on);
            let pairs = samples * (samples - 1) / 2;
            let want = differing as f64 / pairs as f64;
            let got = pairwise_disagreement(on as f64 / samples as f64, samples);
            prop_assert!((got - want).abs() < 1e-9);
        }
    }
}
