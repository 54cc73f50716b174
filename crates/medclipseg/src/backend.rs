//! The compute backend, chosen at build time by a cargo feature (`flex` default, `ndarray`,
//! `openblas`, `wgpu`, `cuda`); `--device` picks a device of that backend at run time.

use anyhow::{Result, bail};
use burn::backend::Autodiff;

#[cfg(feature = "cuda")]
mod selected {
    use anyhow::{anyhow, bail};

    pub type Inner = burn::backend::Cuda;
    pub const NAME: &str = "cuda";
    pub fn device(spec: &str) -> anyhow::Result<burn::backend::cuda::CudaDevice> {
        let index = super::device_index(spec, "cuda")?;
        check_cuda(index)?;
        Ok(burn::backend::cuda::CudaDevice::new(index))
    }

    /// cubecl loads the driver and NVRTC when the first kernel runs and panics (or crashes) when
    /// either is missing: check both, and the device index, before handing over.
    fn check_cuda(index: usize) -> anyhow::Result<()> {
        // SAFETY: these only try to dlopen the libraries by their usual names.
        let (driver, nvrtc) = unsafe {
            (
                cudarc::driver::sys::is_culib_present(),
                cudarc::nvrtc::sys::is_culib_present(),
            )
        };
        if !driver {
            bail!(
                "cuda:{index}: the NVIDIA driver library (libcuda.so) was not found. This binary \
                 was built with --features cuda and needs an NVIDIA GPU with its driver; rebuild \
                 without it (the default CPU backend) or with --features wgpu for other GPUs"
            );
        }
        if !nvrtc {
            bail!(
                "cuda:{index}: NVRTC (libnvrtc.so), the CUDA runtime compiler that builds the \
                 kernels, was not found: install it (the CUDA toolkit, Debian's libnvrtc12, or \
                 pip's nvidia-cuda-nvrtc-cu12) and put its lib folder on LD_LIBRARY_PATH"
            );
        }
        cudarc::driver::result::init()
            .map_err(|e| anyhow!("cuda:{index}: the NVIDIA driver failed to start: {e:?}"))?;
        let count = cudarc::driver::result::device::get_count()
            .map_err(|e| anyhow!("cuda:{index}: cannot count the CUDA devices: {e:?}"))?;
        let count = usize::try_from(count).unwrap_or(0);
        if index >= count {
            bail!(
                "cuda:{index} does not exist: this machine has {count} CUDA device(s){}",
                if count > 0 {
                    format!(" (cuda:0 to cuda:{})", count - 1)
                } else {
                    String::new()
                }
            );
        }
        Ok(())
    }
}

#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
mod selected {
    use burn::backend::wgpu::WgpuDevice;
    pub type Inner = burn::backend::Wgpu;
    pub const NAME: &str = "wgpu";
    pub fn device(spec: &str) -> anyhow::Result<WgpuDevice> {
        let device = parse(spec)?;
        probe(&device, spec)?;
        Ok(device)
    }

    /// Runs one tiny op: cubecl panics (in a worker thread, then here) when no adapter exists,
    /// which becomes an error that says what to install. The panic hook is silenced meanwhile,
    /// so that the user sees the error, not a backtrace.
    fn probe(device: &WgpuDevice, spec: &str) -> anyhow::Result<()> {
        use burn::tensor::Tensor;
        let device = device.clone();
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let works = std::panic::catch_unwind(move || {
            Tensor::<Inner, 1>::zeros([1], &device).into_data();
        });
        std::panic::set_hook(hook);
        works.map_err(|_| {
            anyhow::anyhow!(
                "wgpu device {spec:?}: no wgpu adapter could be opened. Install a Vulkan driver \
                 (on Debian: apt-get install mesa-vulkan-drivers libvulkan1, which also works \
                 without a GPU) or pick another --device (default, cpu, discrete:N, integrated:N)"
            )
        })
    }

    fn parse(spec: &str) -> anyhow::Result<WgpuDevice> {
        Ok(match spec {
            "" | "default" | "wgpu" => WgpuDevice::DefaultDevice,
            "cpu" => WgpuDevice::Cpu,
            other => match other.split_once(':') {
                Some(("discrete", i)) => WgpuDevice::DiscreteGpu(i.parse()?),
                Some(("integrated", i)) => WgpuDevice::IntegratedGpu(i.parse()?),
                _ => anyhow::bail!(
                    "unknown wgpu device {other:?}: use default, cpu, discrete:N or integrated:N"
                ),
            },
        })
    }
}

#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "wgpu"))))]
mod selected {
    pub type Inner = burn::backend::Flex;
    pub const NAME: &str = "flex (CPU)";
    pub fn device(spec: &str) -> anyhow::Result<burn::backend::flex::FlexDevice> {
        super::cpu_only(spec)?;
        Ok(Default::default())
    }
}

#[cfg(all(
    feature = "ndarray",
    not(any(feature = "cuda", feature = "wgpu", feature = "flex"))
))]
mod selected {
    pub type Inner = burn::backend::NdArray;
    pub const NAME: &str = if cfg!(feature = "openblas") {
        "ndarray+openblas (CPU)"
    } else {
        "ndarray (CPU)"
    };
    pub fn device(spec: &str) -> anyhow::Result<burn::backend::ndarray::NdArrayDevice> {
        super::cpu_only(spec)?;
        Ok(Default::default())
    }
}

#[cfg(not(any(
    feature = "cuda",
    feature = "wgpu",
    feature = "flex",
    feature = "ndarray"
)))]
compile_error!("enable one backend feature: flex (default), ndarray, openblas, wgpu or cuda");

/// The inference backend compiled in.
pub type Inner = selected::Inner;
/// The training backend: [`Inner`] with automatic differentiation.
pub type Train = Autodiff<Inner>;
/// A device of [`Inner`].
pub type Device = <Inner as burn::tensor::backend::BackendTypes>::Device;

/// Name of the compiled-in backend (written to provenance files).
pub fn name() -> &'static str {
    selected::NAME
}

/// Parses `--device`: `cpu` for the CPU backends, `cuda:N`, or a wgpu device name.
pub fn device(spec: &str) -> Result<Device> {
    selected::device(spec)
}

/// Parses a comma-separated `--device` list (several devices: data-parallel training).
pub fn devices(spec: &str) -> Result<Vec<Device>> {
    spec.split(',').map(|s| device(s.trim())).collect()
}

#[allow(dead_code)]
fn cpu_only(spec: &str) -> Result<()> {
    match spec {
        "" | "cpu" | "default" => Ok(()),
        other => bail!(
            "device {other:?} is not available: this binary was built with the {} backend only \
             (rebuild with --features wgpu or --features cuda for GPUs)",
            name()
        ),
    }
}

#[allow(dead_code)]
fn device_index(spec: &str, prefix: &str) -> Result<usize> {
    match spec {
        "" | "default" => Ok(0),
        s if s == prefix => Ok(0),
        s => match s.strip_prefix(prefix).and_then(|r| r.strip_prefix(':')) {
            Some(i) => Ok(i.parse()?),
            None => bail!("unknown device {s:?}: use {prefix} or {prefix}:N"),
        },
    }
}

/// Whether the compiled-in backend runs on a GPU (cuda or wgpu).
pub const IS_GPU: bool = cfg!(any(feature = "cuda", feature = "wgpu"));

/// Largest Monte-Carlo chunk (images × samples per network call) by default: 8 on the CPU,
/// where larger chunks only cost memory and page faults (docs/performance.md), and 32 on a
/// GPU, so that MC-30 of one image is one batch.
pub const DEFAULT_MC_BATCH: usize = if IS_GPU { 32 } else { 8 };

/// Where the adapters' value noise is drawn (`--noise-source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum NoiseSource {
    /// `device` on a GPU backend, `host` on the CPU.
    #[default]
    Auto,
    /// Seeded host streams keyed per (image, sample): identical results for any batch size,
    /// Monte-Carlo chunking, backend or thread count.
    Host,
    /// The backend's own generator on the device: no host work or upload per attention call;
    /// reproducible for the same backend, device and batch layout.
    Device,
}

/// How f32 matrix products run on the GPU backends (`--precision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Precision {
    /// Full f32 products, as PyTorch's default: the GPU matches the CPU golden within 1e-4.
    #[default]
    Precise,
    /// TF32 tensor cores for f32 matmuls on CUDA (10-bit mantissa, ~1e-3 relative error per
    /// product); no effect on the CPU backends or on GPUs without TF32.
    Tf32,
}

static PRECISION: std::sync::OnceLock<Precision> = std::sync::OnceLock::new();

/// Sets the matmul precision for the whole run (once, from the command line).
pub fn set_precision(precision: Precision) {
    let _ = PRECISION.set(precision);
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    cubek_matmul::precision::set_tf32_allowed(precision == Precision::Tf32);
    if precision == Precision::Tf32 && !IS_GPU {
        tracing::warn!("--precision tf32 has no effect on the {} backend", name());
    }
}

/// The matmul precision in force.
pub fn precision() -> Precision {
    PRECISION.get().copied().unwrap_or_default()
}

static NOISE_SOURCE: std::sync::OnceLock<NoiseSource> = std::sync::OnceLock::new();

/// Sets the noise source for the whole run (once, from the command line).
pub fn set_noise_source(source: NoiseSource) {
    let _ = NOISE_SOURCE.set(source);
}

/// The noise source in force, `auto` resolved for the compiled-in backend.
pub fn noise_source() -> NoiseSource {
    match NOISE_SOURCE.get().copied().unwrap_or_default() {
        NoiseSource::Auto if IS_GPU => NoiseSource::Device,
        NoiseSource::Auto => NoiseSource::Host,
        chosen => chosen,
    }
}

/// The library's noise choice for the source in force.
pub fn pipeline_noise_source() -> medclipseg_pipeline::NoiseSource {
    match noise_source() {
        NoiseSource::Device => medclipseg_pipeline::NoiseSource::Device,
        _ => medclipseg_pipeline::NoiseSource::Host,
    }
}

/// Adapter noise for one batch: host streams of `run_seed` (rows keyed by the caller), or the
/// device generator seeded with `batch_seed`.
pub fn noise<B: burn::tensor::backend::Backend>(
    run_seed: u64,
    batch_seed: u64,
    device: &B::Device,
) -> medclipseg_model::Noise<B> {
    medclipseg_pipeline::noise(pipeline_noise_source(), run_seed, batch_seed, device)
}

/// What the device's memory pool holds (GPU backends; `None` on the CPU backends).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct DeviceMemory {
    /// Bytes in live tensors.
    pub in_use: u64,
    /// Bytes the pool has reserved on the device: it grows to the workload's peak and is
    /// what `nvidia-smi` sees (compare with PyTorch's `max_memory_reserved`).
    pub reserved: u64,
}

/// The memory pool of `device`, read from cubecl.
#[allow(unused_variables)]
pub fn device_memory(device: &Device) -> Option<DeviceMemory> {
    #[cfg(feature = "cuda")]
    let usage = {
        use cubecl::Runtime;
        cubecl::cuda::CudaRuntime::client(device)
            .memory_usage()
            .ok()
    };
    #[cfg(all(feature = "wgpu", not(feature = "cuda")))]
    let usage = {
        use cubecl::Runtime;
        cubecl::wgpu::WgpuRuntime::client(device)
            .memory_usage()
            .ok()
    };
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    let usage: Option<DeviceMemory> = None;
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    let usage = usage.map(|u| DeviceMemory {
        in_use: u.bytes_in_use,
        reserved: u.bytes_reserved,
    });
    usage
}

#[cfg(all(test, feature = "cuda"))]
mod cuda_tests {
    /// CI has no NVIDIA driver: the error names the library; with GPUs, `cuda:99` does not exist.
    /// Either way an error, not a panic inside cubecl.
    #[test]
    fn cuda_without_a_driver_or_device_is_a_clear_error() {
        let error = super::device("cuda:99").unwrap_err().to_string();
        assert!(
            error.contains("libcuda.so") || error.contains("cuda:99 does not exist"),
            "{error}"
        );
    }
}
