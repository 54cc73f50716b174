//! Test data: a small DICOM CT series written from scratch, for the tests of this crate and of
//! the crates that read volumes through it (feature `testing`).

use std::path::Path;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use crate::error::{Result, VolumeError};

/// Writes a small CT-like series: `depth` slices of `rows` x `cols`, stored value
/// `1000 + 100 * z + 10 * r + c` with slope 1 and intercept -1024, slices 2.5 mm apart along
/// +z, written in shuffled order under names that do not sort by position.
pub fn write_ct_series(dir: &Path, rows: usize, cols: usize, depth: usize) -> Result<()> {
    let order: Vec<usize> = (0..depth).rev().collect();
    for (n, &z) in order.iter().enumerate() {
        let pixels: Vec<u16> = (0..rows * cols)
            .map(|p| (1000 + 100 * z + 10 * (p / cols) + p % cols) as u16)
            .collect();
        let sop = format!("1.2.826.0.1.3680043.8.498.{}", z + 1);
        let text = |tag, vr, s: String| DataElement::new(tag, vr, PrimitiveValue::from(s));
        let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
        let obj = InMemDicomObject::from_element_iter([
            text(
                tags::SOP_CLASS_UID,
                VR::UI,
                uids::CT_IMAGE_STORAGE.to_string(),
            ),
            text(tags::SOP_INSTANCE_UID, VR::UI, sop.clone()),
            text(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.4".into()),
            text(tags::INSTANCE_NUMBER, VR::IS, format!("{}", z + 1)),
            text(
                tags::IMAGE_POSITION_PATIENT,
                VR::DS,
                format!("-10\\20\\{}", 2.5 * z as f64),
            ),
            text(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                "1\\0\\0\\0\\1\\0".into(),
            ),
            text(tags::PIXEL_SPACING, VR::DS, "0.5\\0.75".into()),
            text(tags::RESCALE_SLOPE, VR::DS, "1".into()),
            text(tags::RESCALE_INTERCEPT, VR::DS, "-1024".into()),
            text(
                tags::PHOTOMETRIC_INTERPRETATION,
                VR::CS,
                "MONOCHROME2".into(),
            ),
            us(tags::SAMPLES_PER_PIXEL, 1),
            us(tags::ROWS, rows as u16),
            us(tags::COLUMNS, cols as u16),
            us(tags::BITS_ALLOCATED, 16),
            us(tags::BITS_STORED, 16),
            us(tags::HIGH_BIT, 15),
            us(tags::PIXEL_REPRESENTATION, 0),
            DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(pixels.into())),
        ]);
        let meta = FileMetaTableBuilder::new()
            .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
            .media_storage_sop_class_uid(uids::CT_IMAGE_STORAGE)
            .media_storage_sop_instance_uid(sop);
        let path = dir.join(format!("IM{n:04}.dcm"));
        let file = obj
            .with_meta(meta)
            .map_err(|e| VolumeError::dicom(&path, e))?;
        file.write_to_file(&path)
            .map_err(|e| VolumeError::dicom(&path, e))?;
    }
    Ok(())
}
