//! Label maps: binary masks ({0,1} or {0,255}) and multi-label volumes, as nnU-Net and MONAI write
//! them.

use std::str::FromStr;

use crate::error::VolumeError;

/// Which voxels of a label map are foreground.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LabelSelect {
    /// Every non-zero voxel (a {0,1} or {0,255} mask, or the union of all labels).
    #[default]
    AnyNonZero,
    /// Voxels equal to this label (after rounding to the nearest integer).
    Label(i64),
}

impl FromStr for LabelSelect {
    type Err = VolumeError;

    /// An integer label.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<i64>()
            .map(LabelSelect::Label)
            .map_err(|_| VolumeError::Intensity {
                reason: format!("label {s:?} is not an integer"),
            })
    }
}

impl LabelSelect {
    /// True when `value` is foreground under this selection; NaN never is.
    pub fn selects(self, value: f32) -> bool {
        match self {
            LabelSelect::AnyNonZero => value != 0.0 && !value.is_nan(),
            LabelSelect::Label(label) => {
                value.is_finite() && f64::from(value).round() == label as f64
            }
        }
    }

    /// The foreground of `values`, element-wise.
    pub fn mask(self, values: &[f32]) -> Vec<bool> {
        values.iter().map(|&v| self.selects(v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_multi_label_maps() {
        let values = [0.0, 1.0, 2.0, 255.0, f32::NAN, 2.0000002];
        assert_eq!(
            LabelSelect::AnyNonZero.mask(&values),
            vec![false, true, true, true, false, true]
        );
        assert_eq!(
            LabelSelect::Label(2).mask(&values),
            vec![false, false, true, false, false, true]
        );
        assert_eq!("3".parse::<LabelSelect>().unwrap(), LabelSelect::Label(3));
        assert!("x".parse::<LabelSelect>().is_err());
    }
}
