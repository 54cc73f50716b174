//! Intensity mapping of CT/MR (and 16-bit) values to the 8-bit range the model was trained on.
//!
//! - [`IntensityMap::Window`]: the radiology window `CENTER,WIDTH` (e.g. CT soft tissue 40,400):
//!   `lo = center - width/2`, values map linearly from `[lo, lo + width]` to `[0, 255]`, clamped.
//! - [`IntensityMap::Percentile`]: `[p_low, p_high]` percentiles of the whole volume (default 0.5
//!   and 99.5) map to `[0, 255]`, clamped: robust to outliers, the usual choice for MR.
//! - [`IntensityMap::MinMax`]: the real range `[min, max]` of the volume to `[0, 255]`.
//!
//! The bounds are computed once per volume, so every slice of a volume uses the same mapping.

use std::str::FromStr;

use crate::error::{Result, VolumeError};

/// How raw intensities become 8-bit grey values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum IntensityMap {
    /// Radiology window: centre and width, in the volume's units (HU for CT).
    Window {
        /// Window centre (level).
        center: f64,
        /// Window width, > 0.
        width: f64,
    },
    /// Percentile normalisation over the whole volume.
    Percentile {
        /// Lower percentile in [0, 100].
        low: f64,
        /// Upper percentile in [0, 100], > `low`.
        high: f64,
    },
    /// The volume's real range.
    MinMax,
}

impl Default for IntensityMap {
    /// Percentiles 0.5 and 99.5.
    fn default() -> Self {
        IntensityMap::Percentile {
            low: 0.5,
            high: 99.5,
        }
    }
}

impl FromStr for IntensityMap {
    type Err = VolumeError;

    /// `CENTER,WIDTH` (a window), `percentile`, `percentile:LOW,HIGH` or `minmax`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| VolumeError::Intensity {
            reason: format!("{s:?}: {reason}"),
        };
        let numbers = |text: &str| -> Result<(f64, f64)> {
            let parts: Vec<f64> = text
                .split(',')
                .map(|p| p.trim().parse::<f64>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| bad("expected two numbers separated by a comma"))?;
            match parts[..] {
                [a, b] => Ok((a, b)),
                _ => Err(bad("expected two numbers separated by a comma")),
            }
        };
        let map = match s.trim() {
            "minmax" => IntensityMap::MinMax,
            "percentile" => IntensityMap::default(),
            other => match other.strip_prefix("percentile:") {
                Some(rest) => {
                    let (low, high) = numbers(rest)?;
                    IntensityMap::Percentile { low, high }
                }
                None => {
                    let (center, width) = numbers(other)?;
                    IntensityMap::Window { center, width }
                }
            },
        };
        map.check()?;
        Ok(map)
    }
}

impl IntensityMap {
    /// Fails on a non-positive or non-finite width, or percentiles outside `0 <= low < high <= 100`.
    pub fn check(&self) -> Result<()> {
        let ok = match *self {
            IntensityMap::Window { center, width } => {
                center.is_finite() && width.is_finite() && width > 0.0
            }
            IntensityMap::Percentile { low, high } => {
                (0.0..=100.0).contains(&low) && (0.0..=100.0).contains(&high) && low < high
            }
            IntensityMap::MinMax => true,
        };
        if ok {
            Ok(())
        } else {
            Err(VolumeError::Intensity {
                reason: format!(
                    "{self:?}: a window needs a finite centre and a width > 0; percentiles need 0 <= low < high <= 100"
                ),
            })
        }
    }

    /// The value range `[lo, hi]` mapped to `[0, 255]` for these `values` (non-finite values ignored).
    pub fn bounds(&self, values: &[f32]) -> Result<(f64, f64)> {
        self.check()?;
        Ok(match *self {
            IntensityMap::Window { center, width } => (center - width / 2.0, center + width / 2.0),
            IntensityMap::MinMax => {
                let finite = values.iter().filter(|v| v.is_finite());
                let lo = finite
                    .clone()
                    .fold(f64::INFINITY, |m, &v| m.min(f64::from(v)));
                let hi = finite.fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
                if lo.is_finite() { (lo, hi) } else { (0.0, 0.0) }
            }
            IntensityMap::Percentile { low, high } => {
                let mut sorted: Vec<f32> =
                    values.iter().copied().filter(|v| v.is_finite()).collect();
                sorted.sort_by(f32::total_cmp);
                (percentile(&sorted, low), percentile(&sorted, high))
            }
        })
    }

    /// Maps `values` to 8-bit grey with bounds computed from `values` themselves.
    pub fn to_u8(&self, values: &[f32]) -> Result<Vec<u8>> {
        let (lo, hi) = self.bounds(values)?;
        Ok(values.iter().map(|&v| scale_to_u8(v, lo, hi)).collect())
    }
}

/// Linear `[lo, hi] -> [0, 255]`, clamped and rounded; a flat range (`hi <= lo`) gives 0 below or
/// at `lo` and 255 above; NaN gives 0.
pub fn scale_to_u8(value: f32, lo: f64, hi: f64) -> u8 {
    let v = f64::from(value);
    if v.is_nan() {
        return 0;
    }
    if hi <= lo {
        return if v > lo { 255 } else { 0 };
    }
    ((v - lo) / (hi - lo) * 255.0).round().clamp(0.0, 255.0) as u8
}

/// numpy's default (linear) percentile of sorted values; 0 for no values.
fn percentile(sorted: &[f32], percent: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n => {
            let pos = percent / 100.0 * (n - 1) as f64;
            let (i, frac) = (pos.floor() as usize, pos - pos.floor());
            let a = f64::from(sorted[i]);
            let b = f64::from(sorted[(i + 1).min(n - 1)]);
            a + (b - a) * frac
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_window_maps_hounsfield_units() {
        let window: IntensityMap = "40,400".parse().unwrap();
        // lo = -160, hi = 240: air -1000 -> 0, water 0 -> 102, bone 1000 -> 255, 40 -> 128.
        assert_eq!(
            window.to_u8(&[-1000.0, 0.0, 40.0, 1000.0]).unwrap(),
            vec![0, 102, 128, 255]
        );
    }

    #[test]
    fn percentiles_follow_numpy() {
        let values: Vec<f32> = (0..=100).map(|v| v as f32).collect();
        let map: IntensityMap = "percentile:10,90".parse().unwrap();
        assert_eq!(map.bounds(&values).unwrap(), (10.0, 90.0));
        // np.percentile([0, 1, 2, 10], 50) = 1.5
        let map = IntensityMap::Percentile {
            low: 0.0,
            high: 50.0,
        };
        assert_eq!(map.bounds(&[10.0, 0.0, 2.0, 1.0]).unwrap(), (0.0, 1.5));
        // A 12-bit range spreads over the full 8 bits instead of coming out nearly black.
        let twelve_bit: Vec<f32> = vec![0.0, 1024.0, 2048.0, 4095.0];
        assert_eq!(
            IntensityMap::MinMax.to_u8(&twelve_bit).unwrap(),
            vec![0, 64, 128, 255]
        );
    }

    #[test]
    fn bad_specifications_are_errors() {
        for bad in [
            "40",
            "40,0",
            "40,-1",
            "a,b",
            "percentile:90,10",
            "percentile:-1,50",
        ] {
            assert!(bad.parse::<IntensityMap>().is_err(), "{bad}");
        }
        assert_eq!(
            "minmax".parse::<IntensityMap>().unwrap(),
            IntensityMap::MinMax
        );
        assert_eq!(
            "percentile".parse::<IntensityMap>().unwrap(),
            IntensityMap::default()
        );
    }

    #[test]
    fn flat_and_nan_inputs_do_not_panic() {
        assert_eq!(IntensityMap::MinMax.to_u8(&[5.0, 5.0]).unwrap(), vec![0, 0]);
        assert_eq!(
            IntensityMap::default().to_u8(&[f32::NAN, 1.0]).unwrap(),
            vec![0, 0]
        );
        assert_eq!(
            IntensityMap::default().to_u8(&[]).unwrap(),
            Vec::<u8>::new()
        );
    }
}
