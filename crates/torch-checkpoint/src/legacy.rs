//! The legacy (non-zip) format of `torch.save` before PyTorch 1.6
//! (`torch.serialization._legacy_save`): five pickles back to back, then raw storages.
//!
//! ```text
//! pickle: magic number 0x1950a86a20f9469cfc6c
//! pickle: protocol version 1001
//! pickle: sys_info {"protocol_version", "little_endian", "type_sizes"}
//! pickle: the object; storages are persistent ids
//!         ("storage", type, key, location, numel, view_metadata)
//! pickle: list of storage keys, in the order their data follows
//! for each key: i64 element count, then count * element_size bytes
//! ```

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::extract::{self, Budget, StorageSource, Wrapper};
use crate::pickle::{self, StorageKind, StorageRef, Value};
use crate::state_dict::StateDict;

/// `torch.serialization.MAGIC_NUMBER` as pickled by protocol 2: `LONG1` with 10 bytes.
pub(crate) const MAGIC_PICKLE_PREFIX: &[u8] = &[
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
];
const MAGIC_LE: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const PROTOCOL_VERSION: i64 = 1001;

/// Reads successive pickles from one buffer.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn pickle(&mut self, entry: &str) -> Result<Value> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let (value, used) = pickle::parse_prefix(rest).map_err(|source| Error::Pickle {
            path: self.path.to_path_buf(),
            entry: format!("legacy {entry} pickle at byte {}", self.pos),
            source,
        })?;
        self.pos += used;
        Ok(value)
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| Error::Truncated {
                path: self.path.to_path_buf(),
                detail: format!("{what} needs {n} bytes at byte {}", self.pos),
            })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn malformed(&self, detail: String) -> Error {
        Error::Malformed {
            path: self.path.to_path_buf(),
            detail,
        }
    }
}

/// Loads a state dict from a legacy-format checkpoint held in memory.
pub(crate) fn load(bytes: &[u8], path: &Path, wrapper: &Wrapper) -> Result<StateDict> {
    let mut cursor = Cursor {
        bytes,
        pos: 0,
        path,
    };
    let little_endian = read_header(&mut cursor)?;
    let root = cursor.pickle("object")?;
    let keys = match cursor.pickle("storage keys")? {
        Value::List(keys) => keys,
        other => {
            return Err(cursor.malformed(format!("storage key list is a {}", other.type_name())));
        }
    };

    let mut kinds: HashMap<String, StorageKind> = HashMap::new();
    extract::for_each_storage(&root, &mut |s| {
        kinds.entry(s.key.clone()).or_insert(s.kind);
    });
    let mut storages = LegacyStorages {
        data: HashMap::new(),
        path,
        big_endian: !little_endian,
    };
    for key in keys {
        let Value::Str(key) = key else {
            return Err(cursor.malformed(format!("storage key is a {}", key.type_name())));
        };
        let kind = kinds.get(&key).ok_or_else(|| {
            cursor.malformed(format!("storage `{key}` is listed but never referenced"))
        })?;
        let data = read_storage(&mut cursor, &key, kind.element_size, little_endian)?;
        storages.data.insert(key, data);
    }

    let (dict, key) = extract::select(&root, wrapper, path)?;
    let entries = extract::entries(dict, key.as_deref(), path)?;
    let mut budget = Budget::for_file(path, bytes.len() as u64);
    extract::materialize(path, entries, &mut storages, &mut budget)
}

/// Checks the magic number and protocol; returns whether the writer was little-endian.
fn read_header(cursor: &mut Cursor<'_>) -> Result<bool> {
    match cursor.pickle("magic number")? {
        Value::BigInt(b) if b == MAGIC_LE => {}
        _ => return Err(cursor.malformed("legacy magic number is wrong".into())),
    }
    match cursor.pickle("protocol version")? {
        Value::Int(PROTOCOL_VERSION) => {}
        other => {
            return Err(cursor.malformed(format!(
                "unsupported legacy protocol version {other:?} (expected {PROTOCOL_VERSION})"
            )));
        }
    }
    let sys_info = cursor.pickle("sys_info")?;
    match sys_info.get("little_endian") {
        Some(Value::Bool(little)) => Ok(*little),
        None => Ok(true),
        Some(other) => {
            Err(cursor.malformed(format!("sys_info little_endian is a {}", other.type_name())))
        }
    }
}

fn read_storage<'a>(
    cursor: &mut Cursor<'a>,
    key: &str,
    element_size: usize,
    little_endian: bool,
) -> Result<&'a [u8]> {
    let header: [u8; 8] = cursor
        .take(8, &format!("size of storage `{key}`"))?
        .try_into()
        .map_err(|_| cursor.malformed("storage size header".into()))?;
    let numel = if little_endian {
        u64::from_le_bytes(header)
    } else {
        u64::from_be_bytes(header)
    };
    let bytes = numel
        .checked_mul(element_size as u64)
        .ok_or_else(|| cursor.malformed(format!("storage `{key}` claims {numel} elements")))?;
    cursor.take(bytes, &format!("data of storage `{key}`"))
}

/// Storage bytes as slices of the in-memory file.
struct LegacyStorages<'a> {
    data: HashMap<String, &'a [u8]>,
    path: &'a Path,
    big_endian: bool,
}

impl StorageSource for LegacyStorages<'_> {
    fn read(&mut self, storage: &StorageRef, budget: &mut Budget) -> Result<Vec<u8>> {
        let data = self
            .data
            .get(&storage.key)
            .ok_or_else(|| Error::StorageMissing {
                path: self.path.to_path_buf(),
                key: storage.key.clone(),
            })?;
        budget.charge(data.len() as u64, || format!("storage `{}`", storage.key))?;
        Ok(data.to_vec())
    }

    fn big_endian(&self) -> bool {
        self.big_endian
    }
}
