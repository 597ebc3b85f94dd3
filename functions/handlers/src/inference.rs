//! The inference consumer: started and checked by the feature pipeline,
//! fed by the click stream (click-inference, a Kinesis trigger).

use serde::Deserialize;
use serde_json::{json, Value};
use tributary_core::inference::{self, ClickRecord};
use tributary_core::services::Services;

use crate::error::{bad_event, HandlerError};
use crate::http::decode_base64;
use crate::wire::{decode, encode};

#[derive(Debug, Deserialize)]
struct StartInput {
    features: String,
    version: String,
}

pub async fn start_inference(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: StartInput = decode(event, "{features, version}")?;
    encode(&inference::start(svc, &i.features, &i.version).await?)
}

pub async fn inference_health(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: FeatureSetInput = decode(event, "{features}")?;
    Ok(inference::health(svc, &i.features).await?)
}

/// The click stream's records as Kinesis delivers them: each record's data
/// is base64 JSON. A record that does not decode is still handed on, with
/// why, so that it is dead-lettered with its position.
fn click_records(event: &Value) -> Result<Vec<ClickRecord>, HandlerError> {
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_event("not a Kinesis event: Records[] is missing".into()))?;
    Ok(records
        .iter()
        .map(|r| {
            let data = r
                .pointer("/kinesis/data")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let click = decode_base64(data)
                .ok_or("data is not base64 text")
                .and_then(|text| {
                    serde_json::from_str::<Value>(&text).map_err(|_| "data is not JSON")
                });
            ClickRecord {
                click,
                data: data.to_string(),
                position: json!({
                    "shard": r["eventID"], "sequence_number": r.pointer("/kinesis/sequenceNumber"),
                    "arrived": r.pointer("/kinesis/approximateArrivalTimestamp"),
                }),
            }
        })
        .collect())
}

/// Poison never fails the batch: it is kept in dlq/ with its position.
/// With no consumer running, the whole batch is reported failed from its
/// first record, so the stream keeps it for when one starts.
pub async fn click_inference(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let records = click_records(&event)?;
    let batch = inference::consume_clicks(svc, records, chrono::Utc::now()).await?;
    let failures = match event.pointer("/Records/0/kinesis/sequenceNumber") {
        Some(first) if batch.held => json!([{ "itemIdentifier": first }]),
        _ => json!([]),
    };
    Ok(
        json!({"batchItemFailures": failures, "consumers": batch.consumers,
              "dead_lettered": batch.dead_lettered, "held": batch.held}),
    )
}

#[derive(Debug, Deserialize)]
struct FeatureSetInput {
    features: String,
}

/// An operator's stop: the feature set's consumer stops, and with the last
/// one the click stream's mapping is disabled (clicks wait in the stream).
pub async fn stop_inference(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: FeatureSetInput = decode(event, "{features}")?;
    Ok(json!({ "consumer": inference::stop(svc, &i.features).await? }))
}

#[derive(Debug, Deserialize)]
struct RollbackInput {
    features: String,
    /// Who asked, for the activation record.
    #[serde(default)]
    by: Option<String>,
}

/// An operator's rollback: the previous model version is active again and
/// the consumer restarts on it (its mapping enabled).
pub async fn rollback_model(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: RollbackInput = decode(event, "{features, by?}")?;
    let by = format!("{} (rollback)", i.by.as_deref().unwrap_or("operator"));
    Ok(inference::rollback(svc, &i.features, &by).await?)
}
