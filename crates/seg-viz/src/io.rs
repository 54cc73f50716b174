//! Atomic file output: every file is written to a temporary sibling and renamed into place,
//! so a reader (or a crashed run) never sees a half-written PNG, CSV or report.

use std::fs;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use image::{ImageFormat, RgbImage};
use serde::Serialize;

use crate::error::{Result, VizError};

/// Distinguishes temp files of concurrent writers inside one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn write_error(path: &Path, source: std::io::Error) -> VizError {
    VizError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// The hidden temporary sibling `path` is first written to.
fn temp_sibling(path: &Path) -> Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        write_error(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name"),
        )
    })?;
    let unique = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let temp_name = format!(
        ".{}.{}-{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        unique
    );
    Ok(path.with_file_name(temp_name))
}

/// Writes `bytes` to `path` atomically (temp file in the same directory, fsync, rename).
/// Missing parent directories are created. On failure the temp file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| write_error(path, e))?;
    }
    let temp = temp_sibling(path)?;
    let written = write_and_sync(&temp, bytes).and_then(|()| fs::rename(&temp, path));
    if let Err(source) = written {
        // Best effort: the temp file may not even exist if creation failed.
        let _ = fs::remove_file(&temp);
        return Err(write_error(path, source));
    }
    Ok(())
}

fn write_and_sync(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Encodes an RGB image as PNG bytes; `path` only names the target in the error.
pub fn encode_png(image: &RgbImage, path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .map_err(|source| VizError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(bytes)
}

/// Writes an RGB image as a PNG file, atomically.
pub fn write_png(path: &Path, image: &RgbImage) -> Result<()> {
    let bytes = encode_png(image, path)?;
    write_atomic(path, &bytes)
}

/// Writes any serialisable value as pretty JSON, atomically (e.g. the data behind a plot,
/// kept next to its PNG so the figure can be redrawn or checked).
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| VizError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn atomic_write_leaves_only_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(dir_entries(dir.path()), vec!["out.txt".to_string()]);
    }

    #[test]
    fn atomic_write_creates_parent_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c.txt");
        write_atomic(&path, b"x").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"x");
    }

    #[test]
    fn failed_write_names_the_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        // The target is an existing directory: the rename must fail.
        let target = dir.path().join("taken");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), b"keep").unwrap();
        let err = write_atomic(&target, b"data").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("taken"), "{message}");
        assert_eq!(dir_entries(dir.path()), vec!["taken".to_string()]);
    }

    #[test]
    fn path_without_file_name_is_an_error() {
        let err = write_atomic(Path::new("/"), b"x").unwrap_err();
        assert!(matches!(err, VizError::Write { .. }));
    }

    #[test]
    fn png_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img.png");
        let img = RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8 * 50, y as u8 * 100, 7]));
        write_png(&path, &img).unwrap();
        let back = image::open(&path).unwrap().to_rgb8();
        assert_eq!(back, img);
        assert_eq!(dir_entries(dir.path()), vec!["img.png".to_string()]);
    }

    #[test]
    fn json_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.json");
        write_json(&path, &vec![1, 2, 3]).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let back: Vec<i32> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, vec![1, 2, 3]);
    }
}
