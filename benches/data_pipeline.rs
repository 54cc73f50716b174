//! Throughput of the data pipeline: PNG decode + `cv2`-exact bilinear resize 512 -> 224 +
//! ImageNet normalisation (and the mask path), on 64 synthetic 512x512 PNGs written to a temp
//! folder during setup. Reports images per second.
//!
//! Run: `cargo bench -p medclipseg-benches --bench data_pipeline`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use med_datasets::imaging::{Image8, write_png};
use med_datasets::layout::Record;
use med_datasets::{DataLoader, LoaderConfig, PreprocessConfig, load_sample};

const IMAGES: usize = 64;
const SIDE: usize = 512;

/// Writes `IMAGES` textured RGB images and their masks; returns their records.
fn write_images(dir: &Path) -> Vec<Record> {
    (0..IMAGES)
        .map(|i| {
            let mut data = Vec::with_capacity(SIDE * SIDE * 3);
            let mut mask = Image8::zeros(SIDE, SIDE, 1);
            for y in 0..SIDE {
                for x in 0..SIDE {
                    let v = ((x * 7 + y * 13 + i * 31) % 251) as u8;
                    data.extend_from_slice(&[v, v.wrapping_mul(3), 255 - v]);
                    if (x as isize - 256).pow(2) + (y as isize - 256).pow(2) < 100 * 100 {
                        mask.data[y * SIDE + x] = 255;
                    }
                }
            }
            let image = Image8::from_vec(SIDE, SIDE, 3, data).expect("consistent size");
            let image_path = dir.join(format!("img/{i:03}.png"));
            let mask_path = dir.join(format!("label/{i:03}.png"));
            write_png(&image_path, &image).expect("write image");
            write_png(&mask_path, &mask).expect("write mask");
            Record {
                name: format!("{i:03}.png"),
                image_path,
                mask_path,
                prompt: "one medium round dark lesion located in center of the image".into(),
            }
        })
        .collect()
}

fn data_pipeline(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let records = write_images(dir.path());
    let cfg = PreprocessConfig::default();
    let mut group = c.benchmark_group("data_pipeline");
    group.throughput(Throughput::Elements(IMAGES as u64));
    group.sample_size(10);
    group.bench_function("decode_resize_normalise_1_thread_512_to_224", |b| {
        b.iter(|| {
            for record in &records {
                black_box(load_sample(record, &cfg, None).expect("sample"));
            }
        })
    });
    let loader =
        DataLoader::new(records.clone(), cfg.clone(), LoaderConfig::eval(16)).expect("loader");
    group.bench_function("loader_rayon_prefetch_batch16_512_to_224", |b| {
        b.iter(|| {
            for batch in loader.iter_epoch(0) {
                black_box(batch.expect("batch"));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, data_pipeline);
criterion_main!(benches);
