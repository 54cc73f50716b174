//! DICOM Segmentation out: a binary SEG object with one segment, over the source images.
//!
//! One frame per slice of the source volume (`k` order), each referencing its source image
//! (SOPInstanceUID, and the frame number for multi-frame sources), with the source's frame of
//! reference, study, patient, orientation, spacing and per-frame ImagePositionPatient, so a
//! viewer (OHIF, 3D Slicer) or a PACS lays it over the source.

use std::path::Path;

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, Tag};

use crate::dicom_io::DicomVolume;
use crate::error::{Result, VolumeError};
use crate::volume::Volume;

/// Segmentation Storage.
const SEGMENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.4";

/// Writes `mask` (non-zero = the segment, on `source`'s grid) as a DICOM SEG at `path`,
/// atomically. `label` names the segment (the prompt; cut to the 64 characters a LO holds).
pub fn write_dicom_seg(
    path: &Path,
    source: &DicomVolume,
    mask: &Volume,
    label: &str,
) -> Result<()> {
    let [nx, ny, nz] = source.volume.dims();
    if mask.dims() != [nx, ny, nz] {
        return Err(VolumeError::unsupported(
            path,
            format!(
                "mask {:?} is not on the source grid {:?}",
                mask.dims(),
                [nx, ny, nz]
            ),
        ));
    }
    let sop_instance = new_uid(path, 1);
    let series = new_uid(path, 2);
    let object = seg_object(source, mask, label, &sop_instance, &series);
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
        .media_storage_sop_class_uid(SEGMENTATION_STORAGE)
        .media_storage_sop_instance_uid(sop_instance);
    let file = object
        .with_meta(meta)
        .map_err(|e| VolumeError::dicom(path, e))?;
    atomic_io::write_atomic_by_path(path, |tmp| {
        file.write_to_file(tmp)
            .map_err(|e| VolumeError::dicom(path, e))
    })
}

/// A `2.25.<decimal>` UID (ISO/IEC 9834-8) from the time, the process, the path and `salt`.
fn new_uid(path: &Path, salt: u64) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut hasher);
    salt.hash(&mut hasher);
    std::process::id().hash(&mut hasher);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    nanos.hash(&mut hasher);
    let high = hasher.finish();
    salt.wrapping_add(1).hash(&mut hasher);
    let value = (u128::from(high) << 64) | u128::from(hasher.finish());
    format!("2.25.{value}")
}

fn text(tag: Tag, vr: VR, value: impl Into<String>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(value.into()))
}

fn us(tag: Tag, value: u16) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, PrimitiveValue::from(value))
}

fn sequence(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

fn item(elements: Vec<DataElement<InMemDicomObject>>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elements)
}

fn ds(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| {
            let s = format!("{v:.6}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s == "-0" {
                "0".to_string()
            } else {
                s.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\\")
}

fn code(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    item(vec![
        text(tags::CODE_VALUE, VR::SH, value),
        text(tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme),
        text(tags::CODE_MEANING, VR::LO, meaning),
    ])
}

/// The geometry of slice `k` in DICOM LPS: (position, row cosine, column cosine).
fn slice_geometry(volume: &Volume, k: usize) -> ([f64; 3], [f64; 3], [f64; 3]) {
    let a = volume.affine();
    let lps = |v: [f64; 3]| [-v[0], -v[1], v[2]];
    let position = lps([0, 1, 2].map(|r| a[r][2] * k as f64 + a[r][3]));
    let unit = |c: usize| {
        let v = lps([a[0][c], a[1][c], a[2][c]]);
        let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
            .sqrt()
            .max(f64::MIN_POSITIVE);
        v.map(|x| x / n)
    };
    (position, unit(0), unit(1))
}

fn seg_object(
    source: &DicomVolume,
    mask: &Volume,
    label: &str,
    sop_instance: &str,
    series: &str,
) -> InMemDicomObject {
    let [nx, ny, nz] = source.volume.dims();
    let spacing = source.volume.spacing();
    let label: String = label.chars().take(64).collect();
    let (_, row_dir, col_dir) = slice_geometry(&source.volume, 0);
    let per_frame: Vec<InMemDicomObject> = (0..nz)
        .map(|k| {
            let frame = &source.frames[k];
            // The source slice's own position: a series need not be evenly spaced.
            let position = frame
                .position
                .unwrap_or_else(|| slice_geometry(&source.volume, k).0);
            let mut reference = vec![
                text(
                    tags::REFERENCED_SOP_CLASS_UID,
                    VR::UI,
                    frame.sop_class_uid.clone(),
                ),
                text(
                    tags::REFERENCED_SOP_INSTANCE_UID,
                    VR::UI,
                    frame.sop_instance_uid.clone(),
                ),
            ];
            if source
                .frames
                .iter()
                .any(|f| f.sop_instance_uid == frame.sop_instance_uid && f.frame != frame.frame)
            {
                reference.push(text(
                    tags::REFERENCED_FRAME_NUMBER,
                    VR::IS,
                    (frame.frame + 1).to_string(),
                ));
            }
            let purpose = code(
                "121322",
                "DCM",
                "Source image for image processing operation",
            );
            let mut source_item = reference;
            source_item.push(sequence(
                tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
                vec![purpose],
            ));
            item(vec![
                sequence(
                    tags::DERIVATION_IMAGE_SEQUENCE,
                    vec![item(vec![
                        sequence(tags::SOURCE_IMAGE_SEQUENCE, vec![item(source_item)]),
                        sequence(
                            tags::DERIVATION_CODE_SEQUENCE,
                            vec![code("113076", "DCM", "Segmentation")],
                        ),
                    ])],
                ),
                sequence(
                    tags::FRAME_CONTENT_SEQUENCE,
                    vec![item(vec![DataElement::new(
                        tags::DIMENSION_INDEX_VALUES,
                        VR::UL,
                        PrimitiveValue::U32([1u32, k as u32 + 1].into()),
                    )])],
                ),
                sequence(
                    tags::PLANE_POSITION_SEQUENCE,
                    vec![item(vec![text(
                        tags::IMAGE_POSITION_PATIENT,
                        VR::DS,
                        ds(&position),
                    )])],
                ),
                sequence(
                    tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                    vec![item(vec![us(tags::REFERENCED_SEGMENT_NUMBER, 1)])],
                ),
            ])
        })
        .collect();
    let shared = item(vec![
        sequence(
            tags::PLANE_ORIENTATION_SEQUENCE,
            vec![item(vec![text(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                ds(&[row_dir, col_dir].concat()),
            )])],
        ),
        sequence(
            tags::PIXEL_MEASURES_SEQUENCE,
            vec![item(vec![
                text(tags::PIXEL_SPACING, VR::DS, ds(&[spacing[1], spacing[0]])),
                text(tags::SLICE_THICKNESS, VR::DS, ds(&[spacing[2]])),
                text(tags::SPACING_BETWEEN_SLICES, VR::DS, ds(&[spacing[2]])),
            ])],
        ),
    ]);
    let segment = item(vec![
        us(tags::SEGMENT_NUMBER, 1),
        text(tags::SEGMENT_LABEL, VR::LO, label.clone()),
        text(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC"),
        text(tags::SEGMENT_ALGORITHM_NAME, VR::LO, "MedCLIPSeg"),
        sequence(
            tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
            vec![code("49755003", "SCT", "Morphologically Altered Structure")],
        ),
        sequence(
            tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
            vec![code("108369006", "SCT", "Neoplasm")],
        ),
    ]);
    let mut instances: Vec<&str> = source
        .frames
        .iter()
        .map(|f| f.sop_instance_uid.as_str())
        .collect();
    instances.dedup();
    let referenced: Vec<InMemDicomObject> = instances
        .iter()
        .map(|uid| {
            let class = source
                .frames
                .iter()
                .find(|f| f.sop_instance_uid == *uid)
                .map(|f| f.sop_class_uid.clone())
                .unwrap_or_default();
            item(vec![
                text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, class),
                text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, uid.to_string()),
            ])
        })
        .collect();
    let dimension = |pointer: Tag, group: Tag| {
        item(vec![
            text(
                tags::DIMENSION_ORGANIZATION_UID,
                VR::UI,
                format!("{series}.1"),
            ),
            DataElement::new(
                tags::DIMENSION_INDEX_POINTER,
                VR::AT,
                PrimitiveValue::Tags([pointer][..].into()),
            ),
            DataElement::new(
                tags::FUNCTIONAL_GROUP_POINTER,
                VR::AT,
                PrimitiveValue::Tags([group][..].into()),
            ),
        ])
    };
    let mut elements = vec![
        text(tags::SOP_CLASS_UID, VR::UI, SEGMENTATION_STORAGE),
        text(tags::SOP_INSTANCE_UID, VR::UI, sop_instance),
        text(tags::STUDY_INSTANCE_UID, VR::UI, source.study_uid.clone()),
        text(tags::SERIES_INSTANCE_UID, VR::UI, series),
        text(tags::MODALITY, VR::CS, "SEG"),
        text(tags::SERIES_NUMBER, VR::IS, "999"),
        text(tags::INSTANCE_NUMBER, VR::IS, "1"),
        text(
            tags::SERIES_DESCRIPTION,
            VR::LO,
            format!("MedCLIPSeg: {}", label.chars().take(50).collect::<String>()),
        ),
        text(tags::MANUFACTURER, VR::LO, "medclipseg-rs"),
        text(tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY"),
        text(tags::CONTENT_LABEL, VR::CS, "MEDCLIPSEG"),
        text(tags::CONTENT_DESCRIPTION, VR::LO, label.clone()),
        text(tags::SEGMENTATION_TYPE, VR::CS, "BINARY"),
        text(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        us(tags::SAMPLES_PER_PIXEL, 1),
        us(tags::ROWS, ny as u16),
        us(tags::COLUMNS, nx as u16),
        text(tags::NUMBER_OF_FRAMES, VR::IS, nz.to_string()),
        us(tags::BITS_ALLOCATED, 1),
        us(tags::BITS_STORED, 1),
        us(tags::HIGH_BIT, 0),
        us(tags::PIXEL_REPRESENTATION, 0),
        sequence(tags::SEGMENT_SEQUENCE, vec![segment]),
        sequence(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared]),
        sequence(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame),
        sequence(
            tags::DIMENSION_INDEX_SEQUENCE,
            vec![
                dimension(
                    tags::REFERENCED_SEGMENT_NUMBER,
                    tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                ),
                dimension(tags::IMAGE_POSITION_PATIENT, tags::PLANE_POSITION_SEQUENCE),
            ],
        ),
        sequence(
            tags::REFERENCED_SERIES_SEQUENCE,
            vec![item(vec![
                text(tags::SERIES_INSTANCE_UID, VR::UI, source.series_uid.clone()),
                sequence(tags::REFERENCED_INSTANCE_SEQUENCE, referenced),
            ])],
        ),
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::from(pack_bits(mask.data())),
        ),
    ];
    if !source.frame_of_reference_uid.is_empty() {
        elements.push(text(
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            source.frame_of_reference_uid.clone(),
        ));
    }
    for (tag, vr, value) in &source.patient_study {
        elements.push(text(*tag, *vr, value.clone()));
    }
    InMemDicomObject::from_element_iter(elements)
}

/// 1-bit pixels, frames back to back, least significant bit first, padded to an even length.
fn pack_bits(values: &[f32]) -> Vec<u8> {
    let mut bytes = vec![0u8; values.len().div_ceil(8)];
    for (i, &v) in values.iter().enumerate() {
        if v > 0.0 {
            bytes[i / 8] |= 1 << (i % 8);
        }
    }
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_packed_lsb_first_and_padded() {
        let v = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        assert_eq!(pack_bits(&v), vec![0b0000_1001, 0b0000_0001]);
        assert_eq!(pack_bits(&[1.0; 8]), vec![255, 0]);
    }

    #[test]
    fn a_seg_over_a_series_reads_back_with_its_references() {
        let dir = tempfile::tempdir().unwrap();
        let series = dir.path().join("series");
        std::fs::create_dir(&series).unwrap();
        crate::testing::write_ct_series(&series, 3, 4, 5).unwrap();
        let source = crate::read_dicom(&series, None).unwrap();
        let mask = source
            .volume
            .same_grid(
                source
                    .volume
                    .data()
                    .iter()
                    .map(|&v| f32::from(u8::from(v > 300.0)))
                    .collect(),
            )
            .unwrap();
        let path = dir.path().join("seg.dcm");
        write_dicom_seg(&path, &source, &mask, "a lesion").unwrap();
        let object = dicom_object::open_file(&path).unwrap();
        let get = |tag| {
            object
                .element(tag)
                .unwrap()
                .to_str()
                .unwrap()
                .trim_end_matches('\0')
                .to_string()
        };
        assert_eq!(get(tags::SOP_CLASS_UID), SEGMENTATION_STORAGE);
        assert_eq!(get(tags::NUMBER_OF_FRAMES), "5");
        let frames = object
            .element(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
            .unwrap()
            .items()
            .unwrap();
        assert_eq!(frames.len(), 5);
        // The frames come back as the mask, bit for bit.
        let bytes = object
            .element(tags::PIXEL_DATA)
            .unwrap()
            .to_bytes()
            .unwrap();
        assert_eq!(&bytes[..], &pack_bits(mask.data())[..]);
        let err = write_dicom_seg(
            &path,
            &source,
            &Volume::new(
                [1, 1, 1],
                vec![0.0],
                [1.0; 3],
                crate::diagonal_affine([1.0; 3]),
            )
            .unwrap(),
            "x",
        )
        .unwrap_err();
        assert!(err.to_string().contains("seg.dcm"), "{err}");
    }
}
