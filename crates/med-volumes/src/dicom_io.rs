//! A folder holding one DICOM series, read as a [`Volume`].
//!
//! Slices are ordered along the slice normal (the cross product of the two
//! ImageOrientationPatient cosines) by their ImagePositionPatient, or by InstanceNumber when a file
//! has no position. RescaleSlope / RescaleIntercept are applied (CT values come out in HU). The
//! in-plane spacing is PixelSpacing, the slice spacing the mean step between consecutive positions
//! (SpacingBetweenSlices, then SliceThickness, then 1 for a single slice). DICOM's patient LPS
//! coordinates are turned into NIfTI's RAS+ (x and y negated).
//!
//! Without the `dicom-codecs` feature only uncompressed transfer syntaxes are decoded; a
//! compressed file is an error naming it.

use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, Tag};
use dicom_pixeldata::PixelDecoder;

use crate::error::{Result, VolumeError};
use crate::volume::{Affine, Volume};

/// One file of the series, with what the geometry needs.
struct SliceFile {
    path: PathBuf,
    object: DefaultDicomObject,
    rows: usize,
    cols: usize,
    position: Option<[f64; 3]>,
    instance: Option<i64>,
}

/// Reads every DICOM file in `dir` (not recursive; non-DICOM files are skipped) as one volume.
/// Fails when the folder has no DICOM file, holds several series, or the slices differ in size.
pub fn read_dicom_series(dir: &Path) -> Result<Volume> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| VolumeError::io(dir, e))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    for path in paths {
        if let Some(file) = open_slice(&path)? {
            files.push(file);
        }
    }
    let first = files.first().ok_or_else(|| {
        VolumeError::unsupported(dir, "no DICOM file (with the DICM preamble) in this folder")
    })?;
    check_one_series(dir, &files)?;
    let (rows, cols) = (first.rows, first.cols);
    if let Some(odd) = files.iter().find(|f| (f.rows, f.cols) != (rows, cols)) {
        return Err(VolumeError::dicom(
            &odd.path,
            format!(
                "{}x{} pixels, but {} has {rows}x{cols}",
                odd.rows,
                odd.cols,
                first.path.display()
            ),
        ));
    }
    let (row_dir, col_dir) = orientation(&files[0])?;
    let normal = cross(row_dir, col_dir);
    sort_slices(&mut files, normal);
    let pixel_spacing = pixel_spacing(&files[0])?;
    let slice_step = slice_step(dir, &files, normal)?;
    let mut data = Vec::with_capacity(rows * cols * files.len());
    for file in &files {
        data.extend(decode_pixels(file)?);
    }
    let origin = files[0].position.unwrap_or([0.0; 3]);
    let affine = lps_to_ras(&volume_affine(
        origin,
        row_dir,
        col_dir,
        pixel_spacing,
        slice_step,
    ));
    let spacing = [pixel_spacing[1], pixel_spacing[0], norm(slice_step)];
    Volume::new([cols, rows, files.len()], data, spacing, affine)
}

/// Opens `path` if it is a DICOM file; `None` for files without the `DICM` preamble.
fn open_slice(path: &Path) -> Result<Option<SliceFile>> {
    if !has_dicm_preamble(path)? {
        return Ok(None);
    }
    let object = dicom_object::open_file(path).map_err(|e| VolumeError::dicom(path, e))?;
    if object
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .is_none()
    {
        // DICOMDIR, structured reports, presentation states: not part of the image series.
        return Ok(None);
    }
    let rows = required_int(path, &object, tags::ROWS, "Rows")?;
    let cols = required_int(path, &object, tags::COLUMNS, "Columns")?;
    let position = optional_floats(path, &object, tags::IMAGE_POSITION_PATIENT)?
        .map(|v| three(path, &v, "ImagePositionPatient"))
        .transpose()?;
    let instance = optional_floats(path, &object, tags::INSTANCE_NUMBER)?
        .and_then(|v| v.first().map(|&n| n as i64));
    Ok(Some(SliceFile {
        path: path.to_path_buf(),
        object,
        rows,
        cols,
        position,
        instance,
    }))
}

fn has_dicm_preamble(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 132];
    let mut file = std::fs::File::open(path).map_err(|e| VolumeError::io(path, e))?;
    let mut read = 0;
    while read < head.len() {
        match file.read(&mut head[read..]) {
            Ok(0) => return Ok(false),
            Ok(n) => read += n,
            Err(e) => return Err(VolumeError::io(path, e)),
        }
    }
    Ok(&head[128..] == b"DICM")
}

fn element_text(object: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let element = object.element_opt(tag).ok().flatten()?;
    element.to_str().ok().map(|s| s.trim().to_string())
}

fn optional_floats(path: &Path, object: &DefaultDicomObject, tag: Tag) -> Result<Option<Vec<f64>>> {
    match object.element_opt(tag).ok().flatten() {
        None => Ok(None),
        Some(element) => element
            .to_multi_float64()
            .map(Some)
            .map_err(|e| VolumeError::dicom(path, format!("tag {tag}: {e}"))),
    }
}

fn required_int(path: &Path, object: &DefaultDicomObject, tag: Tag, name: &str) -> Result<usize> {
    let element = object
        .element_opt(tag)
        .ok()
        .flatten()
        .ok_or_else(|| VolumeError::dicom(path, format!("no {name}")))?;
    element
        .to_int::<u32>()
        .map(|v| v as usize)
        .map_err(|e| VolumeError::dicom(path, format!("{name}: {e}")))
}

fn three(path: &Path, values: &[f64], name: &str) -> Result<[f64; 3]> {
    match values {
        [a, b, c] => Ok([*a, *b, *c]),
        _ => Err(VolumeError::dicom(
            path,
            format!("{name} has {} values, expected 3", values.len()),
        )),
    }
}

fn check_one_series(dir: &Path, files: &[SliceFile]) -> Result<()> {
    let mut uids: Vec<String> = files
        .iter()
        .filter_map(|f| element_text(&f.object, tags::SERIES_INSTANCE_UID))
        .collect();
    uids.sort();
    uids.dedup();
    if uids.len() > 1 {
        return Err(VolumeError::unsupported(
            dir,
            format!(
                "{} DICOM series in one folder ({}): put each series in its own folder",
                uids.len(),
                uids.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The row and column direction cosines (ImageOrientationPatient), identity when absent.
fn orientation(file: &SliceFile) -> Result<([f64; 3], [f64; 3])> {
    match optional_floats(&file.path, &file.object, tags::IMAGE_ORIENTATION_PATIENT)? {
        None => Ok(([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])),
        Some(v) if v.len() == 6 => Ok(([v[0], v[1], v[2]], [v[3], v[4], v[5]])),
        Some(v) => Err(VolumeError::dicom(
            &file.path,
            format!("ImageOrientationPatient has {} values, expected 6", v.len()),
        )),
    }
}

/// Along the normal when every file has a position, else by InstanceNumber, else by file name.
fn sort_slices(files: &mut [SliceFile], normal: [f64; 3]) {
    if files.iter().all(|f| f.position.is_some()) {
        let along = |f: &SliceFile| dot(f.position.unwrap_or_default(), normal);
        files.sort_by(|a, b| along(a).total_cmp(&along(b)));
    } else if files.iter().all(|f| f.instance.is_some()) {
        files.sort_by_key(|f| f.instance);
    }
}

/// PixelSpacing: (between rows, between columns) in mm; 1 when absent.
fn pixel_spacing(file: &SliceFile) -> Result<[f64; 2]> {
    match optional_floats(&file.path, &file.object, tags::PIXEL_SPACING)? {
        None => Ok([1.0, 1.0]),
        Some(v) if v.len() == 2 && v.iter().all(|s| s.is_finite() && *s > 0.0) => Ok([v[0], v[1]]),
        Some(v) => Err(VolumeError::dicom(
            &file.path,
            format!("PixelSpacing {v:?} is not two positive numbers"),
        )),
    }
}

/// The world step from one slice to the next.
fn slice_step(dir: &Path, files: &[SliceFile], normal: [f64; 3]) -> Result<[f64; 3]> {
    let positions: Option<Vec<[f64; 3]>> = files.iter().map(|f| f.position).collect();
    if let Some(positions) = positions.filter(|p| p.len() > 1) {
        let n = positions.len();
        let step = (0..3).map(|a| (positions[n - 1][a] - positions[0][a]) / (n - 1) as f64);
        let step: Vec<f64> = step.collect();
        let step = [step[0], step[1], step[2]];
        if norm(step) == 0.0 {
            return Err(VolumeError::unsupported(
                dir,
                "the DICOM slices all have the same ImagePositionPatient",
            ));
        }
        return Ok(step);
    }
    let file = &files[0];
    let thickness = [tags::SPACING_BETWEEN_SLICES, tags::SLICE_THICKNESS]
        .into_iter()
        .find_map(|tag| {
            optional_floats(&file.path, &file.object, tag)
                .ok()
                .flatten()
                .and_then(|v| v.first().copied())
                .filter(|s| s.is_finite() && *s > 0.0)
        })
        .unwrap_or(1.0);
    Ok(normal.map(|c| c * thickness))
}

/// Modality values (rescale applied) of one slice, row-major.
fn decode_pixels(file: &SliceFile) -> Result<Vec<f32>> {
    let decoded = file
        .object
        .decode_pixel_data()
        .map_err(|e| VolumeError::dicom(&file.path, e))?;
    if decoded.samples_per_pixel() != 1 || decoded.number_of_frames() != 1 {
        return Err(VolumeError::dicom(
            &file.path,
            format!(
                "{} samples per pixel and {} frames: only single-frame grey images form a series",
                decoded.samples_per_pixel(),
                decoded.number_of_frames()
            ),
        ));
    }
    let values: Vec<f32> = decoded
        .to_vec()
        .map_err(|e| VolumeError::dicom(&file.path, e))?;
    if values.len() != file.rows * file.cols {
        return Err(VolumeError::dicom(
            &file.path,
            format!(
                "{} pixels decoded for {}x{}",
                values.len(),
                file.rows,
                file.cols
            ),
        ));
    }
    Ok(values)
}

/// Voxel (i = column, j = row, k = slice) to patient LPS.
fn volume_affine(
    origin: [f64; 3],
    row_dir: [f64; 3],
    col_dir: [f64; 3],
    pixel_spacing: [f64; 2],
    slice_step: [f64; 3],
) -> Affine {
    let mut a = [[0.0; 4]; 4];
    for r in 0..3 {
        // Moving along a row (increasing column index) follows the row cosine, by the column spacing.
        a[r][0] = row_dir[r] * pixel_spacing[1];
        a[r][1] = col_dir[r] * pixel_spacing[0];
        a[r][2] = slice_step[r];
        a[r][3] = origin[r];
    }
    a[3][3] = 1.0;
    a
}

fn lps_to_ras(affine: &Affine) -> Affine {
    let mut out = *affine;
    for row in out.iter_mut().take(2) {
        for v in row.iter_mut() {
            *v = -*v;
        }
    }
    out
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write_ct_series;

    #[test]
    fn series_is_sorted_rescaled_and_placed() {
        let dir = tempfile::tempdir().unwrap();
        write_ct_series(dir.path(), 3, 4, 5).unwrap();
        std::fs::write(dir.path().join("README.txt"), "not dicom").unwrap();
        let v = read_dicom_series(dir.path()).unwrap();
        assert_eq!(v.dims(), [4, 3, 5]);
        assert_eq!(v.spacing(), [0.75, 0.5, 2.5]);
        // Voxel (i = column 3, j = row 2, k = slice 4): 1000 + 400 + 20 + 3 - 1024.
        assert_eq!(v.get(3, 2, 4), 399.0);
        assert_eq!(v.get(0, 0, 0), -24.0);
        let a = v.affine();
        // LPS (-10, 20, 0) is RAS (10, -20, 0); i runs along -x, j along -y, k along +z.
        assert_eq!([a[0][3], a[1][3], a[2][3]], [10.0, -20.0, 0.0]);
        assert_eq!([a[0][0], a[1][1], a[2][2]], [-0.75, -0.5, 2.5]);
    }

    #[test]
    fn empty_and_mixed_folders_are_errors_naming_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "nothing here").unwrap();
        let err = read_dicom_series(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains(&dir.path().display().to_string()),
            "{err}"
        );
        let broken = dir.path().join("broken.dcm");
        let mut bytes = vec![0u8; 128];
        bytes.extend_from_slice(b"DICMgarbage");
        std::fs::write(&broken, bytes).unwrap();
        let err = read_dicom_series(dir.path()).unwrap_err();
        assert!(err.to_string().contains("broken.dcm"), "{err}");
    }
}
