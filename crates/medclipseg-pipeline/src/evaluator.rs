//! The evaluation loop: the reference test protocol (Monte-Carlo mean > 0.5, masks resized to
//! the ground truth by nearest neighbour, per-image DSC and NSD, each rounded to 4 decimals,
//! dataset mean), plus calibration numbers, and per image the mask, the uncertainty picture,
//! the raw float maps and (for the first few) a panel.
//!
//! Files of dataset `D` under prompt style `S` go to `<out>/D/`: `test_Prompt-S.csv`,
//! `seg_results/Prompt-S/`, `unc_results/Prompt-S/`, `raw/Prompt-S/`, `panels/Prompt-S/`.
//! The loop never prints: progress goes to an [`EvalObserver`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use med_datasets::{
    Batch, ChannelOrder, DataLoader, LoaderConfig, PreprocessConfig, Problem, PromptStyle,
    ReadOptions, Record, SheetKind, read_records,
};
use medclipseg_model::{McPrediction, MedClipSeg, mc_predict};
use seg_metrics::{BinaryMask, Mask2d, round4};
use serde::Serialize;

use crate::error::{PipelineError, Result};
use crate::predictor::{write_atomic, write_mask_png};
use crate::prompts::Prompts;
use crate::seeds::{STREAM_EVAL, derive_seed, noise};
use crate::validation::to_tensors;

pub use crate::eval_settings::EvalSettings;

/// The scores of one image (rounded as [`EvalSettings::rounded`] says).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageScore {
    /// Image file name (the CSV `Name`).
    pub name: String,
    /// DSC.
    pub dsc: f64,
    /// NSD at the first tolerance.
    pub nsd: f64,
}

/// One evaluated image, as the observer sees it.
pub struct ImageOutcome<'a> {
    /// Dataset name.
    pub dataset: &'a str,
    /// Prompt style.
    pub style: PromptStyle,
    /// Scores.
    pub score: &'a ImageScore,
    /// Side `S` of the model's maps.
    pub size: usize,
    /// Mean probability, `[S, S]` row-major.
    pub mean_prob: &'a [f32],
    /// Predictive entropy, `[S, S]` row-major.
    pub entropy: &'a [f32],
    /// The predicted mask at the ground truth's size.
    pub mask: &'a Mask2d,
    /// The ground truth, at its own size.
    pub truth: &'a Mask2d,
}

/// Progress and log callbacks of the [`Evaluator`]; every method does nothing by default.
pub trait EvalObserver {
    /// A row of a test sheet was skipped.
    fn sheet_problem(&mut self, _dataset: &str, _problem: &Problem) {}
    /// A dataset under a prompt style starts: `images` images follow.
    fn style_started(&mut self, _dataset: &str, _style: PromptStyle, _images: usize) {}
    /// An image was predicted, scored and written.
    fn image_scored(&mut self, _image: &ImageOutcome) {}
    /// A dataset under a prompt style is done.
    fn style_finished(&mut self, _result: &StyleResult) {}
}

impl EvalObserver for crate::train_observer::Silent {}

/// Results of one dataset under one prompt style.
#[derive(Debug, Clone, Serialize)]
pub struct StyleResult {
    /// Dataset name.
    pub dataset: String,
    /// Prompt style.
    pub style: String,
    /// Mean DSC over images.
    pub dsc: f64,
    /// Mean NSD over images (protocol and tolerance in the summary).
    pub nsd: f64,
    /// Images evaluated.
    pub n_images: usize,
    /// Expected calibration error of the mean probability (15 equal-width bins).
    pub ece: f64,
    /// Brier score of the mean probability.
    pub brier: f64,
    /// AUROC of the predictive entropy for detecting wrong pixels.
    pub uncertainty_auroc: f64,
    /// Per-image CSV.
    pub csv: PathBuf,
}

/// `summary.json` of an evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EvalSummary {
    /// Mean DSC of the first style, averaged over datasets.
    pub dsc: f64,
    /// Mean NSD of the first style, averaged over datasets.
    pub nsd: f64,
    /// Images of the first style, over datasets.
    pub n_images: usize,
    /// Mean DSC by prompt style (over datasets).
    pub dsc_by_prompt_style: BTreeMap<String, f64>,
    /// Every dataset × style.
    pub results: Vec<StyleResult>,
    /// Monte-Carlo samples per image.
    pub samples: usize,
    /// NSD protocol.
    pub nsd_protocol: String,
    /// NSD tolerance in pixels.
    pub nsd_tolerance: f64,
    /// Whether per-image scores were rounded to 4 decimals before the means.
    pub rounded_per_image: bool,
}

/// A per-image score as it enters the mean: rounded to 4 decimals like the reference's
/// `round(·, 4)` when `rounded`, and never a negative zero (it would print as `-0.0000`).
pub fn image_score(value: f64, rounded: bool) -> f64 {
    let v = if rounded { round4(value) } else { value };
    if v == 0.0 { 0.0 } else { v }
}

/// A model evaluated on test sheets.
pub struct Evaluator<B: Backend> {
    model: MedClipSeg<B>,
    prompts: Prompts,
    preprocess: PreprocessConfig,
    settings: EvalSettings,
    device: B::Device,
}

/// The datasets, styles and output folder of [`Evaluator::evaluate`].
#[derive(Debug, Clone)]
pub struct EvalPlan {
    /// Data root holding the packaged datasets.
    pub data_root: PathBuf,
    /// Dataset folders under the root.
    pub datasets: Vec<String>,
    /// Test prompt styles.
    pub styles: Vec<PromptStyle>,
    /// Output folder.
    pub out: PathBuf,
}

impl EvalPlan {
    /// One dataset under one prompt style.
    pub fn new(
        data_root: impl Into<PathBuf>,
        dataset: &str,
        style: PromptStyle,
        out: impl Into<PathBuf>,
    ) -> Self {
        Self {
            data_root: data_root.into(),
            datasets: vec![dataset.to_string()],
            styles: vec![style],
            out: out.into(),
        }
    }
}

impl<B: Backend> Evaluator<B> {
    /// An evaluator of `model` on `device`, with images preprocessed as `preprocess` says
    /// (its augmentation is ignored: test batches are never augmented). Refuses zero samples
    /// and invalid tolerances.
    pub fn new(
        model: MedClipSeg<B>,
        prompts: Prompts,
        preprocess: PreprocessConfig,
        settings: EvalSettings,
        device: B::Device,
    ) -> Result<Self> {
        if settings.samples == 0 {
            return Err(PipelineError::NoSamples);
        }
        seg_metrics::check_tolerances(&settings.metrics.tolerances)?;
        Ok(Self {
            model,
            prompts,
            preprocess,
            settings,
            device,
        })
    }

    /// Every dataset under every style of `plan` (datasets outer), then the means.
    pub fn evaluate(
        &self,
        plan: &EvalPlan,
        observer: &mut dyn EvalObserver,
    ) -> Result<EvalSummary> {
        let mut results = Vec::new();
        for dataset in &plan.datasets {
            for &style in &plan.styles {
                results.push(self.evaluate_sheet(
                    &plan.data_root,
                    dataset,
                    style,
                    &plan.out,
                    observer,
                )?);
            }
        }
        self.summarize(results)
    }

    /// The test sheet of `dataset` under `style`; files go to `<out>/<dataset>/`.
    pub fn evaluate_sheet(
        &self,
        data_root: &Path,
        dataset: &str,
        style: PromptStyle,
        out: &Path,
        observer: &mut dyn EvalObserver,
    ) -> Result<StyleResult> {
        let options = ReadOptions::default();
        let sheet = read_records(data_root, dataset, SheetKind::Test(style), options)?;
        for p in &sheet.problems {
            observer.sheet_problem(dataset, p);
        }
        if sheet.records.is_empty() {
            return Err(PipelineError::NoTestRows {
                sheet: sheet.sheet_path,
            });
        }
        self.evaluate_records(sheet.records, dataset, style, out, observer)
    }

    /// Evaluates `records` as the test set of `dataset` under `style`.
    pub fn evaluate_records(
        &self,
        records: Vec<Record>,
        dataset: &str,
        style: PromptStyle,
        out: &Path,
        observer: &mut dyn EvalObserver,
    ) -> Result<StyleResult> {
        let loader_config = LoaderConfig::eval(self.settings.batch_size);
        let loader = DataLoader::new(records, self.preprocess.clone(), loader_config)?;
        let case = CaseFiles {
            dir: out.join(dataset),
            tag: format!("Prompt-{style}"),
        };
        observer.style_started(dataset, style, loader.num_samples());
        let mut images = Vec::new();
        let mut calibration = Calibration::default();
        for (index, batch) in loader.iter_epoch(0).enumerate() {
            let batch = batch?;
            let maps = self.predict_batch(&batch, index, images.len())?;
            for i in 0..batch.len() {
                let panel = images.len() < self.settings.panels;
                let scored = self.score_case(&batch, i, &maps, &case, panel, &mut calibration)?;
                observer.image_scored(&ImageOutcome {
                    dataset,
                    style,
                    score: &scored.score,
                    size: maps.size,
                    mean_prob: maps.image(&maps.mean_prob, i),
                    entropy: maps.image(&maps.entropy, i),
                    mask: &scored.mask,
                    truth: &scored.truth,
                });
                images.push(scored.score);
            }
        }
        let csv = case.dir.join(format!("test_{}.csv", case.tag));
        write_atomic(&csv, &per_image_csv(&images)?)?;
        let n = images.len() as f64;
        let result = StyleResult {
            dataset: dataset.to_string(),
            style: style.to_string(),
            dsc: images.iter().map(|r| r.dsc).sum::<f64>() / n,
            nsd: images.iter().map(|r| r.nsd).sum::<f64>() / n,
            n_images: images.len(),
            ece: calibration.ece()?,
            brier: calibration.brier()?,
            uncertainty_auroc: calibration.auroc()?,
            csv,
        };
        observer.style_finished(&result);
        Ok(result)
    }

    /// The Monte-Carlo maps of batch `index`, whose first image is image `first` of the sheet.
    fn predict_batch(&self, batch: &Batch, index: usize, first: usize) -> Result<HostMaps> {
        let tensors = to_tensors::<B>(batch, &self.prompts, &self.device)?;
        // Host noise is keyed by each image's position in the sheet, so the numbers do not
        // depend on the batch size or the MC chunking.
        let seed = self.settings.seed;
        let mut noise = noise::<B>(
            self.settings.noise,
            derive_seed(seed, STREAM_EVAL, 0, 0),
            derive_seed(seed, STREAM_EVAL, index as u64, 0),
            &self.device,
        );
        let first = first as u64;
        let image_keys: Vec<u64> = (first..first + batch.len() as u64).collect();
        let prediction = mc_predict(
            &self.model,
            tensors.images,
            tensors.ids,
            tensors.attention_mask,
            &image_keys,
            &self.settings.mc(),
            &mut noise,
        )
        .ok_or(PipelineError::NoSamples)?;
        HostMaps::read(&prediction)
    }

    /// Scores image `i` of a batch and writes its mask, uncertainty picture, raw maps (and
    /// panel).
    fn score_case(
        &self,
        batch: &Batch,
        i: usize,
        maps: &HostMaps,
        case: &CaseFiles,
        panel: bool,
        calibration: &mut Calibration,
    ) -> Result<ScoredCase> {
        let s = maps.size;
        let prob = maps.image(&maps.mean_prob, i);
        let entropy = maps.image(&maps.entropy, i);
        let pred_small = Mask2d::new(s, s, prob.iter().map(|&p| p > 0.5).collect())?;
        let gt_path = &batch.mask_paths[i];
        let gt = seg_metrics::read_mask(gt_path, false)?;
        let pred = pred_small.resize_nearest(gt.rows(), gt.cols())?;
        let report = seg_metrics::evaluate_masks_2d(&gt, &pred, &self.settings.metrics)?;

        let gt_small = &batch.masks[i * s * s..(i + 1) * s * s];
        calibration.add(prob, entropy, gt_small);

        let names = CaseNames::of(&batch.names[i], gt_path);
        write_mask_png(&case.path("seg_results", &names.mask), &pred)?;
        let unc = case.path("unc_results", &names.mask);
        seg_viz::write_uncertainty_png(
            &unc,
            entropy,
            s as u32,
            s as u32,
            seg_viz::ChannelOrder::Rgb,
        )?;
        let raw = case.path("raw", &format!("{}.safetensors", names.stem));
        write_raw_maps(&raw, maps, i)?;
        if panel {
            let picture = PanelInput {
                chw: &batch.images[i * 3 * s * s..(i + 1) * 3 * s * s],
                gt_small,
                prediction: pred_small.data(),
                entropy,
                size: s,
            };
            let path = case.path("panels", &format!("{}.png", names.stem));
            write_panel(&path, &picture, &self.preprocess)?;
        }
        let rounded = self.settings.rounded;
        Ok(ScoredCase {
            score: ImageScore {
                name: batch.names[i].clone(),
                dsc: image_score(report.dsc, rounded),
                nsd: image_score(report.first_nsd(), rounded),
            },
            mask: pred,
            truth: gt,
        })
    }

    /// The means over datasets of the first style, the DSC by style, and the protocol.
    pub fn summarize(&self, results: Vec<StyleResult>) -> Result<EvalSummary> {
        summarize(results, &self.settings)
    }
}

fn summarize(results: Vec<StyleResult>, settings: &EvalSettings) -> Result<EvalSummary> {
    let Some(first_style) = results.first().map(|r| r.style.clone()) else {
        return Err(PipelineError::NothingEvaluated);
    };
    let mut by_style: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in &results {
        by_style.entry(r.style.clone()).or_default().push(r.dsc);
    }
    let first: Vec<&StyleResult> = results.iter().filter(|r| r.style == first_style).collect();
    let mean = |f: &dyn Fn(&StyleResult) -> f64| {
        first.iter().map(|r| f(r)).sum::<f64>() / first.len() as f64
    };
    Ok(EvalSummary {
        dsc: mean(&|r| r.dsc),
        nsd: mean(&|r| r.nsd),
        n_images: first.iter().map(|r| r.n_images).sum(),
        dsc_by_prompt_style: by_style
            .into_iter()
            .map(|(k, v)| (k, v.iter().sum::<f64>() / v.len() as f64))
            .collect(),
        results,
        samples: settings.samples,
        nsd_protocol: settings.metrics.protocol.name().to_string(),
        nsd_tolerance: settings.metrics.tolerances[0],
        rounded_per_image: settings.rounded,
    })
}

/// An image's scores and its predicted mask at the ground truth's size.
struct ScoredCase {
    score: ImageScore,
    mask: Mask2d,
    truth: Mask2d,
}

/// The output folder of one dataset and the `Prompt-<style>` tag of its subfolders.
struct CaseFiles {
    dir: PathBuf,
    tag: String,
}

impl CaseFiles {
    /// `<dir>/<kind>/<tag>/<file>`.
    fn path(&self, kind: &str, file: &str) -> PathBuf {
        self.dir.join(kind).join(&self.tag).join(file)
    }
}

/// File names of an image's outputs: the mask keeps the ground truth's stem (as the
/// reference), the raw maps and panel the image's.
struct CaseNames {
    stem: String,
    mask: String,
}

impl CaseNames {
    fn of(image_name: &str, gt_path: &Path) -> Self {
        let stem = Path::new(image_name)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("image")
            .to_string();
        let mask = gt_path
            .file_stem()
            .and_then(|s| s.to_str())
            .map_or_else(|| format!("{stem}.png"), |m| format!("{m}.png"));
        Self { stem, mask }
    }
}

/// `Name,DSC,NSD` per image, 4 decimals; the `csv` crate quotes names with commas or quotes.
fn per_image_csv(images: &[ImageScore]) -> Result<Vec<u8>> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    writer.write_record(["Name", "DSC", "NSD"])?;
    for r in images {
        let dsc = format!("{:.4}", image_score(r.dsc, true));
        let nsd = format!("{:.4}", image_score(r.nsd, true));
        writer.write_record([r.name.as_str(), &dsc, &nsd])?;
    }
    Ok(writer
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))?)
}

/// The prediction maps of a batch on the host, `[B, S, S]` each.
struct HostMaps {
    size: usize,
    mean_prob: Vec<f32>,
    entropy: Vec<f32>,
    aleatoric: Vec<f32>,
    epistemic: Vec<f32>,
}

impl HostMaps {
    fn read<B: Backend>(p: &McPrediction<B>) -> Result<Self> {
        let host = |t: &Tensor<B, 3>| {
            t.clone()
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .map_err(|e| PipelineError::ReadBack(format!("{e:?}")))
        };
        Ok(Self {
            size: p.mean_prob.dims()[1],
            mean_prob: host(&p.mean_prob)?,
            entropy: host(&p.predictive_entropy)?,
            aleatoric: host(&p.expected_entropy)?,
            epistemic: host(&p.mutual_information)?,
        })
    }

    /// Image `i`'s part of `map`, `[S, S]`.
    fn image<'a>(&self, map: &'a [f32], i: usize) -> &'a [f32] {
        let n = self.size * self.size;
        &map[i * n..(i + 1) * n]
    }
}

/// Pixels pooled for the calibration numbers.
#[derive(Default)]
struct Calibration {
    probs: Vec<f32>,
    uncertainty: Vec<f32>,
    truth: Vec<bool>,
}

impl Calibration {
    /// Adds an image: probabilities, entropies and ground truth (`> 0.5`), all `[S, S]`.
    fn add(&mut self, probs: &[f32], entropy: &[f32], gt: &[f32]) {
        self.probs.extend_from_slice(probs);
        self.uncertainty.extend_from_slice(entropy);
        self.truth.extend(gt.iter().map(|&g| g > 0.5));
    }

    fn ece(&self) -> Result<f64> {
        Ok(seg_metrics::expected_calibration_error(
            &self.probs,
            &self.truth,
            15,
        )?)
    }

    fn brier(&self) -> Result<f64> {
        Ok(seg_metrics::brier_score(&self.probs, &self.truth)?)
    }

    fn auroc(&self) -> Result<f64> {
        Ok(seg_metrics::error_detection_auroc(
            &self.probs,
            &self.uncertainty,
            &self.truth,
        )?)
    }
}

/// Mean probability, predictive entropy, aleatoric and epistemic maps as float32 safetensors.
fn write_raw_maps(path: &Path, maps: &HostMaps, i: usize) -> Result<()> {
    let images = [
        &maps.mean_prob,
        &maps.entropy,
        &maps.aleatoric,
        &maps.epistemic,
    ]
    .map(|map| maps.image(map, i));
    crate::predictor::save_raw_maps(path, [maps.size; 2], images)
}

/// What a panel shows of one image, all at the model's side `S`.
struct PanelInput<'a> {
    /// The normalised image, `[3, S, S]`.
    chw: &'a [f32],
    /// Ground truth, `[S, S]` (`> 0.5` is foreground).
    gt_small: &'a [f32],
    /// Prediction, `[S, S]`.
    prediction: &'a [bool],
    /// Predictive entropy, `[S, S]`.
    entropy: &'a [f32],
    /// `S`.
    size: usize,
}

/// Image | ground truth | prediction | uncertainty, as a PNG.
fn write_panel(path: &Path, input: &PanelInput, preprocess: &PreprocessConfig) -> Result<()> {
    let picture = denormalize(input.chw, input.size, preprocess);
    let gt_mask: Vec<bool> = input.gt_small.iter().map(|&g| g > 0.5).collect();
    let sample = seg_viz::SegmentationSample {
        image: &picture,
        ground_truth: Some(&gt_mask),
        prediction: input.prediction,
        uncertainty: Some(input.entropy),
    };
    let panels = seg_viz::segmentation_panels(&sample, 160)?;
    seg_viz::write_png(path, &panels)?;
    Ok(())
}

/// The RGB picture of a normalised `[3, S, S]` image (undoing the mean/std and the channel
/// order).
pub fn denormalize(chw: &[f32], size: usize, preprocess: &PreprocessConfig) -> seg_viz::RgbImage {
    let plane = size * size;
    let mut img = seg_viz::RgbImage::new(size as u32, size as u32);
    for (i, pixel) in img.pixels_mut().enumerate() {
        let value = |c: usize| {
            let v = chw[c * plane + i] * preprocess.std[c] + preprocess.mean[c];
            (v * 255.0).round().clamp(0.0, 255.0) as u8
        };
        let (b, g, r) = (value(0), value(1), value(2));
        pixel.0 = match preprocess.channel_order {
            ChannelOrder::Bgr => [r, g, b],
            ChannelOrder::Rgb => [b, g, r],
        };
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_scores_round_like_python_and_drop_negative_zero() {
        assert_eq!(format!("{:.4}", image_score(-0.0, true)), "0.0000");
        assert_eq!(format!("{:.4}", image_score(-0.00001, true)), "0.0000");
        assert_eq!(
            serde_json::to_string(&image_score(-0.0, false)).unwrap(),
            "0.0"
        );
        assert_eq!(image_score(0.123456, true), 0.1235);
        assert_eq!(image_score(0.123456, false), 0.123456);
        // The reference averages the rounded values: 0.33334 and 0.33334 round to 0.3333 each.
        let rounded = [0.33334, 0.33334].map(|v| image_score(v, true));
        assert_eq!(rounded.iter().sum::<f64>() / 2.0, 0.3333);
    }

    #[test]
    fn per_image_csv_quotes_names_with_commas_and_quotes() {
        let name = "case 1, \"left\".png";
        let rows = [ImageScore {
            name: name.into(),
            dsc: 0.5,
            nsd: 0.25,
        }];
        let bytes = per_image_csv(&rows).unwrap();
        let mut reader = csv::Reader::from_reader(bytes.as_slice());
        assert_eq!(reader.headers().unwrap(), vec!["Name", "DSC", "NSD"]);
        let back: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
        assert_eq!(back.len(), 1);
        assert_eq!(
            back[0].iter().collect::<Vec<_>>(),
            [name, "0.5000", "0.2500"]
        );
    }

    fn result(dataset: &str, style: &str, dsc: f64) -> StyleResult {
        StyleResult {
            dataset: dataset.into(),
            style: style.into(),
            dsc,
            nsd: dsc / 2.0,
            n_images: 2,
            ece: 0.0,
            brier: 0.0,
            uncertainty_auroc: 0.5,
            csv: PathBuf::from("x.csv"),
        }
    }

    #[test]
    fn the_summary_averages_the_first_style_over_datasets() {
        let settings = EvalSettings::reference(4);
        let summary = summarize(
            vec![
                result("A", "P1", 0.5),
                result("A", "P2", 0.1),
                result("B", "P1", 0.7),
                result("B", "P2", 0.3),
            ],
            &settings,
        )
        .unwrap();
        assert!((summary.dsc - 0.6).abs() < 1e-12);
        assert!((summary.nsd - 0.3).abs() < 1e-12);
        assert_eq!(summary.n_images, 4);
        assert!((summary.dsc_by_prompt_style["P2"] - 0.2).abs() < 1e-12);
        assert_eq!(summary.nsd_protocol, "medclipseg");
        assert!(matches!(
            summarize(Vec::new(), &settings),
            Err(PipelineError::NothingEvaluated)
        ));
    }

    #[test]
    fn case_names_keep_the_ground_truth_stem_for_masks() {
        let names = CaseNames::of("scan 1.jpg", Path::new("/d/label/scan 1_mask.png"));
        assert_eq!(names.stem, "scan 1");
        assert_eq!(names.mask, "scan 1_mask.png");
    }
}
