//! A small RFC 4180 CSV reader and writer (quoted fields, doubled quotes, commas and newlines
//! inside quotes, CRLF or LF line ends, an optional UTF-8 BOM). Enough for prompt tables; no
//! dependency needed.

/// Parses CSV text into records of fields. Returns an error message on an unterminated quote.
///
/// Each record comes with the 1-based line number on which it starts, so that errors can point
/// at the row a user sees in an editor.
pub(crate) fn parse(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut state = ParseState::default();
    let mut line = 1usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if state.in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    state.field.push('"');
                }
                '"' => state.in_quotes = false,
                _ => {
                    line += usize::from(c == '\n');
                    state.field.push(c);
                }
            }
            continue;
        }
        match c {
            '"' if !state.field_started => {
                state.in_quotes = true;
                state.field_started = true;
                state.record_started = true;
            }
            ',' => {
                state.record.push(std::mem::take(&mut state.field));
                state.field_started = false;
                state.record_started = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                state.finish_record(&mut records);
                line += 1;
                state.record_line = line;
            }
            _ => {
                state.field.push(c);
                state.field_started = true;
                state.record_started = true;
            }
        }
    }
    if state.in_quotes {
        return Err(format!(
            "unterminated quoted field starting in the record at line {}",
            state.record_line
        ));
    }
    state.finish_record(&mut records);
    Ok(records)
}

/// Where the parser is inside the current record.
struct ParseState {
    record: Vec<String>,
    field: String,
    in_quotes: bool,
    /// The current field has a character or an opening quote.
    field_started: bool,
    /// The current record has any content (a blank line has none).
    record_started: bool,
    record_line: usize,
}

impl Default for ParseState {
    fn default() -> Self {
        Self {
            record: Vec::new(),
            field: String::new(),
            in_quotes: false,
            field_started: false,
            record_started: false,
            record_line: 1,
        }
    }
}

impl ParseState {
    /// Closes the current record; a completely blank line produces no record.
    fn finish_record(&mut self, records: &mut Vec<(usize, Vec<String>)>) {
        if self.record_started {
            self.record.push(std::mem::take(&mut self.field));
            records.push((self.record_line, std::mem::take(&mut self.record)));
        }
        self.field.clear();
        self.field_started = false;
        self.record_started = false;
    }
}

/// Writes records as CSV, quoting only the fields that need it, with LF line ends.
pub(crate) fn write(records: &[Vec<String>]) -> String {
    let mut out = String::new();
    for record in records {
        for (i, field) in record.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_field(&mut out, field);
        }
        out.push('\n');
    }
    out
}

fn push_field(out: &mut String, field: &str) {
    let needs_quotes = field.is_empty()
        || field.chars().any(|c| matches!(c, ',' | '"' | '\n' | '\r'))
        || field.starts_with('\u{feff}');
    if !needs_quotes {
        out.push_str(field);
        return;
    }
    out.push('"');
    for c in field.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
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
        assert!(err.contains("line 2"), "{err}");
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
