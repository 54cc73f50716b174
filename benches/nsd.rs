//! NSD on a pair of 512x512 masks (overlapping ellipses with a hole, made here, no files):
//! the MedCLIPSeg protocol (thin-slab surface, tolerance 2) and the DeepMind 2-D contour NSD,
//! plus the MONAI pixel-edge NSD and the full 2-D EDT for scale.
//!
//! `cargo bench -p medclipseg-benches --bench nsd`
//!
//! The same masks are built in Python by the script in docs/bench/metrics.md (identical float64
//! arithmetic, so identical pixels: 58994 and 61228 foreground) to time the DeepMind
//! `surface-distance` package on them.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use seg_metrics::{BinaryMask, Mask2d, MedClipSegSurface, Protocol, edt_2d};

const SIZE: usize = 512;

/// `((r - cr) / ar)^2 + ((c - cc) / ac)^2 <= 1`, computed as numpy does in the Python twin.
fn ellipse(cr: f64, cc: f64, ar: f64, ac: f64) -> impl Fn(usize, usize) -> bool {
    move |r, c| {
        let y = (r as f64 - cr) / ar;
        let x = (c as f64 - cc) / ac;
        y * y + x * x <= 1.0
    }
}

/// Ground truth: a large ellipse with a hole plus a disk; prediction: shifted, resized ellipses
/// and one false-positive blob.
fn bench_masks() -> (Mask2d, Mask2d) {
    let (body, disk, hole) = (
        ellipse(256.0, 240.0, 150.0, 110.0),
        ellipse(150.0, 350.0, 60.0, 60.0),
        ellipse(280.0, 230.0, 30.0, 20.0),
    );
    let gt = Mask2d::from_fn(SIZE, SIZE, |r, c| (body(r, c) || disk(r, c)) && !hole(r, c));
    let (body, disk, extra) = (
        ellipse(262.0, 250.0, 140.0, 118.0),
        ellipse(160.0, 345.0, 55.0, 58.0),
        ellipse(420.0, 100.0, 25.0, 35.0),
    );
    let pred = Mask2d::from_fn(SIZE, SIZE, |r, c| body(r, c) || disk(r, c) || extra(r, c));
    assert_eq!(
        (gt.count(), pred.count()),
        (58994, 61228),
        "masks differ from the Python twin"
    );
    (gt, pred)
}

fn nsd_512(c: &mut Criterion) {
    let (gt, pred) = bench_masks();
    let unit = [1.0, 1.0];
    let mut group = c.benchmark_group("nsd_512x512");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(5));
    for (name, p) in [
        ("medclipseg_slab_tol2", Protocol::MedClipSeg),
        ("deepmind_2d_tol2", Protocol::DeepMind),
        ("monai_2d_tol2", Protocol::Monai),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let d = p
                    .surface_distances_2d(
                        black_box(&gt),
                        black_box(&pred),
                        unit,
                        MedClipSegSurface::Slab,
                    )
                    .expect("valid masks");
                black_box(p.nsd(&d, 2.0))
            })
        });
    }
    group.bench_function("edt_2d_full_image", |b| {
        b.iter(|| black_box(edt_2d(black_box(&gt), unit).expect("valid spacing")))
    });
    group.finish();
}

criterion_group!(benches, nsd_512);
criterion_main!(benches);
