//! Data-parallel training over several devices with Burn's own collective operations
//! (`burn-collective`, through `GradientsParams::all_reduce`).
//!
//! Each device holds a replica of the model and of the optimizer. Every global batch is split
//! into one shard per device; each replica computes the gradients of its shard, the gradients
//! are averaged across replicas with an all-reduce, and every replica applies the same Adam
//! step, so the replicas stay identical. With shards of equal size the averaged gradient is the
//! full-batch gradient for the per-sample loss terms (Dice, BCE); SoftCon contrasts within a
//! shard. A non-finite loss on any replica stops all of them before any weight changes.

use std::sync::mpsc::{Receiver, Sender, channel};

use anyhow::{Result, anyhow, bail};
use burn::collective::{
    CollectiveConfig, PeerId, ReduceOperation, all_reduce, finish_collective, register,
};
use burn::module::Module;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use med_datasets::{Batch, DataLoader};
use medclipseg_model::MedClipSeg;
use medclipseg_model::train::{ModelOptimizer, StepLosses, forward_loss};
use seg_losses::SegLossConfig;

use crate::backend::{Device, Inner, Train};
use crate::infer::{self, STREAM_DROPOUT, STREAM_TRAIN_NOISE, derive_seed};
use crate::text::Prompts;

/// What one epoch of data-parallel training needs.
pub struct ParallelEpoch<'a> {
    /// The devices, one replica each.
    pub devices: &'a [Device],
    /// Training data.
    pub loader: &'a DataLoader,
    /// Tokenizer.
    pub prompts: &'a Prompts,
    /// Loss.
    pub loss: &'a SegLossConfig,
    /// 0-based epoch.
    pub epoch: usize,
    /// Learning rate of the epoch.
    pub lr: f64,
    /// Run seed.
    pub seed: u64,
    /// Steps to run.
    pub steps: usize,
}

/// The contiguous shard `part` of `parts` of a batch.
pub fn shard(batch: &Batch, part: usize, parts: usize) -> Batch {
    let n = batch.len();
    let (start, end) = (part * n / parts, (part + 1) * n / parts);
    let (s2, plane) = (batch.size * batch.size, 3 * batch.size * batch.size);
    Batch {
        names: batch.names[start..end].to_vec(),
        images: batch.images[start * plane..end * plane].to_vec(),
        masks: batch.masks[start * s2..end * s2].to_vec(),
        prompts: batch.prompts[start..end].to_vec(),
        original_sizes: batch.original_sizes[start..end].to_vec(),
        mask_paths: batch.mask_paths[start..end].to_vec(),
        size: batch.size,
    }
}

/// One epoch on every device; returns replica 0's model and optimizer (all replicas are
/// identical) and the mean losses over every shard.
pub fn run_epoch(
    model: MedClipSeg<Train>,
    optimizer: ModelOptimizer<Train>,
    job: &ParallelEpoch,
) -> Result<(MedClipSeg<Train>, ModelOptimizer<Train>, StepLosses)> {
    let mut replicas = run_replicas(model, optimizer, job)?;
    let losses = mean_losses(replicas.iter().map(|r| &r.2));
    let (model, optimizer, _) = replicas.swap_remove(0);
    Ok((model, optimizer, losses))
}

/// The mean of the replicas' mean losses: the mean over all shards, as shards are equal.
fn mean_losses<'a>(per_replica: impl ExactSizeIterator<Item = &'a StepLosses>) -> StepLosses {
    let n = per_replica.len().max(1) as f64;
    let mut mean = StepLosses {
        dice: 0.0,
        bce: 0.0,
        softcon: 0.0,
        total: 0.0,
    };
    for l in per_replica {
        mean.dice += l.dice / n;
        mean.bce += l.bce / n;
        mean.softcon += l.softcon / n;
        mean.total += l.total / n;
    }
    mean
}

/// One epoch on every device; every replica's model (on the first device), optimizer and
/// mean losses, in device order.
fn run_replicas(
    model: MedClipSeg<Train>,
    optimizer: ModelOptimizer<Train>,
    job: &ParallelEpoch,
) -> Result<Vec<ReplicaOutput>> {
    let n = job.devices.len();
    if job.loader.num_samples() < n {
        bail!(
            "{} training images cannot feed {n} devices",
            job.loader.num_samples()
        );
    }
    let mut senders: Vec<Sender<Batch>> = Vec::new();
    let mut receivers: Vec<Receiver<Batch>> = Vec::new();
    for _ in 0..n {
        let (tx, rx) = channel();
        senders.push(tx);
        receivers.push(rx);
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(k, rx)| {
                let replica = model.clone().fork(&job.devices[k]);
                let optimizer = optimizer.clone();
                scope.spawn(move || replica_loop(k, replica, optimizer, rx, job))
            })
            .collect();
        let mut feed_error = None;
        for batch in job.loader.iter_epoch(job.epoch as u64).take(job.steps) {
            match batch {
                Ok(batch) if batch.len() >= n => {
                    for (k, tx) in senders.iter().enumerate() {
                        // A worker that stopped has reported why; its result tells.
                        let _ = tx.send(shard(&batch, k, n));
                    }
                }
                Ok(batch) => {
                    // The last, short batch cannot give every device a sample: skip it.
                    tracing::warn!(
                        "skipping a final batch of {} images (< {n} devices)",
                        batch.len()
                    );
                }
                Err(e) => {
                    feed_error = Some(anyhow!(e));
                    break;
                }
            }
        }
        drop(senders);
        let results: Vec<_> = workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow!("a training worker panicked")))
            })
            .collect();
        if let Some(e) = feed_error {
            return Err(e);
        }
        results.into_iter().collect()
    })
}

type ReplicaOutput = (MedClipSeg<Train>, ModelOptimizer<Train>, StepLosses);
type ReplicaResult = Result<ReplicaOutput>;

/// Trains replica `k` on the shards it receives, all-reducing gradients with the others.
fn replica_loop(
    k: usize,
    model: MedClipSeg<Train>,
    optimizer: ModelOptimizer<Train>,
    shards: Receiver<Batch>,
    job: &ParallelEpoch,
) -> ReplicaResult {
    let n = job.devices.len();
    let peer = PeerId(k as u32);
    // Not every backend's device is `Copy`, so it is cloned.
    #[allow(clippy::clone_on_copy)]
    let device = job.devices[k].clone();
    register::<Inner>(
        peer,
        device,
        CollectiveConfig::default().with_num_devices(n),
    )
    .map_err(|e| anyhow!("device {k}: cannot join the collective: {e:?}"))?;
    let (model, optimizer, outcome) = train_shards(k, model, optimizer, &shards, job);
    let finished = finish_collective::<Inner>(peer).map_err(|e| anyhow!("device {k}: {e:?}"));
    let losses = outcome?;
    finished?;
    // Replicas are identical: they all come back on the first device (replica 0 is kept).
    Ok((model.fork(&job.devices[0]), optimizer, losses))
}

/// The steps of one replica; the model and optimizer come back whatever happened.
fn train_shards(
    k: usize,
    mut model: MedClipSeg<Train>,
    mut optimizer: ModelOptimizer<Train>,
    shards: &Receiver<Batch>,
    job: &ParallelEpoch,
) -> (MedClipSeg<Train>, ModelOptimizer<Train>, Result<StepLosses>) {
    let n = job.devices.len();
    let device = &job.devices[k];
    let peer = PeerId(k as u32);
    let mut sums = [0.0f64; 4];
    let mut steps = 0usize;
    for (step, batch) in shards.iter().enumerate() {
        let tensors = match infer::to_tensors::<Train>(&batch, job.prompts, device) {
            Ok(t) => t,
            Err(e) => return (model, optimizer, Err(e)),
        };
        let tag = (step * n + k) as u64;
        <Train as Backend>::seed(
            device,
            derive_seed(job.seed, STREAM_DROPOUT, job.epoch as u64, tag),
        );
        let noise_seed = derive_seed(job.seed, STREAM_TRAIN_NOISE, job.epoch as u64, tag);
        let mut noise = crate::backend::noise::<Train>(noise_seed, noise_seed, device);
        let (terms, _) = forward_loss(&model, &tensors, job.loss, &mut noise);
        let values = StepLosses::read(&terms);
        // Every replica learns whether any loss is non-finite before anyone steps.
        match any_replica_failed(peer, !values.total.is_finite(), device) {
            Ok(false) => {}
            Ok(true) => {
                let error = anyhow!(
                    "the training loss is not finite on some device at epoch {} step {}: training \
                     stopped, the last good checkpoint is kept",
                    job.epoch + 1,
                    step + 1
                );
                return (model, optimizer, Err(error));
            }
            Err(e) => return (model, optimizer, Err(e)),
        }
        let grads = match GradientsParams::from_grads(terms.total.backward(), &model)
            .all_reduce::<Inner>(peer, ReduceOperation::Mean)
        {
            Ok(g) => g,
            Err(e) => {
                return (
                    model,
                    optimizer,
                    Err(anyhow!("device {k}: gradient all-reduce failed: {e:?}")),
                );
            }
        };
        model = optimizer.step(job.lr, model, grads);
        for (s, v) in sums
            .iter_mut()
            .zip([values.dice, values.bce, values.softcon, values.total])
        {
            *s += v;
        }
        steps += 1;
    }
    let d = steps.max(1) as f64;
    let losses = StepLosses {
        dice: sums[0] / d,
        bce: sums[1] / d,
        softcon: sums[2] / d,
        total: sums[3] / d,
    };
    (model, optimizer, Ok(losses))
}

/// All-reduces a failure flag: true when any replica failed this step.
fn any_replica_failed(peer: PeerId, failed: bool, device: &Device) -> Result<bool> {
    let flag = Tensor::<Inner, 1>::from_floats([if failed { 1.0 } else { 0.0 }], device);
    let total = all_reduce::<Inner>(peer, flag.into_primitive().tensor(), ReduceOperation::Sum)
        .map_err(|e| anyhow!("peer {peer:?}: all-reduce failed: {e:?}"))?;
    let total: f32 = Tensor::<Inner, 1>::from_primitive(TensorPrimitive::Float(total))
        .into_scalar()
        .elem();
    Ok(total > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
    use med_datasets::{
        LoaderConfig, Percent, PreprocessConfig, ReadOptions, SheetKind, SynthConfig, read_records,
    };
    use medclipseg_model::MedClipSegConfig;
    use medclipseg_model::train::reference_adam;

    use crate::backend;
    use crate::settings::RunConfig;

    fn record_bytes(model: &MedClipSeg<Train>) -> Vec<u8> {
        let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
        Recorder::<Train>::record(&recorder, model.clone().into_record(), ()).unwrap()
    }

    #[test]
    fn replicas_stay_identical_and_report_the_mean_of_their_shards() {
        let tmp = tempfile::tempdir().unwrap();
        let synth = SynthConfig {
            image_size: 32,
            train: 8,
            val: 2,
            test: 2,
            shifted: None,
            ..SynthConfig::default()
        };
        med_datasets::generate(tmp.path(), &synth).unwrap();
        let train = SheetKind::Train(Percent::try_from(100).unwrap());
        let sheet = read_records(tmp.path(), "Synthetic", train, ReadOptions::default()).unwrap();
        let preprocess = PreprocessConfig {
            size: 32,
            ..PreprocessConfig::default()
        };
        let loader = DataLoader::new(sheet.records, preprocess, LoaderConfig::train(4, 5)).unwrap();
        let config = MedClipSegConfig::micro();
        let vocab = tmp.path().join("Synthetic").join("vocab.txt");
        let prompts = Prompts::for_tower(&config.text, Some(&vocab)).unwrap();
        let devices = backend::devices("cpu,cpu").unwrap();
        let model: MedClipSeg<Train> = config.init(&devices[0]);
        let model = model.clone().load_record(model.into_record());
        let loss = RunConfig::demo().loss_config().unwrap();
        let job = ParallelEpoch {
            devices: &devices,
            loader: &loader,
            prompts: &prompts,
            loss: &loss,
            epoch: 0,
            lr: 1e-3,
            seed: 5,
            steps: loader.num_batches(),
        };
        let before = record_bytes(&model);
        let replicas = run_replicas(model, reference_adam().init(), &job).unwrap();
        assert_eq!(replicas.len(), 2);
        let (first, second) = (record_bytes(&replicas[0].0), record_bytes(&replicas[1].0));
        assert_ne!(first, before, "the epoch changed no weight");
        assert!(first == second, "the replicas diverged");
        // Each replica saw its own shards: the epoch's loss is the mean of both.
        let (a, b) = (replicas[0].2.total, replicas[1].2.total);
        assert_ne!(a, b);
        let mean = mean_losses(replicas.iter().map(|r| &r.2));
        assert!((mean.total - (a + b) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn shards_cover_the_batch_in_order() {
        let size = 2;
        let n = 5;
        let batch = Batch {
            names: (0..n).map(|i| format!("{i}")).collect(),
            images: (0..n * 3 * size * size).map(|v| v as f32).collect(),
            masks: (0..n * size * size).map(|v| v as f32).collect(),
            prompts: (0..n).map(|i| format!("p{i}")).collect(),
            original_sizes: vec![(size, size); n],
            mask_paths: vec![std::path::PathBuf::new(); n],
            size,
        };
        let parts: Vec<Batch> = (0..2).map(|k| shard(&batch, k, 2)).collect();
        assert_eq!(parts[0].names, ["0", "1"]);
        assert_eq!(parts[1].names, ["2", "3", "4"]);
        let images: Vec<f32> = parts.iter().flat_map(|p| p.images.clone()).collect();
        let masks: Vec<f32> = parts.iter().flat_map(|p| p.masks.clone()).collect();
        assert_eq!(images, batch.images);
        assert_eq!(masks, batch.masks);
    }
}
