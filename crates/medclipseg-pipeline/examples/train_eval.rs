//! Train on a packaged dataset, then evaluate the trained model: what a user writes.
//!
//! ```sh
//! medclipseg data synth --root data --size 32 --train 16 --val 4 --test 4
//! cargo run -p medclipseg-pipeline --example train_eval -- data Synthetic runs/example 2
//! ```

use std::path::Path;

use burn::backend::{Autodiff, Flex};
use med_datasets::{PreprocessConfig, PromptStyle};
use medclipseg_model::MedClipSegConfig;
use medclipseg_pipeline::{
    EvalPlan, EvalSettings, EvalSummary, Evaluator, LoadedModel, Prompts, Result, RunFolder,
    Silent, TrainData, TrainSettings, TrainSummary, Trainer, Vocabulary, init_model,
};

/// What a run of the example gives back.
pub struct Outcome {
    /// The training run (`<out>/run`).
    pub train: TrainSummary,
    /// The evaluation of its last epoch on the test sheet (`<out>/eval`).
    pub eval: EvalSummary,
}

/// Trains the `micro` model on `dataset` under `data_root` for `epochs` epochs into
/// `<out>/run`, then evaluates `latest.safetensors` on the test sheet into `<out>/eval`.
pub fn run(data_root: &Path, dataset: &str, out: &Path, epochs: usize) -> Result<Outcome> {
    let device = Default::default();
    let config = MedClipSegConfig::micro();
    let preprocess = PreprocessConfig {
        size: config.image_size(),
        ..PreprocessConfig::default()
    };
    let data = TrainData::from_dataset(data_root, dataset, &preprocess, 4, 1)?;
    let vocabulary = Vocabulary::read(&data_root.join(dataset).join("vocab.txt"))?;
    let prompts = Prompts::with_vocabulary(&config.text, Some(&vocabulary))?;
    let model = init_model::<Autodiff<Flex>>(&config, 1, &device);
    let settings = TrainSettings::reference(epochs);
    let run = RunFolder::new(out.join("run"));
    let mut trainer = Trainer::open(model, config, settings, vec![device], run)?;
    let train = trainer.fit(&data, &prompts, Some(&vocabulary), None, &mut Silent)?;

    let loaded = LoadedModel::<Flex>::load(&train.latest, &device)?;
    let test = EvalSettings::reference(4);
    let evaluator = Evaluator::new(loaded.model, prompts, preprocess, test, device)?;
    let plan = EvalPlan::new(data_root, dataset, PromptStyle::Original, out.join("eval"));
    let eval = evaluator.evaluate(&plan, &mut Silent)?;
    Ok(Outcome { train, eval })
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, dataset, out, epochs] = args.as_slice() else {
        eprintln!("usage: train_eval DATA_ROOT DATASET OUT EPOCHS");
        return std::process::ExitCode::FAILURE;
    };
    let Ok(epochs) = epochs.parse() else {
        eprintln!("EPOCHS must be a number, not {epochs:?}");
        return std::process::ExitCode::FAILURE;
    };
    match run(Path::new(root), dataset, Path::new(out), epochs) {
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
