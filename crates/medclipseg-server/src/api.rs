//! The page and the JSON API (`/api/...`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::datastore::{StoredImage, Upload};
use crate::error::ApiError;
use crate::inputs::{Input, parse_window};
use crate::jobs::{Job, JobRequest, to_u8};

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/style.css");

/// The page.
pub async fn index() -> Html<&'static str> {
    Html(INDEX)
}

/// Its script.
pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

/// Its style sheet.
pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// `GET /api/info`.
pub async fn info(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(state.info.clone())
}

/// A multipart body: file parts and text fields.
pub struct Form {
    /// Parts with a file name (or named `file`/`files`).
    pub files: Vec<Upload>,
    /// The other parts, by name.
    pub fields: HashMap<String, String>,
}

/// Reads a whole multipart body (bounded by the server's upload limit).
pub async fn read_form(mut multipart: Multipart) -> Result<Form, ApiError> {
    let mut files = Vec::new();
    let mut fields = HashMap::new();
    while let Some(field) = multipart.next_field().await? {
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().map(str::to_string);
        if file_name.is_some() || name == "file" || name == "files" {
            let bytes = field.bytes().await?;
            files.push(Upload {
                name: file_name.unwrap_or_else(|| name.clone()),
                bytes: bytes.to_vec(),
            });
        } else {
            fields.insert(name, field.text().await?);
        }
    }
    Ok(Form { files, fields })
}

/// What `POST /api/images` and `GET /api/images/{id}` answer.
async fn image_json(state: &Arc<AppState>, image: &StoredImage) -> Result<Value, ApiError> {
    let input = state.input(image).await?;
    Ok(json!({
        "id": image.id,
        "name": image.name,
        "kind": image.kind,
        "dims": input.dims(),
        "spacing": input.spacing(),
        "view_url": format!("/api/images/{}/view.png", image.id),
    }))
}

/// `POST /api/images`: stores an image (one picture or NIfTI, DICOM files or a zip).
pub async fn upload(
    State(state): State<Arc<AppState>>,
    multipart: Multipart,
) -> Result<Json<Value>, ApiError> {
    let form = read_form(multipart).await?;
    let image = state.store(None, form.files).await?;
    Ok(Json(image_json(&state, &image).await?))
}

/// `GET /api/images`.
pub async fn images(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({ "images": state.datastore.list() }))
}

/// `GET /api/images/{id}`.
pub async fn image(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let image = state.datastore.get(&id)?;
    Ok(Json(image_json(&state, &image).await?))
}

/// Which slice to show.
#[derive(Debug, Deserialize)]
pub struct SliceQuery {
    axis: Option<usize>,
    index: Option<usize>,
    window: Option<String>,
}

fn png(bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response()
}

/// `GET /api/images/{id}/view.png?axis=&index=&window=C,W`.
pub async fn view(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<SliceQuery>,
) -> Result<Response, ApiError> {
    let image = state.datastore.get(&id)?;
    let input = state.input(&image).await?;
    let window = q.window.as_deref().map(parse_window).transpose()?;
    let (axis, index) = (q.axis.unwrap_or(2), q.index.unwrap_or(0));
    let bytes = tokio::task::spawn_blocking(move || input.view_png(axis, index, window))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(png(bytes))
}

/// Builds a job request from form fields; `default_prompt` is used when none is sent (MONAI
/// Label), the JSON API requires one.
pub fn job_request(
    state: &AppState,
    image: StoredImage,
    fields: &HashMap<String, String>,
    default_prompt: Option<&str>,
) -> Result<JobRequest, ApiError> {
    let prompt = fields
        .get("prompt")
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .or_else(|| default_prompt.map(str::to_string))
        .ok_or_else(|| ApiError::bad_request("missing field `prompt`: the text to segment"))?;
    if prompt.chars().count() > 500 {
        return Err(ApiError::bad_request(
            "field `prompt` is longer than 500 characters",
        ));
    }
    let max = state.config.max_samples;
    let samples = number(fields, "samples", state.config.default_samples)?;
    if samples == 0 || samples > max {
        return Err(ApiError::bad_request(format!(
            "field `samples` is {samples}; this server takes 1 to {max}"
        )));
    }
    let seed = number(fields, "seed", state.config.default_seed)?;
    let axis = number(fields, "axis", 2usize)?;
    if axis > 2 {
        return Err(ApiError::bad_request(format!(
            "field `axis` is {axis}; axes are 0, 1 and 2"
        )));
    }
    let window = fields
        .get("window")
        .filter(|w| !w.trim().is_empty())
        .cloned();
    let intensity = window.as_deref().map(parse_window).transpose()?;
    Ok(JobRequest {
        image: image.id.clone(),
        path: state.datastore.path(&image),
        stored: Some(image),
        prompt,
        samples,
        seed,
        axis,
        window,
        intensity,
    })
}

fn number<T: std::str::FromStr>(
    fields: &HashMap<String, String>,
    name: &str,
    default: T,
) -> Result<T, ApiError> {
    match fields.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "field `{name}` is `{text}`, not a non-negative whole number"
            ))
        }),
    }
}

/// `POST /api/predict`: multipart `file` (or `image` = a stored id), `prompt`, `samples`,
/// `seed`, `axis`, `window` → 202 with the job's id and URLs.
pub async fn predict(
    State(state): State<Arc<AppState>>,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    let form = read_form(multipart).await?;
    let image = match (form.files.is_empty(), form.fields.get("image")) {
        (false, _) => state.store(None, form.files).await?,
        (true, Some(id)) => state.datastore.get(id)?,
        (true, None) => {
            return Err(ApiError::bad_request(
                "no image: send a file in field `file` or a stored id in field `image`",
            ));
        }
    };
    let request = job_request(&state, image, &form.fields, None)?;
    let job = state.jobs.submit(request)?;
    Ok((StatusCode::ACCEPTED, Json(job_json(&job))).into_response())
}

/// The JSON of a job: state, request, and when done the numbers and URLs.
pub fn job_json(job: &Job) -> Value {
    let base = format!("/api/jobs/{}", job.id);
    let mut value = json!({
        "id": job.id,
        "request": job.request,
        "state": job.state(),
        "status_url": base,
        "events_url": format!("{base}/events"),
        "cancel_url": format!("{base}/cancel"),
    });
    if let Some(output) = job.output() {
        let files: serde_json::Map<String, Value> = output
            .files
            .iter()
            .map(|f| (f.clone(), json!(format!("{base}/files/{f}"))))
            .collect();
        let maps: serde_json::Map<String, Value> = output
            .map_names()
            .into_iter()
            .map(|m| (m.to_string(), json!(format!("{base}/maps/{m}"))))
            .collect();
        value["summary"] = json!(output.summary);
        value["dims"] = json!(output.dims);
        value["volume"] = json!(output.volume);
        value["files"] = Value::Object(files);
        value["maps"] = Value::Object(maps);
        if let Some(calibration) = &output.calibration {
            value["calibration"] = calibration.clone();
        }
    }
    value
}

/// `GET /api/jobs/{id}`.
pub async fn job(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(job_json(&*state.jobs.get(&id)?)))
}

/// `POST /api/jobs/{id}/cancel`.
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = state.jobs.get(&id)?;
    job.cancel();
    Ok(Json(job_json(&job)))
}

/// `GET /api/jobs/{id}/events`: server-sent `progress` events (the job state as JSON) until it
/// is done, failed or cancelled.
pub async fn events(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let job = state.jobs.get(&id)?;
    let rx = job.watch();
    let stream =
        futures_util::stream::unfold((rx, true, false), |(mut rx, first, ended)| async move {
            if ended {
                return None;
            }
            if !first && rx.changed().await.is_err() {
                return None;
            }
            let now = rx.borrow_and_update().clone();
            let event = Event::default()
                .event("progress")
                .json_data(&now)
                .unwrap_or_else(|_| Event::default().event("progress"));
            let is_final = now.is_final();
            Some((Ok(event), (rx, false, is_final)))
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// `GET /api/jobs/{id}/files/{name}`: a file the job listed (nothing else is reachable).
pub async fn file(
    State(state): State<Arc<AppState>>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let job = state.jobs.get(&id)?;
    let output = job.output().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!("job `{id}` has no results yet"),
        )
    })?;
    if !output.files.contains(&name) {
        return Err(ApiError::not_found(format!(
            "job `{id}` has no file `{}`; it has {:?}",
            name.escape_default(),
            output.files
        )));
    }
    let bytes = tokio::fs::read(output.dir.join(&name))
        .await
        .map_err(|e| ApiError::internal(format!("{name}: {e}")))?;
    let kind = if name.ends_with(".png") {
        "image/png"
    } else if name.ends_with(".json") {
        "application/json"
    } else {
        "application/gzip"
    };
    let stem = crate::datastore::file_stem(&job.request.image);
    let disposition = format!("attachment; filename=\"{stem}-{name}\"");
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /api/jobs/{id}/maps/{name}?axis=&index=`: one slice of a map as an 8-bit grey PNG
/// (mask 0/255, probability × 255, uncertainty / ln 2 × 255).
pub async fn map(
    State(state): State<Arc<AppState>>,
    Path((id, name)): Path<(String, String)>,
    Query(q): Query<SliceQuery>,
) -> Result<Response, ApiError> {
    let job = state.jobs.get(&id)?;
    let output = job.output().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!("job `{id}` has no results yet"),
        )
    })?;
    let (axis, index) = (q.axis.unwrap_or(2), q.index.unwrap_or(0));
    let bytes = tokio::task::spawn_blocking(move || {
        let slice = output.with_map(&name, |map| crate::inputs::slice_of(map, axis, index))?;
        crate::inputs::grey_png(&slice, |v| to_u8(&name, v))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(png(bytes))
}

/// Two jobs to compare.
#[derive(Debug, Deserialize)]
pub struct CompareQuery {
    a: String,
    b: String,
}

/// `GET /api/compare?a=JOB&b=JOB`: Dice between two finished jobs' masks.
pub async fn compare(
    State(state): State<Arc<AppState>>,
    Query(q): Query<CompareQuery>,
) -> Result<Json<Value>, ApiError> {
    let mask = |id: &str| -> Result<Vec<bool>, ApiError> {
        let output = state.jobs.get(id)?.output().ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                format!("job `{id}` has no results yet"),
            )
        })?;
        output.with_map("mask", |mask| {
            Ok(mask.data().iter().map(|&v| v > 0.5).collect())
        })
    };
    let (a, b) = (mask(&q.a)?, mask(&q.b)?);
    if a.len() != b.len() {
        return Err(ApiError::bad_request(format!(
            "jobs `{}` and `{}` are on different images ({} and {} pixels)",
            q.a,
            q.b,
            a.len(),
            b.len()
        )));
    }
    let (na, nb) = (count(&a), count(&b));
    let both = a.iter().zip(&b).filter(|(x, y)| **x && **y).count();
    // Two empty masks agree completely.
    let dice = if na + nb == 0 {
        1.0
    } else {
        2.0 * both as f64 / (na + nb) as f64
    };
    Ok(Json(
        json!({ "a": q.a, "b": q.b, "dice": dice, "a_px": na, "b_px": nb }),
    ))
}

fn count(mask: &[bool]) -> usize {
    mask.iter().filter(|&&m| m).count()
}

/// Loads a stored image for display (one recent image kept decoded).
pub(crate) async fn load_input(
    state: &Arc<AppState>,
    image: &StoredImage,
) -> Result<Arc<Input>, ApiError> {
    if let Some((id, seq, input)) = state.views.lock().expect("view cache").as_ref()
        && *id == image.id
        && *seq == image.seq
    {
        return Ok(input.clone());
    }
    let path = state.datastore.path(image);
    let kind = image.kind;
    let input = tokio::task::spawn_blocking(move || Input::load(&path, kind))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let input = Arc::new(input);
    *state.views.lock().expect("view cache") = Some((image.id.clone(), image.seq, input.clone()));
    Ok(input)
}
