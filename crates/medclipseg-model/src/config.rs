//! The model configuration: one serde struct with named presets.

use burn::prelude::*;
use clip_encoders::{BertConfig, ClipTextConfig, TextConfig, VisionConfig};
use pvl_adapters::{Interaction, ProbCrossAttentionConfig};

/// Every size and switch of a MedCLIPSeg model (JSON or TOML).
#[derive(Config, Debug)]
pub struct MedClipSegConfig {
    /// The image tower.
    pub vision: VisionConfig,
    /// The text tower.
    pub text: TextConfig,
    /// Adapter width (`MODEL.ADAPTER_DIM`).
    #[config(default = 256)]
    pub adapter_dim: usize,
    /// Layers with an adapter placed before them (`MODEL.LAYERS`).
    #[config(default = "vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10]")]
    pub adapter_layers: Vec<usize>,
    /// Build the PVL adapters at all (off: the "w/o PVL adapters" ablation).
    #[config(default = true)]
    pub use_adapters: bool,
    /// Probabilistic attention switches and β (`MODEL.BETA`, `MODEL.GATE_INIT`).
    #[config(default = "ProbCrossAttentionConfig::new(256)")]
    pub attention: ProbCrossAttentionConfig,
    /// How each adapter's attentions see the other modality.
    #[config(default = "Interaction::TwoWay")]
    pub interaction: Interaction,
    /// Apply the image updates.
    #[config(default = true)]
    pub adapt_vision: bool,
    /// Apply the text updates.
    #[config(default = true)]
    pub adapt_text: bool,
    /// Number of ScaleBlocks (`MODEL.NUM_UPSCALE`).
    #[config(default = 2)]
    pub num_upscale: usize,
    /// Keep the CLIP towers frozen (the paper); off trains them too (the demo, from scratch).
    #[config(default = true)]
    pub freeze_encoders: bool,
}

/// Names accepted by [`MedClipSegConfig::preset`].
pub const PRESETS: [&str; 7] = [
    "unimedclip-vit-b16",
    "clip-vit-b16",
    "biomedclip-vit-b16",
    "pubmedclip-vit-b32",
    "tiny",
    "demo",
    "micro",
];

impl MedClipSegConfig {
    /// A named preset, or `None` for an unknown name.
    pub fn preset(name: &str) -> Option<Self> {
        Some(match name {
            "unimedclip-vit-b16" => Self::new(
                VisionConfig::vit_b16(),
                TextConfig::Bert(BertConfig::biomedbert_base()),
            ),
            "clip-vit-b16" => Self::new(
                VisionConfig::vit_b16(),
                TextConfig::Clip(ClipTextConfig::openai_base()),
            ),
            "biomedclip-vit-b16" => Self::new(
                VisionConfig::timm_vit_b16(),
                TextConfig::Bert(BertConfig::biomedbert_base()),
            ),
            "pubmedclip-vit-b32" => Self::new(
                VisionConfig::vit_b32(),
                TextConfig::Clip(ClipTextConfig::openai_base()),
            ),
            "tiny" => Self::tiny(),
            "demo" => Self::demo(),
            "micro" => Self::micro(),
            _ => return None,
        })
    }

    /// The sizes of the golden reference run (`shared/golden/tiny`): 64 px, ViT 4 x 64, BERT
    /// 4 x 64 with a 256-word vocabulary, adapter width 32 before layers 1 and 2.
    pub fn tiny() -> Self {
        Self::new(
            VisionConfig::new(64, 16, 64, 4, 4, 128, 32),
            TextConfig::Bert(BertConfig::new(256, 64, 4, 4, 128, 32, 32)),
        )
        .with_adapter_dim(32)
        .with_adapter_layers(vec![1, 2])
    }

    /// The embedded default: a small model trained from scratch on the synthetic data in
    /// minutes on a CPU (encoders trained too, since no pretrained weights ship).
    pub fn demo() -> Self {
        let text = BertConfig::new(512, 64, 4, 4, 128, 32, 64)
            .with_hidden_dropout_prob(0.0)
            .with_attention_probs_dropout_prob(0.0);
        Self::new(
            VisionConfig::new(64, 8, 64, 4, 4, 128, 64),
            TextConfig::Bert(text),
        )
        .with_adapter_dim(32)
        .with_adapter_layers(vec![1, 2, 3])
        .with_freeze_encoders(false)
    }

    /// The smallest useful model (32 px, two layers per tower): end-to-end tests and smoke runs.
    pub fn micro() -> Self {
        let text = BertConfig::new(512, 32, 2, 2, 64, 32, 32)
            .with_hidden_dropout_prob(0.0)
            .with_attention_probs_dropout_prob(0.0);
        Self::new(
            VisionConfig::new(32, 8, 32, 2, 2, 64, 32),
            TextConfig::Bert(text),
        )
        .with_adapter_dim(16)
        .with_adapter_layers(vec![1])
        .with_freeze_encoders(false)
    }

    /// Side length of the input images.
    pub fn image_size(&self) -> usize {
        self.vision.image_size
    }

    /// Checks that the sizes fit together; returns a description of the first problem.
    pub fn validate(&self) -> Result<(), String> {
        let v = &self.vision;
        if v.patch_size == 0 || !v.image_size.is_multiple_of(v.patch_size) {
            return Err(format!(
                "vision.image_size {} is not a multiple of vision.patch_size {}",
                v.image_size, v.patch_size
            ));
        }
        if v.heads == 0 || !v.width.is_multiple_of(v.heads) {
            return Err(format!(
                "vision.width {} is not divisible by vision.heads {}",
                v.width, v.heads
            ));
        }
        if v.output_dim != self.text.output_dim() {
            return Err(format!(
                "vision.output_dim {} differs from the text output dim {}",
                v.output_dim,
                self.text.output_dim()
            ));
        }
        let layers = v.layers.min(self.text.layers());
        if v.layers != self.text.layers() {
            return Err(format!(
                "the towers step in lock-step: vision has {} layers, text has {}",
                v.layers,
                self.text.layers()
            ));
        }
        if let Some(&bad) = self.adapter_layers.iter().find(|&&l| l >= layers) {
            return Err(format!("adapter layer {bad} is out of range (0..{layers})"));
        }
        let grid = v.grid() << self.num_upscale;
        if grid > v.image_size {
            return Err(format!(
                "{} upscale blocks take the {}x{} grid past the image size",
                self.num_upscale,
                v.grid(),
                v.grid()
            ));
        }
        Ok(())
    }

    /// Adapter layers that are actually built.
    pub fn active_adapter_layers(&self) -> Vec<usize> {
        if self.use_adapters {
            self.adapter_layers.clone()
        } else {
            Vec::new()
        }
    }
}
