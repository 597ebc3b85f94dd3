//! Process set-up of the binaries that run the handlers: the Lambda
//! functions and the `tributary` CLI. It lives apart from the handlers,
//! which are a library called in-process (by tests too) and must not change
//! how their caller's process allocates or handles signals.

/// What a process is about to do, which decides how it sets itself up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// May clean files: batches of megabytes per range, where the heap on
    /// huge pages saves most page faults ([`heap_on_huge_pages`]) and is
    /// worth the ~4 ms of running the process again.
    Bulk,
    /// Everything else: state, a few records, a report. It starts once.
    Light,
}

/// Everything a handler process sets up before it does any work: for a
/// [`Workload::Bulk`] the heap on huge pages where the kernel offers them,
/// then, for every process, freed memory kept for reuse
/// ([`keep_freed_memory`]).
///
/// Call it early in `main`, before any other thread exists.
pub fn set_up(workload: Workload) {
    if workload == Workload::Bulk {
        heap_on_huge_pages();
    }
    keep_freed_memory();
}

/// A command-line tool whose reader went away (`tributary query | head`)
/// should end as Unix tools do: killed by SIGPIPE (status 141 in a shell),
/// quietly. Rust ignores SIGPIPE, so every print would fail with EPIPE and
/// `println!` panic instead. Not for processes that serve HTTP: a client
/// closing its socket must not kill the server.
#[cfg(unix)]
pub fn end_quietly_when_output_closes() {
    // SAFETY: restoring a signal's default disposition; called before any
    // other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
pub fn end_quietly_when_output_closes() {}

/// The cleaner frees and allocates batches of megabytes for every range;
/// glibc hands such blocks back to the kernel at once, and the next range
/// faults them in again (about a third of a clean's system time). Keeping
/// freed memory for reuse avoids that without raising the peak.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes the allocator's thresholds; the caller
    // runs it before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// Other allocators keep their own policy.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
use huge_heap::heap_on_huge_pages;

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap_on_huge_pages() {}

/// glibc's heap on transparent huge pages: only glibc on Linux has the
/// tunable.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod huge_heap {
    use std::ffi::{OsStr, OsString};

    const TUNABLES: &str = "GLIBC_TUNABLES";
    const HUGE_HEAP_TUNABLE: &str = "glibc.malloc.hugetlb";
    /// Set only across our own re-exec: the caller's `GLIBC_TUNABLES`, `+`
    /// and its value, or `-` when it had none.
    const CALLERS_TUNABLES: &str = "TRIBUTARY_CALLERS_GLIBC_TUNABLES";

    /// Even with freed memory kept, every page of the peak is faulted in
    /// once: about 22,000 faults for a million-row clean, each a trip through
    /// the kernel (and, on a VM, often through the host, which has to back the
    /// page again). With glibc's heap on transparent huge pages they are about
    /// 3,000; at 1 thread a 1M-row clean then took 7 % less wall time (median
    /// of 40 rounds run side by side with and without), for ~7 MiB more peak.
    ///
    /// glibc reads its tunables only when a process starts, so the process
    /// runs itself again once with `glibc.malloc.hugetlb=1` added, and the
    /// re-run gives the caller's `GLIBC_TUNABLES` back to its own children.
    /// Nothing happens where the kernel has huge pages off, where the caller
    /// already chose (`GLIBC_TUNABLES=glibc.malloc.hugetlb=0` turns it off),
    /// or if the re-exec fails (the process then carries on as it is).
    pub(super) fn heap_on_huge_pages() {
        use std::os::unix::process::CommandExt;
        if let Some(callers) = std::env::var_os(CALLERS_TUNABLES) {
            // The re-run: glibc has read the tunables; children get the caller's.
            std::env::remove_var(CALLERS_TUNABLES);
            match restore_callers_tunables(&callers) {
                Some(value) => std::env::set_var(TUNABLES, value),
                None => std::env::remove_var(TUNABLES),
            }
            return;
        }
        let current = std::env::var_os(TUNABLES);
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
        let Some(tunables) = huge_heap_tunables(current.as_deref(), mode.as_deref().ok()) else {
            return;
        };
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let mut command = std::process::Command::new(exe);
        if let Some(arg0) = args.next() {
            command.arg0(arg0);
        }
        let marker = match &current {
            Some(value) => {
                let mut m = OsString::from("+");
                m.push(value);
                m
            }
            None => OsString::from("-"),
        };
        // exec only returns on failure, and then nothing has changed.
        let _ = command
            .args(args)
            .env(TUNABLES, tunables)
            .env(CALLERS_TUNABLES, marker)
            .exec();
    }

    /// The `GLIBC_TUNABLES` to re-run with, or `None` to run as we are: the
    /// kernel's transparent huge pages (`enabled`, e.g. `always [madvise]
    /// never`) are off or unknown, or the caller's tunables already say
    /// whether the heap uses them.
    fn huge_heap_tunables(current: Option<&OsStr>, thp_enabled: Option<&str>) -> Option<OsString> {
        let mode = thp_enabled?;
        if !(mode.contains("[always]") || mode.contains("[madvise]")) {
            return None;
        }
        let addition = format!("{HUGE_HEAP_TUNABLE}=1");
        match current {
            Some(value) if !value.is_empty() => {
                if value.to_string_lossy().contains(HUGE_HEAP_TUNABLE) {
                    return None;
                }
                let mut combined = value.to_os_string();
                combined.push(":");
                combined.push(addition);
                Some(combined)
            }
            _ => Some(addition.into()),
        }
    }

    /// The caller's `GLIBC_TUNABLES` from the re-exec marker (`None`: it had
    /// none).
    fn restore_callers_tunables(marker: &OsStr) -> Option<OsString> {
        use std::os::unix::ffi::OsStrExt;
        marker
            .as_bytes()
            .strip_prefix(b"+")
            .map(|v| OsStr::from_bytes(v).to_os_string())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        const MADVISE: &str = "always [madvise] never\n";

        #[test]
        fn the_heap_tunable_is_added_only_where_huge_pages_are_on_and_undecided() {
            assert_eq!(
                huge_heap_tunables(None, Some(MADVISE)),
                Some("glibc.malloc.hugetlb=1".into())
            );
            assert_eq!(
                huge_heap_tunables(Some(OsStr::new("")), Some("[always] madvise never")),
                Some("glibc.malloc.hugetlb=1".into())
            );
            // The caller's own tunables are kept, ours appended.
            assert_eq!(
                huge_heap_tunables(Some(OsStr::new("glibc.malloc.arena_max=2")), Some(MADVISE)),
                Some("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1".into())
            );
            // The caller decided (here: off), huge pages are off, or unknown.
            assert_eq!(
                huge_heap_tunables(Some(OsStr::new("glibc.malloc.hugetlb=0")), Some(MADVISE)),
                None
            );
            assert_eq!(
                huge_heap_tunables(None, Some("always madvise [never]")),
                None
            );
            assert_eq!(huge_heap_tunables(None, None), None);
        }

        #[test]
        fn the_re_run_gives_back_exactly_the_callers_tunables() {
            assert_eq!(restore_callers_tunables(OsStr::new("-")), None);
            assert_eq!(
                restore_callers_tunables(OsStr::new("+")),
                Some(OsString::new())
            );
            assert_eq!(
                restore_callers_tunables(OsStr::new("+glibc.malloc.arena_max=2")),
                Some("glibc.malloc.arena_max=2".into())
            );
        }
    }
}
