//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading a vocabulary or encoding text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// A vocabulary or tokenizer file could not be read (missing, permissions, ...).
    #[error("cannot read tokenizer file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A vocabulary file was read but its content is not a vocabulary.
    #[error("malformed vocabulary file {path}{}: {reason}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    MalformedVocab {
        /// The file.
        path: PathBuf,
        /// 1-based line number of the offending entry, when there is one.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// A Hugging Face `tokenizer.json` could not be parsed or is not a WordPiece tokenizer.
    #[error("invalid tokenizer.json {path}: {reason}")]
    InvalidTokenizerJson {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The vocabulary lacks a special token that the tokenizer needs.
    #[error("vocabulary {path} has no special token {token:?}")]
    MissingSpecialToken {
        /// The vocabulary file (or `<bundled>` for a built-in vocabulary).
        path: PathBuf,
        /// The missing token, e.g. `[SEP]`.
        token: String,
    },
    /// The requested context length cannot hold the start and end tokens.
    #[error("context length {requested} is too small: at least {minimum} tokens are needed")]
    ContextLengthTooSmall {
        /// What was asked for.
        requested: usize,
        /// The smallest usable value.
        minimum: usize,
    },
    /// The underlying tokenizer failed while encoding a text.
    #[error("cannot tokenize {text:?}: {reason}")]
    Encode {
        /// The (cleaned) text, shortened to 80 chars.
        text: String,
        /// What the tokenizer reported.
        reason: String,
    },
}

/// `Result` with [`TokenizerError`] as the default error.
pub type Result<T, E = TokenizerError> = std::result::Result<T, E>;
