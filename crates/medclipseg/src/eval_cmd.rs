//! `medclipseg eval`: the reference test protocol (Monte-Carlo mean > 0.5, masks resized to the
//! ground truth by nearest neighbour, per-image DSC and NSD at `test.nsd_tolerance` px, each
//! rounded to 4 decimals, dataset mean), plus calibration numbers, uncertainty pictures and raw
//! float maps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use med_datasets::{
    Batch, DataLoader, LoaderConfig, PreprocessConfig, PromptStyle, ReadOptions, SheetKind,
    read_records,
};
use medclipseg_model::{McConfig, McPrediction, MedClipSeg, mc_predict};
use seg_metrics::{BinaryMask, Mask2d, MetricsRequest, Protocol, round4};
use serde::Serialize;
use torch_checkpoint::{RawTensor, StateDict};

use crate::backend::{self, Inner};
use crate::infer::{self, derive_seed};
use crate::report::denormalize;
use crate::settings::RunConfig;
use crate::store::{self, Provenance};
use crate::text::Prompts;
use crate::train_cmd::{preprocess_config, progress_bar};

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalRequest {
    /// A checkpoint of ours, or a reference state dict with `model_config`.
    pub checkpoint: PathBuf,
    /// Model config for checkpoints that do not carry one (preset name or file).
    pub model_config: Option<String>,
    /// BERT vocabulary, when the checkpoint does not carry one.
    pub tokenizer: Option<PathBuf>,
    /// Data root.
    pub data_root: PathBuf,
    /// Datasets (folders under the root).
    pub datasets: Vec<String>,
    /// Test prompt styles.
    pub styles: Vec<PromptStyle>,
    /// Monte-Carlo samples (`None`: the run config's, else 30).
    pub samples: Option<usize>,
    /// NSD protocol (the reference's is [`Protocol::MedClipSeg`]).
    pub protocol: Protocol,
    /// NSD tolerance in pixels (`None`: the run config's `test.nsd_tolerance`).
    pub tolerance: Option<f64>,
    /// Images per network call group.
    pub batch_size: usize,
    /// Seed of the Monte-Carlo noise.
    pub seed: u64,
    /// Output folder.
    pub out: PathBuf,
    /// `--device`.
    pub device: String,
    /// Panels (image | GT | prediction | uncertainty) written per dataset and style.
    pub panels: usize,
    /// Hide progress bars.
    pub quiet: bool,
}

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

/// The `--protocol` name of a protocol (recorded in the summary).
fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::MedClipSeg => "medclipseg",
        Protocol::DeepMind => "deepmind",
        Protocol::Monai => "monai",
    }
}

/// A run folder stands for its `latest.safetensors`, or `best.safetensors` when the run's
/// `test.use_latest` is false (the reference's `TEST.USE_LATEST`); a file is used as given.
pub fn resolve_checkpoint(path: &Path) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let config_path = path.join("config.toml");
    let use_latest = if config_path.is_file() {
        RunConfig::from_file(&config_path)?.test.use_latest
    } else {
        RunConfig::paper().test.use_latest
    };
    let file = path.join(if use_latest {
        "latest.safetensors"
    } else {
        "best.safetensors"
    });
    if !file.is_file() {
        bail!(
            "{}: the run folder has no {} (test.use_latest = {use_latest})",
            path.display(),
            file.file_name().and_then(|n| n.to_str()).unwrap_or("")
        );
    }
    Ok(file)
}

/// A per-image score as it enters the mean: rounded to 4 decimals like the reference's
/// `round(·, 4)` when `rounded`, and never a negative zero (it would print as `-0.0000`).
pub fn image_score(value: f64, rounded: bool) -> f64 {
    let v = if rounded { round4(value) } else { value };
    if v == 0.0 { 0.0 } else { v }
}

/// Runs the evaluation and writes its files under `request.out`.
pub fn run(request: &EvalRequest) -> Result<EvalSummary> {
    let device = backend::device(&request.device)?;
    let checkpoint = resolve_checkpoint(&request.checkpoint)?;
    let model_config = match &request.model_config {
        Some(spec) => Some(crate::settings::preset_or_file(spec)?),
        None => None,
    };
    let loaded = store::load_checkpoint::<Inner>(&checkpoint, model_config, &device)?;
    std::fs::create_dir_all(&request.out)
        .with_context(|| format!("{}: cannot create", request.out.display()))?;
    let vocab = store::resolve_vocab(request.tokenizer.clone(), &loaded.vocab_text, &request.out)?;
    let prompts = Prompts::for_tower(&loaded.config.text, vocab.as_deref())?;
    let run_config = loaded.run_config.clone().unwrap_or_else(RunConfig::paper);
    let preprocess = preprocess_config(&run_config, loaded.config.image_size());
    let samples = request.samples.unwrap_or(run_config.test.num_samples);
    if samples == 0 {
        bail!("Monte-Carlo samples must be at least 1");
    }
    let mut metrics = MetricsRequest::new(request.protocol);
    metrics.tolerances = vec![request.tolerance.unwrap_or(run_config.test.nsd_tolerance)];
    seg_metrics::check_tolerances(&metrics.tolerances)?;
    let scoring = Scoring {
        metrics,
        rounded: run_config.test.round_scores,
    };
    let mc = McConfig::new()
        .with_samples(samples)
        .with_discard_first_pass(run_config.test.discard_first_pass)
        .with_max_batch(run_config.test.max_batch);

    let mut results = Vec::new();
    for dataset in &request.datasets {
        for &style in &request.styles {
            let ctx = EvalContext {
                model: &loaded.model,
                prompts: &prompts,
                preprocess: &preprocess,
                mc: &mc,
                scoring: &scoring,
                device: &device,
                request,
            };
            results.push(evaluate(&ctx, dataset, style)?);
        }
    }
    let summary = summarize(results, samples, &scoring)?;
    store::write_json(&request.out.join("summary.json"), &summary)?;
    let mut provenance = Provenance::new().with_checkpoint(&checkpoint)?;
    provenance.seed = Some(request.seed);
    provenance.samples = Some(samples);
    provenance.model_config = Some(serde_json::to_value(&loaded.config)?);
    provenance.write(&request.out)?;
    Ok(summary)
}

struct EvalContext<'a> {
    model: &'a MedClipSeg<Inner>,
    prompts: &'a Prompts,
    preprocess: &'a PreprocessConfig,
    mc: &'a McConfig,
    scoring: &'a Scoring,
    device: &'a backend::Device,
    request: &'a EvalRequest,
}

/// How images are scored and averaged.
struct Scoring {
    metrics: MetricsRequest,
    /// Round per-image scores to 4 decimals before the mean (the reference).
    rounded: bool,
}

/// Per-image numbers.
struct ImageResult {
    name: String,
    dsc: f64,
    nsd: f64,
}

/// `Name,DSC,NSD` per image, 4 decimals; the `csv` crate quotes names with commas or quotes.
fn per_image_csv(images: &[ImageResult]) -> Result<Vec<u8>> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    writer.write_record(["Name", "DSC", "NSD"])?;
    for r in images {
        let (dsc, nsd) = (
            format!("{:.4}", image_score(r.dsc, true)),
            format!("{:.4}", image_score(r.nsd, true)),
        );
        writer.write_record([r.name.as_str(), &dsc, &nsd])?;
    }
    Ok(writer.into_inner().map_err(|e| e.into_error())?)
}

fn evaluate(ctx: &EvalContext, dataset: &str, style: PromptStyle) -> Result<StyleResult> {
    let request = ctx.request;
    let sheet = read_records(
        &request.data_root,
        dataset,
        SheetKind::Test(style),
        ReadOptions::default(),
    )?;
    for p in &sheet.problems {
        tracing::warn!(
            "{dataset}: {} row {}: {} (skipped)",
            p.file,
            p.row,
            p.problem
        );
    }
    if sheet.records.is_empty() {
        bail!("{}: no usable test rows", sheet.sheet_path.display());
    }
    let loader = DataLoader::new(
        sheet.records,
        ctx.preprocess.clone(),
        LoaderConfig::eval(request.batch_size),
    )?;
    let dir = request.out.join(dataset);
    let tag = format!("Prompt-{style}");
    let bar = progress_bar(loader.num_samples() as u64, request.quiet);
    bar.set_message(format!("{dataset} {style}"));
    let mut images = Vec::new();
    let mut calibration = Calibration::default();
    for (index, batch) in loader.iter_epoch(0).enumerate() {
        let batch = batch?;
        let tensors = infer::to_tensors::<Inner>(&batch, ctx.prompts, ctx.device)?;
        // Host noise is keyed by each image's position in the sheet, so the numbers do not
        // depend on --batch-size or the MC chunking.
        let mut noise = backend::noise(
            derive_seed(request.seed, 7, 0, 0),
            derive_seed(request.seed, 7, index as u64, 0),
            ctx.device,
        );
        let first = images.len() as u64;
        let image_keys: Vec<u64> = (first..first + batch.len() as u64).collect();
        let prediction = mc_predict(
            ctx.model,
            tensors.images,
            tensors.ids,
            tensors.attention_mask,
            &image_keys,
            ctx.mc,
            &mut noise,
        )
        .context("Monte-Carlo inference needs at least one sample")?;
        let maps = HostMaps::read(&prediction)?;
        for i in 0..batch.len() {
            let panel = images.len() < request.panels;
            images.push(write_case(
                ctx,
                &batch,
                i,
                &maps,
                &dir,
                &tag,
                panel,
                &mut calibration,
            )?);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let csv = dir.join(format!("test_{tag}.csv"));
    store::write_atomic(&csv, &per_image_csv(&images)?)?;
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
    tracing::info!(
        "{dataset} [{style}]: DSC {:.4} NSD {:.4} over {} images (ECE {:.4}, Brier {:.4}, uncertainty AUROC {:.4})",
        result.dsc,
        result.nsd,
        result.n_images,
        result.ece,
        result.brier,
        result.uncertainty_auroc
    );
    Ok(result)
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
    fn read(p: &McPrediction<Inner>) -> Result<Self> {
        let host = |t: &Tensor<Inner, 3>| infer::host_f32(t.clone().into_data());
        Ok(Self {
            size: p.mean_prob.dims()[1],
            mean_prob: host(&p.mean_prob)?,
            entropy: host(&p.predictive_entropy)?,
            aleatoric: host(&p.expected_entropy)?,
            epistemic: host(&p.mutual_information)?,
        })
    }

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

/// Scores one image and writes its mask, uncertainty picture, raw maps (and panel).
#[allow(clippy::too_many_arguments)]
fn write_case(
    ctx: &EvalContext,
    batch: &Batch,
    i: usize,
    maps: &HostMaps,
    dir: &Path,
    tag: &str,
    panel: bool,
    calibration: &mut Calibration,
) -> Result<ImageResult> {
    let s = maps.size;
    let prob = maps.image(&maps.mean_prob, i);
    let entropy = maps.image(&maps.entropy, i);
    let pred_small = Mask2d::new(s, s, prob.iter().map(|&p| p > 0.5).collect())?;
    let gt_path = &batch.mask_paths[i];
    let gt = seg_metrics::read_mask(gt_path, false)?;
    let pred = pred_small.resize_nearest(gt.rows(), gt.cols())?;
    let report = seg_metrics::evaluate_masks_2d(&gt, &pred, &ctx.scoring.metrics)?;

    let gt_small = &batch.masks[i * s * s..(i + 1) * s * s];
    calibration.probs.extend_from_slice(prob);
    calibration.uncertainty.extend_from_slice(entropy);
    calibration.truth.extend(gt_small.iter().map(|&g| g > 0.5));

    let stem = Path::new(&batch.names[i])
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("image")
        .to_string();
    let mask_name = gt_path
        .file_stem()
        .and_then(|s| s.to_str())
        .map_or_else(|| format!("{stem}.png"), |m| format!("{m}.png"));
    store::write_mask_png(&dir.join("seg_results").join(tag).join(&mask_name), &pred)?;
    seg_viz::write_uncertainty_png(
        &dir.join("unc_results").join(tag).join(&mask_name),
        entropy,
        s as u32,
        s as u32,
        seg_viz::ChannelOrder::Rgb,
    )?;
    write_raw_maps(
        &dir.join("raw")
            .join(tag)
            .join(format!("{stem}.safetensors")),
        maps,
        i,
    )?;
    if panel {
        let picture = denormalize(
            &batch.images[i * 3 * s * s..(i + 1) * 3 * s * s],
            s,
            ctx.preprocess,
        );
        let gt_mask: Vec<bool> = gt_small.iter().map(|&g| g > 0.5).collect();
        let sample = seg_viz::SegmentationSample {
            image: &picture,
            ground_truth: Some(&gt_mask),
            prediction: pred_small.data(),
            uncertainty: Some(entropy),
        };
        let panels = seg_viz::segmentation_panels(&sample, 160)?;
        seg_viz::write_png(
            &dir.join("panels").join(tag).join(format!("{stem}.png")),
            &panels,
        )?;
    }
    Ok(ImageResult {
        name: batch.names[i].clone(),
        dsc: image_score(report.dsc, ctx.scoring.rounded),
        nsd: image_score(report.first_nsd(), ctx.scoring.rounded),
    })
}

/// Mean probability, predictive entropy, aleatoric and epistemic maps as float32 safetensors.
fn write_raw_maps(path: &Path, maps: &HostMaps, i: usize) -> Result<()> {
    let s = maps.size;
    let mut sd = StateDict::new(path);
    for (key, map) in [
        ("mean_prob", &maps.mean_prob),
        ("predictive_entropy", &maps.entropy),
        ("expected_entropy", &maps.aleatoric),
        ("mutual_information", &maps.epistemic),
    ] {
        sd.insert(key, RawTensor::from_f32(vec![s, s], maps.image(map, i))?);
    }
    store::save_safetensors(path, &sd)?;
    Ok(())
}

fn summarize(results: Vec<StyleResult>, samples: usize, scoring: &Scoring) -> Result<EvalSummary> {
    let Some(first_style) = results.first().map(|r| r.style.clone()) else {
        bail!("nothing was evaluated");
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
        samples,
        nsd_protocol: protocol_name(scoring.metrics.protocol).to_string(),
        nsd_tolerance: scoring.metrics.tolerances[0],
        rounded_per_image: scoring.rounded,
    })
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
    fn protocol_names_round_trip() {
        use clap::ValueEnum;
        for arg in crate::cli::ProtocolArg::value_variants() {
            let name = arg.to_possible_value().expect("not hidden");
            assert_eq!(protocol_name((*arg).into()), name.get_name());
        }
    }

    #[test]
    fn a_run_folder_resolves_by_use_latest() {
        let dir = std::env::temp_dir().join(format!("medclipseg-resolve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("latest.safetensors"), b"x").unwrap();
        std::fs::write(dir.join("best.safetensors"), b"x").unwrap();
        assert_eq!(
            resolve_checkpoint(&dir).unwrap(),
            dir.join("latest.safetensors")
        );
        let mut config = RunConfig::demo();
        config.test.use_latest = false;
        std::fs::write(dir.join("config.toml"), toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(
            resolve_checkpoint(&dir).unwrap(),
            dir.join("best.safetensors")
        );
        std::fs::remove_file(dir.join("best.safetensors")).unwrap();
        let err = resolve_checkpoint(&dir).unwrap_err().to_string();
        assert!(err.contains("best.safetensors"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn per_image_csv_quotes_names_with_commas_and_quotes() {
        let name = "case 1, \"left\".png";
        let rows = [ImageResult {
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
}
