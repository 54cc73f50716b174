//! The compute backend, chosen at build time by a cargo feature (`flex` default, `ndarray`,
//! `openblas`, `wgpu`, `cuda`); `--device` picks a device of that backend at run time.

use anyhow::{Result, bail};
use burn::backend::Autodiff;

#[cfg(feature = "cuda")]
mod selected {
    pub type Inner = burn::backend::Cuda;
    pub const NAME: &str = "cuda";
    pub fn device(spec: &str) -> anyhow::Result<burn::backend::cuda::CudaDevice> {
        let index = super::device_index(spec, "cuda")?;
        Ok(burn::backend::cuda::CudaDevice::new(index))
    }
}

#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
mod selected {
    use burn::backend::wgpu::WgpuDevice;
    pub type Inner = burn::backend::Wgpu;
    pub const NAME: &str = "wgpu";
    pub fn device(spec: &str) -> anyhow::Result<WgpuDevice> {
        let device = parse(spec)?;
        probe(&device)?;
        Ok(device)
    }

    /// Runs one tiny op: cubecl panics (in a worker thread, then here) when no adapter exists,
    /// which becomes an error that says what to install.
    fn probe(device: &WgpuDevice) -> anyhow::Result<()> {
        use burn::tensor::Tensor;
        let device = device.clone();
        let works = std::panic::catch_unwind(move || {
            Tensor::<Inner, 1>::zeros([1], &device).into_data();
        });
        works.map_err(|_| {
            anyhow::anyhow!(
                "no wgpu adapter could be opened: install a Vulkan driver (on Debian: \
                 apt-get install mesa-vulkan-drivers libvulkan1, which also works without a GPU) \
                 or pick another --device"
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

/// Adapter noise for one batch: host streams of `run_seed` (rows keyed by the caller), or the
/// device generator seeded with `batch_seed`.
pub fn noise<B: burn::tensor::backend::Backend>(
    run_seed: u64,
    batch_seed: u64,
    device: &B::Device,
) -> medclipseg_model::Noise<B> {
    match noise_source() {
        NoiseSource::Device => {
            B::seed(device, batch_seed);
            medclipseg_model::Noise::Device
        }
        _ => medclipseg_model::Noise::seeded(run_seed),
    }
}
