//! `FolderRun` as a library user runs it: a folder with two images and a corrupt one; the
//! observer hears of the failure and of every image, the outputs and `predictions.json` are
//! written, and a resumed run skips what is done.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use medclipseg_pipeline::image_folder::{
    FolderObserver, FolderRun, ImageJob, PredictionRecord, PromptSource, image_jobs,
};
use medclipseg_pipeline::testing::micro_checkpoint_in;
use medclipseg_pipeline::{PipelineError, Predictor};

const PROMPT: &str = "one bright round lesion in the center";

#[derive(Default)]
struct Recorder {
    failed: Vec<String>,
    finished: usize,
}

impl FolderObserver for Recorder {
    fn image_failed(&mut self, job: &ImageJob, error: &PipelineError) {
        self.failed.push(format!("{}: {error}", job.name));
    }

    fn image_finished(&mut self) {
        self.finished += 1;
    }
}

fn scans(dir: &Path) -> PathBuf {
    let input = dir.join("scans");
    std::fs::create_dir_all(&input).unwrap();
    let scan = image::RgbImage::from_fn(30, 22, |x, y| {
        image::Rgb([(x * 8) as u8, (y * 11) as u8, 60])
    });
    scan.save(input.join("a.png")).unwrap();
    scan.save(input.join("b.png")).unwrap();
    std::fs::write(input.join("c.png"), b"\x89PNG\r\n\x1a\nnot a png").unwrap();
    input
}

#[test]
fn a_folder_run_reports_failures_writes_records_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint_in::<Flex>(dir.path(), &[PROMPT]).unwrap();
    let predictor = Predictor::<Flex>::load(&checkpoint, &Default::default())
        .unwrap()
        .with_samples(2);
    let jobs = image_jobs(&scans(dir.path()), &PromptSource::One(PROMPT.into())).unwrap();
    assert_eq!(jobs.iter().map(|j| j.index).collect::<Vec<_>>(), [0, 1, 2]);
    let out = dir.path().join("pred");

    let mut recorder = Recorder::default();
    let outcome = FolderRun::new(&predictor, &out)
        .run(&jobs, &mut recorder)
        .unwrap();
    assert_eq!(recorder.finished, 3);
    assert_eq!(recorder.failed.len(), 1, "{:?}", recorder.failed);
    assert!(
        recorder.failed[0].starts_with("c: "),
        "{:?}",
        recorder.failed
    );
    assert_eq!(outcome.failed, [jobs[2].path.clone()]);
    assert_eq!(outcome.records.len(), 2);
    for name in ["a", "b"] {
        assert!(out.join("masks").join(format!("{name}.png")).is_file());
        assert!(
            out.join("raw")
                .join(format!("{name}.safetensors"))
                .is_file()
        );
    }
    let written: Vec<PredictionRecord> =
        serde_json::from_slice(&std::fs::read(&outcome.records_path).unwrap()).unwrap();
    assert_same_records(&written, &outcome.records);

    let again = FolderRun::new(&predictor, &out)
        .with_resume(true)
        .run(&jobs, &mut ())
        .unwrap();
    assert_eq!(again.skipped, 2);
    assert_same_records(&again.records, &outcome.records);
}

/// Equal records, the floats up to JSON's round trip (serde_json parses the last digit
/// approximately).
fn assert_same_records(a: &[PredictionRecord], b: &[PredictionRecord]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        let close = |u: f64, v: f64| (u - v).abs() <= 1e-12 * u.abs().max(1.0);
        assert!(
            close(x.foreground_fraction, y.foreground_fraction),
            "{x:?} {y:?}"
        );
        assert!(close(x.mean_uncertainty, y.mean_uncertainty), "{x:?} {y:?}");
        let rounded = |r: &PredictionRecord| PredictionRecord {
            foreground_fraction: 0.0,
            mean_uncertainty: 0.0,
            ..r.clone()
        };
        assert_eq!(rounded(x), rounded(y));
    }
}

#[test]
fn a_missing_input_and_an_empty_folder_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let prompt = PromptSource::One(PROMPT.into());
    let missing = dir.path().join("missing");
    let error = image_jobs(&missing, &prompt).unwrap_err().to_string();
    assert!(
        error.contains("missing") && error.contains("no such"),
        "{error}"
    );
    let error = image_jobs(dir.path(), &prompt).unwrap_err().to_string();
    assert!(error.contains("no images"), "{error}");
}
