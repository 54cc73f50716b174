//! The real MONAI Label client (`monailabel` from PyPI, its client module) against the server:
//! `info`, `upload_image` and `infer`, and the returned label's geometry. `.ci/run` provides a
//! venv with `monailabel` (installed `--no-deps`) and `requests` and points
//! `MEDCLIPSEG_MONAILABEL_PYTHON` at its interpreter; elsewhere `python3` is tried, and the test
//! skips with a message when that cannot import the client.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{Running, write_ct_nifti};
use serde_json::Value;

fn python() -> Option<PathBuf> {
    let python: PathBuf = std::env::var_os("MEDCLIPSEG_MONAILABEL_PYTHON")
        .map(Into::into)
        .unwrap_or_else(|| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import monailabel.client, requests"])
        .output();
    match probe {
        Ok(out) if out.status.success() => Some(python),
        Ok(out) => {
            eprintln!(
                "SKIPPED: {} cannot import monailabel.client ({}); `.ci/run` installs it \
                 (pip install --no-deps monailabel; pip install requests)",
                python.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            None
        }
        Err(e) => {
            eprintln!("SKIPPED: no Python at {} ({e})", python.display());
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_monailabel_client_uploads_infers_and_gets_a_label_on_the_grid() {
    let Some(python) = python() else {
        if std::env::var_os("MEDCLIPSEG_REQUIRE_MONAILABEL").is_some() {
            panic!("MEDCLIPSEG_REQUIRE_MONAILABEL is set but the client is not available");
        }
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start_micro(dir.path()).await;
    // The client sends its full local path as the file name: the server keeps the base name.
    let image = dir.path().join("nested").join("ct scan.nii.gz");
    std::fs::create_dir_all(image.parent().unwrap()).unwrap();
    write_ct_nifti(&image);
    // The grid as a NIfTI reader sees the input (spacing stored as f32).
    let ct = med_volumes::read_nifti(&image).unwrap();
    let client_tmp = dir.path().join("client");
    std::fs::create_dir_all(&client_tmp).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/monailabel_client.py");
    let args = [
        script.into(),
        server.base.clone(),
        image.display().to_string(),
        client_tmp.display().to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || Command::new(python).args(args).output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "the client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(out.stdout.trim_ascii()).unwrap();
    assert_eq!(report["model"], "medclipseg");
    assert_eq!(report["uploaded"]["image"], "6: CT Series");
    assert_eq!(
        report["training"], false,
        "no training: check_if_running is not 200"
    );
    assert_eq!(report["params"]["samples"], 2, "{report}");
    assert!(
        report["params"]["summary"]["mean_entropy"].is_f64(),
        "{report}"
    );

    let label_path = PathBuf::from(report["label_file"].as_str().unwrap());
    assert!(
        label_path.to_string_lossy().ends_with(".nii.gz"),
        "{}",
        label_path.display()
    );
    let label = med_volumes::read_nifti(&label_path).unwrap();
    assert_eq!(label.dims(), ct.dims());
    assert_eq!(label.spacing(), ct.spacing());
    assert_eq!(label.affine(), ct.affine());
    assert!(label.data().iter().all(|&v| v == 0.0 || v == 1.0));
    let images = server.get_json("/api/images").await;
    assert_eq!(images["images"][0]["name"], "ct_scan.nii.gz");
    server.shutdown(Duration::from_secs(30)).await;
}
