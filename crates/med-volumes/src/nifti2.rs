//! NIfTI-2 (540-byte header, 64-bit sizes) reading, which the `nifti` crate lacks. The header is
//! carried over into a NIfTI-1 [`NiftiHeader`] (outputs are written as NIfTI-1), the voxels are
//! read in the file's byte order and scaled by `scl_slope` / `scl_inter`.

use std::io::Read;
use std::path::Path;

use nifti::NiftiHeader;

use crate::error::{Result, VolumeError};

/// Header sizes that say which NIfTI version a file is.
pub(crate) const NIFTI1_HEADER: i32 = 348;
pub(crate) const NIFTI2_HEADER: i32 = 540;

/// All bytes of a `.nii` or `.nii.gz` (gzip detected by its magic, not the name).
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| VolumeError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| VolumeError::io(path, e))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// The first four bytes of the (decompressed) file as a header size, in either byte order:
/// 348 for NIfTI-1, 540 for NIfTI-2; `None` for anything else or an unreadable file.
pub fn nifti_header_size(path: &Path) -> Option<i32> {
    let file = std::fs::File::open(path).ok()?;
    let mut head = [0u8; 4];
    let mut magic = [0u8; 2];
    let mut probe = std::fs::File::open(path).ok()?;
    probe.read_exact(&mut magic).ok()?;
    if magic == [0x1f, 0x8b] {
        flate2::read::MultiGzDecoder::new(file)
            .read_exact(&mut head)
            .ok()?;
    } else {
        let mut file = file;
        file.read_exact(&mut head).ok()?;
    }
    let (le, be) = (i32::from_le_bytes(head), i32::from_be_bytes(head));
    [NIFTI1_HEADER, NIFTI2_HEADER]
        .into_iter()
        .find(|&size| size == le || size == be)
}

/// A NIfTI-2 file: its header as NIfTI-1 fields, its full dimensions and its scaled voxels
/// (`i` fastest, all volumes one after the other).
pub(crate) struct Nifti2 {
    pub header: NiftiHeader,
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

struct Fields<'a> {
    bytes: &'a [u8],
    little: bool,
}

impl Fields<'_> {
    fn take<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[at..at + N]);
        if !self.little {
            out.reverse();
        }
        out
    }
    fn i16(&self, at: usize) -> i16 {
        i16::from_le_bytes(self.take(at))
    }
    fn i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.take(at))
    }
    fn i64(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.take(at))
    }
    fn f64(&self, at: usize) -> f64 {
        f64::from_le_bytes(self.take(at))
    }
}

pub(crate) fn read_nifti2(path: &Path) -> Result<Nifti2> {
    let bytes = read_bytes(path)?;
    let bad = |reason: String| VolumeError::unsupported(path, format!("NIfTI-2: {reason}"));
    if bytes.len() < NIFTI2_HEADER as usize {
        return Err(bad(format!(
            "{} bytes, shorter than the 540-byte header",
            bytes.len()
        )));
    }
    let little = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) == NIFTI2_HEADER;
    let f = Fields {
        bytes: &bytes,
        little,
    };
    let ndim = f.i64(16);
    if !(1..=7).contains(&ndim) {
        return Err(bad(format!(
            "dim[0] = {ndim} is not a dimension count (1..7)"
        )));
    }
    let mut dims = Vec::new();
    for d in 0..ndim as usize {
        let n = f.i64(24 + 8 * d);
        if n < 1 || n > i64::from(u16::MAX) {
            return Err(bad(format!("dim[{}] = {n} is outside 1..65535", d + 1)));
        }
        dims.push(n as usize);
    }
    let datatype = f.i16(12);
    let voxels: usize = dims.iter().product();
    let vox_offset = f.i64(168);
    let width = sample_width(datatype)
        .ok_or_else(|| bad(format!("datatype {datatype} is not supported")))?;
    let start = usize::try_from(vox_offset).map_err(|_| bad(format!("vox_offset {vox_offset}")))?;
    let end = voxels
        .checked_mul(width)
        .and_then(|n| n.checked_add(start))
        .ok_or_else(|| bad("size overflows".into()))?;
    let raw = bytes.get(start..end).ok_or_else(|| {
        bad(format!(
            "{} bytes of voxel data from offset {start}, {} needed (truncated?)",
            bytes.len().saturating_sub(start),
            end - start
        ))
    })?;
    let (slope, inter) = (f.f64(176), f.f64(184));
    let (slope, inter) = if slope == 0.0 || !slope.is_finite() {
        (1.0, 0.0)
    } else {
        (slope, inter)
    };
    let data = raw
        .chunks_exact(width)
        .map(|c| (sample(datatype, c, little) * slope + inter) as f32)
        .collect();
    let mut header = NiftiHeader {
        datatype,
        bitpix: f.i16(14),
        scl_slope: 1.0,
        scl_inter: 0.0,
        qform_code: f.i32(344) as i16,
        sform_code: f.i32(348) as i16,
        quatern_b: f.f64(352) as f32,
        quatern_c: f.f64(360) as f32,
        quatern_d: f.f64(368) as f32,
        quatern_x: f.f64(376) as f32,
        quatern_y: f.f64(384) as f32,
        quatern_z: f.f64(392) as f32,
        xyzt_units: f.i32(500) as u8,
        intent_code: f.i32(504) as i16,
        descrip: bytes[240..320].to_vec(),
        ..NiftiHeader::default()
    };
    header.dim[0] = ndim as u16;
    for (d, &n) in dims.iter().enumerate() {
        header.dim[d + 1] = n as u16;
    }
    for d in 0..8 {
        header.pixdim[d] = f.f64(104 + 8 * d) as f32;
    }
    let row = |at: usize| [0, 1, 2, 3].map(|c| f.f64(at + 8 * c) as f32);
    header.srow_x = row(400);
    header.srow_y = row(432);
    header.srow_z = row(464);
    Ok(Nifti2 { header, dims, data })
}

fn sample_width(datatype: i16) -> Option<usize> {
    Some(match datatype {
        2 | 256 => 1,
        4 | 512 => 2,
        8 | 16 | 768 => 4,
        64 | 1024 | 1280 => 8,
        _ => return None,
    })
}

fn sample(datatype: i16, c: &[u8], little: bool) -> f64 {
    let mut b = [0u8; 8];
    b[..c.len()].copy_from_slice(c);
    if !little {
        b[..c.len()].reverse();
    }
    match datatype {
        2 => f64::from(b[0]),
        256 => f64::from(b[0] as i8),
        4 => f64::from(i16::from_le_bytes([b[0], b[1]])),
        512 => f64::from(u16::from_le_bytes([b[0], b[1]])),
        8 => f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        768 => f64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        16 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        64 => f64::from_le_bytes(b),
        1024 => i64::from_le_bytes(b) as f64,
        _ => u64::from_le_bytes(b) as f64,
    }
}
