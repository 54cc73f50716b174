//! `medclipseg predict`: masks, overlays and uncertainty maps for unlabelled images, at their
//! original size.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use burn::tensor::TensorData;
use med_datasets::imaging::{Image8, read_bgr};
use med_datasets::preprocess::preprocess_pair;
use medclipseg_model::{McConfig, mc_predict};
use seg_metrics::{BinaryMask, Mask2d};
use serde::Serialize;

use crate::backend::{self, Inner};
use crate::settings::RunConfig;
use crate::store::{self, Provenance};
use crate::text::Prompts;
use crate::train_cmd::preprocess_config;

/// What to predict.
#[derive(Debug, Clone)]
pub struct PredictRequest {
    /// Our checkpoint.
    pub checkpoint: PathBuf,
    /// An image or a folder of images.
    pub input: PathBuf,
    /// One prompt for all images.
    pub prompt: Option<String>,
    /// Or a CSV `Image,Description`.
    pub prompts_csv: Option<PathBuf>,
    /// Output folder.
    pub out: PathBuf,
    /// Monte-Carlo samples.
    pub samples: usize,
    /// Noise seed.
    pub seed: u64,
    /// `--device`.
    pub device: String,
}

/// One line of `predictions.json`.
#[derive(Debug, Serialize)]
struct PredictionRecord {
    image: String,
    prompt: String,
    mask: String,
    overlay: String,
    uncertainty: String,
    raw: String,
    foreground_fraction: f64,
    mean_uncertainty: f64,
}

/// Runs `predict`.
pub fn run(request: &PredictRequest) -> Result<()> {
    let device = backend::device(&request.device)?;
    // Bad input is reported before the (possibly large) model is read.
    let jobs = jobs(request)?;
    if jobs.is_empty() {
        bail!("{}: no images found", request.input.display());
    }
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
    if request.samples == 0 {
        bail!("Monte-Carlo samples must be at least 1");
    }
    let mc = McConfig::new().with_samples(request.samples);
    let mut records = Vec::new();
    for (index, (path, prompt)) in jobs.iter().enumerate() {
        let image = read_bgr(path)?;
        let blank = Image8::zeros(image.width, image.height, 1);
        let (chw, _) = preprocess_pair(&image, &blank, &preprocess, None);
        let s = preprocess.size;
        let images = Tensor::<Inner, 4>::from_data(TensorData::new(chw, [1, 3, s, s]), &device);
        let encoded = prompts.encode::<Inner>(std::slice::from_ref(prompt), &device)?;
        let mut noise = crate::backend::noise(
            crate::infer::derive_seed(request.seed, 9, 0, 0),
            crate::infer::derive_seed(request.seed, 9, index as u64, 0),
            &device,
        );
        let prediction = mc_predict(
            &loaded.model,
            images,
            encoded.ids,
            encoded.attention_mask,
            &[index as u64],
            &mc,
            &mut noise,
        )
        .context("no Monte-Carlo sample")?;
        let prob = crate::infer::host_f32(prediction.mean_prob.clone().into_data())?;
        let entropy = crate::infer::host_f32(prediction.predictive_entropy.clone().into_data())?;
        records.push(write_outputs(
            request,
            path,
            prompt,
            &image,
            s,
            &prob,
            &entropy,
            &prediction,
        )?);
    }
    store::write_json(&request.out.join("predictions.json"), &records)?;
    let mut provenance = Provenance::new().with_checkpoint(&request.checkpoint)?;
    provenance.seed = Some(request.seed);
    provenance.samples = Some(request.samples);
    provenance.prompt = request.prompt.clone();
    provenance.model_config = Some(serde_json::to_value(&loaded.config)?);
    provenance.write(&request.out)?;
    eprintln!("{} images -> {}", records.len(), request.out.display());
    Ok(())
}

/// `(image, prompt)` pairs from the input and the prompt options.
fn jobs(request: &PredictRequest) -> Result<Vec<(PathBuf, String)>> {
    let images: Vec<PathBuf> = if request.input.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&request.input)
            .with_context(|| format!("{}: cannot list", request.input.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| med_datasets::imaging::has_image_extension(p))
            .collect();
        files.sort();
        files
    } else if request.input.is_file() {
        vec![request.input.clone()]
    } else {
        bail!("{}: no such file or folder", request.input.display());
    };
    match (&request.prompt, &request.prompts_csv) {
        (Some(p), _) => Ok(images.into_iter().map(|i| (i, p.clone())).collect()),
        (None, Some(csv)) => {
            let table = read_prompt_csv(csv)?;
            images
                .into_iter()
                .map(|i| {
                    let name = i
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or_default()
                        .to_string();
                    match table.get(&name) {
                        Some(p) => Ok((i, p.clone())),
                        None => bail!("{}: no prompt for image {name}", csv.display()),
                    }
                })
                .collect()
        }
        (None, None) => bail!("give a prompt: --prompt TEXT or --prompts CSV"),
    }
}

/// `Image,Description` rows of a CSV (RFC 4180 quoting, Excel's byte-order mark tolerated).
fn read_prompt_csv(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let rows = med_datasets::csv_text::parse(&text)
        .with_context(|| format!("{}: not a readable CSV", path.display()))?;
    let Some((_, header)) = rows.first() else {
        bail!("{}: empty CSV", path.display());
    };
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let (Some(image), Some(description)) = (column("Image"), column("Description")) else {
        bail!(
            "{}: the header must have Image and Description columns",
            path.display()
        );
    };
    let mut table = BTreeMap::new();
    for (line, row) in rows.iter().skip(1) {
        match (row.get(image), row.get(description)) {
            (Some(img), Some(desc)) => {
                table.insert(img.trim().to_string(), desc.clone());
            }
            _ if row.iter().all(|c| c.trim().is_empty()) => {}
            _ => bail!("{}: line {line} has too few columns", path.display()),
        }
    }
    Ok(table)
}

/// Bilinear resize of a square `s x s` map to `h x w` (half-pixel centres).
pub(crate) fn resize_map(map: &[f32], s: usize, h: usize, w: usize) -> Vec<f32> {
    let coord = |dst: usize, src: usize, out: usize| {
        let x = ((dst as f32 + 0.5) * src as f32 / out as f32 - 0.5).clamp(0.0, (src - 1) as f32);
        let i = x.floor() as usize;
        (i, (i + 1).min(src - 1), x - i as f32)
    };
    let mut out = Vec::with_capacity(h * w);
    for y in 0..h {
        let (y0, y1, fy) = coord(y, s, h);
        for x in 0..w {
            let (x0, x1, fx) = coord(x, s, w);
            let top = map[y0 * s + x0] * (1.0 - fx) + map[y0 * s + x1] * fx;
            let bottom = map[y1 * s + x0] * (1.0 - fx) + map[y1 * s + x1] * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn write_outputs(
    request: &PredictRequest,
    path: &Path,
    prompt: &str,
    image: &Image8,
    s: usize,
    prob: &[f32],
    entropy: &[f32],
    prediction: &medclipseg_model::McPrediction<Inner>,
) -> Result<PredictionRecord> {
    let (h, w) = (image.height, image.width);
    let stem = path
        .file_stem()
        .and_then(|n| n.to_str())
        .unwrap_or("image")
        .to_string();
    let mask = Mask2d::new(s, s, prob.iter().map(|&p| p > 0.5).collect())?.resize_nearest(h, w)?;
    let dir = &request.out;
    let mask_path = dir.join("masks").join(format!("{stem}.png"));
    store::write_mask_png(&mask_path, &mask)?;

    let mut rgb = seg_viz::RgbImage::new(w as u32, h as u32);
    for (i, pixel) in rgb.pixels_mut().enumerate() {
        let p = &image.data[i * 3..i * 3 + 3];
        pixel.0 = [p[2], p[1], p[0]];
    }
    let overlay = seg_viz::overlay_mask(
        &rgb,
        mask.data(),
        &seg_viz::OverlayStyle::filled([255, 64, 64]),
    )?;
    let overlay_path = dir.join("overlays").join(format!("{stem}.png"));
    seg_viz::write_png(&overlay_path, &overlay)?;
    let unc_path = dir.join("uncertainty").join(format!("{stem}.png"));
    let full_entropy = resize_map(entropy, s, h, w);
    seg_viz::write_uncertainty_png(
        &unc_path,
        &full_entropy,
        w as u32,
        h as u32,
        seg_viz::ChannelOrder::Rgb,
    )?;
    let raw_path = dir.join("raw").join(format!("{stem}.safetensors"));
    let mut sd = torch_checkpoint::StateDict::new(&raw_path);
    let host = |t: &Tensor<Inner, 3>| crate::infer::host_f32(t.clone().into_data());
    for (key, values) in [
        ("mean_prob", prob.to_vec()),
        ("predictive_entropy", entropy.to_vec()),
        ("expected_entropy", host(&prediction.expected_entropy)?),
        ("mutual_information", host(&prediction.mutual_information)?),
    ] {
        sd.insert(
            key,
            torch_checkpoint::RawTensor::from_f32(vec![s, s], &values)?,
        );
    }
    store::save_safetensors(&raw_path, &sd)?;
    let foreground = mask.data().iter().filter(|&&b| b).count() as f64 / (h * w).max(1) as f64;
    Ok(PredictionRecord {
        image: path.display().to_string(),
        prompt: prompt.to_string(),
        mask: mask_path.display().to_string(),
        overlay: overlay_path.display().to_string(),
        uncertainty: unc_path.display().to_string(),
        raw: raw_path.display().to_string(),
        foreground_fraction: foreground,
        mean_uncertainty: entropy.iter().map(|&e| e as f64).sum::<f64>()
            / entropy.len().max(1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excel_csv_utf8_with_a_byte_order_mark_is_read() {
        // Excel's "CSV UTF-8" starts with U+FEFF, which used to hide the `Image` header.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prompts.csv");
        let text = "\u{feff}Image,Description\r\na.png,\"one, small \"\"round\"\" lesion\"\r\n";
        std::fs::write(&path, text).unwrap();
        let table = read_prompt_csv(&path).unwrap();
        assert_eq!(table["a.png"], "one, small \"round\" lesion");
    }

    #[test]
    fn bilinear_resize_keeps_constants_and_interpolates() {
        assert_eq!(resize_map(&[0.5; 4], 2, 3, 5), vec![0.5; 15]);
        let up = resize_map(&[0.0, 1.0, 0.0, 1.0], 2, 2, 4);
        assert_eq!(up, vec![0.0, 0.25, 0.75, 1.0, 0.0, 0.25, 0.75, 1.0]);
    }
}
