//! Golden parity on WGPU (`--features wgpu`): the cubecl kernels that CUDA also runs, here on
//! whatever Vulkan/Metal adapter exists (Mesa's llvmpipe on a machine without a GPU). The same
//! cases and tolerances as the CPU run in `golden.rs`: forward activations, losses, gradients
//! and one Adam step.
#![cfg(feature = "wgpu")]

mod golden_cases;

use burn::backend::wgpu::WgpuDevice;
use burn::backend::{Autodiff, Wgpu};

golden_cases::golden_tests!(Wgpu, Autodiff<Wgpu>, WgpuDevice::default());

// The CLIP, PubMedCLIP and BiomedCLIP variants' goldens (`backbone_cases`), same tolerances.
mod backbone_cases;
backbone_cases::backbone_tests!(Wgpu, Autodiff<Wgpu>, WgpuDevice::default());
