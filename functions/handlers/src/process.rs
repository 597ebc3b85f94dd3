//! Process set-up shared by everything that runs the handlers: the Lambda
//! binaries and the `tributary` CLI.

/// The cleaner frees and allocates batches of megabytes for every range;
/// glibc hands such blocks back to the kernel at once, and the next range
/// faults them in again (about a third of a clean's system time). Keeping
/// freed memory for reuse avoids that without raising the peak.
///
/// Call it first thing in `main`, before any other thread exists.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn keep_freed_memory() {
    // SAFETY: mallopt only changes the allocator's thresholds; the caller
    // runs it before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// Other allocators keep their own policy.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() {}
