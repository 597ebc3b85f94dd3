use clap::Parser;

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    let cli = tributary::cli::Cli::parse();
    match tributary::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The cleaner frees and allocates batches of megabytes for every range;
/// glibc hands such blocks back to the kernel at once, and the next range
/// faults them in again (about a third of a clean's system time). Keeping
/// freed memory for reuse avoids that without raising the peak.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes the allocator's thresholds, and runs
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}
