//! The single-byte codecs ftfy tries when undoing mojibake, and its `utf-8-variants`
//! decoder (UTF-8 plus CESU-8 surrogate pairs and Java's `C0 80` null).

use std::collections::HashMap;
use std::sync::OnceLock;

use super::tables::{CHARMAPS, WINDOWS_1252_C1};

/// One single-byte encoding: bytes 0x00..=0x7F are ASCII, 0x80..=0xFF come from a table.
pub(crate) struct Charmap {
    pub(crate) name: &'static str,
    /// ftfy's "sloppy" codecs also map byte 0x1A to U+FFFD (and so cannot encode U+001A).
    sloppy: bool,
    high: [char; 128],
    encoder: HashMap<char, u8>,
}

impl Charmap {
    fn new(name: &'static str, sloppy: bool, high_chars: &'static str) -> Self {
        let mut high = ['\0'; 128];
        let mut encoder = HashMap::with_capacity(129);
        for (index, c) in high_chars.chars().enumerate().take(128) {
            high[index] = c;
            encoder.insert(c, 0x80 + index as u8);
        }
        if sloppy {
            encoder.insert('\u{FFFD}', 0x1A);
        }
        Charmap {
            name,
            sloppy,
            high,
            encoder,
        }
    }

    /// The char that `byte` decodes to.
    pub(crate) fn decode_byte(&self, byte: u8) -> char {
        match byte {
            0x1A if self.sloppy => '\u{FFFD}',
            0x00..=0x7F => char::from(byte),
            _ => self.high[usize::from(byte - 0x80)],
        }
    }

    /// `text.encode(self)`, or `None` when some char has no byte
    /// (ftfy's `possible_encoding` is exactly "this succeeds").
    pub(crate) fn encode(&self, text: &str) -> Option<Vec<u8>> {
        text.chars().map(|c| self.encode_char(c)).collect()
    }

    fn encode_char(&self, c: char) -> Option<u8> {
        if c.is_ascii() && !(self.sloppy && c == '\u{1A}') {
            return Some(c as u8);
        }
        self.encoder.get(&c).copied()
    }
}

/// The ten codecs of `ftfy.chardata.CHARMAP_ENCODINGS`, in the order ftfy tries them.
pub(crate) fn charmaps() -> &'static [Charmap] {
    static MAPS: OnceLock<Vec<Charmap>> = OnceLock::new();
    MAPS.get_or_init(|| {
        CHARMAPS
            .iter()
            .map(|&(name, sloppy, high)| Charmap::new(name, sloppy, high))
            .collect()
    })
}

/// The char that byte 0x80..=0x9F has in `sloppy-windows-1252`.
pub(crate) fn sloppy_windows_1252_char(byte: u8) -> char {
    charmaps()
        .iter()
        .find(|map| map.name == "sloppy-windows-1252")
        .map_or(char::from(byte), |map| map.decode_byte(byte))
}

/// Strict `windows-1252`, which rejects the five undefined bytes 0x81, 0x8D, 0x8F, 0x90, 0x9D.
pub(crate) fn decode_windows_1252(bytes: &[u8]) -> Option<String> {
    let c1: Vec<char> = WINDOWS_1252_C1.chars().collect();
    bytes
        .iter()
        .map(|&byte| match byte {
            0x80..=0x9F => Some(c1[usize::from(byte - 0x80)]).filter(|&c| c != '\0'),
            _ => Some(char::from(byte)),
        })
        .collect()
}

/// Python's strict `bytes.decode("utf-8")` when `bytes` has no 0xED or 0xC0, else ftfy's
/// `utf-8-variants`: a CESU-8 surrogate pair becomes one code point, `C0 80` becomes U+0000,
/// and anything else that is not UTF-8 (such as a lone surrogate) fails.
pub(crate) fn decode_utf8_or_variants(bytes: Vec<u8>) -> Option<String> {
    if !bytes.iter().any(|&b| b == 0xED || b == 0xC0) {
        return String::from_utf8(bytes).ok();
    }
    let mut repaired = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(&[0xC0, 0x80]) {
            repaired.push(0);
            i += 2;
        } else if let Some(c) = cesu8_pair(&bytes[i..]) {
            let mut buffer = [0; 4];
            repaired.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            i += 6;
        } else {
            repaired.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(repaired).ok()
}

/// `11101101 1010abcd 10efghij 11101101 1011klmn 10opqrst` → U+10000 + abcdefghijklmnopqrst.
fn cesu8_pair(bytes: &[u8]) -> Option<char> {
    let [
        0xED,
        b1 @ 0xA0..=0xAF,
        b2 @ 0x80..=0xBF,
        0xED,
        b4 @ 0xB0..=0xBF,
        b5 @ 0x80..=0xBF,
        ..,
    ] = *bytes
    else {
        return None;
    };
    let code = ((u32::from(b1) & 0x0F) << 16)
        + ((u32::from(b2) & 0x3F) << 10)
        + ((u32::from(b4) & 0x0F) << 6)
        + (u32::from(b5) & 0x3F)
        + 0x10000;
    char::from_u32(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charmaps_round_trip_every_byte() {
        assert_eq!(charmaps().len(), 10);
        for map in charmaps() {
            for byte in 0..=255u8 {
                let c = map.decode_byte(byte);
                assert_eq!(
                    map.encode_char(c),
                    Some(byte),
                    "{} byte {byte:#X}",
                    map.name
                );
            }
        }
    }

    #[test]
    fn sloppy_codecs_swap_byte_1a_and_replacement_char() {
        let sloppy = &charmaps()[1];
        assert_eq!(sloppy.name, "sloppy-windows-1252");
        assert_eq!(sloppy.encode("\u{FFFD}"), Some(vec![0x1A]));
        assert_eq!(sloppy.encode("\u{1A}"), None);
        assert_eq!(charmaps()[0].encode("\u{1A}"), Some(vec![0x1A]));
    }

    #[test]
    fn windows_1252_is_strict_about_its_holes() {
        assert_eq!(
            decode_windows_1252(&[0x93, 0x41, 0x94]).as_deref(),
            Some("\u{201C}A\u{201D}")
        );
        assert_eq!(decode_windows_1252(&[0x81]), None);
    }

    #[test]
    fn utf8_variants_decode_cesu8_and_java_null() {
        // U+1F600 as CESU-8: ED A0 BD ED B8 80.
        let cesu = vec![b'a', 0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80, 0xC0, 0x80];
        assert_eq!(decode_utf8_or_variants(cesu).as_deref(), Some("a😀\u{0}"));
        assert_eq!(decode_utf8_or_variants(vec![0xED, 0xA0, 0xBD]), None);
        assert_eq!(
            decode_utf8_or_variants("é".as_bytes().to_vec()).as_deref(),
            Some("é")
        );
    }
}
