//! CSV prompt tables through the `csv` crate (RFC 4180: quoted fields, doubled quotes, commas
//! and newlines inside quotes, CRLF or LF line ends), plus what it leaves to the caller: an
//! Excel "CSV UTF-8" byte-order mark is dropped and an unterminated quote is an error rather
//! than a field that silently swallows the rest of the file.

/// CSV text that cannot be read as a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// A quoted field is never closed: it would swallow the rest of the file.
    #[error("unterminated quoted field starting in the record at line {line}")]
    UnterminatedQuote {
        /// 1-based line on which the record with the open quote starts.
        line: usize,
    },
    /// Anything else the `csv` crate rejects.
    #[error("{0}")]
    Malformed(String),
}

/// One CSV record: the 1-based line on which it starts, and its fields.
pub type Record = (usize, Vec<String>);

/// Parses CSV text (a leading byte-order mark is ignored) into records of fields.
///
/// Each record comes with the 1-based line number on which it starts, so that errors can point
/// at the row a user sees in an editor. Blank lines produce no record.
///
/// ```
/// let rows = med_datasets::csv_text::parse("\u{feff}Image,Description\na.png,\"one, two\"\n")?;
/// assert_eq!(rows[1], (2, vec!["a.png".to_string(), "one, two".to_string()]));
/// # Ok::<(), med_datasets::csv_text::CsvError>(())
/// ```
pub fn parse(text: &str) -> Result<Vec<Record>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // A sentinel record `""` after the text: if it comes back as its own record the text ended
    // outside quotes; otherwise an open quote swallowed it (the csv crate accepts EOF in quotes).
    let probed = format!("{text}\n\"\"\n");
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(probed.as_bytes());
    let mut records = Vec::new();
    // Lines are counted from the records' byte offsets: the csv crate's own line numbers
    // lag behind after CRLF line ends and blank lines, and a record's offset may point at the
    // `\n` of the CRLF before it (a record never starts with a raw line break).
    let bytes = probed.as_bytes();
    let (mut line, mut counted_to) = (1usize, 0usize);
    for record in reader.records() {
        let record = record.map_err(|e| CsvError::Malformed(e.to_string()))?;
        let mut start = record.position().map_or(counted_to, |p| p.byte() as usize);
        while matches!(bytes.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        line += bytes[counted_to..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        counted_to = start;
        records.push((line, record.iter().map(str::to_owned).collect::<Vec<_>>()));
    }
    match records.pop() {
        Some((_, sentinel)) if sentinel == [""] => Ok(records),
        last => Err(CsvError::UnterminatedQuote {
            line: last.map_or(1, |(line, _)| line),
        }),
    }
}

/// Writes records as CSV, quoting only the fields that need it, with LF line ends.
pub fn write(records: &[Vec<String>]) -> String {
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    for record in records {
        // Writing into a Vec cannot fail.
        writer.write_record(record).expect("CSV into memory");
    }
    let bytes = writer.into_inner().expect("CSV into memory");
    String::from_utf8(bytes).expect("CSV of strings is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fields(records: &[(usize, Vec<String>)]) -> Vec<Vec<String>> {
        records.iter().map(|(_, r)| r.clone()).collect()
    }

    #[test]
    fn parses_quotes_commas_and_newlines() {
        let text = "Image,Description,Ground Truth\r\na.png,\"one, \"\"small\"\" polyp\n\",a.png\n\nb.png,x,b.png";
        let parsed = parse(text).unwrap();
        assert_eq!(parsed[0].0, 1);
        assert_eq!(parsed[1].0, 2);
        assert_eq!(parsed[2].0, 5, "blank line skipped, line numbers kept");
        assert_eq!(
            fields(&parsed),
            vec![
                vec!["Image", "Description", "Ground Truth"],
                vec!["a.png", "one, \"small\" polyp\n", "a.png"],
                vec!["b.png", "x", "b.png"],
            ]
        );
    }

    #[test]
    fn bom_is_stripped_and_unterminated_quote_is_an_error() {
        let parsed = parse("\u{feff}Image\nx\n").unwrap();
        assert_eq!(parsed[0].1, vec!["Image"]);
        let err = parse("Image\n\"oops\n").unwrap_err();
        assert_eq!(err, CsvError::UnterminatedQuote { line: 2 });
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    proptest! {
        #[test]
        fn write_then_parse_round_trips(records in prop::collection::vec(
            prop::collection::vec("[a-z ,\"\n\r]{0,6}", 1..4), 0..5)) {
            let text = write(&records);
            let parsed = parse(&text).unwrap();
            prop_assert_eq!(fields(&parsed), records);
        }
    }
}
