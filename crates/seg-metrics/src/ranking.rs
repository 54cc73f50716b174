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
