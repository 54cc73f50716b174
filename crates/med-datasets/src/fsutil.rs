//! Small file-system helpers: atomic writes and folder creation with errors that name the path.

use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically ([`atomic_io`]: temporary sibling, fsync, rename; the
/// temporary file never outlives a failure), so a crash never leaves a half-written file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_io::write_atomic(path, bytes).map_err(|e| Error::io(&e.path, e.source))
}

/// `std::fs::create_dir_all` with an error naming the folder.
pub(crate) fn create_dir_all(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Reads a whole file with an error naming it.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Lists the entries of a folder, sorted by file name so every caller is deterministic.
pub(crate) fn sorted_entries(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_creates_parents_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a/b/out.txt");
        write_atomic(&target, b"hello").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"hello");
        let names: Vec<_> = sorted_entries(&dir.path().join("a/b")).unwrap();
        assert_eq!(names, vec![target.clone()]);
        write_atomic(&target, b"again").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"again");
    }

    #[test]
    fn read_error_names_the_file() {
        let err = read(Path::new("/definitely/not/here.png")).unwrap_err();
        assert!(
            err.to_string().contains("/definitely/not/here.png"),
            "{err}"
        );
    }
}
