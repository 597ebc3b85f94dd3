//! Typed records over the state store: partition status and watermarks. All
//! read-modify-write goes through `update`, an optimistic-concurrency loop on
//! the item's version, so concurrent writers never lose each other's change.

use crate::ports::{Condition, PortError, PortResult, StateStore};
use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

const MAX_ATTEMPTS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum PartitionState {
    Arrived,
    Running,
    Cleaned,
    Validated,
    /// Quality below threshold: waiting for a human decision.
    Held,
    Published,
    Failed,
    /// Held, then rejected by a person or not decided in time: kept under
    /// its run prefix for inspection, never published.
    Quarantined,
    Expired,
}

impl PartitionState {
    pub fn name(self) -> &'static str {
        match self {
            PartitionState::Arrived => "arrived",
            PartitionState::Running => "running",
            PartitionState::Cleaned => "cleaned",
            PartitionState::Validated => "validated",
            PartitionState::Held => "held",
            PartitionState::Published => "published",
            PartitionState::Failed => "failed",
            PartitionState::Quarantined => "quarantined",
            PartitionState::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrivedFile {
    pub key: String,
    pub etag: String,
    pub size: u64,
    /// When its event was recorded (absent on records of older versions):
    /// `complete_when = "quiet"` measures from the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrived_at: Option<DateTime<Utc>>,
}

impl ArrivedFile {
    /// The same object version: a re-delivered event, whenever it came.
    pub fn same_version(&self, other: &ArrivedFile) -> bool {
        self.key == other.key && self.etag == other.etag && self.size == other.size
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionStatus {
    pub dataset: String,
    pub date: NaiveDate,
    pub state: PartitionState,
    /// Data files of the date.
    pub files: Vec<ArrivedFile>,
    /// Marker files (`_SUCCESS`, names starting with `_` or `.`): recorded,
    /// never cleaned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub markers: Vec<ArrivedFile>,
    pub run_id: Option<String>,
    pub published_run: Option<String>,
    pub clean: Option<crate::clean::CleanStats>,
    pub quality_score: Option<f64>,
    pub quality_passed: Option<bool>,
    pub error: Option<String>,
    /// Set by the clean of the current run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<crate::publish::RunSources>,
    /// When the current run's clean began (its duration is reported from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_started_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl PartitionStatus {
    pub fn new(dataset: &str, date: NaiveDate) -> PartitionStatus {
        PartitionStatus {
            dataset: dataset.to_string(),
            date,
            state: PartitionState::Arrived,
            files: vec![],
            markers: vec![],
            run_id: None,
            published_run: None,
            clean: None,
            quality_score: None,
            quality_passed: None,
            error: None,
            sources: None,
            run_started_at: None,
            updated_at: Utc::now(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkChange {
    pub date: NaiveDate,
    pub at: DateTime<Utc>,
    pub by: String,
    pub reason: String,
}

/// The last date up to which a pipeline is complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub pipeline: String,
    pub date: NaiveDate,
    pub updated_at: DateTime<Utc>,
    /// Operator moves, newest last (automatic advances are not listed).
    #[serde(default)]
    pub manual_changes: Vec<WatermarkChange>,
}

pub fn partition_pk(dataset: &str) -> String {
    format!("partition#{dataset}")
}
pub const WATERMARK_PK: &str = "watermark";

pub fn decode<T: DeserializeOwned>(what: &str, v: serde_json::Value) -> PortResult<T> {
    serde_json::from_value(v).map_err(|e| {
        PortError::permanent(
            format!("decoding {what}"),
            "the stored item does not match this version's schema",
            e,
        )
    })
}

pub fn encode<T: Serialize>(what: &str, v: &T) -> PortResult<serde_json::Value> {
    serde_json::to_value(v)
        .map_err(|e| PortError::permanent(format!("encoding {what}"), "a bug", e))
}

pub async fn get_typed<T: DeserializeOwned>(
    store: &dyn StateStore,
    pk: &str,
    sk: &str,
) -> PortResult<Option<T>> {
    match store.get(pk, sk).await? {
        Some(v) => Ok(Some(decode(&format!("{pk}/{sk}"), v.value)?)),
        None => Ok(None),
    }
}

/// Read-modify-write with optimistic concurrency: `change` sees the current
/// value (or None) and returns the new one, or None to leave it unchanged.
/// Retried on a lost race; the final value is returned.
pub async fn update<T, F>(
    store: &dyn StateStore,
    pk: &str,
    sk: &str,
    mut change: F,
) -> PortResult<Option<T>>
where
    T: Serialize + DeserializeOwned + Clone,
    F: FnMut(Option<T>) -> Option<T>,
{
    let what = format!("{pk}/{sk}");
    for _ in 0..MAX_ATTEMPTS {
        let current = store.get(pk, sk).await?;
        let (value, condition) = match current {
            Some(v) => (
                Some(decode::<T>(&what, v.value)?),
                Condition::VersionIs(v.version),
            ),
            None => (None, Condition::NotExists),
        };
        let Some(new) = change(value.clone()) else {
            return Ok(value);
        };
        match store.put(pk, sk, encode(&what, &new)?, condition).await {
            Ok(_) => return Ok(Some(new)),
            Err(PortError::ConditionFailed { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(PortError::transient(
        format!("updating {what}"),
        format!("lost the race {MAX_ATTEMPTS} times in a row"),
    ))
}

pub async fn partition_status(
    store: &dyn StateStore,
    dataset: &str,
    date: NaiveDate,
) -> PortResult<Option<PartitionStatus>> {
    get_typed(store, &partition_pk(dataset), &date.to_string()).await
}

pub async fn update_partition<F>(
    store: &dyn StateStore,
    dataset: &str,
    date: NaiveDate,
    mut change: F,
) -> PortResult<PartitionStatus>
where
    F: FnMut(&mut PartitionStatus),
{
    let updated = update(
        store,
        &partition_pk(dataset),
        &date.to_string(),
        |current: Option<PartitionStatus>| {
            let mut s = current.unwrap_or_else(|| PartitionStatus::new(dataset, date));
            change(&mut s);
            s.updated_at = Utc::now();
            Some(s)
        },
    )
    .await?;
    Ok(updated.unwrap_or_else(|| PartitionStatus::new(dataset, date)))
}

pub async fn all_partitions(
    store: &dyn StateStore,
    dataset: &str,
) -> PortResult<Vec<PartitionStatus>> {
    let pk = partition_pk(dataset);
    store
        .query(&pk)
        .await?
        .into_iter()
        .map(|(sk, v)| decode(&format!("{pk}/{sk}"), v.value))
        .collect()
}

pub async fn watermark(store: &dyn StateStore, pipeline: &str) -> PortResult<Option<Watermark>> {
    get_typed(store, WATERMARK_PK, pipeline).await
}

/// Move a watermark forward to `date`; never backwards. Returns the
/// watermark after the call.
pub async fn advance_watermark(
    store: &dyn StateStore,
    pipeline: &str,
    date: NaiveDate,
) -> PortResult<Option<Watermark>> {
    update(
        store,
        WATERMARK_PK,
        pipeline,
        |current: Option<Watermark>| match current {
            Some(w) if w.date >= date => None,
            Some(mut w) => {
                w.date = date;
                w.updated_at = Utc::now();
                Some(w)
            }
            None => Some(Watermark {
                pipeline: pipeline.to_string(),
                date,
                updated_at: Utc::now(),
                manual_changes: vec![],
            }),
        },
    )
    .await
}

/// An operator moving a watermark on purpose, in either direction.
pub async fn set_watermark(
    store: &dyn StateStore,
    pipeline: &str,
    date: NaiveDate,
    by: &str,
    reason: &str,
) -> PortResult<Watermark> {
    let now = Utc::now();
    let change = WatermarkChange {
        date,
        at: now,
        by: by.to_string(),
        reason: reason.to_string(),
    };
    let w = update(
        store,
        WATERMARK_PK,
        pipeline,
        |current: Option<Watermark>| {
            let mut w = current.unwrap_or_else(|| Watermark {
                pipeline: pipeline.to_string(),
                date,
                updated_at: now,
                manual_changes: vec![],
            });
            w.date = date;
            w.updated_at = now;
            w.manual_changes.push(change.clone());
            Some(w)
        },
    )
    .await?;
    w.ok_or_else(|| PortError::transient("setting watermark", "no value after update"))
}
