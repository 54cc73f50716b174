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
    let temp = temporary_sibling(path, |name, tag| format!(".{name}.{tag}.tmp"))?;
    fill_and_sync(&temp.0, fill).map_err(|e| failure(path, Step::Write, e))?;
    move_into_place(temp, path)
}

/// Like [`write_atomic`], for writers that only write to a path (a NIfTI or DICOM library):
/// `fill` writes the temporary sibling, whose name ends as `path`'s does (such writers pick the
/// format from it, e.g. `.nii.gz`); the file is then synced and renamed over `path`. An error of
/// `fill` comes back as it is, and the temporary file is removed.
pub fn write_atomic_by_path<E: From<AtomicWriteError>>(
    path: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let temp = temporary_sibling(path, |name, tag| format!(".{tag}-{name}"))?;
    fill(&temp.0)?;
    File::open(&temp.0)
        .and_then(|file| file.sync_all())
        .map_err(|e| failure(path, Step::Write, e))?;
    Ok(move_into_place(temp, path)?)
}

fn failure(path: &Path, step: Step, source: io::Error) -> AtomicWriteError {
    AtomicWriteError {
        path: path.to_path_buf(),
        step,
        source,
    }
}

/// A temporary file beside `path` (same folder, so the rename is atomic), named by `name_of`
/// from the target's name and a tag unique to this process and write; the folder is created.
fn temporary_sibling(
    path: &Path,
    name_of: impl FnOnce(&str, &str) -> String,
) -> Result<TempFile, AtomicWriteError> {
    let name = path.file_name().ok_or_else(|| {
        let source = io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name");
        failure(path, Step::Write, source)
    })?;
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(|e| failure(path, Step::CreateFolder, e))?;
    }
    let unique = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tag = format!("{}-{unique}", std::process::id());
    Ok(TempFile(
        path.with_file_name(name_of(&name.to_string_lossy(), &tag)),
    ))
}

/// Renames the finished temporary file over `path` and syncs the folder.
fn move_into_place(temp: TempFile, path: &Path) -> Result<(), AtomicWriteError> {
    std::fs::rename(&temp.0, path).map_err(|e| failure(path, Step::Rename, e))?;
    std::mem::forget(temp); // renamed: nothing left to clean up
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
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

    #[derive(Debug)]
    enum FillError {
        Writer(&'static str),
        Atomic(AtomicWriteError),
    }

    impl From<AtomicWriteError> for FillError {
        fn from(error: AtomicWriteError) -> Self {
            FillError::Atomic(error)
        }
    }

    #[test]
    fn a_path_writer_sees_the_target_ending_and_its_error_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/mask.nii.gz");
        write_atomic_by_path(&path, |temp| {
            assert!(temp.to_string_lossy().ends_with("-mask.nii.gz"), "{temp:?}");
            assert_eq!(temp.parent(), path.parent());
            std::fs::write(temp, b"new").map_err(|_| FillError::Writer("io"))
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");

        let result = write_atomic_by_path(&path, |temp| {
            std::fs::write(temp, b"half").unwrap();
            Err(FillError::Writer("the writer failed"))
        });
        assert!(matches!(
            result,
            Err(FillError::Writer("the writer failed"))
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(entries(&dir.path().join("sub")), ["mask.nii.gz"]);

        let result = write_atomic_by_path(Path::new("/"), |_| Ok::<(), FillError>(()));
        match result {
            Err(FillError::Atomic(error)) => assert_eq!(error.step, Step::Write),
            other => panic!("{other:?}"),
        }
    }
}

/// The README example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
