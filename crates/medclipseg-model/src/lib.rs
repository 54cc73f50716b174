//! MedCLIPSeg on Burn: CLIP towers + PVL adapters + segmentation head, the training loss and
//! Monte-Carlo uncertainty, generic over the backend.
//!
//! - [`MedClipSegConfig`]: every size and switch, with presets ([`PRESETS`]):
//!   `unimedclip-vit-b16` (the paper), `clip-vit-b16`, `biomedclip-vit-b16`,
//!   `pubmedclip-vit-b32`, `tiny` (the golden reference sizes) and `demo`.
//! - [`MedClipSeg`]: the network; [`MedClipSeg::forward`] is one stochastic pass,
//!   [`MedClipSeg::forward_traced`] also returns the intermediates.
//! - [`mc_predict`]: N passes as one batch → mean probability, mask, predictive entropy,
//!   expected entropy (aleatoric) and mutual information (epistemic).
//! - [`checkpoint`]: loading reference state dicts and writing our own (safetensors, reference
//!   key names).
//! - [`train`]: the training step (losses of `seg-losses`, Adam, cosine schedule).
//!
//! The "w/o PVL adapters" ablation is `use_adapters = false`; the adapter-layer sweep is
//! `adapter_layers`; the other ablations are switches of `pvl-adapters` (see its docs).

pub mod allocator;
pub mod checkpoint;
mod config;
mod decoder;
mod mc;
mod model;
pub mod resize;
mod switches;
pub mod train;
pub mod workloads;

pub use config::{ConfigError, MedClipSegConfig, PRESETS};
pub use decoder::{DecoderOutput, MaskHead, ScaleBlock, decode};
pub use mc::{
    McConfig, McInputs, McPrediction, McProgress, binary_entropy, mc_predict, mc_predict_observed,
    min_max_normalize, summarize_samples,
};
pub use model::{
    AdapterTrace, EncoderState, ForwardTrace, LoadScope, MedClipSeg, MedClipSegOutput,
};
pub use switches::{MODEL_CONFIG_LAYOUT, SwitchError, SwitchPatch};
// The adapters' switches are part of `MedClipSegConfig`'s API.
pub use pvl_adapters::{Interaction, Noise, ProbAttentionSwitches, PvlAdapterSwitches, sample_key};

/// The README example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
