//! Errors of the pipeline. Each names the file or the input it is about.

use std::path::PathBuf;

/// What can go wrong between a checkpoint, an image and a prediction.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The checkpoint could not be read or does not fit its model config.
    #[error("{path}: cannot load the checkpoint: {source}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// Why (boxed: it is large and errors travel by value).
        #[source]
        source: Box<medclipseg_model::checkpoint::CheckpointError>,
    },
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
    #[error("{path}: cannot write: {source}")]
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
    /// A tensor could not be read back from the device.
    #[error("cannot read a tensor back from the device: {0}")]
    ReadBack(String),
}

/// The pipeline's result type.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;
