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

    /// How to read a prediction evaluated against this ground-truth selection: a prediction
    /// holding at most one non-zero value is a binary mask (any non-zero voxel, whatever label
    /// the ground truth is read by: a model predicts one structure); one holding several
    /// labels is a label map, in which the same label is picked.
    pub fn for_prediction(self, values: &[f32]) -> LabelSelect {
        match self {
            LabelSelect::Label(_) if holds_several_labels(values) => self,
            _ => LabelSelect::AnyNonZero,
        }
    }
}

/// Whether `values` hold two or more distinct non-zero labels (rounded to integers).
fn holds_several_labels(values: &[f32]) -> bool {
    let mut first = None;
    for &v in values.iter().filter(|v| v.is_finite() && **v != 0.0) {
        let label = f64::from(v).round();
        match first {
            None => first = Some(label),
            Some(seen) if seen != label => return true,
            Some(_) => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictions_with_one_value_are_binary_and_with_several_are_label_maps() {
        let binary = [0.0, 1.0, 1.0, 0.0];
        let one_structure = [0.0, 3.0, 3.0, 0.0];
        let labels = [0.0, 1.0, 3.0, 3.0];
        let gt = LabelSelect::Label(3);
        assert_eq!(gt.for_prediction(&binary), LabelSelect::AnyNonZero);
        assert_eq!(gt.for_prediction(&one_structure), LabelSelect::AnyNonZero);
        assert_eq!(gt.for_prediction(&labels), gt);
        assert_eq!(
            LabelSelect::AnyNonZero.for_prediction(&labels),
            LabelSelect::AnyNonZero
        );
    }

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
