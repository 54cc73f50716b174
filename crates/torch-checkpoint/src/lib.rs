//! Read PyTorch and safetensors checkpoints as plain data, without Python and without
//! ever executing code from the file.
//!
//! The result is a [`StateDict`]: tensor names in file order mapped to [`RawTensor`]s
//! (shape, [`DType`], contiguous little-endian bytes). Model crates map the names onto
//! their modules and transpose where needed; this crate only handles formats and wrappers.
//!
//! ```no_run
//! let sd = torch_checkpoint::load("MedCLIPSeg_unimedclip_ViT-B-16_latest.pth")?;
//! let (shape, values) = sd.tensor_f32("logit_scale")?;
//! # Ok::<(), torch_checkpoint::Error>(())
//! ```
//!
//! `cargo run -p torch-checkpoint --example inspect -- FILE [WRAPPER_KEY]` lists a file's
//! tensors (name, dtype, shape) and the loader's notes.
//!
//! # Supported formats
//!
//! [`load`] looks at the content, not the file extension:
//!
//! * **torch.save zip** (PyTorch ≥ 1.6): `<folder>/data.pkl` plus one `<folder>/data/<key>`
//!   entry per storage; the folder name is free. `<folder>/byteorder` selects little or big
//!   endian. TorchScript archives are refused with an explanation.
//! * **torch.save legacy** (PyTorch < 1.6): magic-number, protocol and sys-info pickles,
//!   the object pickle, the storage key list, then the raw storages.
//! * **safetensors**: read with the `safetensors` crate, `__metadata__` kept in
//!   [`StateDict::metadata`]. [`save_safetensors`] writes the project's own weight files.
//!
//! Pickle protocols 2 to 5 are read (torch writes 2). The tar format of PyTorch < 0.4 is
//! refused with [`Error::LegacyTar`].
//!
//! # Safety model
//!
//! A pickle is a program: `torch.load(weights_only=False)` imports and calls whatever the
//! file names, so a checkpoint can run `os.system`. Here the [`pickle`] module is a data
//! parser:
//!
//! * `GLOBAL`/`STACK_GLOBAL` resolve only names on a fixed allow-list:
//!   `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` / `_rebuild_tensor` /
//!   `_rebuild_parameter` / `_rebuild_parameter_with_state`,
//!   `torch._tensor._rebuild_from_type_v2`, the `torch.*Storage` types, `torch.Tensor`,
//!   `torch.nn.parameter.Parameter`, `torch.device`, `torch.Size`, `builtins.set` /
//!   `frozenset` / `bytes` / `bytearray`, `_codecs.encode` (protocol 2 bytes) and numpy
//!   scalars (`numpy.core.multiarray.scalar`, `numpy.dtype`, e.g. a saved `best_dice`).
//!   Any other name (`os.system`, `builtins.eval`, a model class...) stops the load with
//!   [`pickle::PickleError::UnsupportedGlobal`], wherever it sits in the file: the whole
//!   pickle must be plain data, even parts that are not loaded.
//! * Nothing is ever called. `REDUCE` on an allow-listed name is *interpreted*:
//!   `_rebuild_tensor_v2(storage, offset, size, stride, ..)` becomes a strided view of the
//!   storage (non-contiguous views are gathered), `_rebuild_parameter(tensor, ..)` is the
//!   tensor, `OrderedDict()` an empty dict.
//! * Hostile input cannot crash or exhaust the process: reads are bounds-checked, nesting
//!   is capped at [`pickle::MAX_DEPTH`], memo references expand against a budget
//!   proportional to the pickle size, and tensors or storages larger than a small multiple
//!   of the file size are refused ([`Error::TooLarge`]) before any allocation. The fuzz
//!   targets in `fuzz/` exercise [`pickle::parse`] and [`load_from_bytes`].
//!
//! # Wrappers and prefixes
//!
//! Training checkpoints wrap the state dict: MedCLIPSeg saves
//! `{"model": state_dict, "epoch", "optimizer", "scheduler", "best_dice"}`, open_clip
//! `{"state_dict": ..., "epoch", ...}`. With [`Wrapper::Auto`] (what [`load`] uses) the
//! top-level `state_dict` entry is taken if it is a dict holding tensors, else `model`, else
//! the top-level dict itself. [`Wrapper::Key`] names the entry explicitly; [`Wrapper::None`]
//! takes the top level as is. Wrappers apply to torch files; safetensors files are flat.
//!
//! Inside the state dict, non-tensor entries (integers, strings, the `_metadata` attribute)
//! are skipped and listed in [`StateDict::notes`]. If *every* key starts with `module.`
//! (a model saved from `DataParallel`), that prefix is removed; a partial `module.` prefix
//! is left alone, as it may be a real sub-module name. A key set twice keeps its last value.

#![warn(missing_docs)]

mod error;
mod extract;
mod legacy;
pub mod pickle;
mod safetensors_io;
mod state_dict;
mod tensor;
mod zip_format;

use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::path::Path;

pub use error::{Error, Result};
pub use extract::Wrapper;
pub use safetensors_io::{save_safetensors, to_safetensors_bytes};
pub use state_dict::StateDict;
pub use tensor::{DType, RawTensor, TensorError};

/// A checkpoint container format recognised by [`detect_format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `torch.save` zip archive (PyTorch ≥ 1.6).
    TorchZip,
    /// `torch.save` legacy stream (PyTorch < 1.6).
    TorchLegacy,
    /// safetensors.
    Safetensors,
}

/// Bytes of the file head that [`detect_format`] looks at.
const HEAD_LEN: usize = 512;
/// Where a tar archive (PyTorch < 0.4 checkpoints) has its `ustar` magic.
const TAR_MAGIC_OFFSET: usize = 257;

/// Recognises a checkpoint format from the first bytes of a file (512 are enough).
pub fn detect_format(head: &[u8]) -> Option<Format> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(Format::TorchZip)
    } else if head.starts_with(legacy::MAGIC_PICKLE_PREFIX) {
        Some(Format::TorchLegacy)
    } else if safetensors_io::looks_like_safetensors(head) {
        Some(Format::Safetensors)
    } else {
        None
    }
}

/// Why the head matches no format, for [`Error::UnknownFormat`] (or the tar error).
fn unknown_format(head: &[u8], path: &Path) -> Error {
    let path = path.to_path_buf();
    if head.get(TAR_MAGIC_OFFSET..TAR_MAGIC_OFFSET + 5) == Some(b"ustar") {
        return Error::LegacyTar { path };
    }
    let detail = if head.is_empty() {
        "the file is empty".to_owned()
    } else if head[0] == 0x80 {
        "a Python pickle without torch's header: not written by torch.save".to_owned()
    } else {
        let shown: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("starts with bytes {}", shown.join(" "))
    };
    Error::UnknownFormat { path, detail }
}

/// Loads the state dict from a `.pt`/`.pth`/`.bin` (torch.save) or `.safetensors` file,
/// unwrapping it with [`Wrapper::Auto`].
pub fn load(path: impl AsRef<Path>) -> Result<StateDict> {
    load_with_wrapper(path, &Wrapper::Auto)
}

/// Loads the state dict from a file, choosing the wrapper entry explicitly.
pub fn load_with_wrapper(path: impl AsRef<Path>, wrapper: &Wrapper) -> Result<StateDict> {
    let path = path.as_ref();
    let mut file = File::open(path).map_err(Error::io(path))?;
    let file_len = file.metadata().map_err(Error::io(path))?.len();
    let mut head = Vec::with_capacity(HEAD_LEN);
    (&mut file)
        .take(HEAD_LEN as u64)
        .read_to_end(&mut head)
        .map_err(Error::io(path))?;
    if detect_format(&head) == Some(Format::TorchZip) {
        // Zip entries are read on demand: only the storages of the state dict are loaded.
        return zip_format::load(BufReader::new(file), path, wrapper, file_len);
    }
    let mut bytes = head;
    file.read_to_end(&mut bytes).map_err(Error::io(path))?;
    load_bytes(&bytes, path, wrapper)
}

/// Loads a state dict from an in-memory file; `name_for_errors` labels it in errors.
/// Never panics, whatever the bytes (this is the `checkpoint` fuzz target).
pub fn load_from_bytes(bytes: &[u8], name_for_errors: &str) -> Result<StateDict> {
    load_bytes(bytes, Path::new(name_for_errors), &Wrapper::Auto)
}

/// [`load_from_bytes`] with an explicit wrapper choice.
pub fn load_from_bytes_with_wrapper(
    bytes: &[u8],
    name_for_errors: &str,
    wrapper: &Wrapper,
) -> Result<StateDict> {
    load_bytes(bytes, Path::new(name_for_errors), wrapper)
}

fn load_bytes(bytes: &[u8], path: &Path, wrapper: &Wrapper) -> Result<StateDict> {
    match detect_format(bytes) {
        Some(Format::TorchZip) => {
            zip_format::load(Cursor::new(bytes), path, wrapper, bytes.len() as u64)
        }
        Some(Format::TorchLegacy) => legacy::load(bytes, path, wrapper),
        Some(Format::Safetensors) => safetensors_io::load(bytes, path),
        None => Err(unknown_format(&bytes[..bytes.len().min(HEAD_LEN)], path)),
    }
}

#[cfg(test)]
mod tests;

/// The README example, compiled as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
