//! The CPU backend the benchmarks run on, chosen by the package features:
//! `flex` (default), `ndarray`, `openblas` (ndarray over the system OpenBLAS).
//!
//! Both features also turn on the backend crate's own defaults (SIMD kernels and the rayon
//! thread pool); `burn/flex` or `burn/ndarray` alone leaves them off, single-threaded.
//! Threads: rayon's global pool, sized by `RAYON_NUM_THREADS` (default: all cores).

/// The inference backend.
#[cfg(feature = "flex")]
pub type Cpu = burn::backend::Flex;
/// The inference backend.
#[cfg(all(feature = "ndarray", not(feature = "flex")))]
pub type Cpu = burn::backend::NdArray;

/// The training backend: autodiff over [`Cpu`].
pub type Train = burn::backend::Autodiff<Cpu>;

/// A label for reports: which backend this build benchmarks.
pub fn name() -> &'static str {
    if cfg!(feature = "flex") {
        "flex"
    } else if cfg!(feature = "openblas") {
        "ndarray+openblas"
    } else {
        "ndarray"
    }
}
