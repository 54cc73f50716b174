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
