//! Result tables as Markdown (GitHub pipe tables) and CSV (RFC 4180).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, VizError};
use crate::io::write_atomic;

/// A header row plus data rows of text cells.
///
/// Rows built with [`Table::push_row`] are checked against the header; rows set directly
/// through the public fields may be ragged, and the writers then pad short rows with empty
/// cells (and widen the header with empty names for long rows) rather than fail.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Column names.
    pub header: Vec<String>,
    /// Data rows.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column names.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; it must have one cell per header column.
    pub fn push_row<S: Into<String>>(&mut self, row: impl IntoIterator<Item = S>) -> Result<()> {
        let row: Vec<String> = row.into_iter().map(Into::into).collect();
        if row.len() != self.header.len() {
            return Err(VizError::RaggedRow {
                row: self.rows.len(),
                expected: self.header.len(),
                actual: row.len(),
            });
        }
        self.rows.push(row);
        Ok(())
    }

    /// Number of columns: the header's or the longest row's, whichever is larger.
    pub fn column_count(&self) -> usize {
        self.rows
            .iter()
            .map(Vec::len)
            .chain([self.header.len()])
            .max()
            .unwrap_or(0)
    }

    /// Cell `column` of `row`, or "" where a ragged row is short.
    fn cell(row: &[String], column: usize) -> &str {
        row.get(column).map_or("", String::as_str)
    }

    /// Whether every non-empty cell of a column is a number (such columns are right-aligned).
    fn is_numeric_column(&self, column: usize) -> bool {
        let mut cells = self
            .rows
            .iter()
            .map(|r| Self::cell(r, column).trim())
            .filter(|c| !c.is_empty());
        let mut any = false;
        let all_numeric = cells.all(|c| {
            any = true;
            c.trim_end_matches('%').parse::<f64>().is_ok()
        });
        any && all_numeric
    }

    /// A GitHub-flavoured Markdown pipe table; numeric columns are right-aligned, and `|`,
    /// backslashes and line breaks inside cells are escaped.
    pub fn to_markdown(&self) -> String {
        let columns = self.column_count();
        if columns == 0 {
            return String::new();
        }
        let line = |row: &[String]| {
            let cells: Vec<String> = (0..columns)
                .map(|c| escape_markdown_cell(Self::cell(row, c)))
                .collect();
            format!("| {} |\n", cells.join(" | "))
        };
        let mut out = line(&self.header);
        let rule: Vec<&str> = (0..columns)
            .map(|c| {
                if self.is_numeric_column(c) {
                    "---:"
                } else {
                    "---"
                }
            })
            .collect();
        out.push_str(&format!("| {} |\n", rule.join(" | ")));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }

    /// RFC 4180 CSV (the `csv` crate): CRLF line ends; fields with a comma, quote, CR or LF are
    /// quoted, with quotes doubled. Short rows are padded with empty cells.
    pub fn to_csv(&self) -> String {
        let columns = self.column_count();
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::new());
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let fields = (0..columns).map(|c| Self::cell(row, c));
            // Every row has `columns` fields and the sink is memory: writing cannot fail.
            writer.write_record(fields).expect("CSV into memory");
        }
        let bytes = writer.into_inner().expect("CSV into memory");
        String::from_utf8(bytes).expect("CSV of strings is UTF-8")
    }

    /// Writes [`Table::to_csv`] to a file, atomically.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_csv().as_bytes())
    }

    /// Writes [`Table::to_markdown`] to a file, atomically.
    pub fn write_markdown(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_markdown().as_bytes())
    }
}

/// Makes text safe inside a Markdown table cell: escapes `\` and `|`, turns line breaks
/// into `<br>`.
pub fn escape_markdown_cell(text: &str) -> String {
    let escaped = escape_markdown_text(text);
    escaped
        .replace("\r\n", "<br>")
        .replace(['\n', '\r'], "<br>")
}

/// Escapes the characters that would turn plain text into Markdown markup (emphasis, code,
/// links, HTML, tables, headings).
pub fn escape_markdown_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results() -> Table {
        let mut table = Table::new(["dataset", "DSC", "NSD"]);
        table.push_row(["BUSI", "81.20", "84.5"]).unwrap();
        table.push_row(["Kvasir|SEG", "90.1", ""]).unwrap();
        table
    }

    #[test]
    fn markdown_table_aligns_numbers_and_escapes_pipes() {
        let md = results().to_markdown();
        let expected = "| dataset | DSC | NSD |\n\
                        | --- | ---: | ---: |\n\
                        | BUSI | 81.20 | 84.5 |\n\
                        | Kvasir\\|SEG | 90.1 |  |\n";
        assert_eq!(md, expected);
    }

    #[test]
    fn markdown_cell_line_breaks_become_br() {
        assert_eq!(escape_markdown_cell("a\nb\r\nc"), "a<br>b<br>c");
        assert_eq!(escape_markdown_cell("*x*"), "\\*x\\*");
    }

    #[test]
    fn csv_quotes_per_rfc_4180() {
        let mut table = Table::new(["name", "note"]);
        table.push_row(["plain", "has,comma"]).unwrap();
        table.push_row(["say \"hi\"", "two\nlines"]).unwrap();
        let csv = table.to_csv();
        assert_eq!(
            csv,
            "name,note\r\nplain,\"has,comma\"\r\n\"say \"\"hi\"\"\",\"two\nlines\"\r\n"
        );
        let mut odd = Table::new(["x"]);
        odd.push_row(["cr\ronly"]).unwrap();
        assert_eq!(odd.to_csv(), "x\r\n\"cr\ronly\"\r\n");
    }

    #[test]
    fn push_row_rejects_wrong_length() {
        let mut table = Table::new(["a", "b"]);
        let err = table.push_row(["only one"]).unwrap_err();
        assert!(
            err.to_string().contains("1 cells but the header has 2"),
            "{err}"
        );
        assert!(table.rows.is_empty());
    }

    #[test]
    fn ragged_public_rows_are_padded_not_panicking() {
        let table = Table {
            header: vec!["a".into()],
            rows: vec![vec!["1".into(), "2".into()], vec![]],
        };
        assert_eq!(table.to_csv(), "a,\r\n1,2\r\n,\r\n");
        assert!(table.to_markdown().starts_with("| a |  |\n"));
        assert_eq!(Table::default().to_markdown(), "");
    }

    #[test]
    fn files_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("t.csv");
        let md = dir.path().join("t.md");
        results().write_csv(&csv).unwrap();
        results().write_markdown(&md).unwrap();
        assert_eq!(std::fs::read_to_string(csv).unwrap(), results().to_csv());
        assert_eq!(
            std::fs::read_to_string(md).unwrap(),
            results().to_markdown()
        );
    }
}
