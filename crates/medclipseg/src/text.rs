//! Prompts to token ids, with the tokenizer the model's text tower needs.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use burn::tensor::TensorData;
use clip_encoders::TextConfig;
use clip_tokenizers::{BertTokenizer, ClipBpeTokenizer, TextTokenizer};

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
    /// The tokenizer for `text`: CLIP BPE (embedded vocabulary) or BERT WordPiece from `vocab`.
    pub fn for_tower(text: &TextConfig, vocab: Option<&Path>) -> Result<Self> {
        match text {
            TextConfig::Clip(c) => Ok(Self {
                tokenizer: Arc::new(ClipBpeTokenizer::new().with_context_length(c.context_length)?),
            }),
            TextConfig::Bert(c) => {
                let Some(vocab) = vocab else {
                    bail!(
                        "the BERT text tower needs a vocabulary: set model.tokenizer to a vocab.txt \
                         or tokenizer.json (BiomedBERT's for the paper's UniMedCLIP)"
                    );
                };
                // The reference pads to 256 tokens; a smaller position table caps it.
                let context = BertTokenizer::DEFAULT_MAX_LENGTH.min(c.max_position_embeddings);
                let tokenizer = BertTokenizer::from_file(vocab, context)
                    .with_context(|| format!("{}: cannot build the tokenizer", vocab.display()))?;
                if tokenizer.vocab_size() > c.vocab_size {
                    bail!(
                        "{}: {} tokens, but the text tower's embedding table has {} rows",
                        vocab.display(),
                        tokenizer.vocab_size(),
                        c.vocab_size
                    );
                }
                Ok(Self {
                    tokenizer: Arc::new(tokenizer),
                })
            }
        }
    }

    /// Tokenises prompts into tensors on `device`.
    pub fn encode<B: Backend>(
        &self,
        prompts: &[String],
        device: &B::Device,
    ) -> Result<EncodedPrompts<B>> {
        let texts: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let batch = self.tokenizer.encode_batch(&texts)?;
        let shape = [batch.batch, batch.len];
        Ok(EncodedPrompts {
            ids: Tensor::from_data(TensorData::new(batch.ids, shape), device),
            attention_mask: Tensor::from_data(TensorData::new(batch.attention_mask, shape), device),
        })
    }
}
