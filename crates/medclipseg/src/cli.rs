//! Command-line interface.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand};
use med_datasets::PromptStyle;

use crate::args::ProtocolArg;
use crate::{
    bench_cmd, calibrate_cmd, demo_cmd, eval_cmd, predict_cmd, rank_cmd, tools_cmd, train_cmd,
    volume_eval, volume_predict,
};
use medclipseg_pipeline::RunConfig;

#[derive(Parser)]
#[command(
    name = "medclipseg",
    version,
    about = "Text-guided medical image segmentation with uncertainty (MedCLIPSeg) on Burn",
    after_help = "Start with `medclipseg demo`: it generates a synthetic dataset, trains a small model \
                  from scratch, evaluates it and writes a report, on the CPU, in minutes.\n\n\
                  Output: results (tables, JSON) go to stdout, logs and progress to stderr. `-q` keeps \
                  warnings and errors only (no progress bars), `-v` adds debug lines, `-vv` trace; \
                  RUST_LOG (e.g. RUST_LOG=medclipseg=debug) overrides both. `--json` (metrics, \
                  datasets, data inspect, bench) prints the machine-readable result on stdout and \
                  nothing else there; train, eval, demo and data convert/synth always print their JSON \
                  summary on stdout; predict, import and forward print nothing there."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Where the adapters' Monte-Carlo noise is drawn: `host` streams give the same numbers for
    /// any batch size and backend; `device` is faster on a GPU; `auto` is device on GPU builds.
    #[arg(long, global = true, value_enum, default_value_t = crate::backend::NoiseSource::Auto)]
    noise_source: crate::backend::NoiseSource,
    /// f32 matrix products on the GPU: `precise` (full f32, as PyTorch) or `tf32` (tensor
    /// cores on CUDA: faster, ~1e-3 relative error). No effect on the CPU backends.
    #[arg(long, global = true, value_enum, default_value_t = crate::backend::Precision::Precise)]
    precision: crate::backend::Precision,
    /// More log lines on stderr: `-v` debug, `-vv` trace.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,
    /// Warnings and errors only on stderr, and no progress bars.
    #[arg(short, long, global = true)]
    quiet: bool,
}

/// `--prompt-style`: the five test styles and `all`, listed in `--help`.
fn prompt_style_values() -> PossibleValuesParser {
    let mut names: Vec<&'static str> = PromptStyle::ALL.iter().map(|s| s.as_str()).collect();
    names.push("all");
    PossibleValuesParser::new(names)
}

#[derive(Subcommand)]
enum Command {
    /// The embedded default: synthetic data, a small model trained from scratch, evaluation, report.
    #[command(after_help = "Examples:\n  medclipseg demo\n  medclipseg demo --out runs/demo")]
    Demo(DemoArgs),
    /// Train a model (the paper's recipe by default).
    #[command(
        after_help = "Examples:\n  medclipseg train --config paper --data-root data --dataset BUSI --percent 10 \
        --set model.backbone_checkpoint=unimed_clip_vit_b16.pt --set model.tokenizer=vocab.txt\n  \
        medclipseg train --config demo --data-root runs/demo/data --dataset Synthetic\n  \
        medclipseg train --config configs/BUSI.yaml --resume --out runs/BUSI/seed666"
    )]
    Train(TrainArgs),
    /// Evaluate a checkpoint with the reference protocol (MC mean, DSC and NSD at GT size).
    #[command(
        after_help = "Examples:\n  medclipseg eval --checkpoint runs/BUSI/latest.safetensors --data-root data --dataset BUSI\n  \
        medclipseg eval --checkpoint C --data-root data --dataset BUSI --dg   (the BUS targets too)\n  \
        medclipseg eval --checkpoint C --data-root data --dataset Kvasir --prompt-style all --samples 30"
    )]
    Eval(EvalArgs),
    /// Segment unlabelled images: masks, overlays and uncertainty maps at the original size.
    #[command(
        after_help = "Examples:\n  medclipseg predict --checkpoint C --input scan.png --prompt \"one small round lesion in the center\" --out pred\n  \
        medclipseg predict --checkpoint C --input ct.nii.gz --prompt \"a liver tumour\" --window 40,400 --out pred\n  \
        medclipseg predict --checkpoint C --input images/ --prompts prompts.csv --out pred\n  \
        medclipseg predict --checkpoint C --input images/ --prompt \"a polyp\" --out pred --continue   # skip what is done\n\n\
        An image that cannot be read is reported and skipped; the others are written as each \
        finishes, and the run then exits non-zero naming the failed files."
    )]
    Predict(PredictArgs),
    /// Serve the review page, a JSON API and the MONAI Label protocol (3D Slicer) for one model.
    #[command(
        after_help = "Examples:\n  medclipseg serve --checkpoint runs/demo/run/latest.safetensors   # then open the printed address\n  \
        medclipseg serve --checkpoint C --host 0.0.0.0 --token $(openssl rand -hex 16)\n\n\
        docs/serve.md lists the routes, with curl examples, and how to connect 3D Slicer."
    )]
    Serve(crate::serve_cmd::ServeArgs),
    /// DSC, NSD, HD95 and ASSD of predicted masks against ground truth (files or folders).
    #[command(
        after_help = "Examples:\n  medclipseg metrics --pred P.png --gt G.png --json\n  \
        medclipseg metrics --pred preds/ --gt labels/ --tolerance 1 --tolerance 2 --protocol deepmind"
    )]
    Metrics(tools_cmd::MetricsArgs),
    /// Run one forward pass on tensors from a safetensors file (for parity checks).
    #[command(
        after_help = "Example:\n  medclipseg forward --model-config tiny --checkpoint tiny_model.safetensors \
        --inputs in.safetensors --noise zero --out out.safetensors"
    )]
    Forward(tools_cmd::ForwardArgs),
    /// Write a DICOM file, series folder or NIfTI as NIfTI, exactly as `predict` reads it.
    #[command(
        after_help = "Examples:\n  medclipseg convert --input series/ --out ct.nii.gz\n  \
        medclipseg convert --input fmri.nii.gz --volume-index all --out fmri.nii.gz\n\n\
        Values are the modality values (RescaleSlope/Intercept applied, no window; MONOCHROME1 \
        negated), on the input's grid and affine."
    )]
    Convert(tools_cmd::ConvertArgs),
    /// Convert a PyTorch .pt/.pth or safetensors checkpoint to the project's safetensors format.
    #[command(
        after_help = "Example:\n  medclipseg import MedCLIPSeg_unimedclip_ViT-B-16_latest.pth busi.safetensors --model-config unimedclip-vit-b16"
    )]
    Import(tools_cmd::ImportArgs),
    /// List the 16 datasets of the paper.
    #[command(after_help = "Examples:\n  medclipseg datasets\n  medclipseg datasets --json")]
    Datasets(tools_cmd::DatasetsArgs),
    /// Inspect, convert or generate datasets.
    #[command(subcommand)]
    Data(tools_cmd::DataCommand),
    /// Time one pass, Monte-Carlo inference and a training step on this build's backend (GPU
    /// numbers: build with --features cuda or wgpu, or run `cargo xtask bench --gpu`).
    #[command(after_help = "Examples:\n  medclipseg bench --device cuda:0\n  \
        medclipseg bench --model-config micro --tokens 16 --samples 4 --runs 1 --json bench.json")]
    Bench(BenchArgs),
    /// A conformal risk-controlled mask threshold from labelled calibration images.
    #[command(
        after_help = "Examples:\n  medclipseg calibrate --checkpoint C --data-root data --dataset BUSI --split val --risk fnr --alpha 0.1 --out cal.json\n  \
        medclipseg calibrate --checkpoint C --images val/img --labels val/label --prompt \"a tumour\" --risk fnr --alpha 0.1 --out cal.json\n\n\
        Then `predict --calibration cal.json` (and `eval`, `serve --calibration cal.json`) threshold at the calibrated value: \
        FNR <= alpha in expectation over images like the calibration set (docs/uncertainty.md). \
        The figure cal.png (risk vs threshold) is written next to cal.json."
    )]
    Calibrate(CalibrateArgs),
    /// Rank unlabelled images by the model's uncertainty: an annotation queue, most informative first.
    #[command(
        after_help = "Examples:\n  medclipseg rank --checkpoint C --input unlabelled/ --prompt \"a polyp\" --by mutual-information --out queue\n  \
        medclipseg rank --checkpoint C --input unlabelled/ --prompts prompts.csv --budget 100 --out queue --continue\n\n\
        Writes queue/queue.csv (file,score,area,rank,slice), queue/queue.html (the top inputs with overlays; a volume's most uncertain slice) and \
        queue/overlays/. Scores: entropy (mean predictive entropy), mutual-information (epistemic part), \
        mask-entropy (entropy inside the predicted mask), disagreement (pairwise disagreement of the MC samples)."
    )]
    Rank(RankArgs),
}

/// The Monte-Carlo options `predict`, `calibrate` and `rank` share.
#[derive(Args)]
struct McArgs {
    /// Monte-Carlo samples per image.
    #[arg(long, default_value_t = 30, value_parser = at_least_one)]
    samples: usize,
    /// Seed of the Monte-Carlo noise.
    #[arg(long, default_value_t = 666)]
    seed: u64,
    /// Device of the compiled-in backend.
    #[arg(long, default_value = "default")]
    device: String,
}

#[derive(Args)]
struct CalibrateArgs {
    /// Checkpoint of ours.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Data root (with --dataset).
    #[arg(long, requires = "dataset", conflicts_with = "images")]
    data_root: Option<PathBuf>,
    /// Dataset folder name.
    #[arg(long, requires = "data_root")]
    dataset: Option<String>,
    /// Dataset split used for calibration: val, or test under --prompt-style.
    #[arg(long, default_value = "val", value_parser = ["val", "test", "Val", "Test"])]
    split: String,
    /// Prompt style of the test sheet (with --split test).
    #[arg(long, default_value = "original", value_parser = PossibleValuesParser::new(PromptStyle::ALL.map(|s| s.as_str())))]
    prompt_style: String,
    /// A folder of images instead of a dataset (with --labels and --prompt).
    #[arg(long, requires_all = ["labels", "prompt"])]
    images: Option<PathBuf>,
    /// Masks with the images' file stems.
    #[arg(long, requires = "images")]
    labels: Option<PathBuf>,
    /// Prompt of every image (with --images).
    #[arg(long, requires = "images")]
    prompt: Option<String>,
    /// Risk to control: fnr (missed lesion fraction), fdr (false-discovery rate) or dice (1 - DSC).
    #[arg(long, default_value = "fnr", value_parser = ["fnr", "fdr", "dice"])]
    risk: String,
    /// Target level, strictly between 0 and 1.
    #[arg(long)]
    alpha: f64,
    /// A second level for the uncertain band (predict --calibration then writes band/<name>.png:
    /// the pixels between the two thresholds).
    #[arg(long)]
    band_alpha: Option<f64>,
    /// Calibration file to write (the figure goes next to it as .png).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    mc: McArgs,
}

#[derive(Args)]
struct RankArgs {
    /// Checkpoint of ours.
    #[arg(long)]
    checkpoint: PathBuf,
    /// A folder of unlabelled images, NIfTI volumes, DICOM files and DICOM series folders.
    #[arg(long)]
    input: PathBuf,
    /// One prompt for every image.
    #[arg(long, conflicts_with = "prompts")]
    prompt: Option<String>,
    /// A CSV with columns Image,Description.
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Score: entropy, mutual-information, mask-entropy or disagreement.
    #[arg(long, default_value = "mutual-information", value_parser = ["entropy", "mutual-information", "mask-entropy", "disagreement"])]
    by: String,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Score at most this many new images in this run (the rest wait for --continue).
    #[arg(long)]
    budget: Option<usize>,
    /// Keep the queue already in --out and score only the images not in it.
    #[arg(long = "continue")]
    resume: bool,
    /// Images shown on the HTML page.
    #[arg(long, default_value_t = 20)]
    top: usize,
    #[command(flatten)]
    mc: McArgs,
}

/// `calibrate`: prints the calibration file.
fn calibrate(a: CalibrateArgs, quiet: bool) -> Result<()> {
    let source = match (a.images, a.data_root, a.dataset) {
        (Some(images), _, _) => calibrate_cmd::CalibrationSource::Folders {
            images,
            labels: a.labels.unwrap_or_default(),
            prompt: a.prompt.unwrap_or_default(),
        },
        (None, Some(root), Some(name)) => calibrate_cmd::CalibrationSource::Dataset {
            root,
            name,
            split: a.split,
            style: a.prompt_style.parse()?,
        },
        _ => bail!("calibrate needs --data-root and --dataset, or --images, --labels and --prompt"),
    };
    let file = calibrate_cmd::run(&calibrate_cmd::CalibrateRequest {
        checkpoint: a.checkpoint,
        source,
        risk: a.risk.parse()?,
        alpha: a.alpha,
        band_alpha: a.band_alpha,
        out: a.out,
        samples: a.mc.samples,
        seed: a.mc.seed,
        device: a.mc.device,
        quiet,
    })?;
    println!("{}", serde_json::to_string_pretty(&file)?);
    Ok(())
}

/// `rank`: the queue goes to files; nothing on stdout.
fn rank(a: RankArgs, quiet: bool) -> Result<()> {
    rank_cmd::run(&rank_cmd::RankRequest {
        checkpoint: a.checkpoint,
        input: a.input,
        prompt: a.prompt,
        prompts_csv: a.prompts,
        by: a.by.parse()?,
        out: a.out,
        budget: a.budget,
        resume: a.resume,
        top: a.top,
        samples: a.mc.samples,
        seed: a.mc.seed,
        device: a.mc.device,
        quiet,
    })
    .map(|_| ())
}

#[derive(Args)]
struct BenchArgs {
    /// Model preset (random weights).
    #[arg(long, default_value = "unimedclip-vit-b16")]
    model_config: String,
    /// Device of the compiled-in backend (cpu, cuda:N, wgpu default|cpu|discrete:N).
    #[arg(long, default_value = "default")]
    device: String,
    /// Timed runs of each workload, after one warm-up run.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Monte-Carlo samples.
    #[arg(long, default_value_t = 30)]
    samples: usize,
    /// Prompt length in tokens.
    #[arg(long, default_value_t = 256)]
    tokens: usize,
    /// Batch of the training step.
    #[arg(long, default_value_t = 4)]
    train_batch: usize,
    /// Largest Monte-Carlo chunk (images × samples per batch); default 8 on the CPU, 32 on a
    /// GPU.
    #[arg(long)]
    max_batch: Option<usize>,
    /// The report as JSON: bare `--json` (or `--json -`) prints it on stdout instead of the
    /// table; `--json FILE` writes it to FILE as well as printing the table.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = bench_cmd::JSON_TO_STDOUT)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct DemoArgs {
    /// Output folder (data, run, report).
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    /// Device of the compiled-in backend.
    #[arg(long, default_value = "default")]
    device: String,
    /// Override config values, e.g. `--set train.epochs=2`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Fewer images and epochs: a smoke test, not a result.
    #[arg(long)]
    quick: bool,
}

#[derive(Args)]
struct TrainArgs {
    /// `paper` (default: with --dataset X, the values of the official configs/X.yaml), `demo`,
    /// or a .toml/.json/.yaml config file.
    #[arg(long, default_value = "paper")]
    config: String,
    /// Data root holding `<dataset>/{Train,Val,Test}_Folder` and `Prompts_Folder`.
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// Dataset folder name (any folder in the packaged layout).
    #[arg(long)]
    dataset: Option<String>,
    /// Training data percentage.
    #[arg(long, value_parser = ["10", "25", "50", "100"])]
    percent: Option<String>,
    /// Seed (the reference scripts use 666).
    #[arg(long)]
    seed: Option<u64>,
    /// Continue the run in `--out` from its latest checkpoint.
    #[arg(long)]
    resume: bool,
    /// Override config values, e.g. `--set train.batch_size=8` or `--set TRAIN.NUM_EPOCHS=50`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Output folder (default: runs/<dataset>[_<percent>]/seed<seed>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Device(s) of the compiled-in backend; a comma-separated list trains data-parallel on
    /// all of them (e.g. `cuda:0,cuda:1`, or `cpu,cpu` to try it on one CPU).
    #[arg(long, default_value = "default")]
    device: String,
    /// Stop after this many epochs in this invocation (resume later with --resume).
    #[arg(long)]
    stop_after: Option<usize>,
    /// Print the resolved config (TOML) and exit: no training, no images or weights read.
    #[arg(long)]
    print_config: bool,
}

#[derive(Args)]
struct EvalArgs {
    /// Checkpoint (ours, or a reference state dict with --model-config), or a run folder:
    /// its latest.safetensors, or best.safetensors when the run's test.use_latest is false.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Data root.
    #[arg(long, required_unless_present = "volumes")]
    data_root: Option<PathBuf>,
    /// Dataset folder name.
    #[arg(long, required_unless_present = "volumes")]
    dataset: Option<String>,
    /// Volumes instead of a dataset: a folder of NIfTI volumes (.nii / .nii.gz) or DICOM series
    /// folders, each segmented slice by slice as `predict` does and scored in 3-D (DSC, NSD,
    /// HD95, ASSD; DeepMind protocol, header spacing, `--tolerance` in header units, default 2)
    /// against the label volume of the same name in `--labels`.
    #[arg(long, requires_all = ["labels", "prompt"], conflicts_with_all = ["data_root", "dataset", "dg"])]
    volumes: Option<PathBuf>,
    /// With `--volumes`: the folder of label volumes (`<name>.nii.gz` or `<name>.nii`).
    #[arg(long, requires = "volumes")]
    labels: Option<PathBuf>,
    /// With `--volumes`: the prompt of every volume.
    #[arg(long, requires = "volumes")]
    prompt: Option<String>,
    /// With `--volumes`: the label to score in the label volumes (default: any non-zero voxel).
    #[arg(long, requires = "volumes")]
    label: Option<i64>,
    /// With `--volumes`: axis to slice along, 0, 1 or 2 (default: the last).
    #[arg(long, value_parser = ["0", "1", "2"], requires = "volumes")]
    axis: Option<String>,
    /// With `--volumes`: intensity of the slices, as in `predict`: CENTER,WIDTH (HU),
    /// percentile[:LOW,HIGH] or minmax.
    #[arg(long, requires = "volumes")]
    window: Option<String>,
    /// Test prompt style, or `all`.
    #[arg(long, default_value = "original", value_parser = prompt_style_values())]
    prompt_style: String,
    /// Monte-Carlo samples per image (default: the checkpoint's config, 30 in the paper).
    #[arg(long, value_parser = at_least_one)]
    samples: Option<usize>,
    /// NSD protocol: the reference's (`medclipseg`, a one-slice 3-D surface) or a contour-based
    /// one (`deepmind`, `monai`).
    #[arg(long, value_enum, default_value_t = ProtocolArg::Medclipseg)]
    protocol: ProtocolArg,
    /// NSD tolerance in pixels (default: the checkpoint's test.nsd_tolerance, 2 in the paper).
    #[arg(long)]
    tolerance: Option<f64>,
    /// Domain generalisation: also evaluate the registered targets of the dataset's group
    /// that exist under the data root.
    #[arg(long)]
    dg: bool,
    /// Model config for reference checkpoints (preset name or file).
    #[arg(long)]
    model_config: Option<String>,
    /// BERT vocabulary for reference checkpoints.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Images per batch.
    #[arg(long, default_value_t = 4, value_parser = at_least_one)]
    batch_size: usize,
    /// Seed of the Monte-Carlo noise.
    #[arg(long, default_value_t = 666)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "eval")]
    out: PathBuf,
    /// Device of the compiled-in backend.
    #[arg(long, default_value = "default")]
    device: String,
    /// Panels (image | GT | prediction | uncertainty) written per dataset and style.
    #[arg(long, default_value_t = 8)]
    panels: usize,
    /// Report the test risk at a calibrated threshold (`medclipseg calibrate`) beside its α
    /// (summary.json `calibration`).
    #[arg(long, conflicts_with = "volumes")]
    calibration: Option<PathBuf>,
}

#[derive(Args)]
struct PredictArgs {
    /// Checkpoint of ours.
    #[arg(long)]
    checkpoint: PathBuf,
    /// An image, a folder of images, a list file (`.txt` or `.lst`: one image path a line,
    /// relative to the list), or a volume (NIfTI, DICOM file or series folder).
    #[arg(long)]
    input: PathBuf,
    /// One prompt for every image.
    #[arg(long, conflicts_with = "prompts")]
    prompt: Option<String>,
    /// A CSV with columns Image,Description (one prompt per image file name).
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    mc: McArgs,
    /// Volumes only: axis to slice along, 0, 1 or 2 in the volume's voxel order (default: the last).
    #[arg(long, value_parser = ["0", "1", "2"])]
    axis: Option<String>,
    /// Volumes only: intensity to 8 bits. `CENTER,WIDTH` (a CT window in HU, e.g. 40,400),
    /// `percentile[:LOW,HIGH]` (default, 0.5 and 99.5 over the volume) or `minmax`.
    #[arg(long, value_name = "CENTER,WIDTH")]
    window: Option<String>,
    /// Skip inputs whose outputs already exist (a run that stopped, or a folder that grew).
    #[arg(long = "continue")]
    resume: bool,
    /// DICOM folders holding several series: the SeriesInstanceUID to read.
    #[arg(long, value_name = "UID")]
    series: Option<String>,
    /// 4-D NIfTI: the volume to segment (from 0), or `all` (one output per volume).
    #[arg(long, value_name = "N|all")]
    volume_index: Option<String>,
    /// Volume masks as `nifti` (default) or, for DICOM input, `dicom-seg` (`<name>.seg.dcm`, a
    /// DICOM Segmentation over the source images; a single 2-D DICOM file gives a one-frame SEG).
    #[arg(long, value_parser = ["nifti", "dicom-seg"], default_value = "nifti")]
    output_format: String,
    /// Folders or list files of images: take part K of N (1 <= K <= N), so N processes (a
    /// Slurm array, an indexed Kubernetes Job) share one input and one output folder; with
    /// `--continue` a re-run shard skips what it finished. Records:
    /// `predictions.shard-K-of-N.json`.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Threshold masks at a calibrated value (`medclipseg calibrate`) instead of 0.5 (images and volumes).
    #[arg(long)]
    calibration: Option<PathBuf>,
}

/// `predict`: a volume (`.nii`, `.nii.gz`, a DICOM series folder) or 2-D images.
fn predict(a: PredictArgs, quiet: bool) -> Result<()> {
    let request = predict_cmd::PredictRequest {
        checkpoint: a.checkpoint,
        input: a.input,
        prompt: a.prompt,
        prompts_csv: a.prompts,
        out: a.out,
        samples: a.mc.samples,
        seed: a.mc.seed,
        device: a.mc.device,
        resume: a.resume,
        quiet,
        window: None,
        shard: a
            .shard
            .as_deref()
            .map(str::parse)
            .transpose()
            .context("--shard")?,
    };
    let window = a
        .window
        .as_deref()
        .map(|w| intensity_map(Some(w)))
        .transpose()?;
    let dicom_seg = a.output_format == "dicom-seg";
    let dicom_file = request.input.is_file() && med_volumes::is_dicom_file(&request.input);
    if med_volumes::is_3d_volume_input(&request.input, &med_datasets::imaging::IMAGE_EXTENSIONS)
        || (dicom_seg && dicom_file)
    {
        if request.shard.is_some() {
            bail!(
                "{}: --shard splits folders of images, not one volume",
                request.input.display()
            );
        }
        let options = volume_predict::VolumeOptions {
            dicom_seg,
            calibration: a.calibration.clone(),
            axis: a.axis.as_deref().map(str::parse).transpose()?,
            intensity: window.unwrap_or_default(),
            window_given: window.is_some(),
            series: a.series,
            volume_index: a
                .volume_index
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--volume-index: {e}"))?,
        };
        return volume_predict::run(&request, &options);
    }
    // A single DICOM file (by content) takes --window like a volume.
    if dicom_seg {
        bail!(
            "{}: --output-format dicom-seg needs DICOM input",
            request.input.display()
        );
    }
    if a.axis.is_some() || a.volume_index.is_some() || (a.window.is_some() && !dicom_file) {
        bail!(
            "{}: --axis, --volume-index and --window apply to volumes (.nii, .nii.gz, DICOM)",
            request.input.display()
        );
    }
    let request = predict_cmd::PredictRequest { window, ..request };
    predict_cmd::run_with_calibration(&request, a.calibration.as_deref())
}

/// The options `eval --volumes` shares with dataset evaluation.
struct EvalCommon {
    checkpoint: PathBuf,
    samples: usize,
    tolerance: f64,
    seed: u64,
    device: String,
    out: PathBuf,
}

/// `eval --volumes DIR --labels DIR --prompt TEXT`.
fn eval_volumes(
    volumes: PathBuf,
    labels: Option<PathBuf>,
    prompt: Option<String>,
    label: Option<i64>,
    axis: Option<String>,
    window: Option<String>,
    common: EvalCommon,
) -> Result<()> {
    let (Some(labels), Some(prompt)) = (labels, prompt) else {
        bail!("--volumes needs --labels DIR and --prompt TEXT");
    };
    let summary = volume_eval::run(&volume_eval::VolumeEvalRequest {
        checkpoint: common.checkpoint,
        plan: medclipseg_pipeline::VolumeEvalPlan {
            volumes,
            labels,
            prompt,
            label,
            axis: axis.as_deref().map(str::parse).transpose()?.unwrap_or(2),
            window: window
                .as_deref()
                .map(|w| intensity_map(Some(w)))
                .transpose()?,
            tolerances: vec![common.tolerance],
            out: common.out,
        },
        samples: common.samples,
        seed: common.seed,
        device: common.device,
    })?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// `--window CENTER,WIDTH` (or percentiles), or the default mapping.
fn intensity_map(window: Option<&str>) -> Result<med_volumes::IntensityMap> {
    match window {
        Some(text) => text
            .parse()
            .map_err(|e| anyhow::anyhow!("--window {text:?}: {e}")),
        None => Ok(med_volumes::IntensityMap::default()),
    }
}

/// Parses the command line and runs the command.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    crate::logging::init(crate::logging::Verbosity::from_flags(
        cli.quiet,
        cli.verbose,
    ));
    crate::backend::set_noise_source(cli.noise_source);
    crate::backend::set_precision(cli.precision);
    tracing::debug!(
        "medclipseg {} on the {} backend, noise source {:?}, precision {:?}",
        env!("CARGO_PKG_VERSION"),
        crate::backend::name(),
        cli.noise_source,
        cli.precision
    );
    let quiet = cli.quiet;
    match cli.command {
        Command::Demo(a) => demo_cmd::run(&demo_cmd::DemoRequest {
            out: a.out,
            device: a.device,
            overrides: a.set,
            quick: a.quick,
            quiet,
        })
        .map(|_| ()),
        Command::Train(a) => train(a, quiet),
        Command::Eval(a) => eval(a, quiet),
        Command::Predict(a) => predict(a, quiet),
        Command::Calibrate(a) => calibrate(a, quiet),
        Command::Rank(a) => rank(a, quiet),
        Command::Serve(a) => crate::serve_cmd::run(a),
        Command::Metrics(a) => tools_cmd::metrics(a),
        Command::Forward(a) => tools_cmd::forward(a),
        Command::Import(a) => tools_cmd::import(a),
        Command::Convert(a) => tools_cmd::convert(a),
        Command::Datasets(a) => tools_cmd::datasets(a),
        Command::Data(c) => tools_cmd::data(c),
        Command::Bench(a) => bench_cmd::run(&bench_cmd::BenchRequest {
            preset: a.model_config,
            device: a.device,
            runs: a.runs,
            sizes: medclipseg_model::workloads::WorkloadConfig::new()
                .with_samples(a.samples)
                .with_tokens(a.tokens)
                .with_train_batch(a.train_batch)
                .with_max_batch(Some(
                    a.max_batch.unwrap_or(crate::backend::DEFAULT_MC_BATCH),
                )),
            json: a.json,
        })
        .map(|_| ()),
    }
}

/// A count that must be positive (Monte-Carlo samples, batch sizes): 0 is refused rather
/// than silently raised to 1.
fn at_least_one(raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn train(a: TrainArgs, quiet: bool) -> Result<()> {
    let mut config = match (a.config.as_str(), &a.dataset) {
        // The official configs differ per dataset (EUS: 10 epochs, Covid19: gate init -0.02).
        ("paper", Some(name)) => RunConfig::paper_for(name)?,
        (spec, _) => RunConfig::load(spec)?,
    };
    if let Some(root) = a.data_root {
        config.dataset.root = root;
    }
    if let Some(name) = a.dataset {
        config.dataset.name = name;
    }
    if let Some(p) = a.percent {
        config.dataset.percent = p.parse()?;
    }
    if let Some(seed) = a.seed {
        config.train.seed = seed;
    }
    let config = config.apply_overrides(&a.set)?;
    if a.print_config {
        config.validate()?;
        print!("{}", toml::to_string(&config)?);
        return Ok(());
    }
    let out = a.out.unwrap_or_else(|| default_run_dir(&config));
    let summary = train_cmd::run(&train_cmd::TrainRequest {
        config,
        out,
        resume: a.resume,
        device: a.device,
        stop_after: a.stop_after,
        quiet,
    })?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// `runs/<dataset>[_<percent>]/seed<seed>`, like the reference's output tree.
fn default_run_dir(config: &RunConfig) -> PathBuf {
    let name = match config.dataset.percent {
        100 => config.dataset.name.clone(),
        p => format!("{}_{p}", config.dataset.name),
    };
    PathBuf::from("runs")
        .join(name)
        .join(format!("seed{}", config.train.seed))
}

fn eval(a: EvalArgs, quiet: bool) -> Result<()> {
    if let Some(volumes) = a.volumes {
        return eval_volumes(
            volumes,
            a.labels,
            a.prompt,
            a.label,
            a.axis,
            a.window,
            EvalCommon {
                checkpoint: a.checkpoint,
                samples: a.samples.unwrap_or(30),
                tolerance: a.tolerance.unwrap_or(2.0),
                seed: a.seed,
                device: a.device,
                out: a.out,
            },
        );
    }
    let (Some(data_root), Some(dataset)) = (a.data_root, a.dataset) else {
        bail!("eval needs --data-root and --dataset, or --volumes");
    };
    let styles = match a.prompt_style.as_str() {
        "all" => PromptStyle::ALL.to_vec(),
        s => vec![s.parse::<PromptStyle>()?],
    };
    let mut datasets = vec![dataset.clone()];
    if a.dg {
        let targets = med_datasets::registry()?.dg_targets(&dataset, &data_root);
        datasets.extend(targets.map_err(|e| anyhow::Error::new(e).context("--dg"))?);
        if datasets.len() == 1 {
            bail!(
                "--dg: no target dataset of {}'s group was found under {}",
                dataset,
                data_root.display()
            );
        }
    }
    let (_, summary) = eval_cmd::run_with_calibration(
        &eval_cmd::EvalRequest {
            checkpoint: a.checkpoint,
            model_config: a.model_config,
            tokenizer: a.tokenizer,
            data_root,
            datasets,
            styles,
            samples: a.samples,
            protocol: a.protocol.into(),
            tolerance: a.tolerance,
            batch_size: a.batch_size,
            seed: a.seed,
            out: a.out,
            device: a.device,
            panels: a.panels,
            quiet,
        },
        a.calibration.as_deref(),
    )?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
