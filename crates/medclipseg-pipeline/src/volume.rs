//! Volumes through the 2-D model: every slice along one axis, mapped to 8-bit grey with bounds
//! computed over the whole volume (a CT window, or percentiles), replicated to three channels
//! and predicted like an image; the maps come back on the volume's grid.

use std::ops::ControlFlow;

use burn::prelude::*;
use med_datasets::imaging::Image8;
use med_volumes::{IntensityMap, Slice2d, Volume};
use medclipseg_model::McProgress;
use seg_metrics::BinaryMask;

use crate::error::Result;
use crate::predictor::{NoiseStream, Prediction, Predictor};

/// Slices per forward pass.
const SLICE_BATCH: usize = 8;

/// The maps of a volume, each on the input's grid (shape, affine, spacing).
#[derive(Debug, Clone)]
pub struct VolumePrediction {
    /// 0/1 foreground (mean probability > 0.5 after the resize to the slice).
    pub mask: Volume,
    /// Mean foreground probability.
    pub probability: Volume,
    /// Predictive entropy.
    pub entropy: Volume,
    /// Expected entropy of the samples (aleatoric part).
    pub aleatoric: Volume,
    /// Mutual information (epistemic part).
    pub epistemic: Volume,
    /// The axis sliced along.
    pub axis: usize,
    /// Number of slices.
    pub slices: usize,
    /// Intensities mapped to 0 and 255.
    pub intensity_bounds: [f64; 2],
}

impl VolumePrediction {
    /// Re-thresholds the mask at a calibrated threshold: `probability ≥ threshold` (as
    /// [`crate::Prediction::apply_threshold`] does for a picture).
    pub fn apply_threshold(&mut self, threshold: f32) -> Result<()> {
        let mask = seg_metrics::conformal::threshold_mask(self.probability.data(), threshold);
        self.mask = self.probability.same_grid(zero_one(mask))?;
        Ok(())
    }

    /// The uncertain band between two calibrated thresholds, `low ≤ probability < high`, as a
    /// 0/1 volume on the input's grid.
    pub fn band_mask(&self, low: f32, high: f32) -> Result<Volume> {
        let band = seg_metrics::conformal::band_mask(self.probability.data(), low, high);
        Ok(self.probability.same_grid(zero_one(band))?)
    }
}

fn zero_one(mask: Vec<bool>) -> Vec<f32> {
    mask.into_iter().map(|b| f32::from(u8::from(b))).collect()
}

impl<B: Backend> Predictor<B> {
    /// Predicts every slice of `volume` along `axis` (0, 1 or 2) with one prompt.
    ///
    /// Host noise is keyed by slice index: a slice gets the same samples whatever the chunking.
    pub fn predict_volume(
        &self,
        volume: &Volume,
        prompt: &str,
        axis: usize,
        intensity: &IntensityMap,
    ) -> Result<VolumePrediction> {
        self.predict_volume_observed(volume, prompt, axis, intensity, &mut |_| {
            ControlFlow::Continue(())
        })
    }

    /// [`Predictor::predict_volume`] that reports after every chunk of Monte-Carlo samples of
    /// every batch of slices (`done`/`total` count sample passes over all slices);
    /// `ControlFlow::Break` stops it with [`crate::PipelineError::Cancelled`].
    pub fn predict_volume_observed(
        &self,
        volume: &Volume,
        prompt: &str,
        axis: usize,
        intensity: &IntensityMap,
        on_chunk: &mut dyn FnMut(McProgress) -> ControlFlow<()>,
    ) -> Result<VolumePrediction> {
        let (lo, hi) = intensity.bounds(volume.data())?;
        let image = |_: usize, slice: &Slice2d| slice_to_bgr(slice, lo, hi);
        let mut prediction =
            self.predict_slices_observed(volume, prompt, axis, &image, on_chunk)?;
        prediction.intensity_bounds = [lo, hi];
        Ok(prediction)
    }

    /// Predicts every slice of `volume` along `axis`, each turned into the model's BGR image by
    /// `image(index, slice)` (colour volumes bring their own pixels). `intensity_bounds` of the
    /// result is `[0, 255]`.
    pub fn predict_slices(
        &self,
        volume: &Volume,
        prompt: &str,
        axis: usize,
        image: &dyn Fn(usize, &Slice2d) -> Image8,
    ) -> Result<VolumePrediction> {
        self.predict_slices_observed(volume, prompt, axis, image, &mut |_| {
            ControlFlow::Continue(())
        })
    }

    /// [`Predictor::predict_slices`] with progress per Monte-Carlo chunk, as
    /// [`Predictor::predict_volume_observed`].
    pub fn predict_slices_observed(
        &self,
        volume: &Volume,
        prompt: &str,
        axis: usize,
        image: &dyn Fn(usize, &Slice2d) -> Image8,
        on_chunk: &mut dyn FnMut(McProgress) -> ControlFlow<()>,
    ) -> Result<VolumePrediction> {
        let mut predictions = Vec::new();
        let slices = self.visit_slice_predictions(
            volume,
            prompt,
            axis,
            image,
            on_chunk,
            &mut |_, _, prediction| {
                predictions.push(prediction);
                Ok(())
            },
        )?;
        let assemble = |map: &dyn Fn(&Prediction) -> Vec<f32>| -> Result<Volume> {
            let planes: Vec<Slice2d> = predictions
                .iter()
                .map(|p| Slice2d {
                    rows: p.height,
                    cols: p.width,
                    data: map(p),
                })
                .collect();
            Ok(volume.from_slices(axis, &planes)?)
        };
        Ok(VolumePrediction {
            mask: assemble(&|p| {
                p.mask
                    .data()
                    .iter()
                    .map(|&b| f32::from(u8::from(b)))
                    .collect()
            })?,
            probability: assemble(&|p| p.probability.clone())?,
            entropy: assemble(&|p| p.entropy.clone())?,
            aleatoric: assemble(&|p| p.aleatoric.clone())?,
            epistemic: assemble(&|p| p.epistemic.clone())?,
            axis,
            slices,
            intensity_bounds: [0.0, 255.0],
        })
    }

    /// Predicts the slices of `volume` along `axis` in batches and hands each one, in order, to
    /// `each(index, image, prediction)` without keeping it (a caller that needs one number per
    /// slice holds one slice at a time, not the volume's maps). Noise, progress and cancel as
    /// [`Predictor::predict_slices_observed`]; returns the number of slices.
    pub fn visit_slice_predictions(
        &self,
        volume: &Volume,
        prompt: &str,
        axis: usize,
        image: &dyn Fn(usize, &Slice2d) -> Image8,
        on_chunk: &mut dyn FnMut(McProgress) -> ControlFlow<()>,
        each: &mut dyn FnMut(usize, Image8, Prediction) -> Result<()>,
    ) -> Result<usize> {
        let slices = volume.slices(axis)?;
        let batches = slices.len().div_ceil(SLICE_BATCH);
        let per_batch = self.samples();
        for (chunk_index, chunk) in slices.chunks(SLICE_BATCH).enumerate() {
            let first = chunk_index * SLICE_BATCH;
            let images: Vec<Image8> = chunk
                .iter()
                .enumerate()
                .map(|(i, s)| image(first + i, s))
                .collect();
            let keys: Vec<u64> = (first as u64..(first + chunk.len()) as u64).collect();
            let stream = NoiseStream {
                variant: 1,
                batch: chunk_index as u64,
            };
            let mut overall = |p: McProgress| {
                on_chunk(McProgress {
                    done: chunk_index * per_batch + p.done,
                    total: batches * per_batch,
                })
            };
            let predictions = self.predict_batch(&images, prompt, &keys, stream, &mut overall)?;
            for (i, (image, prediction)) in images.into_iter().zip(predictions).enumerate() {
                each(first + i, image, prediction)?;
            }
        }
        Ok(slices.len())
    }
}

/// A slice as the BGR image the 2-D pipeline expects: grey replicated to three channels.
pub fn slice_to_bgr(slice: &Slice2d, lo: f64, hi: f64) -> Image8 {
    let data = slice
        .data
        .iter()
        .flat_map(|&v| [med_volumes::scale_to_u8(v, lo, hi); 3])
        .collect();
    Image8 {
        width: slice.cols,
        height: slice.rows,
        channels: 3,
        data,
    }
}

/// The 3-D scores of a predicted label volume against its ground truth.
#[derive(Debug, Clone)]
pub struct VolumeScore {
    /// DSC, NSD, HD95 and ASSD in the ground truth's voxel sizes.
    pub report: seg_metrics::ImageReport,
    /// The prediction's voxel sizes when they differ from the ground truth's (the ground
    /// truth's are used): `(prediction, ground truth)`, each `[x, y, z]`.
    pub spacing_mismatch: Option<([f64; 3], [f64; 3])>,
}

/// 3-D DSC / NSD / HD95 / ASSD of two NIfTI label volumes on the same grid, with the ground
/// truth's header spacing. `label` picks the structure in the ground truth (and in a
/// multi-label prediction); `None` takes any non-zero voxel.
pub fn volume_metrics(
    pred: &std::path::Path,
    gt: &std::path::Path,
    label: Option<i64>,
    request: &seg_metrics::MetricsRequest,
) -> Result<VolumeScore> {
    for path in [pred, gt] {
        if !med_volumes::is_nifti_path(path) && !med_volumes::is_volume_input(path) {
            return Err(crate::PipelineError::BadInput(format!(
                "{}: --pred and --gt must both be volumes (NIfTI, DICOM) when one is",
                path.display()
            )));
        }
    }
    let (p, g) = med_volumes::read_label_pair(pred, gt, label_select(label))?;
    score_label_pair(p, g, request)
}

/// [`volume_metrics`] of a prediction in memory (`mask`, on the grid of the volume read from
/// `input`) against the label volume `gt`: the same scores as after writing the mask as NIfTI
/// and reading it back.
pub fn score_volume_mask(
    mask: &Volume,
    input: &std::path::Path,
    gt: &std::path::Path,
    label: Option<i64>,
    request: &seg_metrics::MetricsRequest,
) -> Result<VolumeScore> {
    let select = label_select(label);
    let p = med_volumes::LabelVolume {
        dims: mask.dims(),
        spacing: mask.spacing(),
        mask: select.for_prediction(mask.data()).mask(mask.data()),
    };
    let g = med_volumes::read_label_volume(gt, select)?;
    if p.dims != g.dims {
        return Err(med_volumes::VolumeError::ShapeMismatch {
            pred_path: input.to_path_buf(),
            pred: p.dims,
            gt_path: gt.to_path_buf(),
            gt: g.dims,
        }
        .into());
    }
    score_label_pair(p, g, request)
}

fn label_select(label: Option<i64>) -> med_volumes::LabelSelect {
    label.map_or(
        med_volumes::LabelSelect::AnyNonZero,
        med_volumes::LabelSelect::Label,
    )
}

/// The scores of a prediction `p` against the ground truth `g`, in the ground truth's spacing.
fn score_label_pair(
    p: med_volumes::LabelVolume,
    g: med_volumes::LabelVolume,
    request: &seg_metrics::MetricsRequest,
) -> Result<VolumeScore> {
    let to_mask = |v: med_volumes::LabelVolume| {
        // NIfTI stores i fastest: that is (depth, rows, cols) = (k, j, i) in seg-metrics' order.
        let [nx, ny, nz] = v.dims;
        seg_metrics::Mask3d::new(nz, ny, nx, v.mask)
    };
    let [sx, sy, sz] = g.spacing;
    let differs = p
        .spacing
        .iter()
        .zip(g.spacing)
        .any(|(a, b)| (a - b).abs() > 1e-4 * b);
    let spacing_mismatch = differs.then_some((p.spacing, g.spacing));
    let report = seg_metrics::evaluate_masks_3d(
        &to_mask(g)?,
        &to_mask(p)?,
        request.protocol,
        [sz, sy, sx],
        &request.tolerances,
    )?;
    Ok(VolumeScore {
        report,
        spacing_mismatch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_become_grey_bgr_with_the_volume_bounds() {
        let slice = Slice2d {
            rows: 1,
            cols: 3,
            data: vec![-1000.0, 40.0, 500.0],
        };
        let image = slice_to_bgr(&slice, -160.0, 240.0);
        assert_eq!((image.width, image.height, image.channels), (3, 1, 3));
        assert_eq!(image.data, vec![0, 0, 0, 128, 128, 128, 255, 255, 255]);
    }
}
