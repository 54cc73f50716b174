//! The smaller commands: `metrics`, `forward`, `import`, `datasets`, `data`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use burn::tensor::TensorData;
use clap::{Args, Subcommand};
use med_datasets::{PromptSource, SourceFormat, SynthConfig, registry};
use med_volumes::is_nifti_path;
use medclipseg_model::{LoadScope, Noise, checkpoint};
use seg_metrics::MetricsRequest;
use torch_checkpoint::{RawTensor, StateDict};

use crate::backend::{self, Inner};
use medclipseg_pipeline::run_config::preset_or_file;

/// `medclipseg metrics`.
#[derive(Args)]
pub struct MetricsArgs {
    /// Predicted mask PNG, or a folder of them, or a NIfTI label volume (.nii / .nii.gz).
    #[arg(long)]
    pred: PathBuf,
    /// Ground-truth mask PNG, or a folder of them (paired by file stem), or a NIfTI label volume.
    #[arg(long)]
    gt: PathBuf,
    /// Label to evaluate in the ground-truth label map (NIfTI volumes; 0/1 or multi-label PNGs).
    /// A binary prediction (one non-zero value) is read as it is; a prediction that is a label
    /// map of several labels is read by the same label. Default: every non-zero voxel of a
    /// volume; for PNGs the reference `> 127` rule (see `seg_metrics::read_mask`).
    #[arg(long)]
    label: Option<i64>,
    /// Pixel spacing in array order: ROW,COL (PNGs only; volumes use their header spacing).
    #[arg(long, value_name = "ROW,COL")]
    spacing: Option<String>,
    /// NSD tolerance(s); repeat for several (default 2).
    #[arg(long = "tolerance")]
    tolerances: Vec<f64>,
    /// Which reference to reproduce.
    #[arg(long, value_enum, default_value_t = crate::args::ProtocolArg::Medclipseg)]
    protocol: crate::args::ProtocolArg,
    /// Reject masks with values other than 0 and 255.
    #[arg(long)]
    strict: bool,
    /// Per-image CSV of folder mode.
    #[arg(long, default_value = "metrics.csv")]
    csv: PathBuf,
    /// JSON on stdout and nothing else (already the only output: accepted for scripts, as on
    /// every command with `--json`).
    #[arg(long)]
    json: bool,
}

/// `medclipseg forward`.
#[derive(Args)]
pub struct ForwardArgs {
    /// Preset name or model-config file.
    #[arg(long)]
    model_config: String,
    /// State dict with the reference key names (safetensors, .pt or .pth).
    #[arg(long)]
    checkpoint: PathBuf,
    /// safetensors with `image` [B,3,H,W] f32 (normalised) and `input_ids` [B,L] i64.
    #[arg(long)]
    inputs: PathBuf,
    /// `zero` or `seed:<u64>`.
    #[arg(long, default_value = "zero")]
    noise: String,
    /// Output safetensors: `seg_logits`, `txt_vec`, `img_tokens`.
    #[arg(long)]
    out: PathBuf,
    /// Device of the compiled-in backend.
    #[arg(long, default_value = "default")]
    device: String,
}

/// `medclipseg import`.
#[derive(Args)]
pub struct ImportArgs {
    /// A PyTorch .pt/.pth (parsed as data, never executed) or a safetensors file.
    input: PathBuf,
    /// Output safetensors.
    output: PathBuf,
    /// Check the tensors against this model config (preset or file) and store it in the file.
    #[arg(long)]
    model_config: Option<String>,
}

/// `medclipseg convert`.
#[derive(Args)]
pub struct ConvertArgs {
    /// A DICOM file, a DICOM series folder, or a NIfTI-1/-2 file (read by content).
    #[arg(long)]
    input: PathBuf,
    /// The NIfTI to write (`.nii` or `.nii.gz`).
    #[arg(long)]
    out: PathBuf,
    /// DICOM folders holding several series: the SeriesInstanceUID to read.
    #[arg(long, value_name = "UID")]
    series: Option<String>,
    /// 4-D NIfTI: the volume to write (from 0), or `all` (`<out>_t000.nii.gz`, ...).
    #[arg(long, value_name = "N|all")]
    volume_index: Option<String>,
}

/// `medclipseg convert`: a DICOM or NIfTI input as NIfTI, as `predict` reads it.
pub fn convert(a: ConvertArgs) -> Result<()> {
    let options = med_volumes::InputOptions {
        series: a.series,
        volume_index: a
            .volume_index
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--volume-index: {e}"))?,
    };
    let converted = med_volumes::convert_to_nifti(&a.input, &a.out, &options)?;
    if converted.monochrome1_inverted {
        tracing::info!("MONOCHROME1: values negated (high values dark), as predict reads them");
    }
    for path in &converted.outputs {
        tracing::info!("wrote {} ({:?})", path.display(), converted.dims);
    }
    Ok(())
}

/// `medclipseg datasets`.
#[derive(Args)]
pub struct DatasetsArgs {
    /// JSON on stdout instead of the table, nothing else there.
    #[arg(long)]
    json: bool,
}

/// `medclipseg data ...`.
#[derive(Subcommand)]
pub enum DataCommand {
    /// Count usable rows per split and list problems of a packaged dataset.
    #[command(after_help = "Example:\n  medclipseg data inspect --root data --dataset BUSI --json")]
    Inspect {
        /// Data root.
        #[arg(long)]
        root: PathBuf,
        /// Dataset folder name.
        #[arg(long)]
        dataset: String,
        /// Fail on the first problem.
        #[arg(long)]
        strict: bool,
        /// The report as one line of JSON (the default prints the same JSON indented).
        #[arg(long)]
        json: bool,
    },
    /// Write the packaged layout from an original public release.
    #[command(
        after_help = "Example:\n  medclipseg data convert --from busi Dataset_BUSI_with_GT data/BUSI --prompts prompts.csv"
    )]
    Convert {
        /// Release format.
        #[arg(long, value_parser = source_format_values())]
        from: String,
        /// The release folder.
        src: PathBuf,
        /// The packaged dataset folder to write.
        dst: PathBuf,
        /// CSV with Image,Description[,Split].
        #[arg(long, conflicts_with = "template")]
        prompts: Option<PathBuf>,
        /// One prompt template for every image (`{name}`, `{class}` are replaced).
        #[arg(long)]
        template: Option<String>,
    },
    /// Generate the synthetic text-guided dataset (and its shifted domain).
    #[command(after_help = "Example:\n  medclipseg data synth --root data --size 64 --train 400")]
    Synth {
        /// Data root to write into.
        #[arg(long)]
        root: PathBuf,
        /// Image side in pixels.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Training images.
        #[arg(long, default_value_t = 400)]
        train: usize,
        /// Validation images.
        #[arg(long, default_value_t = 50)]
        val: usize,
        /// Test images (each in five prompt styles).
        #[arg(long, default_value_t = 100)]
        test: usize,
        /// Seed.
        #[arg(long, default_value_t = 666)]
        seed: u64,
    },
}

/// `data convert --from`: the release formats, listed in `--help`.
fn source_format_values() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(SourceFormat::ALL.map(SourceFormat::as_str))
}

/// Runs `metrics`.
pub fn metrics(a: MetricsArgs) -> Result<()> {
    let mut request = MetricsRequest::new(a.protocol.into());
    if !a.tolerances.is_empty() {
        request.tolerances = a.tolerances.clone();
    }
    request.strict = a.strict;
    request.label = a
        .label
        .map(u16::try_from)
        .transpose()
        .context("--label: PNG label maps hold labels 0..=65535")?;
    if let Some(spacing) = &a.spacing {
        let parts: Vec<f64> = spacing
            .split(',')
            .map(|s| s.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("--spacing {spacing:?}: expected ROW,COL numbers"))?;
        let [row, col] = parts[..] else {
            bail!("--spacing {spacing:?}: expected two numbers ROW,COL");
        };
        request.spacing = Some([row, col]);
    }
    // Volumes by name or content (NIfTI-1/-2, DICOM files); folders of PNG masks are not.
    let volume = |p: &Path| is_nifti_path(p) || (p.is_file() && med_volumes::is_volume_input(p));
    if volume(&a.pred) || volume(&a.gt) {
        if a.spacing.is_some() {
            bail!("--spacing is for PNG masks: a volume's spacing comes from its header");
        }
        let report = crate::volume_score::volume_metrics(&a.pred, &a.gt, a.label, &request)?;
        println!("{}", seg_metrics::render_json(&report));
        return Ok(());
    }
    if a.pred.is_dir() && a.gt.is_dir() {
        let report = seg_metrics::evaluate_dirs(&a.pred, &a.gt, &request, Some(&a.csv))?;
        for name in &report.missing_predictions {
            tracing::warn!("no prediction for ground truth {name}");
        }
        for name in &report.missing_ground_truths {
            tracing::warn!("no ground truth for prediction {name}");
        }
        tracing::info!(
            "{} images; per-image CSV: {}",
            report.images.len(),
            a.csv.display()
        );
        println!("{}", seg_metrics::render_json(&report.mean));
    } else if a.pred.is_dir() || a.gt.is_dir() {
        bail!("--pred and --gt must both be files or both be folders");
    } else {
        let report = seg_metrics::evaluate_files(&a.pred, &a.gt, &request)?;
        println!("{}", seg_metrics::render_json(&report));
    }
    Ok(())
}

/// Runs `forward`.
pub fn forward(a: ForwardArgs) -> Result<()> {
    let device = backend::device(&a.device)?;
    let config = preset_or_file(&a.model_config)?;
    let model = checkpoint::load_model::<Inner>(&config, &a.checkpoint, LoadScope::Full, &device)?;
    let inputs = torch_checkpoint::load(&a.inputs)?;
    let (shape, image) = inputs
        .tensor_f32("image")
        .with_context(|| format!("{}: needs `image` [B,3,H,W] f32", a.inputs.display()))?;
    let (id_shape, ids) = inputs
        .tensor_i64("input_ids")
        .with_context(|| format!("{}: needs `input_ids` [B,L] i64", a.inputs.display()))?;
    let ([b, c, h, w], [ib, l]) = (
        <[usize; 4]>::try_from(shape.clone()).map_err(|_| {
            anyhow::anyhow!(
                "{}: `image` must be [B,3,H,W], got {shape:?}",
                a.inputs.display()
            )
        })?,
        <[usize; 2]>::try_from(id_shape.clone()).map_err(|_| {
            anyhow::anyhow!(
                "{}: `input_ids` must be [B,L], got {id_shape:?}",
                a.inputs.display()
            )
        })?,
    );
    if c != 3 || b != ib {
        bail!(
            "{}: image {shape:?} and input_ids {id_shape:?} do not fit together",
            a.inputs.display()
        );
    }
    if h != config.image_size() || w != config.image_size() {
        bail!(
            "{}: image is {h}x{w}, the model takes {1}x{1}",
            a.inputs.display(),
            config.image_size()
        );
    }
    if let Some(bad) = ids
        .iter()
        .find(|&&id| id < 0 || id as usize >= config.text.vocab_size())
    {
        bail!(
            "{}: token id {bad} is outside the vocabulary (size {})",
            a.inputs.display(),
            config.text.vocab_size()
        );
    }
    let mask: Vec<i64> = ids.iter().map(|&id| i64::from(id != 0)).collect();
    let images = Tensor::<Inner, 4>::from_data(TensorData::new(image, [b, c, h, w]), &device);
    let ids_t = Tensor::<Inner, 2, Int>::from_data(TensorData::new(ids, [b, l]), &device);
    let mask_t = Tensor::<Inner, 2, Int>::from_data(TensorData::new(mask, [b, l]), &device);
    let mut noise = match a.noise.as_str() {
        "zero" => Noise::Zero,
        other => match other.strip_prefix("seed:").map(str::parse::<u64>) {
            Some(Ok(seed)) => Noise::seeded(seed),
            _ => bail!("--noise {other:?}: use zero or seed:<u64>"),
        },
    };
    let out = model.forward(images, ids_t, mask_t, &mut noise);
    let mut sd = StateDict::new(&a.out);
    for (key, host) in [
        (
            "seg_logits",
            clip_encoders::weights::to_host(out.seg_logits),
        ),
        ("txt_vec", clip_encoders::weights::to_host(out.txt_vec)),
        (
            "img_tokens",
            clip_encoders::weights::to_host(out.img_tokens),
        ),
    ] {
        sd.insert(key, RawTensor::from_f32(host.shape, &host.data)?);
    }
    crate::store::save_safetensors(&a.out, &sd)?;
    tracing::info!("wrote {}", a.out.display());
    Ok(())
}

/// Runs `import`.
pub fn import(a: ImportArgs) -> Result<()> {
    let sd = torch_checkpoint::load(&a.input)?;
    let tensors = sd.len();
    let notes = sd.notes().to_vec();
    match &a.model_config {
        Some(spec) => {
            // Load into the model (strict) so that a bad file fails now, not at use.
            let config = preset_or_file(spec)?;
            let device = backend::device("default")?;
            let weights = checkpoint::weight_map(&sd)?;
            let model =
                config
                    .init::<Inner>(&device)
                    .load_weights(&weights, LoadScope::Full, &device);
            weights.finish(true)?;
            let mut meta = sd.metadata().clone();
            meta.insert(
                "medclipseg.imported_from".into(),
                a.input.display().to_string(),
            );
            checkpoint::save(&model, &config, &meta, &a.output)?;
        }
        // One name per tensor: the official CLIP trainers' `clip_model.*` aliases folded.
        None => crate::store::save_safetensors(&a.output, &checkpoint::fold_aliases(sd)?)?,
    }
    for note in notes {
        tracing::warn!("{}: {note}", a.input.display());
    }
    tracing::info!(
        "wrote {} ({tensors} tensors from {})",
        a.output.display(),
        a.input.display()
    );
    Ok(())
}

/// Runs `datasets`.
pub fn datasets(a: DatasetsArgs) -> Result<()> {
    let registry = registry()?;
    if a.json {
        println!("{}", registry.to_json()?);
    } else {
        print!("{}", registry.render_table());
    }
    Ok(())
}

/// Runs `data ...`.
pub fn data(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Inspect {
            root,
            dataset,
            strict,
            json,
        } => {
            let report = med_datasets::inspect(&root, &dataset, strict)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
        }
        DataCommand::Convert {
            from,
            src,
            dst,
            prompts,
            template,
        } => {
            let format: SourceFormat = from.parse()?;
            let source = match (prompts, template) {
                (Some(csv), _) => PromptSource::Csv(csv),
                (None, Some(t)) => PromptSource::Template(t),
                (None, None) => bail!("give the prompts: --prompts CSV or --template TEXT"),
            };
            let report = med_datasets::convert(format, &src, &dst, source)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        DataCommand::Synth {
            root,
            size,
            train,
            val,
            test,
            seed,
        } => {
            let config = SynthConfig {
                seed,
                image_size: size,
                train,
                val,
                test,
                ..SynthConfig::default()
            };
            let summary = med_datasets::generate(&root, &config)?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
    }
    Ok(())
}
