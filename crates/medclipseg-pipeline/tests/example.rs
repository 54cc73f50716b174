//! The `predict` example and the library API on a micro checkpoint written here (random
//! weights, with its config, run config and vocabulary in the metadata, as `train` writes them).

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use med_volumes::{IntensityMap, Volume, diagonal_affine};
use medclipseg_pipeline::{LoadedModel, Predictor};
use seg_metrics::BinaryMask;

#[allow(dead_code)]
#[path = "../examples/predict.rs"]
mod example;

const PROMPT: &str = "one bright round lesion in the center";

/// A micro model with random weights saved as one of our checkpoints.
fn micro_checkpoint(dir: &Path) -> PathBuf {
    let path = dir.join("micro.safetensors");
    medclipseg_pipeline::testing::write_micro_checkpoint::<Flex>(
        &path,
        &[PROMPT],
        Some(&medclipseg_pipeline::RunConfig::demo()),
        &Default::default(),
    )
    .unwrap();
    path
}

/// A 40 x 28 colour scan with a bright disc: not square, not the model's 32 px.
fn write_scan(path: &Path) {
    let img = image::RgbImage::from_fn(40, 28, |x, y| {
        let d = ((x as f32 - 20.0).powi(2) + (y as f32 - 14.0).powi(2)).sqrt();
        if d < 8.0 {
            image::Rgb([230, 220, 210])
        } else {
            image::Rgb([40, 50, (x * 3) as u8])
        }
    });
    img.save(path).unwrap();
}

#[test]
fn the_example_writes_a_mask_at_the_image_size() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint(dir.path());
    let scan = dir.path().join("scan.png");
    write_scan(&scan);
    let mask_path = dir.path().join("out").join("scan_mask.png");
    let (foreground, entropy) = example::run(&checkpoint, &scan, PROMPT, &mask_path).unwrap();
    let mask = image::open(&mask_path).unwrap().to_luma8();
    assert_eq!(mask.dimensions(), (40, 28));
    assert!(mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
    let on = mask.pixels().filter(|p| p.0[0] == 255).count() as f64 / (40.0 * 28.0);
    assert!((on - foreground).abs() < 1e-9, "{on} vs {foreground}");
    assert!((0.0..=std::f64::consts::LN_2 + 1e-4).contains(&entropy));

    // A missing image is an error naming it, not a panic.
    let missing = dir.path().join("no_such_scan.png");
    let error = example::run(&checkpoint, &missing, PROMPT, &mask_path).unwrap_err();
    assert!(error.to_string().contains("no_such_scan.png"), "{error}");
}

#[test]
fn predictions_are_at_the_original_size_and_thresholded_after_the_resize() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint(dir.path());
    let scan = dir.path().join("scan.png");
    write_scan(&scan);
    let device = Default::default();
    let loaded = LoadedModel::<Flex>::load(&checkpoint, &device).unwrap();
    assert!(loaded.vocabulary.is_some() && loaded.run_config.is_some());
    let predictor = Predictor::new(loaded, &device)
        .unwrap()
        .with_samples(3)
        .with_seed(5);
    let image = medclipseg_pipeline::read_image(&scan).unwrap();
    let p = predictor.predict_image_keyed(&image, PROMPT, 7).unwrap();
    assert_eq!((p.width, p.height), (40, 28));
    for map in [&p.probability, &p.entropy, &p.aleatoric, &p.epistemic] {
        assert_eq!(map.len(), 40 * 28);
    }
    // The mask is the full-size probability thresholded, pixel by pixel (not a 32 x 32 mask
    // upsampled by nearest neighbour, whose edges staircase).
    for (on, prob) in p.mask.data().iter().zip(&p.probability) {
        assert_eq!(*on, *prob > 0.5);
    }
    for i in 0..p.entropy.len() {
        let split = p.aleatoric[i] + p.epistemic[i];
        assert!((split - p.entropy[i]).abs() < 1e-4 || p.epistemic[i] == 0.0);
    }
    // Same key, same noise; another key, other noise.
    let again = predictor.predict_image_keyed(&image, PROMPT, 7).unwrap();
    assert_eq!(again.probability, p.probability);
    let other = predictor.predict_image_keyed(&image, PROMPT, 8).unwrap();
    assert_ne!(other.probability, p.probability);
    // The device generator: a valid prediction. (Not compared run to run here: the backend's
    // generator is shared by the whole process, and the other tests draw from it in parallel.)
    let device_noise = Predictor::<Flex>::load(&checkpoint, &device)
        .unwrap()
        .with_samples(3)
        .with_noise(medclipseg_pipeline::NoiseSource::Device);
    let a = device_noise.predict_image_keyed(&image, PROMPT, 7).unwrap();
    assert_eq!(a.probability.len(), p.probability.len());
    assert!(a.probability.iter().all(|v| (0.0..=1.0).contains(v)));
    assert_ne!(
        a.probability, p.probability,
        "device noise is not the host stream"
    );
    // No samples: an error, not a panic.
    let none = Predictor::<Flex>::load(&checkpoint, &device)
        .unwrap()
        .with_samples(0);
    assert!(none.predict_image(&image, PROMPT).is_err());
}

#[test]
fn volumes_come_back_on_their_grid() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint(dir.path());
    let dims = [12, 10, 3];
    let data = (0..12 * 10 * 3).map(|v| (v % 17) as f32 * 10.0).collect();
    let volume = Volume::new(
        dims,
        data,
        [0.8, 0.8, 2.0],
        diagonal_affine([0.8, 0.8, 2.0]),
    )
    .unwrap();
    let device = Default::default();
    let predictor = Predictor::<Flex>::load(&checkpoint, &device)
        .unwrap()
        .with_samples(2);
    let out = predictor
        .predict_volume(&volume, PROMPT, 2, &IntensityMap::default())
        .unwrap();
    assert_eq!(out.slices, 3);
    for v in [
        &out.mask,
        &out.probability,
        &out.entropy,
        &out.aleatoric,
        &out.epistemic,
    ] {
        assert_eq!(v.dims(), dims);
    }
    for (m, p) in out.mask.data().iter().zip(out.probability.data()) {
        assert_eq!(*m == 1.0, *p > 0.5);
    }
}

#[test]
fn observed_predictions_report_progress_and_can_be_cancelled() {
    use std::ops::ControlFlow;

    use medclipseg_pipeline::PipelineError;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint(dir.path());
    let scan = dir.path().join("scan.png");
    write_scan(&scan);
    let image = medclipseg_pipeline::read_image(&scan).unwrap();
    let mut predictor = Predictor::<Flex>::load(&checkpoint, &Default::default()).unwrap();
    predictor.set_samples(10);
    predictor.set_seed(5);
    assert_eq!((predictor.samples(), predictor.seed()), (10, 5));

    let mut seen = Vec::new();
    let observed = predictor
        .predict_image_observed(&image, PROMPT, 0, &mut |p| {
            seen.push((p.done, p.total));
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(seen, vec![(8, 10), (10, 10)]);
    // Observing changes nothing: the same maps as the plain call.
    let plain = predictor.predict_image(&image, PROMPT).unwrap();
    assert_eq!(observed.probability, plain.probability);

    let cancelled =
        predictor.predict_image_observed(&image, PROMPT, 0, &mut |_| ControlFlow::Break(()));
    assert!(
        matches!(cancelled, Err(PipelineError::Cancelled)),
        "{cancelled:?}"
    );

    // A volume: progress counts sample passes over every batch of slices.
    let volume = med_volumes::Volume::new(
        [12, 10, 9],
        (0..12 * 10 * 9).map(|v| (v % 17) as f32).collect(),
        [1.0, 1.0, 2.0],
        med_volumes::diagonal_affine([1.0, 1.0, 2.0]),
    )
    .unwrap();
    predictor.set_samples(2);
    let mut last = None;
    let maps = predictor
        .predict_volume_observed(&volume, PROMPT, 2, &Default::default(), &mut |p| {
            last = Some((p.done, p.total));
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(maps.mask.dims(), [12, 10, 9]);
    assert_eq!(last, Some((4, 4)), "9 slices are 2 batches of 2 samples");
}
