//! The MONAI Label protocol, the part 3D Slicer's MONAILabel module and the `monailabel`
//! client call: `GET /info/`, `PUT /datastore/?image=ID`, `GET /datastore/`,
//! `POST /infer/{model}?image=ID`. `/auth/` and `/train/` fall through to 404 (no login, no
//! training), which is what the clients check for.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::api::{job_request, read_form};
use crate::datastore::random_u64;
use crate::error::ApiError;

/// `GET /info/`: the app. The prompt and samples are the model's `config`, which Slicer shows
/// as options and sends back as infer `params`. No top-level `config` (Slicer refuses it).
pub async fn info(State(state): State<Arc<AppState>>) -> Json<Value> {
    let c = &state.config;
    let labels = json!({ c.label.clone(): 1 });
    let model = json!({
        "type": "segmentation",
        "labels": labels,
        "dimension": 3,
        "description": "MedCLIPSeg: text-prompted segmentation with Monte-Carlo uncertainty \
                        (each slice through the 2-D model)",
        "config": {
            "prompt": c.default_prompt,
            "samples": c.default_samples,
            "seed": c.default_seed,
            "axis": 2,
        },
    });
    Json(json!({
        "name": "MedCLIPSeg",
        "description": "Text-guided segmentation with uncertainty (medclipseg serve)",
        "version": env!("CARGO_PKG_VERSION"),
        "labels": [c.label],
        "models": { c.model_name.clone(): model },
        "trainers": {},
        "strategies": {},
        "scoring": {},
        "train_stats": {},
        "datastore": { "total": state.datastore.list().len(), "completed": 0 },
    }))
}

/// `?image=ID&output=...`.
#[derive(Debug, Deserialize)]
pub struct ImageQuery {
    image: Option<String>,
    output: Option<String>,
}

/// `PUT /datastore/?image=ID`: multipart `params` and `file` → `{"image": ID}`.
pub async fn upload(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ImageQuery>,
    multipart: Multipart,
) -> Result<Json<Value>, ApiError> {
    let form = read_form(multipart).await?;
    let id = q.image.filter(|i| !i.is_empty());
    let image = state.store(id.as_deref(), form.files).await?;
    Ok(Json(json!({ "image": image.id })))
}

/// `GET /datastore/`: the stored images.
pub async fn list(State(state): State<Arc<AppState>>) -> Json<Value> {
    let objects: serde_json::Map<String, Value> = state
        .datastore
        .list()
        .into_iter()
        .map(|i| {
            let info =
                json!({ "image": { "info": { "name": i.name, "kind": i.kind } }, "labels": {} });
            (i.id, info)
        })
        .collect();
    Json(json!({ "total": objects.len(), "objects": objects }))
}

/// `params` as sent: a JSON object whose values may be strings or numbers (Slicer's option
/// table sends what `/info/` showed).
fn params_fields(text: Option<&String>) -> Result<HashMap<String, String>, ApiError> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(HashMap::new());
    };
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("field `params` is not JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| ApiError::bad_request("field `params` must be a JSON object"))?;
    Ok(object
        .iter()
        .filter_map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some((k.clone(), text))
        })
        .collect())
}

/// `POST /infer/{model}?image=ID[&output=image|json|all]`: runs the model on a stored image (or
/// a `file` sent along) and answers a multipart body with `params` (the numbers) and the mask as
/// `.nii.gz` on the input's grid; `output=image` sends the file alone, `output=json` the params.
pub async fn infer(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
    Query(q): Query<ImageQuery>,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    if model != state.config.model_name {
        return Err(ApiError::not_found(format!(
            "no model `{}`; this server has `{}`",
            model.escape_default(),
            state.config.model_name
        )));
    }
    let form = read_form(multipart).await?;
    let fields = params_fields(form.fields.get("params"))?;
    let files: Vec<_> = form
        .files
        .into_iter()
        .filter(|f| !f.bytes.is_empty())
        .collect();
    let image = match (
        files.is_empty(),
        q.image.as_deref().filter(|i| !i.is_empty()),
    ) {
        (false, id) => state.store(id, files).await?,
        (true, Some(id)) => state.datastore.get(id)?,
        (true, None) => {
            return Err(ApiError::bad_request(
                "no image: pass `?image=ID` or a `file`",
            ));
        }
    };
    let request = job_request(&state, image, &fields, Some(&state.config.default_prompt))?;
    let job = state.jobs.submit(request)?;
    let end = job.finished().await;
    let output = match (end.status, job.output()) {
        ("done", Some(output)) => output,
        ("cancelled", _) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the job was cancelled",
            ));
        }
        _ => {
            return Err(ApiError::unprocessable(
                end.error.unwrap_or_else(|| "the job failed".into()),
            ));
        }
    };
    let label = tokio::fs::read(output.dir.join("mask.nii.gz"))
        .await
        .map_err(|e| ApiError::internal(format!("mask.nii.gz: {e}")))?;
    let mut params = json!({
        "label_names": { state.config.label.clone(): 1 },
        "prompt": job.request.prompt,
        "samples": job.request.samples,
        "seed": job.request.seed,
        "job": job.id,
        "summary": output.summary,
    });
    if let Some(calibration) = &output.calibration {
        params["calibration"] = calibration.clone();
    }
    let file_name = format!(
        "{}_{}.nii.gz",
        crate::datastore::file_stem(&job.request.image),
        state.config.model_name
    );
    Ok(match q.output.as_deref().unwrap_or("all") {
        "json" => Json(params).into_response(),
        "image" => (
            [
                (header::CONTENT_TYPE, "application/gzip".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{file_name}\""),
                ),
            ],
            label,
        )
            .into_response(),
        _ => multipart_reply(&params, &file_name, label),
    })
}

/// `multipart/form-data` with a `params` JSON part and the label file, as MONAI Label answers.
fn multipart_reply(params: &Value, file_name: &str, label: Vec<u8>) -> Response {
    let boundary = format!("medclipseg-{:016x}", random_u64());
    let mut body = Vec::with_capacity(label.len() + 1024);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"params\"\r\n\
             Content-Type: application/json\r\n\r\n{params}\r\n--{boundary}\r\n\
             Content-Disposition: form-data; name=\"image\"; filename=\"{file_name}\"\r\n\
             Content-Type: application/gzip\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&label);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (
        [(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )],
        body,
    )
        .into_response()
}
