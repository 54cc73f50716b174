//! The datasets of MedCLIPSeg: the registry of the 16 datasets, a reader of MedCLIPSeg's
//! packaged layout, converters from the original public releases, the reference
//! preprocessing (bit-exact with OpenCV and PIL), a deterministic batch loader, and a synthetic
//! text-guided dataset that is the project's embedded default.
//!
//! This crate does not depend on Burn: batches are plain `Vec<f32>` that the model side turns
//! into tensors.
//!
//! # Main entry points
//! * [`registry()`]: the 16 datasets as typed data (`registry.toml`, embedded), with
//!   [`Registry::render_table`] and [`Registry::to_json`].
//! * [`inspect`] / [`read_records`]: read `<root>/<DS>/Prompts_Folder/*.xlsx|csv` by header name
//!   and check the files; problems are `{file, row, problem}` records (skipped by default, an
//!   error in strict mode).
//! * [`convert()`]: original releases (BUSI, Kvasir-SEG, CVC-ClinicDB, BKAI, BUS-BRA, ISIC 2016,
//!   BUID, UWaterloo, QaTa-COV19, BRISC 2025, ...) to the packaged layout.
//! * [`load_sample`] and [`DataLoader`]: records to [`Sample`]s and [`Batch`]es.
//! * [`generate`]: the synthetic datasets `Synthetic` and `SyntheticShifted`, with `vocab.txt`.
//!
//! # Faithful defaults (what MedCLIPSeg's code does)
//! * Images read like `cv2.imread`: 3 channels in **BGR** order, grey replicated.
//! * Masks read like `cv2.imread(.., 0)` (grey; libpng's weights for colour PNGs), resized
//!   nearest, foreground `>= 127`.
//! * Image resize: `cv2.resize` `INTER_LINEAR` to 224, **bit-exact** with OpenCV 4.10/5.0
//!   (fixed-point weights and the SIMD vertical rounding; see [`resize`]). Mask resize:
//!   `INTER_NEAREST`, bit-exact.
//! * Training augmentation: with p = 0.5 a rotation by an integer angle uniform in [-20, 20]
//!   degrees, PIL `Image.rotate` semantics (counter-clockwise, centre `(w/2, h/2)`, nearest, black
//!   fill), bit-exact with Pillow's fixed-point affine path; nothing else.
//! * `to_tensor` then ImageNet mean/std `(0.485, 0.456, 0.406)` / `(0.229, 0.224, 0.225)` applied
//!   to the planes **B, G, R** in that order (the reference's quirk).
//! * Rows sorted by image name; a duplicated image row is skipped and reported (the reference
//!   keeps it: [`ReadOptions::keep_duplicates`]); prompts kept raw (trailing `"\n"` included).
//! * Loader: batch 24 in the reference, `drop_last = false`, seeded shuffling.
//!
//! # Clean options (off by default)
//! * [`ChannelOrder::Rgb`]: planes in R, G, B order with the matching statistics.
//! * [`MaskRead::AnyChannel`]: foreground where any channel `> 127` (raw colour masks, BKAI).
//! * [`Augmentation`]: horizontal/vertical flips, random zoom, brightness/contrast jitter.
//! * [`ReadOptions::verify_images`]: check image/mask headers and sizes while inspecting.
//!
//! # Exactness, as measured against OpenCV 4.10 and Pillow 13
//! * PNG `cv2.imread` (colour and grey reads), `INTER_LINEAR` and `INTER_NEAREST` resizes of
//!   six images from 37x1001 to 574x500 down to 224x224, and PIL rotations of a 224x224x3
//!   image by every integer angle in [-20, 20] (plus 45, 90, 270 on a 131x97 grey image):
//!   **0 differing samples**.
//! * JPEG decodes through zune-jpeg, not libjpeg-turbo: a grey read differs by 1 level on about
//!   1 % of pixels; a colour read (4:2:0 chroma) differs on about 28 % of samples, by at most
//!   9 levels. EXIF orientation is not applied. MedCLIPSeg's packaged images are all PNG; only
//!   BKAI's masks are JPEG, and they are thresholded.
//! * A PNG with a `gAMA` chunk read in grey goes through libpng's gamma path in OpenCV; that
//!   path is not reproduced.

pub mod convert;
pub mod csv_text;
pub mod error;
mod fsutil;
pub mod imaging;
pub mod kinds;
pub mod layout;
pub mod loader;
pub mod preprocess;
pub mod registry;
pub mod resize;
pub mod rotate;
pub mod sheet;
pub mod synth;
pub mod vocab;

pub use convert::{ConvertReport, PromptSource, SourceFormat, convert};
pub use error::{Error, Result};
pub use imaging::Image8;
pub use kinds::{Percent, PromptStyle, SheetKind, Split};
pub use layout::{
    InspectReport, Problem, ReadOptions, Record, SheetRecords, inspect, inspect_with,
    list_datasets, read_records,
};
pub use loader::{Batch, BatchIter, DataLoader, LoaderConfig};
pub use preprocess::{Augmentation, ChannelOrder, MaskRead, PreprocessConfig, Sample, load_sample};
pub use registry::{DatasetInfo, DgGroup, PaperConfig, Registry, Role, registry};
pub use sheet::{
    ImagePrompts, PromptEntry, PromptSheet, SheetFormat, read_prompt_sheet, write_prompt_sheet,
};
pub use synth::{SynthConfig, SynthSummary, generate};
pub use vocab::{PromptVocabulary, prompt_vocabulary};

/// The README example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
