//! medclipseg-rs patch: the precision of f32 matrix products under `Strategy::Auto`.
//!
//! Upstream `Strategy::Auto` tries the tensor-core kernel first, and `adjust_dtypes` stages f32
//! operands as TF32 (10-bit mantissa) wherever the device registers TF32 (every NVIDIA GPU under
//! cubecl-cuda). That puts a ~1e-3 relative error on every f32 matmul, where PyTorch keeps full
//! f32 by default. Here `Auto` runs f32 × f32 on the full-precision `SimpleUnit` kernel unless
//! TF32 is allowed, either by [`set_tf32_allowed`] or by `CUBEK_MATMUL_ALLOW_TF32=1` in the
//! environment (read once, when nothing was set before). Other element types are unchanged.

use core::sync::atomic::{AtomicU8, Ordering};

use cubecl::prelude::CubePrimitive;

use crate::definition::MatmulElems;

const UNSET: u8 = 0;
const PRECISE: u8 = 1;
const TF32: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(UNSET);

/// Allows (`true`) or forbids (`false`, the default) TF32 tensor cores for f32 matmuls, for the
/// whole process, from the next launch on.
pub fn set_tf32_allowed(allowed: bool) {
    MODE.store(if allowed { TF32 } else { PRECISE }, Ordering::Relaxed);
}

/// Whether f32 matmuls under `Strategy::Auto` may use TF32 tensor cores.
pub fn tf32_allowed() -> bool {
    match MODE.load(Ordering::Relaxed) {
        UNSET => {
            let allowed = std::env::var("CUBEK_MATMUL_ALLOW_TF32")
                .map(|value| matches!(value.trim(), "1" | "true" | "yes"))
                .unwrap_or(false);
            // Keep an explicit setting made meanwhile.
            let _ = MODE.compare_exchange(
                UNSET,
                if allowed { TF32 } else { PRECISE },
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            MODE.load(Ordering::Relaxed) == TF32
        }
        mode => mode == TF32,
    }
}

/// Whether both operands are f32 in global memory (the case TF32 would round).
pub(crate) fn is_f32_problem(dtypes: &MatmulElems) -> bool {
    let f32_dtype = f32::as_type_native_unchecked().storage_type();
    dtypes.lhs_global == f32_dtype && dtypes.rhs_global == f32_dtype
}
