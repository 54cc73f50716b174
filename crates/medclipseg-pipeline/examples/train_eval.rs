//! Train on a packaged dataset as `medclipseg train --config demo` does (the same
//! [`RunConfig`], so the same numbers), then evaluate the trained model: what a user writes.
//!
//! ```sh
//! medclipseg data synth --root data --size 32 --train 16 --val 4 --test 4
//! cargo run -p medclipseg-pipeline --example train_eval -- data Synthetic runs/example \
//!     model.preset=micro train.epochs=2
//! ```

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use med_datasets::PromptStyle;
use medclipseg_pipeline::{
    EvalOverrides, EvalPlan, EvalSummary, Evaluator, LoadedModel, NoiseSource, Prompts, Result,
    RunConfig, Silent, TrainRequest, TrainSummary, TrainingRun,
};

/// What a run of the example gives back.
pub struct Outcome {
    /// The training run (`<out>/run`).
    pub train: TrainSummary,
    /// The evaluation of its last epoch on the test sheet (`<out>/eval`).
    pub eval: EvalSummary,
}

/// The config of `medclipseg train --config demo --data-root ROOT --dataset NAME --set ...`.
pub fn demo_config(data_root: &Path, dataset: &str, overrides: &[String]) -> Result<RunConfig> {
    let mut config = RunConfig::demo();
    config.dataset.root = data_root.to_path_buf();
    config.dataset.name = dataset.to_string();
    Ok(config.apply_overrides(overrides)?)
}

/// Trains as `config` says into `run_dir` on the CPU.
pub fn train(config: &RunConfig, run_dir: PathBuf) -> Result<TrainSummary> {
    let request = TrainRequest {
        config: config.clone(),
        out: run_dir,
        resume: false,
        noise: NoiseSource::Host,
    };
    let device = Default::default();
    let mut run = TrainingRun::<Autodiff<Flex>>::prepare(&request, vec![device], &mut Silent)?;
    run.fit(None, &mut Silent)
}

/// Trains as `config` says into `<out>/run`, then evaluates `latest.safetensors` on the test
/// sheet with the config's `test` section into `<out>/eval`.
pub fn run(config: &RunConfig, out: &Path) -> Result<Outcome> {
    let train = train(config, out.join("run"))?;
    let device = Default::default();
    let loaded = LoadedModel::<Flex>::load(&train.latest, &device)?;
    let prompts = Prompts::with_vocabulary(&loaded.config.text, loaded.vocabulary.as_ref())?;
    let preprocess = loaded.inference_preprocess();
    let settings = config.eval_settings(EvalOverrides {
        samples: None,
        tolerance: None,
        protocol: seg_metrics::Protocol::MedClipSeg,
        batch_size: 8,
        seed: 666,
        panels: 0,
        noise: NoiseSource::Host,
        default_max_batch: 8,
    })?;
    let evaluator = Evaluator::new(loaded.model, prompts, preprocess, settings, device)?;
    let plan = EvalPlan::new(
        &config.dataset.root,
        &config.dataset.name,
        PromptStyle::Original,
        out.join("eval"),
    );
    let eval = evaluator.evaluate(&plan, &mut Silent)?;
    Ok(Outcome { train, eval })
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, dataset, out, overrides @ ..] = args.as_slice() else {
        eprintln!("usage: train_eval DATA_ROOT DATASET OUT [SECTION.KEY=VALUE ...]");
        return std::process::ExitCode::FAILURE;
    };
    let outcome = demo_config(Path::new(root), dataset, overrides)
        .and_then(|config| run(&config, Path::new(out)));
    match outcome {
        Ok(outcome) => {
            println!(
                "{} epochs, final loss {:.4}; test DSC {:.4} NSD {:.4} over {} images",
                outcome.train.epochs,
                outcome.train.final_train_loss.unwrap_or(f64::NAN),
                outcome.eval.dsc,
                outcome.eval.nsd,
                outcome.eval.n_images
            );
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
