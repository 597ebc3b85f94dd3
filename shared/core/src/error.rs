//! The one error type of the use cases: each variant keeps its source and
//! says whether running the step again can help, and the Step Functions
//! error name `Retry`/`Catch` match on.

use crate::clean::CleanError;
use crate::layout::KeyError;
use crate::ports::PortError;
use crate::publish::PublishError;
use crate::quality::QualityError;
use chrono::NaiveDate;

#[derive(Debug, thiserror::Error)]
pub enum UseCaseError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("dataset {dataset:?} is not defined in pipeline.toml (known: {known})")]
    UnknownDataset { dataset: String, known: String },
    #[error("pipeline {pipeline:?} is not defined in pipeline.toml (known: {known})")]
    UnknownPipeline { pipeline: String, known: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("no raw files under {prefix}: nothing to clean")]
    NoRawFiles { prefix: String },
    #[error("{dataset} {date}: {what} (partition state is {state})")]
    WrongState {
        dataset: String,
        date: NaiveDate,
        state: String,
        what: String,
    },
    #[error(transparent)]
    Clean(#[from] CleanError),
    #[error(transparent)]
    Quality(#[from] QualityError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("scratch space {path}: {source}")]
    Scratch {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Approval(#[from] crate::approvals::ApprovalError),
    /// The date cannot be cleaned in this function's scratch space: running
    /// it again would fill the disk again.
    #[error("scratch space {path}: cleaning this date needs about {needed} bytes ({what}) and {available} are free. Give the clean function more ephemeral storage, or have the upstream split the date into smaller deliveries; retrying cannot help")]
    ScratchTooSmall {
        path: String,
        needed: u64,
        available: u64,
        what: String,
    },
    /// Every clean slot is taken: the state machine waits and asks again.
    #[error(
        "all {limit} clean slots are held ({held} now): waiting for a run to finish its clean"
    )]
    NoSlot { held: usize, limit: usize },
}

impl UseCaseError {
    /// Whether running the same step again can succeed (Step Functions
    /// `Retry` matches on `error_name`).
    pub fn retryable(&self) -> bool {
        match self {
            UseCaseError::Clean(e) => e.retryable(),
            UseCaseError::Publish(e) => e.retryable(),
            UseCaseError::Port(e) => e.retryable(),
            UseCaseError::Scratch { source, .. } => !crate::services::disk_full(source),
            UseCaseError::Approval(e) => e.retryable(),
            _ => false,
        }
    }

    pub fn error_name(&self) -> &'static str {
        if self.retryable() {
            "Tributary.Retryable"
        } else {
            match self {
                UseCaseError::Key(_)
                | UseCaseError::UnknownDataset { .. }
                | UseCaseError::UnknownPipeline { .. }
                | UseCaseError::BadRequest(_) => "Tributary.BadInput",
                UseCaseError::Clean(_) | UseCaseError::Quality(_) => "Tributary.BadData",
                UseCaseError::WrongState { .. } | UseCaseError::NoRawFiles { .. } => {
                    "Tributary.WrongState"
                }
                UseCaseError::ScratchTooSmall { .. } => "Tributary.ScratchTooSmall",
                UseCaseError::NoSlot { .. } => "Tributary.NoSlot",
                _ => "Tributary.Failed",
            }
        }
    }
}

pub type UseCaseResult<T> = Result<T, UseCaseError>;
