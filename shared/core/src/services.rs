//! The adapters a use case runs against, and the lookups every use case
//! starts with (a pipeline, a dataset, scratch space).

use crate::config::{Config, DatasetConfig, PipelineConfig};
use crate::error::{UseCaseError, UseCaseResult};
use crate::ports::{Catalog, Notifier, ObjectStore, StateStore, TaskCallbacks, WorkflowStarter};
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
