//! Allocator tuning for the simulator's allocation pattern.
//!
//! Every client-round returns a fresh parameter vector (636 kB for the
//! 784-200-10 MLP) from a worker thread; the server drops them all after
//! aggregating. With glibc's defaults each round's frees give the pages back
//! to the kernel (the worker arenas are trimmed with `madvise`) and the next
//! round faults them in again, zero-filled: on `bench-fmnist-10k` that was
//! about a quarter of the run time. [`keep_freed_memory`] raises glibc's trim
//! and mmap thresholds so freed blocks stay in the process and are reused.
//! Results do not depend on it: only where memory comes from changes.

/// Tells glibc's `malloc` to keep freed memory for reuse instead of
/// returning it to the kernel: trim threshold 1 GiB, mmap threshold 32 MiB
/// (glibc's maximum; larger blocks, e.g. datasets, are still mapped on their
/// own). Call it once, early in `main`, before other threads start. A no-op
/// on other platforms and C libraries.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        // SAFETY: `mallopt` only sets glibc's tuning parameters, takes plain
        // integers and is called before any other thread exists. A value it
        // rejects leaves the default in place (return value 0), which is
        // harmless, so the result is not checked.
        unsafe {
            mallopt(M_TRIM_THRESHOLD, 1 << 30);
            mallopt(M_MMAP_THRESHOLD, 32 << 20);
        }
    }
}
