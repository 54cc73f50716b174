//! A `DataLoader`-like batch iterator: seeded shuffling, `drop_last = false`, parallel decoding
//! with rayon, and a prefetch thread that keeps a bounded number of batches ready.
//!
//! Determinism: the order of epoch `e` is a ChaCha8 permutation seeded by `(seed, e)`, and the
//! augmentation of a sample uses its own ChaCha8 stream seeded by `(seed, e, record index)`, so
//! the batches do not depend on thread scheduling or on the number of threads.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::layout::Record;
use crate::preprocess::{PreprocessConfig, Sample, load_sample};

/// Loader settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Samples per batch (reference 24). The last batch may be smaller (`drop_last = false`).
    pub batch_size: usize,
    /// Shuffle each epoch (training) or keep the record order (evaluation).
    pub shuffle: bool,
    /// Apply the training augmentation of the preprocessing config.
    pub augment: bool,
    /// Seed of the shuffling and augmentation streams.
    pub seed: u64,
    /// Batches decoded ahead of the consumer.
    pub prefetch: usize,
    /// Decoding threads (`None`: rayon's global pool).
    pub num_threads: Option<usize>,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 24,
            shuffle: false,
            augment: false,
            seed: 666,
            prefetch: 2,
            num_threads: None,
        }
    }
}

impl LoaderConfig {
    /// Training settings: shuffle and augment.
    pub fn train(batch_size: usize, seed: u64) -> Self {
        Self {
            batch_size,
            shuffle: true,
            augment: true,
            seed,
            ..Self::default()
        }
    }

    /// Evaluation settings: file order, no augmentation.
    pub fn eval(batch_size: usize) -> Self {
        Self {
            batch_size,
            ..Self::default()
        }
    }
}

/// A batch of samples, flattened for conversion into tensors by the model side.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Image names, one per sample.
    pub names: Vec<String>,
    /// Images `[B, 3, S, S]`, row-major.
    pub images: Vec<f32>,
    /// Masks `[B, S, S]`, values 0.0/1.0.
    pub masks: Vec<f32>,
    /// Prompts, raw.
    pub prompts: Vec<String>,
    /// Original `(height, width)` of each image.
    pub original_sizes: Vec<(usize, usize)>,
    /// Paths of the original masks.
    pub mask_paths: Vec<std::path::PathBuf>,
    /// Side length `S`.
    pub size: usize,
}

impl Batch {
    /// Number of samples `B`.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True for a batch without samples.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Stacks samples (all of the same size) into a batch.
    pub fn from_samples(samples: Vec<Sample>) -> Self {
        let size = samples.first().map_or(0, |s| s.size);
        let mut batch = Batch {
            names: Vec::with_capacity(samples.len()),
            images: Vec::with_capacity(samples.len() * 3 * size * size),
            masks: Vec::with_capacity(samples.len() * size * size),
            prompts: Vec::with_capacity(samples.len()),
            original_sizes: Vec::with_capacity(samples.len()),
            mask_paths: Vec::with_capacity(samples.len()),
            size,
        };
        for s in samples {
            batch.names.push(s.name);
            batch.images.extend_from_slice(&s.image);
            batch.masks.extend_from_slice(&s.mask);
            batch.prompts.push(s.prompt);
            batch.original_sizes.push(s.original_size);
            batch.mask_paths.push(s.mask_path);
        }
        batch
    }
}

/// Seed of sample `index`'s augmentation stream in `epoch` (SplitMix64-style mixing).
pub fn sample_seed(seed: u64, epoch: u64, index: usize) -> u64 {
    let mut z = seed
        ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The batch loader over a fixed list of records.
#[derive(Debug, Clone)]
pub struct DataLoader {
    records: Arc<Vec<Record>>,
    preprocess: Arc<PreprocessConfig>,
    config: LoaderConfig,
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl DataLoader {
    /// Creates a loader; fails on a zero batch size or an invalid preprocessing config.
    pub fn new(
        records: Vec<Record>,
        preprocess: PreprocessConfig,
        config: LoaderConfig,
    ) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(Error::Config("batch size must be > 0".into()));
        }
        preprocess.validate()?;
        let pool = match config.num_threads {
            Some(n) => Some(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n.max(1))
                    .build()
                    .map_err(|e| {
                        Error::Config(format!("cannot start {n} decoding threads: {e}"))
                    })?,
            )),
            None => None,
        };
        Ok(Self {
            records: Arc::new(records),
            preprocess: Arc::new(preprocess),
            config,
            pool,
        })
    }

    /// Number of records.
    pub fn num_samples(&self) -> usize {
        self.records.len()
    }

    /// Number of batches per epoch (the last one may be partial).
    pub fn num_batches(&self) -> usize {
        self.records.len().div_ceil(self.config.batch_size)
    }

    /// The record order of `epoch` (indices into the record list).
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.records.len()).collect();
        if self.config.shuffle {
            let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed);
            rng.set_stream(epoch);
            order.shuffle(&mut rng);
        }
        order
    }

    /// Iterates over the batches of `epoch`, decoding ahead on a background thread.
    pub fn iter_epoch(&self, epoch: u64) -> BatchIter {
        let order = self.epoch_order(epoch);
        let chunks: Vec<Vec<usize>> = order
            .chunks(self.config.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        let (sender, receiver) = sync_channel(self.config.prefetch.max(1));
        let loader = self.clone();
        let worker = std::thread::spawn(move || {
            for chunk in chunks {
                let batch = loader.load_batch(&chunk, epoch);
                if sender.send(batch).is_err() {
                    return; // the consumer went away
                }
            }
        });
        BatchIter {
            receiver,
            worker: Some(worker),
        }
    }

    /// Loads the records at `indices` as one batch (in parallel).
    pub fn load_batch(&self, indices: &[usize], epoch: u64) -> Result<Batch> {
        let load = || -> Result<Vec<Sample>> {
            indices
                .par_iter()
                .map(|&i| self.load_one(i, epoch))
                .collect()
        };
        let samples = match &self.pool {
            Some(pool) => pool.install(load)?,
            None => load()?,
        };
        Ok(Batch::from_samples(samples))
    }

    fn load_one(&self, index: usize, epoch: u64) -> Result<Sample> {
        let record = self
            .records
            .get(index)
            .ok_or_else(|| Error::Config(format!("record index {index} out of range")))?;
        if self.config.augment {
            let mut rng = ChaCha8Rng::seed_from_u64(sample_seed(self.config.seed, epoch, index));
            load_sample(record, &self.preprocess, Some(&mut rng))
        } else {
            load_sample(record, &self.preprocess, None)
        }
    }
}

/// Iterator over the batches of one epoch. A batch with an unreadable sample is an `Err`; the
/// following batches still come.
#[derive(Debug)]
pub struct BatchIter {
    receiver: Receiver<Result<Batch>>,
    worker: Option<JoinHandle<()>>,
}

impl Iterator for BatchIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.receiver.recv() {
            Ok(batch) => Some(batch),
            Err(_) => {
                if let Some(worker) = self.worker.take() {
                    let _ = worker.join();
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::{Image8, write_png};

    /// `n` records of 8x6 images whose pixels encode the index, with a matching mask.
    fn records(dir: &std::path::Path, n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| {
                let image_path = dir.join(format!("img/{i:03}.png"));
                let mask_path = dir.join(format!("label/{i:03}.png"));
                let img = Image8::from_vec(8, 6, 3, vec![(i * 10) as u8; 8 * 6 * 3]).unwrap();
                let mut mask = Image8::zeros(8, 6, 1);
                mask.data[..8].fill(255);
                write_png(&image_path, &img).unwrap();
                write_png(&mask_path, &mask).unwrap();
                Record {
                    name: format!("{i:03}.png"),
                    image_path,
                    mask_path,
                    prompt: format!("prompt {i}"),
                }
            })
            .collect()
    }

    fn small_config() -> PreprocessConfig {
        PreprocessConfig {
            size: 8,
            ..Default::default()
        }
    }

    #[test]
    fn batches_cover_every_record_once_without_drop_last() {
        let dir = tempfile::tempdir().unwrap();
        let loader = DataLoader::new(
            records(dir.path(), 7),
            small_config(),
            LoaderConfig::train(3, 1),
        )
        .unwrap();
        assert_eq!(loader.num_batches(), 3);
        let batches: Vec<Batch> = loader.iter_epoch(0).map(Result::unwrap).collect();
        assert_eq!(
            batches.iter().map(Batch::len).collect::<Vec<_>>(),
            [3, 3, 1]
        );
        let mut names: Vec<String> = batches.iter().flat_map(|b| b.names.clone()).collect();
        names.sort();
        assert_eq!(names.len(), 7);
        names.dedup();
        assert_eq!(names.len(), 7);
        let b = &batches[0];
        assert_eq!(b.images.len(), 3 * 3 * 64);
        assert_eq!(b.masks.len(), 3 * 64);
        assert_eq!(b.original_sizes[0], (6, 8));
        assert_eq!(b.size, 8);
    }

    #[test]
    fn shuffling_and_augmentation_are_deterministic_across_thread_counts() {
        let dir = tempfile::tempdir().unwrap();
        let recs = records(dir.path(), 10);
        let collect = |threads, epoch| -> Vec<Batch> {
            let cfg = LoaderConfig {
                num_threads: Some(threads),
                ..LoaderConfig::train(4, 9)
            };
            DataLoader::new(recs.clone(), small_config(), cfg)
                .unwrap()
                .iter_epoch(epoch)
                .map(Result::unwrap)
                .collect()
        };
        let a = collect(1, 0);
        assert_eq!(a, collect(3, 0));
        let b = collect(2, 1);
        assert_ne!(
            a.iter().flat_map(|x| x.names.clone()).collect::<Vec<_>>(),
            b.iter().flat_map(|x| x.names.clone()).collect::<Vec<_>>(),
            "different epochs shuffle differently"
        );
    }

    #[test]
    fn eval_keeps_record_order() {
        let dir = tempfile::tempdir().unwrap();
        let loader = DataLoader::new(
            records(dir.path(), 5),
            small_config(),
            LoaderConfig::eval(2),
        )
        .unwrap();
        let names: Vec<String> = loader
            .iter_epoch(0)
            .flat_map(|b| b.unwrap().names)
            .collect();
        assert_eq!(
            names,
            ["000.png", "001.png", "002.png", "003.png", "004.png"]
        );
    }

    #[test]
    fn a_corrupt_image_fails_its_batch_only() {
        let dir = tempfile::tempdir().unwrap();
        let recs = records(dir.path(), 4);
        std::fs::write(&recs[1].image_path, b"not a png").unwrap();
        let loader = DataLoader::new(recs, small_config(), LoaderConfig::eval(2)).unwrap();
        let results: Vec<Result<Batch>> = loader.iter_epoch(0).collect();
        assert_eq!(results.len(), 2);
        let err = results[0].as_ref().unwrap_err().to_string();
        assert!(err.contains("001.png"), "{err}");
        assert!(results[1].is_ok());
    }

    #[test]
    fn missing_mask_and_size_mismatch_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let recs = records(dir.path(), 2);
        std::fs::remove_file(&recs[0].mask_path).unwrap();
        write_png(&recs[1].mask_path, &Image8::zeros(5, 6, 1)).unwrap();
        let cfg = small_config();
        let err = load_sample(&recs[0], &cfg, None).unwrap_err().to_string();
        assert!(err.contains("label/000.png"), "{err}");
        let err = load_sample(&recs[1], &cfg, None).unwrap_err().to_string();
        assert!(
            err.contains("001.png") && err.contains("8x6") && err.contains("5x6"),
            "{err}"
        );
    }

    #[test]
    fn dropping_the_iterator_early_stops_the_worker() {
        let dir = tempfile::tempdir().unwrap();
        let loader = DataLoader::new(
            records(dir.path(), 9),
            small_config(),
            LoaderConfig::eval(1),
        )
        .unwrap();
        let mut it = loader.iter_epoch(0);
        assert!(it.next().is_some());
        drop(it); // must not hang
        assert!(DataLoader::new(vec![], small_config(), LoaderConfig::eval(0)).is_err());
    }

    #[test]
    fn sample_seeds_differ() {
        assert_ne!(sample_seed(1, 0, 0), sample_seed(1, 0, 1));
        assert_ne!(sample_seed(1, 0, 0), sample_seed(1, 1, 0));
        assert_ne!(sample_seed(1, 0, 0), sample_seed(2, 0, 0));
    }
}
