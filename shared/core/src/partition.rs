//! The batch partition's use cases, written once over the ports: an
//! arrival recorded and the runs it makes ready, clean, validate, publish
//! and the watermark. The same code runs in a Lambda with AWS adapters and
//! in `tributary` with embedded ones.

use crate::clean::{clean_files, CleanError, CleanInput, CleanOptions, CleanPlan, CleanStats};
use crate::config::{is_marker_name, Completion, DatasetConfig, OutputMode};
use crate::error::{UseCaseError, UseCaseResult};
use crate::layout::{
    file_name, partition_prefix, quality_report_key, KeyError, Layer, PartitionKey,
};
use crate::ports::{CatalogPartition, PortError, Workflow};
use crate::publish::{
    plan_append, publish_run, read_manifest, Manifest, PublishRequest, RunSources, SourceFile,
};
use crate::quality::{evaluate_files, score, QualityReport};
use crate::services::{dataset, pipeline_config, scratch_dir, Services};
use crate::state::{self, ArrivedFile, PartitionState, PartitionStatus};
use chrono::{Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

// ---------------------------------------------------------------- arrival

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StartedRun {
    pub pipeline: String,
    pub date: NaiveDate,
    pub run_id: String,
    pub execution_name: String,
    /// False when S3 re-delivered an event and the run already exists.
    pub newly_started: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ArrivalOutcome {
    Recorded {
        dataset: String,
        date: NaiveDate,
        key: String,
        /// Pipelines whose every dataset has now arrived for the date.
        started: Vec<StartedRun>,
        /// Pipelines still waiting, with the datasets they wait for.
        waiting: BTreeMap<String, Vec<String>>,
    },
    /// Not a raw-layer object (a too-broad notification): nothing to do.
    Ignored { key: String, reason: String },
}

/// An object arrived under raw/: record it, and start the run of every
/// pipeline for which the date is now data_ready.
pub async fn on_object_created(
    svc: &Services<'_>,
    encoded_key: &str,
    etag: &str,
    size: u64,
) -> UseCaseResult<ArrivalOutcome> {
    let key = PartitionKey::from_event_key(encoded_key)?;
    if key.layer != Layer::Raw {
        return Ok(ArrivalOutcome::Ignored {
            key: key.to_key(),
            reason: format!("only raw/ arrivals start pipelines; this is {}/", key.layer),
        });
    }
    dataset(svc.config, &key.name).map_err(|_| KeyError::UnknownDataset {
        key: key.to_key(),
        dataset: key.name.clone(),
        known: svc.config.dataset_names(),
    })?;
    let full_key = key.to_key();
    let now = Utc::now();
    let file = ArrivedFile {
        key: full_key.clone(),
        etag: etag.trim_matches('"').to_string(),
        size,
        arrived_at: Some(now),
    };
    record_arrival(svc, &key.name, key.date, &file).await?;
    let mut started = Vec::new();
    let mut waiting = BTreeMap::new();
    for (pipeline, _) in svc.config.pipelines_of(&key.name) {
        match date_readiness(svc, pipeline, key.date, now).await? {
            DateReadiness {
                run_id: Some(run_id),
                ..
            } => started.push(start_run(svc, pipeline, key.date, &run_id, None).await?),
            not_ready => {
                waiting.insert(pipeline.clone(), not_ready.missing);
            }
        }
    }
    Ok(ArrivalOutcome::Recorded {
        dataset: key.name,
        date: key.date,
        key: full_key,
        started,
        waiting,
    })
}

/// Record one raw file in its partition's status. A re-delivered event for
/// a file already recorded changes nothing: only a new file or a new version
/// makes a new partition version. A marker (`_SUCCESS`, any name starting
/// with `_` or `.`) is recorded as a marker: it is never data.
async fn record_arrival(
    svc: &Services<'_>,
    dataset: &str,
    date: NaiveDate,
    file: &ArrivedFile,
) -> UseCaseResult<()> {
    let marker = is_marker_name(file_name(&file.key));
    state::update_partition(svc.state, dataset, date, |s| {
        let list = if marker { &mut s.markers } else { &mut s.files };
        if list.iter().any(|f| f.same_version(file)) {
            return;
        }
        list.retain(|f| f.key != file.key);
        list.push(file.clone());
        list.sort_by(|a, b| a.key.cmp(&b.key));
        if !marker {
            s.state = PartitionState::Arrived;
            s.error = None;
        }
    })
    .await?;
    Ok(())
}

/// The objects directly in a raw partition (data files and markers; not
/// anything in a folder below it).
async fn raw_partition_objects(
    svc: &Services<'_>,
    dataset: &str,
    date: NaiveDate,
) -> UseCaseResult<Vec<crate::ports::ObjectMeta>> {
    let prefix = partition_prefix(Layer::Raw, dataset, date);
    Ok(svc
        .objects
        .list(&prefix)
        .await?
        .into_iter()
        .filter(|o| {
            let rest = &o.key[prefix.len()..];
            !rest.is_empty() && !rest.contains('/')
        })
        .collect())
}

/// Record raw files that are in the bucket but not in the status — their
/// S3 events were lost, or arrived before the pipeline existed. Catchup
/// calls this before deciding whether a date is ready. Returns the keys
/// newly recorded.
pub async fn discover_arrivals(
    svc: &Services<'_>,
    dataset: &str,
    date: NaiveDate,
) -> UseCaseResult<Vec<String>> {
    let known: Vec<ArrivedFile> = state::partition_status(svc.state, dataset, date)
        .await?
        .map(|s| s.files.into_iter().chain(s.markers).collect())
        .unwrap_or_default();
    let mut recorded = Vec::new();
    for o in raw_partition_objects(svc, dataset, date).await? {
        let file = ArrivedFile {
            key: o.key.clone(),
            etag: o.etag.trim_matches('"').to_string(),
            size: o.size,
            // Its event was lost: the object's own time is when it came.
            arrived_at: Some(o.last_modified),
        };
        if !known.iter().any(|k| k.same_version(&file)) {
            record_arrival(svc, dataset, date, &file).await?;
            recorded.push(o.key);
        }
    }
    Ok(recorded)
}

/// Whether every dataset of a pipeline has arrived for a date, and if so
/// the run id that names this version of the date's files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DateReadiness {
    pub pipeline: String,
    pub date: NaiveDate,
    pub ready: bool,
    /// Datasets whose files for the date are not complete yet.
    pub missing: Vec<String>,
    /// Per missing dataset, what it waits for.
    #[serde(default)]
    pub waiting_for: BTreeMap<String, String>,
    /// Whether any data file of the pipeline's datasets arrived for the date.
    #[serde(default)]
    pub any_data: bool,
    /// A hash of the arrived files (key, ETag, size): one run per version.
    pub run_id: Option<String>,
}

/// Whether a dataset's files for a date are complete under its
/// `complete_when` rule at `now`; if not, what it waits for.
pub fn completion_pending(
    ds: &DatasetConfig,
    status: Option<&PartitionStatus>,
    now: chrono::DateTime<Utc>,
) -> Option<String> {
    let files = status.map_or(&[][..], |s| s.files.as_slice());
    if files.is_empty() {
        return Some("no data file yet".into());
    }
    match ds.completion() {
        Completion::AnyFile => None,
        Completion::Marker(marker) => {
            let arrived =
                status.is_some_and(|s| s.markers.iter().any(|m| file_name(&m.key) == marker));
            (!arrived).then(|| format!("marker {marker}"))
        }
        Completion::Quiet(quiet) => {
            let newest = files.iter().filter_map(|f| f.arrived_at).max();
            match newest {
                Some(t) if t + quiet > now => Some(format!(
                    "no new file until {} (quiet for {}s)",
                    (t + quiet).format("%Y-%m-%dT%H:%M:%SZ"),
                    quiet.num_seconds()
                )),
                _ => None,
            }
        }
    }
}

pub async fn date_readiness(
    svc: &Services<'_>,
    pipeline: &str,
    date: NaiveDate,
    now: chrono::DateTime<Utc>,
) -> UseCaseResult<DateReadiness> {
    let p = pipeline_config(svc.config, pipeline)?;
    let mut missing = Vec::new();
    let mut waiting_for = BTreeMap::new();
    let mut any_data = false;
    let mut fingerprint = Vec::new();
    for ds in &p.datasets {
        let status = state::partition_status(svc.state, ds, date).await?;
        let files = status.as_ref().map_or(&[][..], |s| s.files.as_slice());
        any_data |= !files.is_empty();
        match completion_pending(dataset(svc.config, ds)?, status.as_ref(), now) {
            None => {
                for f in files {
                    fingerprint.push(format!("{}\u{1f}{}\u{1f}{}", f.key, f.etag, f.size));
                }
            }
            Some(why) => {
                missing.push(ds.clone());
                waiting_for.insert(ds.clone(), why);
            }
        }
    }
    // One execution per partition version: the name is derived from the
    // files that make it, so a duplicated event cannot start a second run.
    fingerprint.sort();
    let run_id = missing.is_empty().then(|| {
        format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(fingerprint.join("\n").as_bytes())
        )
    });
    Ok(DateReadiness {
        pipeline: pipeline.to_string(),
        date,
        ready: missing.is_empty(),
        missing,
        waiting_for,
        any_data,
        run_id,
    })
}

/// StartExecution of the partition pipeline for a ready date. The name is
/// `<pipeline>-<date>-<run_id>` (plus a suffix for a forced re-run), so a
/// start that already happened starts nothing.
pub async fn start_run(
    svc: &Services<'_>,
    pipeline: &str,
    date: NaiveDate,
    run_id: &str,
    rerun: Option<&str>,
) -> UseCaseResult<StartedRun> {
    let (execution_name, run_id) = match rerun {
        Some(tag) => (
            format!("{pipeline}-{date}-{run_id}-{tag}"),
            format!("{run_id}-{tag}"),
        ),
        None => (format!("{pipeline}-{date}-{run_id}"), run_id.to_string()),
    };
    let input = serde_json::json!({ "pipeline": pipeline, "date": date, "run_id": run_id });
    let newly_started = svc
        .workflows
        .start(Workflow::PartitionPipeline, &execution_name, input)
        .await?;
    Ok(StartedRun {
        pipeline: pipeline.to_string(),
        date,
        run_id,
        execution_name,
        newly_started,
    })
}

// ---------------------------------------------------------------- clean

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CleanSummary {
    pub dataset: String,
    pub date: NaiveDate,
    pub run_id: String,
    pub stats: CleanStats,
    pub cleaned_key: String,
    pub rejects_key: String,
}

pub async fn clean_partition(
    svc: &Services<'_>,
    dataset_name: &str,
    date: NaiveDate,
    run_id: &str,
) -> UseCaseResult<CleanSummary> {
    let ds = dataset(svc.config, dataset_name)?;
    let result = clean_inner(svc, ds, dataset_name, date, run_id).await;
    record_clean_outcome(
        svc,
        dataset_name,
        date,
        run_id,
        result.as_ref().map(|s| &s.stats),
    )
    .await?;
    result
}

/// The partition's status after a clean of either path: cleaned with its
/// counts, or failed with the error.
pub(crate) async fn record_clean_outcome(
    svc: &Services<'_>,
    dataset_name: &str,
    date: NaiveDate,
    run_id: &str,
    outcome: Result<&CleanStats, &UseCaseError>,
) -> UseCaseResult<()> {
    let outcome = outcome.map_err(|e| e.to_string()).cloned();
    state::update_partition(svc.state, dataset_name, date, |s| {
        s.run_id = Some(run_id.to_string());
        match &outcome {
            Ok(stats) => {
                s.state = PartitionState::Cleaned;
                s.clean = Some(stats.clone());
                s.error = None;
                s.quality_score = None;
                s.quality_passed = None;
            }
            Err(e) => {
                s.state = PartitionState::Failed;
                s.error = Some(e.clone());
            }
        }
    })
    .await?;
    Ok(())
}

/// The raw objects a run cleans (markers are never data; append mode
/// takes only the files no published file holds yet), recorded with the
/// run as it starts.
pub(crate) async fn run_inputs(
    svc: &Services<'_>,
    ds: &DatasetConfig,
    dataset_name: &str,
    date: NaiveDate,
    run_id: &str,
) -> UseCaseResult<Vec<crate::ports::ObjectMeta>> {
    let raw: Vec<_> = raw_partition_objects(svc, dataset_name, date)
        .await?
        .into_iter()
        .filter(|o| !is_marker_name(file_name(&o.key)))
        .collect();
    if raw.is_empty() {
        return Err(UseCaseError::NoRawFiles {
            prefix: partition_prefix(Layer::Raw, dataset_name, date),
        });
    }
    let source_of = |o: &crate::ports::ObjectMeta| SourceFile {
        key: o.key.clone(),
        etag: o.etag.trim_matches('"').to_string(),
    };
    let all_sources: Vec<SourceFile> = raw.iter().map(source_of).collect();
    let sources = match ds.output_mode {
        OutputMode::Append => {
            let published = read_manifest(svc.objects, dataset_name, date).await?;
            plan_append(&all_sources, published.as_ref())
        }
        _ => RunSources {
            base_run: None,
            cleaned: all_sources,
            kept: vec![],
            merged_in_clean: false,
        },
    };
    let raw: Vec<_> = raw
        .into_iter()
        .filter(|o| sources.cleaned.contains(&source_of(o)))
        .collect();
    state::update_partition(svc.state, dataset_name, date, |s| {
        s.state = PartitionState::Running;
        s.run_id = Some(run_id.to_string());
        s.sources = Some(sources.clone());
        s.run_started_at = Some(chrono::Utc::now());
    })
    .await?;
    Ok(raw)
}

async fn clean_inner(
    svc: &Services<'_>,
    ds: &DatasetConfig,
    dataset_name: &str,
    date: NaiveDate,
    run_id: &str,
) -> UseCaseResult<CleanSummary> {
    let plan = CleanPlan::compile(ds).map_err(CleanError::Plan)?;
    let raw = run_inputs(svc, ds, dataset_name, date, run_id).await?;
    let scratch = scratch_dir(svc.scratch)?;
    let raw_bytes = raw.iter().map(|o| o.size).sum();
    crate::services::ensure_scratch_room(
        scratch.path(),
        crate::services::clean_scratch_needed(raw_bytes, !ds.key.is_empty()),
        crate::services::free_bytes(scratch.path()),
    )?;
    let mut inputs = Vec::new();
    for (i, o) in raw.iter().enumerate() {
        let name = o.key.rsplit('/').next().unwrap_or("input");
        let path = scratch.path().join(format!("{i:04}-{name}"));
        svc.objects.get_to_file(&o.key, &path).await?;
        inputs.push(CleanInput {
            path,
            source_name: o.key.clone(),
        });
    }
    let kept_path = scratch.path().join("kept.parquet");
    let rejects_path = scratch.path().join("rejects.parquet");
    let stats = clean_files(
        &plan,
        &inputs,
        &kept_path,
        &rejects_path,
        &CleanOptions {
            // A Lambda gets a second vCPU from 1,769 MB; the output is the
            // same on any number of threads.
            threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            ..CleanOptions::default()
        },
    )?;
    let cleaned_key = format!(
        "{}part-00000.parquet",
        crate::layout::cleaned_output_prefix(
            crate::publish::publish_merges(ds.output_mode, None),
            dataset_name,
            date,
            run_id
        )
    );
    let rejects_key = format!(
        "{}rejects.parquet",
        crate::layout::run_prefix(Layer::Rejects, dataset_name, date, run_id)
    );
    svc.objects.put_file(&cleaned_key, &kept_path).await?;
    svc.objects.put_file(&rejects_key, &rejects_path).await?;
    // The quality tally while the rows are on this disk: validate then
    // reads a few hundred bytes instead of the partition.
    let tally = crate::quality::tally_files(ds, &[kept_path.as_path()])?;
    svc.objects
        .put_bytes(
            &format!(
                "{}single.json",
                crate::distributed::quality_tally_prefix(dataset_name, date, run_id)
            ),
            serde_json::to_vec(&tally)
                .map_err(|e| PortError::permanent("encoding a quality tally", "a bug", e))?,
        )
        .await?;
    Ok(CleanSummary {
        dataset: dataset_name.to_string(),
        date,
        run_id: run_id.to_string(),
        stats,
        cleaned_key,
        rejects_key,
    })
}

// ---------------------------------------------------------------- validate

/// Where the run's cleaned parts are, as its clean recorded them.
fn run_parts_prefix(
    ds: &DatasetConfig,
    status: Option<&PartitionStatus>,
    dataset_name: &str,
    date: NaiveDate,
    run_id: &str,
) -> String {
    // Sources recorded for another run say nothing about this one.
    let sources = status
        .filter(|s| s.run_id.as_deref() == Some(run_id))
        .and_then(|s| s.sources.as_ref());
    crate::layout::cleaned_output_prefix(
        crate::publish::publish_merges(ds.output_mode, sources),
        dataset_name,
        date,
        run_id,
    )
}

pub async fn validate_partition(
    svc: &Services<'_>,
    dataset_name: &str,
    date: NaiveDate,
    run_id: &str,
) -> UseCaseResult<QualityReport> {
    let ds = dataset(svc.config, dataset_name)?;
    let status = state::partition_status(svc.state, dataset_name, date).await?;
    let staged = svc
        .objects
        .list(&run_parts_prefix(
            ds,
            status.as_ref(),
            dataset_name,
            date,
            run_id,
        ))
        .await?;
    if staged.is_empty() {
        let st = status;
        return Err(UseCaseError::WrongState {
            dataset: dataset_name.to_string(),
            date,
            state: st.map_or("unknown".into(), |s| s.state.name().into()),
            what: format!("run {run_id} has no cleaned output to validate; clean it first"),
        });
    }
    let (rows, results) = match crate::distributed::merged_quality_tally(
        svc,
        ds,
        dataset_name,
        date,
        run_id,
    )
    .await?
    {
        Some(tally) => (tally.rows, tally.results(ds)),
        // A run cleaned before tallies were written: read its files.
        None => {
            let scratch = scratch_dir(svc.scratch)?;
            let mut paths = Vec::new();
            for (i, o) in staged.iter().enumerate() {
                let p = scratch.path().join(format!("{i}.parquet"));
                svc.objects.get_to_file(&o.key, &p).await?;
                paths.push(p);
            }
            let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
            evaluate_files(ds, &refs)?
        }
    };
    let s = score(&results);
    let report = QualityReport {
        dataset: dataset_name.to_string(),
        date: date.to_string(),
        run_id: run_id.to_string(),
        rows,
        score: s,
        threshold: ds.quality_threshold,
        passed: s >= ds.quality_threshold,
        expectations: results,
    };
    let body = serde_json::to_vec_pretty(&report)
        .map_err(|e| PortError::permanent("encoding quality report", "a bug", e))?;
    svc.objects
        .put_bytes(&quality_report_key(dataset_name, date), body)
        .await?;
    state::update_partition(svc.state, dataset_name, date, |st| {
        st.quality_score = Some(report.score);
        st.quality_passed = Some(report.passed);
        st.state = if report.passed {
            PartitionState::Validated
        } else {
            PartitionState::Held
        };
    })
    .await?;
    Ok(report)
}

// ---------------------------------------------------------------- publish

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PublishSummary {
    pub manifest: Manifest,
    /// Pipelines whose watermark moved, and to where.
    pub watermarks: BTreeMap<String, NaiveDate>,
}

/// Publish a validated run. `approved` publishes a run held for low quality
/// (a human decided).
pub async fn publish_partition(
    svc: &Services<'_>,
    dataset_name: &str,
    date: NaiveDate,
    run_id: &str,
    approved: bool,
) -> UseCaseResult<PublishSummary> {
    let ds = dataset(svc.config, dataset_name)?;
    let status = state::partition_status(svc.state, dataset_name, date)
        .await?
        .unwrap_or_else(|| PartitionStatus::new(dataset_name, date));
    let already = status.state == PartitionState::Published
        && status.published_run.as_deref() == Some(run_id);
    let publishable = status.run_id.as_deref() == Some(run_id)
        && (status.state == PartitionState::Validated
            || (approved && status.state == PartitionState::Held));
    if !already && !publishable {
        return Err(UseCaseError::WrongState {
            dataset: dataset_name.to_string(),
            date,
            state: status.state.name().to_string(),
            what: format!(
                "run {run_id} cannot be published (current run {:?}); it must be validated, or held and approved",
                status.run_id
            ),
        });
    }
    let staged = svc
        .objects
        .list(&run_parts_prefix(
            ds,
            Some(&status),
            dataset_name,
            date,
            run_id,
        ))
        .await?;
    let scratch = scratch_dir(svc.scratch)?;
    let manifest = publish_run(
        svc.objects,
        scratch.path(),
        PublishRequest {
            dataset: dataset_name,
            date,
            run_id,
            mode: ds.output_mode,
            key_columns: &ds.key,
            staged,
            staged_rows: status.clean.as_ref().map_or(0, |c| c.kept),
            sources: status.sources.as_ref(),
        },
    )
    .await?;
    svc.catalog
        .put_partition(CatalogPartition {
            table: dataset_name.to_string(),
            date,
            location: manifest.location.clone(),
        })
        .await?;
    state::update_partition(svc.state, dataset_name, date, |s| {
        s.state = PartitionState::Published;
        s.published_run = Some(run_id.to_string());
        s.error = None;
    })
    .await?;
    let mut watermarks = BTreeMap::new();
    for (pipeline, _) in svc.config.pipelines_of(dataset_name) {
        if let Some(d) = advance_pipeline_watermark(svc, pipeline, date).await? {
            watermarks.insert(pipeline.clone(), d);
        }
    }
    Ok(PublishSummary {
        manifest,
        watermarks,
    })
}

async fn pipeline_complete(
    svc: &Services<'_>,
    pipeline: &str,
    date: NaiveDate,
) -> UseCaseResult<bool> {
    let Some(p) = svc.config.pipelines.get(pipeline) else {
        return Ok(false);
    };
    for ds in &p.datasets {
        let published = state::partition_status(svc.state, ds, date)
            .await?
            .is_some_and(|s| s.state == PartitionState::Published);
        if !published {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Advance over contiguous complete dates only: a gap stops the watermark,
/// so catchup can still see the missing date. Never moves backwards.
async fn advance_pipeline_watermark(
    svc: &Services<'_>,
    pipeline: &str,
    published: NaiveDate,
) -> UseCaseResult<Option<NaiveDate>> {
    let current = state::watermark(svc.state, pipeline).await?;
    let initial = pipeline_config(svc.config, pipeline)?.initial_watermark();
    let mut reach = match (&current, initial) {
        (Some(w), _) => w.date,
        // With a start_date the watermark begins the day before it: an
        // earlier missing date holds it back like any gap.
        (None, Some(before_start)) => before_start,
        (None, None) if pipeline_complete(svc, pipeline, published).await? => published,
        (None, None) => return Ok(None),
    };
    // Bounded walk: ten years of contiguous dates is far beyond any backlog.
    for _ in 0..3660 {
        let next = reach + Duration::days(1);
        if !pipeline_complete(svc, pipeline, next).await? {
            break;
        }
        reach = next;
    }
    if current.as_ref().is_some_and(|w| w.date >= reach)
        || (current.is_none() && Some(reach) == initial)
    {
        return Ok(None);
    }
    let after = state::advance_watermark(svc.state, pipeline, reach).await?;
    Ok(after.map(|w| w.date))
}

// ---------------------------------------------------------------- local run

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatasetRunReport {
    pub dataset: String,
    pub date: NaiveDate,
    pub state: String,
    pub stats: Option<CleanStats>,
    pub quality_score: Option<f64>,
    pub error: Option<String>,
    pub location: Option<String>,
}
