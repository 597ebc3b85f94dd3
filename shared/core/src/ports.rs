//! The boundaries to the outside world. Each has an embedded adapter
//! (`tributary-local`) and an AWS adapter (S3, DynamoDB, Glue), with the same
//! semantics, so use cases are written once.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Errors of any adapter, classified by what the caller can do about them.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("{what} not found")]
    NotFound { what: String },
    /// A conditional write lost: someone else changed the item first.
    #[error("conditional write on {what} failed: {detail}")]
    ConditionFailed { what: String, detail: String },
    /// Throttling, timeouts, 5xx, a lock held too long: trying again helps.
    #[error("{operation} failed transiently: {source}")]
    Transient {
        operation: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Access denied, missing bucket/table, validation: an operator must act.
    #[error("{operation} failed: {source} ({hint})")]
    Permanent {
        operation: String,
        hint: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl PortError {
    pub fn retryable(&self) -> bool {
        matches!(self, PortError::Transient { .. })
    }

    pub fn transient(
        operation: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        PortError::Transient {
            operation: operation.into(),
            source: source.into(),
        }
    }

    pub fn permanent(
        operation: impl Into<String>,
        hint: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        PortError::Permanent {
            operation: operation.into(),
            hint: hint.into(),
            source: source.into(),
        }
    }

    /// Local I/O: "not found" is permanent, anything else may pass.
    pub fn from_io(operation: impl Into<String>, e: std::io::Error) -> Self {
        let operation = operation.into();
        match e.kind() {
            std::io::ErrorKind::NotFound => PortError::NotFound { what: operation },
            std::io::ErrorKind::PermissionDenied => {
                PortError::permanent(operation, "check file permissions of the workspace", e)
            }
            _ => PortError::transient(operation, e),
        }
    }
}

pub type PortResult<T> = Result<T, PortError>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// Content hash in S3's single-part form (hex MD5), quoted-less.
    pub etag: String,
    pub last_modified: DateTime<Utc>,
}

/// The data bucket.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    async fn put_bytes(&self, key: &str, body: Vec<u8>) -> PortResult<ObjectMeta>;
    /// Upload a local file (streamed; large files need not fit in memory).
    async fn put_file(&self, key: &str, path: &Path) -> PortResult<ObjectMeta>;
    async fn get_bytes(&self, key: &str) -> PortResult<Vec<u8>>;
    /// Up to `len` bytes from byte `start` (S3 `Range: bytes=…`): fewer when
    /// the object ends first, none when `start` is at or past its end.
    async fn get_range(&self, key: &str, start: u64, len: u64) -> PortResult<Vec<u8>>;
    /// Download into a local file (streamed).
    async fn get_to_file(&self, key: &str, path: &Path) -> PortResult<ObjectMeta>;
    async fn head(&self, key: &str) -> PortResult<Option<ObjectMeta>>;
    /// Every object under `prefix`, in key order, across all pages.
    async fn list(&self, prefix: &str) -> PortResult<Vec<ObjectMeta>>;
    async fn delete(&self, key: &str) -> PortResult<()>;
    /// Server-side copy (S3 CopyObject); the destination is replaced atomically.
    async fn copy(&self, from: &str, to: &str) -> PortResult<ObjectMeta>;
}

/// An item of the state store with its optimistic-concurrency version.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    pub value: serde_json::Value,
    pub version: u64,
}

/// The condition a write must satisfy, evaluated atomically with it
/// (DynamoDB ConditionExpression on a version attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Always,
    /// attribute_not_exists(pk)
    NotExists,
    /// version = :v
    VersionIs(u64),
}

/// One write of a transaction: put `value` (or delete, when `None`) at
/// (pk, sk) if `condition` holds.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactWrite {
    pub pk: String,
    pub sk: String,
    pub value: Option<serde_json::Value>,
    pub condition: Condition,
}

/// DynamoDB's limit on one TransactWriteItems call.
pub const MAX_TRANSACT_WRITES: usize = 100;

/// Refuses transactions DynamoDB would refuse, before anything is sent.
pub fn check_transaction(writes: &[TransactWrite]) -> PortResult<()> {
    let refuse = |problem: String| {
        Err(PortError::permanent(
            "a state transaction",
            problem,
            "transaction refused",
        ))
    };
    if writes.is_empty() || writes.len() > MAX_TRANSACT_WRITES {
        return refuse(format!(
            "it has {} writes; a transaction takes 1 to {MAX_TRANSACT_WRITES}",
            writes.len()
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for w in writes {
        if !seen.insert((w.pk.as_str(), w.sk.as_str())) {
            return refuse(format!("{}/{} is written twice", w.pk, w.sk));
        }
    }
    Ok(())
}

/// Watermarks, partition status, executions (one DynamoDB table: pk + sk).
#[async_trait]
pub trait StateStore: Send + Sync {
    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Versioned>>;
    /// Write and return the new version; `ConditionFailed` if the condition
    /// does not hold at the moment of writing.
    async fn put(
        &self,
        pk: &str,
        sk: &str,
        value: serde_json::Value,
        condition: Condition,
    ) -> PortResult<u64>;
    async fn delete(&self, pk: &str, sk: &str, condition: Condition) -> PortResult<()>;
    /// Every item of a partition key, in sort-key order.
    async fn query(&self, pk: &str) -> PortResult<Vec<(String, Versioned)>>;

    /// All or nothing (DynamoDB TransactWriteItems): every condition holds
    /// at the moment of writing and every write happens, or none does and
    /// `ConditionFailed` names a write whose condition failed. Each item
    /// once, at most `MAX_TRANSACT_WRITES`.
    async fn transact(&self, writes: Vec<TransactWrite>) -> PortResult<()>;

    /// Insert each item unless one with its key is already there (in
    /// order: a later item may find an earlier one of the same call). Items
    /// are (partition key, sort key, value) and may span partition keys, so
    /// a batch of claims spread over sharded keys is one call. Returns, per
    /// item, `None` when it was inserted, or the value already stored.
    /// Items carry their expiry as `expires_at` (epoch seconds, the
    /// DynamoDB TTL attribute); an expired item counts as absent.
    async fn put_new_items(
        &self,
        items: Vec<(String, String, serde_json::Value)>,
        now_epoch_secs: i64,
    ) -> PortResult<Vec<Option<serde_json::Value>>> {
        let mut found = Vec::with_capacity(items.len());
        for (pk, sk, value) in items {
            let mut outcome = None;
            for _ in 0..8 {
                let condition = match self.get(&pk, &sk).await? {
                    Some(v) if !expired(&v.value, now_epoch_secs) => {
                        outcome = Some(Some(v.value));
                        break;
                    }
                    Some(v) => Condition::VersionIs(v.version),
                    None => Condition::NotExists,
                };
                match self.put(&pk, &sk, value.clone(), condition).await {
                    Ok(_) => {
                        outcome = Some(None);
                        break;
                    }
                    Err(PortError::ConditionFailed { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            found.push(outcome.ok_or_else(|| {
                PortError::transient(format!("inserting {pk}/{sk}"), "lost the race 8 times")
            })?);
        }
        Ok(found)
    }
}

/// Whether an item's TTL attribute (`expires_at`, epoch seconds) has passed.
pub fn expired(value: &serde_json::Value, now_epoch_secs: i64) -> bool {
    value
        .get("expires_at")
        .and_then(serde_json::Value::as_i64)
        .is_some_and(|t| t <= now_epoch_secs)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogPartition {
    pub table: String,
    pub date: NaiveDate,
    /// Where readers find the data: the published run's prefix.
    pub location: String,
}

/// The Glue Data Catalog: one table per dataset, partitioned by date.
#[async_trait]
pub trait Catalog: Send + Sync {
    async fn get_partition(
        &self,
        table: &str,
        date: NaiveDate,
    ) -> PortResult<Option<CatalogPartition>>;
    /// Create the partition or switch its location (UpdatePartition).
    async fn put_partition(&self, partition: CatalogPartition) -> PortResult<()>;
    async fn delete_partition(&self, table: &str, date: NaiveDate) -> PortResult<()>;
    async fn list_partitions(&self, table: &str) -> PortResult<Vec<CatalogPartition>>;

    /// Register many partitions (a backfill, a catalog rebuilt from the
    /// manifests): each created or switched as `put_partition` would.
    async fn put_partitions(&self, partitions: Vec<CatalogPartition>) -> PortResult<()> {
        for p in partitions {
            self.put_partition(p).await?;
        }
        Ok(())
    }
}

/// The state machines a function starts, named as their files in
/// statemachines/ (and their Terraform `state_machine_arns` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workflow {
    /// One pipeline date: clean, validate, publish (object-created, catchup).
    PartitionPipeline,
    /// A feature set's date (started when its sources publish, and daily).
    FeaturePipeline,
    /// A labeling's date (started when its dataset publishes).
    Labeling,
}

impl Workflow {
    pub const ALL: [Workflow; 3] = [
        Workflow::PartitionPipeline,
        Workflow::FeaturePipeline,
        Workflow::Labeling,
    ];

    pub fn file_name(self) -> &'static str {
        match self {
            Workflow::PartitionPipeline => "partition_pipeline",
            Workflow::FeaturePipeline => "feature_pipeline",
            Workflow::Labeling => "labeling",
        }
    }

    /// The key of its input that names what it runs for (`{pipeline |
    /// features | labeling, date, run_id}`).
    pub fn input_key(self) -> &'static str {
        match self {
            Workflow::PartitionPipeline => "pipeline",
            Workflow::FeaturePipeline => "features",
            Workflow::Labeling => "labeling",
        }
    }
}

/// Starting a run (Step Functions StartExecution). The name makes the start
/// idempotent: S3 and EventBridge deliver events at least once.
#[async_trait]
pub trait WorkflowStarter: Send + Sync {
    /// Returns false when an execution with this name already exists.
    async fn start(
        &self,
        workflow: Workflow,
        execution_name: &str,
        input: serde_json::Value,
    ) -> PortResult<bool>;
}

/// The event source mapping that feeds a stream consumer (Lambda's
/// UpdateEventSourceMapping). Disabled, the consumer is not called and its
/// records wait in the stream at its checkpoint; enabled again, delivery
/// resumes from there. `consumer` is the consuming function's name in the
/// function table (e.g. "click-inference").
#[async_trait]
pub trait ConsumerSwitch: Send + Sync {
    async fn set_enabled(&self, consumer: &str, enabled: bool) -> PortResult<()>;
    /// Whether the mapping delivers; `None` when the consumer has none.
    async fn enabled(&self, consumer: &str) -> PortResult<Option<bool>>;
}

/// A Kinesis record as the event source mapping hands it over (what a
/// `StreamProducer` put, read back with its shard and sequence number).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    pub shard_id: String,
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
    pub arrival: DateTime<Utc>,
}

/// Putting records on a Kinesis stream (PutRecords), for replays, tools and
/// tests. Each record lands on the shard its partition key hashes to and
/// gets that shard's next sequence number; the result is in input order,
/// as the consumer will see each record.
#[async_trait]
pub trait StreamProducer: Send + Sync {
    /// `records` are (partition key, data). A record the stream refuses
    /// (too large, empty key) fails the call before anything is sent.
    async fn put_records(&self, records: Vec<(String, Vec<u8>)>) -> PortResult<Vec<StreamRecord>>;
}

/// Kinesis' limits on one record: a partition key of 1 to 256 characters,
/// and key plus data of at most 1 MiB.
pub const MAX_STREAM_RECORD_BYTES: usize = 1 << 20;

/// Refuses records Kinesis would refuse, naming the first one and why, so
/// both producers fail the same way before sending anything.
pub fn check_stream_records(stream: &str, records: &[(String, Vec<u8>)]) -> PortResult<()> {
    for (index, (key, data)) in records.iter().enumerate() {
        let chars = key.chars().count();
        let problem = if chars == 0 || chars > 256 {
            format!("its partition key has {chars} characters; Kinesis takes 1 to 256")
        } else if key.len() + data.len() > MAX_STREAM_RECORD_BYTES {
            format!(
                "key and data are {} bytes; Kinesis takes at most {MAX_STREAM_RECORD_BYTES}",
                key.len() + data.len()
            )
        } else {
            continue;
        };
        return Err(PortError::permanent(
            format!("putting records on stream {stream}"),
            format!("record {index} (partition key {key:?}) cannot be sent: {problem}"),
            "record refused",
        ));
    }
    Ok(())
}

/// Messages to people: approval requests and alerts (SNS on AWS; locally an
/// outbox file in the workspace, echoed on the terminal).
#[async_trait]
pub trait Notifier: Send + Sync {
    /// `topic` names the audience ("approvals", "alerts"); returns a message id.
    async fn notify(&self, topic: &str, subject: &str, message: &str) -> PortResult<String>;
}

/// What is sent for a task token: an answer (SendTaskSuccess /
/// SendTaskFailure) ends the wait; a heartbeat (SendTaskHeartbeat) only
/// says the work behind it is alive, resetting its HeartbeatSeconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskAnswer {
    Success(serde_json::Value),
    Failure { error: String, cause: String },
    Heartbeat,
}

/// Step Functions' task-token API: an approval decision resumes the
/// execution that waits on the token.
#[async_trait]
pub trait TaskCallbacks: Send + Sync {
    async fn answer(&self, token: &str, answer: TaskAnswer) -> PortResult<()>;
}
