//! The character-level fixes of ftfy (`ftfy.fixes`), each a pure `&str -> Cow<str>`
//! that borrows when nothing changes.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::Regex;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

use super::codecs::sloppy_windows_1252_char;

/// Applies `map` to every char; borrows when `map` returns `None` for all of them.
fn map_chars<'a>(text: &'a str, map: impl Fn(char) -> Option<&'static str>) -> Cow<'a, str> {
    let Some(first) = text.char_indices().find(|&(_, c)| map(c).is_some()) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str(&text[..first.0]);
    for c in text[first.0..].chars() {
        match map(c) {
            Some(replacement) => out.push_str(replacement),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Like [`map_chars`] for one-char replacements computed on the fly.
fn map_each_char(text: &str, map: impl Fn(char) -> Option<char>) -> Cow<'_, str> {
    if !text.chars().any(|c| map(c).is_some()) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().map(|c| map(c).unwrap_or(c)).collect())
}

/// `fix_c1_controls`: U+0080..U+009F read as the Windows-1252 bytes they most likely were.
pub(crate) fn fix_c1_controls(text: &str) -> Cow<'_, str> {
    map_each_char(text, |c| {
        let code = u32::from(c);
        (0x80..=0x9F)
            .contains(&code)
            .then(|| sloppy_windows_1252_char(code as u8))
    })
}

/// `fix_latin_ligatures`: `ﬁ` → `fi` and the other Latin ligatures ftfy lists.
pub(crate) fn fix_latin_ligatures(text: &str) -> Cow<'_, str> {
    map_chars(text, |c| {
        Some(match c {
            'Ĳ' => "IJ",
            'ĳ' => "ij",
            'ŉ' => "ʼn",
            'Ǳ' => "DZ",
            'ǲ' => "Dz",
            'ǳ' => "dz",
            'Ǆ' => "DŽ",
            'ǅ' => "Dž",
            'ǆ' => "dž",
            'Ǉ' => "LJ",
            'ǈ' => "Lj",
            'ǉ' => "lj",
            'Ǌ' => "NJ",
            'ǋ' => "Nj",
            'ǌ' => "nj",
            'ﬀ' => "ff",
            'ﬁ' => "fi",
            'ﬂ' => "fl",
            'ﬃ' => "ffi",
            'ﬄ' => "ffl",
            'ﬅ' => "ſt",
            'ﬆ' => "st",
            _ => return None,
        })
    })
}

/// `fix_character_width`: U+3000 → space, and the halfwidth/fullwidth forms
/// (U+FF01..U+FFEF) → their NFKC form, exactly how ftfy builds its `WIDTH_MAP`.
pub(crate) fn fix_character_width(text: &str) -> Cow<'_, str> {
    let changes =
        |c: char| c == '\u{3000}' || (('\u{FF01}'..='\u{FFEF}').contains(&c) && nfkc_differs(c));
    if !text.chars().any(changes) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\u{3000}' {
            out.push(' ');
        } else if changes(c) {
            out.extend(std::iter::once(c).nfkc());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn nfkc_differs(c: char) -> bool {
    !std::iter::once(c).nfkc().eq(std::iter::once(c))
}

/// `uncurl_quotes`: curly single quotes (and U+02BC) → `'`, curly double quotes → `"`.
pub(crate) fn uncurl_quotes(text: &str) -> Cow<'_, str> {
    map_each_char(text, |c| match c {
        '\u{2BC}' | '\u{2018}'..='\u{201B}' => Some('\''),
        '\u{201C}'..='\u{201F}' => Some('"'),
        _ => None,
    })
}

/// `fix_line_breaks`: CRLF, CR, U+2028, U+2029 and U+0085 → `\n`.
pub(crate) fn fix_line_breaks(text: &str) -> Cow<'_, str> {
    if !text.contains(['\r', '\u{2028}', '\u{2029}', '\u{85}']) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.replace("\r\n", "\n")
            .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n"),
    )
}

/// `remove_terminal_escapes`: ANSI colour/cursor sequences such as `ESC[36;44m`.
pub(crate) fn remove_terminal_escapes(text: &str) -> Cow<'_, str> {
    static ANSI: OnceLock<Regex> = OnceLock::new();
    if !text.contains('\u{1B}') {
        return Cow::Borrowed(text);
    }
    let ansi =
        ANSI.get_or_init(|| Regex::new(r"\x1B\[((?:\d|;)*)([a-zA-Z])").expect("static regex"));
    ansi.replace_all(text, "")
}

/// `remove_control_chars`: C0 controls other than `\t \n \x0C \r`, DEL, the deprecated
/// Arabic format controls, the BOM and the interlinear annotation characters.
pub(crate) fn remove_control_chars(text: &str) -> Cow<'_, str> {
    let is_removed = |c: char| {
        matches!(c,
            '\u{0}'..='\u{8}' | '\u{B}' | '\u{E}'..='\u{1F}' | '\u{7F}'
            | '\u{206A}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFC}')
    };
    if !text.contains(is_removed) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().filter(|&c| !is_removed(c)).collect())
}

/// Unicode NFC (ftfy's default `normalization='NFC'`).
pub(crate) fn normalize_nfc(text: &str) -> Cow<'_, str> {
    if is_nfc_quick(text.chars()) == IsNormalized::Yes {
        return Cow::Borrowed(text);
    }
    let normalized: String = text.nfc().collect();
    if normalized == text {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(normalized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values: the doctests of ftfy 6.3.1 `ftfy.fixes`, and
    // `ftfy.fixes.<fixer>(input)` run by hand.
    #[test]
    fn each_fixer_matches_ftfy() {
        assert_eq!(fix_latin_ligatures("ﬂuﬃeﬆ"), "fluffiest");
        assert_eq!(fix_character_width("ＬＯＵＤ　ＮＯＩＳＥＳ"), "LOUD NOISES");
        assert_eq!(fix_character_width("Ｕﾀｰﾝ"), "Uターン");
        assert_eq!(
            uncurl_quotes("\u{201C}here\u{2019}s a test\u{201D}"),
            "\"here's a test\""
        );
        assert_eq!(
            fix_line_breaks("a\r\nb\rc\u{2028}d\u{2029}e\u{85}f"),
            "a\nb\nc\nd\ne\nf"
        );
        assert_eq!(
            remove_terminal_escapes("\u{1B}[36;44mI'm blue, da ba dee\u{1B}[0m"),
            "I'm blue, da ba dee"
        );
        assert_eq!(
            remove_control_chars("a\u{0}b\u{7}\tc\u{B}\u{C}\r\n\u{1F}\u{7F}\u{FEFF}\u{200D}d"),
            "ab\tc\u{C}\r\n\u{200D}d"
        );
        assert_eq!(fix_c1_controls("\u{80}\u{81}\u{92}\u{9F}"), "€\u{81}’Ÿ");
        assert_eq!(normalize_nfc("e\u{301}"), "é");
    }

    #[test]
    fn unchanged_text_is_borrowed() {
        let text = "One medium tumor in the breast ultrasound image.\n";
        for fixer in [
            fix_c1_controls,
            fix_latin_ligatures,
            fix_character_width,
            uncurl_quotes,
            fix_line_breaks,
            remove_terminal_escapes,
            remove_control_chars,
            normalize_nfc,
        ] {
            assert!(matches!(fixer(text), Cow::Borrowed(_)));
        }
    }
}
