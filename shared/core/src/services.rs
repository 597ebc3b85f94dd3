//! The adapters a use case runs against, and the lookups every use case
//! starts with (a pipeline, a dataset, scratch space).

use crate::config::{Config, DatasetConfig, PipelineConfig};
use crate::error::{UseCaseError, UseCaseResult};
use crate::ports::{
    Catalog, ConsumerSwitch, Notifier, ObjectStore, StateStore, TaskCallbacks, WorkflowStarter,
};
use std::path::Path;

/// The adapters a use case runs against.
pub struct Services<'a> {
    pub config: &'a Config,
    pub objects: &'a dyn ObjectStore,
    pub state: &'a dyn StateStore,
    pub catalog: &'a dyn Catalog,
    pub workflows: &'a dyn WorkflowStarter,
    pub notifier: &'a dyn Notifier,
    pub callbacks: &'a dyn TaskCallbacks,
    /// Starts and stops the streaming consumers' event source mappings.
    pub consumers: &'a dyn ConsumerSwitch,
    /// Signs the approve/reject links of approval requests.
    pub links: crate::approvals::LinkSigner<'a>,
    /// Local scratch space (Lambda: /tmp) for downloads and Parquet encoding.
    pub scratch: &'a Path,
}

pub fn pipeline_config<'a>(config: &'a Config, name: &str) -> UseCaseResult<&'a PipelineConfig> {
    config
        .pipelines
        .get(name)
        .ok_or_else(|| UseCaseError::UnknownPipeline {
            pipeline: name.to_string(),
            known: config
                .pipelines
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        })
}

pub fn dataset<'a>(config: &'a Config, name: &str) -> UseCaseResult<&'a DatasetConfig> {
    config
        .dataset(name)
        .ok_or_else(|| UseCaseError::UnknownDataset {
            dataset: name.to_string(),
            known: config.dataset_names(),
        })
}

/// Whether an I/O error is a full disk (or quota): not worth a retry.
pub fn disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// Bytes free for an unprivileged writer on the file system of `path`.
#[cfg(unix)]
pub fn free_bytes(path: &Path) -> Option<u64> {
    let stats = rustix::fs::statvfs(path).ok()?;
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

#[cfg(not(unix))]
pub fn free_bytes(_path: &Path) -> Option<u64> {
    None
}

/// What a clean of `raw_bytes` of input writes to scratch at its peak: the
/// downloaded files, as much again spilled while deduplicating (with a
/// key), and the outputs (at most a quarter of the input for zstd Parquet
/// of CSV, with room to spare).
pub fn clean_scratch_needed(raw_bytes: u64, deduplicates: bool) -> (u64, &'static str) {
    let outputs = raw_bytes / 4;
    if deduplicates {
        (
            raw_bytes.saturating_mul(2).saturating_add(outputs),
            "the raw files, as much again spilled while deduplicating, and the outputs",
        )
    } else {
        (
            raw_bytes.saturating_add(outputs),
            "the raw files and the outputs",
        )
    }
}

/// Refuse, before downloading anything, a clean the scratch space cannot
/// hold (unknown free space is not refused).
pub fn ensure_scratch_room(
    dir: &Path,
    (needed, what): (u64, &'static str),
    available: Option<u64>,
) -> UseCaseResult<()> {
    match available {
        Some(available) if available < needed => Err(UseCaseError::ScratchTooSmall {
            path: dir.display().to_string(),
            needed,
            available,
            what: what.to_string(),
        }),
        _ => Ok(()),
    }
}

pub fn scratch_dir(base: &Path) -> UseCaseResult<tempfile::TempDir> {
    std::fs::create_dir_all(base).map_err(|source| UseCaseError::Scratch {
        path: base.display().to_string(),
        source,
    })?;
    tempfile::tempdir_in(base).map_err(|source| UseCaseError::Scratch {
        path: base.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod scratch_tests {
    use super::*;

    #[test]
    fn a_date_larger_than_the_scratch_space_is_refused_for_good() {
        let dir = Path::new("/tmp/scratch");
        let need = clean_scratch_needed(4_000_000_000, true);
        assert_eq!(need.0, 9_000_000_000);
        let err = ensure_scratch_room(dir, need, Some(10_000_000_000 / 2)).unwrap_err();
        assert!(!err.retryable());
        assert_eq!(err.error_name(), "Tributary.ScratchTooSmall");
        let message = err.to_string();
        assert!(
            message.contains("needs about 9000000000 bytes")
                && message.contains("5000000000 are free")
                && message.contains("ephemeral storage"),
            "{message}"
        );
        assert!(ensure_scratch_room(dir, need, Some(9_000_000_000)).is_ok());
        assert!(ensure_scratch_room(dir, need, None).is_ok());
        assert_eq!(clean_scratch_needed(4_000, false).0, 5_000);
    }

    #[test]
    fn a_full_disk_is_not_retried_other_io_errors_are() {
        let scratch = |kind| UseCaseError::Scratch {
            path: "/tmp".into(),
            source: std::io::Error::from(kind),
        };
        assert!(!scratch(std::io::ErrorKind::StorageFull).retryable());
        assert_eq!(
            scratch(std::io::ErrorKind::StorageFull).error_name(),
            "Tributary.Failed"
        );
        assert!(scratch(std::io::ErrorKind::Interrupted).retryable());
        let write = |kind| crate::clean::CleanError::Write {
            path: "/tmp/kept.parquet".into(),
            source: std::io::Error::from(kind),
        };
        assert!(!write(std::io::ErrorKind::StorageFull).retryable());
        assert!(write(std::io::ErrorKind::BrokenPipe).retryable());
    }

    #[test]
    fn free_space_is_read_from_the_file_system() {
        let free = free_bytes(&std::env::temp_dir());
        assert!(free.is_some_and(|b| b > 0), "{free:?}");
    }
}
