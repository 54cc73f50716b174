//! End-to-end tests over the fixtures made by `fixtures/make_fixtures.py` (genuine
//! torch.save layouts written with the stdlib only), plus crafted hostile files.

use std::io::Write;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;
use crate::pickle::PickleError;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn f32s(sd: &StateDict, name: &str) -> (Vec<usize>, Vec<f32>) {
    sd.tensor_f32(name).unwrap()
}

/// The values `make_state_dict()` in make_fixtures.py stores, checked exactly.
fn assert_fixture_state_dict(sd: &StateDict) {
    let keys: Vec<&str> = sd.keys().collect();
    assert_eq!(
        keys,
        [
            "linear.weight",
            "linear.weight_t",
            "linear.bias",
            "half",
            "bf16",
            "bn.num_batches_tracked",
            "ids",
            "logit_scale",
            "mask",
            "param",
        ]
    );
    assert_eq!(
        f32s(sd, "linear.weight"),
        (vec![2, 3], vec![-1.0, -0.5, 0.0, 0.5, 1.0, 1.5])
    );
    // The transposed view (stride (1, 3)) is gathered into row-major order.
    assert_eq!(
        f32s(sd, "linear.weight_t"),
        (vec![3, 2], vec![-1.0, 0.5, -0.5, 1.0, 0.0, 1.5])
    );
    // A view at storage offset 6 of the same storage.
    assert_eq!(f32s(sd, "linear.bias"), (vec![2], vec![2.0, 2.5]));

    let half = sd.get("half").unwrap();
    assert_eq!(half.dtype(), DType::F16);
    assert_eq!(
        half.to_f32_vec(),
        [1.0, -0.5, 65504.0, 2f32.powi(-14), 2f32.powi(-24)]
    );
    let bf16 = sd.get("bf16").unwrap();
    assert_eq!((bf16.dtype(), bf16.shape()), (DType::BF16, &[2, 2][..]));
    let truncated_3e38 = f32::from_bits(3.0e38f32.to_bits() & 0xffff_0000);
    assert_eq!(bf16.to_f32_vec(), [1.0, -2.0, 0.15625, truncated_3e38]);

    assert_eq!(
        sd.tensor_i64("bn.num_batches_tracked").unwrap(),
        (vec![], vec![7])
    );
    assert_eq!(
        sd.tensor_i64("ids").unwrap(),
        (vec![3], vec![-3, 0, 1 << 40])
    );
    assert_eq!(f32s(sd, "logit_scale"), (vec![], vec![4.60517]));
    let mask = sd.get("mask").unwrap();
    assert_eq!(
        (mask.dtype(), mask.bytes()),
        (DType::Bool, &[1u8, 0, 1][..])
    );
    assert_eq!(f32s(sd, "param"), (vec![2], vec![0.25, -0.75]));
    assert!(
        sd.notes()
            .iter()
            .any(|n| n.contains("version`") && n.contains("int")),
        "{:?}",
        sd.notes()
    );
}

#[test]
fn zip_protocol2_state_dict() {
    let sd = load(fixture("state_dict.pt")).unwrap();
    assert_fixture_state_dict(&sd);
    assert_eq!(sd.source(), fixture("state_dict.pt"));
}

#[test]
fn zip_from_bytes_matches_zip_from_file() {
    let from_bytes = load_from_bytes(&fixture_bytes("state_dict.pt"), "mem.pt").unwrap();
    assert_fixture_state_dict(&from_bytes);
    assert_eq!(from_bytes.source(), Path::new("mem.pt"));
}

#[test]
fn zip_protocol4_with_other_prefix() {
    assert_fixture_state_dict(&load(fixture("state_dict_p4.pt")).unwrap());
}

#[test]
fn zip_big_endian_storages() {
    assert_fixture_state_dict(&load(fixture("state_dict_be.pt")).unwrap());
}

#[test]
fn legacy_format() {
    assert_eq!(
        detect_format(&fixture_bytes("legacy.pt")),
        Some(Format::TorchLegacy)
    );
    assert_fixture_state_dict(&load(fixture("legacy.pt")).unwrap());
}

#[test]
fn format_is_detected_from_content_not_extension() {
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("weights.safetensors");
    std::fs::copy(fixture("state_dict.pt"), &renamed).unwrap();
    assert_fixture_state_dict(&load(&renamed).unwrap());
}

#[test]
fn medclipseg_style_wrapper_and_module_prefix() {
    let sd = load(fixture("wrapped.pth")).unwrap();
    assert_fixture_state_dict(&sd);
    let notes = sd.notes().join("\n");
    assert!(notes.contains("`model`"), "{notes}");
    assert!(notes.contains("module."), "{notes}");

    let explicit = load_with_wrapper(fixture("wrapped.pth"), &Wrapper::Key("model".into()));
    assert_fixture_state_dict(&explicit.unwrap());
}

#[test]
fn wrong_wrapper_choices_are_clear_errors() {
    let err = load_with_wrapper(fixture("wrapped.pth"), &Wrapper::None).unwrap_err();
    assert!(matches!(err, Error::NotACheckpoint { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("wrapped.pth") && msg.contains("`model` (dict)"),
        "{msg}"
    );

    let err = load_with_wrapper(fixture("wrapped.pth"), &Wrapper::Key("ema".into())).unwrap_err();
    assert!(
        matches!(&err, Error::WrapperKeyMissing { key, .. } if key == "ema"),
        "{err}"
    );
    // The optimizer entry is a dict, but holds no tensors directly.
    let err =
        load_with_wrapper(fixture("wrapped.pth"), &Wrapper::Key("optimizer".into())).unwrap_err();
    assert!(matches!(err, Error::NotACheckpoint { .. }), "{err}");
}

#[test]
fn whole_wrapped_pickle_is_plain_data() {
    let file = std::fs::File::open(fixture("wrapped.pth")).unwrap();
    let mut zip = zip::ZipArchive::new(file).unwrap();
    let mut pkl = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name("archive/data.pkl").unwrap(), &mut pkl).unwrap();
    let root = pickle::parse(&pkl).unwrap();
    assert_eq!(root.get("epoch"), Some(&pickle::Value::Int(3)));
    // numpy.float32 via numpy.core.multiarray.scalar + _codecs.encode bytes.
    assert_eq!(root.get("best_dice"), Some(&pickle::Value::Float(0.8125)));
    let lr = root
        .get("optimizer")
        .and_then(|o| o.get("param_groups"))
        .and_then(|g| match g {
            pickle::Value::List(groups) => groups.first()?.get("lr"),
            _ => None,
        });
    assert_eq!(lr, Some(&pickle::Value::Float(0.0003)));
}

#[test]
fn os_system_pickle_is_refused_and_nothing_runs() {
    let marker = Path::new("/tmp/torch_checkpoint_fixture_pwned");
    let _ = std::fs::remove_file(marker);
    let err = load(fixture("malicious_os_system.pt")).unwrap_err();
    assert_eq!(err.unsupported_global(), Some(("os", "system")));
    let msg = err.to_string();
    assert!(
        msg.contains("malicious_os_system.pt") && msg.contains("os.system"),
        "{msg}"
    );
    assert!(!marker.exists(), "the pickle's command ran");
}

#[test]
fn forbidden_global_outside_the_state_dict_is_still_refused() {
    let err = load(fixture("malicious_nested.pth")).unwrap_err();
    assert_eq!(err.unsupported_global(), Some(("__builtin__", "eval")));
    assert!(!Path::new("/tmp/torch_checkpoint_fixture_pwned").exists());
}

#[test]
fn truncated_zip_is_reported_as_truncated() {
    let err = load(fixture("truncated.pt")).unwrap_err();
    assert!(matches!(err, Error::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("truncated.pt"));
}

#[test]
fn garbage_and_non_checkpoints_are_unknown_formats() {
    let err = load(fixture("garbage.bin")).unwrap_err();
    assert!(matches!(err, Error::UnknownFormat { .. }), "{err}");
    assert!(err.to_string().contains("garbage.bin"));
    let err = load_from_bytes(b"", "empty.pt").unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    let err = load_from_bytes(b"\x80\x02N.", "plain.pkl").unwrap_err();
    assert!(err.to_string().contains("pickle"), "{err}");
    let mut tar = vec![0u8; 1024];
    tar[257..262].copy_from_slice(b"ustar");
    assert!(matches!(
        load_from_bytes(&tar, "old.tar"),
        Err(Error::LegacyTar { .. })
    ));
}

#[test]
fn missing_file_names_the_path() {
    let err = load("/nonexistent/dir/model.pth").unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert_eq!(err.path(), Path::new("/nonexistent/dir/model.pth"));
}

// ------------------------------------------------------------------ crafted torch zips

/// One tensor entry for [`torch_zip`].
struct Entry<'a> {
    name: &'a str,
    storage_type: &'a str,
    key: &'a str,
    numel: i64,
    offset: i64,
    shape: &'a [i64],
    stride: &'a [i64],
}

fn int(v: i64) -> Vec<u8> {
    let mut out = vec![0x8a, 8];
    out.extend(v.to_le_bytes());
    out
}

fn text(s: &str) -> Vec<u8> {
    let mut out = vec![b'X'];
    out.extend((s.len() as u32).to_le_bytes());
    out.extend(s.as_bytes());
    out
}

/// A protocol-2 `OrderedDict` of `_rebuild_tensor_v2` calls, as torch writes it.
fn torch_pickle(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut p = b"\x80\x02ccollections\nOrderedDict\n)R".to_vec();
    for e in entries {
        p.extend(text(e.name));
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        p.extend(text("storage"));
        p.extend(format!("ctorch\n{}\n", e.storage_type).as_bytes());
        p.extend(text(e.key));
        p.extend(text("cpu"));
        p.extend(int(e.numel));
        p.extend(b"tQ");
        p.extend(int(e.offset));
        p.push(b'(');
        e.shape.iter().for_each(|&d| p.extend(int(d)));
        p.extend(b"t(");
        e.stride.iter().for_each(|&s| p.extend(int(s)));
        p.extend(b"t\x89ccollections\nOrderedDict\n)RtRs");
    }
    p.push(b'.');
    p
}

fn torch_zip(pickle: &[u8], storages: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", options).unwrap();
    zip.write_all(pickle).unwrap();
    for (key, data) in storages {
        zip.start_file(format!("archive/data/{key}"), options)
            .unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn one_tensor(shape: &[i64], stride: &[i64], numel: i64, storage_bytes: usize) -> Vec<u8> {
    let pickle = torch_pickle(&[Entry {
        name: "w",
        storage_type: "FloatStorage",
        key: "0",
        numel,
        offset: 0,
        shape,
        stride,
    }]);
    torch_zip(&pickle, &[("0", &vec![0u8; storage_bytes])])
}

#[test]
fn crafted_zip_round_trips() {
    let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let pickle = torch_pickle(&[Entry {
        name: "w",
        storage_type: "FloatStorage",
        key: "0",
        numel: 4,
        offset: 1,
        shape: &[3],
        stride: &[1],
    }]);
    let sd = load_from_bytes(&torch_zip(&pickle, &[("0", &data)]), "crafted.pt").unwrap();
    assert_eq!(sd.tensor_f32("w").unwrap(), (vec![3], vec![2.0, 3.0, 4.0]));
}

#[test]
fn huge_claimed_tensor_errors_without_allocating() {
    // 10^12 elements of a 1-element storage, broadcast with zero strides.
    let bytes = one_tensor(&[1_000_000, 1_000_000], &[0, 0], 1, 4);
    let err = load_from_bytes(&bytes, "huge.pt").unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    // Shape products that overflow u64.
    let bytes = one_tensor(&[1 << 40, 1 << 40], &[1, 1], 1, 4);
    assert!(matches!(
        load_from_bytes(&bytes, "overflow.pt"),
        Err(Error::TooLarge { .. })
    ));
    // A storage that claims far more elements than the entry holds is read as it is.
    let bytes = one_tensor(&[2], &[1], i64::MAX, 8);
    assert_eq!(
        load_from_bytes(&bytes, "claims.pt")
            .unwrap()
            .tensor_f32("w")
            .unwrap(),
        (vec![2], vec![0.0, 0.0])
    );
}

#[test]
fn view_past_the_storage_end_is_refused() {
    let bytes = one_tensor(&[2, 3], &[3, 1], 5, 20);
    let err = load_from_bytes(&bytes, "short.pt").unwrap_err();
    assert!(
        matches!(
            &err,
            Error::StorageTooSmall { tensor, needed: 6, available: 5, .. } if tensor == "w"
        ),
        "{err}"
    );
    // The pickle declares 6 elements but the entry holds 5.
    let bytes = one_tensor(&[2, 3], &[3, 1], 6, 20);
    assert!(matches!(
        load_from_bytes(&bytes, "short.pt"),
        Err(Error::StorageTooSmall { .. })
    ));
}

#[test]
fn missing_storage_and_unsupported_dtype() {
    let pickle = torch_pickle(&[Entry {
        name: "w",
        storage_type: "FloatStorage",
        key: "9",
        numel: 1,
        offset: 0,
        shape: &[],
        stride: &[],
    }]);
    let err = load_from_bytes(&torch_zip(&pickle, &[]), "nostorage.pt").unwrap_err();
    assert!(
        matches!(&err, Error::StorageMissing { key, .. } if key == "9"),
        "{err}"
    );

    let pickle = torch_pickle(&[Entry {
        name: "c",
        storage_type: "ComplexFloatStorage",
        key: "0",
        numel: 1,
        offset: 0,
        shape: &[1],
        stride: &[1],
    }]);
    let err = load_from_bytes(&torch_zip(&pickle, &[("0", &[0; 8])]), "complex.pt").unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedDtype { tensor, dtype, .. }
            if tensor == "c" && dtype == "ComplexFloatStorage"),
        "{err}"
    );
}

#[test]
fn zip_without_data_pkl_and_torchscript() {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("archive/other.txt", options).unwrap();
    zip.write_all(b"x").unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    assert!(matches!(
        load_from_bytes(&bytes, "nodata.pt"),
        Err(Error::MissingDataPkl { .. })
    ));

    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for name in [
        "model/data.pkl",
        "model/constants.pkl",
        "model/code/__torch__.py",
    ] {
        zip.start_file(name, options).unwrap();
        zip.write_all(b"\x80\x02N.").unwrap();
    }
    let bytes = zip.finish().unwrap().into_inner();
    assert!(matches!(
        load_from_bytes(&bytes, "scripted.pt"),
        Err(Error::TorchScript { .. })
    ));
}

#[test]
fn unsupported_opcode_in_data_pkl_names_file_entry_and_offset() {
    let bytes = torch_zip(b"\x80\x02i__main__\nModel\n.", &[]);
    let err = load_from_bytes(&bytes, "inst.pt").unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Pickle { entry, source: PickleError::UnsupportedOpcode { name: "INST", offset: 2, .. }, .. }
                if entry == "archive/data.pkl"
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("inst.pt") && msg.contains("INST") && msg.contains("byte 2"),
        "{msg}"
    );
}

// ------------------------------------------------------------------ safetensors

fn sample_state_dict() -> StateDict {
    let mut sd = StateDict::new("sample");
    sd.insert(
        "w",
        RawTensor::from_f32(vec![2, 2], &[1.0, -2.0, 3.5, 0.0]).unwrap(),
    );
    sd.insert("scalar", RawTensor::from_f32(vec![], &[4.60517]).unwrap());
    sd.insert(
        "ids",
        RawTensor::from_i64(vec![3], &[-1, 0, 1 << 40]).unwrap(),
    );
    let h = [1.0f32, -0.5]
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    sd.insert("h", RawTensor::new(vec![2], DType::F16, h).unwrap());
    sd.insert(
        "m",
        RawTensor::new(vec![3], DType::Bool, vec![1, 0, 1]).unwrap(),
    );
    sd.insert("empty", RawTensor::from_f32(vec![0, 4], &[]).unwrap());
    sd.metadata_mut()
        .insert("format".into(), "medclipseg-rs".into());
    sd
}

#[test]
fn safetensors_round_trip_is_exact_and_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let sd = sample_state_dict();
    save_safetensors(&path, &sd).unwrap();
    // Overwriting an existing file goes through the same temp-file-and-rename path.
    save_safetensors(&path, &sd).unwrap();
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "a temporary file was left behind");

    let back = load(&path).unwrap();
    assert_eq!(back.len(), sd.len());
    for (name, tensor) in sd.iter() {
        assert_eq!(back.get(name), Some(tensor), "{name}");
    }
    assert_eq!(back.metadata(), sd.metadata());
    assert_eq!(
        detect_format(&std::fs::read(&path).unwrap()),
        Some(Format::Safetensors)
    );
}

#[test]
fn safetensors_truncated_and_malformed() {
    let bytes = to_safetensors_bytes(&sample_state_dict()).unwrap();
    let err = load_from_bytes(&bytes[..bytes.len() - 3], "cut.safetensors").unwrap_err();
    assert!(matches!(err, Error::Truncated { .. }), "{err}");
    let err = load_from_bytes(&bytes[..20], "cut.safetensors").unwrap_err();
    assert!(matches!(err, Error::Truncated { .. }), "{err}");

    let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#;
    let mut bad = (header.len() as u64).to_le_bytes().to_vec();
    bad.extend(header);
    bad.extend([0; 4]);
    let err = load_from_bytes(&bad, "bad.safetensors").unwrap_err();
    assert!(matches!(err, Error::BadSafetensors { .. }), "{err}");
    assert!(err.to_string().contains("bad.safetensors"));
}

#[test]
fn golden_tiny_model_loads() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/golden/tiny/tiny_model.safetensors");
    if !golden.exists() {
        eprintln!("skipping: {} not present", golden.display());
        return;
    }
    let sd = load(&golden).unwrap();
    assert_eq!(sd.len(), 204);
    assert!(sd.iter().all(|(_, t)| t.dtype() == DType::F32));
    assert_eq!(sd.require("logit_scale").unwrap().shape(), &[] as &[usize]);
    assert_eq!(sd.require("mask_head.0.weight").unwrap().shape(), &[32, 32]);
    assert_eq!(
        sd.metadata().get("manifest").map(String::as_str),
        Some("tiny_manifest.json")
    );
    // Re-serialising and reading back gives the same tensors.
    let again = load_from_bytes(&to_safetensors_bytes(&sd).unwrap(), "again").unwrap();
    assert!(sd.iter().all(|(name, t)| again.get(name) == Some(t)));
}

// ------------------------------------------------------------------ robustness

fn all_fixtures() -> &'static [Vec<u8>] {
    static FIXTURES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    FIXTURES.get_or_init(|| {
        let mut files: Vec<Vec<u8>> = [
            "state_dict.pt",
            "state_dict_p4.pt",
            "state_dict_be.pt",
            "wrapped.pth",
            "legacy.pt",
        ]
        .iter()
        .map(|n| fixture_bytes(n))
        .collect();
        files.push(to_safetensors_bytes(&sample_state_dict()).unwrap());
        files
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// `load_from_bytes` never panics on arbitrary bytes (the `checkpoint` fuzz target).
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = load_from_bytes(&bytes, "fuzz");
        // Also behind each format's magic, so the inner parsers see the bytes.
        for magic in [&b"PK\x03\x04"[..], crate::legacy::MAGIC_PICKLE_PREFIX, b"\x10\0\0\0\0\0\0\0{"] {
            let mut with_magic = magic.to_vec();
            with_magic.extend(&bytes);
            let _ = load_from_bytes(&with_magic, "fuzz");
        }
    }

    /// Mutated and truncated real checkpoints never panic.
    #[test]
    fn mutated_checkpoints_never_panic(
        which in 0usize..6,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = all_fixtures()[which].clone();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        let _ = load_from_bytes(&bytes, "fuzz");
    }

    /// Any f32 tensor survives a safetensors round trip bit for bit.
    #[test]
    fn safetensors_round_trip(
        dims in proptest::collection::vec(0usize..4, 0..4),
        seed in any::<u32>(),
    ) {
        let numel: usize = dims.iter().product();
        let values: Vec<f32> = (0..numel)
            .map(|i| f32::from_bits(seed.wrapping_mul(2_654_435_761).wrapping_add(i as u32)))
            .collect();
        let mut sd = StateDict::new("prop");
        sd.insert("t", RawTensor::from_f32(dims.clone(), &values).unwrap());
        let back = load_from_bytes(&to_safetensors_bytes(&sd).unwrap(), "prop").unwrap();
        let t = back.get("t").unwrap();
        prop_assert_eq!(t.shape(), &dims[..]);
        prop_assert_eq!(t.bytes(), sd.get("t").unwrap().bytes());
    }

    /// A transposed view of a row-major `r x c` storage reads element (j, i) from i*c + j.
    #[test]
    fn transposed_views_gather_correctly(r in 1i64..6, c in 1i64..6) {
        let n = (r * c) as usize;
        let data: Vec<u8> = (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let pickle = torch_pickle(&[Entry {
            name: "t",
            storage_type: "FloatStorage",
            key: "0",
            numel: r * c,
            offset: 0,
            shape: &[c, r],
            stride: &[1, c],
        }]);
        let sd = load_from_bytes(&torch_zip(&pickle, &[("0", &data)]), "t.pt").unwrap();
        let (shape, values) = sd.tensor_f32("t").unwrap();
        prop_assert_eq!(shape, vec![c as usize, r as usize]);
        for j in 0..c as usize {
            for i in 0..r as usize {
                prop_assert_eq!(values[j * r as usize + i], (i * c as usize + j) as f32);
            }
        }
    }
}
