//! Golden parity on CUDA (`--features cuda`, a machine with an NVIDIA GPU): the same cases and
//! tolerances as the CPU (`golden.rs`). f32 matmuls run in full precision by default (the
//! vendored cubek-matmul patch); `CUBEK_MATMUL_ALLOW_TF32=1` with
//! `MEDCLIPSEG_GOLDEN_REPORT_ONLY=1 -- --nocapture` prints how far TF32 lands instead.
#![cfg(feature = "cuda")]

mod golden_cases;

use burn::backend::cuda::CudaDevice;
use burn::backend::{Autodiff, Cuda};

golden_cases::golden_tests!(Cuda, Autodiff<Cuda>, CudaDevice::default());

// The CLIP, PubMedCLIP and BiomedCLIP variants' goldens (`backbone_cases`), same tolerances.
mod backbone_cases;
backbone_cases::backbone_tests!(Cuda, Autodiff<Cuda>, CudaDevice::default());
