//! From a decoded pickle tree to a [`StateDict`]: pick the state dict out of its wrapper,
//! keep the tensor entries, then read each tensor's strided view out of its storage.

use std::collections::HashMap;
use std::path::Path;

use indexmap::IndexMap;

use crate::error::{Error, Result};
use crate::pickle::{StorageKind, StorageRef, TensorRef, Value};
use crate::state_dict::StateDict;
use crate::tensor::{DType, RawTensor};

/// Where the state dict sits inside a pickled checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Wrapper {
    /// The top-level dict's `state_dict` entry if it is a dict of tensors, else its `model`
    /// entry if it is one, else the top-level dict itself.
    #[default]
    Auto,
    /// The top-level dict's entry with this key (an error if absent).
    Key(String),
    /// The top-level object is the state dict.
    None,
}

/// Keys tried by [`Wrapper::Auto`], in order (open_clip / Lightning, then MedCLIPSeg).
const AUTO_WRAPPER_KEYS: [&str; 2] = ["state_dict", "model"];
/// DataParallel / DistributedDataParallel prefix.
const DATA_PARALLEL_PREFIX: &str = "module.";

/// Fixed allowance that [`Budget`] adds to what the file size justifies.
const BUDGET_BASE_BYTES: u64 = 16 << 20;

fn has_tensor(value: &Value) -> bool {
    matches!(value, Value::Dict(items) if items.iter().any(|(_, v)| matches!(v, Value::Tensor(_))))
}

fn top_level_keys(root: &Value) -> String {
    match root {
        Value::Dict(items) => {
            let keys: Vec<String> = items
                .iter()
                .take(20)
                .map(|(k, v)| match k {
                    Value::Str(s) => format!("`{s}` ({})", v.type_name()),
                    other => format!("<{}> ({})", other.type_name(), v.type_name()),
                })
                .collect();
            if keys.is_empty() {
                "none (empty dict)".into()
            } else {
                keys.join(", ")
            }
        }
        other => format!("none (the top-level object is a {})", other.type_name()),
    }
}

/// Picks the state dict out of the checkpoint according to `wrapper`.
pub(crate) fn select<'v>(
    root: &'v Value,
    wrapper: &Wrapper,
    path: &Path,
) -> Result<(&'v Value, Option<String>)> {
    match wrapper {
        Wrapper::None => Ok((root, None)),
        Wrapper::Key(key) => match root.get(key) {
            Some(inner @ Value::Dict(_)) => Ok((inner, Some(key.clone()))),
            _ => Err(Error::WrapperKeyMissing {
                path: path.to_path_buf(),
                key: key.clone(),
                available: top_level_keys(root),
            }),
        },
        Wrapper::Auto => Ok(AUTO_WRAPPER_KEYS
            .iter()
            .find_map(|&key| {
                root.get(key)
                    .filter(|inner| has_tensor(inner))
                    .map(|inner| (inner, Some(key.to_owned())))
            })
            .unwrap_or((root, None))),
    }
}

/// The tensor entries of a state dict, in order, with notes on what was skipped.
pub(crate) struct Entries {
    pub tensors: Vec<(String, TensorRef)>,
    pub notes: Vec<String>,
}

/// Keeps the string-keyed tensor entries of `dict` (later duplicates win, as in Python),
/// notes the rest, and strips a `module.` prefix carried by every key.
pub(crate) fn entries(dict: &Value, wrapper_key: Option<&str>, path: &Path) -> Result<Entries> {
    let not_a_checkpoint = |detail: String| Error::NotACheckpoint {
        path: path.to_path_buf(),
        detail,
    };
    let Value::Dict(items) = dict else {
        return Err(not_a_checkpoint(format!(
            "the top-level object is a {}, not a dict of tensors",
            dict.type_name()
        )));
    };
    let mut notes = Vec::new();
    if let Some(key) = wrapper_key {
        notes.push(format!(
            "state dict taken from the checkpoint's `{key}` entry"
        ));
    }
    let mut by_name: IndexMap<&str, &Value> = IndexMap::new();
    for (key, value) in items {
        match key {
            Value::Str(name) => {
                by_name.insert(name, value);
            }
            other => notes.push(format!("skipped an entry with a {} key", other.type_name())),
        }
    }
    let mut tensors = Vec::with_capacity(by_name.len());
    for (name, value) in by_name {
        match value {
            Value::Tensor(t) => tensors.push((name.to_owned(), t.clone())),
            other => notes.push(format!(
                "skipped non-tensor entry `{name}` ({})",
                other.type_name()
            )),
        }
    }
    if tensors.is_empty() {
        return Err(not_a_checkpoint(format!(
            "no tensors found; entries: {}",
            top_level_keys(dict)
        )));
    }
    if tensors
        .iter()
        .all(|(name, _)| name.starts_with(DATA_PARALLEL_PREFIX))
    {
        for (name, _) in &mut tensors {
            name.drain(..DATA_PARALLEL_PREFIX.len());
        }
        notes.push(format!(
            "stripped the DataParallel prefix `{DATA_PARALLEL_PREFIX}` from every key"
        ));
    }
    Ok(Entries { tensors, notes })
}

/// Calls `visit` on every storage referenced anywhere in the tree (depth is bounded by
/// the pickle reader).
pub(crate) fn for_each_storage(value: &Value, visit: &mut dyn FnMut(&StorageRef)) {
    match value {
        Value::Storage(s) => visit(s),
        Value::Tensor(t) => visit(&t.storage),
        Value::List(vs) | Value::Tuple(vs) | Value::Set(vs) => {
            vs.iter().for_each(|v| for_each_storage(v, visit));
        }
        Value::Dict(kv) => kv.iter().for_each(|(k, v)| {
            for_each_storage(k, visit);
            for_each_storage(v, visit);
        }),
        _ => {}
    }
}

/// Raw storage bytes, as stored in the file (byte order not yet fixed).
pub(crate) trait StorageSource {
    /// Reads storage `storage.key`: up to `storage.numel` elements.
    fn read(&mut self, storage: &StorageRef, budget: &mut Budget) -> Result<Vec<u8>>;
    /// True when the file stores multi-byte elements big-endian.
    fn big_endian(&self) -> bool;
}

/// Bytes the loader may still allocate: a multiple of the file size plus a small fixed
/// allowance. A pickle can describe a huge tensor in a few bytes; this makes that an error.
pub(crate) struct Budget {
    left: u64,
    path: std::path::PathBuf,
}

impl Budget {
    pub(crate) fn for_file(path: &Path, file_len: u64) -> Self {
        Self {
            left: file_len.saturating_mul(4).saturating_add(BUDGET_BASE_BYTES),
            path: path.to_path_buf(),
        }
    }

    pub(crate) fn charge(&mut self, bytes: u64, what: impl FnOnce() -> String) -> Result<()> {
        self.left = self
            .left
            .checked_sub(bytes)
            .ok_or_else(|| Error::TooLarge {
                path: self.path.clone(),
                detail: format!(
                    "{} needs {bytes} bytes, more than a file of this size can hold",
                    what()
                ),
            })?;
        Ok(())
    }
}

/// Element count and the number of storage elements the view reaches.
struct Layout {
    numel: u64,
    /// `offset + max index + 1`, or 0 for an empty tensor.
    extent: u64,
}

fn layout(t: &TensorRef) -> Option<Layout> {
    let numel = t
        .shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))?;
    if numel == 0 {
        return Some(Layout { numel, extent: 0 });
    }
    let last = t
        .shape
        .iter()
        .zip(&t.stride)
        .try_fold(t.offset, |acc, (&d, &s)| {
            acc.checked_add((d - 1).checked_mul(s)?)
        })?;
    Some(Layout {
        numel,
        extent: last.checked_add(1)?,
    })
}

/// True when the strides are row-major contiguous (size-1 dims may have any stride).
fn is_contiguous(shape: &[u64], stride: &[u64]) -> bool {
    let mut expected = 1u64;
    for (&d, &s) in shape.iter().zip(stride).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(d);
    }
    true
}

fn element_dtype(t: &TensorRef, name: &str, path: &Path) -> Result<DType> {
    let kind: StorageKind = t.storage.kind;
    match kind.dtype {
        Some(dtype) if dtype.size_in_bytes() == kind.element_size => Ok(dtype),
        _ => Err(Error::UnsupportedDtype {
            path: path.to_path_buf(),
            tensor: name.to_owned(),
            dtype: kind.name.to_owned(),
        }),
    }
}

/// Copies the strided view out of `storage` (elements of `es` bytes, starting at element
/// `base`), reversing each element's bytes when `swap` is set. `None` if out of bounds.
fn gather(
    storage: &[u8],
    es: usize,
    base: u64,
    t: &TensorRef,
    numel: u64,
    swap: bool,
) -> Option<Vec<u8>> {
    let es64 = es as u64;
    let out_len = usize::try_from(numel.checked_mul(es64)?).ok()?;
    let start = base.checked_add(t.offset)?;
    let mut out = Vec::with_capacity(out_len);
    if is_contiguous(&t.shape, &t.stride) {
        let from = usize::try_from(start.checked_mul(es64)?).ok()?;
        out.extend_from_slice(storage.get(from..from.checked_add(out_len)?)?);
    } else {
        let mut index = vec![0u64; t.shape.len()];
        for _ in 0..numel {
            let element = index
                .iter()
                .zip(&t.stride)
                .try_fold(start, |acc, (&i, &s)| acc.checked_add(i.checked_mul(s)?))?;
            let from = usize::try_from(element.checked_mul(es64)?).ok()?;
            out.extend_from_slice(storage.get(from..from.checked_add(es)?)?);
            advance(&mut index, &t.shape);
        }
    }
    if swap {
        out.chunks_exact_mut(es).for_each(<[u8]>::reverse);
    }
    Some(out)
}

/// Row-major odometer step.
fn advance(index: &mut [u64], shape: &[u64]) {
    for (i, &d) in index.iter_mut().zip(shape).rev() {
        *i += 1;
        if *i < d {
            return;
        }
        *i = 0;
    }
}

/// Reads every tensor of `entries` from `source` into a [`StateDict`].
pub(crate) fn materialize(
    path: &Path,
    entries: Entries,
    source: &mut dyn StorageSource,
    budget: &mut Budget,
) -> Result<StateDict> {
    let mut uses: HashMap<String, usize> = HashMap::new();
    for (_, t) in &entries.tensors {
        *uses.entry(t.storage.key.clone()).or_default() += 1;
    }
    let mut reader = Materializer {
        path,
        swap: source.big_endian(),
        source,
        budget,
        cache: HashMap::new(),
        uses,
    };
    let mut sd = StateDict::new(path);
    for note in entries.notes {
        sd.add_note(note);
    }
    for (name, t) in entries.tensors {
        let tensor = reader.tensor(&name, &t)?;
        sd.insert(name, tensor);
    }
    Ok(sd)
}

/// Reads tensors, keeping each storage in memory only while later tensors still use it.
struct Materializer<'a> {
    path: &'a Path,
    source: &'a mut dyn StorageSource,
    budget: &'a mut Budget,
    swap: bool,
    cache: HashMap<String, Vec<u8>>,
    /// Tensors still to be read, per storage key.
    uses: HashMap<String, usize>,
}

impl Materializer<'_> {
    fn tensor(&mut self, name: &str, t: &TensorRef) -> Result<RawTensor> {
        let path = self.path;
        let dtype = element_dtype(t, name, path)?;
        let es = dtype.size_in_bytes() as u64;
        let too_large = || Error::TooLarge {
            path: path.to_path_buf(),
            detail: format!("tensor `{name}` with shape {:?} is too large", t.shape),
        };
        let Layout { numel, extent } = layout(t).ok_or_else(too_large)?;
        let out_bytes = numel.checked_mul(es).ok_or_else(too_large)?;
        self.budget
            .charge(out_bytes, || format!("tensor `{name}`"))?;
        let shape: Vec<usize> = t
            .shape
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| too_large()))
            .collect::<Result<_>>()?;

        let key = &t.storage.key;
        if !self.cache.contains_key(key) {
            let bytes = self.source.read(&t.storage, self.budget)?;
            self.cache.insert(key.clone(), bytes);
        }
        let last_use = self.uses.get_mut(key).is_none_or(|n| {
            *n = n.saturating_sub(1);
            *n == 0
        });
        let storage = self.cache.get(key).map_or(&[][..], Vec::as_slice);
        let stored_elements = storage.len() as u64 / es;
        // Legacy storages may be views of a root storage.
        let (base, available) = match t.storage.view {
            Some(view) => (
                view.offset,
                view.numel.min(stored_elements.saturating_sub(view.offset)),
            ),
            None => (0, stored_elements),
        };
        let too_small = || Error::StorageTooSmall {
            path: path.to_path_buf(),
            tensor: name.to_owned(),
            key: key.clone(),
            needed: extent,
            available,
        };
        if extent > available {
            return Err(too_small());
        }

        let whole_storage = base == 0 && t.offset == 0 && out_bytes == storage.len() as u64;
        let data = if last_use && whole_storage && is_contiguous(&t.shape, &t.stride) {
            // The last user covers the storage exactly: move the bytes instead of copying.
            let mut bytes = self.cache.remove(key).unwrap_or_default();
            if self.swap {
                bytes
                    .chunks_exact_mut(es as usize)
                    .for_each(<[u8]>::reverse);
            }
            bytes
        } else {
            let bytes =
                gather(storage, es as usize, base, t, numel, self.swap).ok_or_else(too_small)?;
            if last_use {
                self.cache.remove(key);
            }
            bytes
        };
        RawTensor::new(shape, dtype, data).map_err(|e| Error::Malformed {
            path: path.to_path_buf(),
            detail: format!("tensor `{name}`: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor_ref(offset: u64, shape: &[u64], stride: &[u64]) -> TensorRef {
        TensorRef {
            storage: StorageRef {
                key: "0".into(),
                kind: StorageKind {
                    name: "ByteStorage",
                    dtype: Some(DType::U8),
                    element_size: 1,
                },
                location: "cpu".into(),
                numel: 0,
                view: None,
            },
            offset,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
        }
    }

    #[test]
    fn gather_transposes() {
        let storage: Vec<u8> = (0..6).collect();
        let t = tensor_ref(0, &[3, 2], &[1, 3]);
        assert_eq!(
            gather(&storage, 1, 0, &t, 6, false).unwrap(),
            [0, 3, 1, 4, 2, 5]
        );
    }

    #[test]
    fn gather_broadcasts_zero_strides_and_offsets() {
        let storage: Vec<u8> = (0..6).collect();
        let t = tensor_ref(4, &[2, 2], &[0, 1]);
        assert_eq!(gather(&storage, 1, 0, &t, 4, false).unwrap(), [4, 5, 4, 5]);
        // Shifted by one element, the view would read index 6 of a 6-element storage.
        assert!(gather(&storage, 1, 1, &t, 4, false).is_none());
    }

    #[test]
    fn layout_extent_and_overflow() {
        let l = layout(&tensor_ref(2, &[3, 2], &[1, 3])).unwrap();
        assert_eq!((l.numel, l.extent), (6, 2 + 2 + 3 + 1));
        assert_eq!(layout(&tensor_ref(7, &[0, 5], &[5, 1])).unwrap().extent, 0);
        assert!(layout(&tensor_ref(0, &[u64::MAX, 2], &[1, 1])).is_none());
        assert!(layout(&tensor_ref(0, &[2], &[u64::MAX])).is_none());
    }

    #[test]
    fn contiguity_ignores_size_one_dims() {
        assert!(is_contiguous(&[2, 1, 3], &[3, 99, 1]));
        assert!(!is_contiguous(&[2, 3], &[1, 2]));
        assert!(is_contiguous(&[], &[]));
    }

    #[test]
    fn auto_wrapper_prefers_state_dict_then_model() {
        let t = Value::Tensor(tensor_ref(0, &[1], &[1]));
        let sd = Value::Dict(vec![(Value::Str("w".into()), t)]);
        let root = Value::Dict(vec![
            (Value::Str("model".into()), sd.clone()),
            (Value::Str("epoch".into()), Value::Int(3)),
        ]);
        let (chosen, key) = select(&root, &Wrapper::Auto, Path::new("x")).unwrap();
        assert_eq!((chosen, key.as_deref()), (&sd, Some("model")));
        let (chosen, key) = select(&root, &Wrapper::None, Path::new("x")).unwrap();
        assert_eq!((chosen, key), (&root, None));
        let err = select(&root, &Wrapper::Key("ema".into()), Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("`model` (dict)"), "{err}");
    }

    #[test]
    fn module_prefix_is_stripped_only_when_universal() {
        let t = || Value::Tensor(tensor_ref(0, &[1], &[1]));
        let dict = |keys: &[&str]| {
            Value::Dict(
                keys.iter()
                    .map(|k| (Value::Str((*k).into()), t()))
                    .collect(),
            )
        };
        let all = entries(&dict(&["module.a", "module.b"]), None, Path::new("x")).unwrap();
        let names: Vec<_> = all.tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let mixed = entries(&dict(&["module.a", "b"]), None, Path::new("x")).unwrap();
        let names: Vec<_> = mixed.tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["module.a", "b"]);
    }
}
