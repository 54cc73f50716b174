//! `medclipseg predict --input VOL.nii.gz | DICOM_DIR`: segments every slice of a volume along one
//! axis with the 2-D model and writes the masks and the uncertainty as NIfTI volumes on the
//! input's grid (shape, affine, spacing, qform/sform of the input).
//!
//! Each slice is mapped to 8-bit grey with one [`IntensityMap`] whose bounds are computed over the
//! whole volume (a CT window, or percentiles), replicated to three channels and preprocessed like
//! a PNG; the mask is `mean probability > 0.5` resized back to the slice (nearest), the entropy is
//! resized bilinearly, exactly as the 2-D `predict` does.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use burn::tensor::TensorData;
use med_datasets::imaging::Image8;
use med_datasets::preprocess::preprocess_pair;
use med_volumes::{IntensityMap, OutputKind, Slice2d, Volume, is_nifti_path, nifti_stem};
use medclipseg_model::{McConfig, mc_predict};
use seg_metrics::{BinaryMask, Mask2d};
use serde::Serialize;

use crate::backend::{self, Inner};
use crate::predict_cmd::{PredictRequest, resize_map};
use crate::settings::RunConfig;
use crate::store::{self, Provenance};
use crate::text::Prompts;
use crate::train_cmd::preprocess_config;

/// Slices per forward pass.
const SLICE_BATCH: usize = 8;

/// Volume-only options of `predict`.
#[derive(Debug, Clone)]
pub struct VolumeOptions {
    /// Axis to slice along (0 = i, 1 = j, 2 = k); `None` = the last.
    pub axis: Option<usize>,
    /// Intensity mapping to 8 bits.
    pub intensity: IntensityMap,
}

/// `<out>/volume.json`.
#[derive(Debug, Serialize)]
struct VolumeRecord {
    input: String,
    prompt: String,
    shape: [usize; 3],
    spacing: [f64; 3],
    axis: usize,
    slices: usize,
    intensity: String,
    intensity_bounds: [f64; 2],
    mask: String,
    entropy: String,
    foreground_voxels: usize,
    foreground_fraction: f64,
    mean_uncertainty: f64,
}

/// True when `predict` should treat `input` as a volume: a `.nii`/`.nii.gz` file, or a folder
/// with DICOM files and no 2-D images.
pub fn is_volume_input(input: &Path, image_extensions: &[&str]) -> bool {
    if is_nifti_path(input) {
        return true;
    }
    let Ok(entries) = std::fs::read_dir(input) else {
        return false;
    };
    let files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    let is_image = |p: &PathBuf| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| image_extensions.contains(&e.to_ascii_lowercase().as_str()))
    };
    !files.iter().any(is_image) && files.iter().any(|p| has_dicm_preamble(p))
}

fn has_dicm_preamble(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|_| &head[128..] == b"DICM")
}

/// Runs `predict` on a volume.
pub fn run(request: &PredictRequest, options: &VolumeOptions) -> Result<()> {
    let Some(prompt) = request.prompt.clone() else {
        bail!("a volume needs one prompt: --prompt TEXT (--prompts CSV is for image folders)");
    };
    let volume = med_volumes::read_volume(&request.input)?;
    let axis = options.axis.unwrap_or(2);
    let slices = volume.slices(axis)?;
    let (lo, hi) = options.intensity.bounds(volume.data())?;

    let device = backend::device(&request.device)?;
    let loaded =
        store::load_checkpoint::<Inner>(&request.checkpoint, None, &device).with_context(|| {
            format!(
                "{}: cannot load the checkpoint",
                request.checkpoint.display()
            )
        })?;
    std::fs::create_dir_all(&request.out)
        .with_context(|| format!("{}: cannot create", request.out.display()))?;
    let vocab = store::resolve_vocab(None, &loaded.vocab_text, &request.out)?;
    let prompts = Prompts::for_tower(&loaded.config.text, vocab.as_deref())?;
    let run_config = loaded.run_config.clone().unwrap_or_else(RunConfig::paper);
    let preprocess = preprocess_config(&run_config, loaded.config.image_size());
    let s = preprocess.size;
    if request.samples == 0 {
        bail!("Monte-Carlo samples must be at least 1");
    }
    let mc = McConfig::new().with_samples(request.samples);

    let mut masks = Vec::with_capacity(slices.len());
    let mut entropies = Vec::with_capacity(slices.len());
    for (chunk_index, chunk) in slices.chunks(SLICE_BATCH).enumerate() {
        let mut pixels = Vec::with_capacity(chunk.len() * 3 * s * s);
        for slice in chunk {
            let image = slice_to_bgr(slice, lo, hi);
            let blank = Image8::zeros(image.width, image.height, 1);
            pixels.extend(preprocess_pair(&image, &blank, &preprocess, None).0);
        }
        let n = chunk.len();
        let images = Tensor::<Inner, 4>::from_data(TensorData::new(pixels, [n, 3, s, s]), &device);
        let encoded = prompts.encode::<Inner>(&vec![prompt.clone(); n], &device)?;
        // Host noise is keyed by slice index: the same slice gets the same samples whatever
        // the chunking.
        let mut noise = crate::backend::noise(
            crate::infer::derive_seed(request.seed, 9, 0, 1),
            crate::infer::derive_seed(request.seed, 9, chunk_index as u64, 1),
            &device,
        );
        let first = (chunk_index * SLICE_BATCH) as u64;
        let slice_keys: Vec<u64> = (first..first + n as u64).collect();
        let prediction = mc_predict(
            &loaded.model,
            images,
            encoded.ids,
            encoded.attention_mask,
            &slice_keys,
            &mc,
            &mut noise,
        )
        .context("no Monte-Carlo sample")?;
        let prob = crate::infer::host_f32(prediction.mean_prob.into_data())?;
        let entropy = crate::infer::host_f32(prediction.predictive_entropy.into_data())?;
        for (b, slice) in chunk.iter().enumerate() {
            let plane = b * s * s..(b + 1) * s * s;
            let (mask, ent) = slice_outputs(&prob[plane.clone()], &entropy[plane], s, slice)?;
            masks.push(mask);
            entropies.push(ent);
        }
    }
    let record = write_volumes(
        request,
        options,
        &volume,
        axis,
        [lo, hi],
        &prompt,
        &masks,
        &entropies,
    )?;
    store::write_json(&request.out.join("volume.json"), &record)?;
    let mut provenance = Provenance::new().with_checkpoint(&request.checkpoint)?;
    provenance.seed = Some(request.seed);
    provenance.samples = Some(request.samples);
    provenance.prompt = Some(prompt);
    provenance.model_config = Some(serde_json::to_value(&loaded.config)?);
    provenance.write(&request.out)?;
    eprintln!(
        "{} slices along axis {axis} -> {}",
        slices.len(),
        record.mask
    );
    Ok(())
}

/// A slice as the BGR image the 2-D pipeline expects: grey replicated to three channels.
fn slice_to_bgr(slice: &Slice2d, lo: f64, hi: f64) -> Image8 {
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

/// Mask (0/1) and entropy of one slice at the slice's own size.
fn slice_outputs(
    prob: &[f32],
    entropy: &[f32],
    s: usize,
    slice: &Slice2d,
) -> Result<(Slice2d, Slice2d)> {
    let (rows, cols) = (slice.rows, slice.cols);
    let mask =
        Mask2d::new(s, s, prob.iter().map(|&p| p > 0.5).collect())?.resize_nearest(rows, cols)?;
    let mask = Slice2d {
        rows,
        cols,
        data: mask
            .data()
            .iter()
            .map(|&b| f32::from(u8::from(b)))
            .collect(),
    };
    let entropy = Slice2d {
        rows,
        cols,
        data: resize_map(entropy, s, rows, cols),
    };
    Ok((mask, entropy))
}

#[allow(clippy::too_many_arguments)]
fn write_volumes(
    request: &PredictRequest,
    options: &VolumeOptions,
    volume: &Volume,
    axis: usize,
    bounds: [f64; 2],
    prompt: &str,
    masks: &[Slice2d],
    entropies: &[Slice2d],
) -> Result<VolumeRecord> {
    let name = volume_name(&request.input);
    let mask_volume = volume.from_slices(axis, masks)?;
    let entropy_volume = volume.from_slices(axis, entropies)?;
    let mask_path = request.out.join(format!("{name}.nii.gz"));
    let entropy_path = request.out.join(format!("{name}_entropy.nii.gz"));
    med_volumes::write_nifti(&mask_path, &mask_volume, OutputKind::Labels)?;
    med_volumes::write_nifti(&entropy_path, &entropy_volume, OutputKind::Float)?;
    let voxels = mask_volume.data().len();
    let foreground = mask_volume.data().iter().filter(|&&v| v > 0.0).count();
    let entropy_sum: f64 = entropy_volume.data().iter().map(|&e| f64::from(e)).sum();
    Ok(VolumeRecord {
        input: request.input.display().to_string(),
        prompt: prompt.to_string(),
        shape: volume.dims(),
        spacing: volume.spacing(),
        axis,
        slices: masks.len(),
        intensity: format!("{:?}", options.intensity),
        intensity_bounds: bounds,
        mask: mask_path.display().to_string(),
        entropy: entropy_path.display().to_string(),
        foreground_voxels: foreground,
        foreground_fraction: foreground as f64 / voxels.max(1) as f64,
        mean_uncertainty: entropy_sum / voxels.max(1) as f64,
    })
}

/// `case.nii.gz` → `case`; a DICOM folder → its name.
fn volume_name(input: &Path) -> String {
    if is_nifti_path(input) {
        nifti_stem(input)
    } else {
        input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "volume".into())
    }
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

    #[test]
    fn volume_inputs_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        assert!(is_volume_input(Path::new("scan.nii.gz"), &["png"]));
        assert!(!is_volume_input(dir.path(), &["png"]));
        let mut dicom = vec![0u8; 128];
        dicom.extend_from_slice(b"DICM....");
        std::fs::write(dir.path().join("IM0001"), &dicom).unwrap();
        assert!(is_volume_input(dir.path(), &["png"]));
        std::fs::write(dir.path().join("a.png"), b"x").unwrap();
        assert!(!is_volume_input(dir.path(), &["png"]));
        assert_eq!(volume_name(Path::new("a/case_7.nii")), "case_7");
        assert_eq!(volume_name(Path::new("a/series_3")), "series_3");
    }
}
