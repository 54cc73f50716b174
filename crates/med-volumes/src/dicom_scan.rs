//! A cheap walk over a DICOM file's element headers before the real parser sees it: an element
//! that declares more bytes than the file has left is refused here. dicom-rs reserves and
//! zero-fills a value's declared length before reading it, so a 10 kB file claiming a 4 GB
//! value would otherwise cost gigabytes and seconds.
//!
//! The walk reads the file front to back without holding it, and decodes headers the way
//! dicom-rs does: the file meta group up to its group length, then the data set in the syntax
//! the meta group names; a deflated data set is inflated as it is walked (a hostile one hid a
//! 4 GB length behind the compression); a VR dicom-rs does not know is read, as dicom-rs reads
//! it, with a 4-byte length.

use std::io::{self, Read};
use std::path::Path;

use crate::error::{Result, VolumeError};

/// How a data set is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    ExplicitLittle,
    ImplicitLittle,
    ExplicitBig,
    /// Deflated explicit VR little endian: walked as it is inflated.
    Deflated,
    /// A syntax this walk does not know: not walked (dicom-rs refuses or reads it itself).
    Other,
}

/// Where the elements of a file start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// A file meta group (explicit VR little endian), then the data set in the syntax it names.
    MetaGroup,
    /// A data set alone.
    DataSet(Encoding),
}

const UNDEFINED: u32 = 0xFFFF_FFFF;

/// Walks `source` (positioned at the first element) to its end, refusing the first element
/// that declares more bytes than remain.
pub(crate) fn check_lengths(path: &Path, source: impl Read, start: Start) -> Result<()> {
    let mut stream = Forward::new(source);
    let encoding = match start {
        Start::MetaGroup => match walk_meta_group(path, &mut stream)? {
            Some(syntax) => encoding_of(&syntax),
            None => return Ok(()),
        },
        Start::DataSet(encoding) => encoding,
    };
    match encoding {
        Encoding::Other => Ok(()),
        Encoding::Deflated => {
            let inflated = flate2::read::DeflateDecoder::new(stream.into_rest());
            walk_data_set(path, &mut Forward::new(inflated), Encoding::ExplicitLittle)
        }
        _ => walk_data_set(path, &mut stream, encoding),
    }
}

/// The file meta group as dicom-rs reads it: (0002,0000) first, then whole elements until the
/// bytes read reach its value. Returns the TransferSyntaxUID, or `None` where dicom-rs will
/// refuse the group itself (so there is nothing after it to walk).
fn walk_meta_group<R: Read>(path: &Path, stream: &mut Forward<R>) -> Result<Option<String>> {
    let io = |e| VolumeError::io(path, e);
    let Some(first) = explicit_header(stream, false).map_err(io)? else {
        return Ok(None);
    };
    if first.tag != (0x0002, 0x0000) || first.length != 4 {
        return Ok(None);
    }
    stream.advance(u64::from(first.size)).map_err(io)?;
    let Some(value) = stream.peek(4).map_err(io)? else {
        return Ok(None);
    };
    let group_length = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
    stream.advance(4).map_err(io)?;
    let mut syntax = None;
    let mut read = 0u32;
    while read < group_length {
        let Some(Header { tag, length, size }) = explicit_header(stream, false).map_err(io)? else {
            return Ok(None);
        };
        if length == UNDEFINED {
            return Ok(None);
        }
        stream.advance(u64::from(size)).map_err(io)?;
        if tag == (0x0002, 0x0010)
            && length <= 64
            && let Some(value) = stream.peek(length as usize).map_err(io)?
        {
            let text = String::from_utf8_lossy(value);
            syntax = Some(text.trim_end_matches(['\0', ' ']).to_string());
        }
        skip_value(path, stream, tag, length)?;
        read = read.saturating_add(size).saturating_add(length);
    }
    Ok(syntax)
}

/// The data set's elements: values skipped, sequences and their items walked into (their
/// elements are checked one by one), encapsulated fragments skipped.
fn walk_data_set<R: Read>(path: &Path, stream: &mut Forward<R>, encoding: Encoding) -> Result<()> {
    let io = |e| VolumeError::io(path, e);
    let big = encoding == Encoding::ExplicitBig;
    let explicit = encoding != Encoding::ImplicitLittle;
    // Inside encapsulated pixel data, items hold compressed bytes, not elements.
    let mut in_fragments = false;
    loop {
        let Some(head) = stream.peek(8).map_err(io)? else {
            return Ok(());
        };
        let group = read_u16(&head[0..2], big);
        let (tag, length, header, is_sequence) = if group == 0xFFFE {
            // Items and delimiters: tag + 4-byte length, in every encoding.
            let element = read_u16(&head[2..4], big);
            ((group, element), read_u32(&head[4..8], big), 8, false)
        } else if explicit {
            let vr = [head[4], head[5]];
            let Some(Header { tag, length, size }) = explicit_header(stream, big).map_err(io)?
            else {
                return Ok(());
            };
            (tag, length, size, &vr == b"SQ")
        } else {
            let element = read_u16(&head[2..4], big);
            let sequence = is_implicit_sequence(group, element);
            ((group, element), read_u32(&head[4..8], big), 8, sequence)
        };
        stream.advance(u64::from(header)).map_err(io)?;
        if tag == (0xFFFE, 0xE0DD) {
            in_fragments = false;
            continue;
        }
        let item = tag == (0xFFFE, 0xE000);
        if length == UNDEFINED {
            // dicom-rs reads any other undefined-length element as a sequence (items holding
            // elements, whatever its VR); only pixel data's items hold compressed fragments.
            if tag == (0x7FE0, 0x0010) {
                in_fragments = true;
            }
            continue;
        }
        if (item && !in_fragments) || is_sequence {
            continue;
        }
        skip_value(path, stream, tag, length)?;
    }
}

/// Skips a value of `length` bytes, refusing it when the stream ends first.
fn skip_value<R: Read>(
    path: &Path,
    stream: &mut Forward<R>,
    (group, element): (u16, u16),
    length: u32,
) -> Result<()> {
    let skipped = stream
        .advance(u64::from(length))
        .map_err(|e| VolumeError::io(path, e))?;
    if skipped < u64::from(length) {
        return Err(VolumeError::dicom(
            path,
            format!(
                "element ({group:04X},{element:04X}) declares {length} bytes, only {skipped} remain (truncated or corrupt)"
            ),
        ));
    }
    Ok(())
}

/// An element header: (group, element), value length, header size in bytes.
struct Header {
    tag: (u16, u16),
    length: u32,
    size: u32,
}

/// An explicit VR header at the stream's position, not consumed; `None` when the stream ends
/// inside it.
fn explicit_header<R: Read>(stream: &mut Forward<R>, big: bool) -> io::Result<Option<Header>> {
    let Some(head) = stream.peek(8)? else {
        return Ok(None);
    };
    let tag = (read_u16(&head[0..2], big), read_u16(&head[2..4], big));
    let vr = [head[4], head[5]];
    if has_short_length(vr) {
        let length = u32::from(read_u16(&head[6..8], big));
        return Ok(Some(Header {
            tag,
            length,
            size: 8,
        }));
    }
    Ok(stream.peek(12)?.map(|head| Header {
        tag,
        length: read_u32(&head[8..12], big),
        size: 12,
    }))
}

/// The VRs with a 2-byte length (PS3.5 7.1.2). dicom-rs reads every other VR, unknown ones
/// included (it takes them as UN), with 2 reserved bytes and a 4-byte length.
fn has_short_length(vr: [u8; 2]) -> bool {
    matches!(
        &vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

fn read_u16(b: &[u8], big: bool) -> u16 {
    let b = [b[0], b[1]];
    if big {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    }
}

fn read_u32(b: &[u8], big: bool) -> u32 {
    let b = [b[0], b[1], b[2], b[3]];
    if big {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

/// Sequences an implicit VR data set has no VR for: the dictionary says so.
fn is_implicit_sequence(group: u16, element: u16) -> bool {
    use dicom_core::dictionary::DataDictionary;
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(dicom_core::Tag(group, element))
        .is_some_and(|entry| entry.vr.relaxed() == dicom_core::VR::SQ)
}

/// The data set encoding a transfer syntax UID names.
fn encoding_of(syntax: &str) -> Encoding {
    match syntax {
        "1.2.840.10008.1.2" => Encoding::ImplicitLittle,
        "1.2.840.10008.1.2.2" => Encoding::ExplicitBig,
        "1.2.840.10008.1.2.1.99" => Encoding::Deflated,
        s if s.starts_with("1.2.840.10008.1.2") => Encoding::ExplicitLittle,
        _ => Encoding::Other,
    }
}

/// A forward-only view of a byte stream: look at the next bytes, skip ahead; what was passed
/// is dropped, so a large file or an inflating stream is never held whole.
struct Forward<R> {
    source: R,
    /// Read from `source`, not yet passed: `buffer[at..]`.
    buffer: Vec<u8>,
    at: usize,
}

impl<R: Read> Forward<R> {
    fn new(source: R) -> Self {
        Self {
            source,
            buffer: Vec::new(),
            at: 0,
        }
    }

    /// The next `n` bytes, or `None` when fewer remain.
    fn peek(&mut self, n: usize) -> io::Result<Option<&[u8]>> {
        if self.buffer.len() - self.at < n {
            self.buffer.drain(..self.at);
            self.at = 0;
            let wanted = (n - self.buffer.len()) as u64;
            (&mut self.source)
                .take(wanted)
                .read_to_end(&mut self.buffer)?;
            if self.buffer.len() < n {
                return Ok(None);
            }
        }
        Ok(Some(&self.buffer[self.at..self.at + n]))
    }

    /// Skips `n` bytes; returns how many there were (fewer than `n` at the end).
    fn advance(&mut self, n: u64) -> io::Result<u64> {
        let buffered = (self.buffer.len() - self.at) as u64;
        if n <= buffered {
            self.at += n as usize;
            return Ok(n);
        }
        self.buffer.clear();
        self.at = 0;
        let rest = io::copy(&mut (&mut self.source).take(n - buffered), &mut io::sink())?;
        Ok(buffered + rest)
    }

    /// What has not been passed, as one reader.
    fn into_rest(self) -> impl Read {
        io::Cursor::new(self.buffer[self.at..].to_vec()).chain(self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8], start: Start) -> Result<()> {
        check_lengths(Path::new("f.dcm"), bytes, start)
    }

    #[test]
    fn a_value_longer_than_the_file_is_refused_naming_the_element() {
        // (0008,0016) UI, 4 bytes, then (7FE0,0010) OW claiming 0xFFFFFFF0 bytes.
        let mut bytes = b"\x08\x00\x16\x00UI\x04\x001.2\x00".to_vec();
        bytes.extend_from_slice(b"\xe0\x7f\x10\x00OW\x00\x00\xf0\xff\xff\xff\x01\x02");
        let explicit = Start::DataSet(Encoding::ExplicitLittle);
        let err = check(&bytes, explicit).unwrap_err().to_string();
        assert!(
            err.contains("(7FE0,0010)") && err.contains("f.dcm") && err.contains("only 2 remain"),
            "{err}"
        );
        bytes.truncate(bytes.len() - 14);
        assert!(check(&bytes, explicit).is_ok());
    }

    #[test]
    fn an_unknown_vr_has_a_four_byte_length_as_dicom_rs_reads_it() {
        // VR "\xd4\xd4": dicom-rs reads 2 reserved bytes and a 4-byte length (here 0x7FFF0000).
        let bytes = b"\xd4\xd4\xd4\xd4\xd4\xd4\x02\x00\x00\x00\xff\x7f\x01\x02";
        let err = check(bytes, Start::DataSet(Encoding::ExplicitLittle))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("(D4D4,D4D4) declares 2147418112 bytes"),
            "{err}"
        );
    }

    /// A file meta group naming `syntax`, with the group length dicom-rs reads it by.
    fn meta_group(syntax: &str) -> Vec<u8> {
        let mut uid = syntax.as_bytes().to_vec();
        if uid.len() % 2 == 1 {
            uid.push(0);
        }
        let mut element = b"\x02\x00\x10\x00UI".to_vec();
        element.extend_from_slice(&(uid.len() as u16).to_le_bytes());
        element.extend_from_slice(&uid);
        let mut bytes = b"\x02\x00\x00\x00UL\x04\x00".to_vec();
        bytes.extend_from_slice(&(element.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&element);
        bytes
    }

    #[test]
    fn a_deflated_data_set_is_walked_as_it_inflates() {
        use std::io::Write;
        // Inside the compression: (0008,0016) UI, then (7FE0,0010) OB claiming 1 GB.
        let mut data_set = b"\x08\x00\x16\x00UI\x04\x001.2\x00".to_vec();
        data_set.extend_from_slice(b"\xe0\x7f\x10\x00OB\x00\x00\x00\x00\x00\x40\x01\x02");
        let mut deflater =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        deflater.write_all(&data_set).unwrap();
        let mut bytes = meta_group("1.2.840.10008.1.2.1.99");
        bytes.extend_from_slice(&deflater.finish().unwrap());
        let err = check(&bytes, Start::MetaGroup).unwrap_err().to_string();
        assert!(
            err.contains("(7FE0,0010) declares 1073741824 bytes"),
            "{err}"
        );
        // The same data set uncompressed, in explicit VR little endian, is refused the same way.
        let mut plain = meta_group("1.2.840.10008.1.2.1");
        plain.extend_from_slice(&data_set);
        assert!(check(&plain, Start::MetaGroup).is_err());
        // Whole values pass.
        let mut whole = meta_group("1.2.840.10008.1.2.1");
        whole.extend_from_slice(&data_set[..12]);
        assert!(check(&whole, Start::MetaGroup).is_ok());
    }

    #[test]
    fn a_meta_group_element_longer_than_the_file_is_refused() {
        let mut bytes = b"\x02\x00\x00\x00UL\x04\x00\x0c\x00\x00\x00".to_vec();
        bytes.extend_from_slice(b"\x02\x00\x01\x00OB\x00\x00\xff\xff\xff\x7f\x00\x01");
        let err = check(&bytes, Start::MetaGroup).unwrap_err().to_string();
        assert!(err.contains("(0002,0001)"), "{err}");
    }

    #[test]
    fn forward_peeks_and_skips_across_its_buffer() {
        let bytes: Vec<u8> = (0..=255).collect();
        let mut s = Forward::new(&bytes[..]);
        assert_eq!(s.peek(4).unwrap().unwrap(), &[0, 1, 2, 3]);
        assert_eq!(s.advance(2).unwrap(), 2);
        assert_eq!(s.peek(3).unwrap().unwrap(), &[2, 3, 4]);
        assert_eq!(s.advance(100).unwrap(), 100);
        assert_eq!(s.peek(1).unwrap().unwrap(), &[102]);
        assert_eq!(s.advance(1000).unwrap(), 154);
        assert!(s.peek(1).unwrap().is_none());
    }
}
