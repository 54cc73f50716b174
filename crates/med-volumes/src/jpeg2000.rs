//! A JPEG 2000 codestream's SIZ marker checked against the DICOM attributes before decoding:
//! dicom-rs's JPEG 2000 adapter writes each decoded component into a buffer sized by Rows,
//! Columns and SamplesPerPixel, and panics (slice index out of range) when the codestream says
//! more (found by the `dicom` fuzz target, fuzz/README.md).

/// The image a codestream declares (SIZ): width, height, and each component's subsampling.
#[derive(Debug, PartialEq)]
struct Siz {
    width: u32,
    height: u32,
    subsampling: Vec<(u8, u8)>,
}

/// `FF4F` (start of codestream) then `FF51` (SIZ).
const SOC_SIZ: [u8; 4] = [0xFF, 0x4F, 0xFF, 0x51];
/// A JP2 file's signature box.
const JP2_SIGNATURE: [u8; 8] = [0, 0, 0, 0x0C, b'j', b'P', b' ', b' '];

/// The SIZ of a fragment that starts a codestream (raw, or inside a JP2 file); `None` for a
/// fragment that continues one.
fn siz(fragment: &[u8]) -> Option<Siz> {
    let start = if fragment.starts_with(&SOC_SIZ) {
        0
    } else if fragment.starts_with(&JP2_SIGNATURE) {
        fragment.windows(4).position(|w| w == SOC_SIZ)?
    } else {
        return None;
    };
    let marker = fragment.get(start + 4..)?;
    let u32_at = |i: usize| -> Option<u32> {
        let b = marker.get(i..i + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    // Lsiz(2) Rsiz(2) Xsiz YSiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz (4 each) Csiz(2).
    let (x, y, x0, y0) = (u32_at(4)?, u32_at(8)?, u32_at(12)?, u32_at(16)?);
    let components = u16::from_be_bytes([*marker.get(36)?, *marker.get(37)?]);
    let subsampling = (0..usize::from(components))
        .map(|c| Some((*marker.get(38 + 3 * c + 1)?, *marker.get(38 + 3 * c + 2)?)))
        .collect::<Option<Vec<_>>>()?;
    Some(Siz {
        width: x.checked_sub(x0)?,
        height: y.checked_sub(y0)?,
        subsampling,
    })
}

/// Why `fragments` do not fit `rows` x `cols` x `samples`, if they do not: every codestream
/// they start must declare that image, without subsampled components.
pub(crate) fn mismatch(
    fragments: &[Vec<u8>],
    rows: usize,
    cols: usize,
    samples: usize,
) -> Option<String> {
    fragments.iter().filter_map(|f| siz(f)).find_map(|siz| {
        let fits = siz.width as usize == cols
            && siz.height as usize == rows
            && siz.subsampling.len() == samples
            && siz.subsampling.iter().all(|&s| s == (1, 1));
        (!fits).then(|| {
            format!(
                "the JPEG 2000 codestream declares {}x{} pixels with {} components (subsampling \
                 {:?}), the file's Columns x Rows is {cols}x{rows} with {samples} samples per pixel",
                siz.width,
                siz.height,
                siz.subsampling.len(),
                siz.subsampling
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOC, then a SIZ for `width` x `height` with `components` components of subsampling 1.
    fn codestream(width: u32, height: u32, components: u16) -> Vec<u8> {
        let mut bytes = SOC_SIZ.to_vec();
        bytes.extend_from_slice(&(38 + 3 * components).to_be_bytes());
        bytes.extend_from_slice(&[0, 0]);
        for v in [width, height, 0, 0, width, height, 0, 0] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        bytes.extend_from_slice(&components.to_be_bytes());
        for _ in 0..components {
            bytes.extend_from_slice(&[7, 1, 1]);
        }
        bytes.extend_from_slice(&[0xFF, 0x52, 0, 0]);
        bytes
    }

    #[test]
    fn a_codestream_larger_than_the_frame_is_named() {
        let fits = vec![codestream(64, 32, 1), b"continuation".to_vec()];
        assert_eq!(mismatch(&fits, 32, 64, 1), None);
        let wide = vec![codestream(66, 32, 1)];
        let reason = mismatch(&wide, 32, 64, 1).unwrap();
        assert!(
            reason.contains("66x32") && reason.contains("64x32"),
            "{reason}"
        );
        assert!(mismatch(&[codestream(64, 32, 3)], 32, 64, 1).is_some());
        let mut jp2 = JP2_SIGNATURE.to_vec();
        jp2.extend_from_slice(&[0, 0, 0, 8, b'j', b'p', b'2', b'c']);
        jp2.extend_from_slice(&codestream(64, 33, 1));
        assert!(mismatch(&[jp2], 32, 64, 1).is_some());
    }
}
