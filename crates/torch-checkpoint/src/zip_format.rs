//! The zip checkpoint layout written by `torch.save` since PyTorch 1.6:
//!
//! ```text
//! <prefix>/data.pkl        the pickled object; tensors refer to storages by key
//! <prefix>/byteorder       "little" or "big" (absent in files before torch 2.1: little)
//! <prefix>/data/<key>      raw storage bytes, one entry per storage
//! <prefix>/version, <prefix>/.data/...   ignored
//! ```
//! `<prefix>` is `archive` or, in older versions, the file's stem; any single folder works.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use zip::ZipArchive;
use zip::result::ZipError;

use crate::error::{Error, Result};
use crate::extract::{self, Budget, StorageSource, Wrapper};
use crate::pickle::{self, StorageRef};
use crate::state_dict::StateDict;

/// Largest `data.pkl` accepted (real ones are kilobytes to a few megabytes).
const MAX_PICKLE_BYTES: u64 = 256 << 20;
/// End-of-central-directory record signature.
const EOCD_SIGNATURE: &[u8] = b"PK\x05\x06";
/// The EOCD record sits within its 22 bytes plus a comment of at most 64 KiB from the end.
const EOCD_SEARCH_WINDOW: u64 = 22 + 0xffff;

/// Loads a state dict from a torch zip checkpoint.
pub(crate) fn load<R: Read + Seek>(
    mut reader: R,
    path: &Path,
    wrapper: &Wrapper,
    file_len: u64,
) -> Result<StateDict> {
    let truncated = !has_eocd(&mut reader).map_err(Error::io(path))?;
    let mut archive = ZipArchive::new(reader).map_err(|e| open_error(path, e, truncated))?;
    let prefix = find_prefix(&archive, path)?;
    let mut budget = Budget::for_file(path, file_len);

    let pkl_name = format!("{prefix}/data.pkl");
    let pkl = read_entry(&mut archive, &pkl_name, MAX_PICKLE_BYTES, path, &mut budget)?
        .ok_or_else(|| Error::MissingDataPkl {
            path: path.to_path_buf(),
        })?;
    let big_endian = byte_order(&mut archive, &prefix, path, &mut budget)?;
    let root = pickle::parse(&pkl).map_err(|source| Error::Pickle {
        path: path.to_path_buf(),
        entry: pkl_name,
        source,
    })?;
    drop(pkl);

    let (dict, key) = extract::select(&root, wrapper, path)?;
    let entries = extract::entries(dict, key.as_deref(), path)?;
    drop(root);
    let mut storages = ZipStorages {
        archive,
        prefix,
        path,
        big_endian,
    };
    extract::materialize(path, entries, &mut storages, &mut budget)
}

/// Whether the end-of-central-directory signature is present near the end of the file;
/// a torch zip without it was cut short.
fn has_eocd<R: Read + Seek>(reader: &mut R) -> std::io::Result<bool> {
    let len = reader.seek(SeekFrom::End(0))?;
    let start = len.saturating_sub(EOCD_SEARCH_WINDOW);
    reader.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    reader.take(EOCD_SEARCH_WINDOW).read_to_end(&mut tail)?;
    reader.seek(SeekFrom::Start(0))?;
    Ok(tail
        .windows(EOCD_SIGNATURE.len())
        .any(|w| w == EOCD_SIGNATURE))
}

fn open_error(path: &Path, err: ZipError, truncated: bool) -> Error {
    if truncated {
        return Error::Truncated {
            path: path.to_path_buf(),
            detail: "the zip archive has no end-of-central-directory record (the file was \
                     probably cut short while downloading or copying)"
                .into(),
        };
    }
    zip_error(path, err)
}

fn zip_error(path: &Path, err: ZipError) -> Error {
    match err {
        ZipError::Io(source) if source.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::Truncated {
                path: path.to_path_buf(),
                detail: format!("zip entry data ends early: {source}"),
            }
        }
        ZipError::Io(source) => Error::BadZip {
            path: path.to_path_buf(),
            detail: source.to_string(),
        },
        other => Error::BadZip {
            path: path.to_path_buf(),
            detail: other.to_string(),
        },
    }
}

/// The archive's top folder: the one holding `data.pkl`.
fn find_prefix<R: Read + Seek>(archive: &ZipArchive<R>, path: &Path) -> Result<String> {
    let prefix = archive
        .file_names()
        .filter_map(|name| name.strip_suffix("/data.pkl"))
        .find(|prefix| !prefix.is_empty() && !prefix.contains('/'))
        .map(str::to_owned);
    match prefix {
        Some(prefix) => {
            if archive
                .index_for_name(&format!("{prefix}/constants.pkl"))
                .is_some()
            {
                return Err(Error::TorchScript {
                    path: path.to_path_buf(),
                });
            }
            Ok(prefix)
        }
        None => Err(Error::MissingDataPkl {
            path: path.to_path_buf(),
        }),
    }
}

/// Reads entry `name` if it holds at most `cap` bytes; `None` if there is no such entry.
fn read_entry<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    name: &str,
    cap: u64,
    path: &Path,
    budget: &mut Budget,
) -> Result<Option<Vec<u8>>> {
    let mut entry = match archive.by_name(name) {
        Ok(entry) => entry,
        Err(ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(zip_error(path, e)),
    };
    let declared = entry.size();
    if declared > cap {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            detail: format!("zip entry `{name}` claims {declared} bytes (limit {cap})"),
        });
    }
    budget.charge(declared, || format!("zip entry `{name}`"))?;
    let mut buf = Vec::new();
    (&mut entry)
        .take(declared)
        .read_to_end(&mut buf)
        .map_err(|e| zip_error(path, ZipError::Io(e)))?;
    Ok(Some(buf))
}

fn byte_order<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    prefix: &str,
    path: &Path,
    budget: &mut Budget,
) -> Result<bool> {
    match read_entry(archive, &format!("{prefix}/byteorder"), 16, path, budget)? {
        None => Ok(false),
        Some(raw) => match raw.as_slice() {
            b"little" => Ok(false),
            b"big" => Ok(true),
            other => Err(Error::Malformed {
                path: path.to_path_buf(),
                detail: format!(
                    "byteorder record is {:?}, expected \"little\" or \"big\"",
                    String::from_utf8_lossy(other)
                ),
            }),
        },
    }
}

/// Storages read lazily from `<prefix>/data/<key>`.
struct ZipStorages<'p, R> {
    archive: ZipArchive<R>,
    prefix: String,
    path: &'p Path,
    big_endian: bool,
}

impl<R: Read + Seek> StorageSource for ZipStorages<'_, R> {
    fn read(&mut self, storage: &StorageRef, budget: &mut Budget) -> Result<Vec<u8>> {
        let name = format!("{}/data/{}", self.prefix, storage.key);
        let missing = || Error::StorageMissing {
            path: self.path.to_path_buf(),
            key: storage.key.clone(),
        };
        let mut entry = match self.archive.by_name(&name) {
            Ok(entry) => entry,
            Err(ZipError::FileNotFound) => return Err(missing()),
            Err(e) => return Err(zip_error(self.path, e)),
        };
        // Read what the pickle declares, never more than the entry holds; the caller
        // checks that every tensor view fits in what was read.
        let declared = storage
            .numel
            .saturating_mul(storage.kind.element_size as u64);
        let wanted = declared.min(entry.size());
        budget.charge(wanted, || format!("storage `{}`", storage.key))?;
        let mut buf = Vec::with_capacity(usize::try_from(wanted).unwrap_or(0));
        (&mut entry)
            .take(wanted)
            .read_to_end(&mut buf)
            .map_err(|e| zip_error(self.path, ZipError::Io(e)))?;
        Ok(buf)
    }

    fn big_endian(&self) -> bool {
        self.big_endian
    }
}
