//! How the process allocator treats the model's large, short-lived tensor buffers.
//!
//! glibc's malloc serves blocks above its mmap threshold with fresh `mmap`s and gives the top
//! of the heap back to the OS past its trim threshold. A forward or training step allocates and
//! frees hundreds of megabytes of activations, so every step then faults in and zeroes the
//! same pages again: 6 % of a CPU training step went to `clear_page` (docs/performance.md,
//! round 3). Keeping freed blocks in the process removes that without raising the peak.

/// glibc's largest allowed mmap threshold on 64-bit targets (`DEFAULT_MMAP_THRESHOLD_MAX`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the heap top kept before it is returned to the OS.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = 1 << 30;

/// Keeps freed tensor buffers (up to 32 MiB each) in the process for reuse instead of
/// returning them to the OS. Call once at start-up, before the model runs; true when the
/// allocator took the settings (glibc on Linux), false elsewhere (nothing changes).
pub fn retain_freed_buffers() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; both values are in range.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_settings() {
        assert!(retain_freed_buffers());
        // A buffer just under the threshold, freed and taken again, still works.
        let a = vec![1u8; (32 << 20) - 4096];
        drop(a);
        let b = vec![2u8; (32 << 20) - 4096];
        assert_eq!(b[12345], 2);
    }
}
