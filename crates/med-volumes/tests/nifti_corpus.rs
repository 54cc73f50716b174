//! The NIfTI files in testdata/nifti (nibabel's test data: a NIfTI-2 file and a 4-D NIfTI-1
//! file), compared with what nibabel reads (testdata/nifti/reference.json).

use std::path::{Path, PathBuf};

use med_volumes::{
    Input, InputOptions, OutputKind, VolumeIndex, nifti_header_size, open_input, read_nifti,
    read_nifti_volumes, write_nifti,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/nifti")
}

fn reference() -> Vec<Value> {
    let text = std::fs::read_to_string(folder().join("reference.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["files"]
        .as_array()
        .unwrap()
        .clone()
}

fn sha256_f32(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn nifti1_and_nifti2_4d_files_match_nibabel_volume_by_volume() {
    for entry in reference() {
        let name = entry["file"].as_str().unwrap();
        let path = folder().join(name);
        let size = entry["sizeof_hdr"].as_i64().unwrap() as i32;
        assert_eq!(nifti_header_size(&path), Some(size), "{name}");
        let shape: Vec<usize> = entry["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let volumes = read_nifti_volumes(&path, Some(VolumeIndex::All)).unwrap();
        let expected = entry["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), expected.len(), "{name}");
        for (t, (volume, want)) in volumes.iter().zip(expected).enumerate() {
            assert_eq!(volume.dims().to_vec(), shape[..3].to_vec(), "{name}");
            assert_eq!(
                sha256_f32(volume.data()),
                want["sha256"].as_str().unwrap(),
                "{name} volume {t}"
            );
            let zooms = entry["zooms"].as_array().unwrap();
            for (got, z) in volume.spacing().iter().zip(zooms) {
                let z = z.as_f64().unwrap();
                assert!((got - z).abs() < 1e-5, "{name}: {:?}", volume.spacing());
            }
            let affine = entry["affine"].as_array().unwrap();
            for (row, want_row) in volume.affine().iter().zip(affine) {
                for (got, want) in row.iter().zip(want_row.as_array().unwrap()) {
                    let want = want.as_f64().unwrap();
                    assert!((got - want).abs() < 1e-4, "{name}: affine {got} vs {want}");
                }
            }
        }
        let one = read_nifti_volumes(&path, Some(VolumeIndex::One(1))).unwrap();
        assert_eq!(one[0].data(), volumes[1].data());
    }
}

#[test]
fn a_4d_file_without_an_index_is_refused_naming_the_option() {
    for name in ["example_nifti2.nii.gz", "example4d.nii.gz"] {
        let err = read_nifti(&folder().join(name)).unwrap_err().to_string();
        assert!(
            err.contains(name) && err.contains("--volume-index"),
            "{err}"
        );
        let input = open_input(&folder().join(name), &InputOptions::default());
        assert!(input.is_err());
    }
}

#[test]
fn nifti2_volumes_round_trip_through_nifti1_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = folder().join("example_nifti2.nii.gz");
    let options = InputOptions {
        volume_index: Some(VolumeIndex::One(0)),
        ..InputOptions::default()
    };
    let Input::Nifti(volumes) = open_input(&path, &options).unwrap() else {
        panic!("not read as NIfTI");
    };
    let out = dir.path().join("t0.nii.gz");
    write_nifti(&out, &volumes[0], OutputKind::Float).unwrap();
    let back = read_nifti(&out).unwrap();
    assert_eq!(back.dims(), volumes[0].dims());
    assert_eq!(back.data(), volumes[0].data());
    for (a, b) in back
        .affine()
        .iter()
        .flatten()
        .zip(volumes[0].affine().iter().flatten())
    {
        assert!((a - b).abs() < 1e-4);
    }
    // A NIfTI file without its extension is still read by content.
    let bare = dir.path().join("volume_without_extension");
    std::fs::copy(&out, &bare).unwrap();
    assert!(matches!(
        open_input(&bare, &InputOptions::default()).unwrap(),
        Input::Nifti(_)
    ));
}

#[test]
fn a_truncated_nifti2_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(folder().join("example_nifti2.nii.gz")).unwrap();
    let mut raw = Vec::new();
    use std::io::Read;
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut raw)
        .unwrap();
    let cut = dir.path().join("cut.nii");
    std::fs::write(&cut, &raw[..raw.len() / 2]).unwrap();
    let err = read_nifti_volumes(&cut, Some(VolumeIndex::All))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cut.nii") && err.contains("truncated"),
        "{err}"
    );
}
