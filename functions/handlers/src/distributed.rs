//! The distributed clean's steps (statemachines/distributed_clean.asl.json):
//! plan-clean picks the path for a dataset's date; clean-range,
//! check-ranges, resolve-bucket, count-unique and finish-clean run a large
//! one.

use crate::error::HandlerError;
use crate::partition::DatasetInput;
use crate::wire::{decode, encode};
use serde::Deserialize;
use serde_json::Value;
use tributary_core::clean::distributed::CleanItem;
use tributary_core::distributed;
use tributary_core::services::Services;

pub async fn plan_clean(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: DatasetInput = decode(event, "{dataset, date, run_id}")?;
    encode(&distributed::plan_clean(svc, &i.dataset, i.date, &i.run_id).await?)
}

/// One line of the ranges manifest, with the run it belongs to.
#[derive(Debug, Deserialize)]
struct RangeInput {
    #[serde(flatten)]
    run: DatasetInput,
    range: CleanItem,
    buckets: u32,
}

/// A batch of ranges from the manifest (the Distributed Map's ItemBatcher:
/// `{"Items": [ranges], "BatchInput": {dataset, date, run_id, buckets}}`),
/// small ranges batched so a worker gets enough to do.
#[derive(Debug, Deserialize)]
struct RangeBatch {
    #[serde(rename = "Items")]
    items: Vec<CleanItem>,
    #[serde(rename = "BatchInput")]
    run: BatchRun,
}

#[derive(Debug, Deserialize)]
struct BatchRun {
    #[serde(flatten)]
    run: DatasetInput,
    buckets: u32,
}

/// A batch of manifest lines (ranges, and in merge mode the published
/// rows to bring into the buckets), or one range (a merged range cleaned
/// again).
pub async fn clean_range(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let items: Vec<RangeInput> = if event.get("Items").is_some() {
        let batch: RangeBatch = decode(
            event,
            "{Items: [ranges], BatchInput: {dataset, date, run_id, buckets}}",
        )?;
        batch
            .items
            .into_iter()
            .map(|range| RangeInput {
                run: DatasetInput {
                    dataset: batch.run.run.dataset.clone(),
                    date: batch.run.run.date,
                    run_id: batch.run.run.run_id.clone(),
                },
                range,
                buckets: batch.run.buckets,
            })
            .collect()
    } else {
        vec![decode(event, "{dataset, date, run_id, range, buckets}")?]
    };
    let mut ranges = Vec::with_capacity(items.len());
    for i in &items {
        let (dataset, date, run_id) = (&i.run.dataset, i.run.date, &i.run.run_id);
        match &i.range {
            CleanItem::Range(range) => {
                let summary =
                    distributed::clean_range(svc, dataset, date, run_id, range, i.buckets).await?;
                ranges.push(summary.task.id());
            }
            CleanItem::Previous(task) => {
                distributed::scatter_previous(svc, dataset, date, run_id, task, i.buckets).await?;
                ranges.push(task.id());
            }
        }
    }
    // The summaries are in S3 for check-ranges; the map's result stays small.
    encode(&serde_json::json!({ "ranges": ranges }))
}

#[derive(Debug, Deserialize)]
struct CheckInput {
    #[serde(flatten)]
    run: DatasetInput,
    ranges: u32,
}

pub async fn check_ranges(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: CheckInput = decode(event, "{dataset, date, run_id, ranges}")?;
    encode(
        &distributed::check_ranges(svc, &i.run.dataset, i.run.date, &i.run.run_id, i.ranges)
            .await?,
    )
}

#[derive(Debug, Deserialize)]
struct BucketInput {
    #[serde(flatten)]
    run: DatasetInput,
    bucket: u32,
    buckets: u32,
}

pub async fn resolve_bucket(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: BucketInput = decode(event, "{dataset, date, run_id, bucket, buckets}")?;
    encode(
        &distributed::resolve_bucket(
            svc,
            &i.run.dataset,
            i.run.date,
            &i.run.run_id,
            i.bucket,
            i.buckets,
        )
        .await?,
    )
}

#[derive(Debug, Deserialize)]
struct UniqueInput {
    #[serde(flatten)]
    run: DatasetInput,
    shard: u32,
    buckets: u32,
}

pub async fn count_unique(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: UniqueInput = decode(event, "{dataset, date, run_id, shard, buckets}")?;
    let tally = distributed::count_unique(
        svc,
        &i.run.dataset,
        i.run.date,
        &i.run.run_id,
        i.shard,
        i.buckets,
    )
    .await?;
    // The tally is in S3 for validate; the map's result stays small.
    let unexpected: u64 = tally.expectations.iter().map(|e| e.unexpected).sum();
    encode(&serde_json::json!({"shard": i.shard, "unexpected": unexpected}))
}

#[derive(Debug, Deserialize)]
struct FinishInput {
    #[serde(flatten)]
    run: DatasetInput,
    buckets: u32,
}

pub async fn finish_clean(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: FinishInput = decode(event, "{dataset, date, run_id, buckets}")?;
    encode(
        &distributed::finish_clean(svc, &i.run.dataset, i.run.date, &i.run.run_id, i.buckets)
            .await?,
    )
}
