//! HTML character references, decoded two ways:
//! - [`unescape`]: CPython's `html.unescape` (what open_clip applies twice after ftfy);
//! - [`ftfy_unescape_html`]: ftfy's stricter `fixes.unescape_html` (semicolon required,
//!   plus all-caps names such as `&EACUTE;`).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use html_escape::NAMED_ENTITIES;
use regex::{Captures, Regex};

use super::tables::{INVALID_CHARREFS, INVALID_CODEPOINTS, LEGACY_ENTITY_NAMES};

/// The value of an HTML5 named entity, looked up without its semicolon.
fn named_entity(name: &str) -> Option<&'static str> {
    NAMED_ENTITIES
        .binary_search_by(|(entity, _)| (*entity).cmp(name.as_bytes()))
        .ok()
        .map(|index| NAMED_ENTITIES[index].1)
}

/// The value of an entity that HTML5 also accepts without a semicolon (`&amp`, `&eacute`…).
fn legacy_entity(name: &str) -> Option<&'static str> {
    static LEGACY: OnceLock<HashSet<&'static str>> = OnceLock::new();
    let legacy = LEGACY.get_or_init(|| LEGACY_ENTITY_NAMES.into_iter().collect());
    legacy.contains(name).then(|| named_entity(name)).flatten()
}

/// `html._replace_charref` for a numeric reference (`#123;`, `#x1F;`, semicolon optional).
fn numeric_reference(reference: &str) -> String {
    let digits = reference[1..].trim_end_matches(';');
    let parsed = match digits.strip_prefix(['x', 'X']) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => digits.parse::<u32>(),
    };
    // Digits that overflow u32 are far above U+10FFFF, which Python maps to U+FFFD.
    let Ok(number) = parsed else {
        return '\u{FFFD}'.to_string();
    };
    if let Some((_, replacement)) = INVALID_CHARREFS.iter().find(|(n, _)| *n == number) {
        return replacement.to_string();
    }
    if (0xD800..=0xDFFF).contains(&number) || number > 0x10FFFF {
        return '\u{FFFD}'.to_string();
    }
    if INVALID_CODEPOINTS.contains(&number) {
        return String::new();
    }
    char::from_u32(number).map_or_else(|| '\u{FFFD}'.to_string(), String::from)
}

/// `html._replace_charref` for a named reference: exact name first, then the longest
/// semicolon-less prefix (`&notit;` → `¬it;`), else the text unchanged.
fn named_reference(reference: &str) -> String {
    let exact = match reference.strip_suffix(';') {
        Some(name) => named_entity(name),
        None => legacy_entity(reference),
    };
    if let Some(value) = exact {
        return value.to_string();
    }
    let boundaries: Vec<usize> = reference.char_indices().map(|(i, _)| i).collect();
    // Python: `for x in range(len(s) - 1, 1, -1): if s[:x] in html5`.
    for &end in boundaries.iter().skip(2).rev() {
        if let Some(value) = legacy_entity(&reference[..end]) {
            return format!("{value}{}", &reference[end..]);
        }
    }
    format!("&{reference}")
}

/// CPython's `html.unescape`: decodes every named and numeric character reference the way
/// an HTML5 parser does (including `&amp` without a semicolon and `&#150;` as cp1252).
pub fn unescape(text: &str) -> Cow<'_, str> {
    static CHARREF: OnceLock<Regex> = OnceLock::new();
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let charref = CHARREF.get_or_init(|| {
        Regex::new(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\x0C <&#;]{1,32};?)")
            .expect("static regex is valid")
    });
    charref.replace_all(text, |caps: &Captures| {
        let reference = &caps[1];
        if reference.starts_with('#') {
            numeric_reference(reference)
        } else {
            named_reference(reference)
        }
    })
}

/// `ftfy.chardata.HTML_ENTITIES`: `&name;` for every HTML5 name, plus the all-caps form of
/// each lower-case name that `html.unescape` leaves alone (`&EACUTE;` → `É`).
fn ftfy_entities() -> &'static HashMap<String, String> {
    static ENTITIES: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENTITIES.get_or_init(|| {
        let mut entities = HashMap::with_capacity(2 * NAMED_ENTITIES.len());
        for (name, value) in NAMED_ENTITIES {
            let Ok(name) = std::str::from_utf8(name) else {
                continue;
            };
            entities.insert(format!("&{name};"), value.to_string());
            if name == name.to_lowercase() {
                let upper = format!("&{};", name.to_uppercase());
                if unescape(&upper) == upper {
                    entities.insert(upper, value.to_uppercase());
                }
            }
        }
        entities
    })
}

/// ftfy's `fixes.unescape_html`: only references that end in a semicolon are decoded.
pub(crate) fn ftfy_unescape_html(text: &str) -> Cow<'_, str> {
    static ENTITY: OnceLock<Regex> = OnceLock::new();
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let entity =
        ENTITY.get_or_init(|| Regex::new(r"&#?[0-9A-Za-z]{1,24};").expect("static regex is valid"));
    entity.replace_all(text, |caps: &Captures| {
        let reference = &caps[0];
        if let Some(value) = ftfy_entities().get(reference) {
            return value.clone();
        }
        if reference.starts_with("&#") {
            let decoded = unescape(reference);
            // A partial decode (the semicolon survived) is not what we want.
            if !decoded.contains(';') {
                return decoded.into_owned();
            }
        }
        reference.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ftfy::tables::HTML5_SEMICOLON_ENTITY_COUNT;

    #[test]
    fn html_escape_table_is_the_html5_table_of_cpython() {
        assert_eq!(NAMED_ENTITIES.len(), HTML5_SEMICOLON_ENTITY_COUNT);
        for name in LEGACY_ENTITY_NAMES {
            assert!(named_entity(name).is_some(), "{name}");
        }
    }

    // Expected values: CPython 3.11 `html.unescape(s)`.
    #[test]
    fn unescape_matches_cpython() {
        let cases = [
            ("&lt;b&gt; &amp;amp; &quot;x&quot;", "<b> &amp; \"x\""),
            ("fish &amp chips", "fish & chips"),
            ("&notit; &notin; &not", "¬it; ∉ ¬"),
            (
                "&#150; &#x2019; &#0; &#1; &#xD800; &#1114112;",
                "– ’ \u{FFFD}  \u{FFFD} \u{FFFD}",
            ),
            ("&#99999999999999999999;", "\u{FFFD}"),
            ("&bogus; & &; &#;", "&bogus; & &; &#;"),
            ("&EACUTE; &Eacute; &eacute", "&EACUTE; É é"),
            ("AT&T", "AT&T"),
        ];
        for (input, expected) in cases {
            assert_eq!(unescape(input), expected, "{input:?}");
        }
    }

    // Expected values: ftfy 6.3.1 `ftfy.fixes.unescape_html(s)`.
    #[test]
    fn ftfy_unescape_matches_ftfy() {
        let cases = [
            ("P&EACUTE;REZ", "PÉREZ"),
            ("BUNDESSTRA&SZLIG;E", "BUNDESSTRASSE"),
            ("&ntilde; &Ntilde; &NTILDE; &nTILDE;", "ñ Ñ Ñ &nTILDE;"),
            ("fish &amp chips &amp;", "fish &amp chips &"),
            ("&#x2019; &#150; &#65", "’ – &#65"),
        ];
        for (input, expected) in cases {
            assert_eq!(ftfy_unescape_html(input), expected, "{input:?}");
        }
    }
}
