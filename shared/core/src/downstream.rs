//! What starts the feature pipeline and labeling on a deployed stack: a
//! pipeline date that publishes starts every feature set reading one of its
//! datasets and every labeling of one of them; a daily schedule starts each
//! feature set for yesterday unless a run for that date was already started
//! (the windows slide even on a day nothing upstream changed).
//!
//! Each start is recorded per (workflow, name, date), so the schedule can
//! tell and an operator can see it; a run that fails marks its record and
//! alerts, as a failed partition run does.

use crate::error::{UseCaseError, UseCaseResult};
use crate::ports::{Condition, PortError, Workflow};
use crate::services::Services;
use crate::state::{self, PartitionState};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// One run to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownstreamRun {
    pub workflow: Workflow,
    /// The feature set or labeling.
    pub name: String,
    pub date: NaiveDate,
    pub run_id: String,
    pub execution_name: String,
    /// What started it: `publish of <pipeline> run <run_id>` or `daily`.
    pub trigger: String,
}

/// What was started (false: a run of that name already existed, or the
/// daily found one already started for the date).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartedDownstream {
    #[serde(flatten)]
    pub run: DownstreamRun,
    pub started: bool,
}

/// A started run as recorded in the state store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub execution_name: String,
    pub trigger: String,
    pub started_at: DateTime<Utc>,
    /// `started`, or `failed` once the run's failure path marked it.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The state-store key of a workflow's runs of one name (sort key: date).
pub fn record_pk(workflow: Workflow, name: &str) -> String {
    format!("runs#{}#{name}", workflow.file_name())
}

/// Step Functions allows 80 characters; a longer name keeps its start and
/// ends in a hash of the whole, so it stays unique and readable.
fn execution_name(parts: &[&str]) -> String {
    let full = parts.join("-");
    if full.len() <= 80 {
        return full;
    }
    let hash = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(full.as_bytes()));
    let keep = full
        .char_indices()
        .take_while(|(i, _)| *i < 80 - hash.len() - 1)
        .map(|(_, c)| c)
        .collect::<String>();
    format!("{keep}-{hash}")
}

fn run(
    workflow: Workflow,
    name: &str,
    date: NaiveDate,
    run_id: &str,
    trigger: String,
) -> DownstreamRun {
    DownstreamRun {
        workflow,
        name: name.to_string(),
        date,
        run_id: run_id.to_string(),
        execution_name: execution_name(&[name, &date.to_string(), run_id]),
        trigger,
    }
}

/// The runs a published pipeline date starts: each feature set with a
/// source among `published`, each labeling of one of them. The run id
/// names the partition run, so a republished date starts new runs and a
/// redelivered event starts none.
pub fn after_publish(
    svc: &Services<'_>,
    pipeline: &str,
    date: NaiveDate,
    run_id: &str,
    published: &[String],
) -> Vec<DownstreamRun> {
    let reads = |ds: &str| published.iter().any(|p| p == ds);
    let run_id = format!("{pipeline}-{run_id}");
    let trigger = format!("publish of {pipeline} {date}");
    let mut runs = Vec::new();
    for (set, f) in &svc.config.features {
        if reads(&f.orders_dataset) || reads(&f.events_dataset) {
            runs.push(run(
                Workflow::FeaturePipeline,
                set,
                date,
                &run_id,
                trigger.clone(),
            ));
        }
    }
    for (labeling, l) in &svc.config.labeling {
        if reads(&l.dataset) {
            runs.push(run(
                Workflow::Labeling,
                labeling,
                date,
                &run_id,
                trigger.clone(),
            ));
        }
    }
    runs
}

/// The input each state machine reads (`{features|labeling, date, run_id}`).
fn input(run: &DownstreamRun) -> serde_json::Value {
    json!({ run.workflow.input_key(): run.name, "date": run.date, "run_id": run.run_id })
}

/// Start what a published pipeline date feeds. Only datasets of the
/// pipeline whose partition is published count: the event says an
/// execution succeeded, the state store says what it published.
pub async fn start_after_publish(
    svc: &Services<'_>,
    pipeline: &str,
    date: NaiveDate,
    run_id: &str,
) -> UseCaseResult<Vec<StartedDownstream>> {
    let Some(p) = svc.config.pipelines.get(pipeline) else {
        return Err(UseCaseError::UnknownPipeline {
            pipeline: pipeline.to_string(),
            known: svc
                .config
                .pipelines
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let mut published = Vec::new();
    for ds in &p.datasets {
        let status = state::partition_status(svc.state, ds, date).await?;
        if status.is_some_and(|s| s.state == PartitionState::Published) {
            published.push(ds.clone());
        }
    }
    let mut started = Vec::new();
    for run in after_publish(svc, pipeline, date, run_id, &published) {
        started.push(start(svc, run, false).await?);
    }
    Ok(started)
}

/// The daily schedule: each feature set for `date`, unless a run for that
/// date was started already (by a publish, or an earlier schedule).
pub async fn start_daily_features(
    svc: &Services<'_>,
    date: NaiveDate,
) -> UseCaseResult<Vec<StartedDownstream>> {
    let mut started = Vec::new();
    for set in svc.config.features.keys() {
        let run = run(
            Workflow::FeaturePipeline,
            set,
            date,
            "daily",
            "daily".into(),
        );
        started.push(start(svc, run, true).await?);
    }
    Ok(started)
}

/// Record the run, then start it. `only_first`: start nothing when the date
/// already has a recorded run.
async fn start(
    svc: &Services<'_>,
    run: DownstreamRun,
    only_first: bool,
) -> UseCaseResult<StartedDownstream> {
    let record = RunRecord {
        run_id: run.run_id.clone(),
        execution_name: run.execution_name.clone(),
        trigger: run.trigger.clone(),
        started_at: Utc::now(),
        state: "started".into(),
        error: None,
    };
    let pk = record_pk(run.workflow, &run.name);
    let sk = run.date.to_string();
    let condition = if only_first {
        Condition::NotExists
    } else {
        Condition::Always
    };
    match svc
        .state
        .put(&pk, &sk, state::encode("a run record", &record)?, condition)
        .await
    {
        Ok(_) => {}
        Err(PortError::ConditionFailed { .. }) => {
            return Ok(StartedDownstream {
                run,
                started: false,
            })
        }
        Err(e) => return Err(e.into()),
    }
    let started = svc
        .workflows
        .start(run.workflow, &run.execution_name, input(&run))
        .await?;
    Ok(StartedDownstream { run, started })
}

/// A feature or labeling run's failure path: its record says failed, with
/// the error, and the alerts audience is told.
pub async fn mark_failed(
    svc: &Services<'_>,
    workflow: Workflow,
    name: &str,
    date: NaiveDate,
    run_id: &str,
    error: &str,
    cause: &str,
) -> UseCaseResult<RunRecord> {
    let reason = format!("{error}: {cause}");
    let what = workflow.input_key();
    let marked = state::update(
        svc.state,
        &record_pk(workflow, name),
        &date.to_string(),
        |current: Option<RunRecord>| {
            // A run started by hand (the CLI) has no record yet.
            let mut record = current.unwrap_or_else(|| RunRecord {
                run_id: run_id.to_string(),
                execution_name: String::new(),
                trigger: "manual".into(),
                started_at: Utc::now(),
                state: "started".into(),
                error: None,
            });
            if record.run_id == run_id {
                record.state = "failed".into();
                record.error = Some(reason.clone());
            }
            Some(record)
        },
    )
    .await?
    .ok_or_else(|| UseCaseError::BadRequest(format!("{what} {name} {date}: no run record")))?;
    svc.notifier
        .notify(
            "alerts",
            &format!("{what} {name} {date} failed"),
            &format!("Run {run_id} of {what} {name} {date} failed with {reason}"),
        )
        .await?;
    Ok(marked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_execution_names_fit_and_stay_distinct() {
        let a = execution_name(&[
            &"s".repeat(60),
            "2025-12-03",
            "orders_daily-0123456789abcdef",
        ]);
        let b = execution_name(&[
            &"s".repeat(60),
            "2025-12-03",
            "orders_daily-fedcba9876543210",
        ]);
        assert!(a.len() <= 80 && b.len() <= 80, "{a} {b}");
        assert_ne!(a, b);
        assert_eq!(
            execution_name(&["shop", "2025-12-03", "daily"]),
            "shop-2025-12-03-daily"
        );
    }
}
