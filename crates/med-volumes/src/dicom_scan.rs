//! A cheap walk over a DICOM file's element headers before the real parser sees it: an element
//! that declares more bytes than the file has left is refused here. dicom-rs reserves and
//! zero-fills a value's declared length before reading it, so a 10 kB file claiming a 4 GB
//! value would otherwise cost gigabytes and seconds.

use crate::error::{Result, VolumeError};
use std::path::Path;

/// How the data set after the file meta group is encoded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    ExplicitLittle,
    ImplicitLittle,
    ExplicitBig,
    /// Deflated or unknown: not walked (the parser's own limits apply).
    Other,
}

const UNDEFINED: u32 = 0xFFFF_FFFF;

/// Walks `bytes` from `start` (the first element) to the end; `meta_explicit_le` covers a file
/// meta group (always explicit little endian) before the data set in `encoding`.
pub(crate) fn check_lengths(
    path: &Path,
    bytes: &[u8],
    start: usize,
    encoding: Encoding,
) -> Result<()> {
    let mut at = start;
    // Inside encapsulated pixel data items hold compressed bytes, not elements.
    let mut in_fragments = false;
    while at + 8 <= bytes.len() {
        let little = at < meta_end(bytes, start) || encoding != Encoding::ExplicitBig;
        let u16_at = |i: usize| {
            let b = [bytes[i], bytes[i + 1]];
            if little {
                u16::from_le_bytes(b)
            } else {
                u16::from_be_bytes(b)
            }
        };
        let u32_at = |i: usize| {
            let b = [bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]];
            if little {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }
        };
        let (group, element) = (u16_at(at), u16_at(at + 2));
        let in_meta = group == 0x0002;
        if !in_meta && encoding == Encoding::Other {
            return Ok(());
        }
        let explicit = in_meta || encoding != Encoding::ImplicitLittle;
        let (length, header) = if group == 0xFFFE {
            // Item and delimiters: tag + 4-byte length, in every encoding.
            (u32_at(at + 4), 8)
        } else if explicit {
            let vr = [bytes[at + 4], bytes[at + 5]];
            if long_vr(vr) {
                if at + 12 > bytes.len() {
                    return Ok(());
                }
                (u32_at(at + 8), 12)
            } else {
                (u32::from(u16_at(at + 6)), 8)
            }
        } else {
            (u32_at(at + 4), 8)
        };
        at += header;
        let vr_is_sq = explicit
            && group != 0xFFFE
            && [bytes[at - header + 4], bytes[at - header + 5]] == *b"SQ";
        if group == 0xFFFE && element == 0xE0DD {
            in_fragments = false;
            continue;
        }
        if length == UNDEFINED {
            // A sequence (its items hold elements) or encapsulated pixel data (fragments).
            let sequence = if explicit { vr_is_sq } else { group != 0x7FE0 };
            if group != 0xFFFE && !sequence {
                in_fragments = true;
            }
            continue;
        }
        let remaining = bytes.len().saturating_sub(at);
        if length as usize > remaining {
            return Err(VolumeError::dicom(
                path,
                format!(
                    "element ({group:04X},{element:04X}) declares {length} bytes, only {remaining} remain (truncated or corrupt)"
                ),
            ));
        }
        // Items and sequences hold elements: walk into them; skip other values and fragments.
        if (group == 0xFFFE && element == 0xE000 && !in_fragments) || vr_is_sq {
            continue;
        }
        if !explicit && group != 0xFFFE && is_implicit_sequence(group, element) {
            continue;
        }
        at += length as usize;
    }
    Ok(())
}

/// The end of the file meta group (its group length, when stated), else `start`.
fn meta_end(bytes: &[u8], start: usize) -> usize {
    if bytes.len() >= start + 12
        && bytes[start..start + 4] == [0x02, 0x00, 0x00, 0x00]
        && &bytes[start + 4..start + 6] == b"UL"
    {
        let len = u32::from_le_bytes([
            bytes[start + 8],
            bytes[start + 9],
            bytes[start + 10],
            bytes[start + 11],
        ]);
        start + 12 + len as usize
    } else {
        start
    }
}

fn long_vr(vr: [u8; 2]) -> bool {
    matches!(
        &vr,
        b"OB"
            | b"OW"
            | b"OF"
            | b"OD"
            | b"OL"
            | b"OV"
            | b"SQ"
            | b"UT"
            | b"UN"
            | b"UC"
            | b"UR"
            | b"SV"
            | b"UV"
    )
}

/// Sequences an implicit VR data set has no VR for: the dictionary says so.
fn is_implicit_sequence(group: u16, element: u16) -> bool {
    use dicom_core::dictionary::DataDictionary;
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(dicom_core::Tag(group, element))
        .is_some_and(|entry| entry.vr.relaxed() == dicom_core::VR::SQ)
}

/// The TransferSyntaxUID (0002,0010) of a file meta group starting at `start`, if readable.
pub(crate) fn meta_transfer_syntax(bytes: &[u8], start: usize) -> Option<String> {
    let mut at = start;
    while at + 8 <= bytes.len() {
        let group = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let element = u16::from_le_bytes([bytes[at + 2], bytes[at + 3]]);
        if group != 0x0002 {
            return None;
        }
        let vr = [bytes[at + 4], bytes[at + 5]];
        let (length, header) = if long_vr(vr) {
            let b = bytes.get(at + 8..at + 12)?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        } else {
            (
                usize::from(u16::from_le_bytes([bytes[at + 6], bytes[at + 7]])),
                8,
            )
        };
        let value = bytes.get(at + header..at + header + length)?;
        if element == 0x0010 {
            let text = String::from_utf8_lossy(value);
            return Some(text.trim_end_matches(['\0', ' ']).to_string());
        }
        at += header + length;
    }
    None
}

/// The data set encoding a transfer syntax UID names.
pub(crate) fn encoding_of(syntax: &str) -> Encoding {
    match syntax {
        "1.2.840.10008.1.2" => Encoding::ImplicitLittle,
        "1.2.840.10008.1.2.2" => Encoding::ExplicitBig,
        "1.2.840.10008.1.2.1.99" => Encoding::Other,
        s if s.starts_with("1.2.840.10008.1.2") => Encoding::ExplicitLittle,
        _ => Encoding::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_longer_than_the_file_is_refused_naming_the_element() {
        // (0008,0016) UI, 4 bytes, then (7FE0,0010) OW claiming 0xFFFFFFF0 bytes.
        let mut bytes = b"\x08\x00\x16\x00UI\x04\x001.2\x00".to_vec();
        bytes.extend_from_slice(b"\xe0\x7f\x10\x00OW\x00\x00\xf0\xff\xff\xff\x01\x02");
        let err =
            check_lengths(Path::new("f.dcm"), &bytes, 0, Encoding::ExplicitLittle).unwrap_err();
        assert!(
            err.to_string().contains("(7FE0,0010)") && err.to_string().contains("f.dcm"),
            "{err}"
        );
        bytes.truncate(bytes.len() - 14);
        assert!(check_lengths(Path::new("f.dcm"), &bytes, 0, Encoding::ExplicitLittle).is_ok());
    }
}
