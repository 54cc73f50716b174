//! The `train_eval` example on a small synthetic dataset: training writes a complete,
//! resumable run, evaluation scores every test image, and a finished run is neither
//! clobbered nor trained again.

use std::path::Path;

use burn::backend::{Autodiff, Flex};
use med_datasets::SynthConfig;
use medclipseg_model::MedClipSegConfig;
use medclipseg_pipeline::{
    PipelineError, Prompts, RunConfig, RunFolder, RunRecords, Silent, TrainData, TrainSettings,
    Trainer, Vocabulary, init_model,
};

#[allow(dead_code)]
#[path = "../examples/train_eval.rs"]
mod example;

/// 8 training, 2 validation and 3 test images of 32 px (the micro model's size).
fn synthetic(root: &Path) {
    let synth = SynthConfig {
        image_size: 32,
        train: 8,
        val: 2,
        test: 3,
        shifted: None,
        ..SynthConfig::default()
    };
    med_datasets::generate(root, &synth).unwrap();
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count()
}

#[test]
fn the_example_trains_evaluates_and_writes_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic(&data);
    let out = tmp.path().join("out");
    let overrides = [
        "model.preset=micro",
        "train.epochs=2",
        "train.min_steps=0",
        "train.batch_size=4",
        "train.seed=1",
        "test.num_samples=4",
    ]
    .map(String::from);
    let config = example::demo_config(&data, "Synthetic", &overrides).unwrap();
    let outcome = example::run(&config, &out).unwrap();

    let train = &outcome.train;
    assert_eq!(
        (train.epochs, train.n_train_images, train.n_images),
        (2, 8, 2)
    );
    assert!(train.final_train_loss.is_some_and(f64::is_finite));
    let best_epoch = train.best_epoch.expect("a validation split");
    assert!((1..=2).contains(&best_epoch));
    let run = out.join("run");
    for file in [
        "latest.safetensors",
        "best.safetensors",
        "summary.json",
        "loss_curve.png",
        "checkpoints/latest.json",
        "checkpoints/epoch-0002/state.json",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    // A header and one row per epoch.
    assert_eq!(lines(&run.join("metrics.csv")), 3);
    assert_eq!(lines(&run.join("metrics.jsonl")), 2);

    let eval = &outcome.eval;
    assert_eq!((eval.n_images, eval.samples), (3, 4));
    assert!((0.0..=1.0).contains(&eval.dsc) && (0.0..=1.0).contains(&eval.nsd));
    let result = &eval.results[0];
    assert_eq!(lines(&result.csv), 4);
    let dataset = out.join("eval").join("Synthetic");
    for kind in ["seg_results", "unc_results", "raw"] {
        let dir = dataset.join(kind).join("Prompt-original");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3, "{kind}");
    }
}

/// A trainer of the micro model for two epochs in the run folder `dir`.
fn trainer(dir: &Path, resume: bool) -> Result<Trainer<Autodiff<Flex>>, PipelineError> {
    let config = MedClipSegConfig::micro();
    let model = init_model(&config, 3, &Default::default());
    let run = RunFolder {
        resume,
        ..RunFolder::new(dir)
    };
    let settings = TrainSettings::reference(2);
    Trainer::open(model, config, settings, vec![Default::default()], run)
}

#[test]
fn a_run_resumes_where_it_stopped_and_is_never_clobbered() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    synthetic(&root);
    let mut run_config = RunConfig::demo();
    run_config.dataset.root = root.clone();
    run_config.train.batch_size = 4;
    run_config.train.seed = 1;
    let preprocess = run_config.preprocess(32);
    let records = RunRecords::read(&run_config).unwrap();
    let data = TrainData::for_run(&run_config, records, &preprocess).unwrap();
    let vocabulary = Vocabulary::read(&root.join("Synthetic").join("vocab.txt")).unwrap();
    let config = MedClipSegConfig::micro();
    let prompts = Prompts::with_vocabulary(&config.text, Some(&vocabulary)).unwrap();
    let dir = tmp.path().join("run");

    let nothing = trainer(&dir, true).err().expect("nothing to resume");
    assert!(
        matches!(nothing, PipelineError::NothingToResume { .. }),
        "{nothing}"
    );
    let mut first = trainer(&dir, false).unwrap();
    let one = first
        .fit(&data, &prompts, Some(&vocabulary), Some(1), &mut Silent)
        .unwrap();
    assert_eq!(one.epochs, 1);
    let exists = trainer(&dir, false).err().expect("a run is there");
    assert!(
        matches!(exists, PipelineError::RunExists { .. }),
        "{exists}"
    );

    let mut resumed = trainer(&dir, true).unwrap();
    assert_eq!(resumed.state().epochs_done, 1);
    let two = resumed
        .fit(&data, &prompts, Some(&vocabulary), None, &mut Silent)
        .unwrap();
    assert_eq!(two.epochs, 2);
    assert_eq!(resumed.state().history.len(), 2);
    // The history came back from state.json (JSON keeps f64 to about 1e-15).
    let (back, kept) = (&resumed.state().history[0], &first.state().history[0]);
    assert_eq!((back.epoch, back.lr), (kept.epoch, kept.lr));
    assert!((back.train_total - kept.train_total).abs() < 1e-12);
    // The stored checkpoint carries the vocabulary: it loads on its own.
    let loaded =
        medclipseg_pipeline::LoadedModel::<Flex>::load(&two.latest, &Default::default()).unwrap();
    assert_eq!(loaded.vocabulary.map(|v| v.text), Some(vocabulary.text));
}
