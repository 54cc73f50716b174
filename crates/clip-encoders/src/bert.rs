//! HF `BertModel` without pooler (BiomedBERT, the UniMedCLIP text tower) and the MLP text
//! projection of open_clip's `HFTextEncoder` (spec §1.1).

use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear,
    LinearConfig,
};
use burn::prelude::*;

use crate::attention::{linear3d, multi_head_attention_with};
use crate::fast::{layer_norm, residual_layer_norm};
use crate::weights::{StateWriter, WeightMap};

/// BERT sizes (HF `BertConfig` names).
#[derive(Config, Debug, PartialEq)]
pub struct BertConfig {
    /// Word-piece vocabulary size.
    pub vocab_size: usize,
    /// Hidden width.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// FFN width.
    pub intermediate_size: usize,
    /// Rows of the position table.
    pub max_position_embeddings: usize,
    /// Rows of the token-type table.
    #[config(default = 2)]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Dropout on embeddings and hidden states (active only on an autodiff backend).
    #[config(default = 0.1)]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities (active only on an autodiff backend).
    #[config(default = 0.1)]
    pub attention_probs_dropout_prob: f64,
    /// Width of the joint embedding space the MLP projection maps to.
    pub projection_dim: usize,
}

impl BertConfig {
    /// BiomedBERT-base (UniMedCLIP): 12 x 768, 512 positions, projection 768 -> 640 -> 512.
    pub fn biomedbert_base() -> Self {
        Self::new(30522, 768, 12, 12, 3072, 512, 512)
    }

    /// Hidden width of the projection MLP: `(hidden + projection) / 2`, as open_clip builds it.
    pub fn projection_hidden(&self) -> usize {
        (self.hidden_size + self.projection_dim) / 2
    }

    /// A randomly initialised tower.
    pub fn init<B: Backend>(&self, device: &B::Device) -> BertTextTower<B> {
        let h = self.hidden_size;
        let norm = || {
            LayerNormConfig::new(h)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let hidden_dropout = DropoutConfig::new(self.hidden_dropout_prob).init();
        BertTextTower {
            word_embeddings: EmbeddingConfig::new(self.vocab_size, h).init(device),
            position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, h).init(device),
            token_type_embeddings: EmbeddingConfig::new(self.type_vocab_size, h).init(device),
            embeddings_norm: norm(),
            embeddings_dropout: hidden_dropout.clone(),
            layers: (0..self.num_hidden_layers)
                .map(|_| BertLayer {
                    query: LinearConfig::new(h, h).init(device),
                    key: LinearConfig::new(h, h).init(device),
                    value: LinearConfig::new(h, h).init(device),
                    attention_dropout: DropoutConfig::new(self.attention_probs_dropout_prob).init(),
                    attention_output: LinearConfig::new(h, h).init(device),
                    attention_norm: norm(),
                    intermediate: LinearConfig::new(h, self.intermediate_size).init(device),
                    output: LinearConfig::new(self.intermediate_size, h).init(device),
                    output_norm: norm(),
                    hidden_dropout: hidden_dropout.clone(),
                    heads: self.num_attention_heads,
                })
                .collect(),
            proj_in: LinearConfig::new(h, self.projection_hidden())
                .with_bias(false)
                .init(device),
            proj_out: LinearConfig::new(self.projection_hidden(), self.projection_dim)
                .with_bias(false)
                .init(device),
        }
    }
}

/// One post-LN BERT encoder layer.
#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    /// Self-attention query projection.
    pub query: Linear<B>,
    /// Self-attention key projection.
    pub key: Linear<B>,
    /// Self-attention value projection.
    pub value: Linear<B>,
    /// Dropout on attention probabilities.
    pub attention_dropout: Dropout,
    /// `attention.output.dense`.
    pub attention_output: Linear<B>,
    /// `attention.output.LayerNorm`.
    pub attention_norm: LayerNorm<B>,
    /// `intermediate.dense`.
    pub intermediate: Linear<B>,
    /// `output.dense`.
    pub output: Linear<B>,
    /// `output.LayerNorm`.
    pub output_norm: LayerNorm<B>,
    /// Dropout on hidden states.
    pub hidden_dropout: Dropout,
    heads: usize,
}

impl<B: Backend> BertLayer<B> {
    /// `[B, L, H]` -> `[B, L, H]`; `bias` is the additive padding mask `[B, 1, 1, L]`.
    pub fn forward(&self, x: Tensor<B, 3>, bias: Tensor<B, 4>) -> Tensor<B, 3> {
        self.forward_rows(x.clone(), x, bias)
    }

    /// The outputs of the rows `queries [B, Q, H]` of `x [B, L, H]` (which they attend to):
    /// `[B, Q, H]`. Every row's output depends on `x` only through the attention.
    fn forward_rows(
        &self,
        queries: Tensor<B, 3>,
        x: Tensor<B, 3>,
        bias: Tensor<B, 4>,
    ) -> Tensor<B, 3> {
        let context = self.attention(queries.clone(), x, bias);
        let attended = residual_layer_norm(
            &self.attention_norm,
            linear3d(&self.attention_output, context),
            queries,
            &self.hidden_dropout,
        );
        let hidden = crate::activation::gelu(linear3d(&self.intermediate, attended.clone()));
        let output = linear3d(&self.output, hidden);
        residual_layer_norm(&self.output_norm, output, attended, &self.hidden_dropout)
    }

    fn attention(
        &self,
        queries: Tensor<B, 3>,
        x: Tensor<B, 3>,
        bias: Tensor<B, 4>,
    ) -> Tensor<B, 3> {
        let (q, k, v) = (
            linear3d(&self.query, queries),
            linear3d(&self.key, x.clone()),
            linear3d(&self.value, x),
        );
        // Dropout sits on the probabilities (the identity without autodiff or at p = 0).
        multi_head_attention_with(
            q,
            k,
            v,
            self.heads,
            Some(bias),
            Some(&self.attention_dropout),
        )
    }

    fn save(&self, s: &mut StateWriter, prefix: &str) {
        let p = |x: &str| format!("{prefix}.{x}");
        s.linear(&self.query, &p("attention.self.query"));
        s.linear(&self.key, &p("attention.self.key"));
        s.linear(&self.value, &p("attention.self.value"));
        s.linear(&self.attention_output, &p("attention.output.dense"));
        s.layer_norm(&self.attention_norm, &p("attention.output.LayerNorm"));
        s.linear(&self.intermediate, &p("intermediate.dense"));
        s.linear(&self.output, &p("output.dense"));
        s.layer_norm(&self.output_norm, &p("output.LayerNorm"));
    }

    fn load(mut self, w: &WeightMap, prefix: &str, device: &B::Device) -> Self {
        let p = |s: &str| format!("{prefix}.{s}");
        self.query = w.linear(self.query, &p("attention.self.query"), device);
        self.key = w.linear(self.key, &p("attention.self.key"), device);
        self.value = w.linear(self.value, &p("attention.self.value"), device);
        self.attention_output =
            w.linear(self.attention_output, &p("attention.output.dense"), device);
        self.attention_norm = w.layer_norm(
            self.attention_norm,
            &p("attention.output.LayerNorm"),
            device,
        );
        self.intermediate = w.linear(self.intermediate, &p("intermediate.dense"), device);
        self.output = w.linear(self.output, &p("output.dense"), device);
        self.output_norm = w.layer_norm(self.output_norm, &p("output.LayerNorm"), device);
        self
    }
}

/// BERT text tower with CLS pooling and the MLP projection.
#[derive(Module, Debug)]
pub struct BertTextTower<B: Backend> {
    /// `embeddings.word_embeddings`.
    pub word_embeddings: Embedding<B>,
    /// `embeddings.position_embeddings`.
    pub position_embeddings: Embedding<B>,
    /// `embeddings.token_type_embeddings` (row 0 is used for every token).
    pub token_type_embeddings: Embedding<B>,
    /// `embeddings.LayerNorm`.
    pub embeddings_norm: LayerNorm<B>,
    /// `embeddings.dropout`.
    pub embeddings_dropout: Dropout,
    /// `encoder.layer.*`.
    pub layers: Vec<BertLayer<B>>,
    /// `proj.0` (no bias).
    pub proj_in: Linear<B>,
    /// `proj.2` (no bias).
    pub proj_out: Linear<B>,
}

impl<B: Backend> BertTextTower<B> {
    /// Embeddings: `ids [B, L]` -> `[B, L, H]` (word + position + token type 0, LayerNorm, dropout).
    ///
    /// The reference computes the word embeddings under `no_grad`; the table is frozen anyway.
    pub fn embed(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [batch, len] = ids.dims();
        let device = ids.device();
        let words = self.word_embeddings.forward(ids);
        let positions = Tensor::<B, 1, Int>::arange(0..len as i64, &device)
            .reshape([1, len])
            .expand([batch, len]);
        let types = Tensor::<B, 2, Int>::zeros([batch, len], &device);
        let summed = words
            + self.position_embeddings.forward(positions)
            + self.token_type_embeddings.forward(types);
        self.embeddings_dropout
            .forward(layer_norm(&self.embeddings_norm, summed))
    }

    /// Additive attention mask `[B, 1, 1, L]`: 0 for tokens, a huge negative for padding.
    ///
    /// `attention_mask` is 1 for real tokens and 0 for padding (`ids != pad`).
    pub fn attention_bias(&self, attention_mask: Tensor<B, 2, Int>) -> Tensor<B, 4> {
        let [batch, len] = attention_mask.dims();
        // HF uses finfo(f32).min; any value that underflows exp() to 0 gives the same softmax.
        (attention_mask.float().neg() + 1.0).reshape([batch, 1, 1, len]) * -1.0e30
    }

    /// Encoder layer `index`.
    pub fn layer(&self, index: usize, x: Tensor<B, 3>, bias: Tensor<B, 4>) -> Tensor<B, 3> {
        self.layers[index].forward(x, bias)
    }

    /// Layer `index` for the CLS token only: `[B, L, H]` -> `[B, 1, H]`, all that [`Self::pool`]
    /// reads of the last layer (its other rows cost ~4 % of a full-size pass for nothing).
    pub fn layer_cls(&self, index: usize, x: Tensor<B, 3>, bias: Tensor<B, 4>) -> Tensor<B, 3> {
        self.layers[index].forward_rows(x.clone().narrow(1, 0, 1), x, bias)
    }

    /// CLS token of the last hidden state, projected: `[B, L, H]` -> `[B, E]` (not normalised).
    pub fn pool(&self, hidden: Tensor<B, 3>) -> Tensor<B, 2> {
        let [batch, _, width] = hidden.dims();
        let cls = hidden.narrow(1, 0, 1).reshape([batch, width]);
        self.proj_out
            .forward(crate::activation::gelu(self.proj_in.forward(cls)))
    }

    /// Number of encoder layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Writes HF keys (inverse of [`Self::load`]).
    pub fn save(&self, s: &mut StateWriter, bert_prefix: &str, proj_prefix: &str) {
        let e = |x: &str| format!("{bert_prefix}.embeddings.{x}");
        s.embedding(&self.word_embeddings, &e("word_embeddings.weight"));
        s.embedding(&self.position_embeddings, &e("position_embeddings.weight"));
        s.embedding(
            &self.token_type_embeddings,
            &e("token_type_embeddings.weight"),
        );
        s.layer_norm(&self.embeddings_norm, &e("LayerNorm"));
        for (i, layer) in self.layers.iter().enumerate() {
            layer.save(s, &format!("{bert_prefix}.encoder.layer.{i}"));
        }
        s.linear(&self.proj_in, &format!("{proj_prefix}.0"));
        s.linear(&self.proj_out, &format!("{proj_prefix}.2"));
    }

    /// Loads HF keys: `{bert_prefix}.embeddings.*`, `{bert_prefix}.encoder.layer.N.*` and
    /// `{proj_prefix}.0.weight`, `{proj_prefix}.2.weight`.
    pub fn load(
        mut self,
        w: &WeightMap,
        bert_prefix: &str,
        proj_prefix: &str,
        device: &B::Device,
    ) -> Self {
        let e = |s: &str| format!("{bert_prefix}.embeddings.{s}");
        self.word_embeddings =
            w.embedding(self.word_embeddings, &e("word_embeddings.weight"), device);
        self.position_embeddings = w.embedding(
            self.position_embeddings,
            &e("position_embeddings.weight"),
            device,
        );
        self.token_type_embeddings = w.embedding(
            self.token_type_embeddings,
            &e("token_type_embeddings.weight"),
            device,
        );
        self.embeddings_norm = w.layer_norm(self.embeddings_norm, &e("LayerNorm"), device);
        // Buffers that some transformers versions save; they carry no weights.
        w.mark_used(&e("position_ids"));
        w.mark_used(&e("token_type_ids"));
        self.layers = self
            .layers
            .into_iter()
            .enumerate()
            .map(|(i, l)| l.load(w, &format!("{bert_prefix}.encoder.layer.{i}"), device))
            .collect();
        self.proj_in = w.linear(self.proj_in, &format!("{proj_prefix}.0"), device);
        self.proj_out = w.linear(self.proj_out, &format!("{proj_prefix}.2"), device);
        self
    }
}
