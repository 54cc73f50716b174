//! A report builder that writes the same content twice: a self-contained HTML page (inline
//! CSS, figures referenced by relative path) and a Markdown file.
//!
//! All text is plain text: it is escaped for HTML and for Markdown, so file names such as
//! `data_percentage` or values such as `a<b` show as written.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::io::write_atomic;
use crate::table::{Table, escape_markdown_cell, escape_markdown_text};

/// One piece of a report, in reading order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Block {
    /// A section heading (level 2) or sub-heading (level 3).
    Heading {
        /// 2 for a section, 3 for a sub-section.
        level: u8,
        /// Heading text.
        text: String,
    },
    /// A paragraph of plain text.
    Paragraph(String),
    /// Two-column key/value table (settings, summary numbers).
    KeyValues(Vec<(String, String)>),
    /// A table with a header.
    Table(Table),
    /// A picture referenced by a path relative to the report, with a caption.
    Figure {
        /// Relative path (forward slashes) from the report to the image.
        path: String,
        /// Caption under the image.
        caption: String,
    },
    /// Preformatted text (a command line, a log excerpt).
    Code(String),
}

/// A titled sequence of [`Block`]s.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Page title (the level-1 heading).
    pub title: String,
    /// Content in reading order.
    pub blocks: Vec<Block>,
}

/// The two files a report was written to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportFiles {
    /// The HTML page.
    pub html: PathBuf,
    /// The Markdown file.
    pub markdown: PathBuf,
}

impl Report {
    /// An empty report.
    pub fn new(title: impl Into<String>) -> Self {
        Report {
            title: title.into(),
            blocks: Vec::new(),
        }
    }

    /// Adds a section heading.
    pub fn section(mut self, text: impl Into<String>) -> Self {
        self.blocks.push(Block::Heading {
            level: 2,
            text: text.into(),
        });
        self
    }

    /// Adds a sub-section heading.
    pub fn subsection(mut self, text: impl Into<String>) -> Self {
        self.blocks.push(Block::Heading {
            level: 3,
            text: text.into(),
        });
        self
    }

    /// Adds a paragraph.
    pub fn paragraph(mut self, text: impl Into<String>) -> Self {
        self.blocks.push(Block::Paragraph(text.into()));
        self
    }

    /// Adds a key/value table.
    pub fn key_values<K: Into<String>, V: Into<String>>(
        mut self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let pairs = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self.blocks.push(Block::KeyValues(pairs));
        self
    }

    /// Adds a table.
    pub fn table(mut self, table: Table) -> Self {
        self.blocks.push(Block::Table(table));
        self
    }

    /// Adds a figure; `path` is relative to the report's directory.
    pub fn figure(mut self, path: impl Into<String>, caption: impl Into<String>) -> Self {
        self.blocks.push(Block::Figure {
            path: path.into(),
            caption: caption.into(),
        });
        self
    }

    /// Adds preformatted text.
    pub fn code(mut self, text: impl Into<String>) -> Self {
        self.blocks.push(Block::Code(text.into()));
        self
    }

    /// The report as a complete HTML5 page.
    pub fn to_html(&self) -> String {
        let mut body = format!("<h1>{}</h1>\n", escape_html(&self.title));
        for block in &self.blocks {
            body.push_str(&block_html(block));
        }
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>\n{}</style>\n</head>\n<body>\n{}</body>\n</html>\n",
            escape_html(&self.title),
            STYLE,
            body
        )
    }

    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("# {}\n", escape_markdown_text(&self.title));
        for block in &self.blocks {
            out.push('\n');
            out.push_str(&block_markdown(block));
        }
        out
    }

    /// Writes `<dir>/<stem>.html` and `<dir>/<stem>.md` (atomically; `dir` is created).
    pub fn write(&self, dir: &Path, stem: &str) -> Result<ReportFiles> {
        let files = ReportFiles {
            html: dir.join(format!("{stem}.html")),
            markdown: dir.join(format!("{stem}.md")),
        };
        write_atomic(&files.html, self.to_html().as_bytes())?;
        write_atomic(&files.markdown, self.to_markdown().as_bytes())?;
        Ok(files)
    }
}

const STYLE: &str = "\
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #eee; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: .3em .7em; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { text-align: right; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: .92em; margin-top: .3em; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; border-radius: 4px; }
";

/// Escapes text for HTML element content and (double- or single-quoted) attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Percent-encodes a relative path for use as a URL (keeps `/` and unreserved characters),
/// so spaces, `#`, `?` or `%` in file names do not break links.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.replace('\\', "/").bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'/' | b'.' | b'-' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn is_number(text: &str) -> bool {
    text.trim().trim_end_matches('%').parse::<f64>().is_ok()
}

fn block_html(block: &Block) -> String {
    match block {
        Block::Heading { level, text } => {
            let level = (*level).clamp(2, 6);
            format!("<h{level}>{}</h{level}>\n", escape_html(text))
        }
        Block::Paragraph(text) => format!("<p>{}</p>\n", escape_html(text)),
        Block::KeyValues(pairs) => {
            let rows: String = pairs
                .iter()
                .map(|(k, v)| {
                    format!(
                        "<tr><th>{}</th><td>{}</td></tr>\n",
                        escape_html(k),
                        escape_html(v)
                    )
                })
                .collect();
            format!("<table class=\"kv\">\n{rows}</table>\n")
        }
        Block::Table(table) => table_html(table),
        Block::Figure { path, caption } => format!(
            "<figure>\n<img src=\"{}\" alt=\"{}\">\n<figcaption>{}</figcaption>\n</figure>\n",
            escape_html(&encode_path(path)),
            escape_html(caption),
            escape_html(caption)
        ),
        Block::Code(text) => format!("<pre><code>{}</code></pre>\n", escape_html(text)),
    }
}

fn table_html(table: &Table) -> String {
    let columns = table.column_count();
    let cell = |row: &[String], c: usize| row.get(c).cloned().unwrap_or_default();
    let header: String = (0..columns)
        .map(|c| format!("<th>{}</th>", escape_html(&cell(&table.header, c))))
        .collect();
    let mut out = format!("<table>\n<thead><tr>{header}</tr></thead>\n<tbody>\n");
    for row in &table.rows {
        let cells: String = (0..columns)
            .map(|c| {
                let text = cell(row, c);
                let class = if is_number(&text) {
                    " class=\"num\""
                } else {
                    ""
                };
                format!("<td{class}>{}</td>", escape_html(&text))
            })
            .collect();
        out.push_str(&format!("<tr>{cells}</tr>\n"));
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

fn block_markdown(block: &Block) -> String {
    match block {
        Block::Heading { level, text } => {
            let hashes = "#".repeat((*level).clamp(2, 6) as usize);
            format!("{hashes} {}\n", escape_markdown_text(text))
        }
        Block::Paragraph(text) => format!("{}\n", escape_markdown_text(text)),
        Block::KeyValues(pairs) => {
            let mut out = String::from("| | |\n| ---: | --- |\n");
            for (key, value) in pairs {
                out.push_str(&format!(
                    "| **{}** | {} |\n",
                    escape_markdown_cell(key),
                    escape_markdown_cell(value)
                ));
            }
            out
        }
        Block::Table(table) => table.to_markdown(),
        Block::Figure { path, caption } => format!(
            "![{}]({})\n\n*{}*\n",
            escape_markdown_text(caption),
            encode_path(path),
            escape_markdown_text(caption)
        ),
        Block::Code(text) => {
            // The fence must be longer than any backtick run inside the text.
            let longest_run = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
            let fence = "`".repeat(longest_run.max(2) + 1);
            format!("{fence}\n{text}\n{fence}\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut table = Table::new(["style", "DSC"]);
        table.push_row(["original", "0.812"]).unwrap();
        Report::new("Run <1> & \"friends\"")
            .section("Summary")
            .paragraph("Trained on BUSI_25 with beta = 2.5; a<b & c>d.")
            .key_values([("epochs", "30"), ("device", "cpu")])
            .table(table)
            .figure("figures/loss curve.png", "Loss per epoch")
            .code("medclipseg train --config configs/busi.toml")
    }

    #[test]
    fn html_escapes_everything_user_supplied() {
        let html = sample().to_html();
        assert!(html.contains("<title>Run &lt;1&gt; &amp; &quot;friends&quot;</title>"));
        assert!(html.contains("a&lt;b &amp; c&gt;d."));
        assert!(!html.contains("<1>"));
        assert!(html.contains("<img src=\"figures/loss%20curve.png\" alt=\"Loss per epoch\">"));
        assert!(html.contains("<td class=\"num\">0.812</td>"));
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<style>"), "inline CSS");
    }

    #[test]
    fn escape_html_covers_the_five_characters() {
        assert_eq!(
            escape_html("<a href='x'>\"&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&quot;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(escape_html("plain é"), "plain é");
    }

    #[test]
    fn markdown_has_the_same_content() {
        let md = sample().to_markdown();
        assert!(md.starts_with("# Run \\<1\\> & \"friends\"\n"));
        assert!(md.contains("## Summary\n"));
        assert!(md.contains("BUSI\\_25"));
        assert!(md.contains("| **epochs** | 30 |"));
        assert!(md.contains("| original | 0.812 |"));
        assert!(md.contains("![Loss per epoch](figures/loss%20curve.png)"));
        assert!(md.contains("```\nmedclipseg train --config configs/busi.toml\n```\n"));
    }

    #[test]
    fn code_fence_outgrows_backticks_inside() {
        let md = Report::new("t").code("a ``` b").to_markdown();
        assert!(md.contains("````\na ``` b\n````\n"));
    }

    #[test]
    fn path_encoding_keeps_slashes() {
        assert_eq!(encode_path("a b/c#1?.png"), "a%20b/c%231%3F.png");
        assert_eq!(encode_path("dir\\x.png"), "dir/x.png");
        assert_eq!(encode_path("é.png"), "%C3%A9.png");
    }

    #[test]
    fn write_produces_both_files_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let files = sample().write(&dir.path().join("report"), "index").unwrap();
        assert_eq!(
            std::fs::read_to_string(&files.html).unwrap(),
            sample().to_html()
        );
        assert_eq!(
            std::fs::read_to_string(&files.markdown).unwrap(),
            sample().to_markdown()
        );
        let names: Vec<_> = std::fs::read_dir(dir.path().join("report"))
            .unwrap()
            .collect();
        assert_eq!(names.len(), 2);
    }
}
