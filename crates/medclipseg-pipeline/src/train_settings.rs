//! The optimisation recipe of a run, apart from the loop that follows it (so that the run
//! configuration can derive it without importing the trainer).

use seg_losses::SegLossConfig;

use crate::seeds::NoiseSource;

/// How a run trains: the optimisation recipe, independent of where the data comes from.
#[derive(Debug, Clone)]
pub struct TrainSettings {
    /// Epochs of the whole run (the cosine schedule spans them).
    pub epochs: usize,
    /// Adam's learning rate at epoch 0.
    pub learning_rate: f64,
    /// The cosine schedule's floor.
    pub min_lr: f64,
    /// Seed of the adapters' noise and of dropout (shuffling is the loader's own seed).
    pub seed: u64,
    /// Stop every epoch after this many steps; `None` = the whole split.
    pub max_steps_per_epoch: Option<usize>,
    /// The training loss.
    pub loss: SegLossConfig,
    /// The validation loss (the reference's is Dice + BCE: the training loss without SoftCon).
    pub validation_loss: SegLossConfig,
    /// Where the adapters' noise is drawn.
    pub noise: NoiseSource,
}

impl TrainSettings {
    /// The reference recipe for `epochs` epochs: learning rate 3e-4 annealed to 1e-4, seed
    /// 666, the weighted Dice + BCE + SoftCon loss, validation on Dice + BCE, host noise.
    pub fn reference(epochs: usize) -> Self {
        let loss = SegLossConfig::new();
        let mut validation_loss = loss.clone();
        validation_loss.softcon_weight = 0.0;
        Self {
            epochs,
            learning_rate: 3e-4,
            min_lr: 1e-4,
            seed: 666,
            max_steps_per_epoch: None,
            loss,
            validation_loss,
            noise: NoiseSource::Host,
        }
    }

    /// Batches per epoch for a loader of `batches` batches.
    pub fn steps_per_epoch(&self, batches: usize) -> usize {
        self.max_steps_per_epoch.map_or(batches, |m| m.min(batches))
    }
}
