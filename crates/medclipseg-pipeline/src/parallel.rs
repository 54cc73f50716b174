//! Data-parallel training over several devices with Burn's own collective operations
//! (`burn-collective`, through `GradientsParams::all_reduce`); feature `data-parallel`.
//!
//! Each device holds a replica of the model and of the optimizer. Every global batch is split
//! into one shard per device; each replica computes the gradients of its shard, the gradients
//! are averaged across replicas with an all-reduce, and every replica applies the same Adam
//! step, so the replicas stay identical. With shards of equal size the averaged gradient is the
//! full-batch gradient for the per-sample loss terms (Dice, BCE); SoftCon contrasts within a
//! shard. A non-finite loss on any replica stops all of them before any weight changes.

use std::sync::mpsc::{Receiver, Sender, channel};

use burn::collective::{
    CollectiveConfig, PeerId, ReduceOperation, all_reduce, finish_collective, register,
};
use burn::module::Module;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::backend::AutodiffBackend;
use med_datasets::{Batch, DataLoader};
use medclipseg_model::MedClipSeg;
use medclipseg_model::train::{ModelOptimizer, StepLosses, forward_loss};
use seg_losses::SegLossConfig;

use crate::error::{PipelineError, Result};
use crate::prompts::Prompts;
use crate::seeds::{NoiseSource, training_step_noise};
use crate::train_observer::{EpochStart, LossSums, StepDone, TrainObserver};
use crate::validation::to_tensors;

/// What one epoch of data-parallel training needs.
pub struct ParallelEpoch<'a, B: AutodiffBackend> {
    /// The devices, one replica each.
    pub devices: &'a [B::Device],
    /// Training data.
    pub loader: &'a DataLoader,
    /// Tokenizer.
    pub prompts: &'a Prompts,
    /// Loss.
    pub loss: &'a SegLossConfig,
    /// Where the adapters' noise is drawn.
    pub noise: NoiseSource,
    /// 0-based epoch.
    pub epoch: usize,
    /// Epochs of the run (for the observer's events).
    pub epochs: usize,
    /// Learning rate of the epoch.
    pub lr: f64,
    /// Run seed.
    pub seed: u64,
    /// Steps to run.
    pub steps: usize,
}

/// What a replica (or the whole epoch) hands back: the model on the first device, its
/// optimizer, and the mean losses of its steps.
pub struct ReplicaOutput<B: AutodiffBackend> {
    /// The model, on the first device.
    pub model: MedClipSeg<B>,
    /// The optimizer with its moments.
    pub optimizer: ModelOptimizer<B>,
    /// Mean losses over the replica's steps (over every shard for the whole epoch).
    pub losses: StepLosses,
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
pub fn run_epoch<B: AutodiffBackend>(
    model: MedClipSeg<B>,
    optimizer: ModelOptimizer<B>,
    job: &ParallelEpoch<B>,
    observer: &mut dyn TrainObserver,
) -> Result<ReplicaOutput<B>> {
    observer.epoch_started(EpochStart {
        epoch: job.epoch,
        epochs: job.epochs,
        steps: job.steps,
    });
    let replicas = run_replicas(model, optimizer, job, observer);
    observer.steps_finished(job.epoch);
    let mut replicas = replicas?;
    let losses = mean_losses(replicas.iter().map(|r| &r.losses));
    let first = replicas.swap_remove(0);
    Ok(ReplicaOutput { losses, ..first })
}

/// The mean of the replicas' mean losses: the mean over all shards, as shards are equal.
fn mean_losses<'a>(per_replica: impl ExactSizeIterator<Item = &'a StepLosses>) -> StepLosses {
    let n = per_replica.len();
    let mut sums = LossSums::default();
    for l in per_replica {
        sums.add(l);
    }
    sums.mean(n)
}

/// One epoch on every device; every replica's model (on the first device), optimizer and
/// mean losses, in device order.
fn run_replicas<B: AutodiffBackend>(
    model: MedClipSeg<B>,
    optimizer: ModelOptimizer<B>,
    job: &ParallelEpoch<B>,
    observer: &mut dyn TrainObserver,
) -> Result<Vec<ReplicaOutput<B>>> {
    let n = job.devices.len();
    if job.loader.num_samples() < n {
        return Err(PipelineError::TooFewImages {
            images: job.loader.num_samples(),
            devices: n,
        });
    }
    let (senders, receivers): (Vec<Sender<Batch>>, Vec<Receiver<Batch>>) =
        (0..n).map(|_| channel()).unzip();
    let (losses_tx, losses_rx) = channel::<ReplicaStep>();
    std::thread::scope(|scope| {
        let workers: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(k, rx)| {
                let replica = model.clone().fork(&job.devices[k]);
                let optimizer = optimizer.clone();
                let losses = losses_tx.clone();
                scope.spawn(move || replica_loop(k, replica, optimizer, rx, losses, job))
            })
            .collect();
        drop(losses_tx);
        let mut reporter = StepReporter {
            epoch: job.epoch,
            epochs: job.epochs,
            replicas: n,
            losses: &losses_rx,
            pending: Default::default(),
        };
        let feed_error = feed(job, &senders, &mut reporter, observer).err();
        drop(senders);
        reporter.report_all(observer);
        let results: Vec<_> = workers
            .into_iter()
            .map(|w| w.join().unwrap_or(Err(PipelineError::WorkerPanicked)))
            .collect();
        if let Some(e) = feed_error {
            return Err(e);
        }
        results.into_iter().collect()
    })
}

/// The losses of one replica's step, sent to the thread that holds the observer.
struct ReplicaStep {
    step: usize,
    losses: StepLosses,
}

/// Turns the replicas' step losses into the observer's step events: a step is reported once
/// all replicas have sent it, with their mean (the loss of the whole batch, as shards are
/// equal).
struct StepReporter<'a> {
    epoch: usize,
    epochs: usize,
    replicas: usize,
    losses: &'a Receiver<ReplicaStep>,
    pending: std::collections::BTreeMap<usize, (usize, LossSums)>,
}

impl StepReporter<'_> {
    fn take(&mut self, message: ReplicaStep, observer: &mut dyn TrainObserver) {
        let (count, sums) = self.pending.entry(message.step).or_default();
        *count += 1;
        sums.add(&message.losses);
        if *count == self.replicas {
            let losses = sums.mean(self.replicas);
            self.pending.remove(&message.step);
            observer.step_finished(StepDone {
                epoch: self.epoch,
                epochs: self.epochs,
                step: message.step,
                losses,
            });
        }
    }

    /// Reports the steps finished so far, without waiting.
    fn report_ready(&mut self, observer: &mut dyn TrainObserver) {
        while let Ok(message) = self.losses.try_recv() {
            self.take(message, observer);
        }
    }

    /// Reports every remaining step; returns when every replica has stopped.
    fn report_all(&mut self, observer: &mut dyn TrainObserver) {
        while let Ok(message) = self.losses.recv() {
            self.take(message, observer);
        }
    }
}

/// Sends every batch of the epoch to the replicas, one shard each; a final batch with fewer
/// images than devices is skipped (and reported to the observer).
fn feed<B: AutodiffBackend>(
    job: &ParallelEpoch<B>,
    senders: &[Sender<Batch>],
    reporter: &mut StepReporter,
    observer: &mut dyn TrainObserver,
) -> Result<()> {
    let n = senders.len();
    for batch in job.loader.iter_epoch(job.epoch as u64).take(job.steps) {
        let batch = batch?;
        if batch.len() < n {
            observer.batch_skipped(batch.len(), n);
            continue;
        }
        for (k, tx) in senders.iter().enumerate() {
            // A worker that stopped has reported why; its result tells.
            let _ = tx.send(shard(&batch, k, n));
        }
        reporter.report_ready(observer);
    }
    Ok(())
}

/// Trains replica `k` on the shards it receives, all-reducing gradients with the others.
fn replica_loop<B: AutodiffBackend>(
    k: usize,
    model: MedClipSeg<B>,
    optimizer: ModelOptimizer<B>,
    shards: Receiver<Batch>,
    losses: Sender<ReplicaStep>,
    job: &ParallelEpoch<B>,
) -> Result<ReplicaOutput<B>> {
    let n = job.devices.len();
    let peer = PeerId(k as u32);
    let collective = |e: burn::collective::CollectiveError, what: &str| PipelineError::Collective {
        device: k,
        reason: format!("{what}: {e:?}"),
    };
    register::<B::InnerBackend>(
        peer,
        job.devices[k].clone(),
        CollectiveConfig::default().with_num_devices(n),
    )
    .map_err(|e| collective(e, "cannot join the collective"))?;
    let (model, optimizer, outcome) = train_shards(k, model, optimizer, &shards, &losses, job);
    let finished = finish_collective::<B::InnerBackend>(peer)
        .map_err(|e| collective(e, "cannot leave the collective"));
    let losses = outcome?;
    finished?;
    // Replicas are identical: they all come back on the first device (replica 0 is kept).
    Ok(ReplicaOutput {
        model: model.fork(&job.devices[0]),
        optimizer,
        losses,
    })
}

/// The steps of one replica; the model and optimizer come back whatever happened.
fn train_shards<B: AutodiffBackend>(
    k: usize,
    mut model: MedClipSeg<B>,
    mut optimizer: ModelOptimizer<B>,
    shards: &Receiver<Batch>,
    losses: &Sender<ReplicaStep>,
    job: &ParallelEpoch<B>,
) -> (MedClipSeg<B>, ModelOptimizer<B>, Result<StepLosses>) {
    let mut sums = LossSums::default();
    let mut steps = 0usize;
    for (step, batch) in shards.iter().enumerate() {
        match replica_step(k, step, &model, &batch, job) {
            Ok((grads, values)) => {
                model = optimizer.step(job.lr, model, grads);
                sums.add(&values);
                steps += 1;
                // The observer's thread may have stopped listening after a failure.
                let _ = losses.send(ReplicaStep {
                    step,
                    losses: values,
                });
            }
            Err(e) => return (model, optimizer, Err(e)),
        }
    }
    (model, optimizer, Ok(sums.mean(steps)))
}

/// The averaged gradients of one step of replica `k`, and the replica's losses.
fn replica_step<B: AutodiffBackend>(
    k: usize,
    step: usize,
    model: &MedClipSeg<B>,
    batch: &Batch,
    job: &ParallelEpoch<B>,
) -> Result<(GradientsParams, StepLosses)> {
    let n = job.devices.len();
    let device = &job.devices[k];
    let peer = PeerId(k as u32);
    let tensors = to_tensors::<B>(batch, job.prompts, device)?;
    let tag = (step * n + k) as u64;
    let mut noise = training_step_noise::<B>(job.seed, job.epoch, tag, job.noise, device);
    let (terms, _) = forward_loss(model, &tensors, job.loss, &mut noise);
    let values = StepLosses::read(&terms);
    // Every replica learns whether any loss is non-finite before anyone steps.
    if any_replica_failed::<B>(k, !values.total.is_finite(), device)? {
        return Err(PipelineError::ReplicaLossNotFinite {
            epoch: job.epoch + 1,
            step: step + 1,
        });
    }
    let grads = GradientsParams::from_grads(terms.total.backward(), model)
        .all_reduce::<B::InnerBackend>(peer, ReduceOperation::Mean)
        .map_err(|e| PipelineError::Collective {
            device: k,
            reason: format!("gradient all-reduce failed: {e:?}"),
        })?;
    Ok((grads, values))
}

/// All-reduces a failure flag: true when any replica failed this step.
fn any_replica_failed<B: AutodiffBackend>(
    k: usize,
    failed: bool,
    device: &B::Device,
) -> Result<bool> {
    type Inner<B> = <B as AutodiffBackend>::InnerBackend;
    let flag = Tensor::<Inner<B>, 1>::from_floats([if failed { 1.0 } else { 0.0 }], device);
    let total = all_reduce::<Inner<B>>(
        PeerId(k as u32),
        flag.into_primitive().tensor(),
        ReduceOperation::Sum,
    )
    .map_err(|e| PipelineError::Collective {
        device: k,
        reason: format!("all-reduce failed: {e:?}"),
    })?;
    let total: f32 = Tensor::<Inner<B>, 1>::from_primitive(TensorPrimitive::Float(total))
        .into_scalar()
        .elem();
    Ok(total > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
    use med_datasets::{
        LoaderConfig, Percent, PreprocessConfig, ReadOptions, SheetKind, SynthConfig, read_records,
    };
    use medclipseg_model::MedClipSegConfig;
    use medclipseg_model::train::reference_adam;

    use crate::train_observer::Silent;

    type Train = Autodiff<Flex>;

    /// Burn's collective is one per process: tests that join it take turns.
    static COLLECTIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn collective_turn() -> std::sync::MutexGuard<'static, ()> {
        COLLECTIVE
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record_bytes(model: &MedClipSeg<Train>) -> Vec<u8> {
        let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
        Recorder::<Train>::record(&recorder, model.clone().into_record(), ()).unwrap()
    }

    /// A loader of 8 synthetic 32-px training images in batches of 4, and its tokenizer.
    fn tiny_data(dir: &std::path::Path) -> (DataLoader, Prompts) {
        let synth = SynthConfig {
            image_size: 32,
            train: 8,
            val: 2,
            test: 2,
            shifted: None,
            ..SynthConfig::default()
        };
        med_datasets::generate(dir, &synth).unwrap();
        let train = SheetKind::Train(Percent::try_from(100).unwrap());
        let sheet = read_records(dir, "Synthetic", train, ReadOptions::default()).unwrap();
        let preprocess = PreprocessConfig {
            size: 32,
            ..PreprocessConfig::default()
        };
        let loader = DataLoader::new(sheet.records, preprocess, LoaderConfig::train(4, 5)).unwrap();
        let vocab = dir.join("Synthetic").join("vocab.txt");
        let text = MedClipSegConfig::micro().text;
        let prompts = Prompts::for_tower(&text, Some(&vocab)).unwrap();
        (loader, prompts)
    }

    /// A micro model on the default device, every parameter drawn (replicas share the values).
    fn micro_model() -> MedClipSeg<Train> {
        let model: MedClipSeg<Train> = MedClipSegConfig::micro().init(&Default::default());
        model.clone().load_record(model.into_record())
    }

    #[test]
    fn replicas_stay_identical_and_report_the_mean_of_their_shards() {
        let _turn = collective_turn();
        let tmp = tempfile::tempdir().unwrap();
        let (loader, prompts) = tiny_data(tmp.path());
        let devices = vec![Default::default(), Default::default()];
        let model = micro_model();
        let loss = SegLossConfig::new();
        let job = ParallelEpoch::<Train> {
            devices: &devices,
            loader: &loader,
            prompts: &prompts,
            loss: &loss,
            noise: NoiseSource::Host,
            epoch: 0,
            epochs: 1,
            lr: 1e-3,
            seed: 5,
            steps: loader.num_batches(),
        };
        let before = record_bytes(&model);
        let replicas = run_replicas(model, reference_adam().init(), &job, &mut Silent).unwrap();
        assert_eq!(replicas.len(), 2);
        let (first, second) = (
            record_bytes(&replicas[0].model),
            record_bytes(&replicas[1].model),
        );
        assert_ne!(first, before, "the epoch changed no weight");
        assert!(first == second, "the replicas diverged");
        // Each replica saw its own shards: the epoch's loss is the mean of both.
        let (a, b) = (replicas[0].losses.total, replicas[1].losses.total);
        assert_ne!(a, b);
        let mean = mean_losses(replicas.iter().map(|r| &r.losses));
        assert!((mean.total - (a + b) / 2.0).abs() < 1e-12);
    }

    /// Every event a [`TrainObserver`] gets, in order.
    #[derive(Default)]
    struct Events {
        started: Vec<EpochStart>,
        steps: Vec<StepDone>,
        finished: Vec<usize>,
    }

    impl TrainObserver for Events {
        fn epoch_started(&mut self, epoch: EpochStart) {
            self.started.push(epoch);
        }
        fn step_finished(&mut self, step: StepDone) {
            self.steps.push(step);
        }
        fn steps_finished(&mut self, epoch: usize) {
            self.finished.push(epoch);
        }
    }

    #[test]
    fn a_two_replica_epoch_reports_its_steps_like_one_device() {
        let _turn = collective_turn();
        let tmp = tempfile::tempdir().unwrap();
        let (loader, prompts) = tiny_data(tmp.path());
        let devices = vec![Default::default(), Default::default()];
        let loss = SegLossConfig::new();
        let job = ParallelEpoch::<Train> {
            devices: &devices,
            loader: &loader,
            prompts: &prompts,
            loss: &loss,
            noise: NoiseSource::Host,
            epoch: 1,
            epochs: 3,
            lr: 1e-3,
            seed: 5,
            steps: loader.num_batches(),
        };
        let mut events = Events::default();
        let model = micro_model();
        let out = run_epoch(model, reference_adam().init(), &job, &mut events).unwrap();
        assert_eq!(loader.num_batches(), 2);
        let [started] = events.started.as_slice() else {
            panic!("{} epoch starts", events.started.len());
        };
        assert_eq!((started.epoch, started.epochs, started.steps), (1, 3, 2));
        let steps: Vec<usize> = events.steps.iter().map(|s| s.step).collect();
        assert_eq!(steps, [0, 1]);
        assert!(events.steps.iter().all(|s| s.epoch == 1 && s.epochs == 3));
        assert_eq!(events.finished, [1]);
        // The steps' losses are the replicas' means: they average to the epoch's.
        let mean = events.steps.iter().map(|s| s.losses.total).sum::<f64>() / 2.0;
        assert!(
            (mean - out.losses.total).abs() < 1e-9,
            "{mean} vs {}",
            out.losses.total
        );
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
