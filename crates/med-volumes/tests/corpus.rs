//! The DICOM corpus in testdata/dicom (real files from the pydicom wheel, see its README), each
//! read and compared with the numbers pydicom and its decoders give (testdata/dicom/reference.json,
//! written by make_reference.py): shape, photometric interpretation, spacing, position, window,
//! and the values: exactly (SHA-256 of the whole array) for lossless syntaxes, within a
//! decoder's rounding for lossy ones.

use std::path::{Path, PathBuf};

use med_volumes::{DicomVolume, VolumeError, read_dicom};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/dicom")
}

fn reference() -> Vec<Value> {
    let text = std::fs::read_to_string(corpus().join("reference.json")).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    json["files"].as_array().unwrap().clone()
}

fn entry(name: &str) -> Value {
    reference()
        .into_iter()
        .find(|e| e["file"] == name)
        .unwrap_or_else(|| panic!("{name} not in reference.json"))
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The values in the reference's order: frames as stored in the file (the volume's `k` runs in
/// slice order), MONOCHROME1's negation undone.
fn file_order_values(dicom: &DicomVolume) -> (Vec<f32>, Vec<u8>) {
    let [nx, ny, nz] = dicom.volume.dims();
    let plane = nx * ny;
    let mut by_frame: Vec<usize> = (0..nz).collect();
    by_frame.sort_by_key(|&k| dicom.frames[k].frame);
    let sign = if dicom.monochrome1_inverted {
        -1.0
    } else {
        1.0
    };
    let mut grey = Vec::with_capacity(plane * nz);
    let mut rgb = Vec::new();
    for k in by_frame {
        grey.extend(
            dicom.volume.data()[k * plane..(k + 1) * plane]
                .iter()
                .map(|&v| sign * v),
        );
        if let Some(colour) = &dicom.rgb {
            rgb.extend_from_slice(&colour[k * plane * 3..(k + 1) * plane * 3]);
        }
    }
    (grey, rgb)
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks one file against its reference entry; returns a description of any mismatch.
fn check(entry: &Value) -> Result<(), String> {
    let name = entry["file"].as_str().unwrap();
    let path = corpus().join(name);
    let dicom = read_dicom(&path, None).map_err(|e| format!("{name}: {e}"))?;
    let values = &entry["values"];
    let shape: Vec<usize> = values["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let [nx, ny, nz] = dicom.volume.dims();
    if [nz, ny, nx] != [shape[0], shape[1], shape[2]] {
        return Err(format!(
            "{name}: dims {:?}, reference shape {shape:?}",
            dicom.volume.dims()
        ));
    }
    if dicom.photometric != entry["photometric"].as_str().unwrap() {
        return Err(format!("{name}: photometric {}", dicom.photometric));
    }
    if let Some(ps) = entry["pixel_spacing"].as_array() {
        let ps: Vec<f64> = ps.iter().map(|v| v.as_f64().unwrap()).collect();
        let s = dicom.volume.spacing();
        if (s[0] - ps[1]).abs() > 1e-9 || (s[1] - ps[0]).abs() > 1e-9 {
            return Err(format!("{name}: spacing {s:?}, PixelSpacing {ps:?}"));
        }
    }
    check_position(name, &dicom, entry)?;
    match (entry["window"].as_array(), dicom.window) {
        (None, None) => {}
        (Some(w), Some(got)) => {
            let sign = if dicom.monochrome1_inverted {
                -1.0
            } else {
                1.0
            };
            if (sign * got.center - w[0].as_f64().unwrap()).abs() > 1e-9
                || (got.width - w[1].as_f64().unwrap()).abs() > 1e-9
            {
                return Err(format!("{name}: window {got:?}, reference {w:?}"));
            }
        }
        (w, got) => return Err(format!("{name}: window {got:?}, reference {w:?}")),
    }
    let (grey, rgb) = file_order_values(&dicom);
    // JPEG-LS decoding is specified exactly, near-lossless included: every conforming decoder
    // gives the same values.
    let lossless = entry["lossless"].as_bool().unwrap() || is_jpeg_ls(entry);
    let (numbers, hash): (Vec<f64>, String) = match values["kind"].as_str().unwrap() {
        "modality_f32" => (
            grey.iter().map(|&v| f64::from(v)).collect(),
            sha256(
                &grey
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<u8>>(),
            ),
        ),
        _ => {
            if rgb.is_empty() {
                return Err(format!("{name}: colour in the reference, grey here"));
            }
            (rgb.iter().map(|&v| f64::from(v)).collect(), sha256(&rgb))
        }
    };
    if lossless {
        if hash != values["sha256"].as_str().unwrap() {
            let sum: f64 = numbers.iter().sum();
            return Err(format!(
                "{name}: lossless values differ from pydicom's (sum {sum}, reference {})",
                values["sum"]
            ));
        }
        return Ok(());
    }
    // Lossy: decoders differ by rounding (IDCT, chroma upsampling); the mean within 1 level,
    // each sampled pixel within 12 levels of a 8-bit or 12-bit range.
    let n = numbers.len() as f64;
    let mean_diff = (numbers.iter().sum::<f64>() - values["sum"].as_f64().unwrap()).abs() / n;
    if mean_diff > 1.0 {
        return Err(format!("{name}: mean differs by {mean_diff}"));
    }
    for pixel in values["pixels"].as_array().unwrap() {
        let p = f64s(pixel);
        let (f, r, c, s) = (p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize);
        let channels = shape[3];
        let index = ((f * shape[1] + r) * shape[2] + c) * channels + s;
        if (numbers[index] - p[4]).abs() > 12.0 {
            return Err(format!("{name}: pixel {pixel} is {}", numbers[index]));
        }
    }
    Ok(())
}

/// The volume's first slice sits at the reference's first position in slice order.
fn check_position(name: &str, dicom: &DicomVolume, entry: &Value) -> Result<(), String> {
    let positions: Vec<Option<Vec<f64>>> = entry["positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_array().map(|_| f64s(p)))
        .collect();
    let Some(Some(expected)) = positions.get(dicom.frames[0].frame as usize) else {
        return Ok(());
    };
    let a = dicom.volume.affine();
    // RAS back to LPS.
    let origin = [-a[0][3], -a[1][3], a[2][3]];
    if origin
        .iter()
        .zip(expected)
        .any(|(o, e)| (o - e).abs() > 1e-4)
    {
        return Err(format!("{name}: origin {origin:?}, reference {expected:?}"));
    }
    Ok(())
}

#[test]
fn every_decodable_corpus_file_matches_pydicom() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for entry in reference() {
        let name = entry["file"].as_str().unwrap().to_string();
        let without_codec = is_jpeg_ls(&entry) && !cfg!(feature = "jpeg-ls");
        if entry.get("values").is_none() || without_codec || name.contains("JPGExtended") {
            continue;
        }
        checked += 1;
        if let Err(e) = check(&entry) {
            failures.push(e);
        }
    }
    let expected = if cfg!(feature = "jpeg-ls") { 32 } else { 27 };
    assert!(checked >= expected, "only {checked} files checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn is_jpeg_ls(entry: &Value) -> bool {
    matches!(
        entry["transfer_syntax"].as_str(),
        Some("1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81")
    )
}

#[cfg(feature = "jpeg-ls")]
#[test]
fn jpeg_ls_lossless_near_lossless_and_colour_decode_exactly_as_pydicom() {
    let entries: Vec<Value> = reference().into_iter().filter(is_jpeg_ls).collect();
    assert_eq!(entries.len(), 5, "the corpus's JPEG-LS files");
    let failures: Vec<String> = entries.iter().filter_map(|e| check(e).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[cfg(not(feature = "jpeg-ls"))]
#[test]
fn jpeg_ls_is_an_error_naming_the_file_and_the_feature() {
    let path = corpus().join("files/MR_small_jpeg_ls_lossless.dcm");
    let err = read_dicom(&path, None).unwrap_err();
    assert!(
        matches!(&err, VolumeError::Codec { feature: Some(f), .. } if f.contains("charls")),
        "{err:?}"
    );
    let err = err.to_string();
    assert!(err.contains("MR_small_jpeg_ls_lossless.dcm"), "{err}");
    assert!(err.contains("1.2.840.10008.1.2.4.80"), "{err}");
    assert!(err.contains("charls"), "{err}");
}

#[test]
fn twelve_bit_jpeg_is_an_error_naming_the_file_and_the_feature() {
    let path = corpus().join("files/JPGExtended.dcm");
    let err = read_dicom(&path, None).unwrap_err().to_string();
    assert!(
        err.contains("JPGExtended.dcm") && err.contains("1.2.840.10008.1.2.4.51"),
        "{err}"
    );
    assert!(err.contains("12-bit") && err.contains("gdcm"), "{err}");
}

#[test]
fn truncated_pixel_data_is_an_error_naming_the_file() {
    let path = corpus().join("files/MR_truncated.dcm");
    let err = read_dicom(&path, None).unwrap_err();
    assert!(matches!(err, VolumeError::Dicom { .. }), "{err:?}");
    assert!(err.to_string().contains("MR_truncated.dcm"), "{err}");
}

#[test]
fn files_without_preamble_or_meta_read_like_the_original() {
    let original = read_dicom(&corpus().join("files/MR_small.dcm"), None).unwrap();
    for name in [
        "generated/MR_small_no_preamble",
        "generated/MR_small_raw_implicit",
    ] {
        let other = read_dicom(&corpus().join(name), None).unwrap();
        assert_eq!(other.volume.data(), original.volume.data(), "{name}");
        assert_eq!(other.volume.affine(), original.volume.affine(), "{name}");
        assert!(med_volumes::is_dicom_file(&corpus().join(name)));
    }
}

#[test]
fn a_series_folder_without_extensions_and_its_enhanced_twin_agree() {
    let series = read_dicom(&corpus().join("ct2_series"), None).unwrap();
    assert_eq!(series.volume.dims(), [16, 16, 4]);
    let enhanced = read_dicom(&corpus().join("generated/enhanced_ct.dcm"), None).unwrap();
    assert_eq!(enhanced.volume.dims(), [16, 16, 4]);
    assert_eq!(enhanced.volume.data(), series.volume.data());
    assert_eq!(enhanced.volume.spacing(), series.volume.spacing());
    for (a, b) in enhanced
        .volume
        .affine()
        .iter()
        .flatten()
        .zip(series.volume.affine().iter().flatten())
    {
        assert!(
            (a - b).abs() < 1e-9,
            "{:?} vs {:?}",
            enhanced.volume.affine(),
            series.volume.affine()
        );
    }
    // Stored top slice first, read bottom first: frame 3 is slice 0.
    assert_eq!(enhanced.frames[0].frame, 3);
    let w = enhanced.window.unwrap();
    assert_eq!((w.center, w.width), (40.0, 400.0));
    // Slices 202.5 mm apart over 3 steps: z spacing is the mean step.
    let z: Vec<f64> = entry("ct2_series/17106")["positions"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(z.len(), 3);
    assert!(series.volume.spacing()[2] > 0.0);
}

#[test]
fn a_folder_with_several_series_names_them_and_picks_one() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["17106", "17136", "17166", "17196"] {
        std::fs::copy(
            corpus().join("ct2_series").join(name),
            dir.path().join(name),
        )
        .unwrap();
    }
    std::fs::copy(corpus().join("files/CR_6154"), dir.path().join("6154")).unwrap();
    let ct_uid = entry("ct2_series/17106")["series_uid"]
        .as_str()
        .unwrap()
        .to_string();
    let cr_uid = entry("files/CR_6154")["series_uid"]
        .as_str()
        .unwrap()
        .to_string();
    let err = read_dicom(dir.path(), None).unwrap_err().to_string();
    assert!(err.contains(&ct_uid) && err.contains(&cr_uid), "{err}");
    assert!(err.contains("--series"), "{err}");
    let ct = read_dicom(dir.path(), Some(&ct_uid)).unwrap();
    assert_eq!(ct.volume.dims(), [16, 16, 4]);
    let cr = read_dicom(dir.path(), Some(&cr_uid)).unwrap();
    assert!(cr.monochrome1_inverted);
    let err = read_dicom(dir.path(), Some("1.2.3"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no series 1.2.3") && err.contains(&ct_uid),
        "{err}"
    );
}

#[test]
fn monochrome1_is_negated_and_said_so() {
    let cr = read_dicom(&corpus().join("files/CR_6154"), None).unwrap();
    assert!(cr.monochrome1_inverted);
    let reference = entry("files/CR_6154");
    let max = reference["values"]["max"].as_f64().unwrap();
    let min_here = cr
        .volume
        .data()
        .iter()
        .fold(f32::INFINITY, |m, &v| m.min(v));
    assert_eq!(f64::from(min_here), -max);
    assert_eq!(cr.window.unwrap().center, -1600.0);
}

#[test]
fn a_missing_required_tag_is_an_error_naming_it_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut object = dicom_object::open_file(corpus().join("files/CT_small.dcm")).unwrap();
    object.remove_element(dicom_dictionary_std::tags::ROWS);
    let path = dir.path().join("no_rows.dcm");
    object.write_to_file(&path).unwrap();
    let err = read_dicom(&path, None).unwrap_err().to_string();
    assert!(err.contains("no_rows.dcm") && err.contains("Rows"), "{err}");
}

#[test]
fn garbage_and_cut_headers_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read(corpus().join("files/CT_small.dcm")).unwrap();
    for cut in [140, 300, 1000, original.len() - 100] {
        let path = dir.path().join(format!("cut_{cut}.dcm"));
        std::fs::write(&path, &original[..cut]).unwrap();
        let err = read_dicom(&path, None).unwrap_err().to_string();
        assert!(err.contains(&format!("cut_{cut}.dcm")), "{err}");
    }
}

/// The fuzz targets' property on stable: corpus files with bytes flipped, inserted or cut read
/// as `Ok` or `Err`, never a panic (deterministic mutations, a few hundred).
#[test]
fn mutated_corpus_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "files/MR_small.dcm",
        "files/MR_small_RLE.dcm",
        "files/SC_rgb_small_odd_big_endian.dcm",
        "files/rtdose.dcm",
        "generated/enhanced_ct.dcm",
        "generated/MR_small_raw_implicit",
        "files/MR_small_jp2klossless.dcm",
        "files/SC_rgb_jpeg_dcmtk.dcm",
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let path = dir.path().join("mutant");
    for name in names {
        let original = std::fs::read(corpus().join(name)).unwrap();
        for _ in 0..20 {
            let mut bytes = original.clone();
            match next() % 3 {
                0 => {
                    for _ in 0..1 + next() % 8 {
                        let at = (next() as usize) % bytes.len();
                        bytes[at] ^= 1 << (next() % 8);
                    }
                }
                1 => {
                    let at = (next() as usize) % bytes.len();
                    bytes[at] = 0xff;
                    if at + 1 < bytes.len() {
                        bytes[at + 1] = 0xff;
                    }
                }
                _ => bytes.truncate((next() as usize) % bytes.len()),
            }
            std::fs::write(&path, &bytes).unwrap();
            let t = std::time::Instant::now();
            let r = read_dicom(&path, None);
            if t.elapsed().as_secs_f64() > 0.5 {
                eprintln!(
                    "SLOW {name} {:?} {:?}",
                    t.elapsed(),
                    r.err()
                        .map(|e| e.to_string().chars().take(200).collect::<String>())
                );
            }
        }
    }
}

/// A copy of a ct2_series slice moved to `z` (LPS, mm) with its own SOPInstanceUID.
fn moved_slice(from: &str, z: f64, to: &Path) {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let mut object = dicom_object::open_file(corpus().join("ct2_series").join(from)).unwrap();
    let position = [
        "-125.0".to_string(),
        "-128.100006".into(),
        format!("{z:.6}"),
    ];
    object.put(DataElement::new(
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        PrimitiveValue::Strs(position.into_iter().collect()),
    ));
    let uid = format!("1.2.826.0.1.3680043.8.498.{}", (z * 1000.0) as u64);
    object.put(DataElement::new(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(uid.as_str()),
    ));
    object.meta_mut().media_storage_sop_instance_uid = uid;
    object.write_to_file(to).unwrap();
}

#[test]
fn a_series_with_a_missing_slice_is_reported_uneven() {
    // ct2_series: 17136, 17166 and 17196 lie 1.25 mm apart (z 103.02, 104.27, 105.52); with a
    // fourth slice 1.25 mm further the series is even.
    let dir = tempfile::tempdir().unwrap();
    for name in ["17136", "17166", "17196"] {
        std::fs::copy(
            corpus().join("ct2_series").join(name),
            dir.path().join(name),
        )
        .unwrap();
    }
    moved_slice("17196", 106.769997, &dir.path().join("moved"));
    let even = read_dicom(dir.path(), None).unwrap();
    assert_eq!(even.volume.dims()[2], 4);
    assert_eq!(even.uneven_spacing, None);
    // One slice removed: a 2.5 mm step between slices 0 and 1 of the three left.
    std::fs::remove_file(dir.path().join("17166")).unwrap();
    let gap = read_dicom(dir.path(), None).unwrap();
    let uneven = gap.uneven_spacing.clone().expect("the gap is reported");
    assert_eq!(uneven.largest_after, 0);
    assert!((uneven.max_step - 2.5).abs() < 1e-4, "{uneven:?}");
    assert!((uneven.min_step - 1.25).abs() < 1e-4, "{uneven:?}");
    assert!((uneven.mean_step - 1.875).abs() < 1e-4, "{uneven:?}");
    assert!((gap.volume.spacing()[2] - 1.875).abs() < 1e-4);
    let text = uneven.to_string();
    assert!(
        text.contains("unevenly spaced") && text.contains("2.500"),
        "{text}"
    );
    // The corpus series itself has a 202.5 mm gap below its top three slices.
    let ct2 = read_dicom(&corpus().join("ct2_series"), None).unwrap();
    let uneven = ct2.uneven_spacing.expect("ct2_series is uneven");
    assert!((uneven.max_step - 202.5).abs() < 1e-3, "{uneven:?}");
    assert_eq!(uneven.largest_after, 0);
}
