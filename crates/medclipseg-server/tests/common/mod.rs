//! Helpers of the server tests: a micro checkpoint, a server on an ephemeral port, fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::backend::Flex;
use med_volumes::{OutputKind, Volume, diagonal_affine, write_nifti};
use medclipseg_pipeline::Predictor;
use medclipseg_server::{ServeConfig, Server};
use serde_json::Value;

pub const PROMPT: &str = "one bright round lesion in the center";

/// A micro model with random weights saved as one of our checkpoints (config and vocabulary
/// inside), as `medclipseg serve --checkpoint` reads it.
pub fn micro_checkpoint(dir: &Path) -> PathBuf {
    let path = dir.join("micro.safetensors");
    medclipseg_pipeline::testing::write_micro_checkpoint::<Flex>(
        &path,
        &[PROMPT, "a dark spot on the left"],
        Some(&medclipseg_pipeline::RunConfig::demo()),
        &Default::default(),
    )
    .unwrap();
    path
}

/// The predictor the server gets: loaded from the checkpoint file.
pub fn predictor(checkpoint: &Path) -> Predictor<Flex> {
    Predictor::<Flex>::load(checkpoint, &Default::default()).unwrap()
}

/// A server answering on 127.0.0.1 with an ephemeral port.
pub struct Running {
    pub base: String,
    state: std::sync::Arc<medclipseg_server::AppState>,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), medclipseg_server::ServerError>>>,
}

impl Running {
    /// Starts a server with the default test config (datastore `dir/store`) on a micro
    /// checkpoint written into `dir`.
    pub async fn start_micro(dir: &Path) -> Running {
        Running::start(config(&dir.join("store")), &micro_checkpoint(dir)).await
    }

    /// Starts a server on `config` with the checkpoint's model.
    pub async fn start(config: ServeConfig, checkpoint: &Path) -> Running {
        let server = Server::start(config, predictor(checkpoint)).unwrap();
        let state = server.state().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));
        Running {
            base,
            state,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Whether a finished job's maps are held in memory.
    pub fn state_in_memory(&self, id: &str) -> bool {
        self.state
            .jobs
            .get(id)
            .unwrap()
            .output()
            .unwrap()
            .in_memory()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Asks it to stop (as Ctrl-C does) and waits, failing past `limit`.
    pub async fn shutdown(mut self, limit: Duration) {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(limit, task)
            .await
            .expect("the server stops in time")
            .unwrap()
            .unwrap();
    }

    /// `POST /api/predict` with `fields` and an optional file; the reply.
    pub async fn predict(
        &self,
        file: Option<(&str, Vec<u8>)>,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        if let Some((name, bytes)) = file {
            form = form.part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
            );
        }
        self.post_form("/api/predict", form).await
    }

    /// `POST path` with a multipart `form`; the reply.
    pub async fn post_form(&self, path: &str, form: reqwest::multipart::Form) -> reqwest::Response {
        let request = self.client.post(self.url(path)).multipart(form);
        request.send().await.unwrap()
    }

    /// `POST /api/predict` of [`scan_png`] with `fields`: the job as accepted.
    pub async fn submit_scan(&self, fields: &[(&str, &str)]) -> Value {
        let reply = self.predict(Some(("scan.png", scan_png())), fields).await;
        assert_eq!(reply.status(), reqwest::StatusCode::ACCEPTED);
        reply.json().await.unwrap()
    }

    /// Polls a job until it is final; its JSON.
    pub async fn wait(&self, id: &str) -> Value {
        for _ in 0..2400 {
            let job: Value = self.get_json(&format!("/api/jobs/{id}")).await;
            let status = job["state"]["status"].as_str().unwrap().to_string();
            if ["done", "failed", "cancelled"].contains(&status.as_str()) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} did not finish");
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    pub async fn get_bytes(&self, path: &str) -> Vec<u8> {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.bytes().await.unwrap().to_vec()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A test config on `dir`: small limits so the tests reach them.
pub fn config(dir: &Path) -> ServeConfig {
    let mut config = ServeConfig::new(dir);
    config.default_samples = 2;
    config.max_samples = 20_000;
    config.default_prompt = PROMPT.into();
    config
}

/// A 40 x 28 colour scan with a bright disc, as PNG bytes.
pub fn scan_png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(40, 28, |x, y| {
        let d = ((x as f32 - 20.0).powi(2) + (y as f32 - 14.0).powi(2)).sqrt();
        if d < 8.0 {
            image::Rgb([230, 220, 210])
        } else {
            image::Rgb([40, 50, (x * 3) as u8])
        }
    });
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

/// A 20 x 16 x 3 CT-like NIfTI volume (0.7 x 0.8 x 2.5 mm) with a bright blob, written to `path`.
pub fn write_ct_nifti(path: &Path) -> Volume {
    let (nx, ny, nz) = (20, 16, 3);
    let data = (0..nx * ny * nz)
        .map(|v| {
            let (i, j) = (v % nx, (v / nx) % ny);
            let d = ((i as f32 - 10.0).powi(2) + (j as f32 - 8.0).powi(2)).sqrt();
            if d < 4.0 {
                60.0
            } else {
                -800.0 + i as f32 * 10.0
            }
        })
        .collect();
    let spacing = [0.7, 0.8, 2.5];
    let volume = Volume::new([nx, ny, nz], data, spacing, diagonal_affine(spacing)).unwrap();
    write_nifti(path, &volume, OutputKind::Float).unwrap();
    volume
}

/// A calibration file for `checkpoint` as `medclipseg calibrate` writes it (FNR at α = 0.1),
/// with the mask threshold `threshold` and, optionally, a band level at `band`.
pub fn write_calibration(path: &Path, checkpoint: &Path, threshold: f32, band: Option<f32>) {
    use seg_metrics::conformal::{BandLevel, CalibrationFile, Risk, statement};
    let file = CalibrationFile {
        version: 1,
        risk: Risk::Fnr,
        alpha: 0.1,
        threshold,
        n: 40,
        calibration_risk: 0.06,
        bound: 0.08,
        calibration_sha256: "ab".repeat(32),
        checkpoint_sha256: medclipseg_pipeline::calibrator::sha256_file(checkpoint).unwrap(),
        prompt_style: "custom".into(),
        samples: 3,
        statement: statement(Risk::Fnr, 0.1),
        band: band.map(|threshold| BandLevel {
            alpha: 0.3,
            threshold,
            bound: 0.25,
        }),
    };
    file.write(path).unwrap();
}
