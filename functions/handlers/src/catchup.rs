//! The catchup state machine's functions (statemachines/catchup): plan the
//! dates behind the watermark, check each, start its run, report.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::Value;
use tributary_core::orchestration;
use tributary_core::partition;
use tributary_core::services::Services;

use crate::error::{bad_event, HandlerError};
use crate::metrics;
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
    let plan = orchestration::plan_catchup(svc, &i.pipeline, at, i.start, i.end, i.force).await?;
    if i.start.is_none() {
        // The nightly run says how fresh the pipeline is.
        let watermark = tributary_core::state::watermark(svc.state, &i.pipeline)
            .await
            .map_err(tributary_core::error::UseCaseError::from)?;
        let lag = freshness_lag_days(&plan, watermark.map(|w| w.date));
        metrics::emit(&metrics::line(
            Utc::now(),
            &[("pipeline", &i.pipeline)],
            &[metrics::Metric {
                name: "WatermarkLagDays",
                unit: "Count",
                value: lag as f64,
            }],
        ));
    }
    encode(&plan)
}

/// The nightly catchup's freshness: from its plan's execution date and the
/// first date with data it saw.
fn freshness_lag_days(plan: &orchestration::CatchupPlan, watermark: Option<NaiveDate>) -> i64 {
    let first_data = plan.dates.iter().chain(&plan.skipped).min().copied();
    orchestration::freshness_lag_days(plan.execution_date, watermark, first_data)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 12, d).unwrap()
    }

    fn plan(dates: &[u32], skipped: &[u32]) -> orchestration::CatchupPlan {
        orchestration::CatchupPlan {
            pipeline: "orders_daily".into(),
            execution_date: day(10),
            dates: dates.iter().map(|d| day(*d)).collect(),
            skipped: skipped.iter().map(|d| day(*d)).collect(),
            force: false,
        }
    }

    /// Freshness: days between where the watermark is and yesterday.
    #[test]
    fn freshness_is_how_far_the_watermark_lags_behind_yesterday() {
        assert_eq!(freshness_lag_days(&plan(&[], &[]), Some(day(10))), 0);
        assert_eq!(freshness_lag_days(&plan(&[8, 9, 10], &[]), Some(day(7))), 3);
        // A watermark ahead (moved by hand) is not negative lag.
        assert_eq!(freshness_lag_days(&plan(&[], &[]), Some(day(12))), 0);
        // No watermark yet: late since the first date with data.
        assert_eq!(freshness_lag_days(&plan(&[9, 10], &[8]), None), 3);
        // No data at all: nothing is late.
        assert_eq!(freshness_lag_days(&plan(&[], &[]), None), 0);
    }
}
