//! The click stream's second event source mapping, on this machine: the
//! records put on the stand-in click stream also wait here for
//! click-inference, and are handed to it (in the mapping's batches, per
//! shard, in order) only while its mapping is enabled. A stopped consumer
//! leaves them waiting; starting it again delivers them. On AWS the
//! mapping polls all the time; here it delivers when the CLI puts clicks,
//! when the feature pipeline asks the consumer's health, and on
//! `tributary model status`.

use anyhow::Result;
use base64::Engine;
use serde_json::{json, Value};
use tributary_core::inference::{CLICK_STREAM, CONSUMER};
use tributary_core::ports::{Condition, StreamRecord};
use tributary_core::services::Services;

const WAITING_PK: &str = "stream_waiting#click-inference";
/// The mapping's BatchSize (Terraform's kinesis_batch.size default).
const BATCH_SIZE: usize = 100;

/// Keep the records put on `stream` for the consumer, if it reads it.
pub async fn hold(svc: &Services<'_>, stream: &str, records: &[StreamRecord]) -> Result<()> {
    if stream != CLICK_STREAM {
        return Ok(());
    }
    for r in records {
        let record = json!({
            "shard_id": r.shard_id, "sequence_number": r.sequence_number,
            "partition_key": r.partition_key, "arrival": r.arrival,
            "data": base64::engine::general_purpose::STANDARD.encode(&r.data),
        });
        let position = format!("{}/{}", r.shard_id, r.sequence_number);
        svc.state
            .put(WAITING_PK, &position, record, Condition::Always)
            .await?;
    }
    Ok(())
}

fn record_of(value: &Value) -> Option<StreamRecord> {
    Some(StreamRecord {
        shard_id: value["shard_id"].as_str()?.to_string(),
        sequence_number: value["sequence_number"].as_str()?.to_string(),
        partition_key: value["partition_key"].as_str()?.to_string(),
        data: base64::engine::general_purpose::STANDARD
            .decode(value["data"].as_str()?)
            .ok()?,
        arrival: serde_json::from_value(value["arrival"].clone()).ok()?,
    })
}

/// What one round of delivery did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Delivered {
    pub invocations: usize,
    pub records: usize,
    /// Still waiting: the mapping is disabled, or the consumer handed a
    /// batch back.
    pub waiting: usize,
}

/// Hand the waiting records to the consumer if its mapping is enabled.
/// A batch the consumer reports failed from a record keeps that record
/// and the rest of its shard waiting (the next round starts there).
pub async fn deliver_waiting(svc: &Services<'_>) -> Result<Delivered> {
    let waiting = svc.state.query(WAITING_PK).await?;
    let mut delivered = Delivered {
        waiting: waiting.len(),
        ..Delivered::default()
    };
    if waiting.is_empty() || svc.consumers.enabled(CONSUMER).await? != Some(true) {
        return Ok(delivered);
    }
    let mut shards: std::collections::BTreeMap<String, Vec<(String, StreamRecord)>> =
        Default::default();
    for (position, item) in waiting {
        match record_of(&item.value) {
            Some(record) => shards
                .entry(record.shard_id.clone())
                .or_default()
                .push((position, record)),
            None => anyhow::bail!(
                "the waiting click record {position} is unreadable: {}",
                item.value
            ),
        }
    }
    for records in shards.into_values() {
        for batch in records.chunks(BATCH_SIZE) {
            let stream_records: Vec<StreamRecord> = batch.iter().map(|(_, r)| r.clone()).collect();
            let event =
                tributary_local::kinesis::event_source_mapping_event(CLICK_STREAM, &stream_records);
            delivered.invocations += 1;
            let response = tributary_handlers::invoke(svc, CONSUMER, event)
                .await
                .map_err(|e| anyhow::anyhow!("{CONSUMER}: {}", e.message))?;
            let failed_from = response["batchItemFailures"]
                .as_array()
                .and_then(|f| f.first())
                .and_then(|f| f["itemIdentifier"].as_str())
                .map(str::to_string);
            let mut stopped = false;
            for (position, record) in batch {
                if failed_from.as_deref().is_some_and(|from| {
                    tributary_core::stream::sequence_cmp(&record.sequence_number, from).is_ge()
                }) {
                    stopped = true;
                    break;
                }
                svc.state
                    .delete(WAITING_PK, position, Condition::Always)
                    .await?;
                delivered.records += 1;
                delivered.waiting -= 1;
            }
            if stopped {
                break;
            }
        }
    }
    Ok(delivered)
}
