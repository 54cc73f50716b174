//! The output of every tokenizer, and the trait the model and the app are generic over.

use crate::error::Result;

/// Token ids of a batch of texts, padded to one length, row-major `[batch, len]`.
///
/// `ids` and `attention_mask` are `i64` because that is what the text towers index
/// embeddings with (PyTorch `LongTensor`); build a `Tensor<B, 2, Int>` from them with
/// `TensorData::new(batch.ids, [batch.batch, batch.len])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    /// Token ids, `batch * len` values, row after row.
    pub ids: Vec<i64>,
    /// 1 where `ids` holds a token of the text (special tokens included), 0 on padding,
    /// as HF's `attention_mask`. (open_clip's BERT text tower instead masks `ids == pad_id`,
    /// which differs only for a prompt that contains the literal text `[PAD]`.)
    pub attention_mask: Vec<i64>,
    /// Number of texts (rows).
    pub batch: usize,
    /// Tokens per row (the context length).
    pub len: usize,
}

impl TokenBatch {
    /// Pads (or, for rows longer than `len`, cuts) each row to `len` tokens.
    ///
    /// Callers cut long rows themselves when the cut must keep an end token.
    pub(crate) fn from_rows(rows: Vec<Vec<i64>>, len: usize, pad_id: i64) -> Self {
        let batch = rows.len();
        let mut ids = Vec::with_capacity(batch * len);
        let mut attention_mask = Vec::with_capacity(batch * len);
        for row in rows {
            let used = row.len().min(len);
            ids.extend_from_slice(&row[..used]);
            ids.resize(ids.len() + len - used, pad_id);
            attention_mask.resize(attention_mask.len() + used, 1);
            attention_mask.resize(attention_mask.len() + len - used, 0);
        }
        TokenBatch {
            ids,
            attention_mask,
            batch,
            len,
        }
    }

    /// The ids of row `index` (`len` values). Panics if `index >= batch`.
    pub fn row(&self, index: usize) -> &[i64] {
        &self.ids[index * self.len..(index + 1) * self.len]
    }

    /// The attention mask of row `index`. Panics if `index >= batch`.
    pub fn mask_row(&self, index: usize) -> &[i64] {
        &self.attention_mask[index * self.len..(index + 1) * self.len]
    }

    /// Number of non-padding tokens of each row. For CLIP BPE, `lengths()[i] - 1` is the
    /// position of the end-of-text token, whose feature CLIP's text tower returns.
    pub fn lengths(&self) -> Vec<usize> {
        (0..self.batch)
            .map(|row| self.mask_row(row).iter().filter(|&&m| m != 0).count())
            .collect()
    }
}

/// A text tokenizer for a CLIP-style text tower: texts in, fixed-length id rows out.
pub trait TextTokenizer: Send + Sync {
    /// Cleans and tokenizes `texts`, padding every row to [`Self::context_length`].
    fn encode_batch(&self, texts: &[&str]) -> Result<TokenBatch>;
    /// Tokens per row of [`Self::encode_batch`]'s output.
    fn context_length(&self) -> usize;
    /// Tokens of `text` with its special tokens, before the cut to [`Self::context_length`]
    /// (more than the context length: the text was cut).
    fn token_count(&self, text: &str) -> Result<usize>;
    /// Number of token ids (rows of the text tower's embedding table).
    fn vocab_size(&self) -> usize;
    /// The id that fills padding positions.
    fn pad_id(&self) -> i64;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_padded_and_masked() {
        let batch = TokenBatch::from_rows(vec![vec![5, 6, 7], vec![8]], 4, 0);
        assert_eq!(batch.ids, [5, 6, 7, 0, 8, 0, 0, 0]);
        assert_eq!(batch.attention_mask, [1, 1, 1, 0, 1, 0, 0, 0]);
        assert_eq!((batch.batch, batch.len), (2, 4));
        assert_eq!(batch.row(1), [8, 0, 0, 0]);
        assert_eq!(batch.lengths(), [3, 1]);
    }

    #[test]
    fn empty_batch_is_empty() {
        let batch = TokenBatch::from_rows(Vec::new(), 77, 0);
        assert!(batch.ids.is_empty() && batch.attention_mask.is_empty());
        assert_eq!((batch.batch, batch.len), (0, 77));
        assert!(batch.lengths().is_empty());
    }
}
