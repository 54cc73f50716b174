//! DICOM in: a single file (with or without the 128-byte preamble, with or without the file
//! meta group), a multi-frame file (classic or enhanced), or a folder holding a series, read as
//! a [`DicomVolume`].
//!
//! Frames are ordered along the slice normal (the cross product of the two
//! ImageOrientationPatient cosines) by their ImagePositionPatient (per frame from the Per-frame
//! or Shared Functional Groups of an enhanced file, or from GridFrameOffsetVector), else by
//! InstanceNumber and frame number. RescaleSlope / RescaleIntercept are applied (CT values come
//! out in HU), per frame when the functional groups carry them. The in-plane spacing is
//! PixelSpacing, the slice spacing the mean step between the first and last positions
//! (SpacingBetweenSlices, then SliceThickness, then 1 without positions). DICOM's patient LPS
//! coordinates become NIfTI's RAS+ (x and y negated).
//!
//! MONOCHROME1 (high values dark) is negated so that it looks like MONOCHROME2 (its window
//! centre too); [`DicomVolume::monochrome1_inverted`] says when. Colour (RGB, YBR_FULL,
//! YBR_FULL_422, YBR_RCT/ICT as decoded, PALETTE COLOR) comes out as 8-bit RGB in
//! [`DicomVolume::rgb`], with its luma as the volume's values.
//!
//! With the default `dicom-codecs` feature JPEG (baseline, extended, lossless), RLE, deflate and
//! JPEG 2000 decode; the `jpeg-ls` feature adds JPEG-LS (CharLS), without it a JPEG-LS file is
//! an error naming that feature.

use std::io::Read;
use std::path::{Path, PathBuf};

use dicom_core::header::HasLength;
use dicom_dictionary_std::{tags, uids};
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::file::ReadPreamble;
use dicom_object::{
    DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject, OpenFileOptions, Tag,
};
use dicom_pixeldata::PixelDecoder;

use crate::dicom_scan;
use crate::error::{Result, VolumeError};
use crate::intensity::IntensityMap;
use crate::volume::{Affine, Volume};

/// The first VOI window of a file (WindowCenter / WindowWidth), in modality units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VoiWindow {
    /// Window centre.
    pub center: f64,
    /// Window width (> 0).
    pub width: f64,
}

/// Where one slice of a [`DicomVolume`] came from (for DICOM SEG references).
#[derive(Clone, Debug, PartialEq)]
pub struct FrameSource {
    /// The file.
    pub path: PathBuf,
    /// Frame number in that file, from 0.
    pub frame: u32,
    /// SOPClassUID of the file.
    pub sop_class_uid: String,
    /// SOPInstanceUID of the file.
    pub sop_instance_uid: String,
    /// ImagePositionPatient of this frame (patient LPS, mm), when the file gives it. Slices of
    /// a series need not be evenly spaced: the volume's affine uses the mean step.
    pub position: Option<[f64; 3]>,
}

/// A DICOM file or series as a volume, with what the caller needs beyond the voxels.
#[derive(Clone, Debug)]
pub struct DicomVolume {
    /// Modality values (rescale applied; MONOCHROME1 negated), or the luma of colour images,
    /// with the geometry. `k` runs over frames / files in slice order.
    pub volume: Volume,
    /// 8-bit RGB for colour images, 3 bytes per voxel in [`Volume::data`]'s order.
    pub rgb: Option<Vec<u8>>,
    /// PhotometricInterpretation as stored (`MONOCHROME2`, `RGB`, `YBR_FULL_422`, ...).
    pub photometric: String,
    /// True when the file was MONOCHROME1 and its values were negated.
    pub monochrome1_inverted: bool,
    /// The file's first VOI window (negated centre for MONOCHROME1), if it has one.
    pub window: Option<VoiWindow>,
    /// Transfer syntax UID of the first file.
    pub transfer_syntax: String,
    /// SeriesInstanceUID, StudyInstanceUID, FrameOfReferenceUID (empty when absent).
    pub series_uid: String,
    /// StudyInstanceUID (empty when absent).
    pub study_uid: String,
    /// FrameOfReferenceUID (empty when absent).
    pub frame_of_reference_uid: String,
    /// Source of each slice, `k` order.
    pub frames: Vec<FrameSource>,
    /// Patient and study attributes present in the first file (tag, VR, text), copied into
    /// derived objects such as a DICOM SEG.
    pub patient_study: Vec<(Tag, dicom_core::VR, String)>,
    /// Set when the slices are not evenly spaced (missing slices, gaps): the affine places
    /// them at the mean step, so callers should warn.
    pub uneven_spacing: Option<UnevenSpacing>,
}

/// Steps between neighbouring slices that differ (by more than 1 % of the mean step, or
/// 0.01 mm): a series with a missing slice or a gap. [`DicomVolume::volume`]'s affine places
/// slice `k` at `k` mean steps from the first, so such a volume is geometrically wrong there.
#[derive(Clone, Debug, PartialEq)]
pub struct UnevenSpacing {
    /// The smallest step along the slice normal, mm.
    pub min_step: f64,
    /// The largest step, mm.
    pub max_step: f64,
    /// The mean step, the one the volume's affine and spacing use, mm.
    pub mean_step: f64,
    /// The largest step is between slices `k` and `k + 1` (volume order).
    pub largest_after: usize,
}

impl std::fmt::Display for UnevenSpacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "slices are unevenly spaced (missing slices or gaps?): steps from {:.3} to {:.3} mm, \
             the largest between slices {} and {}; the volume places them {:.3} mm apart (the mean)",
            self.min_step,
            self.max_step,
            self.largest_after,
            self.largest_after + 1,
            self.mean_step
        )
    }
}

/// Patient and study module attributes a derived object carries over.
const PATIENT_STUDY: [(Tag, dicom_core::VR); 9] = [
    (tags::PATIENT_NAME, dicom_core::VR::PN),
    (tags::PATIENT_ID, dicom_core::VR::LO),
    (tags::PATIENT_BIRTH_DATE, dicom_core::VR::DA),
    (tags::PATIENT_SEX, dicom_core::VR::CS),
    (tags::STUDY_DATE, dicom_core::VR::DA),
    (tags::STUDY_TIME, dicom_core::VR::TM),
    (tags::STUDY_ID, dicom_core::VR::SH),
    (tags::ACCESSION_NUMBER, dicom_core::VR::SH),
    (tags::REFERRING_PHYSICIAN_NAME, dicom_core::VR::PN),
];

/// Explicit VR big endian (retired from the standard, still in archives).
const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

/// Which intensity mapping an input gets, and why (recorded in the outputs' provenance).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntensitySource {
    /// `--window` (or another mapping) was given.
    Given,
    /// The file's first WindowCenter / WindowWidth.
    FileWindow,
    /// Neither: the percentile default.
    Default,
    /// Colour images go to the model as their 8-bit RGB, unmapped.
    Colour,
}

impl std::fmt::Display for IntensitySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IntensitySource::Given => "given (--window)",
            IntensitySource::FileWindow => "the file's first WindowCenter/WindowWidth",
            IntensitySource::Default => "the percentile default (no window given or in the file)",
            IntensitySource::Colour => "none: colour, its 8-bit RGB as stored",
        })
    }
}

impl DicomVolume {
    /// The mapping to 8 bits: `given` when there is one, else the file's VOI window, else the
    /// percentile default.
    pub fn intensity(&self, given: Option<IntensityMap>) -> (IntensityMap, IntensitySource) {
        match (given, self.window, self.rgb.is_some()) {
            (_, _, true) => (IntensityMap::MinMax, IntensitySource::Colour),
            (Some(map), _, _) => (map, IntensitySource::Given),
            (None, Some(w), _) => (
                IntensityMap::Window {
                    center: w.center,
                    width: w.width,
                },
                IntensitySource::FileWindow,
            ),
            (None, None, _) => (IntensityMap::default(), IntensitySource::Default),
        }
    }

    /// Slice `k` (along the last axis) as 8-bit RGB, row-major, 3 bytes a pixel: colour as
    /// stored, grey through `bounds` (from [`IntensityMap::bounds`] over the whole volume).
    pub fn rgb8_slice(&self, k: usize, bounds: (f64, f64)) -> Result<Vec<u8>> {
        let [nx, ny, nz] = self.volume.dims();
        if k >= nz {
            return Err(VolumeError::Reassembly {
                reason: format!("slice {k} does not exist ({nz} slices)"),
            });
        }
        let plane = nx * ny;
        Ok(match &self.rgb {
            Some(rgb) => rgb[k * plane * 3..(k + 1) * plane * 3].to_vec(),
            None => self.volume.data()[k * plane..(k + 1) * plane]
                .iter()
                .flat_map(|&v| [crate::intensity::scale_to_u8(v, bounds.0, bounds.1); 3])
                .collect(),
        })
    }
}

/// NumberOfFrames of a DICOM file (1 when absent), read without decoding the pixels.
pub fn dicom_frame_count(path: &Path) -> Result<u32> {
    let object = open_object(path)?;
    Ok(match floats(path, &object, tags::NUMBER_OF_FRAMES)? {
        Some(v) => v.first().map_or(1, |&n| n.max(1.0) as u32),
        None => 1,
    })
}

/// One file opened, with the attributes the geometry needs.
struct DicomFile {
    path: PathBuf,
    object: DefaultDicomObject,
    rows: usize,
    cols: usize,
    frames: u32,
    photometric: String,
    instance: Option<i64>,
}

/// One frame before stacking.
struct FrameRecord {
    file: usize,
    frame: u32,
    position: Option<[f64; 3]>,
    instance: Option<i64>,
}

/// True when `path` looks like DICOM by its content: `DICM` at byte 128, or (no preamble) a file
/// starting with a group 0002 (file meta) or 0008 (identifying) element.
pub fn is_dicom_file(path: &Path) -> bool {
    head_bytes(path).is_ok_and(|head| dicom_start(&head).is_some())
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum DicomStart {
    Preamble,
    MetaGroup,
    DataSet { explicit: bool },
}

fn head_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(132);
    std::fs::File::open(path)?
        .take(132)
        .read_to_end(&mut head)?;
    Ok(head)
}

fn dicom_start(head: &[u8]) -> Option<DicomStart> {
    if head.len() >= 132 && &head[128..132] == b"DICM" {
        return Some(DicomStart::Preamble);
    }
    if head.len() < 8 {
        return None;
    }
    let group = u16::from_le_bytes([head[0], head[1]]);
    let element = u16::from_le_bytes([head[2], head[3]]);
    let explicit = head[4].is_ascii_uppercase() && head[5].is_ascii_uppercase();
    match group {
        0x0002 if explicit && element <= 0x0102 => Some(DicomStart::MetaGroup),
        0x0008 if element <= 0x0020 => Some(DicomStart::DataSet { explicit }),
        _ => None,
    }
}

/// Opens one DICOM file, whichever of the three starts it has.
pub(crate) fn open_object(path: &Path) -> Result<DefaultDicomObject> {
    let head = head_bytes(path).map_err(|e| VolumeError::io(path, e))?;
    let start = dicom_start(&head);
    check_declared_lengths(path, start)?;
    match start {
        Some(DicomStart::Preamble) => {
            dicom_object::open_file(path).map_err(|e| VolumeError::dicom(path, e))
        }
        Some(DicomStart::MetaGroup) => {
            // The meta group parser expects the `DICM` magic in front of the group.
            let file = std::fs::File::open(path).map_err(|e| VolumeError::io(path, e))?;
            let source = std::io::BufReader::new(b"DICM".chain(file));
            OpenFileOptions::new()
                .read_preamble(ReadPreamble::Never)
                .from_reader(source)
                .map_err(|e| VolumeError::dicom(path, e))
        }
        Some(DicomStart::DataSet { explicit }) => open_bare_dataset(path, explicit),
        None => Err(VolumeError::dicom(
            path,
            "not DICOM (no DICM at byte 128 and no group 0002/0008 element at the start)",
        )),
    }
}

/// Refuses a file whose elements declare more bytes than it holds, before dicom-rs would
/// allocate them (see `dicom_scan`).
fn check_declared_lengths(path: &Path, start: Option<DicomStart>) -> Result<()> {
    use dicom_scan::{Encoding, Start};
    let (offset, start) = match start {
        None => return Ok(()),
        Some(DicomStart::Preamble) => (132, Start::MetaGroup),
        Some(DicomStart::MetaGroup) => (0, Start::MetaGroup),
        Some(DicomStart::DataSet { explicit: true }) => {
            (0, Start::DataSet(Encoding::ExplicitLittle))
        }
        Some(DicomStart::DataSet { explicit: false }) => {
            (0, Start::DataSet(Encoding::ImplicitLittle))
        }
    };
    let mut file = std::fs::File::open(path).map_err(|e| VolumeError::io(path, e))?;
    std::io::copy(&mut (&mut file).take(offset), &mut std::io::sink())
        .map_err(|e| VolumeError::io(path, e))?;
    dicom_scan::check_lengths(path, std::io::BufReader::new(file), start)
}

/// A data set with no file meta group: implicit (the standard's default) or explicit VR little
/// endian, as its first element says.
fn open_bare_dataset(path: &Path, explicit: bool) -> Result<DefaultDicomObject> {
    let syntax = if explicit {
        uids::EXPLICIT_VR_LITTLE_ENDIAN
    } else {
        uids::IMPLICIT_VR_LITTLE_ENDIAN
    };
    let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .get(syntax)
        .ok_or_else(|| VolumeError::dicom(path, format!("transfer syntax {syntax} unknown")))?;
    let file = std::fs::File::open(path).map_err(|e| VolumeError::io(path, e))?;
    let object = InMemDicomObject::read_dataset_with_ts(std::io::BufReader::new(file), ts)
        .map_err(|e| VolumeError::dicom(path, e))?;
    let text = |tag| element_text(&object, tag).unwrap_or_default();
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(syntax)
        .media_storage_sop_class_uid(text(tags::SOP_CLASS_UID))
        .media_storage_sop_instance_uid(text(tags::SOP_INSTANCE_UID));
    object
        .with_meta(meta)
        .map_err(|e| VolumeError::dicom(path, e))
}

/// Reads a DICOM file (single or multi-frame) or a folder holding one series.
pub fn read_dicom(path: &Path, series: Option<&str>) -> Result<DicomVolume> {
    if path.is_dir() {
        read_series_folder(path, series)
    } else {
        let file = open_file(path)?.ok_or_else(|| {
            VolumeError::dicom(path, "no PixelData: not an image (a report, DICOMDIR, ...)")
        })?;
        stack(path, vec![file])
    }
}

/// Reads every DICOM file in `dir` (not recursive; other files are skipped) as one volume.
/// Fails when the folder has no DICOM image, holds several series, or the slices differ in size.
pub fn read_dicom_series(dir: &Path) -> Result<Volume> {
    Ok(read_series_folder(dir, None)?.volume)
}

fn read_series_folder(dir: &Path, series: Option<&str>) -> Result<DicomVolume> {
    let entries = std::fs::read_dir(dir).map_err(|e| VolumeError::io(dir, e))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        if !is_dicom_file(&path) {
            continue;
        }
        if let Some(file) = open_file(&path)? {
            files.push(file);
        }
    }
    if files.is_empty() {
        return Err(VolumeError::unsupported(
            dir,
            "no DICOM image in this folder",
        ));
    }
    let files = pick_series(dir, files, series)?;
    stack(dir, files)
}

/// The files of one series: the one asked for, or the only one.
fn pick_series(dir: &Path, files: Vec<DicomFile>, series: Option<&str>) -> Result<Vec<DicomFile>> {
    let uid =
        |f: &DicomFile| element_text(&f.object, tags::SERIES_INSTANCE_UID).unwrap_or_default();
    let mut uids: Vec<String> = files.iter().map(uid).collect();
    uids.sort();
    uids.dedup();
    match series {
        Some(wanted) => {
            let picked: Vec<DicomFile> = files.into_iter().filter(|f| uid(f) == wanted).collect();
            if picked.is_empty() {
                return Err(VolumeError::unsupported(
                    dir,
                    format!("no series {wanted} here; series found: {}", uids.join(", ")),
                ));
            }
            Ok(picked)
        }
        None if uids.len() > 1 => Err(VolumeError::unsupported(
            dir,
            format!(
                "{} DICOM series in one folder ({}): pick one with --series UID",
                uids.len(),
                uids.join(", ")
            ),
        )),
        None => Ok(files),
    }
}

/// Opens `path`; `None` for DICOM files without PixelData (DICOMDIR, reports, ...).
fn open_file(path: &Path) -> Result<Option<DicomFile>> {
    let object = open_object(path)?;
    if object
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .is_none()
    {
        return Ok(None);
    }
    let rows = required_int(path, &object, tags::ROWS, "Rows")?;
    let cols = required_int(path, &object, tags::COLUMNS, "Columns")?;
    let frames = match floats(path, &object, tags::NUMBER_OF_FRAMES)? {
        Some(v) => v.first().map_or(1, |&n| n.max(1.0) as u32),
        None => 1,
    };
    let photometric = element_text(&object, tags::PHOTOMETRIC_INTERPRETATION)
        .ok_or_else(|| VolumeError::dicom(path, "no PhotometricInterpretation"))?;
    let instance =
        floats(path, &object, tags::INSTANCE_NUMBER)?.and_then(|v| v.first().map(|&n| n as i64));
    Ok(Some(DicomFile {
        path: path.to_path_buf(),
        object,
        rows,
        cols,
        frames,
        photometric,
        instance,
    }))
}

fn element_text(object: &InMemDicomObject, tag: Tag) -> Option<String> {
    let element = object.element_opt(tag).ok().flatten()?;
    element
        .to_str()
        .ok()
        .map(|s| s.trim_matches([' ', '\0']).to_string())
}

fn floats(path: &Path, object: &InMemDicomObject, tag: Tag) -> Result<Option<Vec<f64>>> {
    match object.element_opt(tag).ok().flatten() {
        None => Ok(None),
        Some(element) if element.is_empty() => Ok(None),
        Some(element) => element
            .to_multi_float64()
            .map(Some)
            .map_err(|e| VolumeError::dicom(path, format!("tag {tag}: {e}"))),
    }
}

fn required_int(path: &Path, object: &InMemDicomObject, tag: Tag, name: &str) -> Result<usize> {
    let element = object
        .element_opt(tag)
        .ok()
        .flatten()
        .ok_or_else(|| VolumeError::dicom(path, format!("no {name} (a required tag)")))?;
    match element.to_int::<u32>() {
        Ok(v) if v > 0 => Ok(v as usize),
        Ok(_) => Err(VolumeError::dicom(path, format!("{name} is 0"))),
        Err(e) => Err(VolumeError::dicom(path, format!("{name}: {e}"))),
    }
}

/// An attribute of frame `frame` from the Per-frame Functional Groups, else the Shared ones,
/// else the top level (classic files).
fn frame_floats(file: &DicomFile, frame: u32, sequence: Tag, tag: Tag) -> Result<Option<Vec<f64>>> {
    for (groups, index) in [
        (tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, frame as usize),
        (tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, 0),
    ] {
        let item = file
            .object
            .element_opt(groups)
            .ok()
            .flatten()
            .and_then(|e| e.items())
            .and_then(|items| items.get(index));
        let inner = item
            .and_then(|i| i.element_opt(sequence).ok().flatten())
            .and_then(|e| e.items())
            .and_then(|items| items.first());
        if let Some(inner) = inner
            && let Some(values) = floats(&file.path, inner, tag)?
        {
            return Ok(Some(values));
        }
    }
    floats(&file.path, &file.object, tag)
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

/// The frames of `file` with their positions.
fn frame_records(index: usize, file: &DicomFile, normal: [f64; 3]) -> Result<Vec<FrameRecord>> {
    let offsets = floats(&file.path, &file.object, tags::GRID_FRAME_OFFSET_VECTOR)?
        .filter(|v| v.len() == file.frames as usize && file.frames > 1);
    let mut records = Vec::with_capacity(file.frames as usize);
    for frame in 0..file.frames {
        let position = frame_floats(
            file,
            frame,
            tags::PLANE_POSITION_SEQUENCE,
            tags::IMAGE_POSITION_PATIENT,
        )?
        .map(|v| three(&file.path, &v, "ImagePositionPatient"))
        .transpose()?;
        let position = match (&offsets, position) {
            (Some(offsets), Some(origin)) => {
                let o = offsets[frame as usize];
                Some([0, 1, 2].map(|a| origin[a] + o * normal[a]))
            }
            // A classic multi-frame file's one position belongs to its first frame.
            (None, Some(p)) if frame == 0 || has_per_frame_positions(file) => Some(p),
            _ => None,
        };
        records.push(FrameRecord {
            file: index,
            frame,
            position,
            instance: file.instance,
        });
    }
    Ok(records)
}

fn has_per_frame_positions(file: &DicomFile) -> bool {
    file.object
        .element_opt(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .ok()
        .flatten()
        .is_some()
}

/// The row and column direction cosines (ImageOrientationPatient), identity when absent.
fn orientation(file: &DicomFile) -> Result<([f64; 3], [f64; 3])> {
    match frame_floats(
        file,
        0,
        tags::PLANE_ORIENTATION_SEQUENCE,
        tags::IMAGE_ORIENTATION_PATIENT,
    )? {
        None => Ok(([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])),
        Some(v) if v.len() == 6 => Ok(([v[0], v[1], v[2]], [v[3], v[4], v[5]])),
        Some(v) => Err(VolumeError::dicom(
            &file.path,
            format!("ImageOrientationPatient has {} values, expected 6", v.len()),
        )),
    }
}

/// PixelSpacing: (between rows, between columns) in mm; 1 when absent.
fn pixel_spacing(file: &DicomFile) -> Result<[f64; 2]> {
    match frame_floats(file, 0, tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING)? {
        None => Ok([1.0, 1.0]),
        Some(v) if v.len() == 2 && v.iter().all(|s| s.is_finite() && *s > 0.0) => Ok([v[0], v[1]]),
        Some(v) => Err(VolumeError::dicom(
            &file.path,
            format!("PixelSpacing {v:?} is not two positive numbers"),
        )),
    }
}

/// The first VOI window of frame 0, if any.
fn voi_window(file: &DicomFile) -> Result<Option<VoiWindow>> {
    let center = frame_floats(file, 0, tags::FRAME_VOILUT_SEQUENCE, tags::WINDOW_CENTER)?;
    let width = frame_floats(file, 0, tags::FRAME_VOILUT_SEQUENCE, tags::WINDOW_WIDTH)?;
    Ok(match (center, width) {
        (Some(c), Some(w)) => match (c.first(), w.first()) {
            (Some(&center), Some(&width)) if center.is_finite() && width > 0.0 => {
                Some(VoiWindow { center, width })
            }
            _ => None,
        },
        _ => None,
    })
}

/// RescaleSlope and RescaleIntercept of a frame (1 and 0 when absent).
fn rescale(file: &DicomFile, frame: u32) -> Result<(f64, f64)> {
    let seq = tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE;
    let slope = frame_floats(file, frame, seq, tags::RESCALE_SLOPE)?;
    let intercept = frame_floats(file, frame, seq, tags::RESCALE_INTERCEPT)?;
    let first =
        |v: Option<Vec<f64>>, default| v.and_then(|v| v.first().copied()).unwrap_or(default);
    Ok((first(slope, 1.0), first(intercept, 0.0)))
}

/// Stacks the frames of `files` (one series) into a volume.
fn stack(source: &Path, files: Vec<DicomFile>) -> Result<DicomVolume> {
    let first = &files[0];
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
    let (row_dir, col_dir) = orientation(first)?;
    let normal = cross(row_dir, col_dir);
    let mut records = Vec::new();
    for (index, file) in files.iter().enumerate() {
        records.extend(frame_records(index, file, normal)?);
    }
    sort_frames(&mut records, normal);
    let spacing_2d = pixel_spacing(first)?;
    let slice_step = slice_step(source, first, &records, normal)?;
    let decoded: Vec<DecodedFile> = files.iter().map(decode_file).collect::<Result<_>>()?;
    let colour = decoded[0].colour();
    if let Some(odd) = decoded
        .iter()
        .zip(&files)
        .find(|(d, _)| d.colour() != colour)
    {
        return Err(VolumeError::dicom(
            &odd.1.path,
            "grey and colour images in one series",
        ));
    }
    let monochrome1 = first.photometric == "MONOCHROME1";
    let plane = rows * cols;
    let mut data = Vec::with_capacity(plane * records.len());
    let mut rgb = colour.then(|| Vec::with_capacity(plane * records.len() * 3));
    for r in &records {
        let file = &files[r.file];
        match &decoded[r.file] {
            DecodedFile::Grey(frames) => {
                let (slope, intercept) = rescale(file, r.frame)?;
                let sign = if monochrome1 { -1.0 } else { 1.0 };
                data.extend(
                    frames[r.frame as usize]
                        .iter()
                        .map(|&v| (sign * (v * slope + intercept)) as f32),
                );
            }
            DecodedFile::Rgb(frames) => {
                let pixels = &frames[r.frame as usize];
                data.extend(pixels.chunks_exact(3).map(luma));
                if let Some(out) = rgb.as_mut() {
                    out.extend_from_slice(pixels);
                }
            }
        }
    }
    let origin = records[0]
        .position
        .or_else(|| {
            floats(&first.path, &first.object, tags::IMAGE_POSITION_PATIENT)
                .ok()
                .flatten()
                .and_then(|v| three(&first.path, &v, "ImagePositionPatient").ok())
        })
        .unwrap_or([0.0; 3]);
    let affine = lps_to_ras(&volume_affine(
        origin, row_dir, col_dir, spacing_2d, slice_step,
    ));
    let spacing = [spacing_2d[1], spacing_2d[0], norm(slice_step)];
    let volume = Volume::new([cols, rows, records.len()], data, spacing, affine)?;
    let window = voi_window(first)?.map(|w| VoiWindow {
        center: if monochrome1 { -w.center } else { w.center },
        width: w.width,
    });
    let text = |tag| element_text(&first.object, tag).unwrap_or_default();
    let frames = records
        .iter()
        .map(|r| {
            let file = &files[r.file];
            FrameSource {
                path: file.path.clone(),
                frame: r.frame,
                sop_class_uid: element_text(&file.object, tags::SOP_CLASS_UID).unwrap_or_default(),
                sop_instance_uid: element_text(&file.object, tags::SOP_INSTANCE_UID)
                    .unwrap_or_default(),
                position: r.position,
            }
        })
        .collect();
    Ok(DicomVolume {
        volume,
        rgb,
        photometric: first.photometric.clone(),
        monochrome1_inverted: monochrome1,
        window,
        transfer_syntax: first
            .object
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string(),
        series_uid: text(tags::SERIES_INSTANCE_UID),
        study_uid: text(tags::STUDY_INSTANCE_UID),
        frame_of_reference_uid: text(tags::FRAME_OF_REFERENCE_UID),
        frames,
        patient_study: PATIENT_STUDY
            .iter()
            .filter_map(|&(tag, vr)| element_text(&first.object, tag).map(|t| (tag, vr, t)))
            .collect(),
        uneven_spacing: uneven_spacing(&records, normal),
    })
}

/// BT.601 luma of an RGB pixel, the grey a colour image is windowed and reported by.
fn luma(p: &[u8]) -> f32 {
    0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])
}

/// Along the normal when every frame has a position, else by InstanceNumber and frame number.
fn sort_frames(records: &mut [FrameRecord], normal: [f64; 3]) {
    if records.iter().all(|r| r.position.is_some()) {
        let along = |r: &FrameRecord| dot(r.position.unwrap_or_default(), normal);
        records.sort_by(|a, b| along(a).total_cmp(&along(b)));
    } else if records.iter().all(|r| r.instance.is_some()) {
        records.sort_by_key(|r| (r.instance, r.frame));
    }
}

/// The steps between neighbouring slices along `normal` when they differ (see
/// [`UnevenSpacing`]); `None` when even, or without a position for every slice.
fn uneven_spacing(records: &[FrameRecord], normal: [f64; 3]) -> Option<UnevenSpacing> {
    let along: Vec<f64> = records
        .iter()
        .map(|r| r.position.map(|p| dot(p, normal)))
        .collect::<Option<_>>()?;
    let steps: Vec<f64> = along.windows(2).map(|w| w[1] - w[0]).collect();
    if steps.len() < 2 {
        return None;
    }
    let mean_step = steps.iter().sum::<f64>() / steps.len() as f64;
    let tolerance = (0.01 * mean_step.abs()).max(0.01);
    if steps.iter().all(|s| (s - mean_step).abs() <= tolerance) {
        return None;
    }
    let (largest_after, &max_step) = steps.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
    Some(UnevenSpacing {
        min_step: steps.iter().copied().fold(f64::INFINITY, f64::min),
        max_step,
        mean_step,
        largest_after,
    })
}

/// The world step from one slice to the next.
fn slice_step(
    source: &Path,
    first: &DicomFile,
    records: &[FrameRecord],
    normal: [f64; 3],
) -> Result<[f64; 3]> {
    let positions: Option<Vec<[f64; 3]>> = records.iter().map(|r| r.position).collect();
    if let Some(positions) = positions.filter(|p| p.len() > 1) {
        let n = positions.len();
        let step = [0, 1, 2].map(|a| (positions[n - 1][a] - positions[0][a]) / (n - 1) as f64);
        if norm(step) == 0.0 {
            return Err(VolumeError::unsupported(
                source,
                "the DICOM slices all have the same ImagePositionPatient",
            ));
        }
        return Ok(step);
    }
    let mut thickness = 1.0;
    for tag in [tags::SPACING_BETWEEN_SLICES, tags::SLICE_THICKNESS] {
        let value = frame_floats(first, 0, tags::PIXEL_MEASURES_SEQUENCE, tag)?
            .and_then(|v| v.first().copied())
            .filter(|s| s.is_finite() && *s > 0.0);
        if let Some(value) = value {
            thickness = value;
            break;
        }
    }
    Ok(normal.map(|c| c * thickness))
}

/// The decoded frames of one file: stored values (before rescale) or 8-bit RGB.
enum DecodedFile {
    Grey(Vec<Vec<f64>>),
    Rgb(Vec<Vec<u8>>),
}

impl DecodedFile {
    fn colour(&self) -> bool {
        matches!(self, DecodedFile::Rgb(_))
    }
}

fn decode_file(file: &DicomFile) -> Result<DecodedFile> {
    let path = &file.path;
    check_jpeg2000_size(file)?;
    let decoded = decode_guarded(file)?;
    let frames = decoded.number_of_frames();
    let (rows, cols) = (decoded.rows() as usize, decoded.columns() as usize);
    if (rows, cols) != (file.rows, file.cols) {
        return Err(VolumeError::dicom(
            path,
            "decoded size differs from Rows x Columns",
        ));
    }
    let layout = SampleLayout {
        bits_allocated: decoded.bits_allocated(),
        bits_stored: decoded.bits_stored(),
        signed: decoded.pixel_representation() == dicom_pixeldata::PixelRepresentation::Signed,
    };
    let samples = decoded.samples_per_pixel() as usize;
    let plane = rows * cols;
    let bytes_per_sample = usize::from(layout.bits_allocated.div_ceil(8));
    let photometric = decoded.photometric_interpretation().as_str().to_string();
    let all = native_order(file, decoded.data(), layout.bits_allocated);
    let all = upsample_ybr_422(
        &photometric,
        samples,
        plane,
        frames,
        &all,
        layout.bits_allocated,
    );
    let frame_len = |f: u32| -> Result<&[u8]> {
        let (expected, actual_len) = (plane * samples * bytes_per_sample, all.len());
        let start = f as usize * expected;
        all.get(start..start + expected).ok_or_else(|| {
            VolumeError::dicom(
                path,
                format!(
                    "pixel data too short (truncated?): {actual_len} bytes for {frames} frame(s) of {rows}x{cols}x{samples} at {} bits",
                    layout.bits_allocated
                ),
            )
        })
    };
    let mut out_grey = Vec::new();
    let mut out_rgb = Vec::new();
    for f in 0..frames {
        let bytes = frame_len(f)?;
        match (samples, photometric.as_str()) {
            (1, "MONOCHROME1" | "MONOCHROME2") => out_grey.push(layout.values(path, bytes)?),
            (1, "PALETTE COLOR") => {
                let indices = layout.values(path, bytes)?;
                out_rgb.push(apply_palette(file, &indices)?);
            }
            (3, pi) => {
                if layout.bits_allocated != 8 {
                    return Err(VolumeError::dicom(
                        path,
                        format!(
                            "{}-bit colour is not supported (8-bit only)",
                            layout.bits_allocated
                        ),
                    ));
                }
                let interleaved = interleave(bytes, plane, decoded.planar_configuration());
                out_rgb.push(to_rgb(path, pi, &interleaved)?);
            }
            (n, pi) => {
                return Err(VolumeError::dicom(
                    path,
                    format!(
                        "{n} samples per pixel with PhotometricInterpretation {pi} is not supported"
                    ),
                ));
            }
        }
    }
    if frames != file.frames {
        return Err(VolumeError::dicom(
            path,
            format!(
                "{frames} frames decoded, NumberOfFrames says {}",
                file.frames
            ),
        ));
    }
    Ok(if out_rgb.is_empty() {
        DecodedFile::Grey(out_grey)
    } else {
        DecodedFile::Rgb(out_rgb)
    })
}

/// Decoded samples in little-endian order. dicom-rs reads big-endian OW pixel data as 16-bit
/// words (so 16-bit samples come out right, 32-bit ones with their halves swapped) and OB as
/// bytes (multi-byte samples reversed).
fn native_order(file: &DicomFile, data: &[u8], bits_allocated: u16) -> Vec<u8> {
    let big_endian =
        file.object.meta().transfer_syntax().trim_end_matches('\0') == EXPLICIT_VR_BIG_ENDIAN;
    let vr = file
        .object
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .map(|e| e.vr());
    match (big_endian, vr, bits_allocated) {
        (true, Some(dicom_core::VR::OW), 32) => data
            .chunks_exact(4)
            .flat_map(|c| [c[2], c[3], c[0], c[1]])
            .collect(),
        (true, Some(dicom_core::VR::OB), 16 | 32) => data
            .chunks_exact(usize::from(bits_allocated / 8))
            .flat_map(|c| c.iter().rev().copied().collect::<Vec<u8>>())
            .collect(),
        _ => data.to_vec(),
    }
}

/// Uncompressed YBR_FULL_422 stores two luma samples per chroma pair (Y1 Y2 Cb Cr): expanded
/// to one (Y, Cb, Cr) per pixel. Anything else (and JPEG output, already full) is unchanged.
fn upsample_ybr_422(
    photometric: &str,
    samples: usize,
    plane: usize,
    frames: u32,
    data: &[u8],
    bits_allocated: u16,
) -> Vec<u8> {
    let subsampled = plane.div_ceil(2) * 4 * frames as usize;
    if photometric != "YBR_FULL_422"
        || samples != 3
        || bits_allocated != 8
        || data.len() != subsampled
    {
        return data.to_vec();
    }
    let mut out = Vec::with_capacity(plane * 3 * frames as usize);
    for frame in data.chunks_exact(plane.div_ceil(2) * 4) {
        let mut pixels = 0;
        for c in frame.chunks_exact(4) {
            for y in [c[0], c[1]] {
                if pixels < plane {
                    out.extend([y, c[2], c[3]]);
                    pixels += 1;
                }
            }
        }
    }
    out
}

/// A decoding error naming the transfer syntax, and the build feature that adds it when known.
fn decode_error(file: &DicomFile, error: impl std::error::Error) -> VolumeError {
    let mut reason = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        reason.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    let syntax = file.object.meta().transfer_syntax().trim_end_matches('\0');
    let feature = match syntax {
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => Some(
            "JPEG-LS is not in this build: the `jpeg-ls` feature adds it (the app: `cargo build \
             --release --features jpeg-ls`; dicom-pixeldata's `charls`, CharLS built with cmake and a C++ \
             compiler)",
        ),
        _ if reason.contains("SamplePrecision(12)") => Some(
            "12-bit JPEG (extended, process 4) is not decoded by the pure-Rust JPEG decoder \
             (jpeg-decoder); dicom-pixeldata's `gdcm` feature (GDCM, C++) decodes it",
        ),
        _ if !cfg!(feature = "dicom-codecs") => {
            Some("compressed syntaxes need med-volumes' `dicom-codecs` feature")
        }
        _ => None,
    };
    VolumeError::Codec {
        path: file.path.clone(),
        transfer_syntax: syntax.to_string(),
        reason,
        feature,
    }
}

/// JPEG 2000 pixel data whose codestream declares another image than Rows x Columns x
/// SamplesPerPixel is refused before the decoder (whose adapter would overrun its buffer).
fn check_jpeg2000_size(file: &DicomFile) -> Result<()> {
    let syntax = file.object.meta().transfer_syntax().trim_end_matches('\0');
    if !syntax.starts_with("1.2.840.10008.1.2.4.9") && !syntax.starts_with("1.2.840.10008.1.2.4.20")
    {
        return Ok(());
    }
    let Some(fragments) = file
        .object
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .and_then(|e| e.value().fragments())
    else {
        return Ok(());
    };
    let samples = floats(&file.path, &file.object, tags::SAMPLES_PER_PIXEL)?
        .and_then(|v| v.first().copied())
        .unwrap_or(1.0) as usize;
    match crate::jpeg2000::mismatch(fragments, file.rows, file.cols, samples) {
        None => Ok(()),
        Some(reason) => Err(VolumeError::Codec {
            path: file.path.clone(),
            transfer_syntax: syntax.to_string(),
            reason,
            feature: None,
        }),
    }
}

/// Decodes the pixel data; a panic inside a third-party decoder (seen in the RLE adapter on a
/// corrupt segment) becomes an error naming the file instead of taking the process down.
fn decode_guarded(file: &DicomFile) -> Result<dicom_pixeldata::DecodedPixelData<'_>> {
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        file.object.decode_pixel_data()
    }));
    match decoded {
        Ok(Ok(decoded)) => Ok(decoded),
        Ok(Err(e)) => Err(decode_error(file, e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            Err(VolumeError::Codec {
                path: file.path.clone(),
                transfer_syntax: file
                    .object
                    .meta()
                    .transfer_syntax()
                    .trim_end_matches('\0')
                    .to_string(),
                reason: format!("corrupt pixel data (the decoder failed: {what})"),
                feature: None,
            })
        }
    }
}

/// How stored samples are packed.
#[derive(Clone, Copy)]
struct SampleLayout {
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
}

impl SampleLayout {
    /// Little-endian samples to numbers: BitsStored bits kept, sign-extended when signed.
    fn values(&self, path: &Path, bytes: &[u8]) -> Result<Vec<f64>> {
        let stored = u32::from(self.bits_stored.clamp(1, 32));
        let mask: u64 = if stored >= 32 {
            u64::from(u32::MAX)
        } else {
            (1u64 << stored) - 1
        };
        let convert = |raw: u64| -> f64 {
            let v = raw & mask;
            if self.signed && v >> (stored - 1) & 1 == 1 {
                v as f64 - (1u64 << stored) as f64
            } else {
                v as f64
            }
        };
        Ok(match self.bits_allocated {
            8 => bytes.iter().map(|&b| convert(u64::from(b))).collect(),
            16 => bytes
                .chunks_exact(2)
                .map(|c| convert(u64::from(u16::from_le_bytes([c[0], c[1]]))))
                .collect(),
            32 => bytes
                .chunks_exact(4)
                .map(|c| convert(u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))))
                .collect(),
            other => {
                return Err(VolumeError::dicom(
                    path,
                    format!("BitsAllocated {other} is not supported (8, 16 or 32)"),
                ));
            }
        })
    }
}

/// Colour-by-plane (RRR..GGG..BBB..) to colour-by-pixel.
fn interleave(bytes: &[u8], plane: usize, planar: dicom_pixeldata::PlanarConfiguration) -> Vec<u8> {
    if planar == dicom_pixeldata::PlanarConfiguration::Standard {
        return bytes.to_vec();
    }
    let mut out = Vec::with_capacity(plane * 3);
    for p in 0..plane {
        out.extend([bytes[p], bytes[plane + p], bytes[2 * plane + p]]);
    }
    out
}

/// Interleaved 8-bit samples in photometric `pi` to RGB.
fn to_rgb(path: &Path, pi: &str, pixels: &[u8]) -> Result<Vec<u8>> {
    match pi {
        "RGB" => Ok(pixels.to_vec()),
        "YBR_FULL" | "YBR_FULL_422" => {
            Ok(pixels.chunks_exact(3).flat_map(ybr_full_to_rgb).collect())
        }
        other => Err(VolumeError::dicom(
            path,
            format!("colour PhotometricInterpretation {other} is not supported"),
        )),
    }
}

/// YBR_FULL (ITU-R BT.601, full range) to RGB, rounded and clamped (as pydicom converts).
fn ybr_full_to_rgb(p: &[u8]) -> [u8; 3] {
    let (y, cb, cr) = (
        f64::from(p[0]),
        f64::from(p[1]) - 128.0,
        f64::from(p[2]) - 128.0,
    );
    let clamp = |v: f64| v.round().clamp(0.0, 255.0) as u8;
    [
        clamp(y + 1.402 * cr),
        clamp(y - 0.344136 * cb - 0.714136 * cr),
        clamp(y + 1.772 * cb),
    ]
}

/// PALETTE COLOR indices through the file's red, green and blue lookup tables, to 8 bits.
fn apply_palette(file: &DicomFile, indices: &[f64]) -> Result<Vec<u8>> {
    let path = &file.path;
    let lut = |descriptor: Tag, data: Tag, name: &str| -> Result<(Vec<u16>, f64, u32)> {
        let d = floats(path, &file.object, descriptor)?
            .filter(|d| d.len() == 3)
            .ok_or_else(|| {
                VolumeError::dicom(
                    path,
                    format!("no {name} Palette Color Lookup Table Descriptor"),
                )
            })?;
        let element = file
            .object
            .element_opt(data)
            .ok()
            .flatten()
            .ok_or_else(|| {
                VolumeError::dicom(path, format!("no {name} Palette Color Lookup Table Data"))
            })?;
        let bits = d[2] as u32;
        let bytes = element
            .to_bytes()
            .map_err(|e| VolumeError::dicom(path, format!("{name} palette: {e}")))?;
        let entries: Vec<u16> = if bits == 8 && element.vr() != dicom_core::VR::OW {
            bytes.iter().map(|&b| u16::from(b)).collect()
        } else {
            bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect()
        };
        Ok((entries, d[1], bits))
    };
    let channels = [
        lut(
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            "Red",
        )?,
        lut(
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            "Green",
        )?,
        lut(
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            "Blue",
        )?,
    ];
    if channels.iter().any(|(entries, _, _)| entries.is_empty()) {
        return Err(VolumeError::dicom(path, "empty palette lookup table"));
    }
    let mut out = Vec::with_capacity(indices.len() * 3);
    for &index in indices {
        for (entries, first, bits) in &channels {
            let i = (index - first).clamp(0.0, (entries.len() - 1) as f64) as usize;
            let v = entries[i];
            out.push(if *bits > 8 { (v >> 8) as u8 } else { v as u8 });
        }
    }
    Ok(out)
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
    fn empty_and_broken_folders_are_errors_naming_them() {
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

    #[test]
    fn intensity_is_given_then_the_file_window_then_percentiles() {
        let dir = tempfile::tempdir().unwrap();
        write_ct_series(dir.path(), 2, 2, 1).unwrap();
        let mut dicom = read_dicom(dir.path(), None).unwrap();
        assert_eq!(dicom.intensity(None).1, IntensitySource::Default);
        dicom.window = Some(VoiWindow {
            center: 40.0,
            width: 400.0,
        });
        let (map, source) = dicom.intensity(None);
        assert_eq!(source, IntensitySource::FileWindow);
        assert_eq!(
            map,
            IntensityMap::Window {
                center: 40.0,
                width: 400.0
            }
        );
        let (map, source) = dicom.intensity(Some(IntensityMap::MinMax));
        assert_eq!(
            (map, source),
            (IntensityMap::MinMax, IntensitySource::Given)
        );
        // Stored 1000 + 10 r + c, intercept -1024: -24, -23, -14, -13 HU.
        let rgb = dicom.rgb8_slice(0, (-24.0, -13.0)).unwrap();
        assert_eq!(rgb.len(), 12);
        assert_eq!(&rgb[..3], &[0, 0, 0]);
        assert_eq!(&rgb[9..], &[255, 255, 255]);
        assert!(dicom.rgb8_slice(1, (0.0, 1.0)).is_err());
    }

    #[test]
    fn dicom_is_recognised_by_content() {
        assert_eq!(
            dicom_start(b"\x08\x00\x05\x00CS\x0a\x00"),
            Some(DicomStart::DataSet { explicit: true })
        );
        assert_eq!(
            dicom_start(b"\x08\x00\x08\x00\x0a\x00\x00\x00"),
            Some(DicomStart::DataSet { explicit: false })
        );
        assert_eq!(
            dicom_start(b"\x02\x00\x00\x00UL\x04\x00"),
            Some(DicomStart::MetaGroup)
        );
        assert_eq!(dicom_start(b"\x89PNG\r\n\x1a\n"), None);
        let mut preamble = vec![0u8; 128];
        preamble.extend_from_slice(b"DICM");
        assert_eq!(dicom_start(&preamble), Some(DicomStart::Preamble));
    }
}
