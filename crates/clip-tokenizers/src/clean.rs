//! open_clip's text cleaning (`open_clip/tokenizer.py`), applied before tokenizing:
//! `basic_clean` = `ftfy.fix_text` → `html.unescape` twice → strip, then
//! `whitespace_clean` = `" ".join(text.split())` → strip, and for CLIP BPE `.lower()`.

use crate::ftfy::{fix_text, html_unescape};

/// `whitespace_clean(basic_clean(text))`: the cleaning of open_clip's `HFTokenizer`
/// (`clean='whitespace'`), used for the BERT text tower. Case is kept.
///
/// ```
/// use clip_tokenizers::clean_text;
/// assert_eq!(clean_text("  One  small polyp,\tlocated in right &amp;amp; top\n"), "One small polyp, located in right & top");
/// ```
pub fn clean_text(text: &str) -> String {
    let fixed = fix_text(text);
    let unescaped_once = html_unescape(&fixed);
    let unescaped_twice = html_unescape(&unescaped_once);
    collapse_whitespace(&unescaped_twice)
}

/// `whitespace_clean(basic_clean(text)).lower()`: the cleaning of open_clip's
/// `SimpleTokenizer` (`clean='lower'`) and of OpenAI CLIP's tokenizer.
pub fn clean_text_lower(text: &str) -> String {
    clean_text(text).to_lowercase()
}

/// Python's `" ".join(text.split())`: words separated by one space, none at the ends.
pub fn collapse_whitespace(text: &str) -> String {
    text.split(is_python_whitespace)
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Python's `str.isspace()`: Unicode `White_Space` plus the separators U+001C..U+001F,
/// which Python also splits on and Rust's `char::is_whitespace` does not.
pub fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1C}'..='\u{1F}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn python_whitespace_is_cpython_isspace() {
        // Every code point with `chr(c).isspace()` in CPython 3.11.
        let python: Vec<u32> = [
            0x9..=0xD,
            0x1C..=0x20,
            0x85..=0x85,
            0xA0..=0xA0,
            0x1680..=0x1680,
        ]
        .into_iter()
        .chain([
            0x2000..=0x200A,
            0x2028..=0x2029,
            0x202F..=0x202F,
            0x205F..=0x205F,
        ])
        .chain([0x3000..=0x3000])
        .flatten()
        .collect();
        let rust: Vec<u32> = (0..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter(|&c| is_python_whitespace(c))
            .map(u32::from)
            .collect();
        assert_eq!(rust, python);
    }

    // Expected values: open_clip 3.3.0 `_clean_whitespace(s)` / `_clean_lower(s)`
    // (ftfy 6.3.1, CPython 3.11).
    #[test]
    fn clean_matches_open_clip() {
        let cases = [
            (
                "one small pink circle polyp, located in right of the image\n",
                "one small pink circle polyp, located in right of the image",
            ),
            ("  Polyp   visible.\r\n", "Polyp visible."),
            ("a &amp;lt; b", "a < b"),
            // ftfy unescapes until nothing changes, unless the line has a `<`.
            ("a &amp;amp;amp;amp;lt; b", "a < b"),
            ("x < y &amp;amp;lt; z", "x < y &lt; z"),
            ("&lt;br&gt; tumor", "<br> tumor"),
            ("tumor\u{A0}size\u{3000}3\u{2009}cm", "tumor size 3 cm"),
            ("cafÃ© tumorâ€™s edge", "café tumor's edge"),
            ("ﬁbrous\u{0} ＭＲＩ", "fibrous MRI"),
            ("\u{1B}[1mbold\u{1B}[0m lesion", "bold lesion"),
            ("", ""),
            (" \n\t ", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(clean_text(input), expected, "{input:?}");
        }
        assert_eq!(
            clean_text_lower("Bilateral   Pulmonary INFECTION\n"),
            "bilateral pulmonary infection"
        );
    }

    #[test]
    fn clean_matches_open_clip_on_the_fixture_corpus() {
        let cases = crate::ftfy::tests::fixture_cases();
        for (input, _, expected) in &cases {
            assert_eq!(&clean_text(input), expected, "{input:?}");
        }
    }

    proptest! {
        #[test]
        fn cleaned_text_has_single_inner_spaces(text in "\\PC{0,60}") {
            let cleaned = clean_text(&text);
            prop_assert!(!cleaned.starts_with(is_python_whitespace));
            prop_assert!(!cleaned.ends_with(is_python_whitespace));
            prop_assert!(!cleaned.contains("  "));
            prop_assert!(!cleaned.contains(|c: char| is_python_whitespace(c) && c != ' '));
        }

        #[test]
        fn trailing_newline_never_matters(text in "[ -~]{0,60}") {
            prop_assert_eq!(clean_text(&format!("{text}\n")), clean_text(&text));
        }

        #[test]
        fn plain_ascii_words_are_only_whitespace_collapsed(text in "[a-zA-Z0-9,.;:()' \t\n-]{0,80}") {
            prop_assert_eq!(clean_text(&text), collapse_whitespace(&text));
        }
    }
}
