//! Atomic file output: every file is written to a temporary sibling and renamed into place,
//! so a reader (or a crashed run) never sees a half-written PNG, CSV or report.

use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, RgbImage};
use serde::Serialize;

use crate::error::{Result, VizError};

/// Writes `bytes` to `path` atomically (see [`atomic_io`]: temporary sibling, fsync, rename;
/// missing folders are created, the temporary file never outlives a failure).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(atomic_io::write_atomic(path, bytes)?)
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
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn path_without_file_name_is_an_error() {
        let err = write_atomic(Path::new("/"), b"x").unwrap_err();
        assert!(matches!(err, VizError::Write(_)));
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
        let text = std::fs::read_to_string(&path).unwrap();
        let back: Vec<i32> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, vec![1, 2, 3]);
    }
}
