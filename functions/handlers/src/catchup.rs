//! The catchup state machine's functions (statemachines/catchup): plan the
//! dates behind the watermark, check each, start its run, report.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::Value;
use tributary_core::orchestration;
use tributary_core::partition;
use tributary_core::services::Services;

use crate::error::{bad_event, HandlerError};
use crate::wire::{self, decode, encode};

/// A catchup's input: from the schedule `{pipeline, scheduled_time}`, or
/// from a backfill `{pipeline, start, end, force}`.
#[derive(Debug, Deserialize)]
struct CatchupInput {
    pipeline: String,
    #[serde(default)]
    scheduled_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::optional_date")]
    start: Option<NaiveDate>,
    #[serde(default, deserialize_with = "wire::optional_date")]
    end: Option<NaiveDate>,
    #[serde(default)]
    force: bool,
}

pub async fn plan_catchup(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: CatchupInput = decode(
        event,
        "{pipeline, scheduled_time} or {pipeline, start, end, force}",
    )?;
    if let (Some(s), Some(e)) = (i.start, i.end) {
        if s > e {
            return Err(bad_event(format!("start {s} is after end {e}")));
        }
    }
    let at = i.scheduled_time.unwrap_or_else(Utc::now);
    encode(&orchestration::plan_catchup(svc, &i.pipeline, at, i.start, i.end, i.force).await?)
}

#[derive(Debug, Deserialize)]
struct CheckDateInput {
    pipeline: String,
    #[serde(deserialize_with = "wire::date")]
    date: NaiveDate,
    /// The execution's time (`$$.State.EnteredTime`): quiet-period
    /// completion is judged at it, so a virtual clock is honoured. Absent
    /// when an operator invokes the function by hand: now.
    #[serde(default)]
    now: Option<DateTime<Utc>>,
}

pub async fn check_date(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: CheckDateInput = decode(event, "{pipeline, date[, now]}")?;
    let plan = orchestration::plan_partition(svc, &i.pipeline, i.date, "check")?;
    for ds in &plan.datasets {
        partition::discover_arrivals(svc, ds, i.date).await?;
    }
    let now = i.now.unwrap_or_else(Utc::now);
    encode(&partition::date_readiness(svc, &i.pipeline, i.date, now).await?)
}

#[derive(Debug, Deserialize)]
struct StartRunInput {
    pipeline: String,
    #[serde(deserialize_with = "wire::date")]
    date: NaiveDate,
    /// Run it even if its files did not change since it failed.
    #[serde(default)]
    force: bool,
    /// As in [`CheckDateInput::now`].
    #[serde(default)]
    now: Option<DateTime<Utc>>,
}

pub async fn start_partition_run(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: StartRunInput = decode(event, "{pipeline, date, force[, now]}")?;
    encode(
        &orchestration::start_partition_run(
            svc,
            &i.pipeline,
            i.date,
            i.force,
            "catchup",
            i.now.unwrap_or_else(Utc::now),
        )
        .await?,
    )
}

#[derive(Debug, Deserialize)]
struct ReportInput {
    pipeline: String,
    results: Vec<Value>,
    /// Dates the plan skipped because they are published.
    #[serde(default)]
    published: Vec<NaiveDate>,
}

pub async fn catchup_report(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: ReportInput = decode(event, "{pipeline, results[, published]}")?;
    Ok(orchestration::report_catchup(svc, &i.pipeline, &i.results, &i.published).await?)
}
