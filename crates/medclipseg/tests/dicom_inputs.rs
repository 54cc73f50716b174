//! Real DICOM and NIfTI files (testdata/dicom, testdata/nifti: from the pydicom and nibabel
//! wheels) through `predict`: 2-D files give PNG outputs at their size as a PNG input does
//! (colour as colour), multi-frame files, series folders and 4-D NIfTI give NIfTI outputs on
//! their grid.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use med_volumes::{InputOptions, VolumeIndex};

mod common;
use common::{json, medclipseg, ok, predict_args};
use medclipseg_pipeline::testing::micro_checkpoint_in;

const PROMPT: &str = "one bright round lesion in the center";

fn testdata(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(path)
}

fn png_size(path: &Path) -> (u32, u32) {
    let image = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (image.width(), image.height())
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn two_d_dicom_files_give_pngs_at_their_size_and_colour_goes_in_as_a_png_would() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint_in::<Flex>(dir.path(), &[PROMPT]).unwrap();
    // Grey CT without an extension, no window in the file: percentiles.
    let ct = dir.path().join("ct_small");
    std::fs::copy(testdata("dicom/files/CT_small.dcm"), &ct).unwrap();
    let out = dir.path().join("ct");
    ok(&predict_args(&checkpoint, &ct, &out, PROMPT, &[]));
    assert_eq!(png_size(&out.join("masks/ct_small.png")), (128, 128));
    let records = json(&out.join("predictions.json"));
    let intensity = records[0]["intensity"].as_str().unwrap();
    assert!(intensity.contains("percentile default"), "{intensity}");
    // MR with WindowCenter/Width: the file's window, unless --window is given.
    let mr = testdata("dicom/files/MR_small.dcm");
    let out = dir.path().join("mr");
    ok(&predict_args(&checkpoint, &mr, &out, PROMPT, &[]));
    let intensity = json(&out.join("predictions.json"))[0]["intensity"].to_string();
    assert!(
        intensity.contains("WindowCenter") && intensity.contains("600"),
        "{intensity}"
    );
    let out = dir.path().join("mr_window");
    ok(&predict_args(
        &checkpoint,
        &mr,
        &out,
        PROMPT,
        &["--window", "500,1000"],
    ));
    let intensity = json(&out.join("predictions.json"))[0]["intensity"].to_string();
    assert!(
        intensity.contains("given") && intensity.contains("500"),
        "{intensity}"
    );
    // MONOCHROME1 is inverted and the log says so.
    let out = dir.path().join("cr");
    let run = ok(&predict_args(
        &checkpoint,
        &testdata("dicom/files/CR_6154"),
        &out,
        PROMPT,
        &[],
    ));
    assert!(stderr(&run).contains("MONOCHROME1"), "{}", stderr(&run));
    assert_eq!(png_size(&out.join("masks/CR_6154.png")), (16, 16));
    // Colour: the DICOM and a PNG of its decoded pixels give the same outputs.
    let colour = testdata("dicom/files/SC_rgb_rle.dcm");
    let decoded = med_volumes::read_dicom(&colour, None).unwrap();
    let png = dir.path().join("png/SC_rgb_rle.png");
    std::fs::create_dir_all(png.parent().unwrap()).unwrap();
    image::RgbImage::from_raw(100, 100, decoded.rgb.clone().unwrap())
        .unwrap()
        .save(&png)
        .unwrap();
    let (from_dicom, from_png) = (dir.path().join("rgb_dicom"), dir.path().join("rgb_png"));
    ok(&predict_args(
        &checkpoint,
        &colour,
        &from_dicom,
        PROMPT,
        &[],
    ));
    ok(&predict_args(&checkpoint, &png, &from_png, PROMPT, &[]));
    for kind in ["masks", "uncertainty", "overlays"] {
        let a = std::fs::read(from_dicom.join(kind).join("SC_rgb_rle.png")).unwrap();
        let b = std::fs::read(from_png.join(kind).join("SC_rgb_rle.png")).unwrap();
        assert!(a == b, "{kind} differ between the DICOM and its PNG");
    }
    let a = std::fs::read(from_dicom.join("raw/SC_rgb_rle.safetensors")).unwrap();
    let b = std::fs::read(from_png.join("raw/SC_rgb_rle.safetensors")).unwrap();
    assert!(a == b, "raw maps differ between the DICOM and its PNG");
    // --window on a folder of PNGs is still refused.
    let refused = medclipseg(&predict_args(
        &checkpoint,
        png.parent().unwrap(),
        &dir.path().join("no"),
        PROMPT,
        &["--window", "40,400"],
    ));
    assert!(!refused.status.success());
}

/// Outputs of a volume input: the mask and entropy on the input's grid.
fn assert_volume_outputs(out: &Path, name: &str, input: &med_volumes::Volume) {
    for file in [format!("{name}.nii.gz"), format!("{name}_entropy.nii.gz")] {
        let v = med_volumes::read_nifti(&out.join(&file)).unwrap();
        assert_eq!(v.dims(), input.dims(), "{file}");
        for (a, b) in v
            .affine()
            .iter()
            .flatten()
            .zip(input.affine().iter().flatten())
        {
            assert!(
                (a - b).abs() < 1e-3,
                "{file}: {:?} vs {:?}",
                v.affine(),
                input.affine()
            );
        }
    }
}

#[test]
fn multi_frame_series_and_4d_inputs_give_nifti_on_their_grid() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint_in::<Flex>(dir.path(), &[PROMPT]).unwrap();
    // Enhanced CT (functional groups), classic multi-frame grey, colour cine, a series folder.
    for (input, name) in [
        ("dicom/generated/enhanced_ct.dcm", "enhanced_ct"),
        ("dicom/files/rtdose.dcm", "rtdose"),
        ("dicom/files/SC_rgb_rle_2frame.dcm", "SC_rgb_rle_2frame"),
        ("dicom/ct2_series", "ct2_series"),
    ] {
        let path = testdata(input);
        let read = med_volumes::read_dicom(&path, None).unwrap();
        let out = dir.path().join(name);
        ok(&predict_args(&checkpoint, &path, &out, PROMPT, &[]));
        assert_volume_outputs(&out, name, &read.volume);
        let record = json(&out.join("volume.json"));
        assert!(record["intensity_source"].is_string(), "{record}");
    }
    // The enhanced file's window is in its functional groups.
    let record = json(&dir.path().join("enhanced_ct/volume.json"));
    assert!(
        record["intensity_source"]
            .as_str()
            .unwrap()
            .contains("WindowCenter"),
        "{record}"
    );
    let record = json(&dir.path().join("SC_rgb_rle_2frame/volume.json"));
    assert!(
        record["intensity_source"]
            .as_str()
            .unwrap()
            .contains("colour"),
        "{record}"
    );

    // Several series in one folder: refused naming them, read with --series.
    let mixed = dir.path().join("mixed");
    std::fs::create_dir(&mixed).unwrap();
    for f in ["17106", "17136", "17166", "17196"] {
        std::fs::copy(testdata("dicom/ct2_series").join(f), mixed.join(f)).unwrap();
    }
    std::fs::copy(testdata("dicom/files/CR_6154"), mixed.join("6154")).unwrap();
    let refused = medclipseg(&predict_args(
        &checkpoint,
        &mixed,
        &dir.path().join("x"),
        PROMPT,
        &[],
    ));
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--series"),
        "{}",
        stderr(&refused)
    );
    let ct = med_volumes::read_dicom(&testdata("dicom/ct2_series"), None).unwrap();
    let out = dir.path().join("mixed_out");
    ok(&predict_args(
        &checkpoint,
        &mixed,
        &out,
        PROMPT,
        &["--series", &ct.series_uid],
    ));
    assert_volume_outputs(&out, "mixed", &ct.volume);

    // 4-D NIfTI-2: refused without --volume-index, one output per volume with `all`.
    let nifti2 = testdata("nifti/example_nifti2.nii.gz");
    let refused = medclipseg(&predict_args(
        &checkpoint,
        &nifti2,
        &dir.path().join("y"),
        PROMPT,
        &[],
    ));
    assert!(
        stderr(&refused).contains("--volume-index"),
        "{}",
        stderr(&refused)
    );
    let out = dir.path().join("nifti2");
    ok(&predict_args(
        &checkpoint,
        &nifti2,
        &out,
        PROMPT,
        &["--volume-index", "all"],
    ));
    let volumes = med_volumes::read_nifti_volumes(&nifti2, Some(VolumeIndex::All)).unwrap();
    for (t, volume) in volumes.iter().enumerate() {
        assert_volume_outputs(&out, &format!("example_nifti2_t{t:03}"), volume);
    }
    let input = med_volumes::open_input(&nifti2, &InputOptions::default());
    assert!(input.is_err());
}

#[test]
fn convert_writes_what_predict_reads_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    // The enhanced CT: HU values on its grid.
    let enhanced = testdata("dicom/generated/enhanced_ct.dcm");
    let out = dir.path().join("enhanced.nii.gz");
    ok(&[
        "convert",
        "--input",
        common::s(&enhanced),
        "--out",
        common::s(&out),
    ]);
    let dicom = med_volumes::read_dicom(&enhanced, None).unwrap();
    let nifti = med_volumes::read_nifti(&out).unwrap();
    assert_eq!(nifti.data(), dicom.volume.data());
    for (a, b) in nifti
        .affine()
        .iter()
        .flatten()
        .zip(dicom.volume.affine().iter().flatten())
    {
        assert!((a - b).abs() < 1e-4);
    }
    // NIfTI in, NIfTI out: the same voxels and affine.
    let again = dir.path().join("again.nii");
    ok(&[
        "convert",
        "--input",
        common::s(&out),
        "--out",
        common::s(&again),
    ]);
    assert_eq!(
        med_volumes::read_nifti(&again).unwrap().data(),
        nifti.data()
    );
    // 4-D: one file per volume with `all`, the refusal without an index.
    let four_d = testdata("nifti/example4d.nii.gz");
    let refused = medclipseg(&[
        "convert",
        "--input",
        common::s(&four_d),
        "--out",
        common::s(&again),
    ]);
    assert!(
        stderr(&refused).contains("--volume-index"),
        "{}",
        stderr(&refused)
    );
    let series = dir.path().join("fmri.nii.gz");
    ok(&[
        "convert",
        "--input",
        common::s(&four_d),
        "--out",
        common::s(&series),
        "--volume-index",
        "all",
    ]);
    let volumes = med_volumes::read_nifti_volumes(&four_d, Some(VolumeIndex::All)).unwrap();
    for (t, v) in volumes.iter().enumerate() {
        let back =
            med_volumes::read_nifti(&dir.path().join(format!("fmri_t{t:03}.nii.gz"))).unwrap();
        assert_eq!(back.data(), v.data());
    }
    // Colour is refused, naming the file.
    let colour = testdata("dicom/files/SC_rgb_rle.dcm");
    let refused = medclipseg(&[
        "convert",
        "--input",
        common::s(&colour),
        "--out",
        common::s(&again),
    ]);
    assert!(
        stderr(&refused).contains("SC_rgb_rle.dcm"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn convert_names_a_corrupt_input_and_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.nii.gz");
    let garbage_nifti = dir.path().join("broken.nii.gz");
    std::fs::write(&garbage_nifti, b"\x1f\x8b\x08\x00not a volume").unwrap();
    let short_header = dir.path().join("short.nii");
    std::fs::write(&short_header, [0u8; 100]).unwrap();
    let fake_dicom = dir.path().join("fake.dcm");
    std::fs::write(&fake_dicom, b"plain text, no DICOM preamble").unwrap();
    // A DICOM file cut in the middle of its pixel data, and one cut inside its header.
    let truncated = testdata("dicom/files/MR_truncated.dcm");
    let bytes = std::fs::read(testdata("dicom/files/CT_small.dcm")).unwrap();
    let cut = dir.path().join("cut_header.dcm");
    std::fs::write(&cut, &bytes[..300]).unwrap();
    for input in [&garbage_nifti, &short_header, &fake_dicom, &truncated, &cut] {
        let refused = medclipseg(&[
            "convert",
            "--input",
            common::s(input),
            "--out",
            common::s(&out),
        ]);
        let text = stderr(&refused);
        let name = input.file_name().unwrap().to_str().unwrap();
        assert_eq!(refused.status.code(), Some(1), "{name}: {text}");
        assert!(text.contains(name), "{name}: {text}");
        assert!(!text.contains("panicked"), "{name}: {text}");
        assert!(!out.exists(), "{name}: nothing is written");
    }
}

/// A Python with pydicom: `MEDCLIPSEG_PYTHON`, else `python3`; `None` (the test says why it
/// skips) when neither imports pydicom.
fn python_with_pydicom() -> Option<String> {
    let python = std::env::var("MEDCLIPSEG_PYTHON").unwrap_or_else(|_| "python3".into());
    let found = std::process::Command::new(&python)
        .args(["-c", "import pydicom, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    found.then_some(python)
}

/// Reads a SEG back with pydicom and checks each frame against the source file it references
/// (same SOPInstanceUID, same ImagePositionPatient) and against the NIfTI mask of the same run.
const CHECK_SEG: &str = r#"
import sys, glob, os, json
import numpy as np, pydicom
seg_path, source_dir, expected_path = sys.argv[1:4]
seg = pydicom.dcmread(seg_path)
assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4", seg.SOPClassUID
assert seg.SegmentationType == "BINARY"
sources = {}
for f in glob.glob(os.path.join(source_dir, "*")):
    ds = pydicom.dcmread(f)
    sources[ds.SOPInstanceUID] = ds
first = next(iter(sources.values()))
assert seg.FrameOfReferenceUID == first.FrameOfReferenceUID
assert seg.StudyInstanceUID == first.StudyInstanceUID
expected = np.array(json.load(open(expected_path)), dtype=np.uint8)
frames = seg.pixel_array.reshape(expected.shape)
assert int(seg.NumberOfFrames) == expected.shape[0]
for k, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
    ref = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
    src = sources[ref]
    pos = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
    want = [float(v) for v in src.ImagePositionPatient]
    assert max(abs(a - b) for a, b in zip(pos, want)) < 1e-3, (k, pos, want)
    assert (frames[k] == expected[k]).all(), k
print("ok", len(seg.PerFrameFunctionalGroupsSequence), int(frames.sum()))
"#;

#[test]
fn dicom_seg_output_lands_on_the_source_slices_as_pydicom_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint_in::<Flex>(dir.path(), &[PROMPT]).unwrap();
    let series = testdata("dicom/ct2_series");
    let out = dir.path().join("seg");
    ok(&predict_args(
        &checkpoint,
        &series,
        &out,
        PROMPT,
        &["--output-format", "dicom-seg"],
    ));
    let seg = out.join("ct2_series.seg.dcm");
    assert!(seg.is_file());
    assert!(!out.join("ct2_series.nii.gz").exists());
    // The same run as NIfTI gives the expected frames (k, rows, cols).
    let nifti_out = dir.path().join("nifti");
    ok(&predict_args(&checkpoint, &series, &nifti_out, PROMPT, &[]));
    let mask = med_volumes::read_nifti(&nifti_out.join("ct2_series.nii.gz")).unwrap();
    let [nx, ny, nz] = mask.dims();
    let frames: Vec<Vec<Vec<u8>>> = (0..nz)
        .map(|k| {
            (0..ny)
                .map(|j| (0..nx).map(|i| mask.get(i, j, k) as u8).collect())
                .collect()
        })
        .collect();
    let expected = dir.path().join("expected.json");
    std::fs::write(&expected, serde_json::to_string(&frames).unwrap()).unwrap();
    // A PNG is no DICOM: refused.
    let png = dir.path().join("x.png");
    image::GrayImage::new(8, 8).save(&png).unwrap();
    let refused = medclipseg(&predict_args(
        &checkpoint,
        &png,
        &dir.path().join("n"),
        PROMPT,
        &["--output-format", "dicom-seg"],
    ));
    assert!(
        stderr(&refused).contains("dicom-seg"),
        "{}",
        stderr(&refused)
    );
    let Some(python) = python_with_pydicom() else {
        eprintln!(
            "SKIPPED the pydicom read-back: no Python with pydicom and numpy (set MEDCLIPSEG_PYTHON \
             to one; .ci/run makes a venv); the SEG was written and the rest checked"
        );
        return;
    };
    let check = std::process::Command::new(python)
        .args([
            "-c",
            CHECK_SEG,
            common::s(&seg),
            common::s(&series),
            common::s(&expected),
        ])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "pydicom rejected the SEG:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn metrics_read_dicom_and_nifti_by_content() {
    let dir = tempfile::tempdir().unwrap();
    // A DICOM series converted to NIfTI and stored without an extension, against the series'
    // enhanced twin: every non-zero voxel agrees, so the DSC is 1.
    let nifti = dir.path().join("ct2.nii.gz");
    let series = testdata("dicom/ct2_series");
    ok(&[
        "convert",
        "--input",
        common::s(&series),
        "--out",
        common::s(&nifti),
    ]);
    let bare = dir.path().join("ct2_volume");
    std::fs::copy(&nifti, &bare).unwrap();
    let enhanced = testdata("dicom/generated/enhanced_ct.dcm");
    let out = ok(&[
        "metrics",
        "--pred",
        common::s(&bare),
        "--gt",
        common::s(&enhanced),
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // 1 up to the metric's smoothing term.
    let dsc = report["dsc"].as_f64().unwrap();
    assert!((dsc - 1.0).abs() < 1e-9, "{report}");
    assert_eq!(report["hd95"].as_f64(), Some(0.0), "{report}");
}

/// `eval --volumes` on DICOM: a series folder (files without extension) and an enhanced
/// multi-frame file, each scored against a NIfTI label of the same name on its grid.
#[test]
fn eval_scores_dicom_series_and_multi_frame_files_against_nifti_labels() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint_in::<Flex>(dir.path(), &[PROMPT]).unwrap();
    let (volumes, labels, out) = (
        dir.path().join("volumes"),
        dir.path().join("labels"),
        dir.path().join("eval"),
    );
    std::fs::create_dir_all(volumes.join("ct2")).unwrap();
    std::fs::create_dir_all(&labels).unwrap();
    for entry in std::fs::read_dir(testdata("dicom/ct2_series")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), volumes.join("ct2").join(entry.file_name())).unwrap();
    }
    std::fs::copy(
        testdata("dicom/generated/enhanced_ct.dcm"),
        volumes.join("enhanced_ct.dcm"),
    )
    .unwrap();
    // Labels: the voxels above 0 HU, on each volume's grid as the reader gives it.
    for (name, input) in [
        ("ct2", volumes.join("ct2")),
        ("enhanced_ct", volumes.join("enhanced_ct.dcm")),
    ] {
        let volume = med_volumes::read_volume(&input).unwrap();
        let label = volume
            .same_grid(volume.data().iter().map(|&v| f32::from(v > 0.0)).collect())
            .unwrap();
        let path = labels.join(format!("{name}.nii.gz"));
        med_volumes::write_nifti(&path, &label, med_volumes::OutputKind::Labels).unwrap();
    }
    let run = ok(&[
        "eval",
        "--checkpoint",
        common::s(&checkpoint),
        "--volumes",
        common::s(&volumes),
        "--labels",
        common::s(&labels),
        "--prompt",
        PROMPT,
        "--samples",
        "2",
        "--out",
        common::s(&out),
    ]);
    // ct2_series has a 202.5 mm gap below its top three slices: predict's reader says so.
    assert!(stderr(&run).contains("unevenly spaced"), "{}", stderr(&run));
    let csv = std::fs::read_to_string(out.join("volumes.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(names, ["ct2", "enhanced_ct"], "{csv}");
    for row in &rows {
        let name = row[0];
        let mask = out
            .join("volumes")
            .join(name)
            .join(format!("{name}.nii.gz"));
        let label_path = labels.join(format!("{name}.nii.gz"));
        let (written, label) = (
            med_volumes::read_nifti(&mask).unwrap(),
            med_volumes::read_nifti(&label_path).unwrap(),
        );
        assert_eq!(written.dims(), [16, 16, 4]);
        assert_eq!(written.dims(), label.dims());
        for (a, b) in written
            .affine()
            .iter()
            .flatten()
            .zip(label.affine().iter().flatten())
        {
            assert!((a - b).abs() < 1e-4, "{name}: mask and label grids differ");
        }
        // The row is what `metrics` gives for the written mask and the label.
        let report = ok(&[
            "metrics",
            "--pred",
            common::s(&mask),
            "--gt",
            common::s(&label_path),
            "--protocol",
            "deepmind",
            "--json",
        ]);
        let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
        let dsc: f64 = row[1].parse().unwrap();
        assert!(
            (dsc - report["dsc"].as_f64().unwrap()).abs() < 1e-9,
            "{name}: {dsc} vs {report}"
        );
    }
    let summary = json(&out.join("volumes_summary.json"));
    assert_eq!(summary["volumes"], 2);
    assert!(summary["skipped"].as_array().unwrap().is_empty());
}

/// JPEG-LS (the app's `jpeg-ls` feature; .ci/run): lossless grey and near-lossless colour files
/// give outputs at their size like any other DICOM file.
#[cfg(feature = "jpeg-ls")]
#[test]
fn jpeg_ls_files_are_predicted_at_their_size() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint_in::<Flex>(dir.path(), &[PROMPT]).unwrap();
    for (name, size) in [
        ("MR_small_jpeg_ls_lossless", (64, 64)),
        ("SC_rgb_jls_lossy_line", (100, 100)),
    ] {
        let out = dir.path().join(name);
        let input = testdata(&format!("dicom/files/{name}.dcm"));
        ok(&predict_args(&checkpoint, &input, &out, PROMPT, &[]));
        assert_eq!(png_size(&out.join(format!("masks/{name}.png"))), size);
    }
}

/// Without the `jpeg-ls` feature (the default build) a JPEG-LS file is an error that names the
/// file and the feature, and nothing is written for it.
#[cfg(not(feature = "jpeg-ls"))]
#[test]
fn jpeg_ls_without_the_feature_is_an_error_naming_the_file_and_the_feature() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint_in::<Flex>(dir.path(), &[PROMPT]).unwrap();
    let out = dir.path().join("out");
    let input = testdata("dicom/files/MR_small_jpeg_ls_lossless.dcm");
    let run = common::medclipseg(&predict_args(&checkpoint, &input, &out, PROMPT, &[]));
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("MR_small_jpeg_ls_lossless"), "{stderr}");
    assert!(stderr.contains("--features jpeg-ls"), "{stderr}");
    assert!(!out.join("masks/MR_small_jpeg_ls_lossless.png").exists());
}
