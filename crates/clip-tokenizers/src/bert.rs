//! Uncased BERT WordPiece, as open_clip's `HFTokenizer` runs it for BiomedBERT:
//! `tokenizer(texts, padding='max_length', max_length=256, truncation=True)` after
//! [`clean_text`](crate::clean_text).

use std::path::{Path, PathBuf};

use ahash::AHashMap;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, ModelWrapper, Tokenizer, TruncationParams};

use crate::batch::{TextTokenizer, TokenBatch};
use crate::clean::clean_text;
use crate::error::{Result, TokenizerError};

const PAD: &str = "[PAD]";
const UNK: &str = "[UNK]";
const CLS: &str = "[CLS]";
const SEP: &str = "[SEP]";
const MASK: &str = "[MASK]";

/// HF's `max_input_chars_per_word`: longer words become `[UNK]`.
const MAX_INPUT_CHARS_PER_WORD: usize = 100;

/// BERT WordPiece tokenizer (uncased), built from a `vocab.txt` or a HF `tokenizer.json`.
///
/// Rows are `[CLS] tokens… [SEP] [PAD]…`, truncated like HF `truncation=True` (the
/// `[SEP]` stays last) and padded to `max_length`. Special-token ids come from the
/// vocabulary.
///
/// ```
/// use clip_tokenizers::{BertTokenizer, TextTokenizer};
/// # fn main() -> Result<(), clip_tokenizers::TokenizerError> {
/// # let vocab = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/bert_medical_vocab.txt");
/// let tokenizer = BertTokenizer::from_vocab_file(vocab, 8)?;
/// let batch = tokenizer.encode_batch(&["Polyp visible.\n"])?;
/// assert_eq!(batch.len, 8);
/// assert_eq!(batch.row(0)[0], tokenizer.token_to_id("[CLS]").unwrap() as i64);
/// assert_eq!(batch.mask_row(0), [1, 1, 1, 1, 1, 0, 0, 0]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BertTokenizer {
    inner: Tokenizer,
    /// The same tokenizer without truncation, to count the tokens of a text that is cut.
    untruncated: Tokenizer,
    max_length: usize,
    pad_id: u32,
}

impl BertTokenizer {
    /// open_clip's context length for BiomedBERT (`HFTokenizer(..., context_length=256)`).
    pub const DEFAULT_MAX_LENGTH: usize = 256;

    /// Loads `tokenizer.json` when the file name ends in `.json`, else a `vocab.txt`.
    pub fn from_file(path: impl AsRef<Path>, max_length: usize) -> Result<Self> {
        let path = path.as_ref();
        if path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"))
        {
            Self::from_tokenizer_json(path, max_length)
        } else {
            Self::from_vocab_file(path, max_length)
        }
    }

    /// Builds the tokenizer HF's `BertTokenizerFast(vocab_file, do_lower_case=True)` makes:
    /// BERT normalizer (clean text, Chinese chars, strip accents, lowercase), BERT
    /// pre-tokenizer, WordPiece with `##` continuations, `[CLS] … [SEP]`.
    pub fn from_vocab_file(path: impl AsRef<Path>, max_length: usize) -> Result<Self> {
        let path = path.as_ref();
        let tokens = read_vocab(path)?;
        Self::from_vocab_tokens(tokens, path, max_length)
    }

    /// [`BertTokenizer::from_vocab_file`] of `vocab.txt` text held in memory (e.g. stored in a
    /// checkpoint); `origin` names it in errors.
    pub fn from_vocab_text(
        text: &str,
        origin: impl AsRef<Path>,
        max_length: usize,
    ) -> Result<Self> {
        let origin = origin.as_ref();
        let tokens = parse_vocab(text, origin)?;
        Self::from_vocab_tokens(tokens, origin, max_length)
    }

    fn from_vocab_tokens(tokens: Vec<String>, path: &Path, max_length: usize) -> Result<Self> {
        let vocab: AHashMap<String, u32> = tokens.iter().cloned().zip(0u32..).collect();
        let special_id = |token: &str| {
            vocab
                .get(token)
                .copied()
                .ok_or_else(|| missing_special(path, token))
        };
        let (cls, sep) = (special_id(CLS)?, special_id(SEP)?);
        special_id(UNK)?;
        special_id(PAD)?;
        let wordpiece = WordPiece::builder()
            .vocab(vocab.clone())
            .unk_token(UNK.to_string())
            .continuing_subword_prefix("##".to_string())
            .max_input_chars_per_word(MAX_INPUT_CHARS_PER_WORD)
            .build()
            .map_err(|e| malformed(path, None, e.to_string()))?;
        let mut tokenizer = Tokenizer::new(wordpiece);
        tokenizer
            .with_normalizer(Some(BertNormalizer::new(true, true, None, true)))
            .map_err(|e| malformed(path, None, e.to_string()))?;
        tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
        tokenizer.with_post_processor(Some(BertProcessing::new(
            (SEP.to_string(), sep),
            (CLS.to_string(), cls),
        )));
        // Like HF: the special tokens are matched whole in the input text.
        let specials: Vec<AddedToken> = [PAD, UNK, CLS, SEP, MASK]
            .into_iter()
            .filter(|token| vocab.contains_key(*token))
            .map(|token| AddedToken::from(token, true))
            .collect();
        tokenizer
            .add_special_tokens(specials)
            .map_err(|e| malformed(path, None, e.to_string()))?;
        Self::finish(tokenizer, path, max_length)
    }

    /// Loads a Hugging Face `tokenizer.json` of a WordPiece (BERT) tokenizer. Its own
    /// padding and truncation settings are replaced by `max_length`.
    pub fn from_tokenizer_json(path: impl AsRef<Path>, max_length: usize) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |reason: String| TokenizerError::InvalidTokenizerJson {
            path: path.to_path_buf(),
            reason,
        };
        let tokenizer = Tokenizer::from_bytes(&bytes).map_err(|e| invalid(e.to_string()))?;
        if !matches!(tokenizer.get_model(), ModelWrapper::WordPiece(_)) {
            return Err(invalid("the model is not WordPiece".to_string()));
        }
        Self::finish(tokenizer, path, max_length)
    }

    /// Checks the special tokens and sets truncation; padding is done by `encode_batch`.
    fn finish(mut tokenizer: Tokenizer, path: &Path, max_length: usize) -> Result<Self> {
        if max_length < 2 {
            return Err(TokenizerError::ContextLengthTooSmall {
                requested: max_length,
                minimum: 2,
            });
        }
        let special_id = |token: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| missing_special(path, token))
        };
        let (pad_id, cls, sep) = (special_id(PAD)?, special_id(CLS)?, special_id(SEP)?);
        special_id(UNK)?;
        tokenizer.with_padding(None);
        let mut untruncated = tokenizer.clone();
        untruncated
            .with_truncation(None)
            .map_err(|e| TokenizerError::InvalidTokenizerJson {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                ..TruncationParams::default()
            }))
            .map_err(|e| TokenizerError::InvalidTokenizerJson {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let bert = BertTokenizer {
            inner: tokenizer,
            untruncated,
            max_length,
            pad_id,
        };
        if bert.encode_ids("")? != [i64::from(cls), i64::from(sep)] {
            return Err(TokenizerError::InvalidTokenizerJson {
                path: path.to_path_buf(),
                reason: "its post-processor does not wrap texts in [CLS] … [SEP]".to_string(),
            });
        }
        Ok(bert)
    }

    /// Ids of one cleaned text: `[CLS] … [SEP]`, truncated to `max_length`, not padded.
    pub fn encode_ids(&self, text: &str) -> Result<Vec<i64>> {
        let cleaned = clean_text(text);
        let encoding = self
            .inner
            .encode(cleaned.as_str(), true)
            .map_err(|e| encode_error(&cleaned, e.to_string()))?;
        Ok(encoding.get_ids().iter().map(|&id| i64::from(id)).collect())
    }

    /// The id of `token` (e.g. `"[SEP]"`, `"##oma"`), if the vocabulary has it.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The WordPiece tokens of a cleaned text, with `[CLS]`/`[SEP]` (for debugging prompts).
    pub fn tokens(&self, text: &str) -> Result<Vec<String>> {
        let cleaned = clean_text(text);
        let encoding = self
            .inner
            .encode(cleaned.as_str(), true)
            .map_err(|e| encode_error(&cleaned, e.to_string()))?;
        Ok(encoding.get_tokens().to_vec())
    }
}

impl TextTokenizer for BertTokenizer {
    fn encode_batch(&self, texts: &[&str]) -> Result<TokenBatch> {
        let rows = texts
            .iter()
            .map(|text| self.encode_ids(text))
            .collect::<Result<Vec<_>>>()?;
        Ok(TokenBatch::from_rows(rows, self.max_length, self.pad_id()))
    }

    fn context_length(&self) -> usize {
        self.max_length
    }

    fn token_count(&self, text: &str) -> Result<usize> {
        let cleaned = clean_text(text);
        let encoding = self
            .untruncated
            .encode(cleaned.as_str(), true)
            .map_err(|e| encode_error(&cleaned, e.to_string()))?;
        Ok(encoding.get_ids().len())
    }

    fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    fn pad_id(&self) -> i64 {
        i64::from(self.pad_id)
    }
}

/// Reads a `vocab.txt`: one token per line, the id is the 0-based line number.
///
/// Stricter than HF, which silently lets a repeated token take the later id: a repeated
/// token, an empty line or a token with whitespace means this is not a WordPiece vocab.
fn read_vocab(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|source| TokenizerError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        malformed(path, Some(line), "not UTF-8".to_string())
    })?;
    parse_vocab(&text, path)
}

/// One token a line, each non-empty, without whitespace, and not repeated.
fn parse_vocab(text: &str, path: &Path) -> Result<Vec<String>> {
    let mut first_line_of: AHashMap<&str, usize> = AHashMap::new();
    let mut tokens = Vec::new();
    for (index, token) in text.lines().enumerate() {
        let line = index + 1;
        if token.is_empty() || token.contains(char::is_whitespace) {
            let reason = format!("token {token:?} is empty or contains whitespace");
            return Err(malformed(path, Some(line), reason));
        }
        if let Some(first) = first_line_of.insert(token, line) {
            let reason = format!("token {token:?} already appears on line {first}");
            return Err(malformed(path, Some(line), reason));
        }
        tokens.push(token.to_string());
    }
    if tokens.is_empty() {
        return Err(malformed(path, None, "no tokens".to_string()));
    }
    Ok(tokens)
}

fn malformed(path: &Path, line: Option<usize>, reason: String) -> TokenizerError {
    TokenizerError::MalformedVocab {
        path: path.to_path_buf(),
        line,
        reason,
    }
}

fn missing_special(path: &Path, token: &str) -> TokenizerError {
    TokenizerError::MissingSpecialToken {
        path: PathBuf::from(path),
        token: token.to_string(),
    }
}

fn encode_error(text: &str, reason: String) -> TokenizerError {
    TokenizerError::Encode {
        text: text.chars().take(80).collect(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

    fn fixture_vocab() -> PathBuf {
        Path::new(FIXTURES).join("bert_medical_vocab.txt")
    }

    fn fixture_tokenizer(max_length: usize) -> BertTokenizer {
        BertTokenizer::from_vocab_file(fixture_vocab(), max_length).unwrap()
    }

    #[test]
    fn vocabulary_text_in_memory_tokenises_like_the_file() {
        let text = std::fs::read_to_string(fixture_vocab()).unwrap();
        let from_text = BertTokenizer::from_vocab_text(&text, "ckpt (stored)", 32).unwrap();
        let prompt = FIXTURE_PROMPTS[0].0;
        assert_eq!(
            from_text.encode_ids(prompt).unwrap(),
            fixture_tokenizer(32).encode_ids(prompt).unwrap()
        );
        let error = BertTokenizer::from_vocab_text("[PAD]\n[PAD]\n", "ckpt (stored)", 32)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("ckpt (stored)"), "{error}");
    }

    // Expected ids: open_clip's `HFTokenizer` steps (`_clean_whitespace`, then
    // `tokenizer(texts, max_length=256, padding='max_length', truncation=True)`) with
    // `transformers.BertTokenizerFast(vocab_file=fixtures/bert_medical_vocab.txt,
    // do_lower_case=True)` 4.57.6, cross-checked with `tokenizers.BertWordPieceTokenizer`;
    // printed by `tools/make_expected_ids.py` ([PAD] ids left out).
    const FIXTURE_PROMPTS: [(&str, &[i64]); 9] = [
        // [CLS] one medium triangular - shaped irregular tumor at the right in the breast ultra ##sound image . [SEP]
        (
            "One medium triangular-shaped irregular tumor at the right in the breast ultrasound image.",
            &[
                2, 94, 100, 108, 7, 111, 109, 122, 85, 82, 156, 84, 82, 134, 143, 205, 147, 5, 3,
            ],
        ),
        (
            "No tumor in the breast ultrasound image.\n",
            &[2, 92, 122, 84, 82, 134, 143, 205, 147, 5, 3],
        ),
        // … contrast - enhance ##d mri reveals a mening ##ioma tumor …
        (
            "contrast-enhanced MRI reveals a meningioma tumor in the center region",
            &[
                2, 197, 7, 198, 58, 144, 169, 29, 194, 201, 122, 84, 82, 153, 149, 3,
            ],
        ),
        // … a pit ##uit ##ary brain …
        (
            "diagnostic MRI confirms a pituitary brain tumor in the center region",
            &[
                2, 174, 144, 171, 29, 196, 203, 204, 135, 122, 84, 82, 153, 149, 3,
            ],
        ),
        (
            "one small pink circle polyp, located in right of the image\n",
            &[2, 94, 99, 113, 106, 120, 6, 162, 84, 156, 83, 82, 147, 3],
        ),
        (
            "Imaging identifies a glioma tumor in the lower quadrant.",
            &[2, 173, 172, 29, 195, 202, 122, 84, 82, 160, 151, 5, 3],
        ),
        // "which" is not in the vocab: w ##h ##ic ##h.
        (
            "one large brown oval skin melanoma which is a spot with irregular texture located in center of the image\n",
            &[
                2, 94, 101, 116, 105, 129, 130, 51, 62, 210, 62, 90, 29, 128, 87, 109, 186, 162,
                84, 153, 83, 82, 147, 3,
            ],
        ),
        // Accents stripped (café → cafe), [UNK] for — ≥ 😀.
        (
            "Café's tumor—size ≥ 3cm 😀",
            &[2, 199, 12, 47, 122, 1, 47, 63, 80, 59, 1, 22, 57, 67, 1, 3],
        ),
        // ftfy: ligature and full-width letters; uncurled quotes.
        ("ﬁbrous ＭＲＩ scan", &[2, 34, 63, 56, 72, 211, 144, 146, 3]),
    ];

    #[test]
    fn fixture_prompts_match_hugging_face() {
        let bert = fixture_tokenizer(256);
        for (text, expected) in FIXTURE_PROMPTS {
            assert_eq!(bert.encode_ids(text).unwrap(), expected, "{text:?}");
        }
    }

    #[test]
    fn batch_is_padded_to_max_length_with_pad_id() {
        let bert = fixture_tokenizer(256);
        let texts: Vec<&str> = FIXTURE_PROMPTS.iter().map(|(text, _)| *text).collect();
        let batch = bert.encode_batch(&texts).unwrap();
        assert_eq!((batch.batch, batch.len), (texts.len(), 256));
        for (row, (_, expected)) in FIXTURE_PROMPTS.iter().enumerate() {
            assert_eq!(&batch.row(row)[..expected.len()], *expected);
            assert!(batch.row(row)[expected.len()..].iter().all(|&id| id == 0));
            assert_eq!(batch.lengths()[row], expected.len());
        }
        assert_eq!(
            (bert.pad_id(), bert.context_length(), bert.vocab_size()),
            (0, 256, 219)
        );
    }

    #[test]
    fn truncation_keeps_sep_last() {
        // HF `max_length=8, truncation=True`.
        let bert = fixture_tokenizer(8);
        let batch = bert.encode_batch(&[FIXTURE_PROMPTS[0].0]).unwrap();
        assert_eq!(batch.ids, [2, 94, 100, 108, 7, 111, 109, 3]);
        assert_eq!(batch.attention_mask, [1; 8]);
    }

    #[test]
    fn token_counts_are_taken_before_the_cut() {
        let (text, expected) = FIXTURE_PROMPTS[0];
        assert!(
            expected.len() > 8,
            "the fixture prompt must be longer than the cut"
        );
        let bert = fixture_tokenizer(8);
        assert_eq!(bert.token_count(text).unwrap(), expected.len());
        assert_eq!(
            fixture_tokenizer(256).token_count(text).unwrap(),
            expected.len()
        );
    }

    #[test]
    fn special_tokens_long_words_and_masks_match_hugging_face() {
        // HF `max_length=12`: the literal "[MASK]"/"[PAD]" are special tokens; a word of
        // 101 chars is [UNK], one of 100 chars is split into WordPieces.
        let bert = fixture_tokenizer(12);
        let long_word = format!("{} polyp", "a".repeat(101));
        let word_of_100 = format!("a {}", "b".repeat(100));
        let batch = bert
            .encode_batch(&["the [MASK] polyp [PAD]", &word_of_100, &long_word])
            .unwrap();
        assert_eq!(batch.row(0), [2, 82, 4, 120, 0, 3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(batch.row(1), [2, 29, 30, 56, 56, 56, 56, 56, 56, 56, 56, 3]);
        assert_eq!(batch.row(2), [2, 1, 120, 3, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(batch.mask_row(0), [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(batch.mask_row(1), [1; 12]);
        assert_eq!(batch.mask_row(2), [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn tokenizer_json_gives_the_same_ids_as_vocab_txt() {
        // Saved by HF with padding/truncation of 12, which must not leak through.
        let json = Path::new(FIXTURES).join("bert_medical_tokenizer.json");
        let from_json = BertTokenizer::from_file(&json, 256).unwrap();
        let from_vocab = BertTokenizer::from_file(fixture_vocab(), 256).unwrap();
        let texts: Vec<&str> = FIXTURE_PROMPTS.iter().map(|(text, _)| *text).collect();
        assert_eq!(
            from_json.encode_batch(&texts).unwrap(),
            from_vocab.encode_batch(&texts).unwrap()
        );
        assert_eq!(from_json.vocab_size(), 219);
    }

    #[test]
    fn special_ids_come_from_the_vocabulary() {
        // The same vocab with [CLS]/[SEP] swapped and [PAD] moved to the end:
        // [UNK] 0, [SEP] 1, [CLS] 2, [MASK] 3, …, [PAD] 218.
        let text = std::fs::read_to_string(fixture_vocab()).unwrap();
        let mut tokens: Vec<&str> = text.lines().collect();
        tokens.swap(2, 3);
        let pad = tokens.remove(0);
        tokens.push(pad);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vocab.txt");
        std::fs::write(&path, tokens.join("\n")).unwrap();
        let bert = BertTokenizer::from_vocab_file(&path, 6).unwrap();
        let (cls, sep, pad) = (2, 1, 218);
        assert_eq!(bert.pad_id(), pad);
        let polyp = bert.token_to_id("polyp").unwrap() as i64;
        let batch = bert.encode_batch(&["polyp"]).unwrap();
        assert_eq!(batch.ids, [cls, polyp, sep, pad, pad, pad]);
    }

    #[test]
    fn trailing_newline_gives_the_same_ids() {
        let bert = fixture_tokenizer(256);
        for (text, _) in FIXTURE_PROMPTS {
            let bare = text.trim_end_matches('\n');
            assert_eq!(
                bert.encode_ids(&format!("{bare}\n")).unwrap(),
                bert.encode_ids(bare).unwrap()
            );
        }
    }

    #[test]
    fn tokens_show_the_wordpiece_split() {
        let bert = fixture_tokenizer(256);
        let tokens = bert.tokens("Meningioma").unwrap();
        assert_eq!(tokens, ["[CLS]", "mening", "##ioma", "[SEP]"]);
    }

    fn write(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn bad_vocab_files_are_reported_with_path_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent_vocab.txt");
        let err = BertTokenizer::from_vocab_file(&missing, 256).unwrap_err();
        assert!(matches!(err, TokenizerError::Io { ref path, .. } if *path == missing));
        assert!(err.to_string().contains("absent_vocab.txt"));

        let cases: [(&str, &[u8], Option<usize>); 5] = [
            ("latin1.txt", b"[PAD]\n[UNK]\ncaf\xE9\n", Some(3)),
            (
                "dup.txt",
                b"[PAD]\n[UNK]\n[CLS]\n[SEP]\npolyp\npolyp\n",
                Some(6),
            ),
            ("blank.txt", b"[PAD]\n\n[UNK]\n", Some(2)),
            ("spaces.txt", b"[PAD]\npolyp visible\n", Some(2)),
            ("empty.txt", b"", None),
        ];
        for (name, content, expected_line) in cases {
            let path = write(&dir, name, content);
            let err = BertTokenizer::from_vocab_file(&path, 256).unwrap_err();
            match &err {
                TokenizerError::MalformedVocab { path: p, line, .. } => {
                    assert_eq!((p, *line), (&path, expected_line), "{name}");
                }
                other => panic!("{name}: unexpected error {other}"),
            }
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn vocab_without_a_special_token_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "no_sep.txt", b"[PAD]\n[UNK]\n[CLS]\npolyp\n");
        let err = BertTokenizer::from_vocab_file(&path, 256).unwrap_err();
        assert!(
            matches!(err, TokenizerError::MissingSpecialToken { ref token, .. } if token == "[SEP]"),
            "{err}"
        );
        assert!(err.to_string().contains("no_sep.txt"));
    }

    #[test]
    fn bad_tokenizer_json_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = write(&dir, "garbage.json", b"{ not json");
        let bpe = write(
            &dir,
            "bpe.json",
            br#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,"pre_tokenizer":null,"post_processor":null,"decoder":null,"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":false,"vocab":{"a":0},"merges":[]}}"#,
        );
        let unwrapped = write(
            &dir,
            "no_post.json",
            br###"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,"pre_tokenizer":null,"post_processor":null,"decoder":null,"model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,"vocab":{"[PAD]":0,"[UNK]":1,"[CLS]":2,"[SEP]":3}}}"###,
        );
        for path in [garbage, bpe, unwrapped] {
            let err = BertTokenizer::from_tokenizer_json(&path, 256).unwrap_err();
            assert!(
                matches!(err, TokenizerError::InvalidTokenizerJson { path: ref p, .. } if *p == path),
                "{err}"
            );
        }
    }

    #[test]
    fn max_length_must_hold_cls_and_sep() {
        let err = BertTokenizer::from_vocab_file(fixture_vocab(), 1).unwrap_err();
        assert!(matches!(
            err,
            TokenizerError::ContextLengthTooSmall {
                requested: 1,
                minimum: 2
            }
        ));
        let bert = fixture_tokenizer(2);
        assert_eq!(bert.encode_batch(&["polyp"]).unwrap().ids, [2, 3]);
    }

    /// The real bert-base-uncased vocabulary (30,522 tokens, shipped as a fixture; see
    /// `fixtures/README.md` for where it comes from).
    #[test]
    fn real_bert_uncased_vocab_matches_hugging_face() {
        // Expected ids: `AutoTokenizer.from_pretrained(dir)` (transformers 4.57.6) after
        // open_clip's cleaning, printed by `tools/make_expected_ids.py`.
        let cases: [(&str, &[i64]); 6] = [
            (
                "One medium triangular-shaped irregular tumor at the right in the breast ultrasound image.",
                &[
                    101, 2028, 5396, 14023, 1011, 5044, 12052, 13656, 2012, 1996, 2157, 1999, 1996,
                    7388, 27312, 3746, 1012, 102,
                ],
            ),
            (
                "contrast-enhanced MRI reveals a meningioma tumor in the center region",
                &[
                    101, 5688, 1011, 9412, 27011, 7657, 1037, 2273, 2075, 18994, 2050, 13656, 1999,
                    1996, 2415, 2555, 102,
                ],
            ),
            (
                "one small pink circle polyp, located in right of the image\n",
                &[
                    101, 2028, 2235, 5061, 4418, 26572, 2361, 1010, 2284, 1999, 2157, 1997, 1996,
                    3746, 102,
                ],
            ),
            (
                "Normal pancreatic head with no masses in EUS",
                &[
                    101, 3671, 6090, 16748, 12070, 2132, 2007, 2053, 11678, 1999, 7327, 2015, 102,
                ],
            ),
            (
                "Café's tumor—size ≥ 3cm 😀",
                &[
                    101, 7668, 1005, 1055, 13656, 1517, 2946, 1609, 1017, 27487, 100, 102,
                ],
            ),
            (
                "cafÃ© tumorâ€™s 12.5mm &amp;lt;edge&amp;gt;",
                &[
                    101, 7668, 13656, 1005, 1055, 2260, 1012, 1019, 7382, 1026, 3341, 1028, 102,
                ],
            ),
        ];
        let path = Path::new(FIXTURES).join("bert_base_uncased_vocab.txt");
        let bert = BertTokenizer::from_file(&path, 256).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bert.vocab_size(), 30_522);
        assert_eq!(bert.pad_id(), 0);
        for (text, expected) in cases {
            assert_eq!(bert.encode_ids(text).unwrap(), expected, "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn rows_are_cls_tokens_sep_then_padding(text in "\\PC{0,40}", max_length in 2usize..24) {
            let bert = fixture_tokenizer(max_length);
            let batch = bert.encode_batch(&[&text]).unwrap();
            let n = batch.lengths()[0];
            prop_assert_eq!(batch.len, max_length);
            prop_assert!((2..=max_length).contains(&n));
            prop_assert_eq!(batch.row(0)[0], 2);
            prop_assert_eq!(batch.row(0)[n - 1], 3);
            prop_assert!(batch.row(0)[n..].iter().all(|&id| id == 0));
            prop_assert!(batch.mask_row(0)[..n].iter().all(|&m| m == 1));
        }
    }
}
