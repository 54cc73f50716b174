//! Shared helpers of the criterion benchmarks in this folder.

/// The CPU backend of the model benchmarks (needs the `flex` or `ndarray` feature).
#[cfg(any(feature = "flex", feature = "ndarray"))]
pub mod backend;
