//! The MedCLIPSeg network (spec §1.2): CLIP towers stepped in lock-step with PVL adapters
//! before the configured layers, then the segmentation head.

use burn::prelude::*;
use clip_encoders::{StateWriter, TextEncoder, TextState, VisionTransformer, WeightMap};
use pvl_adapters::{Noise, PvlAdapter, PvlAdapterConfig, PvlAdapterOutput};

use crate::config::MedClipSegConfig;
use crate::decoder::{DecoderOutput, MaskHead, ScaleBlock, decode};

impl MedClipSegConfig {
    /// A PyTorch-default initialised model (frozen towers when `freeze_encoders`).
    pub fn init<B: Backend>(&self, device: &B::Device) -> MedClipSeg<B> {
        let adapter = PvlAdapterConfig::new(self.vision.width, self.text.width(), self.adapter_dim)
            .with_switches(self.adapter.clone());
        let layers = self.active_adapter_layers();
        let dim = self.vision.output_dim;
        let model = MedClipSeg {
            vision_model: self.vision.init(device),
            text_model: self.text.init(device),
            pvl_adapters: layers.iter().map(|_| adapter.init(device)).collect(),
            mask_head: MaskHead::new(dim, device),
            upscale: (0..self.num_upscale)
                .map(|_| ScaleBlock::new(dim, device))
                .collect(),
            adapter_layers: layers,
            frozen_encoders: false,
        };
        if self.freeze_encoders {
            model.freeze_encoders()
        } else {
            model
        }
    }
}

/// MedCLIPSeg.
#[derive(Module, Debug)]
pub struct MedClipSeg<B: Backend> {
    /// The image tower (`vision_model.*`).
    pub vision_model: VisionTransformer<B>,
    /// The text tower (`text_model.*`).
    pub text_model: TextEncoder<B>,
    /// One adapter per entry of `adapter_layers` (`pvl_adapters.K.*`).
    pub pvl_adapters: Vec<PvlAdapter<B>>,
    /// Text MLP of the head (`mask_head.*`).
    pub mask_head: MaskHead<B>,
    /// ScaleBlocks (`upscale.J.*`).
    pub upscale: Vec<ScaleBlock<B>>,
    #[module(skip)]
    adapter_layers: Vec<usize>,
    frozen_encoders: bool,
}

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct MedClipSegOutput<B: Backend> {
    /// Segmentation logits at the input resolution `[B, H, W]`.
    pub seg_logits: Tensor<B, 3>,
    /// Image tokens after `ln_post` and `proj` `[B, 1+g², E]` (class token first).
    pub img_tokens: Tensor<B, 3>,
    /// Projected text vector `[B, E]` (not normalised).
    pub txt_vec: Tensor<B, 2>,
}

/// Token states of both towers between layers.
#[derive(Debug, Clone)]
pub struct EncoderState<B: Backend> {
    /// Image tokens `[B, T, Wv]`.
    pub image: Tensor<B, 3>,
    /// Text tokens and the text tower's masks.
    pub text: TextState<B>,
    /// The next layer to run.
    pub next_layer: usize,
}

impl<B: Backend> EncoderState<B> {
    /// Each batch entry repeated `times` times, sample-major: `[x_0..x_B, x_0..x_B, ...]`.
    pub fn repeat(self, times: usize) -> Self {
        // A mask shared by the batch (CLIP's causal `[1, 1, L, L]`) stays shared; a per-entry
        // one (BERT's padding `[B, 1, 1, L]`) is repeated with its entries.
        let attention_bias = if self.text.attention_bias.dims()[0] == 1 {
            self.text.attention_bias
        } else {
            self.text.attention_bias.repeat_dim(0, times)
        };
        Self {
            image: self.image.repeat_dim(0, times),
            text: TextState {
                hidden: self.text.hidden.repeat_dim(0, times),
                attention_bias,
                ids: self.text.ids.repeat_dim(0, times),
            },
            next_layer: self.next_layer,
        }
    }
}

/// One adapter call as recorded by [`MedClipSeg::forward_traced`].
#[derive(Debug, Clone)]
pub struct AdapterTrace<B: Backend> {
    /// Layer the adapter sits before.
    pub layer: usize,
    /// Image tokens entering the adapter `[B, T, Wv]`.
    pub in_vis: Tensor<B, 3>,
    /// Text tokens entering the adapter `[B, L, Wt]`.
    pub in_txt: Tensor<B, 3>,
    /// Everything the adapter computed.
    pub output: PvlAdapterOutput<B>,
}

/// Intermediate activations of one forward pass.
#[derive(Debug, Clone)]
pub struct ForwardTrace<B: Backend> {
    /// Image tokens after embedding and `ln_pre`.
    pub vision_embed: Option<Tensor<B, 3>>,
    /// Output of each vision block (for a value-feature tower, the last entry is the last
    /// block's value path, what the head reads).
    pub vision_blocks: Vec<Tensor<B, 3>>,
    /// Text embeddings.
    pub text_embed: Option<Tensor<B, 3>>,
    /// Output of each text layer.
    pub text_layers: Vec<Tensor<B, 3>>,
    /// Each adapter call.
    pub adapters: Vec<AdapterTrace<B>>,
    /// The head's activations.
    pub decoder: Option<DecoderOutput<B>>,
}

impl<B: Backend> Default for ForwardTrace<B> {
    fn default() -> Self {
        Self {
            vision_embed: None,
            vision_blocks: Vec::new(),
            text_embed: None,
            text_layers: Vec::new(),
            adapters: Vec::new(),
            decoder: None,
        }
    }
}

/// Which text rows a layer step computes.
#[derive(Debug, Clone, Copy)]
enum TextRows {
    /// Every token.
    All,
    /// Only those the tower's pooling reads (the last layer's).
    Pooled,
}

impl<B: Backend> MedClipSeg<B> {
    /// Layers that have an adapter before them.
    pub fn adapter_layers(&self) -> &[usize] {
        &self.adapter_layers
    }

    /// Marks both towers as not trainable (the paper freezes them).
    pub fn freeze_encoders(mut self) -> Self {
        self.vision_model = self.vision_model.no_grad();
        self.text_model = self.text_model.no_grad();
        self.frozen_encoders = true;
        self
    }

    /// True when the towers are excluded from training.
    pub fn encoders_frozen(&self) -> bool {
        self.frozen_encoders
    }

    /// Number of layers of each tower.
    pub fn num_layers(&self) -> usize {
        self.vision_model.num_layers()
    }

    /// Input side length in pixels.
    pub fn image_size(&self) -> usize {
        let grid = ((self
            .vision_model
            .positional_embedding
            .lazy_shape()
            .dims::<2>()[0]
            - 1) as f64)
            .sqrt()
            .round() as usize;
        grid * self.vision_model.conv1.weight.lazy_shape().dims::<4>()[2]
    }

    /// Embeddings of both towers: `images [B, 3, H, W]`, `ids [B, L]`, `attention_mask [B, L]`
    /// (1 on tokens, 0 on padding).
    pub fn begin(
        &self,
        images: Tensor<B, 4>,
        ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
    ) -> EncoderState<B> {
        EncoderState {
            image: self.vision_model.embed(images),
            text: self.text_model.begin(ids, attention_mask),
            next_layer: 0,
        }
    }

    /// Runs layers up to (not including) `until`, with their adapters (every text row).
    pub fn advance(
        &self,
        mut state: EncoderState<B>,
        until: usize,
        noise: &mut Noise<B>,
        mut trace: Option<&mut ForwardTrace<B>>,
    ) -> EncoderState<B> {
        while state.next_layer < until {
            state = self.layer_step(state, TextRows::All, noise, trace.as_deref_mut());
        }
        state
    }

    /// Layer `state.next_layer` of both towers, with its adapter.
    fn layer_step(
        &self,
        mut state: EncoderState<B>,
        text_rows: TextRows,
        noise: &mut Noise<B>,
        mut trace: Option<&mut ForwardTrace<B>>,
    ) -> EncoderState<B> {
        let layer = state.next_layer;
        if let Some(k) = self.adapter_layers.iter().position(|&l| l == layer) {
            state = self.adapt(k, state, noise, trace.as_deref_mut());
        }
        state.image = self.vision_model.block_features(layer, state.image);
        let (hidden, bias) = (state.text.hidden, state.text.attention_bias.clone());
        state.text.hidden = match text_rows {
            TextRows::All => self.text_model.layer(layer, hidden, bias),
            TextRows::Pooled => self.text_model.last_layer_pooled_rows(layer, hidden, bias),
        };
        if let Some(t) = trace {
            t.vision_blocks.push(state.image.clone());
            t.text_layers.push(state.text.hidden.clone());
        }
        state.next_layer += 1;
        state
    }

    fn adapt(
        &self,
        index: usize,
        mut state: EncoderState<B>,
        noise: &mut Noise<B>,
        trace: Option<&mut ForwardTrace<B>>,
    ) -> EncoderState<B> {
        let output =
            self.pvl_adapters[index].forward(state.image.clone(), state.text.hidden.clone(), noise);
        if let Some(t) = trace {
            t.adapters.push(AdapterTrace {
                layer: state.next_layer,
                in_vis: state.image.clone(),
                in_txt: state.text.hidden.clone(),
                output: output.clone(),
            });
        }
        if let Some(dt) = output.dt {
            state.text.hidden = state.text.hidden + dt;
        }
        if let Some(dv) = output.dv {
            state.image = state.image + dv;
        }
        state
    }

    /// Runs the remaining layers and the head; logits come out at `output_size`.
    pub fn finish(
        &self,
        state: EncoderState<B>,
        output_size: [usize; 2],
        noise: &mut Noise<B>,
        mut trace: Option<&mut ForwardTrace<B>>,
    ) -> MedClipSegOutput<B> {
        let last = self.num_layers().saturating_sub(1);
        let mut state = self.advance(state, last, noise, trace.as_deref_mut());
        if state.next_layer == last {
            // The text pooling reads one row per prompt of the last layer: without a trace
            // (which records every row) that layer runs for those rows only.
            let rows = match trace {
                Some(_) => TextRows::All,
                None => TextRows::Pooled,
            };
            state = self.layer_step(state, rows, noise, trace.as_deref_mut());
        }
        let img_tokens = self.vision_model.head(state.image);
        let txt_vec = self.text_model.finish(state.text);
        let decoded = decode(
            &self.upscale,
            &self.mask_head,
            img_tokens.clone(),
            txt_vec.clone(),
            output_size,
        );
        let seg_logits = decoded.seg_logits.clone();
        if let Some(t) = trace {
            t.decoder = Some(decoded);
        }
        MedClipSegOutput {
            seg_logits,
            img_tokens,
            txt_vec,
        }
    }

    /// One stochastic pass: `images [B, 3, H, W]`, `ids [B, L]`, `attention_mask [B, L]`.
    pub fn forward(
        &self,
        images: Tensor<B, 4>,
        ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
        noise: &mut Noise<B>,
    ) -> MedClipSegOutput<B> {
        let [_, _, h, w] = images.dims();
        let state = self.begin(images, ids, attention_mask);
        self.finish(state, [h, w], noise, None)
    }

    /// [`Self::forward`], also returning every intermediate activation.
    pub fn forward_traced(
        &self,
        images: Tensor<B, 4>,
        ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
        noise: &mut Noise<B>,
    ) -> (MedClipSegOutput<B>, ForwardTrace<B>) {
        let [_, _, h, w] = images.dims();
        let mut trace = ForwardTrace::default();
        let state = self.begin(images, ids, attention_mask);
        trace.vision_embed = Some(state.image.clone());
        trace.text_embed = Some(state.text.hidden.clone());
        let output = self.finish(state, [h, w], noise, Some(&mut trace));
        (output, trace)
    }

    /// Loads every tensor under the reference key names; `scope` picks which parts.
    pub fn load_weights(mut self, w: &WeightMap, scope: LoadScope, device: &B::Device) -> Self {
        self.vision_model = self.vision_model.load(w, "vision_model", device);
        self.text_model = self.text_model.load(w, "text_model", device);
        w.mark_used("logit_scale");
        if scope == LoadScope::Full {
            self.pvl_adapters = self
                .pvl_adapters
                .into_iter()
                .enumerate()
                .map(|(k, a)| a.load(w, &format!("pvl_adapters.{k}"), device))
                .collect();
            self.mask_head = self.mask_head.load(w, "mask_head", device);
            self.upscale = self
                .upscale
                .into_iter()
                .enumerate()
                .map(|(j, b)| b.load(w, &format!("upscale.{j}"), device))
                .collect();
        }
        // Loaded tensors are fresh parameters: freeze the towers again if they were frozen.
        if self.frozen_encoders {
            self.freeze_encoders()
        } else {
            self
        }
    }

    /// Every tensor under the reference key names and PyTorch layouts.
    pub fn state_dict(&self) -> Vec<(String, clip_encoders::HostTensor)> {
        let mut s = StateWriter::new();
        self.vision_model.save(&mut s, "vision_model");
        self.text_model.save(&mut s, "text_model");
        for (k, adapter) in self.pvl_adapters.iter().enumerate() {
            adapter.save(&mut s, &format!("pvl_adapters.{k}"));
        }
        self.mask_head.save(&mut s, "mask_head");
        for (j, block) in self.upscale.iter().enumerate() {
            block.save(&mut s, &format!("upscale.{j}"));
        }
        s.into_tensors()
    }
}

/// Which parts of the model a weight load fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadScope {
    /// Everything: a MedCLIPSeg checkpoint.
    Full,
    /// Only the CLIP towers: a backbone checkpoint (UniMedCLIP, OpenAI CLIP); the adapters and
    /// the head keep their fresh initialisation.
    Encoders,
}
