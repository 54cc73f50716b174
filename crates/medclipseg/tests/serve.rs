//! `medclipseg serve` as a user starts it: the printed address answers, Ctrl-C (SIGINT) stops
//! it cleanly, and a non-loopback address without a token is refused. The routes themselves are
//! tested in crates/medclipseg-server (HTTP client, MONAI Label client, Chromium).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burn::backend::Flex;

mod common;
use medclipseg_pipeline::testing::micro_checkpoint_in;

/// A plain HTTP/1.1 GET (the command's test; real clients are in the server crate's tests).
fn get(address: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

#[test]
fn serve_prints_its_address_answers_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint_in::<Flex>(dir.path(), &["a lesion"]).unwrap();
    let store = dir.path().join("store");
    let mut child = Command::new(env!("CARGO_BIN_EXE_medclipseg"))
        .args([
            "serve",
            "--checkpoint",
            common::s(&checkpoint),
            "--port",
            "0",
        ])
        .args(["--datastore", common::s(&store), "--samples", "2"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("an address line").unwrap();
        if let Some(rest) = line.strip_prefix("Open http://") {
            break rest.split('/').next().unwrap().to_string();
        }
    };
    let info = get(&address, "/api/info");
    assert!(info.starts_with("HTTP/1.1 200"), "{info}");
    assert!(
        info.contains("\"samples\":2") && info.contains("\"sha256\""),
        "{info}"
    );
    let page = get(&address, "/");
    assert!(page.contains("<title>MedCLIPSeg"), "{page}");
    assert!(store.join("images").is_dir());

    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(rest.iter().any(|l| l == "stopped"), "{rest:?}");
}

#[test]
fn serve_refuses_a_public_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::medclipseg(&[
        "serve",
        "--checkpoint",
        common::s(&dir.path().join("absent.safetensors")),
        "--host",
        "0.0.0.0",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--token") && stderr.contains("--no-auth"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_calibration_made_with_another_checkpoint() {
    use seg_metrics::conformal::{CalibrationFile, Risk, statement};
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint_in::<Flex>(dir.path(), &["a lesion"]).unwrap();
    let calibration = dir.path().join("cal.json");
    CalibrationFile {
        version: 1,
        risk: Risk::Fnr,
        alpha: 0.1,
        threshold: 0.3,
        n: 20,
        calibration_risk: 0.05,
        bound: 0.09,
        calibration_sha256: "ab".repeat(32),
        checkpoint_sha256: "cd".repeat(32),
        prompt_style: "custom".into(),
        samples: 2,
        statement: statement(Risk::Fnr, 0.1),
        band: None,
    }
    .write(&calibration)
    .unwrap();
    let out = common::medclipseg(&[
        "serve",
        "--checkpoint",
        common::s(&checkpoint),
        "--port",
        "0",
        "--calibration",
        common::s(&calibration),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cal.json") && stderr.contains("no guarantee"),
        "{stderr}"
    );
}
