//! Inference jobs: a bounded queue in front of one worker thread that owns the model, job
//! states watched by the HTTP side (polling and the progress stream), cancel flags checked
//! between Monte-Carlo chunks, and each job's maps kept for display and download.

use std::collections::{HashMap, VecDeque};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use burn::prelude::Backend;
use med_volumes::{IntensityMap, OutputKind, Volume};
use medclipseg_pipeline::{McProgress, Prediction, Predictor, VolumePrediction};
use seg_metrics::conformal::CalibrationFile;
use serde::Serialize;
use tokio::sync::watch;

use crate::datastore::{StoredImage, random_u64};
use crate::error::ApiError;
use crate::inputs::Input;

/// What a job runs.
#[derive(Debug, Clone, Serialize)]
pub struct JobRequest {
    /// The image's id.
    pub image: String,
    /// The prompt.
    pub prompt: String,
    /// Monte-Carlo samples.
    pub samples: usize,
    /// Noise seed.
    pub seed: u64,
    /// Slicing axis of a volume.
    pub axis: usize,
    /// `CENTER,WIDTH` window of a volume (percentiles when absent).
    pub window: Option<String>,
    #[serde(skip)]
    pub(crate) stored: Option<StoredImage>,
    #[serde(skip)]
    pub(crate) path: PathBuf,
    #[serde(skip)]
    pub(crate) intensity: Option<IntensityMap>,
}

/// Where a job stands (the JSON of `GET /api/jobs/{id}` and of each progress event).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobState {
    /// `queued`, `running`, `done`, `failed` or `cancelled`.
    pub status: &'static str,
    /// Sample passes done.
    pub done: usize,
    /// Sample passes in all (0 until it starts).
    pub total: usize,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl JobState {
    fn new(status: &'static str) -> Self {
        Self {
            status,
            done: 0,
            total: 0,
            error: None,
        }
    }

    /// Done, failed or cancelled: nothing will change.
    pub fn is_final(&self) -> bool {
        matches!(self.status, "done" | "failed" | "cancelled")
    }
}

/// Numbers of a result: area and uncertainty inside the mask.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Foreground pixels (voxels for a volume).
    pub mask_px: usize,
    /// All pixels (voxels).
    pub total_px: usize,
    /// Foreground area in mm² (pictures with a known spacing and single-slice volumes).
    pub area_mm2: Option<f64>,
    /// Foreground volume in mm³ (volumes).
    pub volume_mm3: Option<f64>,
    /// Voxel size in mm, when known.
    pub spacing: Option<[f64; 3]>,
    /// Mean and max of each map inside the mask (`None` for an empty mask).
    pub in_mask: Option<InMask>,
    /// Mean predictive entropy over the whole image.
    pub mean_entropy: f64,
}

/// Mean and maximum of the uncertainty maps inside the mask.
#[derive(Debug, Clone, Serialize)]
pub struct InMask {
    /// Predictive entropy (nats).
    pub entropy: Stat,
    /// Aleatoric part.
    pub aleatoric: Stat,
    /// Epistemic part.
    pub epistemic: Stat,
    /// Mean probability.
    pub probability: Stat,
}

/// Mean and maximum.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Maximum.
    pub max: f64,
}

/// A job's maps by name: mask (0/1), probability, entropy, aleatoric, epistemic.
pub type Maps = Vec<(&'static str, Volume)>;

/// The results of a finished job. The maps stay in memory for the last few jobs only (a CT's
/// maps are hundreds of MB); older jobs read them back from their files when asked.
pub struct JobOutput {
    maps: Mutex<Option<Arc<Maps>>>,
    /// The numbers.
    pub summary: Summary,
    /// Files in the job's folder, by name.
    pub files: Vec<String>,
    /// The folder.
    pub dir: PathBuf,
    /// Grid `(nx, ny, nz)`.
    pub dims: [usize; 3],
    /// Whether the input was a volume.
    pub volume: bool,
    /// Whether the maps include the uncertain band (a calibration with two levels).
    pub band: bool,
    /// What the calibrated threshold promises ([`medclipseg_pipeline::calibrator::calibration_note`]);
    /// `None`: the mask is `probability > 0.5`, with no guarantee.
    pub calibration: Option<serde_json::Value>,
}

impl JobOutput {
    /// Runs `f` on one map, held in memory or read from the job's files; a 404 for a name
    /// that is not a map.
    pub fn with_map<T>(
        &self,
        name: &str,
        f: impl FnOnce(&Volume) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        if !self.map_names().contains(&name) {
            return Err(ApiError::not_found(format!(
                "no map `{}`; maps are {:?}",
                name.escape_default(),
                self.map_names()
            )));
        }
        // Only the Arc is cloned: a CT's maps are not copied per request.
        let held = self.maps.lock().expect("job maps").clone();
        match held
            .as_ref()
            .and_then(|maps| maps.iter().find(|(n, _)| *n == name))
        {
            Some((_, map)) => f(map),
            None => f(&self.read_map(name)?),
        }
    }

    /// The names of its maps: [`MAPS`], and `band` with a two-level calibration.
    pub fn map_names(&self) -> Vec<&'static str> {
        let band = self.band.then_some(BAND);
        MAPS.iter().copied().chain(band).collect()
    }

    /// Whether the maps are held in memory.
    pub fn in_memory(&self) -> bool {
        self.maps.lock().expect("job maps").is_some()
    }

    fn release(&self) {
        self.maps.lock().expect("job maps").take();
    }

    /// A map read back: NIfTI for volumes and masks, the 8-bit PNG for a picture's other maps
    /// (the precision the page shows).
    fn read_map(&self, name: &str) -> Result<Volume, ApiError> {
        let failed = |e: &dyn std::error::Error| {
            ApiError::internal(format!("{name}: {}", medclipseg_pipeline::with_causes(e)))
        };
        let nifti =
            |file: &str| med_volumes::read_nifti(&self.dir.join(file)).map_err(|e| failed(&e));
        if self.volume || is_binary(name) {
            return nifti(&format!("{name}.nii.gz"));
        }
        let grid = nifti("mask.nii.gz")?;
        let png = image::open(self.dir.join(format!("{name}.png"))).map_err(|e| failed(&e))?;
        let scale = if name == "probability" {
            1.0
        } else {
            MAX_ENTROPY
        };
        let data = png
            .to_luma8()
            .into_raw()
            .into_iter()
            .map(|b| f32::from(b) / 255.0 * scale)
            .collect();
        grid.same_grid(data).map_err(|e| failed(&e))
    }
}

/// The outputs whose maps are held in memory, newest last.
#[derive(Default)]
pub struct HeldMaps {
    outputs: Mutex<VecDeque<Arc<JobOutput>>>,
}

impl HeldMaps {
    /// Holds `output`'s maps, releasing the oldest past `kept`.
    fn hold(&self, output: Arc<JobOutput>, kept: usize) {
        let mut outputs = self.outputs.lock().expect("held maps");
        outputs.push_back(output);
        while outputs.len() > kept.max(1) {
            if let Some(old) = outputs.pop_front() {
                old.release();
            }
        }
    }
}

/// Names of the maps, in display order.
pub const MAPS: [&str; 5] = ["mask", "probability", "entropy", "aleatoric", "epistemic"];

/// The uncertain band's map (0/1): `low ≤ probability < high` between a calibration's two
/// thresholds.
pub const BAND: &str = "band";

/// The 0/1 maps (stored as label NIfTI, drawn as masks).
fn is_binary(name: &str) -> bool {
    name == "mask" || name == BAND
}

/// One job.
pub struct Job {
    /// Its id.
    pub id: String,
    /// What it runs.
    pub request: JobRequest,
    cancel: AtomicBool,
    state: watch::Sender<JobState>,
    output: OnceLock<Arc<JobOutput>>,
}

impl Job {
    /// Its state now.
    pub fn state(&self) -> JobState {
        self.state.borrow().clone()
    }

    /// A receiver of its state changes.
    pub fn watch(&self) -> watch::Receiver<JobState> {
        self.state.subscribe()
    }

    /// The maps, once done.
    pub fn output(&self) -> Option<Arc<JobOutput>> {
        self.output.get().cloned()
    }

    /// Asks the worker to stop it (before it starts, or at the next Monte-Carlo chunk).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
        self.state.send_if_modified(|s| {
            if s.status == "queued" {
                *s = JobState::new("cancelled");
                true
            } else {
                false
            }
        });
    }

    fn set(&self, state: JobState) {
        self.state.send_replace(state);
    }

    /// Waits until it is done, failed or cancelled.
    pub async fn finished(&self) -> JobState {
        let mut rx = self.watch();
        loop {
            let now = rx.borrow_and_update().clone();
            if now.is_final() || rx.changed().await.is_err() {
                return now;
            }
        }
    }
}

/// The jobs the server knows, the queue to the worker and the job folder.
pub struct Jobs {
    dir: PathBuf,
    kept: usize,
    queue: Mutex<Option<SyncSender<Arc<Job>>>>,
    table: Mutex<Table>,
    seq: AtomicU64,
    stopping: Arc<AtomicBool>,
}

#[derive(Default)]
struct Table {
    order: VecDeque<String>,
    by_id: HashMap<String, Arc<Job>>,
}

impl Jobs {
    /// A job table writing under `dir`, keeping `kept` jobs, feeding `queue`.
    pub fn new(dir: PathBuf, kept: usize, queue: SyncSender<Arc<Job>>) -> Self {
        Self {
            dir,
            kept: kept.max(1),
            queue: Mutex::new(Some(queue)),
            table: Mutex::default(),
            seq: AtomicU64::new(0),
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Queues a request; a full queue is a 503 with Retry-After.
    pub fn submit(&self, request: JobRequest) -> Result<Arc<Job>, ApiError> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down",
            ));
        }
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        let id = format!("job-{n}-{:06x}", random_u64() as u32 & 0xff_ffff);
        let (state, _) = watch::channel(JobState::new("queued"));
        let job = Arc::new(Job {
            id: id.clone(),
            request,
            cancel: AtomicBool::new(false),
            state,
            output: OnceLock::new(),
        });
        let sent = match self.queue.lock().expect("job queue").as_ref() {
            Some(queue) => queue.try_send(job.clone()),
            None => Err(TrySendError::Disconnected(job.clone())),
        };
        match sent {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let mut e = ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "the inference queue is full; retry later",
                );
                e.retry_after = Some(5);
                return Err(e);
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(ApiError::internal("the inference worker has stopped"));
            }
        }
        self.remember(job.clone());
        Ok(job)
    }

    /// A job by id.
    pub fn get(&self, id: &str) -> Result<Arc<Job>, ApiError> {
        let table = self.table.lock().expect("job table");
        table
            .by_id
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no job with id `{}`", id.escape_default())))
    }

    /// Refuses new jobs and cancels every known one (Ctrl-C).
    pub fn stop_all(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let table = self.table.lock().expect("job table");
        for job in table.by_id.values() {
            job.cancel();
        }
    }

    /// Closes the queue: the worker ends once it has drained it.
    pub fn close_queue(&self) {
        self.queue.lock().expect("job queue").take();
    }

    fn remember(&self, job: Arc<Job>) {
        let mut table = self.table.lock().expect("job table");
        table.order.push_back(job.id.clone());
        table.by_id.insert(job.id.clone(), job);
        while table.order.len() > self.kept {
            // Only finished jobs are forgotten; a long queue keeps its jobs.
            let Some(pos) = table
                .order
                .iter()
                .position(|id| table.by_id.get(id).is_none_or(|j| j.state().is_final()))
            else {
                break;
            };
            let id = table.order.remove(pos).expect("a position in range");
            table.by_id.remove(&id);
            let _ = std::fs::remove_dir_all(self.dir.join(&id));
        }
    }

    /// The job folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Where the worker writes and what it applies to every job.
pub struct WorkerSettings {
    /// The job folder.
    pub dir: PathBuf,
    /// Outputs whose maps stay in memory.
    pub held: Arc<HeldMaps>,
    /// How many of them.
    pub maps_kept: usize,
    /// The calibrated mask threshold (and band), if the server has one.
    pub calibration: Option<CalibrationFile>,
}

/// The worker: owns the predictor, runs queued jobs one at a time until the queue closes.
pub fn run_worker<B: Backend>(
    mut predictor: Predictor<B>,
    queue: Receiver<Arc<Job>>,
    settings: WorkerSettings,
) {
    let WorkerSettings {
        dir,
        held,
        maps_kept,
        calibration,
    } = settings;
    while let Ok(job) = queue.recv() {
        if job.cancel.load(Ordering::SeqCst) {
            job.set(JobState::new("cancelled"));
            continue;
        }
        job.set(JobState::new("running"));
        predictor.set_samples(job.request.samples);
        predictor.set_seed(job.request.seed);
        // A panic inside the model fails this job instead of leaving it running forever.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_job(&predictor, &job, &dir.join(&job.id), calibration.as_ref())
        }))
        .unwrap_or_else(|_| Err(ApiError::internal("the model panicked on this input")));
        match outcome {
            Ok(output) => {
                let state = JobState {
                    status: "done",
                    ..job.state()
                };
                let output = Arc::new(output);
                held.hold(output.clone(), maps_kept);
                let _ = job.output.set(output);
                job.set(state);
            }
            Err(_) if job.cancel.load(Ordering::SeqCst) => {
                tracing::info!("job {} cancelled", job.id);
                let _ = std::fs::remove_dir_all(dir.join(&job.id));
                job.set(JobState::new("cancelled"));
            }
            Err(e) => {
                tracing::warn!("job {} failed: {}", job.id, e.message);
                job.set(JobState {
                    error: Some(e.message),
                    ..JobState::new("failed")
                });
            }
        }
    }
}

fn run_job<B: Backend>(
    predictor: &Predictor<B>,
    job: &Job,
    dir: &Path,
    calibration: Option<&CalibrationFile>,
) -> Result<JobOutput, ApiError> {
    let stored = job
        .request
        .stored
        .as_ref()
        .ok_or_else(|| ApiError::internal("job without an image"))?;
    let input = Input::load(&job.request.path, stored.kind)?;
    let mut on_chunk = |p: McProgress| {
        job.set(JobState {
            status: "running",
            done: p.done,
            total: p.total,
            error: None,
        });
        if job.cancel.load(Ordering::SeqCst) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let prompt = &job.request.prompt;
    let failed = |e: medclipseg_pipeline::PipelineError| {
        ApiError::unprocessable(medclipseg_pipeline::with_causes(&e))
    };
    let grid = input.grid()?;
    let mut maps = match &input {
        Input::Picture(image) => {
            let p = predictor
                .predict_image_observed(image, prompt, 0, &mut on_chunk)
                .map_err(failed)?;
            picture_maps(&grid, &p)?
        }
        Input::Volume(volume) => {
            let intensity = job.request.intensity.unwrap_or_default();
            let p = predictor
                .predict_volume_observed(
                    volume,
                    prompt,
                    job.request.axis,
                    &intensity,
                    &mut on_chunk,
                )
                .map_err(failed)?;
            volume_maps(p)
        }
    };
    if let Some(file) = calibration {
        apply_calibration(&mut maps, file)?;
    }
    let band = maps.iter().any(|(name, _)| *name == BAND);
    let calibration = calibration.map(medclipseg_pipeline::calibrator::calibration_note);
    let summary = summarize(&maps, input.spacing());
    let volume = matches!(input, Input::Volume(_));
    let result = JobResult {
        request: &job.request,
        summary: &summary,
        calibration: calibration.as_ref(),
    };
    let files = write_outputs(dir, &maps, volume, &result)?;
    Ok(JobOutput {
        maps: Mutex::new(Some(Arc::new(maps))),
        summary,
        files,
        dir: dir.to_path_buf(),
        dims: input.dims(),
        volume,
        band,
        calibration,
    })
}

/// Re-thresholds the mask at the calibrated λ̂ (`probability ≥ λ̂`, as `predict --calibration`)
/// and, with a second level, adds the uncertain band `low ≤ probability < high`.
fn apply_calibration(maps: &mut Maps, file: &CalibrationFile) -> Result<(), ApiError> {
    use seg_metrics::conformal::{band_mask, threshold_mask};
    let probability = maps
        .iter()
        .find(|(name, _)| *name == "probability")
        .map(|(_, v)| v)
        .ok_or_else(|| ApiError::internal("no probability map"))?;
    let on_grid = |mask: Vec<bool>| {
        probability
            .same_grid(mask.into_iter().map(|b| f32::from(u8::from(b))).collect())
            .map_err(|e| ApiError::internal(e.to_string()))
    };
    let mask = on_grid(threshold_mask(probability.data(), file.threshold))?;
    let band = file
        .band_range()
        .map(|(low, high)| on_grid(band_mask(probability.data(), low, high)))
        .transpose()?;
    if let Some((_, map)) = maps.iter_mut().find(|(name, _)| *name == "mask") {
        *map = mask;
    }
    if let Some(band) = band {
        maps.push((BAND, band));
    }
    Ok(())
}

/// `result.json` of a job.
#[derive(Serialize)]
struct JobResult<'a> {
    request: &'a JobRequest,
    summary: &'a Summary,
    /// The calibrated threshold and its guarantee; absent without a calibration.
    #[serde(skip_serializing_if = "Option::is_none")]
    calibration: Option<&'a serde_json::Value>,
}

/// A picture's maps as one-slice volumes (column `i`, row `j`: the picture's own layout).
fn picture_maps(grid: &Volume, p: &Prediction) -> Result<Vec<(&'static str, Volume)>, ApiError> {
    use seg_metrics::BinaryMask;
    let on = |data: Vec<f32>| {
        grid.same_grid(data)
            .map_err(|e| ApiError::internal(e.to_string()))
    };
    let mask = p
        .mask
        .data()
        .iter()
        .map(|&b| f32::from(u8::from(b)))
        .collect();
    Ok(vec![
        ("mask", on(mask)?),
        ("probability", on(p.probability.clone())?),
        ("entropy", on(p.entropy.clone())?),
        ("aleatoric", on(p.aleatoric.clone())?),
        ("epistemic", on(p.epistemic.clone())?),
    ])
}

fn volume_maps(p: VolumePrediction) -> Vec<(&'static str, Volume)> {
    vec![
        ("mask", p.mask),
        ("probability", p.probability),
        ("entropy", p.entropy),
        ("aleatoric", p.aleatoric),
        ("epistemic", p.epistemic),
    ]
}

fn summarize(maps: &[(&'static str, Volume)], spacing: Option<[f64; 3]>) -> Summary {
    let get = |name: &str| {
        maps.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.data())
            .unwrap_or(&[])
    };
    let mask = get("mask");
    let inside: Vec<usize> = (0..mask.len()).filter(|&i| mask[i] > 0.5).collect();
    let stat = |values: &[f32]| {
        let sum: f64 = inside.iter().map(|&i| f64::from(values[i])).sum();
        let max = inside.iter().map(|&i| values[i]).fold(f32::MIN, f32::max);
        Stat {
            mean: sum / inside.len() as f64,
            max: f64::from(max),
        }
    };
    let in_mask = (!inside.is_empty()).then(|| InMask {
        entropy: stat(get("entropy")),
        aleatoric: stat(get("aleatoric")),
        epistemic: stat(get("epistemic")),
        probability: stat(get("probability")),
    });
    let dims = maps.first().map_or([0; 3], |(_, v)| v.dims());
    let n = inside.len() as f64;
    let area_mm2 = spacing.filter(|_| dims[2] == 1).map(|s| n * s[0] * s[1]);
    let volume_mm3 = spacing.map(|s| n * s[0] * s[1] * s[2]);
    let entropy = get("entropy");
    Summary {
        mask_px: inside.len(),
        total_px: mask.len(),
        area_mm2,
        volume_mm3,
        spacing,
        in_mask,
        mean_entropy: entropy.iter().map(|&e| f64::from(e)).sum::<f64>()
            / entropy.len().max(1) as f64,
    }
}

/// Largest value of the uncertainty maps (binary entropy in nats): ln 2.
const MAX_ENTROPY: f32 = std::f32::consts::LN_2;

/// The 8-bit value a map's PNG stores: mask 0/255, probability × 255, uncertainties / ln 2 × 255.
pub fn to_u8(name: &str, value: f32) -> u8 {
    let unit = match name {
        "mask" | BAND => {
            if value > 0.5 {
                1.0
            } else {
                0.0
            }
        }
        "probability" => value,
        _ => value / MAX_ENTROPY,
    };
    (unit.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Writes the downloads: each map as PNG (pictures) or NIfTI (volumes; the mask as labels on
/// the input's grid), `mask.nii.gz` for every input (MONAI Label replies), and `result.json`.
fn write_outputs(
    dir: &Path,
    maps: &[(&'static str, Volume)],
    volume: bool,
    result: &JobResult,
) -> Result<Vec<String>, ApiError> {
    let io = |e: &dyn std::error::Error| {
        ApiError::internal(format!(
            "{}: {}",
            dir.display(),
            medclipseg_pipeline::with_causes(e)
        ))
    };
    std::fs::create_dir_all(dir).map_err(|e| io(&e))?;
    let mut files = Vec::new();
    for (name, map) in maps {
        if volume || is_binary(name) {
            let kind = if is_binary(name) {
                OutputKind::Labels
            } else {
                OutputKind::Float
            };
            let file = format!("{name}.nii.gz");
            med_volumes::write_nifti(&dir.join(&file), map, kind).map_err(|e| io(&e))?;
            files.push(file);
        }
        if !volume {
            let slice = crate::inputs::slice_of(map, 2, 0)?;
            let png = crate::inputs::grey_png(&slice, |v| to_u8(name, v))?;
            let file = format!("{name}.png");
            atomic_io::write_atomic(&dir.join(&file), &png).map_err(|e| io(&e))?;
            files.push(file);
        }
    }
    let mut json = serde_json::to_value(result).map_err(|e| io(&e))?;
    json["files"] = serde_json::json!(files);
    let text = serde_json::to_vec_pretty(&json).map_err(|e| io(&e))?;
    atomic_io::write_atomic(&dir.join("result.json"), &text).map_err(|e| io(&e))?;
    files.push("result.json".into());
    Ok(files)
}
