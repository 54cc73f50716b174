//! Shared helpers of the criterion benchmarks in this folder.
