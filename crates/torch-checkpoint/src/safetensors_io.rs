//! Reading and (atomically) writing safetensors files.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};

use crate::error::{Error, Result};
use crate::state_dict::StateDict;
use crate::tensor::{DType, RawTensor};

/// Safetensors files start with a little-endian u64 header length, then a JSON object.
pub(crate) fn looks_like_safetensors(head: &[u8]) -> bool {
    match head {
        [n0, n1, n2, n3, n4, n5, n6, n7, b'{', ..] => {
            let n = u64::from_le_bytes([*n0, *n1, *n2, *n3, *n4, *n5, *n6, *n7]);
            // The crate caps headers at 100 MB; anything beyond is not safetensors.
            (2..=100_000_000).contains(&n)
        }
        _ => false,
    }
}

fn to_dtype(dtype: Dtype) -> Option<DType> {
    Some(match dtype {
        Dtype::BOOL => DType::Bool,
        Dtype::U8 => DType::U8,
        Dtype::I8 => DType::I8,
        Dtype::I16 => DType::I16,
        Dtype::U16 => DType::U16,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::I32 => DType::I32,
        Dtype::U32 => DType::U32,
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        Dtype::I64 => DType::I64,
        Dtype::U64 => DType::U64,
        _ => return None,
    })
}

fn from_dtype(dtype: DType) -> Dtype {
    match dtype {
        DType::Bool => Dtype::BOOL,
        DType::U8 => Dtype::U8,
        DType::I8 => Dtype::I8,
        DType::I16 => Dtype::I16,
        DType::U16 => Dtype::U16,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::I32 => Dtype::I32,
        DType::U32 => Dtype::U32,
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::I64 => Dtype::I64,
        DType::U64 => Dtype::U64,
    }
}

/// Loads every tensor of a safetensors file held in memory, in file (offset) order.
pub(crate) fn load(bytes: &[u8], path: &Path) -> Result<StateDict> {
    // `read_metadata` validates the header, the offsets and the total length.
    let (header_len, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| header_error(bytes, path, e))?;
    let data = bytes.get(8 + header_len..).unwrap_or_default();
    let mut sd = StateDict::new(path);
    if let Some(extra) = metadata.metadata() {
        sd.metadata_mut()
            .extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    for name in metadata.offset_keys() {
        let info = metadata
            .info(&name)
            .ok_or_else(|| bad(path, format!("tensor `{name}` has no header entry")))?;
        let dtype = to_dtype(info.dtype).ok_or_else(|| Error::UnsupportedDtype {
            path: path.to_path_buf(),
            tensor: name.clone(),
            dtype: format!("{:?}", info.dtype),
        })?;
        let (start, end) = info.data_offsets;
        let raw = data.get(start..end).ok_or_else(|| {
            bad(
                path,
                format!("tensor `{name}` lies outside the data section"),
            )
        })?;
        let tensor = RawTensor::new(info.shape.clone(), dtype, raw.to_vec())
            .map_err(|e| bad(path, format!("tensor `{name}`: {e}")))?;
        sd.insert(name, tensor);
    }
    Ok(sd)
}

fn bad(path: &Path, detail: String) -> Error {
    Error::BadSafetensors {
        path: path.to_path_buf(),
        detail,
    }
}

/// Maps the crate's header errors, telling a cut-off file apart from a malformed one.
fn header_error(bytes: &[u8], path: &Path, err: SafeTensorError) -> Error {
    let truncated = match &err {
        SafeTensorError::HeaderTooSmall | SafeTensorError::InvalidHeaderLength => true,
        SafeTensorError::MetadataIncompleteBuffer => {
            data_end(bytes).is_some_and(|end| end > bytes.len() as u64)
        }
        _ => false,
    };
    if truncated {
        Error::Truncated {
            path: path.to_path_buf(),
            detail: format!("safetensors {err}"),
        }
    } else {
        bad(path, err.to_string())
    }
}

/// Where the header says the data section ends.
fn data_end(bytes: &[u8]) -> Option<u64> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let header_end = 8u64.checked_add(n)?;
    let header = bytes.get(8..usize::try_from(header_end).ok()?)?;
    let json: serde_json::Value = serde_json::from_slice(header).ok()?;
    let max_offset = json
        .as_object()?
        .values()
        .filter_map(|info| info.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    header_end.checked_add(max_offset)
}

/// A borrowed tensor in the shape the safetensors writer wants.
struct SafeView<'a>(&'a RawTensor);

impl View for SafeView<'_> {
    fn dtype(&self) -> Dtype {
        from_dtype(self.0.dtype())
    }

    fn shape(&self) -> &[usize] {
        self.0.shape()
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.0.bytes())
    }

    fn data_len(&self) -> usize {
        self.0.bytes().len()
    }
}

/// Serializes `sd` (tensors and [`StateDict::metadata`]) to safetensors bytes.
pub fn to_safetensors_bytes(sd: &StateDict) -> Result<Vec<u8>> {
    let metadata: Option<HashMap<String, String>> = (!sd.metadata().is_empty()).then(|| {
        sd.metadata()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    });
    safetensors::tensor::serialize(sd.iter().map(|(k, t)| (k, SafeView(t))), metadata)
        .map_err(|e| bad(sd.source(), format!("cannot serialize: {e}")))
}

/// Writes `sd` to `path` as safetensors, with [`StateDict::metadata`] as `__metadata__`.
///
/// The write is atomic ([`atomic_io`]): the bytes go to a temporary file in the same directory,
/// which is flushed to disk and then renamed over `path`, so readers never see a partial file.
pub fn save_safetensors(path: impl AsRef<Path>, sd: &StateDict) -> Result<()> {
    let path = path.as_ref();
    let bytes = to_safetensors_bytes(sd)?;
    atomic_io::write_atomic(path, &bytes).map_err(|e| Error::Io {
        path: e.path,
        error: e.source,
    })?;
    Ok(())
}
