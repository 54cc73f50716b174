//! Errors: [`ServerError`] when a server cannot start or run, [`ApiError`] for one request.

use std::path::PathBuf;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Why a server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The datastore folder could not be prepared.
    #[error("{path}: the datastore")]
    Datastore {
        /// The folder or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The socket failed.
    #[error("serving")]
    Io(#[from] std::io::Error),
    /// The calibration file cannot be read or was made with another checkpoint.
    #[error(transparent)]
    Calibration(#[from] medclipseg_pipeline::PipelineError),
    /// The worker thread could not start or panicked.
    #[error("the inference worker: {0}")]
    Worker(String),
}

/// A request that failed: an HTTP status and a message naming the problem, sent as
/// `{"error": message}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The status sent.
    pub status: StatusCode,
    /// What went wrong, naming the field, file or id.
    pub message: String,
    /// Seconds to wait before retrying (503 on a full queue).
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// 400: the request is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such id, model or route.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 422: the request is well formed but the input cannot be used (a corrupt image).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// 500: the server failed (a file it could not write).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// An error with any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        let mut response = (self.status, body).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<axum::extract::multipart::MultipartError> for ApiError {
    fn from(e: axum::extract::multipart::MultipartError) -> Self {
        // 413 for a body over the limit, 400 for a malformed one.
        Self::new(e.status(), format!("multipart body: {}", e.body_text()))
    }
}
