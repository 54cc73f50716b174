//! Uploaded images under the server's own folder: `images/<generated folder>/` holds the file(s)
//! and `meta.json`. Clients name images by id only; an id is checked against a strict alphabet
//! and never becomes a path, so `../../x` cannot reach outside the folder.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ServerError};

/// What an upload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    /// A PNG/JPEG/BMP/TIFF picture, predicted as one image.
    Picture,
    /// A NIfTI volume.
    Nifti,
    /// A DICOM series (one or more files, or a zip of them).
    Dicom,
}

impl ImageKind {
    /// Volumes are predicted slice by slice and answered with NIfTI files.
    pub fn is_volume(self) -> bool {
        self != ImageKind::Picture
    }
}

/// One stored image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredImage {
    /// The id clients use.
    pub id: String,
    /// The uploaded file's base name (for display only).
    pub name: String,
    /// What it holds.
    pub kind: ImageKind,
    /// Upload order (eviction drops the lowest).
    pub seq: u64,
    /// The generated folder under `images/`.
    pub folder: String,
    /// The file inside the folder (`series` for DICOM: a folder).
    pub file: String,
}

/// One uploaded file: its client-side name (base name kept) and bytes.
pub struct Upload {
    /// File name as sent (a full path from some clients).
    pub name: String,
    /// Content.
    pub bytes: Vec<u8>,
}

struct Index {
    next_seq: u64,
    by_id: BTreeMap<String, StoredImage>,
}

/// The image store: bounded, persistent across restarts.
pub struct Datastore {
    root: PathBuf,
    limit: usize,
    index: Mutex<Index>,
}

const META: &str = "meta.json";

impl Datastore {
    /// Opens (or creates) `root/images` and reloads what an earlier run stored.
    pub fn open(root: &Path, limit: usize) -> Result<Self, ServerError> {
        let images = root.join("images");
        let failed = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ServerError::Datastore { path, source }
        };
        std::fs::create_dir_all(&images).map_err(failed(&images))?;
        let mut by_id = BTreeMap::new();
        let mut next_seq = 0;
        for entry in std::fs::read_dir(&images).map_err(failed(&images))? {
            let entry = entry.map_err(failed(&images))?;
            let meta = entry.path().join(META);
            // A folder without readable metadata is an interrupted upload: ignored.
            let Ok(text) = std::fs::read_to_string(&meta) else {
                continue;
            };
            let Ok(image) = serde_json::from_str::<StoredImage>(&text) else {
                continue;
            };
            next_seq = next_seq.max(image.seq + 1);
            by_id.insert(image.id.clone(), image);
        }
        Ok(Self {
            root: images,
            limit: limit.max(1),
            index: Mutex::new(Index { next_seq, by_id }),
        })
    }

    /// Stores an upload under `id` (checked) or a generated one; replaces an image with the same
    /// id and evicts the oldest past the limit. The content is checked by reading it.
    pub fn add(&self, id: Option<&str>, files: Vec<Upload>) -> Result<StoredImage, ApiError> {
        if files.is_empty() {
            return Err(ApiError::bad_request(
                "no file in the upload (field `file`)",
            ));
        }
        if let Some(id) = id {
            check_id(id)?;
        }
        let seq = self.reserve_seq();
        let folder = format!("f{seq:08}-{:08x}", random_u64() as u32);
        let dir = self.root.join(&folder);
        let (kind, file, name) = write_upload(&dir, files).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&dir);
        })?;
        let id = id.map_or_else(|| generated_id(&name, seq), str::to_string);
        let image = StoredImage {
            id,
            name,
            kind,
            seq,
            folder,
            file,
        };
        if let Err(e) = crate::inputs::Input::load(&self.path(&image), kind) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let meta =
            serde_json::to_vec_pretty(&image).map_err(|e| ApiError::internal(e.to_string()))?;
        atomic_io::write_atomic(&dir.join(META), &meta)
            .map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
        self.insert(image.clone());
        Ok(image)
    }

    /// The image with this id.
    pub fn get(&self, id: &str) -> Result<StoredImage, ApiError> {
        check_id(id)?;
        let index = self.index.lock().expect("datastore index");
        index
            .by_id
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no image with id `{id}` in the datastore")))
    }

    /// Every stored image, oldest first.
    pub fn list(&self) -> Vec<StoredImage> {
        let index = self.index.lock().expect("datastore index");
        let mut all: Vec<StoredImage> = index.by_id.values().cloned().collect();
        all.sort_by_key(|i| i.seq);
        all
    }

    /// The file (or DICOM folder) of an image.
    pub fn path(&self, image: &StoredImage) -> PathBuf {
        self.root.join(&image.folder).join(&image.file)
    }

    fn reserve_seq(&self) -> u64 {
        let mut index = self.index.lock().expect("datastore index");
        index.next_seq += 1;
        index.next_seq - 1
    }

    fn insert(&self, image: StoredImage) {
        let mut index = self.index.lock().expect("datastore index");
        if let Some(old) = index.by_id.insert(image.id.clone(), image) {
            let _ = std::fs::remove_dir_all(self.root.join(old.folder));
        }
        while index.by_id.len() > self.limit {
            let oldest = index
                .by_id
                .values()
                .min_by_key(|i| i.seq)
                .map(|i| i.id.clone())
                .expect("a non-empty index");
            if let Some(gone) = index.by_id.remove(&oldest) {
                tracing::info!("datastore full: evicting image `{}`", gone.id);
                let _ = std::fs::remove_dir_all(self.root.join(gone.folder));
            }
        }
    }
}

/// Ids: 1 to 128 printable characters without `/`, `\\` or `..`, not starting with a dot.
/// Slicer sends volume node names (`6: Unnamed Series`); an id is only ever a key, never a path
/// (folders are generated), and [`file_stem`] makes it safe where it names a file.
pub fn check_id(id: &str) -> Result<(), ApiError> {
    let refused = |c: char| c.is_control() || c == '/' || c == '\\';
    if id.is_empty()
        || id.chars().count() > 128
        || id.starts_with('.')
        || id.contains("..")
        || id.chars().any(refused)
    {
        return Err(ApiError::bad_request(format!(
            "bad image id `{}`: ids are 1 to 128 printable characters without '/', '\\' or \
             '..', not starting with '.'",
            id.escape_default()
        )));
    }
    Ok(())
}

/// An id as a file name stem: letters, digits, `.`, `_` and `-` kept, anything else `_`.
pub fn file_stem(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The base name of a client file name (some clients send their full local path), checked.
fn base_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "upload".into()
    } else {
        cleaned
    }
}

fn lower(name: &str) -> String {
    name.to_ascii_lowercase()
}

fn is_picture(name: &str) -> bool {
    let n = lower(name);
    [".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"]
        .iter()
        .any(|e| n.ends_with(e))
}

fn is_nifti(name: &str) -> bool {
    let n = lower(name);
    n.ends_with(".nii") || n.ends_with(".nii.gz")
}

/// Writes the upload into `dir`: a picture or NIfTI file as itself, DICOM files (or a zip of
/// them) into `series/`. Returns the kind, the stored file name and the display name.
fn write_upload(dir: &Path, files: Vec<Upload>) -> Result<(ImageKind, String, String), ApiError> {
    let io = |e: std::io::Error| ApiError::internal(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let first = base_name(&files[0].name);
    if files.len() == 1 && (is_picture(&first) || is_nifti(&first)) {
        let kind = if is_picture(&first) {
            ImageKind::Picture
        } else {
            ImageKind::Nifti
        };
        atomic_io::write_atomic(&dir.join(&first), &files[0].bytes).map_err(|e| io(e.into()))?;
        return Ok((kind, first.clone(), first));
    }
    let series = dir.join("series");
    std::fs::create_dir_all(&series).map_err(io)?;
    let mut written = 0usize;
    for (n, upload) in files.into_iter().enumerate() {
        if lower(&upload.name).ends_with(".zip") {
            written += unzip_flat(&upload.bytes, &series, &upload.name)?;
        } else {
            let name = format!("{n:05}-{}", base_name(&upload.name));
            atomic_io::write_atomic(&series.join(name), &upload.bytes).map_err(|e| io(e.into()))?;
            written += 1;
        }
    }
    if written == 0 {
        return Err(ApiError::unprocessable(format!(
            "{first}: the zip holds no files"
        )));
    }
    Ok((ImageKind::Dicom, "series".into(), first))
}

/// Extracts the files of a zip into `dir` under generated flat names (entry paths are never
/// used as paths).
fn unzip_flat(bytes: &[u8], dir: &Path, name: &str) -> Result<usize, ApiError> {
    let bad = |e: zip::result::ZipError| {
        ApiError::unprocessable(format!("{name}: not a readable zip: {e}"))
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(bad)?;
    let mut count = 0;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(bad)?;
        if entry.is_dir() {
            continue;
        }
        let mut content = Vec::new();
        entry
            .read_to_end(&mut content)
            .map_err(|e| ApiError::unprocessable(format!("{name}: entry {i}: {e}")))?;
        let target = dir.join(format!("z{i:05}-{}", base_name(entry.name())));
        atomic_io::write_atomic(&target, &content)
            .map_err(|e| ApiError::internal(format!("{}: {e}", target.display())))?;
        count += 1;
    }
    Ok(count)
}

/// An id for an upload without one: its file stem (checked alphabet) and the upload number.
fn generated_id(name: &str, seq: u64) -> String {
    let stem = name
        .trim_end_matches(".gz")
        .rsplit_once('.')
        .map_or(name, |(s, _)| s);
    let stem: String = stem.chars().take(64).collect();
    let id = format!("{stem}-{seq}");
    if check_id(&id).is_ok() {
        id
    } else {
        format!("image-{seq}")
    }
}

/// Unpredictable enough for folder and job names (std's randomly keyed hasher, no extra crate).
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_be_paths_are_refused() {
        for bad in [
            "../../x", "..", ".hidden", "a/b", "a\\b", "", "x\0", "a..b", "\n",
        ] {
            assert!(check_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in [
            "CT_chest-1",
            "scan.nii.gz",
            "0",
            "6: Unnamed Series",
            "MRHead",
        ] {
            assert!(check_id(good).is_ok(), "{good:?} refused");
        }
        assert_eq!(file_stem("6: Unnamed Series"), "6__Unnamed_Series");
    }

    #[test]
    fn client_paths_keep_their_base_name_only() {
        assert_eq!(base_name("/home/me/data/scan 1.nii.gz"), "scan_1.nii.gz");
        assert_eq!(base_name("C:\\data\\..\\ct.png"), "ct.png");
        assert_eq!(base_name("../.."), "upload");
        assert_eq!(generated_id("scan.nii.gz", 3), "scan-3");
    }
}
