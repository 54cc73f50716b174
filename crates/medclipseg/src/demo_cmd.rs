//! `medclipseg demo`: the embedded default. Generates the synthetic text-guided dataset,
//! trains the `demo` model from scratch, evaluates it under every prompt style and on the
//! shifted domain, and writes a report with pictures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use med_datasets::PromptStyle;
use seg_viz::{BarChart, Report, Table};
use serde::Serialize;

use crate::backend::{self, Inner, Train};
use crate::observers::{EvalProgress, TrainProgress, stuck_at_zero_warning};
use crate::store::{self, Provenance};
use medclipseg_pipeline::{
    EvalOverrides, EvalPlan, EvalRun, EvalRunRequest, EvalSummary, RunConfig, TrainSummary,
    TrainingRun, demo_synth_config,
};

/// What `demo` needs.
#[derive(Debug, Clone)]
pub struct DemoRequest {
    /// Output folder.
    pub out: PathBuf,
    /// `--device`.
    pub device: String,
    /// `--set` overrides of the demo config.
    pub overrides: Vec<String>,
    /// Smaller and shorter: a smoke test.
    pub quick: bool,
    /// `-q`: no progress bars.
    pub quiet: bool,
}

/// `summary.json` of the demo.
#[derive(Debug, Serialize)]
pub struct DemoSummary {
    /// Mean test DSC, original prompts.
    pub dsc: f64,
    /// Mean test NSD (2 px), original prompts.
    pub nsd: f64,
    /// Mean test DSC per prompt style.
    pub dsc_by_prompt_style: BTreeMap<String, f64>,
    /// DSC on the shifted domain (original prompts).
    pub ood_dsc: Option<f64>,
    /// Harmonic mean of ID and OOD DSC.
    pub hm_dsc: Option<f64>,
    /// Seconds spent training.
    pub train_seconds: f64,
    /// The trained checkpoint.
    pub checkpoint: PathBuf,
    /// The report page.
    pub report: PathBuf,
}

/// Runs the demo.
pub fn run(request: &DemoRequest) -> Result<DemoSummary> {
    let mut config = RunConfig::demo();
    if request.quick {
        // A smoke test: two short epochs, not the from-scratch step budget.
        config.train.epochs = 2;
        config.train.min_steps = 0;
        config.test.num_samples = 2;
    }
    let data_root = request.out.join("data");
    config.dataset.root = data_root.clone();
    let config = config.apply_overrides(&request.overrides)?;
    let model_config = config.model_config()?;
    tracing::info!(
        "[1/4] generating the synthetic dataset in {}",
        data_root.display()
    );
    let synth = demo_synth_config(model_config.image_size(), request.quick, config.train.seed);
    let generated = med_datasets::generate(&data_root, &synth)?;
    let shifted_name = generated.datasets.get(1).map(|d| d.name.clone());

    tracing::info!(
        "[2/4] training the demo model from scratch ({} epochs)",
        config.train.epochs
    );
    let run_dir = request.out.join("run");
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir).with_context(|| {
            format!("{}: cannot clear the previous demo run", run_dir.display())
        })?;
    }
    let trained = train(request, &config, &run_dir)?;

    tracing::info!("[3/4] evaluating under every prompt style and on the shifted domain");
    let id = evaluate(
        request,
        &config,
        &trained.latest,
        EvalPlan {
            data_root: data_root.clone(),
            datasets: vec![config.dataset.name.clone()],
            styles: PromptStyle::ALL.to_vec(),
            out: request.out.join("eval"),
        },
    )?;
    let ood = match &shifted_name {
        Some(name) => Some(evaluate(
            request,
            &config,
            &trained.latest,
            EvalPlan::new(
                &data_root,
                name,
                PromptStyle::Original,
                request.out.join("eval_shifted"),
            ),
        )?),
        None => None,
    };

    tracing::info!("[4/4] writing the report");
    let report_path = write_report(request, &config, &trained, &id, ood.as_ref())?;
    let ood_dsc = ood.as_ref().map(|o| o.dsc);
    let summary = DemoSummary {
        dsc: id.dsc,
        nsd: id.nsd,
        dsc_by_prompt_style: id.dsc_by_prompt_style.clone(),
        ood_dsc,
        hm_dsc: ood_dsc.map(|o| seg_metrics::harmonic_mean(id.dsc, o)),
        train_seconds: trained.train_seconds,
        checkpoint: trained.latest.clone(),
        report: report_path,
    };
    store::write_json(&request.out.join("summary.json"), &summary)?;
    let mut provenance = Provenance::new().with_checkpoint(&trained.latest)?;
    provenance.seed = Some(config.train.seed);
    provenance.samples = Some(config.test.num_samples);
    provenance.config = Some(serde_json::to_value(&config)?);
    provenance.model_config = Some(serde_json::to_value(&model_config)?);
    provenance.write(&request.out)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(summary)
}

/// Trains the demo model into `run_dir`, as `medclipseg train` does.
fn train(request: &DemoRequest, config: &RunConfig, run_dir: &Path) -> Result<TrainSummary> {
    let library_request = medclipseg_pipeline::TrainRequest {
        config: config.clone(),
        out: run_dir.to_path_buf(),
        resume: false,
        noise: backend::pipeline_noise_source(),
    };
    let devices = backend::devices(&request.device)?;
    let mut progress = TrainProgress::new(request.quiet);
    let mut run = TrainingRun::<Train>::prepare(&library_request, devices, &mut progress)?;
    Provenance::for_training(&run.config, &run.model_config)?.write(run_dir)?;
    let summary = run.fit(None, &mut progress)?;
    if let Some(warning) = stuck_at_zero_warning(&run.trainer().state().history) {
        tracing::warn!("{warning}");
    }
    Ok(summary)
}

/// Evaluates the trained checkpoint under `plan`, writing what `medclipseg eval` writes.
fn evaluate(
    request: &DemoRequest,
    config: &RunConfig,
    checkpoint: &Path,
    plan: EvalPlan,
) -> Result<EvalSummary> {
    let device = backend::device(&request.device)?;
    let overrides = EvalOverrides {
        samples: Some(config.test.num_samples),
        tolerance: None,
        protocol: seg_metrics::Protocol::MedClipSeg,
        batch_size: 8,
        seed: config.train.seed,
        panels: 6,
        noise: backend::pipeline_noise_source(),
        default_max_batch: backend::DEFAULT_MC_BATCH,
    };
    let run = EvalRun::<Inner>::prepare(
        &EvalRunRequest {
            checkpoint: checkpoint.to_path_buf(),
            model_config: None,
            tokenizer: None,
            overrides,
            out: plan.out.clone(),
        },
        &device,
    )?;
    let summary = run
        .evaluator
        .evaluate(&plan, &mut EvalProgress::new(request.quiet))?;
    store::write_eval_record(
        &plan.out,
        &serde_json::to_value(&summary)?,
        &run,
        config.train.seed,
    )?;
    Ok(summary)
}

/// The prompt of each test image of `dataset` under `style`, by image file stem (the panels'
/// names); empty when the sheet cannot be read (the captions then say so).
fn test_prompts(data_root: &Path, dataset: &str, style: &str) -> BTreeMap<String, String> {
    let Some(style) = PromptStyle::ALL
        .iter()
        .copied()
        .find(|s| s.as_str() == style)
    else {
        return BTreeMap::new();
    };
    let kind = med_datasets::SheetKind::Test(style);
    let options = med_datasets::ReadOptions::default();
    let Ok(sheet) = med_datasets::read_records(data_root, dataset, kind, options) else {
        return BTreeMap::new();
    };
    sheet
        .records
        .into_iter()
        .map(|r| {
            let stem = Path::new(&r.name)
                .file_stem()
                .map_or_else(|| r.name.clone(), |s| s.to_string_lossy().into_owned());
            (stem, r.prompt.trim().to_string())
        })
        .collect()
}

/// An example's caption: the prompt text the model was given, then the image it was given with.
fn example_caption(style: &str, prompt: Option<&str>, stem: &str) -> String {
    match prompt {
        Some(prompt) => format!("{style} prompt: \u{201c}{prompt}\u{201d} ({stem})"),
        None => format!("{style} prompt: not in the test sheet ({stem})"),
    }
}

fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

fn write_report(
    request: &DemoRequest,
    config: &RunConfig,
    trained: &TrainSummary,
    id: &EvalSummary,
    ood: Option<&EvalSummary>,
) -> Result<PathBuf> {
    let out = &request.out;
    let bars: Vec<(String, f64)> = id
        .results
        .iter()
        .map(|r| (r.style.clone(), r.dsc))
        .collect();
    let chart = out.join("dsc_by_prompt_style.png");
    BarChart::new("Test DSC by prompt style", "DSC", bars)
        .with_y_range(0.0, 1.0)
        .write_png(&chart)?;

    let mut results = Table::new(
        [
            "dataset",
            "prompt style",
            "images",
            "DSC",
            "NSD (2 px)",
            "ECE",
            "Brier",
            "uncertainty AUROC",
        ]
        .map(String::from)
        .to_vec(),
    );
    for r in id
        .results
        .iter()
        .chain(ood.iter().flat_map(|o| o.results.iter()))
    {
        results.push_row(vec![
            r.dataset.clone(),
            r.style.clone(),
            r.n_images.to_string(),
            format!("{:.4}", r.dsc),
            format!("{:.4}", r.nsd),
            format!("{:.4}", r.ece),
            format!("{:.4}", r.brier),
            format!("{:.4}", r.uncertainty_auroc),
        ])?;
    }
    let mut report = Report::new("MedCLIPSeg-rs demo")
        .paragraph(
            "A small MedCLIPSeg (ViT + BERT towers, PVL adapters, decoder) trained from scratch on \
             the synthetic text-guided dataset: each image has 0-3 lesions and the prompt names the \
             one to segment, so the text matters. No download, no GPU.",
        )
        .key_values(vec![
            ("test DSC (original prompts)", format!("{:.4}", id.dsc)),
            ("test NSD (original prompts)", format!("{:.4}", id.nsd)),
            ("shifted-domain DSC", ood.map_or("-".into(), |o| format!("{:.4}", o.dsc))),
            ("epochs", trained.epochs.to_string()),
            ("training seconds", format!("{:.0}", trained.train_seconds)),
            ("Monte-Carlo samples", id.samples.to_string()),
            ("backend", backend::name().to_string()),
        ])
        .section("Training")
        .figure(relative(&out.join("run").join("loss_curve.png"), out), "Loss and validation DSC per epoch")
        .section("Results")
        .table(results)
        .figure(relative(&chart, out), "DSC under each test prompt style (contradictory prompts name the wrong lesion)")
        .section("Examples")
        .paragraph("Image | ground truth | prediction (red) vs ground truth (green) | predictive entropy.");
    for r in &id.results {
        let dir = out
            .join("eval")
            .join(&r.dataset)
            .join("panels")
            .join(format!("Prompt-{}", r.style));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        let prompts = test_prompts(&config.dataset.root, &r.dataset, &r.style);
        for file in files.iter().take(if r.style == "original" { 6 } else { 2 }) {
            let stem = file.file_stem().and_then(|n| n.to_str()).unwrap_or("");
            let caption = example_caption(&r.style, prompts.get(stem).map(String::as_str), stem);
            report = report.figure(relative(file, out), caption);
        }
    }
    report = report.section("Reproduce").code(format!(
        "medclipseg demo --out {}\n# the config used:\n{}",
        out.display(),
        toml::to_string(config)?
    ));
    let files = report.write(out, "report")?;
    Ok(files.html)
}

#[cfg(test)]
mod caption_tests {
    use super::*;

    #[test]
    fn example_captions_show_the_prompt_text_not_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let synth = demo_synth_config(32, true, 3);
        let generated = med_datasets::generate(dir.path(), &synth).unwrap();
        let dataset = &generated.datasets[0].name;
        let prompts = test_prompts(dir.path(), dataset, "original");
        assert_eq!(prompts.len(), 12, "{prompts:?}");
        let (stem, prompt) = prompts.iter().next().unwrap();
        assert!(!prompt.is_empty() && !prompt.contains(".png"), "{prompt}");
        let caption = example_caption("original", Some(prompt), stem);
        assert_eq!(
            caption,
            format!("original prompt: \u{201c}{prompt}\u{201d} ({stem})")
        );
        assert!(!caption.contains(".png"), "{caption}");
        assert!(test_prompts(dir.path(), dataset, "no-such-style").is_empty());
        assert_eq!(
            example_caption("P2", None, "test_0001"),
            "P2 prompt: not in the test sheet (test_0001)"
        );
    }
}
