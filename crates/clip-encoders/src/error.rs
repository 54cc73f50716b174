use thiserror::Error;

/// Errors raised while building encoders or loading their weights.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The state dict lacks tensors the module needs, has tensors nobody uses, or has wrong shapes.
    #[error("{source_name}: state dict does not match the model:{}", describe(.missing, .unexpected, .shape_mismatches))]
    Mismatch {
        /// Where the tensors came from (a file name, usually).
        source_name: String,
        /// Keys the model needs and the state dict lacks.
        missing: Vec<String>,
        /// Keys present in the state dict that no module consumed (strict mode only).
        unexpected: Vec<String>,
        /// `key: expected [..], found [..]` lines.
        shape_mismatches: Vec<String>,
    },
    /// A recognised backbone layout holds parts the towers cannot represent.
    #[error("{source_name}: {layout} checkpoint has parts these towers cannot represent:{}", list(.keys))]
    UnsupportedParts {
        /// Where the tensors came from.
        source_name: String,
        /// The layout that was recognised (e.g. "open_clip timm ViT (BiomedCLIP)").
        layout: &'static str,
        /// The keys that have no place in the towers.
        keys: Vec<String>,
    },
    /// An alias (a second name the official code saves for one tensor, e.g. `clip_model.*`)
    /// holds different values from the tensor it names.
    #[error(
        "{source_name}: {alias} should be the same tensor as {twin} (the official model saves \
         both names for one tensor), but {difference}"
    )]
    AliasMismatch {
        /// Where the tensors came from.
        source_name: String,
        /// The alias key in the file.
        alias: String,
        /// The key of the tensor it should equal.
        twin: String,
        /// How they differ.
        difference: String,
    },
    /// A tensor of a recognised layout has a shape its conversion cannot handle.
    #[error("{source_name}: {key}: {message}")]
    BadTensor {
        /// Where the tensors came from.
        source_name: String,
        /// The tensor's key in the file.
        key: String,
        /// What is wrong.
        message: String,
    },
}

fn list(keys: &[String]) -> String {
    let mut out = String::new();
    for key in keys.iter().take(40) {
        out.push_str(&format!("\n    {key}"));
    }
    if keys.len() > 40 {
        out.push_str(&format!("\n    ... and {} more", keys.len() - 40));
    }
    out
}

fn describe(missing: &[String], unexpected: &[String], shapes: &[String]) -> String {
    let mut out = String::new();
    let mut section = |title: &str, items: &[String]| {
        if items.is_empty() {
            return;
        }
        out.push_str(&format!("\n  {title} ({}):", items.len()));
        for item in items.iter().take(40) {
            out.push_str(&format!("\n    {item}"));
        }
        if items.len() > 40 {
            out.push_str(&format!("\n    ... and {} more", items.len() - 40));
        }
    };
    section("missing keys", missing);
    section("unexpected keys", unexpected);
    section("shape mismatches", shapes);
    out
}
