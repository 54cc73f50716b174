//! MedCLIPSeg over HTTP: a review page, a JSON API and the MONAI Label protocol, in front of
//! one model that a worker thread owns.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use medclipseg_pipeline::Predictor;
//! use medclipseg_server::{ServeConfig, Server};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let predictor = Predictor::<Flex>::load("model.safetensors", &Default::default())?;
//! let server = Server::start(ServeConfig::new("/tmp/medclipseg-serve"), predictor)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! server.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! Jobs run one at a time in the order they came, behind a bounded queue (a full queue answers
//! 503 with Retry-After); progress is published after every Monte-Carlo chunk (`GET
//! /api/jobs/{id}/events`, server-sent events) and a cancel takes effect at the next chunk.
//! docs/serve.md lists every route.

pub mod api;
pub mod auth;
pub mod config;
pub mod datastore;
pub mod error;
pub mod inputs;
pub mod jobs;
pub mod monai;

use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use burn::prelude::Backend;
use medclipseg_pipeline::Predictor;
use serde_json::{Value, json};
use tower_http::timeout::TimeoutLayer;

pub use config::{Access, ServeConfig};
pub use error::{ApiError, ServerError};

use datastore::{Datastore, StoredImage, Upload};
use inputs::Input;
use jobs::Jobs;

/// What every handler shares.
pub struct AppState {
    /// The settings.
    pub config: ServeConfig,
    /// Uploaded images.
    pub datastore: Datastore,
    /// Jobs and the queue.
    pub jobs: Jobs,
    /// The JSON of `/api/info`.
    pub info: Value,
    /// The last image decoded for display: id, upload number, input.
    views: Mutex<Option<(String, u64, Arc<Input>)>>,
}

impl AppState {
    /// Stores an upload (decoding it to check it, off the async threads).
    pub async fn store(
        self: &Arc<Self>,
        id: Option<&str>,
        files: Vec<Upload>,
    ) -> Result<StoredImage, ApiError> {
        let state = self.clone();
        let id = id.map(str::to_string);
        tokio::task::spawn_blocking(move || state.datastore.add(id.as_deref(), files))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
    }

    /// A stored image, decoded (one recent image is kept).
    pub async fn input(self: &Arc<Self>, image: &StoredImage) -> Result<Arc<Input>, ApiError> {
        api::load_input(self, image).await
    }
}

/// A started server: the worker owns the model; [`Server::serve`] answers requests.
pub struct Server {
    state: Arc<AppState>,
    worker: std::thread::JoinHandle<()>,
}

impl Server {
    /// Opens the datastore (keeping an earlier run's images, clearing its job files) and starts
    /// the worker thread with `predictor`.
    pub fn start<B: Backend>(
        config: ServeConfig,
        predictor: Predictor<B>,
    ) -> Result<Self, ServerError>
    where
        Predictor<B>: Send + 'static,
    {
        let datastore = Datastore::open(&config.datastore, config.datastore_limit)?;
        let jobs_dir = config.datastore.join("jobs");
        let _ = std::fs::remove_dir_all(&jobs_dir);
        std::fs::create_dir_all(&jobs_dir).map_err(|source| ServerError::Datastore {
            path: jobs_dir.clone(),
            source,
        })?;
        let info = info_json(&config, &predictor);
        let (tx, rx) = std::sync::mpsc::sync_channel(config.queue);
        let settings = jobs::WorkerSettings {
            dir: jobs_dir.clone(),
            held: Arc::new(jobs::HeldMaps::default()),
            maps_kept: config.maps_in_memory,
            calibration: config.calibration.clone(),
        };
        let worker = std::thread::Builder::new()
            .name("medclipseg-worker".into())
            .spawn(move || jobs::run_worker(predictor, rx, settings))
            .map_err(|e| ServerError::Worker(e.to_string()))?;
        let jobs = Jobs::new(jobs_dir, config.jobs_kept, tx);
        let state = Arc::new(AppState {
            config,
            datastore,
            jobs,
            info,
            views: Mutex::new(None),
        });
        Ok(Self { state, worker })
    }

    /// The shared state (tests and embedders).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Every route, with the token check, the upload limit and the request timeout (the
    /// progress stream is exempt from the timeout).
    pub fn router(&self) -> Router {
        let state = self.state.clone();
        let timed = Router::new()
            .route("/", get(api::index))
            .route("/app.js", get(api::script))
            .route("/style.css", get(api::style))
            .route("/api/info", get(api::info))
            .route("/api/images", post(api::upload).get(api::images))
            .route("/api/images/{id}", get(api::image))
            .route("/api/images/{id}/view.png", get(api::view))
            .route("/api/predict", post(api::predict))
            .route("/api/jobs/{id}", get(api::job))
            .route("/api/jobs/{id}/cancel", post(api::cancel))
            .route("/api/jobs/{id}/files/{name}", get(api::file))
            .route("/api/jobs/{id}/maps/{name}", get(api::map))
            .route("/api/compare", get(api::compare))
            .route("/info/", get(monai::info))
            .route(
                "/datastore/",
                axum::routing::put(monai::upload).get(monai::list),
            )
            .route("/infer/{model}", post(monai::infer))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                state.config.request_timeout,
            ));
        let streaming = Router::new().route("/api/jobs/{id}/events", get(api::events));
        timed
            .merge(streaming)
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::require_token,
            ))
            .layer(DefaultBodyLimit::max(state.config.max_upload))
            .with_state(state)
    }

    /// Answers requests on `listener` until `shutdown` completes; then cancels the queued and
    /// running jobs (the running one stops at its next Monte-Carlo chunk), lets open requests
    /// finish and joins the worker.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let state = self.state.clone();
        let router = self.router();
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down: cancelling jobs");
                state.jobs.stop_all();
            })
            .await?;
        self.stop().await
    }

    /// Cancels every job, closes the queue and waits for the worker.
    pub async fn stop(self) -> Result<(), ServerError> {
        self.state.jobs.stop_all();
        self.state.jobs.close_queue();
        let worker = self.worker;
        tokio::task::spawn_blocking(move || worker.join())
            .await
            .map_err(|e| ServerError::Worker(e.to_string()))?
            .map_err(|_| ServerError::Worker("the worker panicked".into()))
    }
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route {}", uri.path()))
}

fn info_json<B: Backend>(config: &ServeConfig, predictor: &Predictor<B>) -> Value {
    let model = predictor.config();
    json!({
        "name": "MedCLIPSeg",
        "version": env!("CARGO_PKG_VERSION"),
        "model": config.model_name,
        "backbone": {
            "vision": serde_json::to_value(&model.vision).unwrap_or(Value::Null),
            "text": serde_json::to_value(&model.text).unwrap_or(Value::Null),
        },
        "config": serde_json::to_value(model).unwrap_or(Value::Null),
        "image_size": predictor.preprocess().size,
        "defaults": {
            "prompt": config.default_prompt,
            "samples": config.default_samples,
            "seed": config.default_seed,
        },
        "limits": {
            "max_upload_bytes": config.max_upload,
            "max_samples": config.max_samples,
            "queue": config.queue,
            "datastore_limit": config.datastore_limit,
            "request_timeout_s": config.request_timeout.as_secs(),
        },
        "auth": matches!(config.access, Access::Token(_)),
        "provenance": config.provenance,
        "mask_rule": mask_rule(config.calibration.as_ref()),
        "calibration": config
            .calibration
            .as_ref()
            .map(medclipseg_pipeline::calibrator::calibration_note),
    })
}

/// How masks are made, in words: the calibrated threshold or the uncalibrated 0.5.
fn mask_rule(calibration: Option<&seg_metrics::conformal::CalibrationFile>) -> String {
    match calibration {
        Some(file) => format!(
            "probability >= {} (calibrated: {})",
            seg_metrics::conformal::threshold_value(file.threshold),
            file.statement
        ),
        None => "probability > 0.5 (not calibrated: no guarantee on what the mask misses)".into(),
    }
}

/// The README example, compiled as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
