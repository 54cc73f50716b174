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
}
