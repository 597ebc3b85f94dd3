//! The streaming part of scenario 5: a consumer on the click stream that
//! writes recommendations for each user from the active model and the
//! online features. The feature pipeline controls its lifecycle — started
//! when a model is activated, restarted when a new version replaces it —
//! and waits on its health; an operator stops it or rolls it back.
//!
//! Starting enables the click stream's event source mapping of
//! [`CONSUMER`]; stopping the last running feature set's consumer disables
//! it, so clicks wait in the stream instead of being acknowledged unread.
//!
//! State (state store): `inference/<set>` = {status, model_version,
//! started_at, restarts, processed, errors, last_event_ts}; recommendations
//! under `reco#<set>/<user>`.

use crate::error::{UseCaseError, UseCaseResult};
use crate::layout::Layer;
use crate::model::Model;
use crate::services::Services;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const PK: &str = "inference";

/// The function the click stream's event source mapping feeds.
pub const CONSUMER: &str = "click-inference";
/// The stream it reads (infra/ maps it to that function).
pub const CLICK_STREAM: &str = "clicks";

/// Above this share of clicks it could not use, a consumer is unhealthy.
pub const MAX_ERROR_RATE: f64 = 0.05;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consumer {
    /// running | stopped
    pub status: String,
    pub model_version: String,
    pub started_at: DateTime<Utc>,
    pub restarts: u64,
    pub processed: u64,
    pub errors: u64,
    pub last_event_ts: Option<DateTime<Utc>>,
}

/// Start the consumer on a model version, or restart it on a new one.
pub async fn start(svc: &Services<'_>, set: &str, version: &str) -> UseCaseResult<Consumer> {
    let started = crate::state::update(svc.state, PK, set, |current: Option<Consumer>| {
        let restarts = current.as_ref().map_or(0, |c| {
            c.restarts + u64::from(c.status == "running" && c.model_version != version)
        });
        Some(Consumer {
            status: "running".into(),
            model_version: version.to_string(),
            started_at: Utc::now(),
            restarts,
            processed: 0,
            errors: 0,
            last_event_ts: None,
        })
    })
    .await?;
    let started = started
        .ok_or_else(|| UseCaseError::BadRequest("starting the consumer wrote nothing".into()))?;
    svc.consumers.set_enabled(CONSUMER, true).await?;
    Ok(started)
}

/// Stop one feature set's consumer. The mapping is disabled once no set's
/// consumer runs (one mapping feeds them all).
pub async fn stop(svc: &Services<'_>, set: &str) -> UseCaseResult<Option<Consumer>> {
    let stopped = crate::state::update(svc.state, PK, set, |current: Option<Consumer>| {
        current.map(|c| Consumer {
            status: "stopped".into(),
            ..c
        })
    })
    .await?;
    if running_sets(svc).await?.is_empty() {
        svc.consumers.set_enabled(CONSUMER, false).await?;
    }
    Ok(stopped)
}

/// The feature sets whose consumer runs.
async fn running_sets(svc: &Services<'_>) -> UseCaseResult<Vec<String>> {
    let mut running = Vec::new();
    for set in svc.config.features.keys() {
        let consumer: Option<Consumer> = crate::state::get_typed(svc.state, PK, set).await?;
        if consumer.is_some_and(|c| c.status == "running") {
            running.push(set.clone());
        }
    }
    Ok(running)
}

/// What later steps wait on. Healthy means proven, not merely started: the
/// consumer runs, its mapping delivers, it has processed clicks since it
/// started (the counts restart with it), and under [`MAX_ERROR_RATE`] of
/// them were unusable. `reason` says what is missing otherwise.
pub async fn health(svc: &Services<'_>, set: &str) -> UseCaseResult<Value> {
    let c: Option<Consumer> = crate::state::get_typed(svc.state, PK, set).await?;
    let Some(c) = c else {
        return Ok(json!({"status": "absent", "healthy": false,
                         "reason": format!("{set} has no inference consumer: activate a model first")}));
    };
    let mapping_enabled = svc.consumers.enabled(CONSUMER).await?;
    let error_rate = if c.processed + c.errors == 0 {
        0.0
    } else {
        c.errors as f64 / (c.processed + c.errors) as f64
    };
    let reason = if c.status != "running" {
        Some(format!("the consumer is {}", c.status))
    } else if mapping_enabled == Some(false) {
        Some(format!(
            "the click stream's mapping to {CONSUMER} is disabled: clicks wait in the stream"
        ))
    } else if c.processed == 0 {
        Some(format!(
            "no clicks processed since it started at {}",
            c.started_at.to_rfc3339()
        ))
    } else if error_rate >= MAX_ERROR_RATE {
        Some(format!(
            "{:.1} % of its clicks were unusable (limit {:.1} %)",
            error_rate * 100.0,
            MAX_ERROR_RATE * 100.0
        ))
    } else {
        None
    };
    let lag = c.last_event_ts.map(|t| (Utc::now() - t).num_seconds());
    Ok(
        json!({"status": c.status, "model_version": c.model_version, "started_at": c.started_at,
               "processed": c.processed, "errors": c.errors, "error_rate": error_rate,
               "lag_seconds": lag, "restarts": c.restarts, "mapping_enabled": mapping_enabled,
               "healthy": reason.is_none(), "reason": reason}),
    )
}

/// Roll back to the previous model version and restart the consumer on it.
pub async fn rollback(svc: &Services<'_>, set: &str, by: &str) -> UseCaseResult<Value> {
    let active = crate::model::active(svc, set).await?.ok_or_else(|| {
        UseCaseError::BadRequest(format!("{set} has no active model to roll back"))
    })?;
    let Some(previous) = active["previous"].as_str() else {
        return Err(UseCaseError::BadRequest(format!(
            "{set} model {} has no previous version to roll back to",
            active["active"].as_str().unwrap_or("?")
        )));
    };
    let activated = crate::model::activate(svc, set, previous, by).await?;
    let consumer = start(svc, set, previous).await?;
    Ok(json!({"activated": activated, "consumer": consumer}))
}

async fn load_model(svc: &Services<'_>, set: &str, version: &str) -> UseCaseResult<Model> {
    let key = format!(
        "{}/{set}/version={version}/model.json",
        Layer::Models.prefix()
    );
    let bytes = svc.objects.get_bytes(&key).await?;
    serde_json::from_slice(&bytes).map_err(|e| UseCaseError::BadRequest(format!("{key}: {e}")))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchOutcome {
    pub processed: usize,
    /// Events that could not be used, with why (kept, never dropped silently).
    pub rejected: Vec<Value>,
    pub model_version: String,
}

/// Recommend for each click: the user's segment's list (from the online
/// features) minus what they just clicked, from the running model version.
pub async fn recommend(
    svc: &Services<'_>,
    set: &str,
    clicks: &[Value],
) -> UseCaseResult<BatchOutcome> {
    let consumer: Consumer = crate::state::get_typed(svc.state, PK, set)
        .await?
        .ok_or_else(|| {
            UseCaseError::BadRequest(format!(
                "no inference consumer for {set}: activate a model first"
            ))
        })?;
    if consumer.status != "running" {
        return Err(UseCaseError::BadRequest(format!(
            "the {set} consumer is {}",
            consumer.status
        )));
    }
    let model = load_model(svc, set, &consumer.model_version).await?;
    let mut processed = 0usize;
    let mut rejected = Vec::new();
    let mut latest: Option<DateTime<Utc>> = None;
    for click in clicks {
        let (Some(user), Some(product)) = (
            click
                .get("user_id")
                .map(|u| u.to_string().trim_matches('"').to_string()),
            click.get("product_id").and_then(|p| p.as_str()),
        ) else {
            rejected.push(json!({"event": click, "error": "a click needs user_id and product_id"}));
            continue;
        };
        let ts = click
            .get("event_ts")
            .and_then(|t| t.as_str())
            .and_then(crate::features::parse_ts);
        latest = latest.max(ts);
        let features = svc.state.get(&format!("online#{set}#user"), &user).await?;
        let segment = features
            .as_ref()
            .map(|f| crate::model::segment_of(&f.value["features"]))
            .unwrap_or_else(|| "unknown".into());
        let items: Vec<&String> = model
            .segments
            .get(&segment)
            .unwrap_or(&model.global)
            .iter()
            .filter(|p| p.as_str() != product)
            .collect();
        let reco = json!({"items": items, "segment": segment, "model_version": model.version, "after_click": product, "at": Utc::now()});
        svc.state
            .put(
                &format!("reco#{set}"),
                &user,
                reco,
                crate::ports::Condition::Always,
            )
            .await?;
        processed += 1;
    }
    let errors = rejected.len() as u64;
    crate::state::update(svc.state, PK, set, |current: Option<Consumer>| {
        current.map(|c| Consumer {
            processed: c.processed + processed as u64,
            errors: c.errors + errors,
            last_event_ts: c.last_event_ts.max(latest),
            ..c
        })
    })
    .await?;
    Ok(BatchOutcome {
        processed,
        rejected,
        model_version: model.version,
    })
}

/// One record of the click stream, as far as its transport could decode it.
#[derive(Debug, Clone)]
pub struct ClickRecord {
    /// The click, or why the record's data is not one.
    pub click: Result<Value, &'static str>,
    /// The record's data as delivered, kept for the dead letter.
    pub data: String,
    /// Where the record sits in the stream (shard, sequence number, arrival).
    pub position: Value,
}

/// What one batch of the click stream did.
#[derive(Debug, Serialize)]
pub struct ClickBatch {
    pub consumers: Vec<Value>,
    pub dead_lettered: usize,
    /// No consumer runs: nothing was read, and the batch goes back to the
    /// stream (a mapping disabled a moment too late still delivers one).
    pub held: bool,
}

/// Recommend for every running consumer from one batch of clicks. Records
/// that do not decode, and clicks a consumer cannot use, are kept in dlq/
/// with their position and the error; they never fail the batch.
pub async fn consume_clicks(
    svc: &Services<'_>,
    records: Vec<ClickRecord>,
    now: DateTime<Utc>,
) -> UseCaseResult<ClickBatch> {
    let running = running_sets(svc).await?;
    if running.is_empty() {
        return Ok(ClickBatch {
            consumers: Vec::new(),
            dead_lettered: 0,
            held: true,
        });
    }
    let mut clicks = Vec::new();
    let mut poison = Vec::new();
    for record in records {
        match record.click {
            Ok(click) => clicks.push(click),
            Err(error) => {
                let mut letter = json!({"error": error, "data": record.data});
                if let (Some(letter), Some(position)) =
                    (letter.as_object_mut(), record.position.as_object())
                {
                    letter.extend(position.clone());
                }
                poison.push(letter);
            }
        }
    }
    let mut consumers = Vec::new();
    for set in &running {
        let outcome = recommend(svc, set, &clicks).await?;
        poison.extend(outcome.rejected.iter().cloned());
        consumers.push(json!({"features": set, "processed": outcome.processed, "model_version": outcome.model_version}));
    }
    if !poison.is_empty() {
        let key = format!(
            "{}click-inference-{}.jsonl",
            crate::layout::partition_prefix(Layer::Dlq, "clicks", now.date_naive()),
            now.timestamp_micros()
        );
        crate::jsonl::put(svc.objects, &key, &poison).await?;
    }
    Ok(ClickBatch {
        consumers,
        dead_lettered: poison.len(),
        held: false,
    })
}
