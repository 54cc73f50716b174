//! The data of a training run, read as its [`RunConfig`] says: the prompt sheets of
//! `dataset.name` under `dataset.root` at `dataset.percent`, and the loaders over them.

use med_datasets::{DataLoader, PreprocessConfig, Problem, Record, SheetKind, read_records};

use crate::error::{PipelineError, Result};
use crate::run_config::RunConfig;
use crate::trainer::TrainData;

/// The rows of a run's training and validation sheets.
#[derive(Debug, Clone)]
pub struct RunRecords {
    /// Usable training rows (a repeated image is kept unless `dataset.keep_duplicates` is off).
    pub train: Vec<Record>,
    /// Usable validation rows; empty when the dataset has no validation sheet.
    pub validation: Vec<Record>,
    /// Whether the dataset has a validation sheet (without one, `best.safetensors` follows
    /// the latest epoch).
    pub has_validation_sheet: bool,
    /// Rows skipped in either sheet (a missing image, say), for the caller to report.
    pub problems: Vec<Problem>,
}

impl RunRecords {
    /// Reads both sheets. A training sheet without a usable row is an error; only a missing
    /// validation sheet means "no validation" (a sheet that exists but cannot be read is an
    /// error).
    pub fn read(config: &RunConfig) -> Result<Self> {
        let percent = config.percent()?;
        let train_kind = SheetKind::Train(percent);
        let train = sheet(config, train_kind)?;
        if train.records.is_empty() {
            return Err(PipelineError::NoTrainRows {
                dataset: config.dataset_dir(),
                sheet: train_kind.to_string(),
            });
        }
        let val_kind = SheetKind::Val(percent);
        let has_validation_sheet =
            med_datasets::layout::sheet_path(&config.dataset_dir(), val_kind).is_some();
        let mut problems = train.problems;
        let mut validation = Vec::new();
        if has_validation_sheet {
            let sheet = sheet(config, val_kind)?;
            validation = sheet.records;
            problems.extend(sheet.problems);
        }
        Ok(Self {
            train: train.records,
            validation,
            has_validation_sheet,
            problems,
        })
    }

    /// The training prompts, in sheet order (a built vocabulary is drawn from them).
    pub fn train_prompts(&self) -> Vec<String> {
        self.train.iter().map(|r| r.prompt.clone()).collect()
    }
}

fn sheet(config: &RunConfig, kind: SheetKind) -> Result<med_datasets::SheetRecords> {
    let (root, name) = (&config.dataset.root, &config.dataset.name);
    Ok(read_records(root, name, kind, config.read_options())?)
}

impl TrainData {
    /// The loaders of a run: training rows shuffled with `train.seed` and augmented as
    /// `preprocess` says, validation rows in order, both in batches of `train.batch_size`
    /// (`train.loader_threads` decoding threads).
    pub fn for_run(
        config: &RunConfig,
        records: RunRecords,
        preprocess: &PreprocessConfig,
    ) -> Result<Self> {
        let (train_loader, validation_loader) = config.loader_configs();
        Ok(Self {
            train: DataLoader::new(records.train, preprocess.clone(), train_loader)?,
            validation: DataLoader::new(records.validation, preprocess.clone(), validation_loader)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A dataset whose training sheet (CSV) lists `a.png` twice, with no validation sheet.
    fn dataset_with_a_repeat(root: &Path) {
        let ds = root.join("Dup");
        for name in ["a.png", "b.png"] {
            for folder in ["img", "label"] {
                let path = ds.join("Train_Folder").join(folder).join(name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, b"only its existence is checked").unwrap();
            }
        }
        let prompts = ds.join("Prompts_Folder");
        std::fs::create_dir_all(&prompts).unwrap();
        std::fs::write(
            prompts.join("Train_text.csv"),
            "Image,Description,Ground Truth\na.png,one,a.png\nb.png,two,b.png\na.png,three,a.png\n",
        )
        .unwrap();
    }

    fn config(root: &Path) -> RunConfig {
        let mut config = RunConfig::paper_for("Dup").unwrap();
        config.dataset.root = root.to_path_buf();
        config
    }

    #[test]
    fn repeated_training_rows_are_kept_like_the_reference_unless_asked() {
        let tmp = tempfile::tempdir().unwrap();
        dataset_with_a_repeat(tmp.path());
        let mut config = config(tmp.path());
        assert_eq!(RunRecords::read(&config).unwrap().train.len(), 3);
        config.dataset.keep_duplicates = false;
        let records = RunRecords::read(&config).unwrap();
        assert_eq!(records.train.len(), 2);
        assert_eq!(records.problems.len(), 1);
    }

    #[test]
    fn only_a_missing_val_sheet_means_no_validation() {
        let tmp = tempfile::tempdir().unwrap();
        dataset_with_a_repeat(tmp.path());
        let config = config(tmp.path());
        let records = RunRecords::read(&config).unwrap();
        assert!(records.validation.is_empty() && !records.has_validation_sheet);
        let sheet = tmp.path().join("Dup/Prompts_Folder/Val_text.csv");
        std::fs::write(&sheet, "Picture,Words\nx,y\n").unwrap();
        let err = RunRecords::read(&config).unwrap_err().to_string();
        assert!(err.contains("Val_text.csv"), "{err}");
    }

    #[test]
    fn a_training_sheet_without_usable_rows_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        dataset_with_a_repeat(tmp.path());
        std::fs::write(
            tmp.path().join("Dup/Prompts_Folder/Train_text.csv"),
            "Image,Description,Ground Truth\nmissing.png,one,missing.png\n",
        )
        .unwrap();
        let err = RunRecords::read(&config(tmp.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no usable training rows"), "{err}");
    }
}
