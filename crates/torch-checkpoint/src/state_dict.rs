//! [`StateDict`]: an ordered map from parameter name to [`RawTensor`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::error::{Error, Result};
use crate::tensor::RawTensor;

/// Named tensors in file order, plus the file they came from (for error messages),
/// safetensors `__metadata__`, and notes about entries skipped while loading.
#[derive(Debug, Clone, Default)]
pub struct StateDict {
    source: PathBuf,
    tensors: IndexMap<String, RawTensor>,
    metadata: BTreeMap<String, String>,
    notes: Vec<String>,
}

impl StateDict {
    /// An empty state dict; `source` names it in errors (a path, or a label such as `memory`).
    pub fn new(source: impl Into<PathBuf>) -> Self {
        Self {
            source: source.into(),
            ..Self::default()
        }
    }

    /// The file this state dict was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Tensor names in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// `(name, tensor)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawTensor)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// True when `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&RawTensor> {
        self.tensors.get(name)
    }

    /// Removes and returns the tensor called `name`, keeping the order of the others.
    pub fn take(&mut self, name: &str) -> Option<RawTensor> {
        self.tensors.shift_remove(name)
    }

    /// Adds or replaces a tensor (a replaced tensor keeps its position); returns the old one.
    pub fn insert(&mut self, name: impl Into<String>, tensor: RawTensor) -> Option<RawTensor> {
        self.tensors.insert(name.into(), tensor)
    }

    /// Like [`get`](Self::get), but a missing tensor is an error naming the file.
    pub fn require(&self, name: &str) -> Result<&RawTensor> {
        self.get(name).ok_or_else(|| self.missing(name))
    }

    /// Like [`take`](Self::take), but a missing tensor is an error naming the file.
    pub fn take_required(&mut self, name: &str) -> Result<RawTensor> {
        self.take(name).ok_or_else(|| self.missing(name))
    }

    /// Shape and values of `name` as `f32` (see [`RawTensor::to_f32_vec`]).
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let t = self.require(name)?;
        Ok((t.shape().to_vec(), t.to_f32_vec()))
    }

    /// Shape and values of `name` as `i64` (see [`RawTensor::to_i64_vec`]).
    pub fn tensor_i64(&self, name: &str) -> Result<(Vec<usize>, Vec<i64>)> {
        let t = self.require(name)?;
        let values = t.to_i64_vec().map_err(|source| Error::Conversion {
            path: self.source.clone(),
            name: name.to_owned(),
            source,
        })?;
        Ok((t.shape().to_vec(), values))
    }

    /// Removes `prefix` from every key that starts with it (others are kept as they are),
    /// preserving order. Returns how many keys were renamed; fails if a new name clashes.
    pub fn strip_prefix(&mut self, prefix: &str) -> Result<usize> {
        let mut renamed = 0;
        let mut out = IndexMap::with_capacity(self.tensors.len());
        for (key, tensor) in std::mem::take(&mut self.tensors) {
            let new_key = match key.strip_prefix(prefix) {
                Some(rest) => {
                    renamed += 1;
                    rest.to_owned()
                }
                None => key.clone(),
            };
            if out.contains_key(&new_key) {
                return Err(Error::KeyCollision {
                    path: self.source.clone(),
                    from: key,
                    to: new_key,
                });
            }
            out.insert(new_key, tensor);
        }
        self.tensors = out;
        Ok(renamed)
    }

    /// Moves every tensor whose key starts with `prefix` into a new state dict, with the
    /// prefix removed (e.g. `take_prefixed("visual.")` for one sub-module).
    pub fn take_prefixed(&mut self, prefix: &str) -> StateDict {
        let mut taken = StateDict::new(self.source.clone());
        let mut kept = IndexMap::with_capacity(self.tensors.len());
        for (key, tensor) in std::mem::take(&mut self.tensors) {
            match key.strip_prefix(prefix) {
                Some(rest) => {
                    taken.tensors.insert(rest.to_owned(), tensor);
                }
                None => {
                    kept.insert(key, tensor);
                }
            }
        }
        self.tensors = kept;
        taken
    }

    /// Safetensors `__metadata__` (empty for torch files). Written back by
    /// [`save_safetensors`](crate::save_safetensors).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Mutable access to the metadata, e.g. to record provenance before saving.
    pub fn metadata_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.metadata
    }

    /// What the loader skipped or changed (non-tensor entries, stripped `module.` prefix...).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    pub(crate) fn add_note(&mut self, note: String) {
        self.notes.push(note);
    }

    fn missing(&self, name: &str) -> Error {
        Error::MissingTensor {
            path: self.source.clone(),
            name: name.to_owned(),
        }
    }
}

impl IntoIterator for StateDict {
    type Item = (String, RawTensor);
    type IntoIter = indexmap::map::IntoIter<String, RawTensor>;

    fn into_iter(self) -> Self::IntoIter {
        self.tensors.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(v: f32) -> RawTensor {
        RawTensor::from_f32(vec![], &[v]).unwrap()
    }

    fn sample() -> StateDict {
        let mut sd = StateDict::new("sample.pt");
        sd.insert("module.a", scalar(1.0));
        sd.insert("b", scalar(2.0));
        sd.insert("module.c", scalar(3.0));
        sd
    }

    #[test]
    fn take_keeps_order_of_the_rest() {
        let mut sd = sample();
        assert_eq!(sd.take("b"), Some(scalar(2.0)));
        assert_eq!(sd.keys().collect::<Vec<_>>(), ["module.a", "module.c"]);
        assert!(sd.take("b").is_none());
    }

    #[test]
    fn strip_prefix_renames_only_matching_keys() {
        let mut sd = sample();
        assert_eq!(sd.strip_prefix("module.").unwrap(), 2);
        assert_eq!(sd.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    #[test]
    fn strip_prefix_reports_collisions_with_the_file() {
        let mut sd = sample();
        sd.insert("a", scalar(9.0));
        let err = sd.strip_prefix("module.").unwrap_err();
        assert!(matches!(&err, Error::KeyCollision { to, .. } if to == "a"));
        assert!(err.to_string().starts_with("sample.pt:"));
    }

    #[test]
    fn take_prefixed_splits_the_dict() {
        let mut sd = sample();
        let sub = sd.take_prefixed("module.");
        assert_eq!(sub.keys().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(sd.keys().collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn require_names_file_and_tensor() {
        let sd = sample();
        let msg = sd.require("zzz").unwrap_err().to_string();
        assert!(msg.contains("sample.pt") && msg.contains("zzz"), "{msg}");
        // The file and tensor in the message, the dtype problem in its source.
        let err = sd.tensor_i64("b").unwrap_err();
        let msg = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(msg.contains("sample.pt") && msg.contains("f32"), "{msg}");
        assert_eq!(msg.matches("f32").count(), 1, "{msg}");
    }
}
