//! The PVL adapter (spec §1.3): down-project both modalities, image→text then
//! text→updated-image probabilistic attention, up-project, and hand back residual updates.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use clip_encoders::{StateWriter, WeightMap, linear3d};

use crate::attention::{
    ProbAttentionOutput, ProbAttentionSwitches, ProbCrossAttention, ProbCrossAttentionConfig,
};
use crate::noise::Noise;

/// How the two attentions of an adapter see the other modality. Written `two-way`,
/// `parallel`, `unimodal` (the run config's `model.interaction`); the variant names of model
/// configs written up to main 7c039c3 (`TwoWay`, ...) read too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interaction {
    /// The paper: image tokens attend to text, then text attends to the *updated* image tokens.
    #[serde(alias = "TwoWay")]
    TwoWay,
    /// "w/o bidirectional interaction": both attend to the other modality's original tokens,
    /// so neither update sees the other (two independent one-way attentions).
    #[serde(alias = "Parallel")]
    Parallel,
    /// "Unimodal": each modality attends to itself; no information crosses modalities.
    #[serde(alias = "Unimodal")]
    Unimodal,
}

/// The switches of an adapter, its attentions' included, declared here once: the model's
/// config embeds them.
#[derive(Config, Debug, PartialEq)]
pub struct PvlAdapterSwitches {
    /// The probabilistic attentions' switches.
    #[config(default = "ProbAttentionSwitches::new()")]
    pub attention: ProbAttentionSwitches,
    /// How the attentions see the other modality.
    #[config(default = "Interaction::TwoWay")]
    pub interaction: Interaction,
    /// Add the image update `dv` (off: "w/o visual adaptation").
    #[config(default = true)]
    pub adapt_vision: bool,
    /// Add the text update `dt` (off: "w/o textual adaptation").
    #[config(default = true)]
    pub adapt_text: bool,
}

/// Sizes and switches of one adapter.
#[derive(Config, Debug)]
pub struct PvlAdapterConfig {
    /// Width of the image tokens (ViT width).
    pub vision_width: usize,
    /// Width of the text tokens (text tower width).
    pub text_width: usize,
    /// Adapter width (`ADAPTER_DIM`, 256 in the paper), also the attentions' width.
    pub dim: usize,
    /// The switches.
    #[config(default = "PvlAdapterSwitches::new()")]
    pub switches: PvlAdapterSwitches,
}

impl PvlAdapterConfig {
    /// PyTorch-default initialisation.
    pub fn init<B: Backend>(&self, device: &B::Device) -> PvlAdapter<B> {
        let linear = |i, o| LinearConfig::new(i, o).with_bias(false).init(device);
        let attention =
            ProbCrossAttentionConfig::new(self.dim).with_switches(self.switches.attention.clone());
        let switches = &self.switches;
        PvlAdapter {
            proj_vis_down: linear(self.vision_width, self.dim),
            proj_txt_down: linear(self.text_width, self.dim),
            proj_vis_up: linear(self.dim, self.vision_width),
            proj_txt_up: linear(self.dim, self.text_width),
            img_to_txt: attention.init(device),
            txt_to_img: attention.init(device),
            interaction: switches.interaction,
            adapt_vision: switches.adapt_vision,
            adapt_text: switches.adapt_text,
        }
    }
}

/// One PVL adapter.
#[derive(Module, Debug)]
pub struct PvlAdapter<B: Backend> {
    /// `proj_vis_down.0`: image width -> adapter width, no bias.
    pub proj_vis_down: Linear<B>,
    /// `proj_txt_down`: text width -> adapter width, no bias.
    pub proj_txt_down: Linear<B>,
    /// `proj_vis_up`: adapter width -> image width, no bias.
    pub proj_vis_up: Linear<B>,
    /// `proj_txt_up`: adapter width -> text width, no bias.
    pub proj_txt_up: Linear<B>,
    /// `two_way.cross_attn_img_to_txt`: image queries, text context.
    pub img_to_txt: ProbCrossAttention<B>,
    /// `two_way.cross_attn_txt_to_img`: text queries, (updated) image context.
    pub txt_to_img: ProbCrossAttention<B>,
    #[module(skip)]
    interaction: Interaction,
    adapt_vision: bool,
    adapt_text: bool,
}

/// What an adapter hands back.
#[derive(Debug, Clone)]
pub struct PvlAdapterOutput<B: Backend> {
    /// Residual update of the image tokens `[B, T, Wv]` (`None` when visual adaptation is off).
    pub dv: Option<Tensor<B, 3>>,
    /// Residual update of the text tokens `[B, L, Wt]` (`None` when textual adaptation is off).
    pub dt: Option<Tensor<B, 3>>,
    /// Down-projected image tokens `[B, T, A]`.
    pub v: Tensor<B, 3>,
    /// Down-projected text tokens `[B, L, A]`.
    pub t: Tensor<B, 3>,
    /// The image→text attention.
    pub img_to_txt: ProbAttentionOutput<B>,
    /// The text→image attention.
    pub txt_to_img: ProbAttentionOutput<B>,
}

impl<B: Backend> PvlAdapter<B> {
    /// `x_img [B, T, Wv]`, `x_txt [B, L, Wt]` -> updates; draws noise image→text first.
    pub fn forward(
        &self,
        x_img: Tensor<B, 3>,
        x_txt: Tensor<B, 3>,
        noise: &mut Noise<B>,
    ) -> PvlAdapterOutput<B> {
        let v = linear3d(&self.proj_vis_down, x_img);
        let t = linear3d(&self.proj_txt_down, x_txt);
        let img_context = match self.interaction {
            Interaction::Unimodal => v.clone(),
            _ => t.clone(),
        };
        let img_to_txt = self.img_to_txt.forward(v.clone(), img_context, noise);
        let txt_context = match self.interaction {
            Interaction::TwoWay => img_to_txt.output.clone(),
            Interaction::Parallel => v.clone(),
            Interaction::Unimodal => t.clone(),
        };
        let txt_to_img = self.txt_to_img.forward(t.clone(), txt_context, noise);
        PvlAdapterOutput {
            dv: self
                .adapt_vision
                .then(|| linear3d(&self.proj_vis_up, img_to_txt.output.clone())),
            dt: self
                .adapt_text
                .then(|| linear3d(&self.proj_txt_up, txt_to_img.output.clone())),
            v,
            t,
            img_to_txt,
            txt_to_img,
        }
    }

    /// Writes the reference keys of one adapter (inverse of [`Self::load`]).
    pub fn save(&self, s: &mut StateWriter, prefix: &str) {
        let p = |x: &str| format!("{prefix}.{x}");
        s.linear(&self.proj_vis_down, &p("proj_vis_down.0"));
        s.linear(&self.proj_txt_down, &p("proj_txt_down"));
        s.linear(&self.proj_vis_up, &p("proj_vis_up"));
        s.linear(&self.proj_txt_up, &p("proj_txt_up"));
        self.img_to_txt.save(s, &p("two_way.cross_attn_img_to_txt"));
        self.txt_to_img.save(s, &p("two_way.cross_attn_txt_to_img"));
    }

    /// Loads the reference keys of one adapter under `prefix` (e.g. `pvl_adapters.0`).
    pub fn load(mut self, w: &WeightMap, prefix: &str, device: &B::Device) -> Self {
        let p = |s: &str| format!("{prefix}.{s}");
        self.proj_vis_down = w.linear(self.proj_vis_down, &p("proj_vis_down.0"), device);
        self.proj_txt_down = w.linear(self.proj_txt_down, &p("proj_txt_down"), device);
        self.proj_vis_up = w.linear(self.proj_vis_up, &p("proj_vis_up"), device);
        self.proj_txt_up = w.linear(self.proj_txt_up, &p("proj_txt_up"), device);
        self.img_to_txt = self
            .img_to_txt
            .load(w, &p("two_way.cross_attn_img_to_txt"), device);
        self.txt_to_img = self
            .txt_to_img
            .load(w, &p("two_way.cross_attn_txt_to_img"), device);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interaction_writes_the_run_config_names_and_reads_the_old_variant_names() {
        for (interaction, name, old) in [
            (Interaction::TwoWay, "\"two-way\"", "\"TwoWay\""),
            (Interaction::Parallel, "\"parallel\"", "\"Parallel\""),
            (Interaction::Unimodal, "\"unimodal\"", "\"Unimodal\""),
        ] {
            assert_eq!(serde_json::to_string(&interaction).unwrap(), name);
            for text in [name, old] {
                let read: Interaction = serde_json::from_str(text).unwrap();
                assert_eq!(read, interaction, "{text}");
            }
        }
        let err = serde_json::from_str::<Interaction>("\"sideways\"").unwrap_err();
        assert!(err.to_string().contains("two-way"), "{err}");
    }
}
