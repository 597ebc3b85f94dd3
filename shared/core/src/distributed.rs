//! The distributed clean of a date too large for one function, step by
//! step as the `distributed_clean` state machine runs it (each step one
//! function; the pure parts are in [`crate::clean::distributed`]):
//!
//! 1. [`plan_clean`] lists the run's raw files and picks the path: one
//!    clean function up to the dataset's `scale.max_single_bytes`, above
//!    it a ranges manifest (JSON Lines) under `work/`;
//! 2. [`clean_range`], one per manifest line (a Distributed Map): ranged
//!    GETs of its bytes only, its valid rows into bucket files, its rejects
//!    and a summary;
//! 3. [`check_ranges`]: ranges that did not meet are cleaned again as one
//!    (the state machine loops through 2 for them), until every boundary
//!    holds; then the accepted ranges with their first lines are written;
//! 4. [`resolve_bucket`], one per bucket (a Distributed Map): the dedupe
//!    winners into one Parquet part of the run, and the rejects of its
//!    share of ranges with their lines made the file's;
//! 5. [`finish_clean`]: the counts, equal to the one-function clean's, and
//!    the partition's status.
//!
//! Every step writes its outputs under names of its own, so a retried or
//! redelivered step rewrites the same objects.

use crate::clean::distributed::{
    self as pure, AcceptedRange, Boundaries, CleanItem, PreviousTask, RangeRead, RangeSummary,
    RangeTask,
};
use crate::clean::{CleanError, CleanOptions, CleanPlan, CleanStats};
use crate::config::{DatasetConfig, OutputMode};
use crate::error::{UseCaseError, UseCaseResult};
use crate::layout::{run_prefix, Layer};
use crate::partition::{record_clean_outcome, run_inputs};
use crate::ports::PortError;
use crate::publish::{decode_parquet_footer, parquet_footer, read_manifest, PublishError};
use crate::quality::{tally_unique_shard, unique_values, QualityTally, Tallier};
use crate::services::{dataset, scratch_dir, Services};
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

/// Bytes a range worker fetches past its range's end at first, where its
/// last record usually ends.
const TAIL_BYTES: u64 = 1 << 20;

/// A worker's start and its S3 round trips are worth it from about this
/// much raw data: smaller ranges are batched up to it.
const BATCH_BYTES: u64 = 64 << 20;

/// A byte of published Parquet holds about this many bytes of raw CSV, and
/// of rows in memory: how previous data counts against a worker's limits.
const PARQUET_EXPANSION: u64 = 4;

/// Which path cleans the date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "path", rename_all = "snake_case")]
pub enum CleanRoute {
    /// One clean function, as for every small date.
    Single { raw_bytes: u64, files: u64 },
    /// The distributed clean: the manifest's key (in the data bucket).
    Distributed {
        raw_bytes: u64,
        files: u64,
        manifest: String,
        ranges: u32,
        buckets: u32,
        /// 0..buckets, the items of the resolve map.
        bucket_ids: Vec<u32>,
        /// Ranges one worker cleans (the map's ItemBatcher): small ranges
        /// are batched to about `BATCH_BYTES` of work each.
        ranges_per_worker: u32,
        /// The shards `unique` expectations are counted in (none without
        /// such an expectation): the items of the count-unique map.
        unique_shard_ids: Vec<u32>,
        max_concurrency: u32,
        /// Merge mode: manifest lines that bring the published rows into
        /// the buckets (after the ranges).
        #[serde(default)]
        previous_tasks: u32,
    },
}

/// Where a run's intermediate files go.
pub fn work_prefix(dataset: &str, date: NaiveDate, run_id: &str) -> String {
    run_prefix(Layer::Work, dataset, date, run_id)
}

fn manifest_key(dataset: &str, date: NaiveDate, run_id: &str) -> String {
    format!("{}ranges.jsonl", work_prefix(dataset, date, run_id))
}

fn range_prefix(dataset: &str, date: NaiveDate, run_id: &str, task: &RangeTask) -> String {
    format!(
        "{}ranges/{}/",
        work_prefix(dataset, date, run_id),
        task.id()
    )
}

fn bucket_key(range_prefix: &str, bucket: u32) -> String {
    format!("{range_prefix}bucket-{bucket:04}.arrow")
}

/// Merge mode: the publication the run merges with, and how many previous
/// tasks bring its rows into the buckets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PreviousPlan {
    base_run: String,
    tasks: u32,
}

fn previous_plan_key(dataset: &str, date: NaiveDate, run_id: &str) -> String {
    format!("{}previous.json", work_prefix(dataset, date, run_id))
}

fn previous_bucket_key(
    dataset: &str,
    date: NaiveDate,
    run_id: &str,
    task: u32,
    bucket: u32,
) -> String {
    format!(
        "{}previous/p{task:05}/bucket-{bucket:04}.arrow",
        work_prefix(dataset, date, run_id)
    )
}

async fn read_previous_plan(
    svc: &Services<'_>,
    dataset: &str,
    date: NaiveDate,
    run_id: &str,
) -> UseCaseResult<Option<PreviousPlan>> {
    match read_json(svc, &previous_plan_key(dataset, date, run_id)).await {
        Ok(plan) => Ok(Some(plan)),
        Err(UseCaseError::Port(PortError::NotFound { .. })) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Merge mode: the tasks that bring a published file's rows into the
/// buckets, about `budget` Parquet bytes each (a large file by row groups,
/// read from its footer).
async fn previous_tasks_of(
    svc: &Services<'_>,
    file: &crate::publish::ManifestFile,
    budget: u64,
    next: &mut u32,
) -> UseCaseResult<Vec<PreviousTask>> {
    let spans = if file.size <= budget {
        vec![None]
    } else {
        let (_, footer) = parquet_footer(svc.objects, &file.key, file.size).await?;
        let metadata = decode_parquet_footer(&file.key, &footer)?;
        pure::row_group_spans(&metadata, budget)
            .into_iter()
            .map(Some)
            .collect()
    };
    Ok(spans
        .into_iter()
        .map(|row_groups| {
            let task = PreviousTask {
                previous: *next,
                key: file.key.clone(),
                size: file.size,
                row_groups,
            };
            *next += 1;
            task
        })
        .collect())
}

fn accepted_key(dataset: &str, date: NaiveDate, run_id: &str) -> String {
    format!("{}accepted.json", work_prefix(dataset, date, run_id))
}

fn bucket_result_key(dataset: &str, date: NaiveDate, run_id: &str, bucket: u32) -> String {
    format!(
        "{}buckets/{bucket:04}.json",
        work_prefix(dataset, date, run_id)
    )
}

/// Where the quality tallies of a run's parts go; validate merges them.
pub fn quality_tally_prefix(dataset: &str, date: NaiveDate, run_id: &str) -> String {
    format!("{}quality/", work_prefix(dataset, date, run_id))
}

/// One shard of a `unique` expectation's values, from one source (a bucket
/// or, without a key, a range).
fn unique_key(
    dataset: &str,
    date: NaiveDate,
    run_id: &str,
    expectation: usize,
    shard: u32,
    source: &str,
) -> String {
    format!(
        "{}unique/e{expectation:02}/s{shard:04}/from-{source}.arrow",
        work_prefix(dataset, date, run_id)
    )
}

/// Shards of each `unique` expectation's values: one per bucket, at most 64
/// (each shard worker reads one file from every source).
pub fn unique_shards(buckets: u32) -> u32 {
    buckets.clamp(1, 64)
}

fn has_unique(ds: &DatasetConfig) -> bool {
    ds.expectations
        .iter()
        .any(|e| matches!(e, crate::config::ExpectationConfig::Unique { .. }))
}

fn unique_schema() -> arrow_schema::SchemaRef {
    std::sync::Arc::new(arrow_schema::Schema::new(vec![
        arrow_schema::Field::new("value", arrow_schema::DataType::Utf8, false),
        arrow_schema::Field::new("position", arrow_schema::DataType::UInt64, false),
    ]))
}

/// Tally a part's final rows (row `i` of batch `b` at `positions[b][i]`)
/// and write its tally, and its `unique` values shuffled into shards.
#[allow(clippy::too_many_arguments)]
async fn tally_part(
    svc: &Services<'_>,
    ds: &DatasetConfig,
    dataset_name: &str,
    date: NaiveDate,
    run_id: &str,
    source: &str,
    batches: &[arrow_array::RecordBatch],
    positions: &[Vec<u64>],
    shards: u32,
) -> UseCaseResult<()> {
    let decode = |e: arrow_schema::ArrowError| {
        UseCaseError::Quality(crate::quality::QualityError::Decode {
            path: source.to_string(),
            message: e.to_string(),
        })
    };
    let mut tallier = Tallier::new(ds, false);
    let mut values: std::collections::BTreeMap<usize, Vec<Vec<(String, u64)>>> = Default::default();
    for (batch, positions) in batches.iter().zip(positions) {
        tallier.observe(batch, |i| positions[i]).map_err(decode)?;
        for (e, found) in unique_values(ds, batch, |i| positions[i]).map_err(decode)? {
            let per_shard = values
                .entry(e)
                .or_insert_with(|| vec![Vec::new(); shards as usize]);
            for (value, position) in found {
                let shard = xxhash_rust::xxh3::xxh3_64(value.as_bytes()) % u64::from(shards);
                per_shard[shard as usize].push((value, position));
            }
        }
    }
    svc.objects
        .put_bytes(
            &format!(
                "{}{source}.json",
                quality_tally_prefix(dataset_name, date, run_id)
            ),
            to_json(&tallier.finish(), "encoding a quality tally")?,
        )
        .await?;
    let schema = unique_schema();
    for (e, per_shard) in values {
        for (shard, found) in per_shard.into_iter().enumerate() {
            let batch = arrow_array::RecordBatch::try_new(
                schema.clone(),
                vec![
                    std::sync::Arc::new(arrow_array::StringArray::from_iter_values(
                        found.iter().map(|(v, _)| v.as_str()),
                    )),
                    std::sync::Arc::new(arrow_array::UInt64Array::from_iter_values(
                        found.iter().map(|(_, p)| *p),
                    )),
                ],
            )
            .map_err(decode)?;
            svc.objects
                .put_bytes(
                    &unique_key(dataset_name, date, run_id, e, shard as u32, source),
                    pure::to_ipc(&schema, &[batch])?,
                )
                .await?;
        }
    }
    Ok(())
}

fn bug(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> UseCaseError {
    UseCaseError::Port(PortError::permanent(what.to_string(), "a bug", e))
}

fn to_json<T: Serialize>(value: &T, what: &str) -> UseCaseResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| bug(what, e))
}

async fn read_json<T: for<'de> Deserialize<'de>>(
    svc: &Services<'_>,
    key: &str,
) -> UseCaseResult<T> {
    let body = svc.objects.get_bytes(key).await?;
    serde_json::from_slice(&body).map_err(|e| bug(&format!("decoding {key}"), e))
}

/// Step 1: list the run's raw files and choose the path; for the
/// distributed one, write the ranges manifest. A compressed file larger
/// than one function can clean is refused: it cannot be split.
pub async fn plan_clean(
    svc: &Services<'_>,
    dataset_name: &str,
    date: NaiveDate,
    run_id: &str,
) -> UseCaseResult<CleanRoute> {
    let ds = dataset(svc.config, dataset_name)?;
    let raw = run_inputs(svc, ds, dataset_name, date, run_id).await?;
    let raw_bytes: u64 = raw.iter().map(|o| o.size).sum();
    let files = raw.len() as u64;
    let scale = &ds.scale;
    // A merge also reads the published rows it merges with.
    let previous = if ds.output_mode == OutputMode::Merge {
        read_manifest(svc.objects, dataset_name, date).await?
    } else {
        None
    };
    let previous_bytes: u64 = previous.iter().flat_map(|m| &m.files).map(|f| f.size).sum();
    let work_bytes = raw_bytes.saturating_add(previous_bytes.saturating_mul(PARQUET_EXPANSION));
    if work_bytes <= scale.max_single_bytes {
        return Ok(CleanRoute::Single { raw_bytes, files });
    }
    if let Some(huge) = raw
        .iter()
        .find(|o| pure::is_compressed(&o.key) && o.size > scale.max_single_bytes)
    {
        let refusal = UseCaseError::Clean(CleanError::Input(format!(
            "{}: a gzip file of {} bytes cannot be cut into ranges, and one worker cleans at most {} bytes (scale.max_single_bytes). Have the upstream split it into smaller files, or send plain CSV, which is cut into ranges",
            huge.key, huge.size, scale.max_single_bytes
        )));
        record_clean_outcome(svc, dataset_name, date, run_id, Err(&refusal)).await?;
        return Err(refusal);
    }
    let listing: Vec<(String, u64)> = raw.iter().map(|o| (o.key.clone(), o.size)).collect();
    let tasks = pure::cut_ranges(&listing, scale.range_bytes);
    let ranges = tasks.len() as u32;
    let mut items: Vec<CleanItem> = tasks.into_iter().map(CleanItem::Range).collect();
    let mut previous_tasks = 0u32;
    if let Some(prev) = &previous {
        let budget = (scale.range_bytes / PARQUET_EXPANSION).max(1);
        for f in &prev.files {
            let found = previous_tasks_of(svc, f, budget, &mut previous_tasks).await?;
            items.extend(found.into_iter().map(CleanItem::Previous));
        }
        let plan = PreviousPlan {
            base_run: prev.run_id.clone(),
            tasks: previous_tasks,
        };
        svc.objects
            .put_bytes(
                &previous_plan_key(dataset_name, date, run_id),
                to_json(&plan, "encoding the previous plan")?,
            )
            .await?;
    }
    if ds.output_mode == OutputMode::Merge {
        // The buckets merge: the run's parts are final, and stay right only
        // while the publication they merged with is the published one.
        let base_run = previous.as_ref().map(|p| p.run_id.clone());
        crate::state::update_partition(svc.state, dataset_name, date, |s| {
            if let Some(sources) = s.sources.as_mut() {
                sources.base_run = base_run.clone();
                sources.merged_in_clean = true;
            }
        })
        .await?;
    }
    let mut manifest = Vec::new();
    for item in &items {
        manifest.extend(to_json(item, "encoding a range")?);
        manifest.push(b'\n');
    }
    let key = manifest_key(dataset_name, date, run_id);
    svc.objects.put_bytes(&key, manifest).await?;
    let buckets = scale.buckets_for(work_bytes);
    Ok(CleanRoute::Distributed {
        raw_bytes,
        files,
        manifest: key,
        ranges,
        buckets,
        bucket_ids: (0..buckets).collect(),
        ranges_per_worker: (BATCH_BYTES / scale.range_bytes.max(1)).clamp(1, 1000) as u32,
        unique_shard_ids: if has_unique(ds) {
            (0..unique_shards(buckets)).collect()
        } else {
            vec![]
        },
        max_concurrency: scale.max_concurrency,
        previous_tasks,
    })
}

fn compile(ds: &DatasetConfig) -> UseCaseResult<CleanPlan> {
    Ok(CleanPlan::compile(ds).map_err(CleanError::Plan)?)
}

fn keyed(ds: &DatasetConfig) -> bool {
    !ds.key.is_empty()
}

/// Step 2: clean one range from ranged reads of its bytes. Its valid rows
/// go to bucket files (a dataset without a key writes its final part
/// directly), its rejects to a rejects file, and its summary last, so a
/// summary is there only when everything it describes is.
pub async fn clean_range(
    svc: &Services<'_>,
    dataset_name: &str,
    date: NaiveDate,
    run_id: &str,
    task: &RangeTask,
    buckets: u32,
) -> UseCaseResult<RangeSummary> {
    let ds = dataset(svc.config, dataset_name)?;
    let plan = compile(ds)?;
    let scratch = scratch_dir(svc.scratch)?;
    let local = scratch.path().join("range");
    let (from, mut to) = task.fetch_span(TAIL_BYTES);
    // A range at the file's start fetches its header with its bytes.
    let header = if task.compressed || from == 0 {
        Vec::new()
    } else {
        let header_len = pure::HEADER_PROBE_BYTES.min(task.size);
        svc.objects.get_range(&task.key, 0, header_len).await?
    };
    let mut body = svc.objects.get_range(&task.key, from, to - from).await?;
    let opts = CleanOptions::default();
    // A merge buckets rows by their key's stored values, the key it
    // matches previous rows on (see `bucket_by_values`).
    let by_values = keyed(ds) && ds.output_mode == OutputMode::Merge;
    let shards = match (keyed(ds), by_values) {
        (false, _) => 0,
        (true, true) => 1,
        (true, false) => buckets.max(1),
    };
    let mut cleaned = loop {
        pure::write_local_copy(&local, &header, &body, from).map_err(|source| {
            UseCaseError::Scratch {
                path: local.display().to_string(),
                source,
            }
        })?;
        match pure::clean_range(&plan, task, &local, (from, to), shards, &opts)? {
            RangeRead::Cleaned(c) => break c,
            RangeRead::NeedBytes { through } => {
                // A record runs on past what was fetched.
                let more = svc.objects.get_range(&task.key, to, through - to).await?;
                if more.is_empty() {
                    return Err(bug(
                        "reading a range",
                        std::io::Error::other(format!("{} ended before its listed size", task.key)),
                    ));
                }
                to += more.len() as u64;
                body.extend(more);
            }
        }
    };
    drop(body);
    if by_values {
        let rows: Vec<_> = cleaned.buckets.drain(..).flatten().collect();
        cleaned.buckets = pure::bucket_by_values(&rows, &ds.key, buckets)?;
    }
    let prefix = range_prefix(dataset_name, date, run_id, task);
    if keyed(ds) {
        let schema = pure::bucket_schema(&plan);
        for (b, batches) in cleaned.buckets.iter().enumerate() {
            svc.objects
                .put_bytes(
                    &bucket_key(&prefix, b as u32),
                    pure::to_ipc(&schema, batches)?,
                )
                .await?;
        }
    } else if cleaned.summary.failure.is_none() {
        let kept: Vec<_> = cleaned.buckets.iter().flatten().cloned().collect();
        let part = scratch.path().join("part.parquet");
        write_parquet(&part, plan.kept_schema(), &kept)?;
        svc.objects
            .put_file(&range_part_key(dataset_name, date, run_id, task), &part)
            .await?;
        // Final rows: tallied here, at their positions in the input.
        let mut next = 0u64;
        let positions: Vec<Vec<u64>> = kept
            .iter()
            .map(|b| {
                let first = next;
                next += b.num_rows() as u64;
                (first..next)
                    .map(|i| crate::clean::distributed::position(task.range, i))
                    .collect()
            })
            .collect();
        tally_part(
            svc,
            ds,
            dataset_name,
            date,
            run_id,
            &format!("r{}", task.id()),
            &kept,
            &positions,
            unique_shards(buckets),
        )
        .await?;
    }
    let reject_schema = crate::clean::reject_schema(&plan);
    svc.objects
        .put_bytes(
            &format!("{prefix}rejects.arrow"),
            pure::to_ipc(&reject_schema, &cleaned.rejects)?,
        )
        .await?;
    svc.objects
        .put_bytes(
            &format!("{prefix}summary.json"),
            to_json(&cleaned.summary, "encoding a range summary")?,
        )
        .await?;
    Ok(cleaned.summary)
}

/// Merge mode: bring the rows of a published file (or of some of its row
/// groups) into the run's buckets, by their key's stored values. Fetches
/// only the task's row groups and the file's footer.
pub async fn scatter_previous(
    svc: &Services<'_>,
    dataset_name: &str,
    date: NaiveDate,
    run_id: &str,
    task: &PreviousTask,
    buckets: u32,
) -> UseCaseResult<()> {
    let ds = dataset(svc.config, dataset_name)?;
    let plan = compile(ds)?;
    let scratch = scratch_dir(svc.scratch)?;
    let local = scratch.path().join("previous.parquet");
    let fetched = match task.row_groups {
        None => svc.objects.get_to_file(&task.key, &local).await.map(|_| ()),
        Some(span) => {
            let footer = parquet_footer(svc.objects, &task.key, task.size).await;
            let body = svc
                .objects
                .get_range(&task.key, span.start, span.end - span.start)
                .await;
            match (footer, body) {
                (Ok((at, footer)), Ok(body)) => {
                    pure::write_sparse(&local, &[(span.start, &body), (at, &footer)]).map_err(
                        |source| UseCaseError::Scratch {
                            path: local.display().to_string(),
                            source,
                        },
                    )?;
                    Ok(())
                }
                (Err(PublishError::Port(e)), _) | (_, Err(e)) => Err(e),
                (Err(e), _) => return Err(e.into()),
            }
        }
    };
    if let Err(e) = fetched {
        if !matches!(e, PortError::NotFound { .. }) {
            return Err(e.into());
        }
        // Only a newer publication (and retention after it) removes a
        // published file: this run's merge is out of date.
        let planned = read_previous_plan(svc, dataset_name, date, run_id).await?;
        let current = read_manifest(svc.objects, dataset_name, date).await?;
        return Err(PublishError::Superseded {
            dataset: dataset_name.to_string(),
            date,
            planned_against: planned.map(|p| p.base_run),
            published: current.map(|m| m.run_id),
        }
        .into());
    }
    let kept_schema = plan.kept_schema();
    let rows =
        pure::read_row_groups(&local, task.row_groups, &kept_schema, &task.key).map_err(|e| {
            PublishError::Merge {
                dataset: dataset_name.to_string(),
                date,
                message: e.to_string(),
            }
        })?;
    for (b, batches) in pure::bucket_by_values(&rows, &ds.key, buckets)?
        .iter()
        .enumerate()
    {
        svc.objects
            .put_bytes(
                &previous_bucket_key(dataset_name, date, run_id, task.previous, b as u32),
                pure::to_ipc(&kept_schema, batches)?,
            )
            .await?;
    }
    Ok(())
}

/// A dataset without a key: a range's rows are final, one part per range.
fn range_part_key(dataset: &str, date: NaiveDate, run_id: &str, task: &RangeTask) -> String {
    format!(
        "{}part-r{}.parquet",
        run_prefix(Layer::Cleaned, dataset, date, run_id),
        task.id()
    )
}

fn write_parquet(
    path: &std::path::Path,
    schema: arrow_schema::SchemaRef,
    batches: &[arrow_array::RecordBatch],
) -> UseCaseResult<()> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let parquet = |source| CleanError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(|source| CleanError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(parquet)?;
    for b in batches {
        writer.write(b).map_err(parquet)?;
    }
    writer.close().map_err(parquet)?;
    Ok(())
}

/// What the boundary check says to the state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeCheck {
    pub done: bool,
    /// Merged ranges to clean again before checking once more.
    pub reclean: Vec<RangeTask>,
}

/// The accepted ranges and their counts before dedupe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Accepted {
    ranges: Vec<AcceptedRange>,
    stats: CleanStats,
}

/// Step 3: check that every range ended where the next began. Misaligned
/// ones come back to be cleaned again as one; once all hold, the accepted
/// ranges are written for the buckets. An input error at a trusted place
/// fails the clean as the one-function clean would.
pub async fn check_ranges(
    svc: &Services<'_>,
    dataset_name: &str,
    date: NaiveDate,
    run_id: &str,
    planned: u32,
) -> UseCaseResult<RangeCheck> {
    let ds = dataset(svc.config, dataset_name)?;
    let ranges = format!("{}ranges/", work_prefix(dataset_name, date, run_id));
    let mut summaries = Vec::new();
    for o in svc.objects.list(&ranges).await? {
        if o.key.ends_with("/summary.json") {
            summaries.push(read_json::<RangeSummary>(svc, &o.key).await?);
        }
    }
    match pure::check_boundaries(&summaries, planned) {
        Boundaries::Reclean(tasks) => Ok(RangeCheck {
            done: false,
            reclean: tasks,
        }),
        Boundaries::Failed(e) => {
            let e = UseCaseError::Clean(e);
            record_clean_outcome(svc, dataset_name, date, run_id, Err(&e)).await?;
            Err(e)
        }
        Boundaries::Accepted { ranges, stats } => {
            if !keyed(ds) {
                // Parts of ranges a merged range replaced are not the run's.
                let current: Vec<String> = ranges
                    .iter()
                    .map(|a| range_part_key(dataset_name, date, run_id, &a.task))
                    .collect();
                let staged = svc
                    .objects
                    .list(&run_prefix(Layer::Cleaned, dataset_name, date, run_id))
                    .await?;
                for o in staged.iter().filter(|o| !current.contains(&o.key)) {
                    svc.objects.delete(&o.key).await?;
                }
                let tallies: Vec<String> = ranges
                    .iter()
                    .map(|a| {
                        format!(
                            "{}r{}.json",
                            quality_tally_prefix(dataset_name, date, run_id),
                            a.task.id()
                        )
                    })
                    .collect();
                let written = svc
                    .objects
                    .list(&quality_tally_prefix(dataset_name, date, run_id))
                    .await?;
                for o in written.iter().filter(|o| !tallies.contains(&o.key)) {
                    svc.objects.delete(&o.key).await?;
                }
            }
            let accepted = Accepted { ranges, stats };
            svc.objects
                .put_bytes(
                    &accepted_key(dataset_name, date, run_id),
                    to_json(&accepted, "encoding the accepted ranges")?,
                )
                .await?;
            Ok(RangeCheck {
                done: true,
                reclean: vec![],
            })
        }
    }
}

/// What one bucket worker reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketResult {
    pub bucket: u32,
    pub kept: u64,
    pub duplicates: u64,
    /// Merge mode: previous rows the bucket's part keeps beside its new ones.
    #[serde(default)]
    pub previous_kept: u64,
}

/// Step 4: resolve one bucket into one Parquet part of the run, and write
/// the rejects of the ranges that fall to it (every `buckets`-th) with
/// their lines made the file's.
pub async fn resolve_bucket(
    svc: &Services<'_>,
    dataset_name: &str,
    date: NaiveDate,
    run_id: &str,
    bucket: u32,
    buckets: u32,
) -> UseCaseResult<BucketResult> {
    let ds = dataset(svc.config, dataset_name)?;
    let plan = compile(ds)?;
    let accepted: Accepted = read_json(svc, &accepted_key(dataset_name, date, run_id)).await?;
    let scratch = scratch_dir(svc.scratch)?;
    let mut result = BucketResult {
        bucket,
        kept: 0,
        duplicates: 0,
        previous_kept: 0,
    };
    if keyed(ds) {
        let mut batches = Vec::new();
        for a in &accepted.ranges {
            let key = bucket_key(&range_prefix(dataset_name, date, run_id, &a.task), bucket);
            batches.extend(pure::from_ipc(svc.objects.get_bytes(&key).await?, &key)?);
        }
        let resolved = pure::resolve_bucket(&plan, &batches)?;
        drop(batches);
        result.duplicates = resolved.duplicates;
        result.kept = resolved.kept.iter().map(|b| b.num_rows() as u64).sum();
        // A merge: the previous rows of the bucket no new row replaces go
        // into the same part.
        let mut part_rows = Vec::new();
        if ds.output_mode == OutputMode::Merge {
            if let Some(previous) = read_previous_plan(svc, dataset_name, date, run_id).await? {
                let mut rows = Vec::new();
                for t in 0..previous.tasks {
                    let key = previous_bucket_key(dataset_name, date, run_id, t, bucket);
                    rows.extend(pure::from_ipc(svc.objects.get_bytes(&key).await?, &key)?);
                }
                let (kept, n) = pure::previous_rows_kept(&resolved.kept, &rows, &ds.key)?;
                result.previous_kept = n;
                part_rows = kept;
            }
        }
        part_rows.extend(resolved.kept.iter().cloned());
        let part = scratch.path().join("part.parquet");
        write_parquet(&part, plan.kept_schema(), &part_rows)?;
        drop(part_rows);
        let key = format!(
            "{}part-b{bucket:04}.parquet",
            run_prefix(Layer::Cleaned, dataset_name, date, run_id)
        );
        svc.objects.put_file(&key, &part).await?;
        let positions: Vec<Vec<u64>> = resolved
            .positions
            .iter()
            .map(|p| p.values().to_vec())
            .collect();
        tally_part(
            svc,
            ds,
            dataset_name,
            date,
            run_id,
            &format!("b{bucket:04}"),
            &resolved.kept,
            &positions,
            unique_shards(buckets),
        )
        .await?;
    }
    let reject_schema = crate::clean::reject_schema(&plan);
    for (i, a) in accepted.ranges.iter().enumerate() {
        if i as u32 % buckets.max(1) != bucket {
            continue;
        }
        let key = format!(
            "{}rejects.arrow",
            range_prefix(dataset_name, date, run_id, &a.task)
        );
        let rejects = pure::from_ipc(svc.objects.get_bytes(&key).await?, &key)?;
        if rejects.is_empty() {
            continue;
        }
        let shifted = pure::absolute_rejects(&rejects, a.first_line, true);
        let part = scratch.path().join("rejects.parquet");
        write_parquet(&part, reject_schema.clone(), &shifted)?;
        svc.objects
            .put_file(
                &format!(
                    "{}rejects-r{}.parquet",
                    run_prefix(Layer::Rejects, dataset_name, date, run_id),
                    a.task.id()
                ),
                &part,
            )
            .await?;
    }
    svc.objects
        .put_bytes(
            &bucket_result_key(dataset_name, date, run_id, bucket),
            to_json(&result, "encoding a bucket result")?,
        )
        .await?;
    Ok(result)
}

/// Step 4b (datasets with `unique` expectations): count one shard of each
/// such expectation's values, gathered from every source, in input order.
pub async fn count_unique(
    svc: &Services<'_>,
    dataset_name: &str,
    date: NaiveDate,
    run_id: &str,
    shard: u32,
    buckets: u32,
) -> UseCaseResult<QualityTally> {
    let ds = dataset(svc.config, dataset_name)?;
    let sources: Vec<String> = if keyed(ds) {
        (0..buckets.max(1)).map(|b| format!("b{b:04}")).collect()
    } else {
        let accepted: Accepted = read_json(svc, &accepted_key(dataset_name, date, run_id)).await?;
        accepted
            .ranges
            .iter()
            .map(|a| format!("r{}", a.task.id()))
            .collect()
    };
    let mut tally = QualityTally::empty(ds);
    for (e, config) in ds.expectations.iter().enumerate() {
        if !matches!(config, crate::config::ExpectationConfig::Unique { .. }) {
            continue;
        }
        let mut values = Vec::new();
        for source in &sources {
            let key = unique_key(dataset_name, date, run_id, e, shard, source);
            let bytes = match svc.objects.get_bytes(&key).await {
                Ok(bytes) => bytes,
                // A part with no rows wrote no values.
                Err(PortError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            for batch in pure::from_ipc(bytes, &key)? {
                let (Some(v), Some(p)) = (
                    batch
                        .column(0)
                        .as_any()
                        .downcast_ref::<arrow_array::StringArray>(),
                    batch
                        .column(1)
                        .as_any()
                        .downcast_ref::<arrow_array::UInt64Array>(),
                ) else {
                    return Err(bug(
                        &format!("reading {key}"),
                        std::io::Error::other("not a unique-values file"),
                    ));
                };
                values.extend((0..batch.num_rows()).map(|i| (v.value(i).to_string(), p.value(i))));
            }
        }
        tally.expectations[e] = tally_unique_shard(values);
    }
    svc.objects
        .put_bytes(
            &format!(
                "{}u{shard:04}.json",
                quality_tally_prefix(dataset_name, date, run_id)
            ),
            to_json(&tally, "encoding a quality tally")?,
        )
        .await?;
    Ok(tally)
}

/// Every part's quality tally of a run merged, or None when the run wrote
/// none (cleaned before tallies were written).
pub async fn merged_quality_tally(
    svc: &Services<'_>,
    ds: &DatasetConfig,
    dataset_name: &str,
    date: NaiveDate,
    run_id: &str,
) -> UseCaseResult<Option<QualityTally>> {
    let parts = svc
        .objects
        .list(&quality_tally_prefix(dataset_name, date, run_id))
        .await?;
    if parts.is_empty() {
        return Ok(None);
    }
    let mut merged = QualityTally::empty(ds);
    for o in parts {
        merged.merge(&read_json::<QualityTally>(svc, &o.key).await?);
    }
    Ok(Some(merged))
}

/// Step 5: the date's counts from the accepted ranges and the buckets,
/// recorded as the one-function clean records them.
pub async fn finish_clean(
    svc: &Services<'_>,
    dataset_name: &str,
    date: NaiveDate,
    run_id: &str,
    buckets: u32,
) -> UseCaseResult<crate::partition::CleanSummary> {
    let ds = dataset(svc.config, dataset_name)?;
    let accepted: Accepted = read_json(svc, &accepted_key(dataset_name, date, run_id)).await?;
    let mut stats = accepted.stats;
    if keyed(ds) {
        for b in 0..buckets.max(1) {
            let r: BucketResult =
                read_json(svc, &bucket_result_key(dataset_name, date, run_id, b)).await?;
            stats.duplicates += r.duplicates;
        }
        stats.kept -= stats.duplicates.min(stats.kept);
    }

    if !stats.balanced() {
        let e = UseCaseError::Clean(CleanError::Plan(format!(
            "the distributed clean's counts do not add up: {stats:?}"
        )));
        record_clean_outcome(svc, dataset_name, date, run_id, Err(&e)).await?;
        return Err(e);
    }
    record_clean_outcome(svc, dataset_name, date, run_id, Ok(&stats)).await?;
    Ok(crate::partition::CleanSummary {
        dataset: dataset_name.to_string(),
        date,
        run_id: run_id.to_string(),
        stats,
        cleaned_key: run_prefix(Layer::Cleaned, dataset_name, date, run_id),
        rejects_key: run_prefix(Layer::Rejects, dataset_name, date, run_id),
    })
}
