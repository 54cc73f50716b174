//! What a server is started with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use seg_metrics::conformal::CalibrationFile;

use crate::error::ServerError;

/// Who may call the server.
#[derive(Clone, PartialEq, Eq)]
pub enum Access {
    /// Anyone who reaches the socket (the default on 127.0.0.1).
    Open,
    /// Callers presenting this token as `Authorization: Bearer T` or `?token=T`.
    Token(String),
}

impl std::fmt::Debug for Access {
    // The token never goes to a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Access::Open => f.write_str("Open"),
            Access::Token(_) => f.write_str("Token(..)"),
        }
    }
}

/// Settings of a [`crate::Server`].
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The server's own folder: uploaded images (`images/`) and job outputs (`jobs/`).
    pub datastore: PathBuf,
    /// Images kept in the datastore; the oldest is evicted past it.
    pub datastore_limit: usize,
    /// Finished jobs kept (their files on disk); the oldest is dropped past it.
    pub jobs_kept: usize,
    /// Finished jobs whose maps stay in memory for display; older ones are read from disk.
    pub maps_in_memory: usize,
    /// Largest request body, bytes.
    pub max_upload: usize,
    /// Jobs waiting behind the running one; one more answers 503 with Retry-After.
    pub queue: usize,
    /// Most Monte-Carlo samples one request may ask for.
    pub max_samples: usize,
    /// Samples when a request names none.
    pub default_samples: usize,
    /// Seed when a request names none.
    pub default_seed: u64,
    /// Whole-request limit (uploads, a MONAI Label inference); the progress stream is exempt.
    pub request_timeout: Duration,
    /// Who may call.
    pub access: Access,
    /// The model's name in the MONAI Label protocol (`/infer/{model}`).
    pub model_name: String,
    /// The prompt MONAI Label clients see in the model's options (and get when they send none).
    pub default_prompt: String,
    /// The label name of the foreground in MONAI Label replies.
    pub label: String,
    /// Where the model came from (checkpoint path, digest, backend): shown by `/api/info`.
    pub provenance: serde_json::Value,
    /// A conformal calibration (`medclipseg calibrate`): masks are `probability ≥ λ̂` instead of
    /// `> 0.5`, and a second level adds the uncertain band. Set it with
    /// [`ServeConfig::with_calibration`], which checks it was made with the served checkpoint.
    pub calibration: Option<CalibrationFile>,
}

impl ServeConfig {
    /// Defaults around a datastore folder: 100 images, 64 jobs (maps of 4 in memory), 1 GiB uploads (a CT series),
    /// a queue of 32, at most 200 samples (30 by default, seed 666), 10-minute requests, open.
    pub fn new(datastore: impl Into<PathBuf>) -> Self {
        Self {
            datastore: datastore.into(),
            datastore_limit: 100,
            jobs_kept: 64,
            maps_in_memory: 4,
            max_upload: 1 << 30,
            queue: 32,
            max_samples: 200,
            default_samples: 30,
            default_seed: 666,
            request_timeout: Duration::from_secs(600),
            access: Access::Open,
            model_name: "medclipseg".into(),
            default_prompt: "a lesion".into(),
            label: "lesion".into(),
            provenance: serde_json::Value::Null,
            calibration: None,
        }
    }

    /// Thresholds masks with the calibration file at `path`, read once and checked against
    /// `checkpoint` (the model the server is started with) as `predict --calibration` does: a
    /// file made with another checkpoint is an error naming it and both hashes.
    pub fn with_calibration(mut self, path: &Path, checkpoint: &Path) -> Result<Self, ServerError> {
        let file = medclipseg_pipeline::calibrator::read_calibration_for(path, checkpoint)?;
        self.calibration = Some(file);
        Ok(self)
    }
}
