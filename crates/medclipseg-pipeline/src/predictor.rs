//! Image (or volume slice) + prompt → probability, mask and uncertainty at the image's size.

use std::ops::ControlFlow;
use std::path::Path;

use burn::prelude::*;
use burn::tensor::TensorData;
use med_datasets::PreprocessConfig;
use med_datasets::imaging::Image8;
use med_datasets::preprocess::preprocess_pair;
use medclipseg_model::{
    McConfig, McInputs, McProgress, MedClipSeg, MedClipSegConfig, Noise, mc_predict_observed,
};
use seg_metrics::{BinaryMask, Mask2d};

use crate::checkpoint::LoadedModel;
use crate::error::{PipelineError, Result};
use crate::prompts::Prompts;
use crate::resize::resize_map;
use crate::seeds::{NoiseSource, STREAM_PREDICT, derive_seed, noise};

/// Noise seeds of one batch: `variant` keeps images and volume slices apart, `batch` seeds the
/// device generator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoiseStream {
    pub variant: u64,
    pub batch: u64,
}

/// The maps of one image, row-major `height x width`, at the image's own size.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Mean foreground probability of the Monte-Carlo samples, resized bilinearly.
    pub probability: Vec<f32>,
    /// `probability > 0.5` (thresholded after the resize, so edges follow the probability).
    pub mask: Mask2d,
    /// Predictive entropy (nats, at most ln 2): the reference's uncertainty map.
    pub entropy: Vec<f32>,
    /// Expected entropy of the samples (aleatoric part).
    pub aleatoric: Vec<f32>,
    /// Mutual information, entropy − aleatoric (epistemic part).
    pub epistemic: Vec<f32>,
    /// Fraction of the Monte-Carlo samples voting foreground (probability above 0.5).
    pub vote_fraction: Vec<f32>,
    /// Monte-Carlo samples behind the maps.
    pub samples: usize,
}

impl Prediction {
    /// Share of foreground pixels.
    pub fn foreground_fraction(&self) -> f64 {
        let on = self.mask.data().iter().filter(|&&b| b).count();
        on as f64 / self.mask.data().len().max(1) as f64
    }

    /// Mean predictive entropy.
    pub fn mean_entropy(&self) -> f64 {
        self.entropy.iter().map(|&e| f64::from(e)).sum::<f64>() / self.entropy.len().max(1) as f64
    }

    /// The mask at a calibrated threshold instead of 0.5: foreground where the probability is
    /// `≥ threshold` (the rule of [`seg_metrics::conformal`]).
    pub fn apply_threshold(&mut self, threshold: f32) -> Result<()> {
        let mask = seg_metrics::conformal::threshold_mask(&self.probability, threshold);
        self.mask = Mask2d::new(self.height, self.width, mask)?;
        Ok(())
    }

    /// The uncertain band between two calibrated thresholds: `low ≤ probability < high`
    /// ([`seg_metrics::conformal::band_mask`]).
    pub fn band_mask(&self, low: f32, high: f32) -> Result<Mask2d> {
        let band = seg_metrics::conformal::band_mask(&self.probability, low, high);
        Ok(Mask2d::new(self.height, self.width, band)?)
    }

    /// The maps the annotation-queue scores read ([`seg_metrics::ranking`]).
    pub fn uncertainty_maps(&self) -> seg_metrics::ranking::UncertaintyMaps<'_> {
        seg_metrics::ranking::UncertaintyMaps {
            entropy: &self.entropy,
            mutual_information: &self.epistemic,
            mask: self.mask.data(),
            vote_fraction: &self.vote_fraction,
            samples: self.samples,
        }
    }

    /// Writes the mask as a 0/255 8-bit PNG, atomically (a temporary sibling renamed).
    pub fn write_mask_png(&self, path: impl AsRef<Path>) -> Result<()> {
        write_mask_png(path.as_ref(), &self.mask)
    }
}

/// Writes a binary mask as a 0/255 8-bit PNG, atomically.
pub fn write_mask_png(path: &Path, mask: &Mask2d) -> Result<()> {
    let pixels: Vec<u8> = mask
        .data()
        .iter()
        .map(|&b| if b { 255 } else { 0 })
        .collect();
    let gray = image::GrayImage::from_raw(mask.cols() as u32, mask.rows() as u32, pixels)
        .ok_or_else(|| PipelineError::BadInput("mask buffer does not match its size".into()))?;
    let mut bytes = Vec::new();
    image::DynamicImage::ImageLuma8(gray)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| PipelineError::Write {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
    write_atomic(path, &bytes)
}

/// Writes the four per-pixel maps of a prediction (`mean_prob`, `predictive_entropy`,
/// `expected_entropy`, `mutual_information`), each `[rows, cols]`, as float32 safetensors,
/// atomically (the folder is created).
pub(crate) fn save_raw_maps(
    path: &Path,
    [rows, cols]: [usize; 2],
    [probability, entropy, aleatoric, epistemic]: [&[f32]; 4],
) -> Result<()> {
    let mut sd = torch_checkpoint::StateDict::new(path);
    for (key, values) in [
        ("mean_prob", probability),
        ("predictive_entropy", entropy),
        ("expected_entropy", aleatoric),
        ("mutual_information", epistemic),
    ] {
        sd.insert(
            key,
            torch_checkpoint::RawTensor::from_f32(vec![rows, cols], values)?,
        );
    }
    torch_checkpoint::save_safetensors(path, &sd)?;
    Ok(())
}

/// Writes `bytes` with [`atomic_io::write_atomic`] (temporary sibling, fsync, rename), creating
/// the folder first: readers never see half a file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let failed = |source| PipelineError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    atomic_io::write_atomic(path, bytes).map_err(|e| failed(e.into()))
}

/// A model ready to predict: checkpoint, tokenizer, preprocessing and Monte-Carlo settings.
pub struct Predictor<B: Backend> {
    model: MedClipSeg<B>,
    config: MedClipSegConfig,
    prompts: Prompts,
    preprocess: PreprocessConfig,
    mc: McConfig,
    seed: u64,
    noise: NoiseSource,
    device: B::Device,
}

impl<B: Backend> Predictor<B> {
    /// Loads one of our checkpoints (config and vocabulary inside) onto `device`, with the
    /// reference's test settings: 30 samples, host noise, seed 666.
    pub fn load(path: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        Self::new(LoadedModel::load(path, device)?, device)
    }

    /// A predictor for a loaded model; the tokenizer uses the stored vocabulary (replace it
    /// with [`Predictor::with_prompts`]).
    pub fn new(loaded: LoadedModel<B>, device: &B::Device) -> Result<Self> {
        let preprocess = loaded.inference_preprocess();
        let prompts = match &loaded.config.text {
            clip_encoders::TextConfig::Bert(_) if loaded.vocabulary.is_none() => None,
            text => Some(Prompts::with_vocabulary(text, loaded.vocabulary.as_ref())?),
        };
        let prompts = prompts.ok_or(PipelineError::MissingVocabulary)?;
        Ok(Self {
            model: loaded.model,
            config: loaded.config,
            prompts,
            preprocess,
            mc: McConfig::new(),
            seed: 666,
            noise: NoiseSource::Host,
            device: device.clone(),
        })
    }

    /// Uses this tokenizer (e.g. a vocabulary file for a checkpoint that stores none).
    pub fn with_prompts(mut self, prompts: Prompts) -> Self {
        self.prompts = prompts;
        self
    }

    /// Monte-Carlo samples per image (0 makes every prediction an error).
    pub fn with_samples(mut self, samples: usize) -> Self {
        self.mc.samples = samples;
        self
    }

    /// Seed of the adapters' noise.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Where the noise is drawn.
    pub fn with_noise(mut self, noise: NoiseSource) -> Self {
        self.noise = noise;
        self
    }

    /// All Monte-Carlo settings at once (chunking, the reference's discarded first pass).
    pub fn with_mc_config(mut self, mc: McConfig) -> Self {
        self.mc = mc;
        self
    }

    /// The model.
    pub fn model(&self) -> &MedClipSeg<B> {
        &self.model
    }

    /// The length of `prompt` in tokens and how many the text tower is given (a longer prompt
    /// is cut: say so to the user).
    pub fn prompt_length(&self, prompt: &str) -> Result<crate::prompts::PromptLength> {
        self.prompts.length(prompt)
    }

    /// The model's config.
    pub fn config(&self) -> &MedClipSegConfig {
        &self.config
    }

    /// The preprocessing applied to every image.
    pub fn preprocess(&self) -> &PreprocessConfig {
        &self.preprocess
    }

    /// Predicts one BGR image (as [`med_datasets::imaging::read_bgr`] reads it).
    pub fn predict_image(&self, image: &Image8, prompt: &str) -> Result<Prediction> {
        self.predict_image_keyed(image, prompt, 0)
    }

    /// [`Predictor::predict_image`] with the image's noise key: images of one run with
    /// different keys get independent noise, the same key the same noise.
    pub fn predict_image_keyed(
        &self,
        image: &Image8,
        prompt: &str,
        key: u64,
    ) -> Result<Prediction> {
        self.predict_image_observed(image, prompt, key, &mut |_| ControlFlow::Continue(()))
    }

    /// [`Predictor::predict_image_keyed`] that reports after every chunk of Monte-Carlo samples;
    /// `on_chunk` returning `ControlFlow::Break` stops the prediction with
    /// [`PipelineError::Cancelled`].
    pub fn predict_image_observed(
        &self,
        image: &Image8,
        prompt: &str,
        key: u64,
        on_chunk: &mut dyn FnMut(McProgress) -> ControlFlow<()>,
    ) -> Result<Prediction> {
        let stream = NoiseStream {
            variant: 0,
            batch: key,
        };
        let mut out = self.predict_batch(
            std::slice::from_ref(image),
            prompt,
            &[key],
            stream,
            on_chunk,
        )?;
        Ok(out.remove(0))
    }

    /// Monte-Carlo samples per image.
    pub fn samples(&self) -> usize {
        self.mc.samples
    }

    /// Seed of the adapters' noise.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Sets the Monte-Carlo samples per image in place (a server changes it per request).
    pub fn set_samples(&mut self, samples: usize) {
        self.mc.samples = samples;
    }

    /// Sets the noise seed in place.
    pub fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }

    /// One forward batch of images sharing a prompt, each keyed for its noise.
    pub(crate) fn predict_batch(
        &self,
        images: &[Image8],
        prompt: &str,
        keys: &[u64],
        stream: NoiseStream,
        on_chunk: &mut dyn FnMut(McProgress) -> ControlFlow<()>,
    ) -> Result<Vec<Prediction>> {
        let s = self.preprocess.size;
        let n = images.len();
        let mut pixels = Vec::with_capacity(n * 3 * s * s);
        for image in images {
            check_image(image)?;
            let blank = Image8::zeros(image.width, image.height, 1);
            pixels.extend(preprocess_pair(image, &blank, &self.preprocess, None).0);
        }
        let input = Tensor::<B, 4>::from_data(TensorData::new(pixels, [n, 3, s, s]), &self.device);
        let encoded = self
            .prompts
            .encode::<B>(&vec![prompt.to_string(); n], &self.device)?;
        let mut noise = self.noise_for(stream);
        if self.mc.samples == 0 {
            return Err(PipelineError::NoSamples);
        }
        let inputs = McInputs {
            images: input,
            ids: encoded.ids,
            attention_mask: encoded.attention_mask,
        };
        let prediction =
            mc_predict_observed(&self.model, inputs, keys, &self.mc, &mut noise, on_chunk)
                .ok_or(PipelineError::Cancelled)?;
        let prob = host_f32(prediction.mean_prob.into_data())?;
        let entropy = host_f32(prediction.predictive_entropy.into_data())?;
        let aleatoric = host_f32(prediction.expected_entropy.into_data())?;
        let epistemic = host_f32(prediction.mutual_information.into_data())?;
        let votes = host_f32(prediction.vote_fraction.into_data())?;
        let samples = prediction.samples;
        images
            .iter()
            .enumerate()
            .map(|(b, image)| {
                let plane = b * s * s..(b + 1) * s * s;
                let (h, w) = (image.height, image.width);
                let probability = resize_map(&prob[plane.clone()], s, h, w);
                let mask = Mask2d::new(h, w, probability.iter().map(|&p| p > 0.5).collect())?;
                Ok(Prediction {
                    width: w,
                    height: h,
                    probability,
                    mask,
                    entropy: resize_map(&entropy[plane.clone()], s, h, w),
                    aleatoric: resize_map(&aleatoric[plane.clone()], s, h, w),
                    epistemic: resize_map(&epistemic[plane.clone()], s, h, w),
                    vote_fraction: resize_map(&votes[plane], s, h, w),
                    samples,
                })
            })
            .collect()
    }

    /// Host streams keyed by the caller's image keys, or the device generator seeded per batch.
    fn noise_for(&self, stream: NoiseStream) -> Noise<B> {
        let run_seed = derive_seed(self.seed, STREAM_PREDICT, 0, stream.variant);
        let batch_seed = derive_seed(self.seed, STREAM_PREDICT, stream.batch, stream.variant);
        noise(self.noise, run_seed, batch_seed, &self.device)
    }
}

fn check_image(image: &Image8) -> Result<()> {
    if image.channels != 3 || image.width == 0 || image.height == 0 {
        return Err(PipelineError::BadInput(format!(
            "the image is {}x{} with {} channels; the model takes a non-empty 3-channel (BGR) image",
            image.width, image.height, image.channels
        )));
    }
    Ok(())
}

/// A tensor's values on the host as `f32`.
fn host_f32(data: TensorData) -> Result<Vec<f32>> {
    data.convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| PipelineError::ReadBack(format!("{e:?}")))
}
