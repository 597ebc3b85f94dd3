//! The adapters a use case runs against, and the lookups every use case
//! starts with (a pipeline, a dataset, scratch space).

use crate::config::{Config, DatasetConfig, PipelineConfig};
use crate::error::{UseCaseError, UseCaseResult};
use crate::ports::{
    Catalog, CatalogPartition, ConsumerSwitch, Notifier, ObjectMeta, ObjectStore, PortError,
    PortResult, StateStore, TaskAnswer, TaskCallbacks, TransactWrite, Versioned, Workflow,
    WorkflowStarter,
};
use async_trait::async_trait;
use chrono::NaiveDate;
use std::path::Path;

/// The adapters a use case runs against.
#[derive(Clone, Copy)]
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

/// Which ports of [`Services`] a function may use: the same as the AWS
/// services its IAM policy grants (`needs`, `reads` and `writes` in
/// infra/modules/tributary/locals.tf). Wherever a function runs, the ports
/// it was not granted refuse, so a handler that reaches past its grant
/// fails in the tests rather than with AccessDenied on AWS; and a Lambda
/// binary links only the adapters of its ports.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ports(u8);

impl Ports {
    pub const NONE: Ports = Ports(0);
    /// The data bucket (S3): any `reads` or `writes`.
    pub const OBJECTS: Ports = Ports(1);
    /// The state table (DynamoDB): `state` or `state_read`.
    pub const STATE: Ports = Ports(1 << 1);
    /// Glue partitions: `catalog`.
    pub const CATALOG: Ports = Ports(1 << 2);
    /// Starting state machines: `start_pipeline`, `start_downstream`.
    pub const WORKFLOWS: Ports = Ports(1 << 3);
    /// SNS: `notify`.
    pub const NOTIFIER: Ports = Ports(1 << 4);
    /// Answering task tokens: `answer_tasks`.
    pub const CALLBACKS: Ports = Ports(1 << 5);
    /// The streaming consumers' event source mappings: `consumer_state`,
    /// `consumer_switch`.
    pub const CONSUMERS: Ports = Ports(1 << 6);
    pub const ALL: Ports = Ports((1 << 7) - 1);

    /// Every port with its name, in field order.
    pub const NAMED: [(Ports, &'static str); 7] = [
        (Ports::OBJECTS, "OBJECTS"),
        (Ports::STATE, "STATE"),
        (Ports::CATALOG, "CATALOG"),
        (Ports::WORKFLOWS, "WORKFLOWS"),
        (Ports::NOTIFIER, "NOTIFIER"),
        (Ports::CALLBACKS, "CALLBACKS"),
        (Ports::CONSUMERS, "CONSUMERS"),
    ];

    #[inline]
    pub const fn union(self, other: Ports) -> Ports {
        Ports(self.0 | other.0)
    }

    #[inline]
    pub const fn contains(self, other: Ports) -> bool {
        self.0 & other.0 == other.0
    }

    /// As a const generic argument (Lambda binaries select their adapters
    /// at compile time).
    #[inline]
    pub const fn bits(self) -> u8 {
        self.0
    }

    #[inline]
    pub const fn from_bits(bits: u8) -> Ports {
        Ports(bits & Ports::ALL.0)
    }

    /// The names of the ports held, e.g. `["STATE", "NOTIFIER"]`.
    pub fn names(self) -> Vec<&'static str> {
        Ports::NAMED
            .iter()
            .filter(|(port, _)| self.contains(*port))
            .map(|(_, name)| *name)
            .collect()
    }
}

impl std::ops::BitOr for Ports {
    type Output = Ports;
    fn bitor(self, other: Ports) -> Ports {
        self.union(other)
    }
}

/// [`Services`] from a set of adapters with fields named as its ports
/// (`objects`, `state`, …, `approval_secret`, `approval_base_url`,
/// `scratch`), the ports not in `$ports` refusing. With `$ports` a
/// constant, the adapters of the others are not referenced, so a binary
/// does not link them.
#[macro_export]
macro_rules! services_from_adapters {
    ($adapters:expr, $config:expr, $ports:expr) => {{
        use $crate::services::{Ports, Ungranted};
        let adapters = $adapters;
        let ports: Ports = $ports;
        $crate::services::Services {
            config: $config,
            objects: if ports.contains(Ports::OBJECTS) {
                &adapters.objects
            } else {
                &Ungranted
            },
            state: if ports.contains(Ports::STATE) {
                &adapters.state
            } else {
                &Ungranted
            },
            catalog: if ports.contains(Ports::CATALOG) {
                &adapters.catalog
            } else {
                &Ungranted
            },
            workflows: if ports.contains(Ports::WORKFLOWS) {
                &adapters.workflows
            } else {
                &Ungranted
            },
            notifier: if ports.contains(Ports::NOTIFIER) {
                &adapters.notifier
            } else {
                &Ungranted
            },
            callbacks: if ports.contains(Ports::CALLBACKS) {
                &adapters.callbacks
            } else {
                &Ungranted
            },
            consumers: if ports.contains(Ports::CONSUMERS) {
                &adapters.consumers
            } else {
                &Ungranted
            },
            links: $crate::approvals::LinkSigner {
                secret: &adapters.approval_secret,
                base_url: &adapters.approval_base_url,
            },
            scratch: &adapters.scratch,
        }
    }};
}

impl<'a> Services<'a> {
    /// These services with the ports not in `granted` refusing.
    pub fn granted(&self, granted: Ports) -> Services<'a> {
        let mut svc = *self;
        if !granted.contains(Ports::OBJECTS) {
            svc.objects = &Ungranted;
        }
        if !granted.contains(Ports::STATE) {
            svc.state = &Ungranted;
        }
        if !granted.contains(Ports::CATALOG) {
            svc.catalog = &Ungranted;
        }
        if !granted.contains(Ports::WORKFLOWS) {
            svc.workflows = &Ungranted;
        }
        if !granted.contains(Ports::NOTIFIER) {
            svc.notifier = &Ungranted;
        }
        if !granted.contains(Ports::CALLBACKS) {
            svc.callbacks = &Ungranted;
        }
        if !granted.contains(Ports::CONSUMERS) {
            svc.consumers = &Ungranted;
        }
        svc
    }
}

/// A port a function was not granted.
#[derive(Debug, thiserror::Error)]
#[error("this function is not granted the {port} port")]
pub struct NotGranted {
    pub port: &'static str,
}

/// The adapter of every port a function was not granted: each call
/// refuses, permanently (its IAM policy would deny it too).
pub struct Ungranted;

fn not_granted(port: &'static str, operation: &str) -> PortError {
    PortError::permanent(
        format!("{operation} on {port}"),
        "grant the port to the function in tributary_handlers::FUNCTIONS and its access in infra/modules/tributary/locals.tf",
        NotGranted { port },
    )
}

#[async_trait]
impl ObjectStore for Ungranted {
    async fn put_bytes(&self, key: &str, _body: Vec<u8>) -> PortResult<ObjectMeta> {
        Err(not_granted("OBJECTS", &format!("put {key}")))
    }
    async fn put_file(&self, key: &str, _path: &Path) -> PortResult<ObjectMeta> {
        Err(not_granted("OBJECTS", &format!("put {key}")))
    }
    async fn get_bytes(&self, key: &str) -> PortResult<Vec<u8>> {
        Err(not_granted("OBJECTS", &format!("get {key}")))
    }
    async fn get_range(&self, key: &str, _start: u64, _len: u64) -> PortResult<Vec<u8>> {
        Err(not_granted("OBJECTS", &format!("get {key}")))
    }
    async fn get_to_file(&self, key: &str, _path: &Path) -> PortResult<ObjectMeta> {
        Err(not_granted("OBJECTS", &format!("get {key}")))
    }
    async fn head(&self, key: &str) -> PortResult<Option<ObjectMeta>> {
        Err(not_granted("OBJECTS", &format!("head {key}")))
    }
    async fn list(&self, prefix: &str) -> PortResult<Vec<ObjectMeta>> {
        Err(not_granted("OBJECTS", &format!("list {prefix}")))
    }
    async fn delete(&self, key: &str) -> PortResult<()> {
        Err(not_granted("OBJECTS", &format!("delete {key}")))
    }
    async fn copy(&self, from: &str, to: &str) -> PortResult<ObjectMeta> {
        Err(not_granted("OBJECTS", &format!("copy {from} to {to}")))
    }
}

#[async_trait]
impl StateStore for Ungranted {
    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Versioned>> {
        Err(not_granted("STATE", &format!("get {pk}/{sk}")))
    }
    async fn put(
        &self,
        pk: &str,
        sk: &str,
        _value: serde_json::Value,
        _condition: crate::ports::Condition,
    ) -> PortResult<u64> {
        Err(not_granted("STATE", &format!("put {pk}/{sk}")))
    }
    async fn delete(
        &self,
        pk: &str,
        sk: &str,
        _condition: crate::ports::Condition,
    ) -> PortResult<()> {
        Err(not_granted("STATE", &format!("delete {pk}/{sk}")))
    }
    async fn query(&self, pk: &str) -> PortResult<Vec<(String, Versioned)>> {
        Err(not_granted("STATE", &format!("query {pk}")))
    }
    async fn transact(&self, _writes: Vec<TransactWrite>) -> PortResult<()> {
        Err(not_granted("STATE", "transact"))
    }
}

#[async_trait]
impl Catalog for Ungranted {
    async fn get_partition(
        &self,
        table: &str,
        date: NaiveDate,
    ) -> PortResult<Option<CatalogPartition>> {
        Err(not_granted(
            "CATALOG",
            &format!("get partition {table}/{date}"),
        ))
    }
    async fn put_partition(&self, partition: CatalogPartition) -> PortResult<()> {
        Err(not_granted(
            "CATALOG",
            &format!("put partition {}/{}", partition.table, partition.date),
        ))
    }
    async fn delete_partition(&self, table: &str, date: NaiveDate) -> PortResult<()> {
        Err(not_granted(
            "CATALOG",
            &format!("delete partition {table}/{date}"),
        ))
    }
    async fn list_partitions(&self, table: &str) -> PortResult<Vec<CatalogPartition>> {
        Err(not_granted(
            "CATALOG",
            &format!("list partitions of {table}"),
        ))
    }
}

#[async_trait]
impl WorkflowStarter for Ungranted {
    async fn start(
        &self,
        workflow: Workflow,
        execution_name: &str,
        _input: serde_json::Value,
    ) -> PortResult<bool> {
        Err(not_granted(
            "WORKFLOWS",
            &format!("start {workflow:?} {execution_name}"),
        ))
    }
}

#[async_trait]
impl Notifier for Ungranted {
    async fn notify(&self, topic: &str, subject: &str, _message: &str) -> PortResult<String> {
        Err(not_granted(
            "NOTIFIER",
            &format!("notify {topic} of {subject:?}"),
        ))
    }
}

#[async_trait]
impl TaskCallbacks for Ungranted {
    async fn answer(&self, _token: &str, _answer: TaskAnswer) -> PortResult<()> {
        Err(not_granted("CALLBACKS", "answer a task token"))
    }
}

#[async_trait]
impl ConsumerSwitch for Ungranted {
    async fn set_enabled(&self, consumer: &str, enabled: bool) -> PortResult<()> {
        Err(not_granted(
            "CONSUMERS",
            &format!("set {consumer} enabled={enabled}"),
        ))
    }
    async fn enabled(&self, consumer: &str) -> PortResult<Option<bool>> {
        Err(not_granted(
            "CONSUMERS",
            &format!("read whether {consumer} is enabled"),
        ))
    }
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
