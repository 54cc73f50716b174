//! `cargo xtask check-vendor`: every crate under `vendor/` against the pristine crates.io
//! source of the same version (cargo's extracted copy under `~/.cargo/registry/src`, fetched
//! with `cargo fetch` when absent). It fails when a file differs, was added or was removed
//! without `PATCH.md` naming its path, or when a changed hunk mentions no name that
//! `PATCH.md` quotes in backticks (the function, type or item it changes).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Files of a published package that are not part of its source.
const PACKAGING: [&str; 4] = [
    ".cargo-ok",
    ".cargo_vcs_info.json",
    "Cargo.toml.orig",
    "PATCH.md",
];

/// Checks every `vendor/*` crate; the error lists each problem.
pub fn check(root: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let vendor = root.join("vendor");
    let mut crates: Vec<PathBuf> = std::fs::read_dir(&vendor)
        .with_context(|| format!("{}: cannot list", vendor.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    crates.sort();
    for dir in &crates {
        let found = check_crate(dir)?;
        eprintln!("{}: {} problem(s)", dir.display(), found.len());
        problems.extend(found);
    }
    if !problems.is_empty() {
        bail!(
            "vendored crates drift from their PATCH.md:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// The problems of one vendored crate.
fn check_crate(dir: &Path) -> Result<Vec<String>> {
    let (name, version) = package_id(&dir.join("Cargo.toml"))?;
    let pristine = pristine_source(&name, &version)?;
    let patch_md = std::fs::read_to_string(dir.join("PATCH.md"))
        .with_context(|| format!("{}: no PATCH.md", dir.display()))?;
    let names = quoted_names(&patch_md);
    let ours = files(dir)?;
    let theirs = files(&pristine)?;
    let mut problems = Vec::new();
    let unnamed = |path: &str| {
        !patch_md.contains(path) && !patch_md.contains(&format!("`{}`", path.trim_end_matches('/')))
    };
    for path in ours.union(&theirs) {
        let what = match (ours.contains(path), theirs.contains(path)) {
            (true, false) => "added",
            (false, true) => "removed",
            _ => "changed",
        };
        if what != "changed" {
            let top = path.split('/').next().unwrap_or(path);
            if unnamed(path) && unnamed(&format!("{top}/")) && unnamed(top) {
                problems.push(format!("{name}: {path} {what}, not named in PATCH.md"));
            }
            continue;
        }
        let (a, b) = (
            read_lines(&pristine.join(path))?,
            read_lines(&dir.join(path))?,
        );
        if a == b {
            continue;
        }
        if unnamed(path) {
            problems.push(format!("{name}: {path} changed, not named in PATCH.md"));
        }
        for hunk in hunks(&a, &b) {
            let text: Vec<&str> = hunk.lines.iter().map(String::as_str).collect();
            let mentioned = names
                .iter()
                .any(|n| text.iter().any(|l| l.contains(n.as_str())));
            if !mentioned {
                let first = text.iter().find(|l| !l.trim().is_empty()).unwrap_or(&"");
                problems.push(format!(
                    "{name}: {path} line {}: a changed hunk names nothing PATCH.md quotes ({})",
                    hunk.line,
                    first.trim()
                ));
            }
        }
    }
    Ok(problems)
}

/// `(name, version)` of a `Cargo.toml`'s `[package]`.
fn package_id(manifest: &Path) -> Result<(String, String)> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("{}: cannot read", manifest.display()))?;
    let package = text.split("[package]").nth(1).unwrap_or_default();
    let field = |key: &str| {
        package
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(key)?
                    .trim()
                    .strip_prefix('=')
                    .map(|v| v.trim().trim_matches('"').to_string())
            })
            .with_context(|| format!("{}: no package {key}", manifest.display()))
    };
    Ok((field("name")?, field("version")?))
}

/// Cargo's extracted copy of `name` `version` from crates.io, fetched when absent.
fn pristine_source(name: &str, version: &str) -> Result<PathBuf> {
    if let Some(found) = registry_copy(name, version)? {
        return Ok(found);
    }
    let project = std::env::temp_dir().join(format!("xtask-check-vendor-{name}-{version}"));
    std::fs::create_dir_all(project.join("src"))?;
    std::fs::write(
        project.join("Cargo.toml"),
        format!(
            "[package]\nname = \"xtask-check-vendor-probe\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             [dependencies]\n{name} = {{ version = \"={version}\", default-features = false }}\n"
        ),
    )?;
    std::fs::write(project.join("src/lib.rs"), "")?;
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["fetch", "--manifest-path"])
        .arg(project.join("Cargo.toml"))
        .status()
        .context("cannot run cargo fetch")?;
    if !status.success() {
        bail!("cargo fetch of {name} {version} failed");
    }
    registry_copy(name, version)?.with_context(|| {
        format!("{name} {version}: not in ~/.cargo/registry/src after cargo fetch")
    })
}

/// `~/.cargo/registry/src/*/<name>-<version>`, when cargo has extracted it.
fn registry_copy(name: &str, version: &str) -> Result<Option<PathBuf>> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let src = home.join("registry").join("src");
    let Ok(indexes) = std::fs::read_dir(&src) else {
        return Ok(None);
    };
    Ok(indexes
        .filter_map(|e| e.ok().map(|e| e.path().join(format!("{name}-{version}"))))
        .find(|p| p.join("Cargo.toml").is_file()))
}

/// Backticked names of a PATCH.md (`FlexTensor::empty` gives `FlexTensor::empty` and `empty`),
/// at least 4 characters long.
fn quoted_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, part) in text.split('`').enumerate() {
        // Names only: a quoted phrase (such as the marker comment) names no item.
        if i % 2 == 0 || part.contains('\n') || part.trim_start_matches("fn ").contains(' ') {
            continue;
        }
        let part = part.trim_start_matches("fn ").trim();
        for candidate in [part, part.rsplit("::").next().unwrap_or(part)] {
            if candidate.len() >= 4 {
                names.insert(candidate.to_string());
            }
        }
    }
    names
}

/// Relative paths (with `/`) of the files under `dir`, packaging files left out.
fn files(dir: &Path) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder)
            .with_context(|| format!("{}: cannot list", folder.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(dir)?.to_string_lossy().replace('\\', "/");
            if !PACKAGING.contains(&rel.as_str()) {
                out.insert(rel);
            }
        }
    }
    Ok(out)
}

fn read_lines(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::to_string)
        .collect())
}

/// One block of changed lines: its first line in the patched file, and the removed and
/// added lines.
#[derive(Debug, PartialEq)]
struct Hunk {
    line: usize,
    lines: Vec<String>,
}

/// The changed blocks between `a` (pristine) and `b` (patched), from a longest common
/// subsequence of lines (the common prefix and suffix are skipped first).
fn hunks(a: &[String], b: &[String]) -> Vec<Hunk> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a, b) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let (n, m) = (a.len(), b.len());
    // lcs[i][j]: LCS length of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out: Vec<Hunk> = Vec::new();
    let mut open: Option<Hunk> = None;
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.extend(open.take());
            i += 1;
            j += 1;
            continue;
        }
        let hunk = open.get_or_insert_with(|| Hunk {
            line: prefix + j + 1,
            lines: Vec::new(),
        });
        if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            hunk.lines.push(b[j].clone());
            j += 1;
        } else {
            hunk.lines.push(a[i].clone());
            i += 1;
        }
    }
    out.extend(open);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn hunks_are_the_changed_blocks() {
        let a = lines("a\nb\nc\nd\ne");
        let b = lines("a\nB\nc\nd\nx\ne");
        let found = hunks(&a, &b);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].line, found[0].lines.clone()), (2, lines("B\nb")));
        assert_eq!((found[1].line, found[1].lines.clone()), (5, lines("x")));
        assert!(hunks(&a, &a).is_empty());
    }

    #[test]
    fn names_are_taken_from_backticks() {
        let names = quoted_names("- `src/tensor.rs` `FlexTensor::empty`: `a` and `fn auto`");
        assert!(names.contains("FlexTensor::empty") && names.contains("empty"));
        assert!(names.contains("auto") && names.contains("src/tensor.rs"));
        assert!(!names.contains("a"));
    }
}
