//! Prompt spreadsheets: `Prompts_Folder/*.xlsx` (or `.csv`) with the columns `Image`,
//! `Description` and `Ground Truth`, read by header name.
//!
//! What the real MedCLIPSeg files look like, and how each case is handled:
//! * one sheet, header row `Image | Description | Ground Truth`; only the first sheet is read;
//! * `UWaterlooSkinCancer/Val_text.xlsx` names the mask column `Mask`: accepted as an alias;
//! * `ColonDB`/`CVC300` `Val_text.xlsx` are completely empty (no header either): 0 rows, no error;
//! * prompts often end in `"\n"`: kept raw (the tokenizer cleans them);
//! * a numeric cell (an image called `274` in some tool) is turned into its text (`274`).
//!
//! Columns are matched after trimming, case-insensitively. Header names are searched in the first
//! non-empty row; extra columns are ignored.

use std::path::{Path, PathBuf};

use calamine::{Data, Reader};
use serde::{Deserialize, Serialize};

use crate::csv_text;
use crate::error::{Error, Result};
use crate::fsutil;

/// Header of the image column.
pub const IMAGE_COLUMN: &str = "Image";
/// Header of the prompt column.
pub const DESCRIPTION_COLUMN: &str = "Description";
/// Header of the mask column.
pub const GROUND_TRUTH_COLUMN: &str = "Ground Truth";
/// Accepted alias of [`GROUND_TRUTH_COLUMN`] (UWaterloo's validation sheet uses it).
pub const MASK_COLUMN_ALIAS: &str = "Mask";

/// One data row of a prompt sheet, before any file checks. Empty cells are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetRow {
    /// Row number as a spreadsheet shows it (the header is row 1 in the real files).
    pub row: usize,
    /// Image file name (in `<Split>_Folder/img/`).
    pub image: Option<String>,
    /// The text prompt, raw (trailing newlines kept).
    pub description: Option<String>,
    /// Mask file name (in `<Split>_Folder/label/`).
    pub ground_truth: Option<String>,
}

/// A parsed prompt sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptSheet {
    /// The file that was read.
    pub path: PathBuf,
    /// The header row as found (empty for a completely empty sheet).
    pub header: Vec<String>,
    /// The header of the mask column as written in the file (`Ground Truth` or `Mask`), if any.
    pub mask_column: Option<String>,
    /// The data rows; completely blank rows are dropped.
    pub rows: Vec<SheetRow>,
}

/// File format of a prompt sheet that this crate writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SheetFormat {
    /// Excel `.xlsx` (what MedCLIPSeg ships).
    #[default]
    Xlsx,
    /// Comma-separated values `.csv` with the same headers.
    Csv,
}

impl SheetFormat {
    /// File extension without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Xlsx => "xlsx",
            Self::Csv => "csv",
        }
    }
}

/// Reads a prompt sheet (`.csv` by extension, anything else through calamine: xlsx, xls, ods).
pub fn read_prompt_sheet(path: &Path) -> Result<PromptSheet> {
    let cells = if has_extension(path, "csv") {
        read_csv_cells(path)?
    } else {
        read_workbook_cells(path)?
    };
    cells_to_sheet(path, cells)
}

/// A cell grid: each row with its spreadsheet row number.
type Cells = Vec<(usize, Vec<Option<String>>)>;

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

fn read_csv_cells(path: &Path) -> Result<Cells> {
    let bytes = fsutil::read(path)?;
    let text =
        String::from_utf8(bytes).map_err(|e| Error::sheet(path, format!("not UTF-8 text: {e}")))?;
    let records = csv_text::parse(&text).map_err(|e| Error::sheet(path, e.to_string()))?;
    Ok(records
        .into_iter()
        .map(|(line, fields)| {
            let cells = fields
                .into_iter()
                .map(|f| (!f.is_empty()).then_some(f))
                .collect();
            (line, cells)
        })
        .collect())
}

fn read_workbook_cells(path: &Path) -> Result<Cells> {
    if !path.is_file() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
        ));
    }
    let mut workbook = calamine::open_workbook_auto(path)
        .map_err(|e| Error::sheet(path, format!("not a readable spreadsheet: {e}")))?;
    let range = match workbook.worksheet_range_at(0) {
        Some(range) => {
            range.map_err(|e| Error::sheet(path, format!("cannot read the first sheet: {e}")))?
        }
        None => return Err(Error::sheet(path, "the workbook has no sheet")),
    };
    let first_row = range.start().map_or(0, |(row, _)| row as usize);
    let first_col = range.start().map_or(0, |(_, col)| col as usize);
    Ok(range
        .rows()
        .enumerate()
        .map(|(i, row)| {
            let mut cells: Vec<Option<String>> = vec![None; first_col];
            cells.extend(row.iter().map(cell_text));
            (first_row + i + 1, cells)
        })
        .collect())
}

/// The text of one cell; empty cells and empty strings are `None`.
fn cell_text(cell: &Data) -> Option<String> {
    match cell {
        Data::Empty => None,
        Data::String(s) if s.is_empty() => None,
        Data::String(s) => Some(s.clone()),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => Some(format!("{}", *f as i64)),
        other => Some(other.to_string()),
    }
}

/// The first non-blank row as trimmed header names, and the non-blank rows after it
/// (`None` for a sheet with no non-blank row).
fn split_header(cells: Cells) -> Option<(Vec<String>, Cells)> {
    let mut rows = cells
        .into_iter()
        .filter(|(_, r)| r.iter().any(Option::is_some));
    let (_, header_cells) = rows.next()?;
    let header = header_cells
        .iter()
        .map(|c| c.as_deref().unwrap_or("").trim().to_string())
        .collect();
    Some((header, rows.collect()))
}

/// The index of a required column, or an error naming it and the header found.
fn required_column(path: &Path, header: &[String], name: &str) -> Result<usize> {
    find_column(header, name).ok_or_else(|| missing_column(path, header, name))
}

fn missing_column(path: &Path, header: &[String], name: &str) -> Error {
    Error::sheet(
        path,
        format!("missing column {name:?} in the header row (found {header:?})"),
    )
}

fn find_column(header: &[String], name: &str) -> Option<usize> {
    header.iter().position(|h| h.eq_ignore_ascii_case(name))
}

fn cells_to_sheet(path: &Path, cells: Cells) -> Result<PromptSheet> {
    let Some((header, rows)) = split_header(cells) else {
        return Ok(PromptSheet {
            path: path.to_path_buf(),
            header: Vec::new(),
            mask_column: None,
            rows: Vec::new(),
        });
    };
    let find = |name: &str| find_column(&header, name);
    let image_col = required_column(path, &header, IMAGE_COLUMN)?;
    let desc_col = required_column(path, &header, DESCRIPTION_COLUMN)?;
    let (mask_col, mask_name) = match (find(GROUND_TRUTH_COLUMN), find(MASK_COLUMN_ALIAS)) {
        (Some(c), _) | (None, Some(c)) => (c, header[c].clone()),
        (None, None) => return Err(missing_column(path, &header, GROUND_TRUTH_COLUMN)),
    };
    let take = |r: &[Option<String>], c: usize| r.get(c).cloned().flatten();
    let rows = rows
        .into_iter()
        .map(|(row, r)| SheetRow {
            row,
            image: take(&r, image_col).map(|s| s.trim().to_string()),
            description: take(&r, desc_col),
            ground_truth: take(&r, mask_col).map(|s| s.trim().to_string()),
        })
        .collect();
    Ok(PromptSheet {
        path: path.to_path_buf(),
        header,
        mask_column: Some(mask_name),
        rows,
    })
}

/// An `Image,Description` table (a CSV, e.g. `predict --prompts` / `rank --prompts`): the prompt
/// of each image file name. Other columns are ignored; RFC 4180 quoting and Excel's byte-order
/// mark are handled by [`csv_text`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePrompts {
    /// The file that was read.
    pub path: PathBuf,
    /// Image file name (trimmed) → its line in the file and its prompt (`None`: empty cell).
    rows: std::collections::BTreeMap<String, (usize, Option<String>)>,
}

impl ImagePrompts {
    /// Reads the CSV; a missing `Image` or `Description` column or an empty `Image` cell is an
    /// error naming the file (and line).
    pub fn read_csv(path: &Path) -> Result<Self> {
        let Some((header, cells)) = split_header(read_csv_cells(path)?) else {
            return Err(Error::sheet(
                path,
                "empty CSV (expected a header Image,Description)",
            ));
        };
        let image_col = required_column(path, &header, IMAGE_COLUMN)?;
        let desc_col = required_column(path, &header, DESCRIPTION_COLUMN)?;
        let mut rows = std::collections::BTreeMap::new();
        for (line, cells) in cells {
            let cell = |c: usize| cells.get(c).cloned().flatten();
            let image = cell(image_col).map(|s| s.trim().to_string());
            let Some(image) = image.filter(|s| !s.is_empty()) else {
                return Err(Error::Row {
                    path: path.to_path_buf(),
                    row: line,
                    problem: "empty Image cell".into(),
                });
            };
            rows.insert(image, (line, cell(desc_col)));
        }
        Ok(Self {
            path: path.to_path_buf(),
            rows,
        })
    }

    /// The prompt of an image file name; no row, or an empty or blank `Description`, is an error
    /// naming the file, the line and the image.
    pub fn prompt(&self, image: &str) -> Result<&str> {
        let Some((line, description)) = self.rows.get(image) else {
            return Err(Error::sheet(
                &self.path,
                format!("no prompt for image {image}"),
            ));
        };
        match description.as_deref() {
            Some(text) if !text.trim().is_empty() => Ok(text),
            _ => Err(Error::Row {
                path: self.path.clone(),
                row: *line,
                problem: format!("image {image}: empty Description"),
            }),
        }
    }

    /// The line of an image's row, if it has one.
    pub fn line(&self, image: &str) -> Option<usize> {
        self.rows.get(image).map(|(line, _)| *line)
    }
}

/// One row to write: image file name, prompt, mask file name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptEntry {
    /// Image file name.
    pub image: String,
    /// Prompt text.
    pub description: String,
    /// Mask file name.
    pub ground_truth: String,
}

/// Writes a prompt sheet with the header `Image, Description, Ground Truth`, atomically.
///
/// The xlsx output is byte-for-byte deterministic (the document's creation date is fixed).
pub fn write_prompt_sheet(path: &Path, entries: &[PromptEntry], format: SheetFormat) -> Result<()> {
    let bytes = match format {
        SheetFormat::Csv => csv_bytes(entries),
        SheetFormat::Xlsx => xlsx_bytes(entries).map_err(|e| Error::sheet(path, e.to_string()))?,
    };
    fsutil::write_atomic(path, &bytes)
}

fn csv_bytes(entries: &[PromptEntry]) -> Vec<u8> {
    let mut records = vec![vec![
        IMAGE_COLUMN.to_string(),
        DESCRIPTION_COLUMN.to_string(),
        GROUND_TRUTH_COLUMN.to_string(),
    ]];
    records.extend(entries.iter().map(|e| {
        vec![
            e.image.clone(),
            e.description.clone(),
            e.ground_truth.clone(),
        ]
    }));
    csv_text::write(&records).into_bytes()
}

fn xlsx_bytes(entries: &[PromptEntry]) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{DocProperties, ExcelDateTime, Workbook};
    let mut workbook = Workbook::new();
    let fixed_date = ExcelDateTime::from_ymd(2026, 1, 1)?;
    workbook.set_properties(&DocProperties::new().set_creation_datetime(&fixed_date));
    let sheet = workbook.add_worksheet();
    for (col, name) in [IMAGE_COLUMN, DESCRIPTION_COLUMN, GROUND_TRUTH_COLUMN]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, col as u16, *name)?;
    }
    for (i, entry) in entries.iter().enumerate() {
        let row = i as u32 + 1;
        sheet.write_string(row, 0, &entry.image)?;
        sheet.write_string(row, 1, &entry.description)?;
        sheet.write_string(row, 2, &entry.ground_truth)?;
    }
    workbook.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(image: &str, description: &str, gt: &str) -> PromptEntry {
        PromptEntry {
            image: image.into(),
            description: description.into(),
            ground_truth: gt.into(),
        }
    }

    #[test]
    fn xlsx_and_csv_round_trip_with_raw_newlines() {
        let dir = tempfile::tempdir().unwrap();
        let entries = vec![
            entry("a.png", "one small polyp\n", "a.png"),
            entry("b.png", "two, \"quoted\" polyps", "b_Segmentation.png"),
        ];
        for format in [SheetFormat::Xlsx, SheetFormat::Csv] {
            let path = dir
                .path()
                .join(format!("Train_text.{}", format.extension()));
            write_prompt_sheet(&path, &entries, format).unwrap();
            let sheet = read_prompt_sheet(&path).unwrap();
            assert_eq!(sheet.header, ["Image", "Description", "Ground Truth"]);
            assert_eq!(sheet.mask_column.as_deref(), Some("Ground Truth"));
            assert_eq!(sheet.rows.len(), 2);
            assert_eq!(sheet.rows[0].row, 2);
            assert_eq!(
                sheet.rows[0].description.as_deref(),
                Some("one small polyp\n")
            );
            assert_eq!(
                sheet.rows[1].ground_truth.as_deref(),
                Some("b_Segmentation.png")
            );
        }
    }

    #[test]
    fn xlsx_output_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let entries = vec![entry("a.png", "x", "a.png")];
        let (p1, p2) = (dir.path().join("1.xlsx"), dir.path().join("2.xlsx"));
        write_prompt_sheet(&p1, &entries, SheetFormat::Xlsx).unwrap();
        write_prompt_sheet(&p2, &entries, SheetFormat::Xlsx).unwrap();
        assert_eq!(std::fs::read(p1).unwrap(), std::fs::read(p2).unwrap());
    }

    #[test]
    fn mask_header_alias_and_reordered_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Val_text.csv");
        std::fs::write(&path, "Mask, Description ,IMAGE,extra\nm.png,p,i.png,z\n").unwrap();
        let sheet = read_prompt_sheet(&path).unwrap();
        assert_eq!(sheet.mask_column.as_deref(), Some("Mask"));
        assert_eq!(sheet.rows[0].image.as_deref(), Some("i.png"));
        assert_eq!(sheet.rows[0].ground_truth.as_deref(), Some("m.png"));
    }

    #[test]
    fn image_prompts_from_an_excel_csv_with_quotes() {
        // Excel's "CSV UTF-8" starts with U+FEFF, which used to hide the `Image` header.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prompts.csv");
        let text =
            "\u{feff}Image,Description\r\na.png,\"one, small \"\"round\"\" lesion\"\r\nb.png,\r\n";
        std::fs::write(&path, text).unwrap();
        let table = ImagePrompts::read_csv(&path).unwrap();
        assert_eq!(
            table.prompt("a.png").unwrap(),
            "one, small \"round\" lesion"
        );
        assert_eq!(table.line("a.png"), Some(2));
        let empty = table.prompt("b.png").unwrap_err().to_string();
        assert!(
            empty.contains("row 3")
                && empty.contains("b.png")
                && empty.contains("empty Description"),
            "{empty}"
        );
        let missing = table.prompt("c.png").unwrap_err().to_string();
        assert!(missing.contains("no prompt for image c.png"), "{missing}");
    }

    #[test]
    fn image_prompts_need_both_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prompts.csv");
        std::fs::write(&path, "Image,Text\na.png,x\n").unwrap();
        let err = ImagePrompts::read_csv(&path).unwrap_err().to_string();
        assert!(err.contains("\"Description\""), "{err}");
        std::fs::write(&path, "").unwrap();
        assert!(ImagePrompts::read_csv(&path).is_err());
    }

    #[test]
    fn empty_sheet_has_no_rows_and_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Val_text.xlsx");
        write_prompt_sheet(&path, &[], SheetFormat::Xlsx).unwrap();
        assert!(read_prompt_sheet(&path).unwrap().rows.is_empty());
        let csv_path = dir.path().join("Val_text.csv");
        std::fs::write(&csv_path, "").unwrap();
        let sheet = read_prompt_sheet(&csv_path).unwrap();
        assert!(sheet.rows.is_empty() && sheet.header.is_empty());
    }

    #[test]
    fn missing_header_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Train_text.csv");
        std::fs::write(&path, "a.png,prompt,a.png\n").unwrap();
        let err = read_prompt_sheet(&path).unwrap_err().to_string();
        assert!(
            err.contains("Train_text.csv") && err.contains("\"Image\""),
            "{err}"
        );
    }

    #[test]
    fn garbage_xlsx_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Train_text.xlsx");
        std::fs::write(&path, b"\x00\x01 this is not a zip file").unwrap();
        let err = read_prompt_sheet(&path).unwrap_err().to_string();
        assert!(err.contains("Train_text.xlsx"), "{err}");
        let missing = read_prompt_sheet(&dir.path().join("nope.xlsx")).unwrap_err();
        assert!(missing.to_string().contains("nope.xlsx"));
    }

    #[test]
    fn numeric_cells_become_text() {
        assert_eq!(cell_text(&Data::Float(274.0)).as_deref(), Some("274"));
        assert_eq!(cell_text(&Data::Int(7)).as_deref(), Some("7"));
        assert_eq!(cell_text(&Data::String(String::new())), None);
    }
}
