//! Switches of a [`MedClipSegConfig`] set by name (the run config's `model.*` keys), and the
//! layouts of the model config's JSON.
//!
//! A switch is a field of the config other than the towers' sizes, of its
//! [`pvl_adapters::PvlAdapterSwitches`] or of their [`pvl_adapters::ProbAttentionSwitches`]; its
//! name is its field's. Nothing here lists them: they are read off the config's own JSON, so a
//! switch added to one of those structs is settable by name with no other change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::MedClipSegConfig;

/// The JSON layout of [`MedClipSegConfig`] this build writes (a checkpoint's
/// `medclipseg.model_config.version`). 2: the adapters' switches under `adapter`, `interaction`
/// spelled `two-way`. 1 (up to main 7c039c3, which wrote no version): `attention` (with an
/// unused `dim`), `interaction` (`TwoWay`), `adapt_vision` and `adapt_text` at the top level;
/// [`MedClipSegConfig::from_value`] reads it.
pub const MODEL_CONFIG_LAYOUT: u32 = 2;

/// The towers: sizes, not switches.
const TOWERS: [&str; 2] = ["vision", "text"];

/// The reference's name of `adapter_layers` (`MODEL.LAYERS`).
const LAYERS_ALIAS: &str = "layers";

/// Why a switch cannot be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwitchError {
    /// No switch has this name.
    #[error("no model switch {name:?} (the switches: {known})")]
    Unknown {
        /// The name given.
        name: String,
        /// The switches' names, comma-separated.
        known: String,
    },
    /// The value does not fit the switch.
    #[error("{name}: {reason}")]
    Value {
        /// The switch.
        name: String,
        /// What is wrong with the value.
        reason: String,
    },
}

impl MedClipSegConfig {
    /// The switches' names: their fields' names, plus `layers` for `adapter_layers`.
    pub fn switch_names() -> Vec<String> {
        let mut names = vec![LAYERS_ALIAS.to_string()];
        if let Ok(json) = serde_json::to_value(Self::micro()) {
            leaf_names(&json, true, &mut names);
        }
        names
    }

    /// Sets the switch `name` (see [`Self::switch_names`]) to `value`, which must fit its type.
    pub fn set_switch(&mut self, name: &str, value: Value) -> Result<(), SwitchError> {
        let bad_value = |reason: String| SwitchError::Value {
            name: name.to_string(),
            reason,
        };
        let mut json = serde_json::to_value(&*self).map_err(|e| bad_value(e.to_string()))?;
        let field = if name == LAYERS_ALIAS {
            "adapter_layers"
        } else {
            name
        };
        let slot = switch_slot(&mut json, field, true).ok_or_else(|| unknown(name))?;
        *slot = value;
        *self = serde_json::from_value(json).map_err(|e| bad_value(e.to_string()))?;
        Ok(())
    }

    /// Reads a model config's JSON (or a TOML file's, as a JSON value) of any layout: layout 1
    /// (see [`MODEL_CONFIG_LAYOUT`]) is moved to the current one first.
    pub fn from_value(mut value: Value) -> Result<Self, serde_json::Error> {
        migrate_layout_1(&mut value);
        serde_json::from_value(value)
    }
}

fn unknown(name: &str) -> SwitchError {
    SwitchError::Unknown {
        name: name.to_string(),
        known: MedClipSegConfig::switch_names().join(", "),
    }
}

/// The value of the switch field `name` in a config's JSON (towers skipped at the top).
fn switch_slot<'a>(json: &'a mut Value, name: &str, top: bool) -> Option<&'a mut Value> {
    let Value::Object(fields) = json else {
        return None;
    };
    for (key, value) in fields.iter_mut() {
        if top && TOWERS.contains(&key.as_str()) {
            continue;
        }
        if value.is_object() {
            if let Some(slot) = switch_slot(value, name, false) {
                return Some(slot);
            }
        } else if key == name {
            return Some(value);
        }
    }
    None
}

/// Appends the names of the switch fields of a config's JSON to `names`.
fn leaf_names(json: &Value, top: bool, names: &mut Vec<String>) {
    let Value::Object(fields) = json else {
        return;
    };
    for (key, value) in fields {
        if top && TOWERS.contains(&key.as_str()) {
            continue;
        }
        if value.is_object() {
            leaf_names(value, false, names);
        } else {
            names.push(key.clone());
        }
    }
}

/// Moves a layout-1 config (switches at the top level, recognised by having no `adapter`) to
/// layout 2; anything else is left as it is.
fn migrate_layout_1(value: &mut Value) {
    let Some(fields) = value.as_object_mut() else {
        return;
    };
    if fields.contains_key("adapter") {
        return;
    }
    let mut adapter = serde_json::Map::new();
    if let Some(mut attention) = fields.remove("attention") {
        // Layout 1 stored a width the adapter width always overrode.
        if let Some(attention) = attention.as_object_mut() {
            attention.remove("dim");
        }
        adapter.insert("attention".into(), attention);
    }
    for key in ["interaction", "adapt_vision", "adapt_text"] {
        if let Some(switch) = fields.remove(key) {
            adapter.insert(key.into(), switch);
        }
    }
    if !adapter.is_empty() {
        fields.insert("adapter".into(), Value::Object(adapter));
    }
}

/// Switches set by name, applied over whatever config they are given (a preset's): the run
/// config's `model.*` keys. A name not set keeps that config's value; a `null` value sets
/// nothing (run configs up to main 7c039c3 wrote every unset switch as `null`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct SwitchPatch(BTreeMap<String, Value>);

impl SwitchPatch {
    /// Sets `name` to `value` (`null` unsets it); the name must be a switch's.
    pub fn set(&mut self, name: &str, value: Value) -> Result<(), SwitchError> {
        if !MedClipSegConfig::switch_names().iter().any(|n| n == name) {
            return Err(unknown(name));
        }
        if value.is_null() {
            self.0.remove(name);
        } else {
            self.0.insert(name.to_string(), value);
        }
        Ok(())
    }

    /// The value set for `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// The switches set, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(name, value)| (name.as_str(), value))
    }

    /// Sets every switch of this patch in `config`.
    pub fn apply_to(&self, config: &mut MedClipSegConfig) -> Result<(), SwitchError> {
        for (name, value) in &self.0 {
            config.set_switch(name, value.clone())?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for SwitchPatch {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut patch = Self::default();
        for (name, value) in BTreeMap::<String, Value>::deserialize(deserializer)? {
            patch.set(&name, value).map_err(serde::de::Error::custom)?;
        }
        Ok(patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pvl_adapters::Interaction;
    use serde_json::json;

    /// The model config main 7c039c3 wrote into `testdata/legacy/main_7c039c3_micro.safetensors`.
    const LAYOUT_1: &str = r#"{"vision":{"image_size":32,"patch_size":8,"width":32,"layers":2,"heads":2,"mlp_width":64,"output_dim":32,"patch_bias":null,"pre_norm":null,"layer_norm_eps":null,"value_features":null,"activation":"QuickGelu"},"text":{"Bert":{"vocab_size":512,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":2,"intermediate_size":64,"max_position_embeddings":32,"projection_dim":32,"type_vocab_size":2,"layer_norm_eps":1e-12,"hidden_dropout_prob":0.0,"attention_probs_dropout_prob":0.0}},"adapter_dim":16,"adapter_layers":[0,1],"use_adapters":true,"attention":{"dim":256,"beta":2.0,"gate_init":-0.02,"probabilistic":true,"sample_values":true,"gating":false},"interaction":"Parallel","adapt_vision":true,"adapt_text":false,"num_upscale":2,"freeze_encoders":false}"#;

    #[test]
    fn every_switch_has_one_name() {
        let names = MedClipSegConfig::switch_names();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        for name in [
            "adapter_dim",
            "layers",
            "adapter_layers",
            "num_upscale",
            "freeze_encoders",
            "use_adapters",
            "beta",
            "gate_init",
            "gating",
            "probabilistic",
            "sample_values",
            "interaction",
            "adapt_vision",
            "adapt_text",
        ] {
            assert!(names.iter().any(|n| n == name), "{name}: {names:?}");
        }
        // Tower sizes are not switches.
        assert!(!names.iter().any(|n| n == "patch_size"), "{names:?}");
    }

    #[test]
    fn switches_are_set_by_name_wherever_they_are_declared() {
        let mut config = MedClipSegConfig::micro();
        config.set_switch("gating", json!(false)).unwrap();
        config.set_switch("interaction", json!("unimodal")).unwrap();
        config.set_switch("layers", json!([0, 1])).unwrap();
        config.set_switch("adapter_dim", json!(8)).unwrap();
        assert!(!config.adapter.attention.gating);
        assert_eq!(config.adapter.interaction, Interaction::Unimodal);
        assert_eq!(config.adapter_layers, vec![0, 1]);
        assert_eq!(config.adapter_dim, 8);
        // The towers keep their sizes: `layers` is the adapters', not `vision.layers`.
        assert_eq!(config.vision.layers, 2);
        let err = config.set_switch("gating", json!("no")).unwrap_err();
        assert!(
            matches!(&err, SwitchError::Value { name, .. } if name == "gating"),
            "{err}"
        );
        let err = config.set_switch("patch_size", json!(4)).unwrap_err();
        assert!(err.to_string().contains("adapt_text"), "{err}");
    }

    #[test]
    fn a_layout_1_config_reads_as_layout_2() {
        let config = MedClipSegConfig::from_value(serde_json::from_str(LAYOUT_1).unwrap()).unwrap();
        let expected = MedClipSegConfig::micro()
            .with_adapter_layers(vec![0, 1])
            .with_adapter(
                pvl_adapters::PvlAdapterSwitches::new()
                    .with_attention(
                        pvl_adapters::ProbAttentionSwitches::new()
                            .with_beta(2.0)
                            .with_gate_init(-0.02)
                            .with_gating(false),
                    )
                    .with_interaction(Interaction::Parallel)
                    .with_adapt_text(false),
            );
        assert_eq!(config.to_string(), expected.to_string());
        let written = serde_json::to_value(&config).unwrap();
        assert_eq!(written["adapter"]["interaction"], json!("parallel"));
        assert!(written.get("attention").is_none());
        // The current layout reads back as itself.
        let again = MedClipSegConfig::from_value(written).unwrap();
        assert_eq!(again.to_string(), config.to_string());
    }

    #[test]
    fn a_patch_drops_nulls_and_refuses_unknown_names() {
        let patch: SwitchPatch =
            serde_json::from_value(json!({"gating": false, "beta": null, "layers": [1]})).unwrap();
        assert_eq!(patch.iter().count(), 2);
        let mut config = MedClipSegConfig::micro();
        patch.apply_to(&mut config).unwrap();
        assert!(!config.adapter.attention.gating);
        assert_eq!(config.adapter.attention.beta, 2.35);
        let err = serde_json::from_value::<SwitchPatch>(json!({"gatting": false})).unwrap_err();
        assert!(err.to_string().contains("gatting"), "{err}");
    }
}
