//! Conversion of original public releases into MedCLIPSeg's packaged layout.
//!
//! [`convert`] finds image/mask pairs in a raw release, writes every image as PNG
//! (`<dst>/<Split>_Folder/img/`), every mask as a binary 0/255 grey PNG (`.../label/`), and the
//! sheets `Train_text`, `Val_text` and `Test_text_original` (xlsx) into `<dst>/Prompts_Folder/`.
//!
//! # Assumed raw layouts
//! Folders are searched at the top of `src` and up to two levels below it (so both `src/images`
//! and `src/Kvasir-SEG/images` work). Image files are PNG, JPEG, BMP or TIFF.
//!
//! | format | raw layout | packaged names |
//! | --- | --- | --- |
//! | `busi` | `{benign,malignant,normal}/<c> (<k>).png` + `<c> (<k>)_mask.png`, `_mask_1.png`, ... (all OR-merged) | `<k>_<c>.png` (MedCLIPSeg's naming, e.g. `100_benign.png`) |
//! | `kvasir-seg` | `images/<id>.jpg` + `masks/<id>.jpg` (JPEG masks) | `<id>.png` |
//! | `cvc-clinicdb` | `Original/<n>.tif` + `Ground Truth/<n>.tif` (also `Ground-Truth`, `PNG/...`, `TIF/...`) | `<n>.png` |
//! | `cvc-colondb`, `cvc-300` | `images/<n>.png` + `masks/<n>.png` (PraNet test-set layout) | `<n>.png` |
//! | `udiat` | `original/<n>.png` + `GT/<n>.png` | `<n>.png` |
//! | `bkai-igh` | `train/train/<md5>.jpeg` + `train_gt/train_gt/<md5>.jpeg` (red/green colour JPEGs) | `<md5>.png` (mask PNG, not `.jpeg`) |
//! | `bus-bra` | `Images/bus_<id>.png` + `Masks/mask_<id>.png` | `bus_<id>.png` |
//! | `isic2016` | `ISBI2016_ISIC_Part1_{Training,Test}_Data/ISIC_<n>.jpg` + `..._{Training,Test}_GroundTruth/ISIC_<n>_Segmentation.png` | `ISIC_<n>.png` + `ISIC_<n>_Segmentation.png` |
//! | `buid` | `{Benign,Malignant}/<k> <C> Image.bmp` + `<k> <C> Mask.tif` | `<k> <C> Image.png` |
//! | `uwaterloo` | `**/<dermIS or dermquest>/<name>_orig.jpg` + `<name>_contour.png` (any depth) | `<folder>_<name>.png` |
//! | `qata-cov19` | `{Train Set,Test Set}/Images/<name>.png` + `Ground-truths/mask_<name>.png` | `mask_<name>.png` (both, as MedCLIPSeg) |
//! | `brisc2025` | `segmentation_task/{train,test}/{images/<stem>.jpg, masks/<stem>.png}` + `classification_task/{train,test}/no_tumor/<stem>.jpg` (no mask: empty) | `<stem>.png` |
//!
//! These layouts come from the releases' documentation and public loaders (see
//! `shared/spec/datasets.md`); the BUSI renaming and the UWaterloo naming are inferred.
//! BTMRI (HDF5 `.mat`), EUS (built from TIF by MedCLIPSeg's own script) and BUS_UC (layout not
//! verified) have no converter.
//!
//! # Masks
//! Every mask is binarised robustly: if its largest sample is 1 the mask is 0/1 encoded and any
//! non-zero value is foreground; otherwise a pixel is foreground when **any channel is > 127**
//! (JPEG noise, 0/255, colour masks such as BKAI's red/green polyps). Several mask files of one
//! image are OR-merged. A mask whose size differs from its image is a problem; the pair is skipped.
//!
//! # Splits and prompts
//! The split of an image is, in order: the `Split` column of the prompt CSV, the release's
//! official split (ISIC 2016, QaTa-COV19, BRISC 2025: train/test), else a fixed hash of the
//! packaged name (80 % train, 10 % val, 10 % test). Prompts come from a CSV with the columns
//! `Image`, `Description` (and optionally `Split`), matched on the packaged or raw file name or
//! their stems, or from a template where `{name}` is the packaged stem and `{class}` the class
//! folder (e.g. `benign`), empty when unknown.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use image::DynamicImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::{self, sorted_entries};
use crate::imaging::{self, Image8, dynamic_to_bgr};
use crate::kinds::{Percent, PromptStyle, SheetKind, Split};
use crate::layout::{IMAGE_FOLDER, MASK_FOLDER, PROMPTS_FOLDER, Problem};
use crate::sheet::{PromptEntry, SheetFormat, write_prompt_sheet};

/// A public release that [`convert`] understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SourceFormat {
    /// BUSI (`Dataset_BUSI_with_GT`).
    #[serde(rename = "busi")]
    Busi,
    /// Kvasir-SEG.
    #[serde(rename = "kvasir-seg")]
    KvasirSeg,
    /// CVC-ClinicDB (TIFF).
    #[serde(rename = "cvc-clinicdb")]
    CvcClinicDb,
    /// CVC-ColonDB (PraNet test-set layout).
    #[serde(rename = "cvc-colondb")]
    CvcColonDb,
    /// CVC-300 (PraNet test-set layout).
    #[serde(rename = "cvc-300")]
    Cvc300,
    /// UDIAT Dataset B.
    #[serde(rename = "udiat")]
    Udiat,
    /// BKAI-IGH NeoPolyp (colour JPEG masks).
    #[serde(rename = "bkai-igh")]
    BkaiIgh,
    /// BUS-BRA.
    #[serde(rename = "bus-bra")]
    BusBra,
    /// ISIC 2016 Part 1.
    #[serde(rename = "isic2016")]
    Isic2016,
    /// BUID (BMP images, TIFF masks).
    #[serde(rename = "buid")]
    Buid,
    /// University of Waterloo skin cancer database.
    #[serde(rename = "uwaterloo")]
    UWaterloo,
    /// QaTa-COV19 v2.
    #[serde(rename = "qata-cov19")]
    QataCov19,
    /// BRISC 2025.
    #[serde(rename = "brisc2025")]
    Brisc2025,
}

impl SourceFormat {
    /// Every supported format.
    pub const ALL: [SourceFormat; 13] = [
        Self::Busi,
        Self::KvasirSeg,
        Self::CvcClinicDb,
        Self::CvcColonDb,
        Self::Cvc300,
        Self::Udiat,
        Self::BkaiIgh,
        Self::BusBra,
        Self::Isic2016,
        Self::Buid,
        Self::UWaterloo,
        Self::QataCov19,
        Self::Brisc2025,
    ];

    /// The name used on the command line and in the registry.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Busi => "busi",
            Self::KvasirSeg => "kvasir-seg",
            Self::CvcClinicDb => "cvc-clinicdb",
            Self::CvcColonDb => "cvc-colondb",
            Self::Cvc300 => "cvc-300",
            Self::Udiat => "udiat",
            Self::BkaiIgh => "bkai-igh",
            Self::BusBra => "bus-bra",
            Self::Isic2016 => "isic2016",
            Self::Buid => "buid",
            Self::UWaterloo => "uwaterloo",
            Self::QataCov19 => "qata-cov19",
            Self::Brisc2025 => "brisc2025",
        }
    }
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SourceFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let wanted = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|f| f.as_str()).collect();
                Error::Config(format!(
                    "unknown source format {s:?} (known: {})",
                    names.join(", ")
                ))
            })
    }
}

/// Where the prompts of converted images come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptSource {
    /// A CSV with the columns `Image`, `Description` and optionally `Split`.
    Csv(PathBuf),
    /// One template for every image; `{name}` and `{class}` are replaced.
    Template(String),
}

/// What [`convert`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvertReport {
    /// The packaged dataset folder.
    pub dataset_dir: PathBuf,
    /// The raw format.
    pub format: SourceFormat,
    /// Pairs written to `Train_Folder`.
    pub train: usize,
    /// Pairs written to `Val_Folder`.
    pub val: usize,
    /// Pairs written to `Test_Folder`.
    pub test: usize,
    /// Skipped files and pairs.
    pub problems: Vec<Problem>,
}

/// One image of a raw release and its mask files (none: an empty mask).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawPair {
    image: PathBuf,
    masks: Vec<PathBuf>,
    image_name: String,
    mask_name: String,
    split: Option<Split>,
    class: Option<String>,
}

/// A prompt (and maybe a split) for one image.
#[derive(Debug, Clone)]
struct PromptInfo {
    text: String,
    split: Option<Split>,
}

/// Converts the raw release at `src` (in `from`'s layout) into the packaged layout at `dst`
/// (the dataset folder itself, e.g. `data/Kvasir`).
pub fn convert(
    from: SourceFormat,
    src: &Path,
    dst: &Path,
    prompts: PromptSource,
) -> Result<ConvertReport> {
    if !src.is_dir() {
        return Err(Error::layout(src, "source folder not found"));
    }
    let pairs = find_pairs(from, src)?;
    if pairs.is_empty() {
        return Err(Error::layout(
            src,
            format!("no {from} image/mask pairs found"),
        ));
    }
    let csv_prompts = match &prompts {
        PromptSource::Csv(path) => Some(read_prompt_csv(path)?),
        PromptSource::Template(_) => None,
    };
    let mut problems = Vec::new();
    let mut jobs = Vec::new();
    let mut taken = std::collections::HashSet::new();
    for pair in pairs {
        if !taken.insert(pair.image_name.clone()) {
            problems.push(Problem {
                file: pair.image.display().to_string(),
                row: 0,
                problem: format!("another raw image already became {}", pair.image_name),
            });
            continue;
        }
        let info = match (&prompts, &csv_prompts) {
            (PromptSource::Template(t), _) => Some(PromptInfo {
                text: fill_template(t, &pair),
                split: None,
            }),
            (_, Some(table)) => lookup_prompt(table, &pair).cloned(),
            _ => None,
        };
        let Some(info) = info else {
            problems.push(Problem {
                file: pair.image.display().to_string(),
                row: 0,
                problem: "no prompt for this image in the prompt CSV".into(),
            });
            continue;
        };
        let split = info
            .split
            .or(pair.split)
            .unwrap_or_else(|| hash_split(&pair.image_name));
        jobs.push((pair, info.text, split));
    }
    let results: Vec<std::result::Result<(), Problem>> = jobs
        .par_iter()
        .map(|(pair, _, split)| write_pair(pair, dst, *split))
        .collect();
    let mut sheets: HashMap<Split, Vec<PromptEntry>> = HashMap::new();
    for ((pair, text, split), result) in jobs.into_iter().zip(results) {
        match result {
            Ok(()) => sheets.entry(split).or_default().push(PromptEntry {
                image: pair.image_name,
                description: text,
                ground_truth: pair.mask_name,
            }),
            Err(problem) => problems.push(problem),
        }
    }
    let count = |s: Split| sheets.get(&s).map_or(0, Vec::len);
    let report = ConvertReport {
        dataset_dir: dst.to_path_buf(),
        format: from,
        train: count(Split::Train),
        val: count(Split::Val),
        test: count(Split::Test),
        problems,
    };
    for (kind, split) in [
        (SheetKind::Train(Percent::P100), Split::Train),
        (SheetKind::Val(Percent::P100), Split::Val),
        (SheetKind::Test(PromptStyle::Original), Split::Test),
    ] {
        let mut entries = sheets.remove(&split).unwrap_or_default();
        entries.sort_by(|a, b| a.image.cmp(&b.image));
        let path = dst
            .join(PROMPTS_FOLDER)
            .join(format!("{}.xlsx", kind.file_stem()));
        write_prompt_sheet(&path, &entries, SheetFormat::Xlsx)?;
    }
    Ok(report)
}

/// Deterministic 80/10/10 split from a 64-bit FNV-1a hash of the packaged name.
fn hash_split(name: &str) -> Split {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    match h % 10 {
        0..=7 => Split::Train,
        8 => Split::Val,
        _ => Split::Test,
    }
}

fn fill_template(template: &str, pair: &RawPair) -> String {
    template
        .replace("{name}", stem(&pair.image_name))
        .replace("{class}", pair.class.as_deref().unwrap_or(""))
}

fn stem(name: &str) -> &str {
    Path::new(name)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(name)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads a prompt CSV into a table keyed by image name and by stem.
fn read_prompt_csv(path: &Path) -> Result<HashMap<String, PromptInfo>> {
    let bytes = fsutil::read(path)?;
    let text =
        String::from_utf8(bytes).map_err(|e| Error::sheet(path, format!("not UTF-8: {e}")))?;
    let records = crate::csv_text::parse(&text).map_err(|e| Error::sheet(path, e.to_string()))?;
    let mut rows = records.into_iter();
    let Some((_, header)) = rows.next() else {
        return Err(Error::sheet(
            path,
            "empty prompt CSV (expected a header Image,Description)",
        ));
    };
    let find = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let image_col = find("Image").ok_or_else(|| {
        Error::sheet(path, format!("missing column \"Image\" (found {header:?})"))
    })?;
    let desc_col = find("Description").ok_or_else(|| {
        Error::sheet(
            path,
            format!("missing column \"Description\" (found {header:?})"),
        )
    })?;
    let split_col = find("Split");
    let mut table = HashMap::new();
    for (line, fields) in rows {
        let get = |c: usize| fields.get(c).map(String::as_str).unwrap_or("");
        let image = get(image_col).trim();
        if image.is_empty() {
            return Err(Error::Row {
                path: path.to_path_buf(),
                row: line,
                problem: "empty Image cell".into(),
            });
        }
        let split = match split_col.map(get).map(str::trim) {
            Some(s) if !s.is_empty() => Some(s.parse::<Split>().map_err(|e| Error::Row {
                path: path.to_path_buf(),
                row: line,
                problem: e.to_string(),
            })?),
            _ => None,
        };
        let info = PromptInfo {
            text: get(desc_col).to_string(),
            split,
        };
        table.insert(stem(image).to_string(), info.clone());
        table.insert(image.to_string(), info);
    }
    Ok(table)
}

fn lookup_prompt<'a>(
    table: &'a HashMap<String, PromptInfo>,
    pair: &RawPair,
) -> Option<&'a PromptInfo> {
    let raw = file_name(&pair.image);
    [
        pair.image_name.as_str(),
        stem(&pair.image_name),
        raw.as_str(),
        stem(&raw),
    ]
    .into_iter()
    .find_map(|key| table.get(key))
}

/// Decodes, binarises and writes one pair; a failure becomes a problem naming the raw file.
fn write_pair(pair: &RawPair, dst: &Path, split: Split) -> std::result::Result<(), Problem> {
    let problem = |file: &Path, text: String| Problem {
        file: file.display().to_string(),
        row: 0,
        problem: text,
    };
    let bytes = fsutil::read(&pair.image).map_err(|e| problem(&pair.image, e.to_string()))?;
    let decoded =
        imaging::decode(&pair.image, &bytes).map_err(|e| problem(&pair.image, e.to_string()))?;
    let (w, h) = (decoded.width() as usize, decoded.height() as usize);
    let mut mask = vec![false; w * h];
    for mask_path in &pair.masks {
        let part = read_binary_mask(mask_path).map_err(|e| problem(mask_path, e.to_string()))?;
        if (part.width, part.height) != (w, h) {
            return Err(problem(
                mask_path,
                format!(
                    "mask is {}x{} but its image {} is {w}x{h}",
                    part.width,
                    part.height,
                    pair.image.display()
                ),
            ));
        }
        for (m, &v) in mask.iter_mut().zip(&part.data) {
            *m |= v > 0;
        }
    }
    let split_dir = dst.join(split.folder());
    let image_out = split_dir.join(IMAGE_FOLDER).join(&pair.image_name);
    imaging::write_png(&image_out, &to_png_image(decoded))
        .map_err(|e| problem(&image_out, e.to_string()))?;
    let mask_img = Image8 {
        width: w,
        height: h,
        channels: 1,
        data: mask.iter().map(|&m| if m { 255 } else { 0 }).collect(),
    };
    let mask_out = split_dir.join(MASK_FOLDER).join(&pair.mask_name);
    imaging::write_png(&mask_out, &mask_img).map_err(|e| problem(&mask_out, e.to_string()))
}

/// Grey images stay grey (8-bit); everything else becomes 8-bit RGB.
fn to_png_image(img: DynamicImage) -> Image8 {
    let grey = matches!(
        img,
        DynamicImage::ImageLuma8(_)
            | DynamicImage::ImageLumaA8(_)
            | DynamicImage::ImageLuma16(_)
            | DynamicImage::ImageLumaA16(_)
    );
    let bgr = dynamic_to_bgr(img);
    if grey {
        let data = bgr.data.chunks_exact(3).map(|p| p[0]).collect();
        return Image8 {
            width: bgr.width,
            height: bgr.height,
            channels: 1,
            data,
        };
    }
    let data = bgr
        .data
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    Image8 {
        width: bgr.width,
        height: bgr.height,
        channels: 3,
        data,
    }
}

/// Reads a mask file as 0/1 with the robust rule of the module docs.
pub fn read_binary_mask(path: &Path) -> Result<Image8> {
    let bytes = fsutil::read(path)?;
    let bgr = dynamic_to_bgr(imaging::decode(path, &bytes)?);
    let max = bgr.data.iter().copied().max().unwrap_or(0);
    // 0/1-encoded masks: any non-zero sample is foreground.
    let threshold = if max <= 1 { 0 } else { 127 };
    Ok(imaging::any_channel_mask(&bgr, threshold, 1))
}

fn is_image(path: &Path) -> bool {
    path.is_file() && imaging::has_image_extension(path)
}

/// Image files of a folder, sorted.
fn images_in(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(sorted_entries(dir)?
        .into_iter()
        .filter(|p| is_image(p))
        .collect())
}

/// The first existing folder `<base>/<candidate>`, with `base` being `src`, then its
/// subfolders, then theirs (breadth first, sorted).
fn find_dir(src: &Path, candidates: &[&str]) -> Option<PathBuf> {
    let mut level = vec![src.to_path_buf()];
    for depth in 0..=2 {
        for base in &level {
            if let Some(dir) = candidates
                .iter()
                .map(|rel| base.join(rel))
                .find(|d| d.is_dir())
            {
                return Some(dir);
            }
        }
        if depth < 2 {
            level = level
                .iter()
                .flat_map(|b| sorted_entries(b).unwrap_or_default())
                .filter(|p| p.is_dir())
                .collect();
        }
    }
    None
}

fn require_dir(src: &Path, candidates: &[&str]) -> Result<PathBuf> {
    find_dir(src, candidates).ok_or_else(|| {
        Error::layout(
            src,
            format!("expected a folder named one of {candidates:?} (at most two levels down)"),
        )
    })
}

/// The image in `dir` whose stem is `stem` (any image extension).
fn with_stem(dir: &Path, stem_wanted: &str) -> Option<PathBuf> {
    imaging::IMAGE_EXTENSIONS
        .iter()
        .flat_map(|e| [e.to_string(), e.to_ascii_uppercase()])
        .map(|e| dir.join(format!("{stem_wanted}.{e}")))
        .find(|p| p.is_file())
}

fn find_pairs(from: SourceFormat, src: &Path) -> Result<Vec<RawPair>> {
    match from {
        SourceFormat::Busi => busi_pairs(src),
        SourceFormat::KvasirSeg => same_stem_pairs(src, &["images"], &["masks"], None),
        SourceFormat::CvcClinicDb => same_stem_pairs(
            src,
            &["Original", "PNG/Original", "TIF/Original"],
            &[
                "Ground Truth",
                "Ground-Truth",
                "GroundTruth",
                "PNG/Ground Truth",
                "TIF/Ground Truth",
            ],
            None,
        ),
        SourceFormat::CvcColonDb | SourceFormat::Cvc300 => {
            same_stem_pairs(src, &["images", "Images"], &["masks", "Masks"], None)
        }
        SourceFormat::Udiat => same_stem_pairs(src, &["original", "Original"], &["GT"], None),
        SourceFormat::BkaiIgh => same_stem_pairs(
            src,
            &["train/train", "train"],
            &["train_gt/train_gt", "train_gt"],
            None,
        ),
        SourceFormat::BusBra => bus_bra_pairs(src),
        SourceFormat::Isic2016 => isic_pairs(src),
        SourceFormat::Buid => buid_pairs(src),
        SourceFormat::UWaterloo => uwaterloo_pairs(src),
        SourceFormat::QataCov19 => qata_pairs(src),
        SourceFormat::Brisc2025 => brisc_pairs(src),
    }
}

fn png_name(stem_name: &str) -> String {
    format!("{stem_name}.png")
}

/// Image and mask folders with identical stems.
fn same_stem_pairs(
    src: &Path,
    image_dirs: &[&str],
    mask_dirs: &[&str],
    split: Option<Split>,
) -> Result<Vec<RawPair>> {
    let images = require_dir(src, image_dirs)?;
    let masks = require_dir(src, mask_dirs)?;
    let mut out = Vec::new();
    for image in images_in(&images)? {
        let s = stem(&file_name(&image)).to_string();
        let mask = with_stem(&masks, &s);
        out.push(RawPair {
            masks: mask.into_iter().collect(),
            image,
            image_name: png_name(&s),
            mask_name: png_name(&s),
            split,
            class: None,
        });
    }
    drop_unmasked(out)
}

/// Keeps pairs that have at least one mask (formats where a missing mask means a broken pair).
fn drop_unmasked(pairs: Vec<RawPair>) -> Result<Vec<RawPair>> {
    Ok(pairs.into_iter().filter(|p| !p.masks.is_empty()).collect())
}

fn busi_pairs(src: &Path) -> Result<Vec<RawPair>> {
    let mut out = Vec::new();
    let mut found_any = false;
    for class in ["benign", "malignant", "normal"] {
        let Some(dir) = find_dir(src, &[class]) else {
            continue;
        };
        found_any = true;
        let files = images_in(&dir)?;
        for image in files.iter().filter(|p| !file_name(p).contains("_mask")) {
            let s = stem(&file_name(image)).to_string();
            let prefix = format!("{s}_mask");
            let masks: Vec<PathBuf> = files
                .iter()
                .filter(|p| {
                    let n = stem(&file_name(p)).to_string();
                    n == prefix
                        || n.strip_prefix(&prefix)
                            .is_some_and(|rest| rest.starts_with('_'))
                })
                .cloned()
                .collect();
            let name = busi_name(&s, class);
            out.push(RawPair {
                image: image.clone(),
                masks,
                image_name: name.clone(),
                mask_name: name,
                split: None,
                class: Some(class.into()),
            });
        }
    }
    if !found_any {
        return Err(Error::layout(
            src,
            "expected benign/, malignant/ or normal/ folders",
        ));
    }
    drop_unmasked(out)
}

/// `benign (12)` -> `12_benign.png`; other stems keep their name.
fn busi_name(stem_name: &str, class: &str) -> String {
    let number = stem_name
        .rsplit_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    match number {
        Some(n) => format!("{n}_{class}.png"),
        None => png_name(stem_name),
    }
}

fn bus_bra_pairs(src: &Path) -> Result<Vec<RawPair>> {
    let images = require_dir(src, &["Images", "images"])?;
    let masks = require_dir(src, &["Masks", "masks"])?;
    let mut out = Vec::new();
    for image in images_in(&images)? {
        let s = stem(&file_name(&image)).to_string();
        let mask_stem = match s.strip_prefix("bus_") {
            Some(rest) => format!("mask_{rest}"),
            None => s.clone(),
        };
        let name = png_name(&s);
        out.push(RawPair {
            masks: with_stem(&masks, &mask_stem).into_iter().collect(),
            image,
            image_name: name.clone(),
            mask_name: name,
            split: None,
            class: None,
        });
    }
    drop_unmasked(out)
}

fn isic_pairs(src: &Path) -> Result<Vec<RawPair>> {
    let mut out = Vec::new();
    for (split, data, truth) in [
        (
            Split::Train,
            "ISBI2016_ISIC_Part1_Training_Data",
            "ISBI2016_ISIC_Part1_Training_GroundTruth",
        ),
        (
            Split::Test,
            "ISBI2016_ISIC_Part1_Test_Data",
            "ISBI2016_ISIC_Part1_Test_GroundTruth",
        ),
    ] {
        let (Some(images), Some(masks)) = (find_dir(src, &[data]), find_dir(src, &[truth])) else {
            continue;
        };
        for image in images_in(&images)? {
            let s = stem(&file_name(&image)).to_string();
            let mask_stem = format!("{s}_Segmentation");
            out.push(RawPair {
                masks: with_stem(&masks, &mask_stem).into_iter().collect(),
                image,
                image_name: png_name(&s),
                mask_name: png_name(&mask_stem),
                split: Some(split),
                class: None,
            });
        }
    }
    if out.is_empty() {
        return Err(Error::layout(
            src,
            "expected ISBI2016_ISIC_Part1_{Training,Test}_{Data,GroundTruth} folders",
        ));
    }
    drop_unmasked(out)
}

fn buid_pairs(src: &Path) -> Result<Vec<RawPair>> {
    let mut out = Vec::new();
    for class in ["Benign", "Malignant"] {
        let Some(dir) = find_dir(src, &[class]) else {
            continue;
        };
        for image in images_in(&dir)? {
            let s = stem(&file_name(&image)).to_string();
            if !s.ends_with(" Image") {
                continue; // masks and the unused "Lesion" crops
            }
            let mask_stem = format!("{} Mask", s.trim_end_matches(" Image"));
            let name = png_name(&s);
            out.push(RawPair {
                masks: with_stem(&dir, &mask_stem).into_iter().collect(),
                image,
                image_name: name.clone(),
                mask_name: name,
                split: None,
                class: Some(class.to_ascii_lowercase()),
            });
        }
    }
    if out.is_empty() {
        return Err(Error::layout(
            src,
            "expected Benign/ and Malignant/ folders with '<k> <Class> Image.bmp' files",
        ));
    }
    drop_unmasked(out)
}

fn uwaterloo_pairs(src: &Path) -> Result<Vec<RawPair>> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for path in sorted_entries(&dir)? {
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let s = stem(&file_name(&path)).to_string();
            let Some(base) = s.strip_suffix("_orig").filter(|_| is_image(&path)) else {
                continue;
            };
            let folder = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let class = path
                .ancestors()
                .filter_map(|a| a.file_name().and_then(|n| n.to_str()))
                .find(|n| {
                    n.eq_ignore_ascii_case("melanoma") || n.eq_ignore_ascii_case("notmelanoma")
                })
                .map(str::to_ascii_lowercase);
            let name = png_name(&format!("{folder}_{base}"));
            out.push(RawPair {
                masks: with_stem(&dir, &format!("{base}_contour"))
                    .into_iter()
                    .collect(),
                image: path,
                image_name: name.clone(),
                mask_name: name,
                split: None,
                class,
            });
        }
    }
    out.sort_by(|a, b| a.image.cmp(&b.image));
    drop_unmasked(out)
}

fn qata_pairs(src: &Path) -> Result<Vec<RawPair>> {
    let mut out = Vec::new();
    for (split, folder) in [(Split::Train, "Train Set"), (Split::Test, "Test Set")] {
        let Some(dir) = find_dir(src, &[folder]) else {
            continue;
        };
        let images = require_dir(&dir, &["Images"])?;
        let masks = require_dir(&dir, &["Ground-truths", "Ground-Truths", "Ground_truths"])?;
        for image in images_in(&images)? {
            let s = stem(&file_name(&image)).to_string();
            let mask_stem = format!("mask_{s}");
            let name = png_name(&mask_stem);
            out.push(RawPair {
                masks: with_stem(&masks, &mask_stem).into_iter().collect(),
                image,
                image_name: name.clone(),
                mask_name: name,
                split: Some(split),
                class: None,
            });
        }
    }
    if out.is_empty() {
        return Err(Error::layout(
            src,
            "expected 'Train Set' / 'Test Set' folders with Images/ and Ground-truths/",
        ));
    }
    drop_unmasked(out)
}

fn brisc_pairs(src: &Path) -> Result<Vec<RawPair>> {
    let mut out = Vec::new();
    for (split, name) in [(Split::Train, "train"), (Split::Test, "test")] {
        if let Some(seg) = find_dir(src, &[&format!("segmentation_task/{name}")]) {
            let images = require_dir(&seg, &["images"])?;
            let masks = require_dir(&seg, &["masks"])?;
            for image in images_in(&images)? {
                let s = stem(&file_name(&image)).to_string();
                let png = png_name(&s);
                let mask = with_stem(&masks, &s);
                if mask.is_none() {
                    continue;
                }
                out.push(RawPair {
                    masks: mask.into_iter().collect(),
                    image,
                    image_name: png.clone(),
                    mask_name: png,
                    split: Some(split),
                    class: brisc_class(&s),
                });
            }
        }
        if let Some(no_tumour) = find_dir(src, &[&format!("classification_task/{name}/no_tumor")]) {
            for image in images_in(&no_tumour)? {
                let s = stem(&file_name(&image)).to_string();
                let png = png_name(&s);
                out.push(RawPair {
                    masks: Vec::new(),
                    image,
                    image_name: png.clone(),
                    mask_name: png,
                    split: Some(split),
                    class: Some("no tumour".into()),
                });
            }
        }
    }
    if out.is_empty() {
        return Err(Error::layout(
            src,
            "expected segmentation_task/{train,test}/{images,masks} (and classification_task/*/no_tumor)",
        ));
    }
    Ok(out)
}

/// The class code of a BRISC name `brisc2025_train_00001_gl_ax_t1`.
fn brisc_class(stem_name: &str) -> Option<String> {
    let code = stem_name.split('_').nth(3)?;
    let class = match code {
        "gl" => "glioma",
        "me" => "meningioma",
        "pi" => "pituitary",
        "no" => "no tumour",
        _ => return None,
    };
    Some(class.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{ReadOptions, inspect, read_records};

    fn put(path: &Path, img: DynamicImage) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        img.save(path).unwrap();
    }

    fn rgb(w: u32, h: u32, px: [u8; 3]) -> DynamicImage {
        DynamicImage::ImageRgb8(image::RgbImage::from_pixel(w, h, image::Rgb(px)))
    }

    fn grey(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> DynamicImage {
        DynamicImage::ImageLuma8(image::GrayImage::from_fn(w, h, |x, y| {
            image::Luma([f(x, y)])
        }))
    }

    fn convert_template(format: SourceFormat, src: &Path, dst: &Path) -> ConvertReport {
        convert(
            format,
            src,
            dst,
            PromptSource::Template("a {class} lesion in {name}".into()),
        )
        .unwrap()
    }

    fn all_records(dst: &Path) -> Vec<crate::layout::Record> {
        let root = dst.parent().unwrap();
        let name = dst.file_name().unwrap().to_str().unwrap();
        let mut out = Vec::new();
        for kind in [
            SheetKind::Train(Percent::P100),
            SheetKind::Val(Percent::P100),
            SheetKind::Test(PromptStyle::Original),
        ] {
            let got = read_records(root, name, kind, ReadOptions::default()).unwrap();
            assert!(got.problems.is_empty(), "{:?}", got.problems);
            out.extend(got.records);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn mask_values(path: &Path) -> Vec<u8> {
        imaging::read_gray(path).unwrap().data
    }

    #[test]
    fn busi_masks_are_or_merged_and_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("raw/Dataset_BUSI_with_GT");
        put(&src.join("benign/benign (12).png"), rgb(4, 2, [90, 90, 90]));
        put(
            &src.join("benign/benign (12)_mask.png"),
            grey(4, 2, |x, _| if x == 0 { 255 } else { 0 }),
        );
        put(
            &src.join("benign/benign (12)_mask_1.png"),
            grey(4, 2, |x, _| if x == 3 { 255 } else { 0 }),
        );
        put(&src.join("benign/benign (1).png"), rgb(4, 2, [10, 10, 10]));
        put(
            &src.join("benign/benign (1)_mask.png"),
            grey(4, 2, |_, _| 0),
        );
        put(&src.join("normal/normal (3).png"), rgb(4, 2, [5, 5, 5]));
        put(
            &src.join("normal/normal (3)_mask.png"),
            grey(4, 2, |_, _| 0),
        );
        let dst = dir.path().join("data/BUSI");
        let report = convert_template(SourceFormat::Busi, &dir.path().join("raw"), &dst);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.train + report.val + report.test, 3);
        let records = all_records(&dst);
        let names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["12_benign.png", "1_benign.png", "3_normal.png"]);
        assert_eq!(
            mask_values(&records[0].mask_path),
            [255, 0, 0, 255, 255, 0, 0, 255]
        );
        assert_eq!(records[0].prompt, "a benign lesion in 12_benign");
        let report = inspect(dst.parent().unwrap(), "BUSI", true).unwrap();
        assert_eq!(
            report.train.get("100").unwrap()
                + report.val.get("100").unwrap()
                + report.test.get("original").unwrap(),
            3
        );
    }

    #[test]
    fn kvasir_jpeg_masks_are_thresholded() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("Kvasir-SEG");
        put(&src.join("images/cju0.jpg"), rgb(16, 8, [200, 100, 100]));
        let mut m = image::RgbImage::new(16, 8);
        for (x, _, p) in m.enumerate_pixels_mut() {
            *p = if x < 8 {
                image::Rgb([250, 250, 250])
            } else {
                image::Rgb([3, 3, 3])
            };
        }
        put(&src.join("masks/cju0.jpg"), DynamicImage::ImageRgb8(m));
        let dst = dir.path().join("data/Kvasir");
        convert_template(SourceFormat::KvasirSeg, dir.path(), &dst);
        let records = all_records(&dst);
        assert_eq!(records[0].name, "cju0.png");
        let mask = mask_values(&records[0].mask_path);
        assert!(mask.iter().all(|&v| v == 0 || v == 255));
        assert_eq!(mask[0], 255);
        assert_eq!(mask[15], 0);
    }

    #[test]
    fn clinicdb_tiff_frames() {
        let dir = tempfile::tempdir().unwrap();
        put(
            &dir.path().join("CVC-ClinicDB/Original/1.tif"),
            rgb(3, 3, [1, 2, 3]),
        );
        put(
            &dir.path().join("CVC-ClinicDB/Ground Truth/1.tif"),
            grey(3, 3, |x, y| if x == y { 255 } else { 0 }),
        );
        let dst = dir.path().join("data/ClinicDB");
        convert_template(SourceFormat::CvcClinicDb, dir.path(), &dst);
        let records = all_records(&dst);
        assert_eq!(records[0].name, "1.png");
        assert_eq!(
            imaging::read_bgr(&records[0].image_path).unwrap().data[..3],
            [3, 2, 1]
        );
        assert_eq!(
            mask_values(&records[0].mask_path),
            [255, 0, 0, 0, 255, 0, 0, 0, 255]
        );
    }

    #[test]
    fn bkai_red_and_green_masks_are_foreground() {
        let dir = tempfile::tempdir().unwrap();
        put(
            &dir.path().join("train/train/abc.jpeg"),
            rgb(2, 1, [9, 9, 9]),
        );
        let mut m = image::RgbImage::new(2, 1);
        m.put_pixel(0, 0, image::Rgb([255, 0, 0]));
        m.put_pixel(1, 0, image::Rgb([0, 255, 0]));
        // PNG here keeps the test exact; the converter does not care about the extension.
        put(
            &dir.path().join("train_gt/train_gt/abc.png"),
            DynamicImage::ImageRgb8(m),
        );
        let dst = dir.path().join("data/BKAI");
        convert_template(SourceFormat::BkaiIgh, dir.path(), &dst);
        let records = all_records(&dst);
        assert_eq!(mask_values(&records[0].mask_path), [255, 255]);
    }

    #[test]
    fn bus_bra_prefix_rule() {
        let dir = tempfile::tempdir().unwrap();
        put(
            &dir.path().join("BUSBRA/Images/bus_0001-l.png"),
            grey(2, 2, |_, _| 50),
        );
        put(
            &dir.path().join("BUSBRA/Masks/mask_0001-l.png"),
            grey(2, 2, |x, _| if x == 1 { 255 } else { 0 }),
        );
        put(
            &dir.path().join("BUSBRA/Images/bus_0002-r.png"),
            grey(2, 2, |_, _| 50),
        );
        let dst = dir.path().join("data/BUSBRA");
        let report = convert_template(SourceFormat::BusBra, dir.path(), &dst);
        assert_eq!(
            report.train + report.val + report.test,
            1,
            "the unmasked image is left out"
        );
        let records = all_records(&dst);
        assert_eq!(records[0].name, "bus_0001-l.png");
        assert_eq!(mask_values(&records[0].mask_path), [0, 255, 0, 255]);
    }

    #[test]
    fn isic_segmentation_suffix_and_official_split() {
        let dir = tempfile::tempdir().unwrap();
        put(
            &dir.path()
                .join("ISBI2016_ISIC_Part1_Training_Data/ISIC_0000001.jpg"),
            rgb(4, 4, [100, 80, 60]),
        );
        put(
            &dir.path()
                .join("ISBI2016_ISIC_Part1_Training_GroundTruth/ISIC_0000001_Segmentation.png"),
            grey(4, 4, |_, _| 255),
        );
        put(
            &dir.path()
                .join("ISBI2016_ISIC_Part1_Test_Data/ISIC_0000002.jpg"),
            rgb(4, 4, [100, 80, 60]),
        );
        put(
            &dir.path()
                .join("ISBI2016_ISIC_Part1_Test_GroundTruth/ISIC_0000002_Segmentation.png"),
            grey(4, 4, |_, _| 0),
        );
        let dst = dir.path().join("data/ISIC");
        let report = convert_template(SourceFormat::Isic2016, dir.path(), &dst);
        assert_eq!((report.train, report.val, report.test), (1, 0, 1));
        let records = all_records(&dst);
        assert!(
            records[0]
                .mask_path
                .ends_with("Train_Folder/label/ISIC_0000001_Segmentation.png")
        );
        assert!(
            records[1]
                .image_path
                .ends_with("Test_Folder/img/ISIC_0000002.png")
        );
    }

    #[test]
    fn buid_bmp_images_and_zero_one_tiff_masks() {
        let dir = tempfile::tempdir().unwrap();
        put(
            &dir.path().join("Benign/12 Benign Image.bmp"),
            rgb(3, 1, [40, 40, 40]),
        );
        put(
            &dir.path().join("Benign/12 Benign Mask.tif"),
            grey(3, 1, |x, _| u8::from(x == 1)),
        );
        put(
            &dir.path().join("Benign/12 Benign Lesion.bmp"),
            rgb(1, 1, [40, 40, 40]),
        );
        let dst = dir.path().join("data/BUID");
        convert_template(SourceFormat::Buid, dir.path(), &dst);
        let records = all_records(&dst);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].name, "12 Benign Image.png");
        assert_eq!(mask_values(&records[0].mask_path), [0, 255, 0]);
    }

    #[test]
    fn uwaterloo_orig_and_contour_names() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir
            .path()
            .join("Skin Image Data Set-1/skin_data/melanoma/dermquest");
        put(&base.join("SSM71_orig.jpg"), rgb(2, 2, [120, 60, 40]));
        put(
            &base.join("SSM71_contour.png"),
            grey(2, 2, |_, y| if y == 0 { 255 } else { 0 }),
        );
        let dst = dir.path().join("data/UW");
        convert_template(SourceFormat::UWaterloo, dir.path(), &dst);
        let records = all_records(&dst);
        assert_eq!(records[0].name, "dermquest_SSM71.png");
        assert_eq!(records[0].prompt, "a melanoma lesion in dermquest_SSM71");
        assert_eq!(mask_values(&records[0].mask_path), [255, 255, 0, 0]);
    }

    #[test]
    fn qata_mask_prefix_and_csv_prompts_with_split() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("QaTa-COV19-v2");
        put(
            &raw.join("Train Set/Images/covid_1.png"),
            grey(2, 2, |_, _| 30),
        );
        put(
            &raw.join("Train Set/Ground-truths/mask_covid_1.png"),
            grey(2, 2, |_, _| 255),
        );
        put(
            &raw.join("Test Set/Images/covid_2.png"),
            grey(2, 2, |_, _| 30),
        );
        put(
            &raw.join("Test Set/Ground-truths/mask_covid_2.png"),
            grey(2, 2, |_, _| 0),
        );
        let csv = dir.path().join("prompts.csv");
        std::fs::write(&csv, "Image,Description,Split\ncovid_1.png,\"Bilateral infection, all lungs\",val\nmask_covid_2,No infection,\n").unwrap();
        let dst = dir.path().join("data/Covid19");
        let report = convert(SourceFormat::QataCov19, &raw, &dst, PromptSource::Csv(csv)).unwrap();
        assert_eq!((report.train, report.val, report.test), (0, 1, 1));
        let records = all_records(&dst);
        assert_eq!(records[0].name, "mask_covid_1.png");
        assert_eq!(records[0].prompt, "Bilateral infection, all lungs");
        assert!(
            records[0]
                .mask_path
                .ends_with("Val_Folder/label/mask_covid_1.png")
        );
    }

    #[test]
    fn brisc_no_tumour_gets_an_empty_mask() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("brisc2025");
        put(
            &root.join("segmentation_task/train/images/brisc2025_train_00001_gl_ax_t1.jpg"),
            rgb(4, 4, [60, 60, 60]),
        );
        put(
            &root.join("segmentation_task/train/masks/brisc2025_train_00001_gl_ax_t1.png"),
            grey(4, 4, |x, _| if x > 1 { 255 } else { 0 }),
        );
        put(
            &root.join("classification_task/test/no_tumor/brisc2025_test_00007_no_co_t1.jpg"),
            rgb(4, 4, [60, 60, 60]),
        );
        let dst = dir.path().join("data/BRISC");
        let report = convert_template(SourceFormat::Brisc2025, dir.path(), &dst);
        assert_eq!((report.train, report.test), (1, 1));
        let records = all_records(&dst);
        assert_eq!(
            records[0].prompt,
            "a no tumour lesion in brisc2025_test_00007_no_co_t1"
        );
        assert!(mask_values(&records[0].mask_path).iter().all(|&v| v == 0));
        assert_eq!(
            records[1].prompt,
            "a glioma lesion in brisc2025_train_00001_gl_ax_t1"
        );
    }

    #[test]
    fn colondb_cvc300_and_udiat_same_name_layouts() {
        for (format, img_dir, mask_dir) in [
            (
                SourceFormat::CvcColonDb,
                "CVC-ColonDB/images",
                "CVC-ColonDB/masks",
            ),
            (
                SourceFormat::Cvc300,
                "TestDataset/CVC-300/images",
                "TestDataset/CVC-300/masks",
            ),
            (SourceFormat::Udiat, "DatasetB/original", "DatasetB/GT"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            put(
                &dir.path().join(img_dir).join("7.png"),
                rgb(2, 1, [1, 1, 1]),
            );
            put(
                &dir.path().join(mask_dir).join("7.png"),
                rgb(2, 1, [200, 200, 200]),
            );
            let dst = dir.path().join("out/DS");
            convert_template(format, dir.path(), &dst);
            assert_eq!(
                mask_values(&all_records(&dst)[0].mask_path),
                [255, 255],
                "{format}"
            );
        }
    }

    #[test]
    fn mismatched_and_corrupt_masks_are_problems() {
        let dir = tempfile::tempdir().unwrap();
        put(&dir.path().join("images/a.png"), rgb(2, 2, [1, 1, 1]));
        put(&dir.path().join("masks/a.png"), grey(3, 2, |_, _| 0));
        put(&dir.path().join("images/b.png"), rgb(2, 2, [1, 1, 1]));
        std::fs::write(dir.path().join("masks/b.png"), b"junk").unwrap();
        put(&dir.path().join("images/c.png"), rgb(2, 2, [1, 1, 1]));
        put(&dir.path().join("masks/c.png"), grey(2, 2, |_, _| 255));
        let dst = dir.path().join("data/K");
        let report = convert_template(SourceFormat::KvasirSeg, dir.path(), &dst);
        assert_eq!(report.train + report.val + report.test, 1);
        assert_eq!(report.problems.len(), 2);
        assert!(
            report.problems[0].file.ends_with("masks/a.png")
                && report.problems[0].problem.contains("3x2")
        );
        assert!(
            report.problems[1].file.ends_with("masks/b.png")
                && report.problems[1].problem.contains("decode")
        );
    }

    #[test]
    fn missing_layout_and_prompt_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = convert(
            SourceFormat::KvasirSeg,
            dir.path(),
            &dir.path().join("o"),
            PromptSource::Template("x".into()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("images"), "{err}");
        put(&dir.path().join("images/a.png"), rgb(1, 1, [1, 1, 1]));
        put(&dir.path().join("masks/a.png"), grey(1, 1, |_, _| 0));
        let csv = dir.path().join("p.csv");
        std::fs::write(&csv, "Name,Text\n").unwrap();
        let err = convert(
            SourceFormat::KvasirSeg,
            dir.path(),
            &dir.path().join("o"),
            PromptSource::Csv(csv.clone()),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("p.csv") && err.to_string().contains("Image"),
            "{err}"
        );
        std::fs::write(&csv, "Image,Description\nother.png,x\n").unwrap();
        let report = convert(
            SourceFormat::KvasirSeg,
            dir.path(),
            &dir.path().join("o"),
            PromptSource::Csv(csv),
        )
        .unwrap();
        assert_eq!(report.problems.len(), 1);
        assert!(report.problems[0].problem.contains("no prompt"));
    }

    #[test]
    fn names_and_splits() {
        assert_eq!(busi_name("benign (12)", "benign"), "12_benign.png");
        assert_eq!(busi_name("odd name", "normal"), "odd name.png");
        assert_eq!(
            brisc_class("brisc2025_train_00001_pi_sa_t1").as_deref(),
            Some("pituitary")
        );
        let splits: Vec<Split> = (0..1000).map(|i| hash_split(&format!("{i}.png"))).collect();
        let train = splits.iter().filter(|&&s| s == Split::Train).count();
        assert!((740..860).contains(&train), "{train}");
        for f in SourceFormat::ALL {
            assert_eq!(f.as_str().parse::<SourceFormat>().unwrap(), f);
            assert_eq!(serde_json::to_value(f).unwrap(), f.as_str());
        }
    }
}
