//! stream-aggregate: one Kinesis micro-batch of one or more shards into
//! window aggregates. At-least-once delivery may hand us any record again,
//! in the same batch, a bisected half or a retry; none of that may count an
//! event twice or lose one:
//!
//! - a shard checkpoint skips records already processed as a whole batch;
//! - each window item keeps the highest sequence number of its shard it has
//!   counted and is written with an optimistic-concurrency condition, so a
//!   batch that died half way is completed, not repeated, by its retry;
//! - event ids are claimed (put-if-absent, with a TTL of the dedupe
//!   horizon) by `<shard>/<sequence>`: a claim held by another record makes
//!   this one a duplicate; a claim held by this very record is a redelivery,
//!   which the window fence decides.
//!
//! Poison records go to `dlq/`, events behind the watermark to `late/` (and
//! their window is marked dirty for reconciliation); the raw input of every
//! valid event is archived to `stream/` for the batch layer. None of these
//! fail the batch. Every key written depends only on the records, so writing
//! it again on redelivery is harmless.

use super::events::{decode, StreamEvent};
use super::windows::{date_of, rfc3339, window_sk, window_start, WindowItem};
use super::{dedupe_pk, sequence_cmp, stream_config, stream_pk, windows_pk};
use crate::config::StreamConfig;
use crate::error::UseCaseResult;
use crate::jsonl;
use crate::layout::{partition_prefix, Layer};
use crate::ports::StreamRecord;
use crate::services::Services;
use crate::state;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// What happened to a batch. `input` = `aggregated` + `dlq` + `late` +
/// `duplicates` + `redelivered`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchOutcome {
    pub input: u64,
    pub aggregated: u64,
    pub dlq: u64,
    pub late: u64,
    pub duplicates: u64,
    /// Already counted by an earlier delivery of the same record.
    pub redelivered: u64,
    pub windows_written: u64,
    /// Shards whose processing hit a transient error, with the sequence
    /// number to resume from (Kinesis partial batch response).
    pub failed: Vec<(String, String)>,
}

impl BatchOutcome {
    fn absorb(&mut self, o: BatchOutcome) {
        self.input += o.input;
        self.aggregated += o.aggregated;
        self.dlq += o.dlq;
        self.late += o.late;
        self.duplicates += o.duplicates;
        self.redelivered += o.redelivered;
        self.windows_written += o.windows_written;
        self.failed.extend(o.failed);
    }
}

/// A poison record as kept in `dlq/`: everything needed to replay it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub stream: String,
    pub shard_id: String,
    pub sequence_number: String,
    pub partition_key: String,
    pub arrival_time: DateTime<Utc>,
    pub error: String,
    /// The payload as it arrived, base64 (it may not be text).
    pub data_base64: String,
    /// The payload as text when it is UTF-8, for people reading the DLQ.
    #[serde(default)]
    pub data_text: Option<String>,
}

/// An archived valid event (one line of `stream/` and `late/` objects).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedEvent {
    pub shard_id: String,
    pub sequence_number: String,
    pub arrival_time: DateTime<Utc>,
    pub event: Value,
}

/// The stream's event-time clock. Each shard is consumed on its own, so a
/// shard behind the others must not make their common past "late": an event
/// is late when it is older than its own shard's newest event time minus
/// the allowed lateness, and the stream's watermark is the slowest shard's
/// (it never moves backwards).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StreamWatermark {
    /// Newest event time seen on any shard (µs).
    pub max_event_time: i64,
    /// Events older than this (µs) are late.
    pub watermark: i64,
    pub updated_at: Option<DateTime<Utc>>,
    /// Newest event time per shard (µs).
    #[serde(default)]
    pub shards: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    sequence_number: String,
    updated_at: DateTime<Utc>,
}

/// A window that late data touched: realtime is short there until
/// reconciliation rebuilds it from the archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirtyWindow {
    pub window_start: String,
    pub marked_at: DateTime<Utc>,
}

pub async fn watermark(svc: &Services<'_>, stream: &str) -> UseCaseResult<StreamWatermark> {
    Ok(state::get_typed(svc.state, &stream_pk(stream), "watermark")
        .await?
        .unwrap_or_default())
}

pub fn dlq_key(stream: &str, r: &StreamRecord) -> String {
    format!(
        "{}{}-{}.json",
        partition_prefix(Layer::Dlq, stream, r.arrival.date_naive()),
        r.shard_id,
        r.sequence_number
    )
}

/// Aggregate one delivered batch. Transient failures of one shard are
/// reported in `failed` (the rest of the batch still counts); other errors
/// fail the call.
pub async fn aggregate_batch(
    svc: &Services<'_>,
    stream: &str,
    records: &[StreamRecord],
    now: DateTime<Utc>,
) -> UseCaseResult<BatchOutcome> {
    let config = stream_config(svc, stream)?;
    let mut by_shard: BTreeMap<&str, Vec<&StreamRecord>> = BTreeMap::new();
    for r in records {
        by_shard.entry(&r.shard_id).or_default().push(r);
    }
    let mut outcome = BatchOutcome::default();
    for (shard, mut shard_records) in by_shard {
        shard_records.sort_by(|a, b| sequence_cmp(&a.sequence_number, &b.sequence_number));
        let first = shard_records[0].sequence_number.clone();
        match shard_batch(svc, stream, config, shard, &shard_records, now).await {
            Ok(o) => outcome.absorb(o),
            Err(e) if e.retryable() => {
                outcome.input += shard_records.len() as u64;
                outcome.failed.push((shard.to_string(), first));
            }
            Err(e) => return Err(e),
        }
    }
    super::stats::record(svc.state, stream, now, &outcome).await?;
    Ok(outcome)
}

async fn shard_batch(
    svc: &Services<'_>,
    stream: &str,
    config: &StreamConfig,
    shard: &str,
    records: &[&StreamRecord],
    now: DateTime<Utc>,
) -> UseCaseResult<BatchOutcome> {
    let mut outcome = BatchOutcome {
        input: records.len() as u64,
        ..Default::default()
    };
    let checkpoint_sk = format!("shard#{shard}");
    let checkpoint: Option<Checkpoint> =
        state::get_typed(svc.state, &stream_pk(stream), &checkpoint_sk).await?;
    let records: Vec<&StreamRecord> = records
        .iter()
        .copied()
        .filter(|r| {
            checkpoint
                .as_ref()
                .is_none_or(|c| sequence_cmp(&r.sequence_number, &c.sequence_number).is_gt())
        })
        .collect();
    outcome.redelivered = outcome.input - records.len() as u64;
    let Some(last) = records.last() else {
        return Ok(outcome);
    };
    let first_sequence = records[0].sequence_number.clone();

    // Decode; poison to the DLQ.
    let mut valid: Vec<(&StreamRecord, StreamEvent, Value)> = Vec::with_capacity(records.len());
    for r in &records {
        match decode(config, &r.data) {
            Ok((event, value)) => valid.push((r, event, value)),
            Err(error) => {
                outcome.dlq += 1;
                let letter = DeadLetter {
                    stream: stream.to_string(),
                    shard_id: r.shard_id.clone(),
                    sequence_number: r.sequence_number.clone(),
                    partition_key: r.partition_key.clone(),
                    arrival_time: r.arrival,
                    error,
                    data_base64: base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        &r.data,
                    ),
                    data_text: String::from_utf8(r.data.clone()).ok(),
                };
                jsonl::put_json(svc.objects, &dlq_key(stream, r), &letter).await?;
            }
        }
    }

    // The raw input of the batch layer, by event hour.
    let mut archive: BTreeMap<String, Vec<ArchivedEvent>> = BTreeMap::new();
    for (r, e, v) in &valid {
        archive
            .entry(archive_key(stream, e.time_micros, shard, &first_sequence))
            .or_default()
            .push(archived(r, v));
    }
    for (key, lines) in &archive {
        jsonl::put(svc.objects, key, lines).await?;
    }
    let archived_dates: std::collections::BTreeSet<NaiveDate> = valid
        .iter()
        .map(|(_, e, _)| date_of(e.time_micros))
        .collect();
    super::views::archive_changed(svc, stream, archived_dates, now).await?;

    // Claim event ids: the first record to claim an id owns it.
    let horizon = config.dedupe_horizon_secs() as i64;
    let claims = valid
        .iter()
        .map(|(r, e, _)| {
            (
                dedupe_pk(stream, &e.id),
                e.id.clone(),
                json!({"by": claim_of(r), "expires_at": now.timestamp() + horizon}),
            )
        })
        .collect();
    // One call for the batch, across the claim shards.
    let held = svc.state.put_new_items(claims, now.timestamp()).await?;
    let mut unique = Vec::with_capacity(valid.len());
    for ((r, e, v), held) in valid.into_iter().zip(held) {
        match held {
            Some(claim) if claim["by"].as_str() != Some(&claim_of(r)) => outcome.duplicates += 1,
            _ => unique.push((r, e, v)),
        }
    }

    // Windows: what their items already counted is skipped; what is behind
    // the watermark is late.
    let mark = watermark(svc, stream).await?;
    let window_secs = config.window_secs();
    let mut by_window: BTreeMap<i64, Vec<(&StreamRecord, StreamEvent, Value)>> = BTreeMap::new();
    for (r, e, v) in unique {
        by_window
            .entry(window_start(e.time_micros, window_secs))
            .or_default()
            .push((r, e, v));
    }
    let mut late: BTreeMap<String, Vec<ArchivedEvent>> = BTreeMap::new();
    let lateness = config.allowed_lateness_secs() as i64 * 1_000_000;
    let mut max_time = mark.shards.get(shard).copied().unwrap_or(i64::MIN);
    // Late is judged on this shard's own clock: a shard behind the others
    // is not late, only slow. (A fresh shard has no clock yet.)
    let shard_watermark = max_time.saturating_sub(lateness);
    for (start, events) in by_window {
        let pk = windows_pk(stream, start);
        let sk = window_sk(start, shard);
        let item: Option<WindowItem> = state::get_typed(svc.state, &pk, &sk).await?;
        let counted = |r: &StreamRecord| {
            item.as_ref()
                .and_then(|i| i.last_sequence.as_deref())
                .is_some_and(|s| sequence_cmp(&r.sequence_number, s).is_le())
        };
        let mut live = Vec::new();
        for (r, e, v) in events {
            if counted(r) {
                outcome.redelivered += 1;
            } else if e.time_micros < shard_watermark {
                outcome.late += 1;
                late.entry(late_key(stream, e.time_micros, shard, &first_sequence))
                    .or_default()
                    .push(archived(r, &v));
                let dirty = DirtyWindow {
                    window_start: rfc3339(start),
                    marked_at: now,
                };
                state::update(
                    svc.state,
                    &stream_pk(stream),
                    &format!("dirty#{}", rfc3339(start)),
                    |old: Option<DirtyWindow>| old.is_none().then(|| dirty.clone()),
                )
                .await?;
            } else {
                max_time = max_time.max(e.time_micros);
                live.push((r, e));
            }
        }
        if live.is_empty() {
            continue;
        }
        let source = shard.to_string();
        state::update(svc.state, &pk, &sk, |old: Option<WindowItem>| {
            let mut item = old.unwrap_or_else(|| WindowItem {
                window_start: start,
                source: source.clone(),
                ..Default::default()
            });
            let mut changed = false;
            for (r, e) in &live {
                let fenced = item
                    .last_sequence
                    .as_deref()
                    .is_some_and(|s| sequence_cmp(&r.sequence_number, s).is_le());
                if fenced {
                    continue;
                }
                item.groups
                    .entry(super::windows::group_key(&e.dims))
                    .or_default()
                    .add(&e.measures);
                item.last_sequence = Some(r.sequence_number.clone());
                changed = true;
            }
            changed.then_some(item)
        })
        .await?;
        outcome.aggregated += live.len() as u64;
        outcome.windows_written += 1;
    }
    for (key, lines) in &late {
        jsonl::put(svc.objects, key, lines).await?;
    }

    // Only now: the watermark and the checkpoint.
    state::update(
        svc.state,
        &stream_pk(stream),
        "watermark",
        |old: Option<StreamWatermark>| {
            let mut mark = old.unwrap_or_default();
            if mark.shards.get(shard).is_some_and(|t| *t >= max_time) || max_time == i64::MIN {
                return None;
            }
            mark.shards.insert(shard.to_string(), max_time);
            mark.max_event_time = mark.max_event_time.max(max_time);
            let slowest = mark.shards.values().copied().min().unwrap_or(max_time);
            mark.watermark = mark.watermark.max(slowest - lateness);
            mark.updated_at = Some(now);
            Some(mark)
        },
    )
    .await?;
    state::update(
        svc.state,
        &stream_pk(stream),
        &checkpoint_sk,
        |old: Option<Checkpoint>| {
            let newer = old
                .as_ref()
                .is_none_or(|c| sequence_cmp(&last.sequence_number, &c.sequence_number).is_gt());
            newer.then(|| Checkpoint {
                sequence_number: last.sequence_number.clone(),
                updated_at: now,
            })
        },
    )
    .await?;
    Ok(outcome)
}

fn claim_of(r: &StreamRecord) -> String {
    format!("{}/{}", r.shard_id, r.sequence_number)
}

fn archived(r: &StreamRecord, v: &Value) -> ArchivedEvent {
    ArchivedEvent {
        shard_id: r.shard_id.clone(),
        sequence_number: r.sequence_number.clone(),
        arrival_time: r.arrival,
        event: v.clone(),
    }
}

fn hour_prefix(layer: Layer, stream: &str, time_micros: i64) -> String {
    let hour = chrono::DateTime::from_timestamp_micros(time_micros)
        .map(|t| t.format("%H").to_string())
        .unwrap_or_default();
    format!(
        "{}hour={hour}/",
        partition_prefix(layer, stream, date_of(time_micros))
    )
}

/// `stream/<stream>/date=D/hour=HH/<shard>-<first sequence>.jsonl`
pub fn archive_key(stream: &str, time_micros: i64, shard: &str, first_sequence: &str) -> String {
    format!(
        "{}{shard}-{first_sequence}.jsonl",
        hour_prefix(Layer::Stream, stream, time_micros)
    )
}

/// `late/<stream>/date=D/hour=HH/<shard>-<first sequence>.jsonl`
pub fn late_key(stream: &str, time_micros: i64, shard: &str, first_sequence: &str) -> String {
    format!(
        "{}{shard}-{first_sequence}.jsonl",
        hour_prefix(Layer::Late, stream, time_micros)
    )
}

/// Dead letters of a stream not yet replayed, oldest first.
pub async fn dead_letters(
    svc: &Services<'_>,
    stream: &str,
) -> UseCaseResult<Vec<(String, DeadLetter)>> {
    let mut out = Vec::new();
    let mut objects = svc
        .objects
        .list(&crate::layout::dataset_prefix(Layer::Dlq, stream))
        .await?;
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    for o in objects {
        if !o.key.ends_with(".json") || o.key.contains("/replayed/") {
            continue;
        }
        let bytes = svc.objects.get_bytes(&o.key).await?;
        // Other writers' files under dlq/ (not dead letters of this layer)
        // are left alone.
        if let Ok(letter) = serde_json::from_slice::<DeadLetter>(&bytes) {
            out.push((o.key, letter));
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplayOutcome {
    pub replayed: u64,
    /// Still failing the (current) schema: kept, with the new error.
    pub still_poison: u64,
    pub duplicates: u64,
    pub errors: Vec<String>,
}

/// Re-decode every dead letter with the current schema (after a fix). Valid
/// ones are counted into their realtime window and archived for the batch
/// layer, exactly once however often this runs or wherever it stops: each
/// window item remembers which dead letters it counted, and a replayed
/// letter moves to `replayed/`.
pub async fn replay_dead_letters(
    svc: &Services<'_>,
    stream: &str,
    now: DateTime<Utc>,
) -> UseCaseResult<ReplayOutcome> {
    use base64::Engine;
    let config = stream_config(svc, stream)?;
    let mut outcome = ReplayOutcome::default();
    for (key, mut letter) in dead_letters(svc, stream).await? {
        let data = base64::engine::general_purpose::STANDARD
            .decode(&letter.data_base64)
            .unwrap_or_default();
        let (event, value) = match decode(config, &data) {
            Ok(ok) => ok,
            Err(error) => {
                outcome.still_poison += 1;
                if error != letter.error {
                    letter.error = error;
                    jsonl::put_json(svc.objects, &key, &letter).await?;
                }
                continue;
            }
        };
        let record = StreamRecord {
            shard_id: letter.shard_id.clone(),
            sequence_number: letter.sequence_number.clone(),
            partition_key: letter.partition_key.clone(),
            data,
            arrival: letter.arrival_time,
        };
        let marker = claim_of(&record);
        let claim = json!({"by": marker, "expires_at": now.timestamp() + config.dedupe_horizon_secs() as i64});
        let held = svc
            .state
            .put_new_items(
                vec![(dedupe_pk(stream, &event.id), event.id.clone(), claim)],
                now.timestamp(),
            )
            .await?;
        let duplicate = held
            .first()
            .cloned()
            .flatten()
            .is_some_and(|c| c["by"].as_str() != Some(&marker));
        if duplicate {
            outcome.duplicates += 1;
        } else {
            jsonl::put(
                svc.objects,
                &archive_key(stream, event.time_micros, "dlq", &marker.replace('/', "-")),
                &[archived(&record, &value)],
            )
            .await?;
            super::views::archive_changed(svc, stream, [date_of(event.time_micros)], now).await?;
            let start = window_start(event.time_micros, config.window_secs());
            state::update(
                svc.state,
                &windows_pk(stream, start),
                &window_sk(start, super::windows::SOURCE_DLQ),
                |old: Option<WindowItem>| {
                    let mut item = old.unwrap_or_else(|| WindowItem {
                        window_start: start,
                        source: super::windows::SOURCE_DLQ.into(),
                        ..Default::default()
                    });
                    if item.applied.contains(&marker) {
                        return None;
                    }
                    item.applied.push(marker.clone());
                    item.groups
                        .entry(super::windows::group_key(&event.dims))
                        .or_default()
                        .add(&event.measures);
                    Some(item)
                },
            )
            .await?;
            outcome.replayed += 1;
        }
        let done = key.replacen(
            &crate::layout::dataset_prefix(Layer::Dlq, stream),
            &format!(
                "{}replayed/",
                crate::layout::dataset_prefix(Layer::Dlq, stream)
            ),
            1,
        );
        svc.objects.copy(&key, &done).await?;
        svc.objects.delete(&key).await?;
    }
    Ok(outcome)
}
