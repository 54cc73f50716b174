//! Reader of MedCLIPSeg's packaged layout:
//!
//! ```text
//! <root>/<DS>/{Train,Val,Test}_Folder/{img,label}/<files>
//! <root>/<DS>/Prompts_Folder/{Train_text[_P], Val_text[_P], Test_text_<style>}.xlsx   (or .csv)
//! ```
//!
//! A dataset is any folder under the root (not only the 16 of the registry), so users' own data in
//! this layout works. Rows are checked one by one; each unusable row becomes a [`Problem`]. In the
//! default mode the row is skipped and reported; in strict mode the first problem is an error
//! naming the file and row. Rows are returned sorted by image name, as the reference loader does.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::kinds::{SheetKind, Split};
use crate::sheet::{PromptSheet, read_prompt_sheet};

/// Name of the prompt folder.
pub const PROMPTS_FOLDER: &str = "Prompts_Folder";
/// Image subfolder of each split folder.
pub const IMAGE_FOLDER: &str = "img";
/// Mask subfolder of each split folder.
pub const MASK_FOLDER: &str = "label";

/// One usable row: an image, its mask and its prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Image file name as written in the sheet.
    pub name: String,
    /// Full path of the image.
    pub image_path: PathBuf,
    /// Full path of the mask.
    pub mask_path: PathBuf,
    /// The prompt, raw (trailing newline kept).
    pub prompt: String,
}

/// A row that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The file concerned, relative to the dataset folder (e.g. `Prompts_Folder/Train_text.xlsx`).
    pub file: String,
    /// Spreadsheet row number (the header is row 1); 0 when the whole file is concerned.
    pub row: usize,
    /// What is wrong.
    pub problem: String,
}

/// Options of [`read_records`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadOptions {
    /// Fail on the first problem instead of skipping the row.
    pub strict: bool,
    /// Keep a second row of an image already listed (the reference loader keeps both; by
    /// default the later row is skipped and reported).
    pub keep_duplicates: bool,
    /// Also open each image and mask header and report size mismatches and undecodable files.
    pub verify_images: bool,
}

/// The usable rows of one prompt sheet, and the problems found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetRecords {
    /// The sheet that was read.
    pub sheet_path: PathBuf,
    /// Usable rows, sorted by image name.
    pub records: Vec<Record>,
    /// Skipped rows.
    pub problems: Vec<Problem>,
}

/// The folder of dataset `name` under `root`, checked to exist.
pub fn dataset_dir(root: &Path, name: &str) -> Result<PathBuf> {
    let dir = root.join(name);
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(Error::DatasetNotFound {
            name: name.to_string(),
            path: dir,
        })
    }
}

/// The dataset folders under `root` that have a `Prompts_Folder`, sorted by name.
pub fn list_datasets(root: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for path in crate::fsutil::sorted_entries(root)? {
        if path.join(PROMPTS_FOLDER).is_dir()
            && let Some(name) = path.file_name().and_then(|n| n.to_str())
        {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// The prompt sheet file of `kind`: `.xlsx` if present, else `.xls`, `.ods` or `.csv`.
pub fn sheet_path(dataset_dir: &Path, kind: SheetKind) -> Option<PathBuf> {
    let stem = kind.file_stem();
    ["xlsx", "xls", "ods", "csv"]
        .iter()
        .map(|ext| {
            dataset_dir
                .join(PROMPTS_FOLDER)
                .join(format!("{stem}.{ext}"))
        })
        .find(|p| p.is_file())
}

/// The sheets present in a dataset folder, in the layout's order.
pub fn available_sheets(dataset_dir: &Path) -> Vec<SheetKind> {
    SheetKind::all()
        .into_iter()
        .filter(|&kind| sheet_path(dataset_dir, kind).is_some())
        .collect()
}

/// Reads the rows of one sheet of dataset `dataset` under `root`.
pub fn read_records(
    root: &Path,
    dataset: &str,
    kind: SheetKind,
    options: ReadOptions,
) -> Result<SheetRecords> {
    let dir = dataset_dir(root, dataset)?;
    let path = sheet_path(&dir, kind).ok_or_else(|| {
        Error::io(
            &dir.join(PROMPTS_FOLDER)
                .join(format!("{}.xlsx", kind.file_stem())),
            std::io::Error::new(std::io::ErrorKind::NotFound, "prompt sheet not found"),
        )
    })?;
    let sheet = read_prompt_sheet(&path)?;
    check_rows(&dir, kind.split(), &sheet, options)
}

/// Turns the rows of a parsed sheet into records, checking that the files exist.
pub fn check_rows(
    dataset_dir: &Path,
    split: Split,
    sheet: &PromptSheet,
    options: ReadOptions,
) -> Result<SheetRecords> {
    let file = relative_name(dataset_dir, &sheet.path);
    let split_dir = dataset_dir.join(split.folder());
    let mut first_row_of: HashMap<&str, usize> = HashMap::new();
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for row in &sheet.rows {
        let outcome = check_row(row, &split_dir, dataset_dir, &mut first_row_of, options);
        match outcome {
            Ok(record) => records.push(record),
            Err(problem) if options.strict => {
                return Err(Error::Row {
                    path: sheet.path.clone(),
                    row: row.row,
                    problem,
                });
            }
            Err(problem) => problems.push(Problem {
                file: file.clone(),
                row: row.row,
                problem,
            }),
        }
    }
    records.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(SheetRecords {
        sheet_path: sheet.path.clone(),
        records,
        problems,
    })
}

fn check_row<'a>(
    row: &'a crate::sheet::SheetRow,
    split_dir: &Path,
    dataset_dir: &Path,
    first_row_of: &mut HashMap<&'a str, usize>,
    options: ReadOptions,
) -> std::result::Result<Record, String> {
    let image = row.image.as_deref().ok_or("empty Image cell")?;
    let mask = row
        .ground_truth
        .as_deref()
        .ok_or("empty Ground Truth cell")?;
    let prompt = row.description.as_deref().ok_or("empty Description cell")?;
    if let Some(first) = first_row_of.get(image) {
        if !options.keep_duplicates {
            return Err(format!("duplicate of row {first} (image {image})"));
        }
    } else {
        first_row_of.insert(image, row.row);
    }
    let image_path = split_dir.join(IMAGE_FOLDER).join(image);
    let mask_path = split_dir.join(MASK_FOLDER).join(mask);
    for (what, path) in [("image", &image_path), ("mask", &mask_path)] {
        if !path.is_file() {
            return Err(format!(
                "{what} file not found: {}",
                relative_name(dataset_dir, path)
            ));
        }
    }
    if options.verify_images {
        verify_pair(&image_path, &mask_path).map_err(|e| e.to_string())?;
    }
    Ok(Record {
        name: image.to_string(),
        image_path,
        mask_path,
        prompt: prompt.to_string(),
    })
}

/// Reads both headers and checks that the sizes agree.
fn verify_pair(image: &Path, mask: &Path) -> Result<()> {
    let (iw, ih) = crate::imaging::dimensions(image)?;
    let (mw, mh) = crate::imaging::dimensions(mask)?;
    if (iw, ih) != (mw, mh) {
        return Err(Error::SizeMismatch {
            image: image.to_path_buf(),
            mask: mask.to_path_buf(),
            image_w: iw,
            image_h: ih,
            mask_w: mw,
            mask_h: mh,
        });
    }
    Ok(())
}

fn relative_name(base: &Path, path: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// Row counts keyed by percentage or style, serialized as a JSON object in insertion order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counts(pub Vec<(String, usize)>);

impl Counts {
    /// The count under `key`, if present.
    pub fn get(&self, key: &str) -> Option<usize> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// The counts as a sorted map.
    pub fn to_map(&self) -> BTreeMap<String, usize> {
        self.0.iter().cloned().collect()
    }
}

impl Serialize for Counts {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Counts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct CountsVisitor;
        impl<'de> Visitor<'de> for CountsVisitor {
            type Value = Counts;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of counts")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut access: A,
            ) -> std::result::Result<Counts, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = access.next_entry::<String, usize>()? {
                    out.push((k, v));
                }
                Ok(Counts(out))
            }
        }
        deserializer.deserialize_map(CountsVisitor)
    }
}

/// What [`inspect`] found in one dataset folder.
///
/// Serializes exactly to
/// `{"dataset": DS, "train": {"<pct>": n}, "val": {"<pct>": n}, "test": {"<style>": n},
/// "problems": [{"file": f, "row": r, "problem": p}]}`, where `n` counts the rows whose image and
/// mask both exist, and only the sheets present have a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectReport {
    /// Dataset name.
    pub dataset: String,
    /// Usable rows of `Train_text[_P]` by percentage key (`"10"`, `"25"`, `"50"`, `"100"`).
    pub train: Counts,
    /// Usable rows of `Val_text[_P]` by percentage key.
    pub val: Counts,
    /// Usable rows of `Test_text_<style>` by style key.
    pub test: Counts,
    /// Skipped rows and unreadable sheets (row 0).
    pub problems: Vec<Problem>,
}

/// Inspects every prompt sheet of dataset `dataset` under `root`: counts usable rows per sheet
/// and lists the problems. In strict mode the first problem is an error naming file and row.
pub fn inspect(root: &Path, dataset: &str, strict: bool) -> Result<InspectReport> {
    inspect_with(
        root,
        dataset,
        ReadOptions {
            strict,
            ..ReadOptions::default()
        },
    )
}

/// [`inspect`] with all options (e.g. `verify_images` to also check image/mask headers).
pub fn inspect_with(root: &Path, dataset: &str, options: ReadOptions) -> Result<InspectReport> {
    let dir = dataset_dir(root, dataset)?;
    let mut report = InspectReport {
        dataset: dataset.to_string(),
        train: Counts::default(),
        val: Counts::default(),
        test: Counts::default(),
        problems: Vec::new(),
    };
    for kind in available_sheets(&dir) {
        let Some(path) = sheet_path(&dir, kind) else {
            continue;
        };
        let sheet = match read_prompt_sheet(&path) {
            Ok(sheet) => sheet,
            Err(e) if options.strict => return Err(e),
            Err(e) => {
                report.problems.push(Problem {
                    file: relative_name(&dir, &path),
                    row: 0,
                    problem: e.to_string(),
                });
                continue;
            }
        };
        let checked = check_rows(&dir, kind.split(), &sheet, options)?;
        let counts = match kind.split() {
            Split::Train => &mut report.train,
            Split::Val => &mut report.val,
            Split::Test => &mut report.test,
        };
        counts.0.push((kind.report_key(), checked.records.len()));
        report.problems.extend(checked.problems);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{Percent, PromptStyle};
    use crate::sheet::{PromptEntry, SheetFormat, write_prompt_sheet};

    fn entry(image: &str, prompt: &str, mask: &str) -> PromptEntry {
        PromptEntry {
            image: image.into(),
            description: prompt.into(),
            ground_truth: mask.into(),
        }
    }

    fn touch_png(path: &Path, w: u32, h: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::GrayImage::new(w, h).save(path).unwrap();
    }

    /// A tiny dataset: 3 train rows (one duplicate, one missing mask), 1 val (Mask header, csv),
    /// an empty 10 % val sheet, and two test styles.
    fn tiny_dataset(root: &Path) -> PathBuf {
        let ds = root.join("Tiny");
        for (split, name) in [
            ("Train", "a.png"),
            ("Train", "b.png"),
            ("Val", "v.png"),
            ("Test", "t.png"),
        ] {
            touch_png(&ds.join(format!("{split}_Folder/img/{name}")), 4, 3);
            touch_png(&ds.join(format!("{split}_Folder/label/{name}")), 4, 3);
        }
        touch_png(&ds.join("Train_Folder/img/c.png"), 4, 3);
        let prompts = ds.join(PROMPTS_FOLDER);
        write_prompt_sheet(
            &prompts.join("Train_text.xlsx"),
            &[
                entry("b.png", "second\n", "b.png"),
                entry("a.png", "first", "a.png"),
                entry("a.png", "again", "a.png"),
                entry("c.png", "no mask", "c.png"),
            ],
            SheetFormat::Xlsx,
        )
        .unwrap();
        std::fs::write(
            prompts.join("Val_text.csv"),
            "Image,Description,Mask\nv.png,val,v.png\n",
        )
        .unwrap();
        write_prompt_sheet(&prompts.join("Val_text_10.xlsx"), &[], SheetFormat::Xlsx).unwrap();
        for style in ["original", "underdescriptive"] {
            write_prompt_sheet(
                &prompts.join(format!("Test_text_{style}.xlsx")),
                &[entry("t.png", style, "t.png")],
                SheetFormat::Xlsx,
            )
            .unwrap();
        }
        ds
    }

    #[test]
    fn inspect_report_has_the_exact_json_shape() {
        let dir = tempfile::tempdir().unwrap();
        tiny_dataset(dir.path());
        let report = inspect(dir.path(), "Tiny", false).unwrap();
        let json = serde_json::to_value(&report).unwrap();
        let expected = serde_json::json!({
            "dataset": "Tiny",
            "train": {"100": 2},
            "val": {"10": 0, "100": 1},
            "test": {"original": 1, "underdescriptive": 1},
            "problems": [
                {"file": "Prompts_Folder/Train_text.xlsx", "row": 4, "problem": "duplicate of row 3 (image a.png)"},
                {"file": "Prompts_Folder/Train_text.xlsx", "row": 5, "problem": "mask file not found: Train_Folder/label/c.png"},
            ]
        });
        assert_eq!(json, expected);
        let back: InspectReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn strict_mode_fails_on_the_first_problem_naming_file_and_row() {
        let dir = tempfile::tempdir().unwrap();
        tiny_dataset(dir.path());
        let err = inspect(dir.path(), "Tiny", true).unwrap_err().to_string();
        assert!(err.contains("Train_text.xlsx, row 4"), "{err}");
        assert!(err.contains("duplicate"), "{err}");
    }

    #[test]
    fn records_are_sorted_and_prompts_raw() {
        let dir = tempfile::tempdir().unwrap();
        tiny_dataset(dir.path());
        let got = read_records(
            dir.path(),
            "Tiny",
            SheetKind::Train(Percent::P100),
            ReadOptions::default(),
        )
        .unwrap();
        let names: Vec<&str> = got.records.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a.png", "b.png"]);
        assert_eq!(got.records[1].prompt, "second\n");
        let keep = ReadOptions {
            keep_duplicates: true,
            ..Default::default()
        };
        let got = read_records(dir.path(), "Tiny", SheetKind::Train(Percent::P100), keep).unwrap();
        assert_eq!(got.records.len(), 3);
    }

    #[test]
    fn verify_images_reports_size_mismatch_and_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let ds = tiny_dataset(dir.path());
        touch_png(&ds.join("Test_Folder/label/t.png"), 5, 3);
        std::fs::write(ds.join("Val_Folder/img/v.png"), b"garbage").unwrap();
        let options = ReadOptions {
            verify_images: true,
            ..Default::default()
        };
        let report = inspect_with(dir.path(), "Tiny", options).unwrap();
        assert_eq!(report.test.get("original"), Some(0));
        let texts: Vec<&str> = report.problems.iter().map(|p| p.problem.as_str()).collect();
        assert!(
            texts.iter().any(|p| p.contains("4x3") && p.contains("5x3")),
            "{texts:?}"
        );
        assert!(
            texts
                .iter()
                .any(|p| p.contains("v.png") && p.contains("decode")),
            "{texts:?}"
        );
    }

    #[test]
    fn garbage_sheet_is_reported_or_fails_in_strict_mode() {
        let dir = tempfile::tempdir().unwrap();
        let ds = tiny_dataset(dir.path());
        std::fs::write(
            ds.join(PROMPTS_FOLDER).join("Test_text_contradictory.xlsx"),
            b"PK\x03\x04junk",
        )
        .unwrap();
        let report = inspect(dir.path(), "Tiny", false).unwrap();
        let bad = report
            .problems
            .iter()
            .find(|p| p.file.ends_with("Test_text_contradictory.xlsx"))
            .unwrap();
        assert_eq!(bad.row, 0);
        assert_eq!(report.test.get("contradictory"), None);
        // Without the train sheet's row problems, strict mode stops at the garbage file.
        write_prompt_sheet(
            &ds.join(PROMPTS_FOLDER).join("Train_text.xlsx"),
            &[entry("a.png", "x", "a.png")],
            SheetFormat::Xlsx,
        )
        .unwrap();
        let err = inspect(dir.path(), "Tiny", true).unwrap_err().to_string();
        assert!(err.contains("Test_text_contradictory.xlsx"), "{err}");
    }

    #[test]
    fn datasets_are_any_folder_and_missing_ones_error() {
        let dir = tempfile::tempdir().unwrap();
        tiny_dataset(dir.path());
        std::fs::create_dir_all(dir.path().join("NotADataset")).unwrap();
        assert_eq!(list_datasets(dir.path()).unwrap(), ["Tiny"]);
        let err = inspect(dir.path(), "Nope", false).unwrap_err().to_string();
        assert!(err.contains("Nope"), "{err}");
        let kinds = available_sheets(&dir.path().join("Tiny"));
        assert!(kinds.contains(&SheetKind::Test(PromptStyle::Underdescriptive)));
        assert!(!kinds.contains(&SheetKind::Train(Percent::P10)));
    }
}
