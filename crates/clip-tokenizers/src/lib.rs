//! Tokenizers of the CLIP-family text towers used by MedCLIPSeg, with the reference's
//! text cleaning. No Burn dependency: the output is plain `Vec<i64>` rows.
//!
//! - [`BertTokenizer`]: uncased BERT WordPiece from a `vocab.txt` or a HF `tokenizer.json`,
//!   as open_clip's `HFTokenizer` runs BiomedBERT for UniMedCLIP (context 256,
//!   `[CLS] … [SEP] [PAD]…`).
//! - [`ClipBpeTokenizer`]: OpenAI CLIP's byte-level BPE (bundled vocabulary, context 77,
//!   `49406 … 49407 0…`), for the `clip` / `pubmedclip` backbone variants.
//! - [`TextTokenizer`]: the trait both implement, so the model and the app can be generic.
//! - [`clean_text`] / [`clean_text_lower`]: open_clip's cleaning (`ftfy.fix_text`,
//!   `html.unescape` twice, whitespace collapse, strip; lower-case for CLIP BPE). The
//!   [`ftfy`] module ports `ftfy.fix_text`; its docs list what differs from Python.
//!
//! Prompts read from the datasets' spreadsheets often end in `\n`; cleaning removes it, so
//! `"polyp\n"` and `"polyp"` give the same ids.
//!
//! ```
//! use clip_tokenizers::{BertTokenizer, ClipBpeTokenizer, TextTokenizer};
//!
//! fn encode(tokenizer: &dyn TextTokenizer, prompts: &[&str]) -> Vec<i64> {
//!     tokenizer.encode_batch(prompts).unwrap().ids
//! }
//!
//! let clip = ClipBpeTokenizer::new();
//! assert_eq!(encode(&clip, &["a photo of a cat\n"])[..7], [49406, 320, 1125, 539, 320, 2368, 49407]);
//!
//! # let vocab = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/bert_medical_vocab.txt");
//! let bert = BertTokenizer::from_file(vocab, BertTokenizer::DEFAULT_MAX_LENGTH).unwrap();
//! let batch = bert.encode_batch(&["Polyp visible.", "No tumor in the breast ultrasound image.\n"]).unwrap();
//! assert_eq!((batch.batch, batch.len), (2, 256));
//! assert_eq!(batch.lengths(), [5, 11]);
//! ```

#![warn(missing_docs)]

mod batch;
mod bert;
mod clean;
mod clip_bpe;
mod error;
pub mod ftfy;

pub use batch::{TextTokenizer, TokenBatch};
pub use bert::BertTokenizer;
pub use clean::{clean_text, clean_text_lower, collapse_whitespace, is_python_whitespace};
pub use clip_bpe::ClipBpeTokenizer;
pub use error::{Result, TokenizerError};

/// The README example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
