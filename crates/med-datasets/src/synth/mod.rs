//! The synthetic text-guided segmentation dataset: the project's embedded default.
//!
//! Each image shows ultrasound-like tissue with 0 to 3 lesions, each in its own cell of a 3x3
//! grid, with a size (small/medium/large), a shape (round/oval/irregular) and a brightness
//! (dark/bright). The prompt names **one** lesion by its attributes and location ("one small
//! round dark lesion located in top left of the image") and the mask contains only that lesion,
//! so the text decides which blob to segment. Images without lesion say "no lesion in the
//! image." and have an empty mask.
//!
//! [`generate`] writes the packaged layout (`Train/Val/Test_Folder`, `Prompts_Folder` with the
//! 10/25/50 % subsets, nested, and the five test prompt styles), a `vocab.txt` covering every
//! prompt, and a `synth.json` with the configuration. A second dataset (default
//! `SyntheticShifted`) has a different appearance (endoscopy-like colour, other speckle, gamma)
//! and only a test split, for domain-generalisation runs. Output is byte-identical for a seed.

mod render;
mod scene;
mod text;

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use scene::{Brightness, Lesion, Location, Scene, Shape, Size};
pub use text::vocabulary;

pub use crate::vocab::{SPECIAL_TOKENS, basic_tokens};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::imaging::write_png;
use crate::kinds::{Percent, PromptStyle, SheetKind, Split};
use crate::layout::{IMAGE_FOLDER, MASK_FOLDER, PROMPTS_FOLDER};
use crate::sheet::{PromptEntry, SheetFormat, write_prompt_sheet};
use text::Domain;

/// Name of the vocabulary file written into each synthetic dataset folder.
pub const VOCAB_FILE: &str = "vocab.txt";
/// Name of the marker file that records how a synthetic dataset was generated.
pub const MARKER_FILE: &str = "synth.json";

/// The shifted-domain dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShiftedConfig {
    /// Folder name (default `SyntheticShifted`).
    pub name: String,
    /// Test images.
    pub test: usize,
}

impl Default for ShiftedConfig {
    fn default() -> Self {
        Self {
            name: "SyntheticShifted".into(),
            test: 100,
        }
    }
}

/// Settings of [`generate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthConfig {
    /// Seed of everything.
    pub seed: u64,
    /// Folder name of the main dataset (default `Synthetic`).
    pub name: String,
    /// Side of the square images in pixels (default 128, at least 32).
    pub image_size: usize,
    /// Training images.
    pub train: usize,
    /// Validation images.
    pub val: usize,
    /// Test images.
    pub test: usize,
    /// Format of the prompt sheets.
    pub sheet_format: SheetFormat,
    /// Relative odds of 0, 1, 2 and 3 lesions in an image.
    pub lesion_count_weights: [f64; 4],
    /// The shifted-domain dataset, if wanted.
    pub shifted: Option<ShiftedConfig>,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            seed: 666,
            name: "Synthetic".into(),
            image_size: 128,
            train: 400,
            val: 50,
            test: 100,
            sheet_format: SheetFormat::Xlsx,
            lesion_count_weights: [0.1, 0.3, 0.35, 0.25],
            shifted: Some(ShiftedConfig::default()),
        }
    }
}

impl SynthConfig {
    fn validate(&self) -> Result<()> {
        if self.image_size < 32 {
            return Err(Error::Config(format!(
                "image_size {} is below 32",
                self.image_size
            )));
        }
        let w = &self.lesion_count_weights;
        if w.iter().any(|v| *v < 0.0 || !v.is_finite()) || w.iter().sum::<f64>() <= 0.0 {
            return Err(Error::Config(
                "lesion_count_weights must be >= 0 with a positive sum".into(),
            ));
        }
        let mut names = vec![self.name.as_str()];
        if let Some(shifted) = &self.shifted {
            names.push(shifted.name.as_str());
        }
        for name in &names {
            if name.is_empty() || name.contains(['/', '\\']) || *name == "." || *name == ".." {
                return Err(Error::Config(format!("invalid dataset name {name:?}")));
            }
        }
        if names.len() == 2 && names[0] == names[1] {
            return Err(Error::Config(
                "the shifted dataset needs its own name".into(),
            ));
        }
        Ok(())
    }
}

/// What one generated dataset holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynthDatasetSummary {
    /// Folder name.
    pub name: String,
    /// Folder path.
    pub dir: PathBuf,
    /// Training images.
    pub train: usize,
    /// Validation images.
    pub val: usize,
    /// Test images.
    pub test: usize,
    /// Images with 0, 1, 2 and 3 lesions (all splits).
    pub lesion_histogram: [usize; 4],
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynthSummary {
    /// The main dataset, then the shifted one if any.
    pub datasets: Vec<SynthDatasetSummary>,
    /// Tokens in `vocab.txt`.
    pub vocab_size: usize,
}

/// Generates the synthetic dataset(s) under `root`, deterministically from `cfg.seed`.
///
/// An existing dataset folder is replaced only if it was generated before (it holds
/// `synth.json`); any other existing, non-empty folder is an error.
pub fn generate(root: &Path, cfg: &SynthConfig) -> Result<SynthSummary> {
    cfg.validate()?;
    let vocab = vocabulary();
    let mut datasets = Vec::new();
    let main = DatasetPlan {
        name: &cfg.name,
        domain: Domain::Ultrasound,
        domain_id: 0,
        splits: vec![
            (Split::Train, cfg.train),
            (Split::Val, cfg.val),
            (Split::Test, cfg.test),
        ],
    };
    datasets.push(write_dataset(root, cfg, &main, &vocab)?);
    if let Some(shifted) = &cfg.shifted {
        let plan = DatasetPlan {
            name: &shifted.name,
            domain: Domain::Endoscopy,
            domain_id: 1,
            splits: vec![(Split::Test, shifted.test)],
        };
        datasets.push(write_dataset(root, cfg, &plan, &vocab)?);
    }
    Ok(SynthSummary {
        datasets,
        vocab_size: vocab.len(),
    })
}

/// One dataset to write.
struct DatasetPlan<'a> {
    name: &'a str,
    domain: Domain,
    domain_id: u64,
    splits: Vec<(Split, usize)>,
}

/// One generated image: its files and its prompts in every style.
struct Item {
    file_name: String,
    image_png: crate::imaging::Image8,
    mask_png: crate::imaging::Image8,
    prompts: Vec<(PromptStyle, String)>,
    lesions: usize,
}

/// Independent random streams per image, so images can be made in parallel.
fn stream(domain: u64, split: Split, index: usize, purpose: u64) -> u64 {
    let split_id = match split {
        Split::Train => 0,
        Split::Val => 1,
        Split::Test => 2,
    };
    (domain << 48) | (split_id << 40) | ((index as u64) << 4) | purpose
}

fn rng_for(seed: u64, stream_id: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream_id);
    rng
}

fn make_item(cfg: &SynthConfig, plan: &DatasetPlan, split: Split, index: usize) -> Item {
    let side = cfg.image_size;
    let prefix = match plan.domain {
        Domain::Ultrasound => "",
        Domain::Endoscopy => "shifted_",
    };
    let mut scene_rng = rng_for(cfg.seed, stream(plan.domain_id, split, index, 0));
    let scene = scene::sample_scene(&mut scene_rng, side as f32, &cfg.lesion_count_weights);
    let mut render_rng = rng_for(cfg.seed, stream(plan.domain_id, split, index, 1));
    let (image_png, mask_png) = render::render(&scene, side, plan.domain, &mut render_rng);
    let mut text_rng = rng_for(cfg.seed, stream(plan.domain_id, split, index, 2));
    let styles: &[PromptStyle] = if split == Split::Test {
        &PromptStyle::ALL
    } else {
        &[PromptStyle::Original]
    };
    let prompts = styles
        .iter()
        .map(|&style| {
            (
                style,
                text::styled(style, scene.named_lesion(), plan.domain, &mut text_rng),
            )
        })
        .collect();
    Item {
        file_name: format!("{prefix}{}_{index:04}.png", split.as_str()),
        image_png,
        mask_png,
        prompts,
        lesions: scene.lesions.len(),
    }
}

fn write_dataset(
    root: &Path,
    cfg: &SynthConfig,
    plan: &DatasetPlan,
    vocab: &[String],
) -> Result<SynthDatasetSummary> {
    let dir = root.join(plan.name);
    prepare_dir(&dir)?;
    let mut summary = SynthDatasetSummary {
        name: plan.name.to_string(),
        dir: dir.clone(),
        train: 0,
        val: 0,
        test: 0,
        lesion_histogram: [0; 4],
    };
    for &(split, count) in &plan.splits {
        let items: Vec<Item> = (0..count)
            .into_par_iter()
            .map(|i| make_item(cfg, plan, split, i))
            .collect();
        let split_dir = dir.join(split.folder());
        items.par_iter().try_for_each(|item| -> Result<()> {
            write_png(
                &split_dir.join(IMAGE_FOLDER).join(&item.file_name),
                &item.image_png,
            )?;
            write_png(
                &split_dir.join(MASK_FOLDER).join(&item.file_name),
                &item.mask_png,
            )
        })?;
        for item in &items {
            summary.lesion_histogram[item.lesions.min(3)] += 1;
        }
        write_split_sheets(&dir, cfg, plan, split, &items)?;
        match split {
            Split::Train => summary.train = count,
            Split::Val => summary.val = count,
            Split::Test => summary.test = count,
        }
    }
    let mut vocab_text = vocab.join("\n");
    vocab_text.push('\n');
    fsutil::write_atomic(&dir.join(VOCAB_FILE), vocab_text.as_bytes())?;
    let marker = serde_json::json!({ "generator": "med-datasets synthetic", "config": cfg, "dataset": summary.name });
    let marker_text =
        serde_json::to_string_pretty(&marker).map_err(|e| Error::Config(e.to_string()))?;
    fsutil::write_atomic(&dir.join(MARKER_FILE), marker_text.as_bytes())?;
    Ok(summary)
}

/// Refuses to overwrite a folder this generator did not make; clears one it made.
fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.join(MARKER_FILE).is_file() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    } else if dir.is_dir()
        && std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .next()
            .is_some()
    {
        return Err(Error::layout(
            dir,
            format!("exists, is not empty and has no {MARKER_FILE}: refusing to overwrite it"),
        ));
    }
    fsutil::create_dir_all(dir)
}

/// Writes the sheets of one split: the styles for test, the nested percentages for train/val.
fn write_split_sheets(
    dir: &Path,
    cfg: &SynthConfig,
    plan: &DatasetPlan,
    split: Split,
    items: &[Item],
) -> Result<()> {
    let entries_for = |style: PromptStyle, subset: &[usize]| -> Vec<PromptEntry> {
        let mut entries: Vec<PromptEntry> = subset
            .iter()
            .map(|&i| {
                let item = &items[i];
                let prompt = item
                    .prompts
                    .iter()
                    .find(|(s, _)| *s == style)
                    .map(|(_, p)| p.clone())
                    .unwrap_or_default();
                PromptEntry {
                    image: item.file_name.clone(),
                    description: prompt,
                    ground_truth: item.file_name.clone(),
                }
            })
            .collect();
        entries.sort_by(|a, b| a.image.cmp(&b.image));
        entries
    };
    let sheet_file = |kind: SheetKind| {
        dir.join(PROMPTS_FOLDER).join(format!(
            "{}.{}",
            kind.file_stem(),
            cfg.sheet_format.extension()
        ))
    };
    let all: Vec<usize> = (0..items.len()).collect();
    match split {
        Split::Test => {
            for style in PromptStyle::ALL {
                write_prompt_sheet(
                    &sheet_file(SheetKind::Test(style)),
                    &entries_for(style, &all),
                    cfg.sheet_format,
                )?;
            }
        }
        Split::Train | Split::Val => {
            let mut order = all.clone();
            order.shuffle(&mut rng_for(cfg.seed, stream(plan.domain_id, split, 0, 3)));
            for percent in Percent::ALL {
                let n = subset_size(items.len(), percent);
                let kind = if split == Split::Train {
                    SheetKind::Train(percent)
                } else {
                    SheetKind::Val(percent)
                };
                write_prompt_sheet(
                    &sheet_file(kind),
                    &entries_for(PromptStyle::Original, &order[..n]),
                    cfg.sheet_format,
                )?;
            }
        }
    }
    Ok(())
}

/// `floor(n * p / 100)`, at least 1 when `n > 0` (the real 10 % files round down too).
fn subset_size(n: usize, percent: Percent) -> usize {
    if n == 0 {
        return 0;
    }
    (n * usize::from(percent.value()) / 100).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::read_gray;
    use crate::layout::{ReadOptions, inspect, read_records};
    use crate::sheet::read_prompt_sheet;
    use std::collections::BTreeMap;

    fn small(seed: u64) -> SynthConfig {
        SynthConfig {
            seed,
            image_size: 32,
            train: 12,
            val: 4,
            test: 3,
            shifted: Some(ShiftedConfig {
                name: "Shifted".into(),
                test: 2,
            }),
            ..SynthConfig::default()
        }
    }

    /// Every file under `dir`, with its bytes.
    fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for p in fsutil::sorted_entries(&d).unwrap() {
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.insert(
                        p.strip_prefix(dir).unwrap().to_path_buf(),
                        std::fs::read(&p).unwrap(),
                    );
                }
            }
        }
        out
    }

    #[test]
    fn same_seed_gives_identical_bytes_and_another_seed_differs() {
        let (a, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let cfg = |seed| SynthConfig {
            train: 4,
            val: 2,
            test: 2,
            ..small(seed)
        };
        generate(a.path(), &cfg(1)).unwrap();
        let first = tree(a.path());
        // Re-generating into the same folder replaces it with identical bytes.
        generate(a.path(), &cfg(1)).unwrap();
        assert!(tree(a.path()) == first, "same seed, same bytes");
        generate(c.path(), &cfg(2)).unwrap();
        let other = tree(c.path());
        assert_eq!(first.len(), other.len());
        let pngs = first
            .keys()
            .filter(|k| k.extension().is_some_and(|e| e == "png"))
            .count();
        let differing = first
            .iter()
            .filter(|(k, v)| other.get(*k) != Some(*v))
            .count();
        assert!(
            differing > pngs,
            "another seed changes the images and sheets ({differing})"
        );
    }

    #[test]
    fn layout_counts_and_nested_subsets() {
        let dir = tempfile::tempdir().unwrap();
        let summary = generate(dir.path(), &small(3)).unwrap();
        assert_eq!(summary.datasets.len(), 2);
        let report = inspect(dir.path(), "Synthetic", true).unwrap();
        assert_eq!(
            report.train.to_map(),
            BTreeMap::from([
                ("10".into(), 1),
                ("25".into(), 3),
                ("50".into(), 6),
                ("100".into(), 12)
            ])
        );
        assert_eq!(report.val.get("100"), Some(4));
        assert_eq!(report.test.0.len(), 5);
        assert!(report.problems.is_empty());
        let names = |p: Percent| -> Vec<String> {
            read_records(
                dir.path(),
                "Synthetic",
                SheetKind::Train(p),
                ReadOptions::default(),
            )
            .unwrap()
            .records
            .into_iter()
            .map(|r| r.name)
            .collect()
        };
        let (n10, n25, n50) = (
            names(Percent::P10),
            names(Percent::P25),
            names(Percent::P50),
        );
        assert!(n10.iter().all(|n| n25.contains(n)) && n25.iter().all(|n| n50.contains(n)));
        let shifted = inspect(dir.path(), "Shifted", true).unwrap();
        assert!(shifted.train.0.is_empty() && shifted.val.0.is_empty());
        assert_eq!(shifted.test.get("contradictory"), Some(2));
        assert!(dir.path().join("Shifted").join(VOCAB_FILE).is_file());
    }

    /// The mask's centroid lies in the grid cell the prompt names; "no lesion" masks are empty.
    #[test]
    fn prompts_and_masks_agree() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SynthConfig {
            image_size: 48,
            train: 30,
            val: 0,
            test: 0,
            shifted: None,
            ..SynthConfig::default()
        };
        generate(dir.path(), &cfg).unwrap();
        let recs = read_records(
            dir.path(),
            "Synthetic",
            SheetKind::Train(Percent::P100),
            ReadOptions::default(),
        )
        .unwrap()
        .records;
        let mut with_lesion = 0;
        for r in &recs {
            let mask = read_gray(&r.mask_path).unwrap();
            let fg: Vec<(usize, usize)> = (0..48 * 48)
                .filter(|&i| mask.data[i] == 255)
                .map(|i| (i % 48, i / 48))
                .collect();
            if r.prompt == text::NO_LESION {
                assert!(fg.is_empty(), "{}", r.name);
                continue;
            }
            with_lesion += 1;
            let words = r
                .prompt
                .split(" located in ")
                .nth(1)
                .unwrap()
                .trim_end_matches(" of the image");
            let cell = Location::from_words(words).unwrap();
            let (sx, sy) = fg.iter().fold((0.0, 0.0), |(a, b), &(x, y)| {
                (a + x as f32 + 0.5, b + y as f32 + 0.5)
            });
            let (cx, cy) = (sx / fg.len() as f32, sy / fg.len() as f32);
            let side = 48.0 / 3.0;
            assert_eq!(
                ((cx / side) as usize, (cy / side) as usize),
                (cell.col, cell.row),
                "{}: {}",
                r.name,
                r.prompt
            );
        }
        assert!(with_lesion > 20, "{with_lesion}");
    }

    #[test]
    fn vocab_covers_every_prompt_of_every_style() {
        let dir = tempfile::tempdir().unwrap();
        let shifted = Some(ShiftedConfig {
            test: 20,
            ..ShiftedConfig::default()
        });
        let cfg = SynthConfig {
            image_size: 32,
            train: 10,
            val: 2,
            test: 40,
            shifted,
            ..SynthConfig::default()
        };
        generate(dir.path(), &cfg).unwrap();
        let vocab_text =
            std::fs::read_to_string(dir.path().join("Synthetic").join(VOCAB_FILE)).unwrap();
        let vocab: std::collections::HashSet<&str> = vocab_text.lines().collect();
        assert_eq!(vocab_text.lines().next(), Some("[PAD]"));
        let mut prompts = 0;
        for ds in ["Synthetic", "SyntheticShifted"] {
            for entry in fsutil::sorted_entries(&dir.path().join(ds).join(PROMPTS_FOLDER)).unwrap()
            {
                for row in read_prompt_sheet(&entry).unwrap().rows {
                    let prompt = row.description.unwrap();
                    for token in basic_tokens(&prompt) {
                        assert!(
                            vocab.contains(token.as_str()),
                            "{token:?} of {prompt:?} not in vocab.txt"
                        );
                    }
                    prompts += 1;
                }
            }
        }
        assert_eq!(
            prompts,
            (1 + 2 + 5 + 10) + (1 + 1 + 1 + 2) + 5 * 40 + 5 * 20
        );
    }

    #[test]
    fn test_styles_follow_the_real_patterns() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SynthConfig {
            image_size: 32,
            train: 0,
            val: 0,
            test: 30,
            shifted: None,
            ..SynthConfig::default()
        };
        generate(dir.path(), &cfg).unwrap();
        let sheet = |style: &str| {
            read_prompt_sheet(
                &dir.path()
                    .join(format!("Synthetic/Prompts_Folder/Test_text_{style}.xlsx")),
            )
            .unwrap()
            .rows
        };
        let (orig, contra, missing, under) = (
            sheet("original"),
            sheet("contradictory"),
            sheet("missing_location"),
            sheet("underdescriptive"),
        );
        for i in 0..orig.len() {
            let o = orig[i].description.as_deref().unwrap();
            let c = contra[i].description.as_deref().unwrap();
            let m = missing[i].description.as_deref().unwrap();
            assert_eq!(
                under[i].description.as_deref(),
                Some(text::UNDERDESCRIPTIVE)
            );
            assert!(c.ends_with("but the tissue appears completely normal and healthy."));
            if let Some(loc) = o.split(" located in ").nth(1) {
                let loc = loc.trim_end_matches(" of the image");
                assert!(
                    !c.contains(&format!("in the {loc},")),
                    "contradictory keeps the location: {c}"
                );
                assert!(m.contains("located in  of the image"), "{m}");
            } else {
                assert_eq!(m, text::NO_LESION);
            }
        }
    }

    #[test]
    fn csv_option_and_refusal_to_overwrite_foreign_folders() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SynthConfig {
            image_size: 32,
            train: 4,
            val: 2,
            test: 2,
            sheet_format: SheetFormat::Csv,
            shifted: None,
            ..SynthConfig::default()
        };
        generate(dir.path(), &cfg).unwrap();
        assert!(
            dir.path()
                .join("Synthetic/Prompts_Folder/Train_text.csv")
                .is_file()
        );
        assert_eq!(
            inspect(dir.path(), "Synthetic", true)
                .unwrap()
                .train
                .get("100"),
            Some(4)
        );
        std::fs::create_dir_all(dir.path().join("Mine")).unwrap();
        std::fs::write(dir.path().join("Mine/keep.txt"), "x").unwrap();
        let err = generate(
            dir.path(),
            &SynthConfig {
                name: "Mine".into(),
                ..cfg.clone()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("Mine"), "{err}");
        assert!(
            generate(
                dir.path(),
                &SynthConfig {
                    image_size: 8,
                    ..cfg
                }
            )
            .is_err()
        );
    }
}
