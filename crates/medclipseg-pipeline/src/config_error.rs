//! The run configuration's errors, apart from the configuration itself so that the crate's
//! error type can wrap them without importing `run_config`.

use std::path::PathBuf;

/// Why a run configuration could not be read, changed or used. Each variant names the file,
/// the key or the value concerned; a cause is either in the message or in `source()`, never
/// in both.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A config file could not be read.
    #[error("{path}: cannot read the config file")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A config file could not be parsed.
    #[error("{path}: invalid config: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A config file with an extension we do not read.
    #[error("{path}: unknown config format {extension:?} (use .toml, .json{yaml})", yaml = if cfg!(feature = "reference-yaml") { " or the reference .yaml" } else { "" })]
    Format {
        /// The file.
        path: PathBuf,
        /// Its extension.
        extension: String,
    },
    /// A `--set` item is not `SECTION.KEY=VALUE`.
    #[error("--set {item:?}: {problem}")]
    Override {
        /// The item as given.
        item: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The overrides made a config that does not deserialize (a wrong type, say).
    #[error("--set produced an invalid config: {0}")]
    Overridden(String),
    /// A value is out of its range or not one of its names.
    #[error("{0}")]
    Invalid(String),
    /// The model section gives a model that does not fit together.
    #[error("model config: {0}")]
    Model(String),
    /// A model config file could not be read or parsed.
    #[error("{path}: {problem}")]
    ModelFile {
        /// The file (or the preset name that was not one).
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The dataset registry could not be read.
    #[error("the dataset registry: {0}")]
    Registry(String),
    /// Frozen towers without pretrained weights.
    #[error(
        "the towers are frozen (model preset {preset:?}) but model.backbone_checkpoint is not \
         set: they would stay random and every score would collapse. Pass \
         --set model.backbone_checkpoint=FILE (e.g. UniMedCLIP ViT-B/16), train the \
         towers too (--set model.freeze_encoders=false), or accept random frozen towers \
         with --set model.allow_random_towers=true"
    )]
    RandomTowers {
        /// The model preset.
        preset: String,
    },
}

/// The result type of this module.
pub type ConfigResult<T> = std::result::Result<T, ConfigError>;
