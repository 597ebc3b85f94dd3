//! start-downstream: what starts the feature pipeline and labeling on a
//! deployed stack. EventBridge hands it every partition pipeline execution
//! that succeeded (a published date); EventBridge Scheduler calls it daily
//! for the feature sets' runs of yesterday.

use chrono::{DateTime, NaiveDate};
use serde::Deserialize;
use serde_json::{json, Value};
use tributary_core::downstream;
use tributary_core::services::Services;

use crate::error::{bad_event, HandlerError};
use crate::wire::{self, decode, encode};

/// A Step Functions "Execution Status Change" event: its input is the
/// execution's input as JSON text.
#[derive(Debug, Deserialize)]
struct StatusChange {
    status: String,
    input: Option<String>,
}

/// The partition pipeline's input, `{pipeline, date, run_id}`.
#[derive(Debug, Deserialize)]
struct PipelineRun {
    pipeline: String,
    #[serde(deserialize_with = "wire::date")]
    date: NaiveDate,
    #[serde(deserialize_with = "wire::run_id")]
    run_id: String,
}

/// The daily schedule's `{time}` (the runs of the day before it), or a
/// `{date}` given by hand.
#[derive(Debug, Deserialize)]
struct Daily {
    time: Option<String>,
    #[serde(default, deserialize_with = "wire::optional_date")]
    date: Option<NaiveDate>,
}

const SHAPE: &str = "an EventBridge \"Step Functions Execution Status Change\" event of the partition pipeline, or a schedule's {time}, or {date}";

pub async fn start_downstream(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    if let Some(detail) = event.get("detail") {
        let change: StatusChange = decode(detail.clone(), "detail {status, input}")?;
        if change.status != "SUCCEEDED" {
            // The rule matches SUCCEEDED only; anything else published nothing.
            return Ok(json!({"started": [], "skipped": format!("execution {}", change.status)}));
        }
        let input = change
            .input
            .ok_or_else(|| bad_event("the execution's input is missing from the event".into()))?;
        let input: Value = serde_json::from_str(&input)
            .map_err(|e| bad_event(format!("the execution's input is not JSON: {e}")))?;
        let run: PipelineRun = decode(input, "an execution input {pipeline, date, run_id}")?;
        let started =
            downstream::start_after_publish(svc, &run.pipeline, run.date, &run.run_id).await?;
        return Ok(json!({"started": encode(&started)?}));
    }
    let daily: Daily = decode(event, SHAPE)?;
    let date = match (daily.date, daily.time) {
        (Some(date), _) => date,
        (None, Some(time)) => {
            let time = DateTime::parse_from_rfc3339(&time)
                .map_err(|e| bad_event(format!("time {time:?}: {e}")))?;
            time.date_naive()
                .pred_opt()
                .ok_or_else(|| bad_event(format!("time {time} has no day before it")))?
        }
        (None, None) => return Err(bad_event(format!("expected {SHAPE}"))),
    };
    let started = downstream::start_daily_features(svc, date).await?;
    Ok(json!({"started": encode(&started)?}))
}
