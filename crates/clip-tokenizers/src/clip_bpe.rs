//! OpenAI CLIP's byte-level BPE (`bpe_simple_vocab_16e6`), as open_clip's
//! `SimpleTokenizer` runs it: [`clean_text_lower`](crate::clean_text_lower), then BPE,
//! then `<|startoftext|> … <|endoftext|>` padded with 0 to 77 tokens.
//!
//! The BPE itself is `instant-clip-tokenizer`, which bundles the vocabulary and follows
//! `SimpleTokenizer` (same split regex, same merge order). The text `<start_of_text>` or
//! `<end_of_text>` inside a prompt becomes the special token, as in open_clip ≥ 2.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use instant_clip_tokenizer::{Token, Tokenizer};

use crate::batch::{TextTokenizer, TokenBatch};
use crate::clean::clean_text_lower;
use crate::error::{Result, TokenizerError};

/// Size of the OpenAI CLIP vocabulary: 512 byte tokens, 48,894 merges, 2 special tokens.
const CLIP_VOCAB_SIZE: u16 = 49_408;

/// OpenAI CLIP BPE tokenizer.
///
/// ```
/// use clip_tokenizers::{ClipBpeTokenizer, TextTokenizer};
/// let tokenizer = ClipBpeTokenizer::new();
/// let batch = tokenizer.encode_batch(&["a photo of a cat"]).unwrap();
/// assert_eq!(batch.row(0)[..8], [49406, 320, 1125, 539, 320, 2368, 49407, 0]);
/// assert_eq!(batch.len, 77);
/// ```
pub struct ClipBpeTokenizer {
    bpe: Tokenizer,
    context_length: usize,
}

impl std::fmt::Debug for ClipBpeTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipBpeTokenizer")
            .field("context_length", &self.context_length)
            .field("vocab_size", &self.vocab_size())
            .finish_non_exhaustive()
    }
}

impl Default for ClipBpeTokenizer {
    fn default() -> Self {
        Self::new()
    }
}

impl ClipBpeTokenizer {
    /// CLIP's context length.
    pub const DEFAULT_CONTEXT_LENGTH: usize = 77;

    /// The bundled OpenAI vocabulary and a context of 77 tokens.
    pub fn new() -> Self {
        ClipBpeTokenizer {
            bpe: Tokenizer::new(),
            context_length: Self::DEFAULT_CONTEXT_LENGTH,
        }
    }

    /// Loads an uncompressed `bpe_simple_vocab_16e6.txt`-style merges file (a header line,
    /// then one `first second` merge per line; only the first 48,894 merges are used, as
    /// in CLIP).
    pub fn from_vocab_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bpe =
            Tokenizer::with_vocabulary(BufReader::new(file), CLIP_VOCAB_SIZE).map_err(|e| {
                TokenizerError::MalformedVocab {
                    path: PathBuf::from(path),
                    line: None,
                    reason: e.to_string(),
                }
            })?;
        Ok(ClipBpeTokenizer {
            bpe,
            context_length: Self::DEFAULT_CONTEXT_LENGTH,
        })
    }

    /// Same tokenizer with rows of `context_length` tokens (at least 2: start and end).
    pub fn with_context_length(mut self, context_length: usize) -> Result<Self> {
        if context_length < 2 {
            return Err(TokenizerError::ContextLengthTooSmall {
                requested: context_length,
                minimum: 2,
            });
        }
        self.context_length = context_length;
        Ok(self)
    }

    /// Id of `<|startoftext|>` (49406 with the OpenAI vocabulary).
    pub fn start_of_text(&self) -> i64 {
        i64::from(self.bpe.start_of_text().to_u16())
    }

    /// Id of `<|endoftext|>` (49407 with the OpenAI vocabulary).
    pub fn end_of_text(&self) -> i64 {
        i64::from(self.bpe.end_of_text().to_u16())
    }

    /// `[sot] + encode(clean(text)) + [eot]`, not truncated, not padded.
    pub fn encode_ids(&self, text: &str) -> Vec<i64> {
        let cleaned = clean_text_lower(text);
        let mut tokens: Vec<Token> = vec![self.bpe.start_of_text()];
        self.bpe.encode(&cleaned, &mut tokens);
        tokens.push(self.bpe.end_of_text());
        tokens.into_iter().map(|t| i64::from(t.to_u16())).collect()
    }

    /// open_clip's cut: `tokens = tokens[:context_length]; tokens[-1] = eot_token`.
    fn truncated_ids(&self, text: &str) -> Vec<i64> {
        let mut ids = self.encode_ids(text);
        if ids.len() > self.context_length {
            ids.truncate(self.context_length);
            if let Some(last) = ids.last_mut() {
                *last = self.end_of_text();
            }
        }
        ids
    }
}

impl TextTokenizer for ClipBpeTokenizer {
    fn encode_batch(&self, texts: &[&str]) -> Result<TokenBatch> {
        let rows = texts.iter().map(|text| self.truncated_ids(text)).collect();
        Ok(TokenBatch::from_rows(
            rows,
            self.context_length,
            self.pad_id(),
        ))
    }

    fn context_length(&self) -> usize {
        self.context_length
    }

    fn token_count(&self, text: &str) -> Result<usize> {
        Ok(self.encode_ids(text).len())
    }

    fn vocab_size(&self) -> usize {
        usize::from(self.bpe.end_of_text().to_u16()) + 1
    }

    /// open_clip pads with 0 (which is also the id of `!`; CLIP's causal text tower
    /// never attends to padding, so the clash is harmless).
    fn pad_id(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// Building the BPE parses 48,894 merges: share one tokenizer between tests.
    fn tokenizer() -> &'static ClipBpeTokenizer {
        static TOKENIZER: OnceLock<ClipBpeTokenizer> = OnceLock::new();
        TOKENIZER.get_or_init(ClipBpeTokenizer::new)
    }

    fn padded(ids: &[i64], len: usize) -> Vec<i64> {
        let mut row = ids.to_vec();
        row.resize(len, 0);
        row
    }

    #[test]
    fn a_photo_of_a_cat() {
        let batch = tokenizer().encode_batch(&["a photo of a cat"]).unwrap();
        let expected = [49406, 320, 1125, 539, 320, 2368, 49407];
        assert_eq!((batch.batch, batch.len), (1, 77));
        assert_eq!(batch.ids, padded(&expected, 77));
        assert_eq!(batch.lengths(), [7]);
    }

    // Expected ids: open_clip 3.3.0 `SimpleTokenizer` (its own tokenizer.py, with ftfy 6.3.1;
    // torch stubbed out), printed by `tools/make_expected_ids.py`. Checked once more
    // widely the same way: all 5,071 distinct prompts of the datasets' spreadsheets.
    const SPEC_PROMPTS: [(&str, &[i64]); 11] = [
        (
            "One medium triangular-shaped irregular tumor at the right in the breast ultrasound image.",
            &[
                49406, 637, 8675, 924, 24981, 268, 10127, 38692, 22616, 536, 518, 1155, 530, 518,
                9475, 29717, 2867, 269, 49407,
            ],
        ),
        (
            "No tumor in the breast ultrasound image.\n",
            &[49406, 871, 22616, 530, 518, 9475, 29717, 2867, 269, 49407],
        ),
        (
            "contrast-enhanced MRI reveals a meningioma tumor in the center region",
            &[
                49406, 18501, 268, 16070, 24773, 6621, 320, 46428, 72, 5358, 22616, 530, 518, 2119,
                4341, 49407,
            ],
        ),
        (
            "diagnostic MRI confirms a pituitary brain tumor in the center region",
            &[
                49406, 26351, 24773, 11803, 320, 79, 1668, 17604, 4812, 22616, 530, 518, 2119,
                4341, 49407,
            ],
        ),
        (
            "one large brown oval skin melanoma which is a spot with irregular texture located in center of the image\n",
            &[
                49406, 637, 3638, 2866, 15039, 3575, 40862, 1448, 533, 320, 3049, 593, 38692,
                16505, 5677, 530, 2119, 539, 518, 2867, 49407,
            ],
        ),
        (
            "one small pink circle polyp, located in right of the image\n",
            &[
                49406, 637, 2442, 3360, 7117, 6833, 335, 267, 5677, 530, 1155, 539, 518, 2867,
                49407,
            ],
        ),
        (
            "Bilateral pulmonary infection involving two regions with involvement of all left lung and all right lung",
            &[
                49406, 25599, 39132, 14774, 14786, 1237, 14530, 593, 19502, 539, 615, 1823, 16271,
                537, 615, 1155, 16271, 49407,
            ],
        ),
        (
            "Normal pancreatic head with no masses in EUS",
            &[49406, 5967, 49337, 1375, 593, 871, 22978, 530, 44214, 49407],
        ),
        (
            "Imaging identifies a glioma tumor in the lower quadrant.",
            &[
                49406, 14231, 35712, 320, 5896, 5358, 22616, 530, 518, 4909, 11656, 9819, 269,
                49407,
            ],
        ),
        (
            "one small pink circle polyp, located in  of the image",
            &[
                49406, 637, 2442, 3360, 7117, 6833, 335, 267, 5677, 530, 539, 518, 2867, 49407,
            ],
        ),
        ("Polyp visible.", &[49406, 6833, 335, 8626, 269, 49407]),
    ];

    // Same provenance: non-ASCII, mojibake, HTML entities, ligatures, full-width letters
    // and the literal special-token strings.
    const ODD_PROMPTS: [(&str, &[i64]); 5] = [
        (
            "Café's tumor—size ≥ 3cm 😀",
            &[
                49406, 15304, 568, 22616, 2005, 3235, 22684, 354, 274, 3741, 7334, 49407,
            ],
        ),
        (
            "cafÃ© tumorâ€™s 12.5mm &amp;lt;edge&amp;gt;",
            &[
                49406, 15304, 22616, 568, 272, 273, 269, 276, 2848, 283, 5461, 285, 49407,
            ],
        ),
        (
            "I've seen it's \u{201C}normal\u{201D}",
            &[49406, 328, 1200, 2041, 585, 568, 257, 5967, 257, 49407],
        ),
        (
            "ﬁbrous ＭＲＩ scan",
            &[49406, 701, 711, 879, 24773, 11261, 49407],
        ),
        (
            "<start_of_text> and <end_of_text>",
            &[49406, 49406, 537, 49407, 49407],
        ),
    ];

    #[test]
    fn prompts_match_open_clip() {
        for (text, expected) in SPEC_PROMPTS.iter().chain(&ODD_PROMPTS) {
            assert_eq!(tokenizer().encode_ids(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn batch_rows_are_padded_with_zero() {
        let texts: Vec<&str> = SPEC_PROMPTS.iter().map(|(text, _)| *text).collect();
        let batch = tokenizer().encode_batch(&texts).unwrap();
        assert_eq!((batch.batch, batch.len), (SPEC_PROMPTS.len(), 77));
        for (row, (_, expected)) in SPEC_PROMPTS.iter().enumerate() {
            assert_eq!(batch.row(row), padded(expected, 77));
            assert_eq!(batch.lengths()[row], expected.len());
        }
    }

    #[test]
    fn long_text_is_cut_with_end_of_text_last() {
        // open_clip: `tokens[:77]` then `tokens[-1] = eot`; "polyp" is the 2 tokens 6833 335.
        let long = "polyp ".repeat(100);
        let batch = tokenizer().encode_batch(&[&long]).unwrap();
        let row = batch.row(0);
        assert_eq!(row[0], 49406);
        assert!(
            row[1..76]
                .chunks(2)
                .all(|pair| pair == [6833, 335] || pair == [6833])
        );
        assert_eq!(row[76], 49407);
        assert_eq!(batch.lengths(), [77]);
    }

    #[test]
    fn shorter_context_cuts_the_same_way() {
        let short = ClipBpeTokenizer::new().with_context_length(8).unwrap();
        let batch = short.encode_batch(&[SPEC_PROMPTS[0].0]).unwrap();
        // open_clip `SimpleTokenizer()(text, context_length=8)`.
        assert_eq!(batch.ids, [49406, 637, 8675, 924, 24981, 268, 10127, 49407]);
        assert_eq!(short.context_length(), 8);
        // The count is taken before the cut.
        let (text, ids) = SPEC_PROMPTS[0];
        assert_eq!(short.token_count(text).unwrap(), ids.len());
        assert!(matches!(
            ClipBpeTokenizer::new().with_context_length(1),
            Err(TokenizerError::ContextLengthTooSmall {
                requested: 1,
                minimum: 2
            })
        ));
    }

    #[test]
    fn trailing_newline_gives_the_same_ids() {
        for (text, _) in SPEC_PROMPTS {
            let bare = text.trim_end_matches('\n');
            assert_eq!(
                tokenizer().encode_ids(&format!("{bare}\n")),
                tokenizer().encode_ids(bare)
            );
        }
    }

    #[test]
    fn vocabulary_facts() {
        let clip = tokenizer();
        assert_eq!(clip.vocab_size(), 49_408);
        assert_eq!((clip.start_of_text(), clip.end_of_text()), (49406, 49407));
        assert_eq!(clip.pad_id(), 0);
    }

    #[test]
    fn missing_or_malformed_vocab_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("bpe_simple_vocab_16e6.txt");
        let err = ClipBpeTokenizer::from_vocab_file(&missing).unwrap_err();
        assert!(matches!(err, TokenizerError::Io { ref path, .. } if *path == missing));
        assert!(err.to_string().contains("bpe_simple_vocab_16e6.txt"));

        let bad = dir.path().join("bad.txt");
        std::fs::write(&bad, "#version: 0.2\nonlyone\n").unwrap();
        let err = ClipBpeTokenizer::from_vocab_file(&bad).unwrap_err();
        assert!(matches!(err, TokenizerError::MalformedVocab { ref path, .. } if *path == bad));
    }

    #[test]
    fn small_merges_file_builds_a_small_vocabulary() {
        // Header, then merges: "p o" → "po", "po l" → "pol", "y p</w>" → "yp</w>".
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("merges.txt");
        std::fs::write(&path, "#version: 0.2\np o\npo l\ny p</w>\n").unwrap();
        let tiny = ClipBpeTokenizer::from_vocab_file(&path).unwrap();
        // 512 byte tokens + 3 merges, then start and end of text.
        assert_eq!((tiny.start_of_text(), tiny.end_of_text()), (515, 516));
        assert_eq!(tiny.vocab_size(), 517);
        // Merged tokens take ids 512.. in merge order, as in `SimpleTokenizer`:
        // "polyp" → "pol" (513) + "yp</w>" (514).
        assert_eq!(tiny.encode_ids("polyp"), [515, 513, 514, 516]);
    }
}
