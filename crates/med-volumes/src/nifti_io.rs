//! NIfTI-1 (`.nii`, `.nii.gz`) reading and atomic writing, and the qform/sform geometry maths.

use std::path::Path;

use ndarray::{Array3, ShapeBuilder};
use nifti::writer::WriterOptions;
use nifti::{InMemNiftiObject, IntoNdArray, NiftiHeader, NiftiObject, ReaderOptions};

use crate::error::{Result, VolumeError};
use crate::nifti2::{NIFTI2_HEADER, nifti_header_size, read_bytes, read_nifti2};
use crate::volume::{Affine, Volume, diagonal_affine};

/// NIfTI `xyzt_units` for millimetres (space) and seconds (time).
const UNITS_MM: u8 = 2;
/// NIfTI `NIFTI_XFORM_SCANNER_ANAT`.
const XFORM_SCANNER: i16 = 1;
/// NIfTI `NIFTI_INTENT_LABEL`: the values are labels.
const INTENT_LABEL: i16 = 1002;

/// True for `.nii` and `.nii.gz` paths (case-insensitive).
pub fn is_nifti_path(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name.ends_with(".nii") || name.ends_with(".nii.gz")
}

/// The file name without `.nii` / `.nii.gz` (`case_01.nii.gz` → `case_01`).
pub fn nifti_stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    for ext in [".nii.gz", ".nii"] {
        if lower.ends_with(ext) {
            return name[..name.len() - ext.len()].to_string();
        }
    }
    name
}

/// Which volume of a 4-D NIfTI (fMRI, DCE, multi-echo) to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeIndex {
    /// One volume, from 0.
    One(usize),
    /// Every volume, in order.
    All,
}

impl std::str::FromStr for VolumeIndex {
    type Err = VolumeError;

    /// `N` (from 0) or `all`.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "all" => Ok(VolumeIndex::All),
            n => n
                .parse()
                .map(VolumeIndex::One)
                .map_err(|_| VolumeError::Intensity {
                    reason: format!("volume index {s:?}: expected a number from 0 or `all`"),
                }),
        }
    }
}

/// Reads a 3-D NIfTI-1 or NIfTI-2 volume (2-D images are read as one slice; trailing singleton
/// dimensions are dropped). `scl_slope`/`scl_inter` are applied. The affine is the sform when
/// its code is set, else the qform, else the voxel sizes on the diagonal, as nibabel does.
/// A 4-D file with more than one volume is refused: see [`read_nifti_volumes`].
pub fn read_nifti(path: &Path) -> Result<Volume> {
    let mut volumes = read_nifti_volumes(path, None)?;
    Ok(volumes.remove(0))
}

/// Reads the volumes `index` picks from a 3-D or 4-D NIfTI-1 or NIfTI-2 file. Without an index
/// a 4-D file with several volumes is an error saying how many it has.
pub fn read_nifti_volumes(path: &Path, index: Option<VolumeIndex>) -> Result<Vec<Volume>> {
    if !path.is_file() {
        let source = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        return Err(VolumeError::io(path, source));
    }
    let (header, sizes, data) = load_nifti(path)?;
    let (dims, count) = grid_dims(path, &sizes)?;
    let picked: Vec<usize> = match (index, count) {
        (None, 1) | (Some(VolumeIndex::All), _) => (0..count).collect(),
        (Some(VolumeIndex::One(t)), _) if t < count => vec![t],
        (Some(VolumeIndex::One(t)), _) => {
            return Err(VolumeError::unsupported(
                path,
                format!(
                    "volume index {t} does not exist: the file has {count} volumes (0..{})",
                    count - 1
                ),
            ));
        }
        (None, _) => {
            return Err(VolumeError::unsupported(
                path,
                format!(
                    "a 4-D volume of size {sizes:?} ({count} volumes): pick one with --volume-index N (from 0) or all of them with --volume-index all"
                ),
            ));
        }
    };
    let mut spacing = [1.0f64; 3];
    for (d, s) in spacing.iter_mut().enumerate().take(sizes.len().min(3)) {
        let v = f64::from(header.pixdim[d + 1]).abs();
        if !v.is_finite() || v == 0.0 {
            return Err(VolumeError::unsupported(
                path,
                format!(
                    "voxel size pixdim[{}] = {v} is not a positive number",
                    d + 1
                ),
            ));
        }
        *s = v;
    }
    let affine = header_affine(&header, spacing);
    let mut header3 = header.clone();
    header3.dim = [3, 1, 1, 1, 1, 1, 1, 1];
    for (d, &n) in dims.iter().enumerate() {
        header3.dim[d + 1] = n as u16;
    }
    let n = dims.iter().product::<usize>();
    picked
        .into_iter()
        .map(|t| {
            let part = data[t * n..(t + 1) * n].to_vec();
            Volume::with_header(dims, part, spacing, affine, header3.clone())
        })
        .collect()
}

/// Header, sizes (`dim[1..=dim[0]]`) and scaled voxels (`i` fastest) of a NIfTI-1 or -2 file.
fn load_nifti(path: &Path) -> Result<(NiftiHeader, Vec<usize>, Vec<f32>)> {
    if nifti_header_size(path) == Some(NIFTI2_HEADER) {
        let file = read_nifti2(path)?;
        return Ok((file.header, file.dims, file.data));
    }
    let nifti_err = |source| VolumeError::Nifti {
        path: path.to_path_buf(),
        source,
    };
    let object = if is_nifti_path(path) {
        ReaderOptions::new().read_file(path).map_err(nifti_err)?
    } else {
        // No .nii / .nii.gz name to tell the reader about gzip: decompress by content.
        InMemNiftiObject::from_reader(&read_bytes(path)?[..]).map_err(nifti_err)?
    };
    let header = object.header().clone();
    let ndim = header.dim[0] as usize;
    if !(1..=7).contains(&ndim) {
        return Err(VolumeError::unsupported(
            path,
            format!("dim[0] = {ndim} is not a dimension count (1..7)"),
        ));
    }
    let sizes: Vec<usize> = header.dim[1..=ndim].iter().map(|&n| n as usize).collect();
    let array = object
        .into_volume()
        .into_ndarray::<f32>()
        .map_err(nifti_err)?;
    // ndarray indexes (i, j, k, t); reversing the axes and walking in logical order puts i fastest.
    let data: Vec<f32> = array.reversed_axes().iter().copied().collect();
    Ok((header, sizes, data))
}

/// `(nx, ny, nz)` and the number of volumes (the 4th axis; beyond it sizes must be 1).
fn grid_dims(path: &Path, sizes: &[usize]) -> Result<([usize; 3], usize)> {
    if sizes.iter().skip(4).any(|&n| n != 1) {
        return Err(VolumeError::unsupported(
            path,
            format!(
                "a {}-D volume of size {sizes:?}: only 3-D and 4-D volumes are supported",
                sizes.len()
            ),
        ));
    }
    let mut dims = [1usize; 3];
    for (d, &n) in sizes.iter().take(3).enumerate() {
        if n == 0 {
            return Err(VolumeError::unsupported(
                path,
                format!("axis {d} has size 0"),
            ));
        }
        dims[d] = n;
    }
    let count = sizes.get(3).copied().unwrap_or(1);
    if count == 0 {
        return Err(VolumeError::unsupported(path, "axis 3 has size 0"));
    }
    Ok((dims, count))
}

/// The voxel-to-world matrix a reader should use: sform, then qform, then the plain voxel sizes.
fn header_affine(header: &NiftiHeader, spacing: [f64; 3]) -> Affine {
    if header.sform_code > 0 {
        let rows = [header.srow_x, header.srow_y, header.srow_z];
        let mut a = [[0.0; 4]; 4];
        for (r, row) in rows.iter().enumerate() {
            for c in 0..4 {
                a[r][c] = f64::from(row[c]);
            }
        }
        a[3][3] = 1.0;
        a
    } else if header.qform_code > 0 {
        qform_affine(header, spacing)
    } else {
        diagonal_affine(spacing)
    }
}

/// The NIfTI-1 quaternion formula (nifti1.h, "METHOD 2").
fn qform_affine(header: &NiftiHeader, spacing: [f64; 3]) -> Affine {
    let (b, c, d) = (
        f64::from(header.quatern_b),
        f64::from(header.quatern_c),
        f64::from(header.quatern_d),
    );
    let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
    let qfac = if header.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
    let r = [
        [
            a * a + b * b - c * c - d * d,
            2.0 * (b * c - a * d),
            2.0 * (b * d + a * c),
        ],
        [
            2.0 * (b * c + a * d),
            a * a + c * c - b * b - d * d,
            2.0 * (c * d - a * b),
        ],
        [
            2.0 * (b * d - a * c),
            2.0 * (c * d + a * b),
            a * a + d * d - c * c - b * b,
        ],
    ];
    let scale = [spacing[0], spacing[1], qfac * spacing[2]];
    let offset = [
        f64::from(header.quatern_x),
        f64::from(header.quatern_y),
        f64::from(header.quatern_z),
    ];
    let mut out = [[0.0; 4]; 4];
    for i in 0..3 {
        for j in 0..3 {
            out[i][j] = r[i][j] * scale[j];
        }
        out[i][3] = offset[i];
    }
    out[3][3] = 1.0;
    out
}

/// Quaternion `(b, c, d)` and `qfac` of the rotation in `affine` (nifti1_io's `mat44_to_quatern`,
/// for the orthogonal direction cosines that scanners and DICOM produce).
fn affine_quaternion(affine: &Affine) -> ([f64; 3], f64) {
    let mut r = [[0.0; 3]; 3];
    for j in 0..3 {
        let norm = (0..3).map(|i| affine[i][j].powi(2)).sum::<f64>().sqrt();
        let norm = if norm > 0.0 { norm } else { 1.0 };
        for i in 0..3 {
            r[i][j] = affine[i][j] / norm;
        }
    }
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det < 0.0 { -1.0 } else { 1.0 };
    if qfac < 0.0 {
        for row in &mut r {
            row[2] = -row[2];
        }
    }
    let trace = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (mut a, mut b, mut c, mut d);
    if trace > 0.5 {
        a = 0.5 * trace.sqrt();
        b = 0.25 * (r[2][1] - r[1][2]) / a;
        c = 0.25 * (r[0][2] - r[2][0]) / a;
        d = 0.25 * (r[1][0] - r[0][1]) / a;
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r[0][1] + r[1][0]) / b;
            d = 0.25 * (r[0][2] + r[2][0]) / b;
            a = 0.25 * (r[2][1] - r[1][2]) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r[0][1] + r[1][0]) / c;
            d = 0.25 * (r[1][2] + r[2][1]) / c;
            a = 0.25 * (r[0][2] - r[2][0]) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (r[0][2] + r[2][0]) / d;
            c = 0.25 * (r[1][2] + r[2][1]) / d;
            a = 0.25 * (r[1][0] - r[0][1]) / d;
        }
        if a < 0.0 {
            (b, c, d) = (-b, -c, -d);
            a = -a;
        }
    }
    let _ = a;
    ([b, c, d], qfac)
}

/// A NIfTI header for a grid built from geometry alone (a DICOM series): the affine is stored as
/// both sform and qform, scanner coordinates, millimetres.
pub(crate) fn header_for_geometry(
    dims: [usize; 3],
    spacing: [f64; 3],
    affine: &Affine,
) -> NiftiHeader {
    let ([b, c, d], qfac) = affine_quaternion(affine);
    let mut header = NiftiHeader {
        xyzt_units: UNITS_MM,
        qform_code: XFORM_SCANNER,
        sform_code: XFORM_SCANNER,
        quatern_b: b as f32,
        quatern_c: c as f32,
        quatern_d: d as f32,
        quatern_x: affine[0][3] as f32,
        quatern_y: affine[1][3] as f32,
        quatern_z: affine[2][3] as f32,
        ..NiftiHeader::default()
    };
    header.dim = [3, 1, 1, 1, 1, 1, 1, 1];
    for axis in 0..3 {
        header.dim[axis + 1] = dims[axis].min(u16::MAX as usize) as u16;
        header.pixdim[axis + 1] = spacing[axis] as f32;
    }
    header.pixdim[0] = qfac as f32;
    let row = |r: usize| [0, 1, 2, 3].map(|c| affine[r][c] as f32);
    header.srow_x = row(0);
    header.srow_y = row(1);
    header.srow_z = row(2);
    header
}

/// What a written volume holds, which sets its data type and intent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// Labels as unsigned 8-bit (values rounded and clamped to 0..=255), intent `NIFTI_INTENT_LABEL`.
    Labels,
    /// 32-bit floats (probabilities, entropy, intensities).
    Float,
}

/// Writes `volume` as NIfTI-1 at `path` (`.nii` or `.nii.gz`), atomically (temporary sibling,
/// fsync, rename: [`atomic_io::write_atomic_by_path`]). The source header is kept (qform, sform, pixdim, units, description); the data type,
/// scaling (slope 1, intercept 0), display range and intent follow `kind`.
pub fn write_nifti(path: &Path, volume: &Volume, kind: OutputKind) -> Result<()> {
    if !is_nifti_path(path) {
        return Err(VolumeError::unsupported(
            path,
            "NIfTI output needs a .nii or .nii.gz file name",
        ));
    }
    let [nx, ny, nz] = volume.dims();
    let mut header = volume.header().clone();
    header.cal_min = 0.0;
    header.cal_max = 0.0;
    header.intent_code = if kind == OutputKind::Labels {
        INTENT_LABEL
    } else {
        0
    };
    header.intent_name = [0; 16];
    header.intent_p1 = 0.0;
    header.intent_p2 = 0.0;
    header.intent_p3 = 0.0;
    atomic_io::write_atomic_by_path(path, |tmp| {
        let options = WriterOptions::new(tmp).reference_header(&header);
        let shape = (nx, ny, nz).f();
        let written = match kind {
            OutputKind::Labels => {
                let labels: Vec<u8> = volume
                    .data()
                    .iter()
                    .map(|v| v.round().clamp(0.0, 255.0) as u8)
                    .collect();
                let array = Array3::from_shape_vec(shape, labels).map_err(|e| {
                    VolumeError::unsupported(path, format!("internal shape error: {e}"))
                })?;
                options.write_nifti(&array)
            }
            OutputKind::Float => {
                let array = Array3::from_shape_vec(shape, volume.data().to_vec()).map_err(|e| {
                    VolumeError::unsupported(path, format!("internal shape error: {e}"))
                })?;
                options.write_nifti(&array)
            }
        };
        written.map_err(|source| VolumeError::Nifti {
            path: path.to_path_buf(),
            source,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rotated, flipped (negative determinant) anisotropic affine.
    fn oblique_affine() -> Affine {
        let (s, c) = (0.3f64.sin(), 0.3f64.cos());
        let spacing = [0.7, 0.9, 2.5];
        let rot = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, -1.0]];
        let mut a = [[0.0; 4]; 4];
        for i in 0..3 {
            for j in 0..3 {
                a[i][j] = rot[i][j] * spacing[j];
            }
        }
        a[0][3] = -12.5;
        a[1][3] = 30.25;
        a[2][3] = 7.0;
        a[3][3] = 1.0;
        a
    }

    fn assert_affine_close(a: &Affine, b: &Affine) {
        for i in 0..4 {
            for j in 0..4 {
                assert!((a[i][j] - b[i][j]).abs() < 1e-5, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn qform_built_from_an_affine_gives_the_affine_back() {
        let affine = oblique_affine();
        let mut header = header_for_geometry([4, 3, 2], [0.7, 0.9, 2.5], &affine);
        header.sform_code = 0;
        assert_affine_close(&header_affine(&header, [0.7, 0.9, 2.5]), &affine);
    }

    #[test]
    fn round_trip_keeps_shape_affine_spacing_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let dims = [5, 4, 3];
        let data: Vec<f32> = (0..60).map(|v| v as f32 * 0.5 - 3.0).collect();
        let source = Volume::new(dims, data.clone(), [0.7, 0.9, 2.5], oblique_affine()).unwrap();
        for name in ["float.nii.gz", "float.nii"] {
            let path = dir.path().join(name);
            write_nifti(&path, &source, OutputKind::Float).unwrap();
            let back = read_nifti(&path).unwrap();
            assert_eq!(back.dims(), dims);
            assert_eq!(back.data(), &data[..]);
            assert_eq!(back.spacing().map(|s| s as f32), [0.7, 0.9, 2.5]);
            assert_affine_close(back.affine(), &oblique_affine());
            assert_eq!(back.header().qform_code, XFORM_SCANNER);
            assert_eq!(back.header().sform_code, XFORM_SCANNER);
        }
        let labels = dir.path().join("labels.nii.gz");
        write_nifti(
            &labels,
            &source.same_grid(vec![1.0; 60]).unwrap(),
            OutputKind::Labels,
        )
        .unwrap();
        let back = read_nifti(&labels).unwrap();
        assert_eq!(back.header().datatype, nifti::NiftiType::Uint8 as i16);
        assert_eq!(back.header().intent_code, INTENT_LABEL);
        assert!(back.data().iter().all(|&v| v == 1.0));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn four_d_series_are_refused_and_trailing_singletons_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let series = dir.path().join("fmri.nii");
        let data = ndarray::Array4::<f32>::zeros((2, 2, 2, 3));
        WriterOptions::new(&series).write_nifti(&data).unwrap();
        let err = read_nifti(&series).unwrap_err();
        assert!(err.to_string().contains("fmri.nii"), "{err}");
        assert!(err.to_string().contains("4-D"), "{err}");
        assert!(err.to_string().contains("--volume-index"), "{err}");
        let all = read_nifti_volumes(&series, Some(VolumeIndex::All)).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].dims(), [2, 2, 2]);
        let err = read_nifti_volumes(&series, Some(VolumeIndex::One(3))).unwrap_err();
        assert!(err.to_string().contains("3 volumes"), "{err}");
        let single = dir.path().join("single.nii");
        let data = ndarray::Array4::<f32>::from_elem((2, 3, 1, 1), 7.0);
        WriterOptions::new(&single).write_nifti(&data).unwrap();
        let v = read_nifti(&single).unwrap();
        assert_eq!(v.dims(), [2, 3, 1]);
        assert_eq!(v.data(), &[7.0; 6]);
    }

    #[test]
    fn stems_and_extensions() {
        assert_eq!(nifti_stem(Path::new("a/case_01.nii.gz")), "case_01");
        assert_eq!(nifti_stem(Path::new("b.NII")), "b");
        assert!(is_nifti_path(Path::new("x.Nii.Gz")));
        assert!(!is_nifti_path(Path::new("x.png")));
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("broken.nii.gz");
        std::fs::write(&bad, b"not a nifti file").unwrap();
        let err = read_nifti(&bad).unwrap_err();
        assert!(err.to_string().contains("broken.nii.gz"), "{err}");
        let missing = dir.path().join("missing.nii");
        assert!(
            read_nifti(&missing)
                .unwrap_err()
                .to_string()
                .contains("missing.nii")
        );
        let v = Volume::new([1, 1, 1], vec![0.0], [1.0; 3], diagonal_affine([1.0; 3])).unwrap();
        let err = write_nifti(&dir.path().join("out.png"), &v, OutputKind::Float).unwrap_err();
        assert!(err.to_string().contains("out.png"), "{err}");
    }
}
