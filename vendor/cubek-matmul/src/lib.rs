/// Components for matrix multiplication
pub mod components;
pub mod definition;
pub mod launch;
/// medclipseg-rs patch: whether f32 matmuls may run on TF32 tensor cores.
pub mod precision;
/// Contains matmul kernels
pub mod routines;

#[cfg(feature = "cpu-reference")]
pub mod cpu_reference;
