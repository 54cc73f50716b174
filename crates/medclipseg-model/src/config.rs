//! The model configuration: one serde struct with named presets. Each switch is declared once:
//! the model's own here, the adapters' in [`PvlAdapterSwitches`] (embedded as `adapter`).

use burn::prelude::*;
use clip_encoders::{BertConfig, ClipTextConfig, TextConfig, VisionConfig};
use pvl_adapters::PvlAdapterSwitches;

/// Why a [`MedClipSegConfig`] cannot build a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The image does not split into whole patches.
    #[error("vision.image_size {image_size} is not a multiple of vision.patch_size {patch_size}")]
    PatchSize {
        /// `vision.image_size`.
        image_size: usize,
        /// `vision.patch_size`.
        patch_size: usize,
    },
    /// The attention heads do not divide the width.
    #[error("vision.width {width} is not divisible by vision.heads {heads}")]
    Heads {
        /// `vision.width`.
        width: usize,
        /// `vision.heads`.
        heads: usize,
    },
    /// The towers project to different embedding sizes.
    #[error("vision.output_dim {vision} differs from the text output dim {text}")]
    OutputDim {
        /// Vision projection size.
        vision: usize,
        /// Text projection size.
        text: usize,
    },
    /// The towers are stepped together, so they need the same depth.
    #[error("the towers step in lock-step: vision has {vision} layers, text has {text}")]
    LayerCount {
        /// Vision layers.
        vision: usize,
        /// Text layers.
        text: usize,
    },
    /// `adapter_dim` is zero.
    #[error("adapter_dim must be at least 1")]
    ZeroAdapterDim,
    /// An adapter is placed before a layer that does not exist.
    #[error("adapter layer {layer} is out of range (0..{layers})")]
    AdapterLayer {
        /// The offending entry of `adapter_layers`.
        layer: usize,
        /// Layers of the towers.
        layers: usize,
    },
    /// Too many upscale blocks for the image size.
    #[error(
        "num_upscale {num_upscale}: that many doublings take the {grid}x{grid} grid past the \
         image size {image_size}"
    )]
    Upscale {
        /// `num_upscale`.
        num_upscale: usize,
        /// The patch grid side.
        grid: usize,
        /// The image side.
        image_size: usize,
    },
}

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
    /// The adapters' switches: interaction, each direction, the attentions' β, gate and
    /// sampling (`MODEL.BETA`, `MODEL.GATE_INIT`), declared in `pvl-adapters`.
    #[config(default = "PvlAdapterSwitches::new()")]
    pub adapter: PvlAdapterSwitches,
    /// Number of ScaleBlocks (`MODEL.NUM_UPSCALE`).
    #[config(default = 2)]
    pub num_upscale: usize,
    /// Keep the CLIP towers frozen (the paper); off trains them too (the demo, from scratch).
    #[config(default = true)]
    pub freeze_encoders: bool,
}

/// Names accepted by [`MedClipSegConfig::preset`].
pub const PRESETS: [&str; 10] = [
    "unimedclip-vit-b16",
    "clip-vit-b16",
    "biomedclip-vit-b16",
    "pubmedclip-vit-b32",
    "tiny",
    "demo",
    "micro",
    "demo-clip",
    "demo-biomedclip",
    "demo-pubmedclip",
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
                VisionConfig::vit_b16().with_value_features(Some(true)),
                TextConfig::Clip(ClipTextConfig::openai_base()),
            ),
            "biomedclip-vit-b16" => Self::new(
                VisionConfig::timm_vit_b16(),
                TextConfig::Bert(BertConfig::biomedbert_base()),
            ),
            "pubmedclip-vit-b32" => Self::new(
                VisionConfig::vit_b32().with_value_features(Some(true)),
                TextConfig::Clip(ClipTextConfig::openai_base()),
            ),
            "tiny" => Self::tiny(),
            "demo" => Self::demo(),
            "micro" => Self::micro(),
            "demo-clip" => Self::demo_clip(2),
            "demo-pubmedclip" => Self::demo_clip(1),
            "demo-biomedclip" => Self::demo_biomedclip(),
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

    /// [`Self::demo`] with OpenAI CLIP towers (the backbone ablation without weights): the
    /// value-feature ViT and the CLIP text transformer over the BPE vocabulary (context 32).
    /// `grid_halvings` 2 is the CLIP ViT-B/16 analogue (8 px patches); 1, patches twice as
    /// large, the PubMedCLIP ViT-B/32 one.
    fn demo_clip(grid_halvings: u32) -> Self {
        let patch = 32 >> grid_halvings;
        let mut demo = Self::demo();
        demo.vision =
            VisionConfig::new(64, patch, 64, 4, 4, 128, 64).with_value_features(Some(true));
        demo.text = TextConfig::Clip(ClipTextConfig::new(49408, 32, 64, 4, 4, 64));
        demo
    }

    /// [`Self::demo`] with BiomedCLIP's tower kinds: the timm ViT (patch bias, no pre-norm,
    /// eps 1e-6, erf GELU) and the demo BERT.
    fn demo_biomedclip() -> Self {
        let mut demo = Self::demo();
        demo.vision = VisionConfig::new(64, 8, 64, 4, 4, 128, 64)
            .with_activation(clip_encoders::Activation::Gelu)
            .with_patch_bias(Some(true))
            .with_pre_norm(Some(false))
            .with_layer_norm_eps(Some(1e-6));
        demo
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

    /// Checks that the sizes fit together; the error names the first problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let v = &self.vision;
        if v.patch_size == 0 || !v.image_size.is_multiple_of(v.patch_size) {
            return Err(ConfigError::PatchSize {
                image_size: v.image_size,
                patch_size: v.patch_size,
            });
        }
        if v.heads == 0 || !v.width.is_multiple_of(v.heads) {
            return Err(ConfigError::Heads {
                width: v.width,
                heads: v.heads,
            });
        }
        if v.output_dim != self.text.output_dim() {
            return Err(ConfigError::OutputDim {
                vision: v.output_dim,
                text: self.text.output_dim(),
            });
        }
        if v.layers != self.text.layers() {
            return Err(ConfigError::LayerCount {
                vision: v.layers,
                text: self.text.layers(),
            });
        }
        if self.adapter_dim == 0 {
            return Err(ConfigError::ZeroAdapterDim);
        }
        if let Some(&layer) = self.adapter_layers.iter().find(|&&l| l >= v.layers) {
            return Err(ConfigError::AdapterLayer {
                layer,
                layers: v.layers,
            });
        }
        if self.upscaled_grid().is_none() {
            return Err(ConfigError::Upscale {
                num_upscale: self.num_upscale,
                grid: v.grid(),
                image_size: v.image_size,
            });
        }
        Ok(())
    }

    /// The patch grid after `num_upscale` doublings, or `None` once it passes the image size.
    /// Doubles step by step: a shift by `num_upscale` overflows for large values.
    fn upscaled_grid(&self) -> Option<usize> {
        let image_size = self.vision.image_size;
        (0..self.num_upscale).try_fold(self.vision.grid(), |grid, _| {
            grid.checked_mul(2).filter(|&g| g <= image_size)
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_num_upscale_is_a_typed_error_not_an_overflow() {
        for n in [5, 63, 64, 1000] {
            let config = MedClipSegConfig::micro().with_num_upscale(n);
            let err = config.validate().unwrap_err();
            assert!(
                matches!(err, ConfigError::Upscale { num_upscale, .. } if num_upscale == n),
                "{n}: {err:?}"
            );
            assert!(
                err.to_string().contains(&format!("num_upscale {n}")),
                "{err}"
            );
        }
        // micro: 32 px, 8 px patches -> a 4x4 grid; two doublings reach 16, three reach 32.
        assert!(
            MedClipSegConfig::micro()
                .with_num_upscale(3)
                .validate()
                .is_ok()
        );
        assert!(
            MedClipSegConfig::micro()
                .with_num_upscale(4)
                .validate()
                .is_err()
        );
    }

    #[test]
    fn clip_kinds_take_value_features_and_the_others_block_outputs() {
        for (name, value) in [
            ("clip-vit-b16", true),
            ("pubmedclip-vit-b32", true),
            ("demo-clip", true),
            ("demo-pubmedclip", true),
            ("unimedclip-vit-b16", false),
            ("biomedclip-vit-b16", false),
            ("demo-biomedclip", false),
            ("demo", false),
        ] {
            let config = MedClipSegConfig::preset(name).unwrap();
            assert_eq!(config.vision.has_value_features(), value, "{name}");
            assert_eq!(
                matches!(config.text, TextConfig::Clip(_)),
                value,
                "{name}: CLIP text tower"
            );
        }
        assert_eq!(
            MedClipSegConfig::preset("pubmedclip-vit-b32")
                .unwrap()
                .vision
                .patch_size,
            32
        );
        assert_eq!(
            MedClipSegConfig::preset("demo-pubmedclip")
                .unwrap()
                .vision
                .grid(),
            4
        );
        assert_eq!(
            MedClipSegConfig::preset("demo-clip").unwrap().vision.grid(),
            8
        );
    }

    #[test]
    fn bad_sizes_are_named() {
        let zero = MedClipSegConfig::micro().with_adapter_dim(0);
        assert_eq!(zero.validate(), Err(ConfigError::ZeroAdapterDim));
        let layer = MedClipSegConfig::micro().with_adapter_layers(vec![2]);
        assert_eq!(
            layer.validate(),
            Err(ConfigError::AdapterLayer {
                layer: 2,
                layers: 2
            })
        );
        for name in PRESETS {
            let preset = MedClipSegConfig::preset(name).unwrap();
            assert_eq!(preset.validate(), Ok(()), "{name}");
        }
    }
}
