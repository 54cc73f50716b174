//! The crate's error type. Every variant names the file it is about.

use std::path::{Path, PathBuf};

use crate::pickle::PickleError;
use crate::tensor::TensorError;

/// Errors from loading or saving checkpoints. Each variant carries the file path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read or written.
    // The I/O error is in the message, so it is not also `source()` (a chain printer would
    // say it twice).
    #[error("{}: {error}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file ends early (an interrupted download or copy).
    #[error("{}: file is truncated: {detail}", .path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was cut off.
        detail: String,
    },
    /// The zip container itself is invalid.
    #[error("{}: invalid zip archive: {detail}", .path.display())]
    BadZip {
        /// The file.
        path: PathBuf,
        /// The zip reader's complaint.
        detail: String,
    },
    /// A zip archive without `<folder>/data.pkl`: not written by `torch.save`.
    #[error("{}: zip archive has no `<folder>/data.pkl` entry, so it is not a torch.save checkpoint", .path.display())]
    MissingDataPkl {
        /// The file.
        path: PathBuf,
    },
    /// A TorchScript archive (`torch.jit.save`), which holds code, not just weights.
    #[error(
        "{}: this is a TorchScript archive (torch.jit.save); load it in Python and save \
         `model.state_dict()` with torch.save instead",
        .path.display()
    )]
    TorchScript {
        /// The file.
        path: PathBuf,
    },
    /// The pickle references a storage the file does not contain.
    #[error("{}: storage `{key}` referenced by the pickle is missing from the file", .path.display())]
    StorageMissing {
        /// The file.
        path: PathBuf,
        /// Storage key.
        key: String,
    },
    /// A tensor's shape, strides and offset reach past the end of its storage.
    #[error(
        "{}: tensor `{tensor}` needs {needed} elements of storage `{key}` but it has {available}",
        .path.display()
    )]
    StorageTooSmall {
        /// The file.
        path: PathBuf,
        /// Tensor name in the state dict.
        tensor: String,
        /// Storage key.
        key: String,
        /// Elements the view needs (offset + extent).
        needed: u64,
        /// Elements the storage holds.
        available: u64,
    },
    /// A tensor of a type this crate cannot represent (complex, quantized, fp8...).
    #[error("{}: tensor `{tensor}` has unsupported dtype {dtype}", .path.display())]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        tensor: String,
        /// The storage or safetensors type name.
        dtype: String,
    },
    /// The pickle was rejected: unsupported opcode or global, stack underflow, malformed
    /// or over a safety limit. See [`PickleError`].
    #[error("{} ({entry}): {source}", .path.display())]
    Pickle {
        /// The file.
        path: PathBuf,
        /// Which pickle inside the file (`archive/data.pkl`, `legacy object`...).
        entry: String,
        /// What was wrong.
        #[source]
        source: PickleError,
    },
    /// The file parsed, but holds no state dict with tensors.
    #[error("{}: not a checkpoint: {detail}", .path.display())]
    NotACheckpoint {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },
    /// The content matches none of the supported formats.
    #[error(
        "{}: unrecognised format ({detail}); expected a torch.save .pt/.pth (zip or legacy) \
         or a .safetensors file",
        .path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// What the first bytes look like.
        detail: String,
    },
    /// The tar-based format of PyTorch before 0.4.
    #[error(
        "{}: legacy tar checkpoint format (PyTorch < 0.4) is not supported; re-save it with a \
         recent torch",
        .path.display()
    )]
    LegacyTar {
        /// The file.
        path: PathBuf,
    },
    /// The safetensors header or layout is invalid.
    #[error("{}: malformed safetensors file: {detail}", .path.display())]
    BadSafetensors {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// A structural problem outside the pickle (byte order record, legacy header...).
    #[error("{}: malformed checkpoint: {detail}", .path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// A tensor or storage larger than the file can justify (protects memory).
    #[error("{}: {detail}", .path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What was too large.
        detail: String,
    },
    /// `Wrapper::Key` named a key the checkpoint does not have (or not a dict).
    #[error("{}: no state dict under key `{key}`; top-level entries: {available}", .path.display())]
    WrapperKeyMissing {
        /// The file.
        path: PathBuf,
        /// The requested key.
        key: String,
        /// The top-level keys found, for the message.
        available: String,
    },
    /// A tensor the caller asked for is not in the state dict.
    #[error("{}: tensor `{name}` not found in the state dict", .path.display())]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
    },
    /// A tensor could not be converted to the requested element type.
    #[error("{}: tensor `{name}`", .path.display())]
    Conversion {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// Why.
        #[source]
        source: TensorError,
    },
    /// Renaming keys would merge two tensors into one name.
    #[error("{}: renaming `{from}` to `{to}` collides with an existing tensor", .path.display())]
    KeyCollision {
        /// The file.
        path: PathBuf,
        /// Original key.
        from: String,
        /// Name it would get.
        to: String,
    },
}

impl Error {
    /// The file this error is about.
    pub fn path(&self) -> &Path {
        match self {
            Error::Io { path, .. }
            | Error::Truncated { path, .. }
            | Error::BadZip { path, .. }
            | Error::MissingDataPkl { path }
            | Error::TorchScript { path }
            | Error::StorageMissing { path, .. }
            | Error::StorageTooSmall { path, .. }
            | Error::UnsupportedDtype { path, .. }
            | Error::Pickle { path, .. }
            | Error::NotACheckpoint { path, .. }
            | Error::UnknownFormat { path, .. }
            | Error::LegacyTar { path }
            | Error::BadSafetensors { path, .. }
            | Error::Malformed { path, .. }
            | Error::TooLarge { path, .. }
            | Error::WrapperKeyMissing { path, .. }
            | Error::MissingTensor { path, .. }
            | Error::Conversion { path, .. }
            | Error::KeyCollision { path, .. } => path,
        }
    }

    /// `(module, name)` when the file was refused for naming a global outside the allow-list.
    pub fn unsupported_global(&self) -> Option<(&str, &str)> {
        match self {
            Error::Pickle {
                source: PickleError::UnsupportedGlobal { module, name, .. },
                ..
            } => Some((module, name)),
            _ => None,
        }
    }

    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |error| Error::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
