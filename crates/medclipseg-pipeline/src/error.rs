//! Errors of the pipeline. Each names the file or the input it is about.

use std::path::PathBuf;

/// What can go wrong between a checkpoint, an image and a prediction.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The checkpoint could not be read or does not fit its model config. The cause is in the
    /// message (without the file name it repeats), not in `source()`.
    #[error("{}: cannot load the checkpoint: {}", path.display(), after_path(path, cause))]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// Why (boxed: it is large and errors travel by value).
        cause: Box<medclipseg_model::checkpoint::CheckpointError>,
    },
    /// The run configuration could not be read, changed or used.
    #[error(transparent)]
    Config(#[from] crate::config_error::ConfigError),
    /// A checkpoint's stored run configuration could not be read.
    #[error("{path}: the stored run config cannot be read: {reason}")]
    RunConfig {
        /// The checkpoint file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A run's training sheet has no usable row.
    #[error("{dataset}: no usable training rows in {sheet}")]
    NoTrainRows {
        /// The dataset folder.
        dataset: PathBuf,
        /// The sheet's name.
        sheet: String,
    },
    /// The run config's input size is not the model's.
    #[error("dataset.size {size} differs from the model's image size {image_size}")]
    InputSize {
        /// `dataset.size`.
        size: usize,
        /// The model's.
        image_size: usize,
    },
    /// A run folder without the checkpoint its `test.use_latest` names.
    #[error("{}: the run folder has no {} (test.use_latest = {use_latest})", dir.display(), file.file_name().and_then(|n| n.to_str()).unwrap_or(""))]
    NoRunCheckpoint {
        /// The run folder.
        dir: PathBuf,
        /// The checkpoint it should hold.
        file: PathBuf,
        /// The run's `test.use_latest`.
        use_latest: bool,
    },
    /// A prompt is empty or blank.
    #[error(
        "the prompt is empty: describe the target in words (e.g. \"one small round tumor at the center\")"
    )]
    EmptyPrompt,
    /// The BERT text tower has no vocabulary: none stored in the checkpoint, none given.
    #[error(
        "the BERT text tower needs a vocabulary and none was given or stored in the checkpoint: \
         set model.tokenizer to a vocab.txt or tokenizer.json (BiomedBERT's for the paper's \
         UniMedCLIP)"
    )]
    MissingVocabulary,
    /// The vocabulary does not fit the text tower's embedding table.
    #[error("{origin}: {tokens} tokens, but the text tower's embedding table has {rows} rows")]
    VocabularyTooLarge {
        /// Where the vocabulary came from.
        origin: String,
        /// Its size.
        tokens: usize,
        /// The table's size.
        rows: usize,
    },
    /// The tokenizer could not be built or could not encode a prompt.
    #[error(transparent)]
    Tokenizer(#[from] clip_tokenizers::TokenizerError),
    /// An image could not be read or decoded.
    #[error(transparent)]
    Image(#[from] med_datasets::Error),
    /// A volume could not be read, sliced or written.
    #[error(transparent)]
    Volume(#[from] med_volumes::VolumeError),
    /// A mask does not match its size.
    #[error(transparent)]
    Mask(#[from] seg_metrics::MetricsError),
    /// A file could not be written.
    #[error("{path}: cannot write")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An input has a size the pipeline cannot use.
    #[error("{0}")]
    BadInput(String),
    /// Monte-Carlo prediction needs at least one sample.
    #[error("Monte-Carlo samples must be at least 1")]
    NoSamples,
    /// The caller stopped a prediction between two chunks of Monte-Carlo samples.
    #[error("the prediction was cancelled")]
    Cancelled,
    /// A tensor could not be read back from the device.
    #[error("cannot read a tensor back from the device: {0}")]
    ReadBack(String),
    /// A file could not be read.
    #[error("{path}: cannot read")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file could not be written or parsed.
    #[error("{path}: cannot read or write the JSON")]
    Json {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A float map could not be written as safetensors.
    #[error(transparent)]
    Safetensors(#[from] torch_checkpoint::Error),
    /// A float map does not match its shape.
    #[error(transparent)]
    RawTensor(#[from] torch_checkpoint::TensorError),
    /// A CSV table could not be built.
    #[error(transparent)]
    Csv(#[from] csv::Error),
    /// A picture (loss curve, uncertainty map, panel) could not be drawn or written.
    #[error(transparent)]
    Picture(#[from] seg_viz::VizError),
    /// A model or optimizer record of a resumable checkpoint could not be written or read.
    #[error("{path}: {reason}")]
    Record {
        /// The record file.
        path: PathBuf,
        /// Why (Burn's recorder error, as text).
        reason: String,
    },
    /// The output folder already holds a training run and resuming was not asked for.
    #[error(
        "{dir} already holds a run (checkpoints/latest.json): resume it or choose another folder"
    )]
    RunExists {
        /// The run folder.
        dir: PathBuf,
    },
    /// Resuming was asked for, but the folder holds no resumable checkpoint.
    #[error("{dir}: nothing to resume (no checkpoints/latest.json)")]
    NothingToResume {
        /// The run folder.
        dir: PathBuf,
    },
    /// A training step failed (a non-finite loss); the weights of the failed step were not
    /// applied and the last checkpoint written is intact.
    #[error(
        "training stopped at epoch {epoch} step {step} (batch {batch:?}); the last good \
         checkpoint is {latest} (resume the run after fixing the cause)"
    )]
    TrainingStopped {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step: usize,
        /// Image names of the batch.
        batch: Vec<String>,
        /// The last checkpoint written.
        latest: PathBuf,
        /// Why.
        #[source]
        source: medclipseg_model::train::StepError,
    },
    /// Data-parallel training: the loss was not finite on some device.
    #[error(
        "the training loss is not finite on some device at epoch {epoch} step {step}: training \
         stopped, the last good checkpoint is kept"
    )]
    ReplicaLossNotFinite {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step.
        step: usize,
    },
    /// Data-parallel training: a collective operation (joining, all-reduce) failed.
    #[error("device {device}: {reason}")]
    Collective {
        /// Index of the device in the device list.
        device: usize,
        /// Burn's collective error, as text.
        reason: String,
    },
    /// Data-parallel training: a worker thread panicked.
    #[error("a training worker panicked")]
    WorkerPanicked,
    /// Several devices were given, but the crate was built without `data-parallel`.
    #[error(
        "{devices} devices given, but medclipseg-pipeline was built without its data-parallel \
         feature: train on one device"
    )]
    DataParallelDisabled {
        /// Devices given.
        devices: usize,
    },
    /// Data-parallel training needs at least one training image per device.
    #[error("{images} training images cannot feed {devices} devices")]
    TooFewImages {
        /// Training images.
        images: usize,
        /// Devices.
        devices: usize,
    },
    /// A prompt sheet has no usable row.
    #[error("{sheet}: no usable test rows")]
    NoTestRows {
        /// The sheet.
        sheet: PathBuf,
    },
    /// An evaluation was asked for with no dataset or prompt style.
    #[error("nothing was evaluated")]
    NothingEvaluated,
}

/// `error`'s message followed by each of its causes, joined by `: ` (as `anyhow`'s `{:#}`
/// prints them): for messages shown where no error chain is printed (an HTTP reply, a table).
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// `error`'s message without the leading `path: ` that the caller's message already says.
fn after_path(path: &std::path::Path, error: &dyn std::fmt::Display) -> String {
    let message = error.to_string();
    let prefix = format!("{}: ", path.display());
    message
        .strip_prefix(&prefix)
        .map_or_else(|| message.clone(), str::to_string)
}

/// The pipeline's result type.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;
