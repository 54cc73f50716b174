//! The run configuration: what a `train`/`eval` run is. TOML or JSON files with the sections of
//! the reference's YAML configs (`dataset`, `train`, `test`, `model`), the official YAML configs
//! themselves (feature `reference-yaml`), the built-in presets ([`RunConfig::paper`],
//! [`RunConfig::paper_for`], [`RunConfig::demo`]) and `--set KEY=VALUE` overrides; plus every
//! setting derived from it (model and loss configs, preprocessing, training and evaluation
//! settings, planned epochs), declared here once for the command, the examples and the
//! checkpoints.

use std::path::{Path, PathBuf};

use clip_encoders::TextConfig;
use med_datasets::{Augmentation, ChannelOrder, PreprocessConfig};
use medclipseg_model::{MedClipSegConfig, SwitchError, SwitchPatch};
use seg_losses::{DiceMode, SegLossConfig, SoftConConfig, SoftConPooling, SoftConTargets};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use crate::config_error::{ConfigError, ConfigResult};

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

/// Everything a `train`/`eval` run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Data settings (`DATASET`).
    pub dataset: DatasetSection,
    /// Optimisation settings (`TRAIN`).
    pub train: TrainSection,
    /// Inference settings (`TEST`).
    pub test: TestSection,
    /// Model settings (`MODEL`).
    pub model: ModelSection,
}

/// `DATASET` keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatasetSection {
    /// Dataset folder name under the data root (`DATASET.NAME`).
    pub name: String,
    /// Data root holding `<name>/{Train,Val,Test}_Folder` (the reference's `./data`).
    pub root: PathBuf,
    /// Input side length (`DATASET.SIZE`); 0 means the model's image size.
    pub size: usize,
    /// Training data percentage: 10, 25, 50 or 100.
    pub percent: u8,
    /// `bgr` (the reference quirk, default) or `rgb`.
    pub channel_order: String,
    /// Random rotation in [-20, 20] degrees with p = 0.5 (the reference's only augmentation).
    pub rotate: bool,
    /// Optional extras, off by default: random flips.
    pub flips: bool,
    /// Keep a sheet row that repeats an image, as the reference's loader does (ISIC's
    /// `Train_text.xlsx` lists one image twice, so it is trained on twice); false skips the
    /// repeat with a warning.
    pub keep_duplicates: bool,
}

/// `TRAIN` keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// `TRAIN.BATCH_SIZE`.
    pub batch_size: usize,
    /// `TRAIN.NUM_EPOCHS`.
    pub epochs: usize,
    /// `TRAIN.LEARNING_RATE` (Adam, cosine-annealed per epoch to `min_lr`).
    pub learning_rate: f64,
    /// The cosine schedule's floor (`eta_min = 1e-4` in `train.py`).
    pub min_lr: f64,
    /// `TRAIN.DICE_WEIGHT`.
    pub dice_weight: f64,
    /// `TRAIN.CE_WEIGHT`.
    pub ce_weight: f64,
    /// `TRAIN.CLIP_WEIGHT` (SoftCon).
    pub clip_weight: f64,
    /// `reference` (row-wise MONAI quirk, default) or `per-image`.
    pub dice: String,
    /// SoftCon targets: `soft` (default) or `hard`.
    pub softcon_targets: String,
    /// SoftCon pooling: `mean` (default) or `attention`.
    pub softcon_pooling: String,
    /// Seed of shuffling, augmentation, adapter noise and dropout (`--seed`, reference 666).
    pub seed: u64,
    /// BERT dropout during training (reference 0.1, active as in `model.train()`); `null`
    /// keeps the model config's value.
    pub text_dropout: Option<f64>,
    /// Stop an epoch after this many steps (quick runs); `null` = the whole split.
    pub max_steps_per_epoch: Option<usize>,
    /// Training from scratch: raise `epochs` until the run makes at least this many optimizer
    /// steps, so a small dataset still trains long enough; 0 keeps `epochs` (the paper).
    pub min_steps: usize,
    /// Decoding threads of the data loader (0 = all cores).
    pub loader_threads: usize,
    /// Add SoftCon to the validation loss. The reference's validation loss is Dice + BCE only
    /// (`calc_loss` in `train.py`), so this is off by default.
    pub val_softcon: bool,
}

/// `TEST` keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestSection {
    /// `TEST.NUM_SAMPLES`: Monte-Carlo passes at test time.
    pub num_samples: usize,
    /// `TEST.USE_LATEST`: evaluate the last epoch (true, the reference) or the best one.
    pub use_latest: bool,
    /// Run and discard one extra pass first, as the reference does.
    pub discard_first_pass: bool,
    /// Largest batch of images × samples per network call; `null` = the backend's default
    /// (the command's: 32 on a GPU, 8 on a CPU).
    pub max_batch: Option<usize>,
    /// NSD tolerance in pixels (reference 2); `eval --tolerance` overrides it.
    pub nsd_tolerance: f64,
    /// Round each image's DSC and NSD to 4 decimals before the dataset mean, as the
    /// reference's `utils/eval.py` does; false averages the unrounded values.
    pub round_scores: bool,
}

/// `MODEL` keys. The model's switches are not restated here: `switches` holds the ones a run
/// sets, by the names their own structs give them, over the preset's values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// No `deny_unknown_fields` (serde does not combine it with `flatten`): every key that is not
// a field here lands in `switches`, which refuses a name that is not a switch.
#[serde(default)]
pub struct ModelSection {
    /// A preset name (`unimedclip-vit-b16`, `clip-vit-b16`, `biomedclip-vit-b16`,
    /// `pubmedclip-vit-b32`, `tiny`, `demo`) or a JSON/TOML model-config file.
    pub preset: String,
    /// Backbone weights (UniMedCLIP / CLIP state dict) loaded into the towers before training.
    pub backbone_checkpoint: Option<PathBuf>,
    /// Train with frozen towers although no `backbone_checkpoint` is set, i.e. on random
    /// frozen features (only useful for smoke tests: every score collapses). Off: an error.
    pub allow_random_towers: bool,
    /// BERT `vocab.txt` / `tokenizer.json`; `null` uses `<data-root>/<dataset>/vocab.txt`
    /// when present. CLIP towers use the embedded BPE vocabulary.
    pub tokenizer: Option<PathBuf>,
    /// `MODEL.TEMPERATURE`: SoftCon's τ, a loss setting the reference keeps with the model's;
    /// `null` = 0.2.
    pub temperature: Option<f64>,
    /// The model switches this run sets over the preset's, by name
    /// ([`MedClipSegConfig::switch_names`]): `model.gating = false`, `model.layers = [1, 2]`
    /// (`MODEL.LAYERS`), `model.interaction = "parallel"`, `model.beta`, `model.gate_init`, ...
    #[serde(flatten)]
    pub switches: SwitchPatch,
}

impl Default for DatasetSection {
    fn default() -> Self {
        Self {
            name: String::new(),
            root: PathBuf::from("data"),
            size: 0,
            percent: 100,
            channel_order: "bgr".into(),
            rotate: true,
            flips: false,
            keep_duplicates: true,
        }
    }
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            batch_size: 24,
            epochs: 100,
            learning_rate: 3e-4,
            min_lr: 1e-4,
            dice_weight: 0.5,
            ce_weight: 0.5,
            clip_weight: 0.1,
            dice: "reference".into(),
            softcon_targets: "soft".into(),
            softcon_pooling: "mean".into(),
            seed: 666,
            text_dropout: None,
            max_steps_per_epoch: None,
            min_steps: 0,
            loader_threads: 0,
            val_softcon: false,
        }
    }
}

impl Default for TestSection {
    fn default() -> Self {
        Self {
            num_samples: 30,
            use_latest: true,
            discard_first_pass: false,
            max_batch: None,
            nsd_tolerance: 2.0,
            round_scores: true,
        }
    }
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            preset: "unimedclip-vit-b16".into(),
            backbone_checkpoint: None,
            allow_random_towers: false,
            tokenizer: None,
            temperature: None,
            switches: SwitchPatch::default(),
        }
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        Self::paper()
    }
}

impl RunConfig {
    /// The paper's recipe (`configs/BUSI.yaml` and siblings): frozen UniMedCLIP towers.
    pub fn paper() -> Self {
        Self {
            dataset: DatasetSection::default(),
            train: TrainSection::default(),
            test: TestSection::default(),
            model: ModelSection::default(),
        }
    }

    /// The paper's recipe for one dataset: the common values with the departures of the
    /// official `configs/<dataset>.yaml` (EUS trains 10 epochs, Covid19 starts the gates at
    /// -0.02), taken from the dataset registry. A dataset the registry does not list gets the
    /// common values.
    pub fn paper_for(dataset: &str) -> ConfigResult<Self> {
        let mut c = Self::paper();
        c.dataset.name = dataset.to_string();
        c.apply_official_departures()?;
        Ok(c)
    }

    /// Applies the registry's departures of `dataset.name`'s official config (see [`Self::paper_for`]).
    fn apply_official_departures(&mut self) -> ConfigResult<()> {
        let registry = med_datasets::registry()
            .map_err(|e| ConfigError::Registry(crate::error::with_causes(&e)))?;
        if let Some(info) = registry.get(&self.dataset.name) {
            let departures = info.paper_config;
            if let Some(epochs) = departures.epochs {
                self.train.epochs = epochs;
            }
            if let Some(gate_init) = departures.gate_init {
                self.set_switch("gate_init", json!(gate_init))?;
            }
        }
        Ok(())
    }

    /// The embedded default: a small model trained from scratch on the synthetic data.
    pub fn demo() -> Self {
        let mut c = Self::paper();
        c.dataset.name = "Synthetic".into();
        c.model.preset = "demo".into();
        // Towers train from scratch whatever `model.preset` says (no weights ship).
        c.model
            .switches
            .set("freeze_encoders", json!(false))
            .expect("freeze_encoders is a model switch");
        c.train.batch_size = 16;
        c.train.epochs = 12;
        c.train.learning_rate = 1e-3;
        c.train.min_lr = 1e-4;
        c.train.dice = "per-image".into();
        // 300 steps took a small real CT/MR set (11 training slices) from empty masks to a
        // validation DSC of 0.6-0.7; the synthetic data makes 456 in its 12 epochs.
        c.train.min_steps = 300;
        c.test.num_samples = 8;
        c
    }

    /// `paper`, `demo`, or a `.toml`/`.json`/`.yaml` file.
    pub fn load(spec: &str) -> ConfigResult<Self> {
        match spec {
            "paper" => Ok(Self::paper()),
            "demo" => Ok(Self::demo()),
            path => Self::from_file(Path::new(path)),
        }
    }

    /// Reads a config file by extension: TOML, JSON, or the reference's YAML.
    pub fn from_file(path: &Path) -> ConfigResult<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let parsed = match ext {
            "toml" => toml::from_str(&text).map_err(|e| e.to_string()),
            "json" => serde_json::from_str(&text).map_err(|e| e.to_string()),
            #[cfg(feature = "reference-yaml")]
            "yaml" | "yml" => reference_yaml(&text),
            other => {
                return Err(ConfigError::Format {
                    path: path.to_path_buf(),
                    extension: other.to_string(),
                });
            }
        };
        parsed.map_err(|reason| ConfigError::Parse {
            path: path.to_path_buf(),
            reason: reason.trim_end().to_string(),
        })
    }

    /// Applies `KEY=VALUE` overrides; keys are `section.key`, case-insensitive, so the
    /// reference's `TRAIN.BATCH_SIZE=8` works as well as `train.batch_size=8`.
    pub fn apply_overrides(self, overrides: &[String]) -> ConfigResult<Self> {
        let mut value =
            serde_json::to_value(&self).map_err(|e| ConfigError::Overridden(e.to_string()))?;
        for item in overrides {
            let problem = |problem: String| ConfigError::Override {
                item: item.clone(),
                problem,
            };
            let (key, raw) = item
                .split_once('=')
                .ok_or_else(|| problem("expected KEY=VALUE".into()))?;
            let (section, field) = key
                .to_ascii_lowercase()
                .split_once('.')
                .map(|(s, f)| (s.to_string(), f.to_string()))
                .ok_or_else(|| problem("the key must be SECTION.KEY".into()))?;
            let field = reference_key_alias(&section, &field)
                .unwrap_or(&field)
                .to_string();
            // A model switch the config does not set yet has no slot in the JSON.
            let is_switch = section == "model" && MedClipSegConfig::switch_names().contains(&field);
            let slot = value
                .get_mut(&section)
                .and_then(|s| s.as_object_mut())
                .filter(|s| is_switch || s.contains_key(&field))
                .ok_or_else(|| problem(format!("no such key {section}.{field}")))?;
            slot.insert(field, parse_value(raw));
        }
        let config: Self =
            serde_json::from_value(value).map_err(|e| ConfigError::Overridden(e.to_string()))?;
        // The switches' types do not depend on the preset: check them now, not at first use.
        config
            .model
            .switches
            .apply_to(&mut MedClipSegConfig::micro())
            .map_err(|e| ConfigError::Overridden(switch_error(e).to_string()))?;
        Ok(config)
    }

    /// Sets the model switch `name` (see [`MedClipSegConfig::switch_names`]) over the preset's.
    pub fn set_switch(&mut self, name: &str, value: serde_json::Value) -> ConfigResult<()> {
        self.model.switches.set(name, value).map_err(switch_error)
    }

    /// The model config: the preset (or file) with this run's switches set over it.
    pub fn model_config(&self) -> ConfigResult<MedClipSegConfig> {
        let mut c = preset_or_file(&self.model.preset)?;
        self.model.switches.apply_to(&mut c).map_err(switch_error)?;
        if let (Some(p), TextConfig::Bert(bert)) = (self.train.text_dropout, &mut c.text) {
            bert.hidden_dropout_prob = p;
            bert.attention_probs_dropout_prob = p;
        }
        c.validate()
            .map_err(|e| ConfigError::Model(e.to_string()))?;
        Ok(c)
    }

    /// The training loss.
    pub fn loss_config(&self) -> ConfigResult<SegLossConfig> {
        let t = &self.train;
        let dice_mode = match t.dice.as_str() {
            "reference" => DiceMode::Reference,
            "per-image" => DiceMode::PerImage,
            other => {
                return Err(invalid(format!(
                    "train.dice {other:?}: use reference or per-image"
                )));
            }
        };
        let targets = match t.softcon_targets.as_str() {
            "soft" => SoftConTargets::Soft,
            "hard" => SoftConTargets::Hard,
            other => {
                return Err(invalid(format!(
                    "train.softcon_targets {other:?}: use soft or hard"
                )));
            }
        };
        let pooling = match t.softcon_pooling.as_str() {
            "mean" => SoftConPooling::Mean,
            "attention" => SoftConPooling::Attention,
            other => {
                return Err(invalid(format!(
                    "train.softcon_pooling {other:?}: use mean or attention"
                )));
            }
        };
        let softcon = SoftConConfig::new()
            .with_temperature(self.model.temperature.unwrap_or(0.2))
            .with_targets(targets)
            .with_pooling(pooling);
        Ok(SegLossConfig::new()
            .with_dice_weight(t.dice_weight)
            .with_bce_weight(t.ce_weight)
            .with_softcon_weight(t.clip_weight)
            .with_dice_mode(dice_mode)
            .with_softcon(softcon))
    }

    /// The validation loss: the training loss without SoftCon, as the reference's
    /// `calc_loss` (Dice + BCE), unless `train.val_softcon` is set.
    pub fn validation_loss_config(&self) -> ConfigResult<SegLossConfig> {
        let mut loss = self.loss_config()?;
        if !self.train.val_softcon {
            loss.softcon_weight = 0.0;
        }
        Ok(loss)
    }

    /// Frozen towers need pretrained weights: without `model.backbone_checkpoint` they keep
    /// their random initialisation and every score collapses. `model.allow_random_towers`
    /// accepts that explicitly (smoke tests).
    pub fn check_backbone(&self, model: &MedClipSegConfig) -> ConfigResult<()> {
        if model.freeze_encoders
            && self.model.backbone_checkpoint.is_none()
            && !self.model.allow_random_towers
        {
            return Err(ConfigError::RandomTowers {
                preset: self.model.preset.clone(),
            });
        }
        Ok(())
    }

    /// Checks the values a run depends on.
    pub fn validate(&self) -> ConfigResult<()> {
        if self.dataset.name.is_empty() {
            return Err(invalid("dataset.name is empty: pass --dataset NAME"));
        }
        self.percent()?;
        if self.train.batch_size == 0 {
            return Err(invalid("train.batch_size must be at least 1"));
        }
        if !(self.train.learning_rate > 0.0 && self.train.learning_rate.is_finite()) {
            return Err(invalid("train.learning_rate must be a positive number"));
        }
        if self.test.num_samples == 0 {
            return Err(invalid("test.num_samples must be at least 1"));
        }
        if self.test.max_batch == Some(0) {
            return Err(invalid("test.max_batch must be at least 1"));
        }
        if !(self.test.nsd_tolerance >= 0.0 && self.test.nsd_tolerance.is_finite()) {
            return Err(invalid(format!(
                "test.nsd_tolerance {}: must be a finite number of pixels, at least 0",
                self.test.nsd_tolerance
            )));
        }
        self.channel_order()?;
        self.loss_config()?;
        self.model_config()?;
        Ok(())
    }

    /// `dataset.percent` as the datasets' type.
    pub fn percent(&self) -> ConfigResult<med_datasets::Percent> {
        med_datasets::Percent::try_from(self.dataset.percent).map_err(|_| {
            invalid(format!(
                "dataset.percent {}: use 10, 25, 50 or 100",
                self.dataset.percent
            ))
        })
    }

    /// `dataset.channel_order` as the datasets' type.
    pub fn channel_order(&self) -> ConfigResult<ChannelOrder> {
        match self.dataset.channel_order.as_str() {
            "bgr" => Ok(ChannelOrder::Bgr),
            "rgb" => Ok(ChannelOrder::Rgb),
            other => Err(invalid(format!(
                "dataset.channel_order {other:?}: use bgr or rgb"
            ))),
        }
    }

    /// The input side length: `dataset.size`, or the model's image size when it is 0.
    pub fn input_size(&self, image_size: usize) -> usize {
        if self.dataset.size == 0 {
            image_size
        } else {
            self.dataset.size
        }
    }

    /// The training preprocessing for a model of `image_size` pixels: the reference pipeline
    /// (rotation) unless `dataset.rotate` is off, flips when `dataset.flips` is on.
    pub fn preprocess(&self, image_size: usize) -> PreprocessConfig {
        let mut augmentation = if self.dataset.rotate {
            Augmentation::default()
        } else {
            Augmentation::none()
        };
        if self.dataset.flips {
            augmentation.hflip_prob = 0.5;
            augmentation.vflip_prob = 0.5;
        }
        PreprocessConfig {
            augmentation,
            ..self.inference_preprocess(image_size)
        }
    }

    /// The preprocessing at evaluation and prediction: [`Self::preprocess`] without
    /// augmentation. An unknown channel order (refused by [`Self::validate`]) reads as BGR.
    pub fn inference_preprocess(&self, image_size: usize) -> PreprocessConfig {
        PreprocessConfig {
            size: self.input_size(image_size),
            channel_order: self.channel_order().unwrap_or(ChannelOrder::Bgr),
            augmentation: Augmentation::none(),
            ..PreprocessConfig::default()
        }
    }

    /// Optimizer steps per epoch for `n_train` training images: the whole split (the loader
    /// keeps the last, short batch), or `train.max_steps_per_epoch`.
    pub fn steps_per_epoch(&self, n_train: usize) -> usize {
        let batches = n_train.div_ceil(self.train.batch_size.max(1));
        self.train
            .max_steps_per_epoch
            .map_or(batches, |m| m.min(batches))
    }

    /// The epochs to run: `train.epochs`, raised until the run makes `train.min_steps` steps.
    pub fn planned_epochs(&self, n_train: usize) -> usize {
        let steps = self.steps_per_epoch(n_train).max(1);
        self.train.epochs.max(self.train.min_steps.div_ceil(steps))
    }

    /// This config with `train.epochs` set to [`Self::planned_epochs`].
    pub fn with_planned_epochs(&self, n_train: usize) -> Self {
        let mut planned = self.clone();
        planned.train.epochs = self.planned_epochs(n_train);
        planned
    }

    /// The library's training recipe; `noise` says where the adapters' noise is drawn.
    pub fn train_settings(
        &self,
        noise: crate::NoiseSource,
    ) -> ConfigResult<crate::train_settings::TrainSettings> {
        Ok(crate::train_settings::TrainSettings {
            epochs: self.train.epochs,
            learning_rate: self.train.learning_rate,
            min_lr: self.train.min_lr,
            seed: self.train.seed,
            max_steps_per_epoch: self.train.max_steps_per_epoch,
            loss: self.loss_config()?,
            validation_loss: self.validation_loss_config()?,
            noise,
        })
    }

    /// The data loaders' settings: training (shuffled with `train.seed`) and validation.
    pub fn loader_configs(&self) -> (med_datasets::LoaderConfig, med_datasets::LoaderConfig) {
        let threads = (self.train.loader_threads > 0).then_some(self.train.loader_threads);
        let train = med_datasets::LoaderConfig {
            num_threads: threads,
            ..med_datasets::LoaderConfig::train(self.train.batch_size, self.train.seed)
        };
        let validation = med_datasets::LoaderConfig {
            num_threads: threads,
            ..med_datasets::LoaderConfig::eval(self.train.batch_size)
        };
        (train, validation)
    }

    /// The options the prompt sheets are read with (`dataset.keep_duplicates`).
    pub fn read_options(&self) -> med_datasets::ReadOptions {
        med_datasets::ReadOptions {
            keep_duplicates: self.dataset.keep_duplicates,
            ..med_datasets::ReadOptions::default()
        }
    }

    /// The tokenizer vocabulary of a run: `model.tokenizer`, else the dataset's `vocab.txt`
    /// when there is one.
    pub fn vocab_path(&self) -> Option<PathBuf> {
        self.model.tokenizer.clone().or_else(|| {
            let candidate = self.dataset_dir().join("vocab.txt");
            candidate.is_file().then_some(candidate)
        })
    }

    /// `<dataset.root>/<dataset.name>`.
    pub fn dataset_dir(&self) -> PathBuf {
        self.dataset.root.join(&self.dataset.name)
    }

    /// The evaluation protocol's settings from the `test` section, with the caller's
    /// `samples` and `tolerance` when given; `default_max_batch` stands for an unset
    /// `test.max_batch`.
    pub fn eval_settings(
        &self,
        overrides: EvalOverrides,
    ) -> crate::Result<crate::eval_settings::EvalSettings> {
        let samples = overrides.samples.unwrap_or(self.test.num_samples);
        if samples == 0 {
            return Err(crate::PipelineError::NoSamples);
        }
        let mut metrics = seg_metrics::MetricsRequest::new(overrides.protocol);
        metrics.tolerances = vec![overrides.tolerance.unwrap_or(self.test.nsd_tolerance)];
        Ok(crate::eval_settings::EvalSettings {
            samples,
            discard_first_pass: self.test.discard_first_pass,
            max_batch: self.test.max_batch.unwrap_or(overrides.default_max_batch),
            metrics,
            rounded: self.test.round_scores,
            batch_size: overrides.batch_size,
            seed: overrides.seed,
            panels: overrides.panels,
            noise: overrides.noise,
        })
    }
}

/// What an evaluation takes besides the run config's `test` section.
#[derive(Debug, Clone)]
pub struct EvalOverrides {
    /// Monte-Carlo samples (`None`: `test.num_samples`).
    pub samples: Option<usize>,
    /// NSD tolerance in pixels (`None`: `test.nsd_tolerance`).
    pub tolerance: Option<f64>,
    /// The NSD protocol.
    pub protocol: seg_metrics::Protocol,
    /// Images per network call group.
    pub batch_size: usize,
    /// Seed of the Monte-Carlo noise.
    pub seed: u64,
    /// Panels written per dataset and style.
    pub panels: usize,
    /// Where the adapters' noise is drawn.
    pub noise: crate::NoiseSource,
    /// `test.max_batch` when the config leaves it unset (the backend's default).
    pub default_max_batch: usize,
}

/// A switch's error as a config error naming its `model.*` key.
fn switch_error(error: SwitchError) -> ConfigError {
    match error {
        SwitchError::Value { name, reason } => invalid(format!("model.{name}: {reason}")),
        unknown @ SwitchError::Unknown { .. } => invalid(unknown.to_string()),
    }
}

/// Our name of a reference key whose lower-cased name differs (`TRAIN.NUM_EPOCHS`).
fn reference_key_alias(section: &str, field: &str) -> Option<&'static str> {
    match (section, field) {
        ("train", "num_epochs") => Some("epochs"),
        _ => None,
    }
}

/// A JSON value when the text parses as one (numbers, booleans, lists), else a string.
fn parse_value(raw: &str) -> serde_json::Value {
    serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.to_string()))
}

/// A model config named by a preset (`tiny`, `unimedclip-vit-b16`, ...) or a JSON/TOML file.
pub fn preset_or_file(spec: &str) -> ConfigResult<MedClipSegConfig> {
    match MedClipSegConfig::preset(spec) {
        Some(c) => Ok(c),
        None => load_model_config(Path::new(spec)),
    }
}

/// A model config from a JSON or TOML file.
pub fn load_model_config(path: &Path) -> ConfigResult<MedClipSegConfig> {
    let problem = |problem: String| ConfigError::ModelFile {
        path: path.to_path_buf(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        problem(format!(
            "not a preset ({}) and not a readable model-config file ({e})",
            medclipseg_model::PRESETS.join(", ")
        ))
    })?;
    // As a JSON value first: a file of an older layout is migrated by `from_value`.
    let value: Result<serde_json::Value, String> = if path.extension().is_some_and(|e| e == "toml")
    {
        toml::from_str(&text).map_err(|e| e.to_string())
    } else {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    };
    let parsed = value.and_then(|v| MedClipSegConfig::from_value(v).map_err(|e| e.to_string()));
    let config = parsed.map_err(|e| problem(format!("invalid model config: {}", e.trim_end())))?;
    config.validate().map_err(|e| problem(e.to_string()))?;
    Ok(config)
}

/// Reads the reference's YAML config (`configs/*.yaml`), mapping its upper-case keys.
#[cfg(feature = "reference-yaml")]
fn reference_yaml(text: &str) -> Result<RunConfig, String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let mut c = RunConfig::paper();
    let get = |section: &str, key: &str| doc.get(section).and_then(|s| s.get(key));
    let as_u = |v: &serde_yaml::Value| v.as_u64().map(|x| x as usize);
    if let Some(v) = get("DATASET", "NAME").and_then(|v| v.as_str()) {
        c.dataset.name = v.to_string();
    }
    if let Some(v) = get("DATASET", "TRAIN_PATH").and_then(|v| v.as_str()) {
        // `./data/<NAME>/Train_Folder/` -> root `./data`.
        if let Some(root) = Path::new(v).parent().and_then(|p| p.parent()) {
            c.dataset.root = root.to_path_buf();
        }
    }
    if let Some(v) = get("DATASET", "SIZE").and_then(as_u) {
        c.dataset.size = v;
    }
    if let Some(v) = get("TRAIN", "BATCH_SIZE").and_then(as_u) {
        c.train.batch_size = v;
    }
    if let Some(v) = get("TRAIN", "NUM_EPOCHS").and_then(as_u) {
        c.train.epochs = v;
    }
    let float = |section: &str, key: &str| get(section, key).and_then(|v| v.as_f64());
    if let Some(v) = float("TRAIN", "LEARNING_RATE") {
        c.train.learning_rate = v;
    }
    if let Some(v) = float("TRAIN", "DICE_WEIGHT") {
        c.train.dice_weight = v;
    }
    if let Some(v) = float("TRAIN", "CE_WEIGHT") {
        c.train.ce_weight = v;
    }
    if let Some(v) = float("TRAIN", "CLIP_WEIGHT") {
        c.train.clip_weight = v;
    }
    if let Some(v) = get("TEST", "NUM_SAMPLES").and_then(as_u) {
        c.test.num_samples = v;
    }
    if let Some(v) = get("TEST", "USE_LATEST").and_then(|v| v.as_bool()) {
        c.test.use_latest = v;
    }
    let mut switch = |name: &str, value: Option<serde_json::Value>| match value {
        Some(value) => c.set_switch(name, value).map_err(|e| e.to_string()),
        None => Ok(()),
    };
    switch(
        "adapter_dim",
        get("MODEL", "ADAPTER_DIM").and_then(as_u).map(|v| json!(v)),
    )?;
    switch(
        "num_upscale",
        get("MODEL", "NUM_UPSCALE").and_then(as_u).map(|v| json!(v)),
    )?;
    switch("beta", float("MODEL", "BETA").map(|v| json!(v)))?;
    switch("gate_init", float("MODEL", "GATE_INIT").map(|v| json!(v)))?;
    let layers = get("MODEL", "LAYERS").and_then(|v| v.as_sequence());
    let layers = layers.map(|seq| json!(seq.iter().filter_map(as_u).collect::<Vec<_>>()));
    switch("layers", layers)?;
    c.model.temperature = float("MODEL", "TEMPERATURE").or(c.model.temperature);
    let clip = get("MODEL", "CLIP_MODEL")
        .and_then(|v| v.as_str())
        .unwrap_or("unimedclip");
    c.model.preset = match clip {
        "unimedclip" => "unimedclip-vit-b16",
        "clip" => "clip-vit-b16",
        "biomedclip" => "biomedclip-vit-b16",
        "pubmedclip" => "pubmedclip-vit-b32",
        other => return Err(format!("MODEL.CLIP_MODEL {other:?} is not supported")),
    }
    .to_string();
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "reference-yaml")]
    fn reference_yaml_maps_every_key() {
        let yaml = "DATASET:\n  NAME: BUSI\n  TRAIN_PATH: ./data/BUSI/Train_Folder/\n  SIZE: 224\n\
TRAIN:\n  BATCH_SIZE: 24\n  NUM_EPOCHS: 100\n  LEARNING_RATE: 0.0003\n  DICE_WEIGHT: 0.5\n  CE_WEIGHT: 0.5\n  CLIP_WEIGHT: 0.1\n\
TEST:\n  NUM_SAMPLES: 30\n  USE_LATEST: True\n\
MODEL:\n  CLIP_MODEL: unimedclip\n  BACKBONE: ViT-B/16\n  ADAPTER_DIM: 256\n  NUM_UPSCALE: 2\n  BETA: 2.35\n  GATE_INIT: 0.0\n  LAYERS: [1,2,3,4,5,6,7,8,9,10]\n  TEMPERATURE: 0.2\n  DEVICE: cuda\n";
        let c = reference_yaml(yaml).unwrap();
        assert_eq!(c.dataset.name, "BUSI");
        assert_eq!(c.dataset.root, PathBuf::from("./data"));
        assert_eq!(c.train.batch_size, 24);
        assert_eq!(
            c.model.switches.get("layers"),
            Some(&json!([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))
        );
        assert_eq!(c.model.switches.get("beta"), Some(&json!(2.35)));
        assert_eq!(c.model.preset, "unimedclip-vit-b16");
        let m = c.model_config().unwrap();
        assert_eq!(m.adapter_dim, 256);
    }

    #[test]
    fn overrides_accept_reference_and_lower_case_keys() {
        let c = RunConfig::paper()
            .apply_overrides(&[
                "TRAIN.BATCH_SIZE=8".into(),
                "model.layers=[1,2]".into(),
                "TRAIN.NUM_EPOCHS=50".into(),
            ])
            .unwrap();
        assert_eq!(c.train.batch_size, 8);
        assert_eq!(c.train.epochs, 50);
        assert_eq!(c.model.switches.get("layers"), Some(&json!([1, 2])));
        let err = RunConfig::paper()
            .apply_overrides(&["train.nope=1".into()])
            .unwrap_err();
        assert!(err.to_string().contains("no such key train.nope"), "{err}");
    }

    #[test]
    fn model_switches_are_set_by_their_names_and_checked_at_once() {
        let c = RunConfig::paper()
            .apply_overrides(&[
                "model.interaction=parallel".into(),
                "MODEL.GATING=false".into(),
            ])
            .unwrap();
        let m = c.model_config().unwrap();
        assert_eq!(
            m.adapter.interaction,
            medclipseg_model::Interaction::Parallel
        );
        assert!(!m.adapter.attention.gating);
        // Unset switches keep the preset's values.
        assert_eq!(m.adapter.attention.beta, 2.35);
        let err = RunConfig::paper()
            .apply_overrides(&["model.gating=maybe".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model.gating") && err.contains("boolean"),
            "{err}"
        );
        let err = RunConfig::paper()
            .apply_overrides(&["model.gatting=false".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such key model.gatting"), "{err}");
        let err = toml::from_str::<RunConfig>("[model]\ngatting = false\n").unwrap_err();
        assert!(err.to_string().contains("gatting"), "{err}");
        // Run configs up to main 7c039c3 wrote every switch, `null` when unset.
        let old: RunConfig = serde_json::from_str(
            r#"{"model": {"preset": "micro", "gating": false, "beta": null}}"#,
        )
        .unwrap();
        let set: Vec<&str> = old.model.switches.iter().map(|(name, _)| name).collect();
        assert_eq!(set, ["gating"]);
    }

    #[test]
    fn toml_round_trip_and_unknown_keys_are_refused() {
        let c = RunConfig::demo();
        let text = toml::to_string(&c).unwrap();
        let back: RunConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
        assert!(toml::from_str::<RunConfig>("[train]\nbatch = 3\n").is_err());
    }

    #[test]
    fn demo_and_paper_configs_are_valid_models() {
        let demo = RunConfig::demo().model_config().unwrap();
        assert!(!demo.freeze_encoders);
        let paper = RunConfig::paper().model_config().unwrap();
        assert!(paper.freeze_encoders);
        assert_eq!(paper.adapter_layers, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }

    /// `configs/<name>.yaml` of the official repository (HealthX-Lab/MedCLIPSeg), by hand:
    /// `TRAIN.NUM_EPOCHS` (`None`: the config has no `TRAIN` block, a test-only DG target)
    /// and `MODEL.GATE_INIT`. Every other value is the same in all 16 files (checked below).
    const OFFICIAL: [(&str, Option<usize>, f64); 16] = [
        ("BUSI", Some(100), 0.0),
        ("BTMRI", Some(100), 0.0),
        ("ISIC", Some(100), 0.0),
        ("Kvasir", Some(100), 0.0),
        ("Covid19", Some(100), -0.02),
        ("EUS", Some(10), 0.0),
        ("BUSUC", None, 0.0),
        ("BUSBRA", None, 0.0),
        ("BUID", None, 0.0),
        ("UDIAT", None, 0.0),
        ("BRISC", None, 0.0),
        ("UWaterlooSkinCancer", None, 0.0),
        ("ColonDB", None, 0.0),
        ("ClinicDB", None, 0.0),
        ("CVC300", None, 0.0),
        ("BKAI", None, 0.0),
    ];

    #[test]
    fn paper_config_resolves_each_official_yaml() {
        for (name, epochs, gate_init) in OFFICIAL {
            let c = RunConfig::paper_for(name).unwrap();
            c.validate().unwrap();
            assert_eq!(c.dataset.name, name);
            // Test-only configs have no TRAIN block: the common training values stand.
            assert_eq!(c.train.epochs, epochs.unwrap_or(100), "{name} epochs");
            let m = c.model_config().unwrap();
            assert_eq!(m.adapter.attention.gate_init, gate_init, "{name} gate init");
            assert_eq!(m.image_size(), 224, "{name} DATASET.SIZE");
            assert_eq!(c.train.batch_size, 24, "{name}");
            assert_eq!(c.train.learning_rate, 3e-4, "{name}");
            assert_eq!(
                (c.train.dice_weight, c.train.ce_weight, c.train.clip_weight),
                (0.5, 0.5, 0.1),
                "{name}"
            );
            assert_eq!(c.test.num_samples, 30, "{name}");
            assert!(c.test.use_latest, "{name}");
            assert_eq!(m.adapter_dim, 256, "{name}");
            assert_eq!(m.num_upscale, 2, "{name}");
            assert_eq!(m.adapter.attention.beta, 2.35, "{name}");
            assert_eq!(m.adapter_layers, (1..=10).collect::<Vec<_>>(), "{name}");
            assert_eq!(c.loss_config().unwrap().softcon.temperature, 0.2, "{name}");
            assert_eq!(c.model.preset, "unimedclip-vit-b16", "{name}");
        }
        // A folder the registry does not list gets the common values.
        let other = RunConfig::paper_for("MyScans").unwrap();
        assert_eq!(other.train.epochs, 100);
        assert_eq!(other.model.switches.get("gate_init"), None);
    }

    #[test]
    #[cfg(feature = "reference-yaml")]
    fn paper_for_equals_the_official_yaml_file() {
        let yaml = |name: &str, epochs: &str, gate: &str| {
            format!(
                "DATASET:\n  NAME: \"{name}\"\n  TRAIN_PATH: \"./data/{name}/Train_Folder/\"\n  SIZE: 224\n\
TRAIN:\n  BATCH_SIZE: 24\n  NUM_EPOCHS: {epochs}\n  LEARNING_RATE: 0.0003\n  DICE_WEIGHT: 0.5\n  CE_WEIGHT: 0.5\n  CLIP_WEIGHT: 0.1\n\
TEST:\n  NUM_SAMPLES: 30\n  USE_LATEST: True\n\
MODEL:\n  CLIP_MODEL: unimedclip\n  BACKBONE: \"ViT-B/16\"\n  ADAPTER_DIM: 256\n  NUM_UPSCALE: 2\n  BETA: 2.35\n  GATE_INIT: {gate}\n  LAYERS: [1,2,3,4,5,6,7,8,9,10]\n  TEMPERATURE: 0.2\n  DEVICE: \"cuda\"\n"
            )
        };
        for (name, epochs, gate) in [
            ("EUS", "10", "0.0"),
            ("Covid19", "100", "-0.02"),
            ("BUSI", "100", "0.0"),
        ] {
            let from_yaml = reference_yaml(&yaml(name, epochs, gate)).unwrap();
            let mut paper = RunConfig::paper_for(name).unwrap();
            paper.dataset.root = from_yaml.dataset.root.clone();
            assert_eq!(
                paper.model_config().unwrap().to_string(),
                from_yaml.model_config().unwrap().to_string(),
                "{name}"
            );
            assert_eq!(paper.train, from_yaml.train, "{name}");
            assert_eq!(paper.test, from_yaml.test, "{name}");
        }
    }

    #[test]
    fn zero_samples_and_bad_tolerances_are_refused() {
        let mut c = RunConfig::paper_for("BUSI").unwrap();
        c.test.num_samples = 0;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("test.num_samples"), "{err}");
        let mut c = RunConfig::paper_for("BUSI").unwrap();
        c.test.nsd_tolerance = -1.0;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("test.nsd_tolerance"), "{err}");
    }

    #[test]
    fn overflowing_num_upscale_is_an_error() {
        let err = RunConfig::paper()
            .apply_overrides(&["model.num_upscale=64".into()])
            .unwrap()
            .model_config()
            .unwrap_err()
            .to_string();
        assert!(err.contains("num_upscale 64"), "{err}");
    }

    #[test]
    fn validation_loss_leaves_softcon_out_unless_asked() {
        let mut c = RunConfig::paper();
        assert_eq!(c.loss_config().unwrap().softcon_weight, 0.1);
        assert_eq!(c.validation_loss_config().unwrap().softcon_weight, 0.0);
        c.train.val_softcon = true;
        assert_eq!(c.validation_loss_config().unwrap().softcon_weight, 0.1);
    }

    #[test]
    fn frozen_random_towers_are_refused_unless_allowed() {
        let mut c = RunConfig::paper_for("BUSI").unwrap();
        let model = c.model_config().unwrap();
        let err = c.check_backbone(&model).unwrap_err().to_string();
        assert!(err.contains("model.backbone_checkpoint"), "{err}");
        assert!(err.contains("model.allow_random_towers=true"), "{err}");
        c.model.allow_random_towers = true;
        c.check_backbone(&model).unwrap();
        c.model.allow_random_towers = false;
        c.model.backbone_checkpoint = Some("unimedclip.pt".into());
        c.check_backbone(&model).unwrap();
        // Towers that train need no pretrained weights.
        let demo = RunConfig::demo();
        demo.check_backbone(&demo.model_config().unwrap()).unwrap();
    }

    #[test]
    fn min_steps_raises_the_epochs_of_small_datasets_only() {
        let mut config = RunConfig::demo();
        config.train.batch_size = 16;
        config.train.epochs = 12;
        config.train.min_steps = 300;
        // 11 slices: one step per epoch.
        assert_eq!(config.planned_epochs(11), 300);
        // 19 slices: two steps per epoch (the last batch is short, not dropped).
        assert_eq!(config.steps_per_epoch(19), 2);
        assert_eq!(config.planned_epochs(19), 150);
        // The synthetic demo data (600 images, 38 steps) already makes 456 steps.
        assert_eq!(config.planned_epochs(600), 12);
        config.train.max_steps_per_epoch = Some(1);
        assert_eq!(config.planned_epochs(600), 300);
        assert_eq!(config.with_planned_epochs(600).train.epochs, 300);
        config.train.min_steps = 0;
        assert_eq!(config.planned_epochs(11), 12);
    }

    #[test]
    fn the_paper_keeps_the_official_epochs() {
        let config = RunConfig::paper();
        assert_eq!(config.train.min_steps, 0);
        assert_eq!(config.planned_epochs(5), config.train.epochs);
    }

    #[test]
    fn steps_per_epoch_agree_with_the_train_settings() {
        let mut config = RunConfig::demo();
        config.train.max_steps_per_epoch = Some(3);
        let settings = config.train_settings(crate::NoiseSource::Host).unwrap();
        for n_train in [1usize, 16, 17, 47, 48, 49, 600] {
            let batches = n_train.div_ceil(config.train.batch_size);
            assert_eq!(
                config.steps_per_epoch(n_train),
                settings.steps_per_epoch(batches),
                "{n_train}"
            );
        }
    }

    #[test]
    fn training_and_inference_preprocessing_differ_only_in_augmentation() {
        let mut config = RunConfig::demo();
        let train = config.preprocess(64);
        assert_eq!(train.size, 64);
        assert_eq!(train.channel_order, ChannelOrder::Bgr);
        assert!(train.augmentation == Augmentation::default());
        let infer = config.inference_preprocess(64);
        assert!(infer.augmentation == Augmentation::none());
        assert_eq!(
            (infer.size, infer.channel_order),
            (train.size, train.channel_order)
        );
        config.dataset.size = 48;
        config.dataset.channel_order = "rgb".into();
        config.dataset.rotate = false;
        config.dataset.flips = true;
        let train = config.preprocess(64);
        assert_eq!((train.size, train.channel_order), (48, ChannelOrder::Rgb));
        assert_eq!(train.augmentation.rotate_prob, 0.0);
        assert_eq!(train.augmentation.hflip_prob, 0.5);
    }

    #[test]
    fn unknown_names_and_keys_are_typed_errors_naming_the_key() {
        let mut c = RunConfig::demo();
        c.dataset.channel_order = "bgra".into();
        assert!(
            matches!(c.validate(), Err(ConfigError::Invalid(m)) if m.contains("channel_order"))
        );
        let err = RunConfig::demo()
            .apply_overrides(&["train".into()])
            .unwrap_err();
        assert!(matches!(err, ConfigError::Override { .. }), "{err}");
        let err = RunConfig::load("run.ini").unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }
}
