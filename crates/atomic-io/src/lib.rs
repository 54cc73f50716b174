//! Atomic file writes: a hidden temporary sibling, `fsync`, then a rename over the target,
//! so a reader (or a crashed run) never sees a half-written file. On any failure the
//! temporary file is removed.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("out/report.txt");
//! atomic_io::write_atomic(&path, b"hello\n").unwrap();
//! assert_eq!(std::fs::read(&path).unwrap(), b"hello\n");
//! ```

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What [`write_atomic`] was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Creating the missing parent folders.
    CreateFolder,
    /// Creating, writing or syncing the temporary file.
    Write,
    /// Renaming the temporary file over the target.
    Rename,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::CreateFolder => "cannot create its folder",
            Step::Write => "cannot write",
            Step::Rename => "cannot move the finished file into place",
        })
    }
}

/// A failed atomic write; the message names the target file and the step.
#[derive(Debug, thiserror::Error)]
#[error("{}: {step}", path.display())]
pub struct AtomicWriteError {
    /// The file that was to be written.
    pub path: PathBuf,
    /// The step that failed.
    pub step: Step,
    /// The operating-system error.
    #[source]
    pub source: io::Error,
}

impl From<AtomicWriteError> for io::Error {
    fn from(error: AtomicWriteError) -> Self {
        io::Error::new(error.source.kind(), error)
    }
}

/// Distinguishes the temporary files of concurrent writers inside one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically; missing parent folders are created.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Like [`write_atomic`], but `fill` writes the content into the (buffered) temporary file,
/// so large outputs need not be collected in memory first.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<(), AtomicWriteError> {
    let fail = |step, source| AtomicWriteError {
        path: path.to_path_buf(),
        step,
        source,
    };
    let name = path.file_name().ok_or_else(|| {
        let source = io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name");
        fail(Step::Write, source)
    })?;
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(folder) = folder {
        std::fs::create_dir_all(folder).map_err(|e| fail(Step::CreateFolder, e))?;
    }
    let unique = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let temp_name = format!(
        ".{}.{}-{unique}.tmp",
        name.to_string_lossy(),
        std::process::id()
    );
    let temp = TempFile(path.with_file_name(temp_name));
    fill_and_sync(&temp.0, fill).map_err(|e| fail(Step::Write, e))?;
    std::fs::rename(&temp.0, path).map_err(|e| fail(Step::Rename, e))?;
    std::mem::forget(temp); // renamed: nothing left to clean up
    sync_folder(folder.unwrap_or(Path::new(".")));
    Ok(())
}

/// Removes the temporary file when dropped, so every early return (and a panic in `fill`)
/// cleans up.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        // Best effort: creation may have failed before the file existed.
        let _ = std::fs::remove_file(&self.0);
    }
}

fn fill_and_sync(
    temp: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let mut writer = BufWriter::new(File::create(temp)?);
    fill(&mut writer)?;
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

/// Persists the rename itself (Unix); best effort, the data is already durable.
fn sync_folder(folder: &Path) {
    #[cfg(unix)]
    if let Ok(dir) = File::open(folder) {
        let _ = dir.sync_all();
    }
    #[cfg(not(unix))]
    let _ = folder;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_creates_folders_and_leaves_only_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/out.txt");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(entries(&dir.path().join("a/b")), ["out.txt"]);
    }

    #[test]
    fn a_failed_rename_removes_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty folder under the target name: the rename fails after the write.
        let target = dir.path().join("taken");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inside"), b"x").unwrap();
        let err = write_atomic(&target, b"data").unwrap_err();
        assert_eq!(err.step, Step::Rename);
        assert!(err.to_string().contains("taken"), "{err}");
        assert_eq!(entries(dir.path()), ["taken"]);
    }

    #[test]
    fn a_failing_writer_removes_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let err = write_atomic_with(&path, |file| {
            file.write_all(b"partial")?;
            Err(io::Error::other("encoder failed"))
        })
        .unwrap_err();
        assert_eq!(err.step, Step::Write);
        // The cause is the source, not part of the message: a chain printer says it once.
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert_eq!(
            chain,
            format!("{}: cannot write: encoder failed", path.display())
        );
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn a_folder_that_cannot_be_created_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let err = write_atomic(&file.join("sub/out.txt"), b"data").unwrap_err();
        assert_eq!(err.step, Step::CreateFolder);
        assert!(err.to_string().contains("out.txt"), "{err}");
        assert_eq!(entries(dir.path()), ["plain-file"]);
    }

    #[test]
    fn a_path_without_a_file_name_is_an_error() {
        let err = write_atomic(Path::new("/"), b"data").unwrap_err();
        assert_eq!(err.source.kind(), io::ErrorKind::InvalidInput);
    }
}

/// The README example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
