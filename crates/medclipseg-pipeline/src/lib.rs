//! MedCLIPSeg as a library: load a checkpoint (its config and vocabulary come along), and turn
//! an image or a volume plus a text prompt into a mask and uncertainty maps at the input's own
//! size, generic over the Burn backend.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use medclipseg_pipeline::{Predictor, read_image};
//!
//! let device = Default::default();
//! let predictor = Predictor::<Flex>::load("busi.safetensors", &device)?.with_samples(30);
//! let image = read_image("scan.png")?;
//! let prediction = predictor.predict_image(&image, "one small round tumor at the center")?;
//! prediction.write_mask_png("scan_mask.png")?;
//! # Ok::<(), medclipseg_pipeline::PipelineError>(())
//! ```
//!
//! Training and evaluation: [`Trainer`] runs the reference recipe with atomic, resumable
//! checkpoints after every epoch (data-parallel over several devices with the `data-parallel`
//! feature), [`Evaluator`] the reference test protocol; neither prints, progress goes to a
//! [`TrainObserver`] / [`EvalObserver`]. `examples/train_eval.rs` is the program a user writes.
//!
//! Layers: this crate sits between the model crates (`medclipseg-model`, `med-datasets`,
//! `med-volumes`, `clip-tokenizers`, `seg-metrics`, `seg-viz`) and the `medclipseg` command,
//! whose `predict`, `train` and `eval` are shells over [`Predictor`], [`Trainer`] and
//! [`Evaluator`].

pub mod calibrator;
pub mod checkpoint;
pub mod config_error;
pub mod demo_data;
pub mod error;
pub mod eval_run;
pub mod eval_settings;
pub mod evaluator;
pub mod image_folder;
#[cfg(feature = "data-parallel")]
pub mod parallel;
pub mod predictor;
pub mod prompts;
pub mod rank;
pub mod resize;
pub mod run_config;
pub mod run_data;
pub mod run_files;
pub mod seeds;
pub mod testing;
pub mod train_observer;
pub mod train_settings;
pub mod trainer;
pub mod training_run;
pub mod validation;
pub mod volume;
pub mod volume_eval;
pub mod volume_input;

pub use calibrator::{CalibrationItem, CalibrationSet, Calibrator};
pub use checkpoint::{LoadedModel, Vocabulary, save_checkpoint};
pub use demo_data::demo_synth_config;
pub use error::{PipelineError, Result, with_causes};
pub use eval_run::{EvalRun, EvalRunRequest};
pub use evaluator::{
    EvalObserver, EvalPlan, EvalSettings, EvalSummary, Evaluator, ImageOutcome, ImageScore,
    StyleResult,
};
pub use med_datasets::imaging::Image8;
pub use medclipseg_model::McProgress;
pub use predictor::{Prediction, Predictor, write_mask_png};
pub use prompts::{EncodedPrompts, PromptLength, Prompts, check_prompt};
pub use resize::resize_map;
pub use run_config::{ConfigError, EvalOverrides, RunConfig};
pub use run_data::RunRecords;
pub use run_files::{EpochRecord, TrainState, resolve_checkpoint};
pub use seeds::{NoiseSource, STREAM_PREDICT, derive_seed, noise};
pub use train_observer::{EpochStart, RunNotice, Silent, StepDone, TrainObserver};
pub use trainer::{
    RunFolder, TrainData, TrainSettings, TrainSummary, Trainer, init_model, load_backbone,
};
pub use training_run::{TrainRequest, TrainingRun};
pub use validation::{Validation, batch_dice, to_tensors, validate};
pub use volume::{VolumePrediction, VolumeScore, score_volume_mask, slice_to_bgr, volume_metrics};
pub use volume_eval::{
    ScoredVolume, SkippedVolume, VolumeEvalObserver, VolumeEvalPlan, VolumeEvalReport,
    VolumeEvalSummary, VolumeEvaluator, VolumeRow,
};
pub use volume_input::{
    DicomImage, PredictedVolume, VolumeFiles, VolumeInput, VolumeRecord, dicom_image,
    open_volume_inputs, volume_name, write_volume_maps,
};

/// Reads an image file as the BGR 8-bit image the model takes (16-bit images are stretched to
/// their real range); the error names the file.
pub fn read_image(path: impl AsRef<std::path::Path>) -> Result<Image8> {
    Ok(med_datasets::imaging::read_bgr(path.as_ref())?)
}

/// The README example, compiled as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
