//! Prompts to token ids, with the tokenizer the model's text tower needs.

use std::sync::Arc;

use burn::prelude::*;
use burn::tensor::TensorData;
use clip_encoders::TextConfig;
use clip_tokenizers::{BertTokenizer, ClipBpeTokenizer, TextTokenizer};

use crate::checkpoint::Vocabulary;
use crate::error::{PipelineError, Result};

/// The tokenizer of a text tower.
#[derive(Clone)]
pub struct Prompts {
    tokenizer: Arc<dyn TextTokenizer>,
}

/// How much of a prompt the text tower sees: a prompt longer than the tower's context is cut
/// to its first `kept` tokens (special tokens included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptLength {
    /// Tokens of the whole prompt.
    pub tokens: usize,
    /// Tokens the tower is given.
    pub kept: usize,
}

impl PromptLength {
    /// True when the prompt was cut.
    pub fn is_cut(&self) -> bool {
        self.tokens > self.kept
    }
}

/// Token ids and attention mask of a batch of prompts.
pub struct EncodedPrompts<B: Backend> {
    /// `[B, L]` ids.
    pub ids: Tensor<B, 2, Int>,
    /// `[B, L]`, 1 on tokens.
    pub attention_mask: Tensor<B, 2, Int>,
}

impl Prompts {
    /// The tokenizer for `text`: CLIP BPE (embedded vocabulary) or BERT WordPiece from a
    /// `vocab.txt` / `tokenizer.json` file.
    pub fn for_tower(text: &TextConfig, vocab: Option<&std::path::Path>) -> Result<Self> {
        Self::build(text, |context| match vocab {
            Some(path) => Ok(BertTokenizer::from_file(path, context)?),
            None => Err(PipelineError::MissingVocabulary),
        })
        .map_err(|error| match (error, vocab) {
            (PipelineError::VocabularyTooLarge { tokens, rows, .. }, Some(path)) => {
                PipelineError::VocabularyTooLarge {
                    origin: path.display().to_string(),
                    tokens,
                    rows,
                }
            }
            (error, _) => error,
        })
    }

    /// The tokenizer for `text` with a vocabulary held in memory (e.g. stored in a checkpoint).
    pub fn with_vocabulary(text: &TextConfig, vocab: Option<&Vocabulary>) -> Result<Self> {
        Self::build(text, |context| match vocab {
            Some(v) => Ok(BertTokenizer::from_vocab_text(&v.text, &v.origin, context)?),
            None => Err(PipelineError::MissingVocabulary),
        })
    }

    fn build(text: &TextConfig, bert: impl FnOnce(usize) -> Result<BertTokenizer>) -> Result<Self> {
        let tokenizer: Arc<dyn TextTokenizer> = match text {
            TextConfig::Clip(c) => {
                Arc::new(ClipBpeTokenizer::new().with_context_length(c.context_length)?)
            }
            TextConfig::Bert(c) => {
                // The reference pads to 256 tokens; a smaller position table caps it.
                let context = BertTokenizer::DEFAULT_MAX_LENGTH.min(c.max_position_embeddings);
                let tokenizer = bert(context)?;
                if tokenizer.vocab_size() > c.vocab_size {
                    return Err(PipelineError::VocabularyTooLarge {
                        origin: "the vocabulary".into(),
                        tokens: tokenizer.vocab_size(),
                        rows: c.vocab_size,
                    });
                }
                Arc::new(tokenizer)
            }
        };
        Ok(Self { tokenizer })
    }

    /// Tokens per prompt the text tower takes; longer prompts are cut.
    pub fn context_length(&self) -> usize {
        self.tokenizer.context_length()
    }

    /// The length of `prompt` in tokens, and how many of them the tower is given.
    pub fn length(&self, prompt: &str) -> Result<PromptLength> {
        let tokens = self.tokenizer.token_count(prompt)?;
        Ok(PromptLength {
            tokens,
            kept: tokens.min(self.context_length()),
        })
    }

    /// Tokenises prompts into tensors on `device`; an empty prompt is an error
    /// ([`check_prompt`]).
    pub fn encode<B: Backend>(
        &self,
        prompts: &[String],
        device: &B::Device,
    ) -> Result<EncodedPrompts<B>> {
        for prompt in prompts {
            check_prompt(prompt)?;
        }
        let texts: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let batch = self.tokenizer.encode_batch(&texts)?;
        let shape = [batch.batch, batch.len];
        Ok(EncodedPrompts {
            ids: Tensor::from_data(TensorData::new(batch.ids, shape), device),
            attention_mask: Tensor::from_data(TensorData::new(batch.attention_mask, shape), device),
        })
    }
}
/// A prompt the model can use: not empty and not only blanks (the tokenizer would turn it into
/// `[CLS] [SEP]`, and the model would segment whatever it likes).
pub fn check_prompt(prompt: &str) -> Result<()> {
    if prompt.trim().is_empty() {
        return Err(PipelineError::EmptyPrompt);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_blank_prompts_are_refused() {
        assert!(matches!(check_prompt(""), Err(PipelineError::EmptyPrompt)));
        assert!(matches!(
            check_prompt(" \t\n"),
            Err(PipelineError::EmptyPrompt)
        ));
        check_prompt("a tumour").unwrap();
    }

    #[test]
    fn a_prompt_longer_than_the_context_says_how_much_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let vocab = dir.path().join("vocab.txt");
        std::fs::write(&vocab, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\ntumour\n").unwrap();
        let text = medclipseg_model::MedClipSegConfig::micro().text;
        let prompts = Prompts::for_tower(&text, Some(&vocab)).unwrap();
        let context = prompts.context_length();
        let short = prompts.length("a tumour").unwrap();
        assert_eq!(short, PromptLength { tokens: 4, kept: 4 });
        assert!(!short.is_cut());
        let long = vec!["tumour"; context + 10].join(" ");
        let cut = prompts.length(&long).unwrap();
        // [CLS] + words + [SEP], of which the context's worth is kept.
        assert_eq!(
            cut,
            PromptLength {
                tokens: context + 12,
                kept: context
            }
        );
        assert!(cut.is_cut());
    }
}
