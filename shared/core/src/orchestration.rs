//! The steps `statemachines/partition_pipeline.asl.json` calls besides
//! clean / validate / publish: planning a run, asking a person to approve a
//! held partition, quarantining what was rejected, marking a failed run and
//! alerting, and the per-dataset report of a pipeline date.

use crate::approvals::{self, ApprovalLinks, ApprovalRequest};
use crate::error::{UseCaseError, UseCaseResult};
use crate::partition::DatasetRunReport;
use crate::ports::TaskAnswer;
use crate::quality::QualityReport;
use crate::services::{pipeline_config, Services};
use crate::state::{self, PartitionState};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartitionPlan {
    pub pipeline: String,
    pub date: NaiveDate,
    pub run_id: String,
    pub datasets: Vec<String>,
}

/// The datasets one run of a pipeline date covers.
pub fn plan_partition(
    svc: &Services<'_>,
    pipeline: &str,
    date: NaiveDate,
    run_id: &str,
) -> UseCaseResult<PartitionPlan> {
    let p = pipeline_config(svc.config, pipeline)?;
    Ok(PartitionPlan {
        pipeline: pipeline.to_string(),
        date,
        run_id: run_id.to_string(),
        datasets: p.datasets.clone(),
    })
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApprovalRequested {
    pub approval_id: String,
    pub expires_at: DateTime<Utc>,
    pub links: ApprovalLinks,
    pub message_id: String,
}

/// Ask a person whether to publish partitions held for low quality. The
/// task token stays in the state store; the message carries signed links.
#[allow(clippy::too_many_arguments)]
pub async fn request_partition_approval(
    svc: &Services<'_>,
    token: &str,
    execution: &str,
    pipeline: &str,
    date: NaiveDate,
    run_id: &str,
    held: &[QualityReport],
    ttl: Duration,
) -> UseCaseResult<ApprovalRequested> {
    let datasets: Vec<_> = held
        .iter()
        .map(|r| {
            json!({
                "dataset": r.dataset,
                "rows": r.rows,
                "score": r.score,
                "threshold": r.threshold,
                "failed": r.expectations.iter().filter(|e| !e.passed).map(|e| match &e.column {
                    Some(c) => format!("{} on {c} ({:.1}% ok)", e.expectation, e.success_fraction * 100.0),
                    None => format!("{} ({:.1}% ok)", e.expectation, e.success_fraction * 100.0),
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    let purpose = format!(
        "publish {} for {pipeline} {date} below the quality threshold",
        held.iter()
            .map(|r| r.dataset.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let lines: Vec<String> = held
        .iter()
        .map(|r| {
            format!(
                "  {}: quality {:.3} < {:.3} over {} rows",
                r.dataset, r.score, r.threshold, r.rows
            )
        })
        .collect();
    request_decision(
        svc,
        Decision {
            token,
            execution,
            subject: &format!("Approve {pipeline} {date}?"),
            purpose: &purpose,
            summary: json!({"pipeline": pipeline, "date": date, "run_id": run_id, "held": datasets}),
            detail_lines: &lines,
            ttl,
        },
    )
    .await
}

/// How long a person has to answer a feature or deploy decision.
pub const DECISION_TTL: Duration = Duration::hours(48);

/// The task a decision answers: its token and the execution waiting on it.
#[derive(Debug, Clone, Copy)]
pub struct TaskAsking<'a> {
    pub token: &'a str,
    pub execution: &'a str,
}

/// What a person is asked to decide.
pub struct Decision<'a> {
    pub token: &'a str,
    pub execution: &'a str,
    pub subject: &'a str,
    pub purpose: &'a str,
    /// Shown on the confirmation page.
    pub summary: serde_json::Value,
    /// The message's lines about what is decided.
    pub detail_lines: &'a [String],
    pub ttl: Duration,
}

/// Store an approval request (token server-side) and send the person a
/// message with its signed links.
pub async fn request_decision(
    svc: &Services<'_>,
    d: Decision<'_>,
) -> UseCaseResult<ApprovalRequested> {
    let (approval, links) = approvals::request(
        svc.state,
        &svc.links,
        ApprovalRequest {
            token: d.token.to_string(),
            execution: d.execution.to_string(),
            purpose: d.purpose.to_string(),
            summary: d.summary,
            ttl: d.ttl,
        },
        Utc::now(),
    )
    .await?;
    let message = format!(
        "Approval needed: {}.\n{}\nReview and approve: {}\nReview and reject:  {}\nThe links open a confirmation page and expire at {}.",
        d.purpose,
        d.detail_lines.join("\n"),
        links.approve,
        links.reject,
        approval.expires_at.format("%Y-%m-%d %H:%M UTC")
    );
    let message_id = svc
        .notifier
        .notify("approvals", d.subject, &message)
        .await?;
    Ok(ApprovalRequested {
        approval_id: approval.id,
        expires_at: approval.expires_at,
        links,
        message_id,
    })
}

/// A person decided at `now` (through a signed link or the CLI): record it
/// once, unless the request expired, then answer the task token so the
/// waiting execution resumes.
pub async fn decide_and_answer(
    svc: &Services<'_>,
    id: &str,
    decision: approvals::Decision,
    decider: &str,
    reason: Option<String>,
    details: Option<serde_json::Value>,
    now: DateTime<Utc>,
) -> UseCaseResult<approvals::Approval> {
    let approval = approvals::decide(svc.state, id, decision, decider, reason.clone(), now).await?;
    let answer = match decision {
        approvals::Decision::Approve => {
            // Details (a reviewer's corrections) ride along with the decision.
            let mut output = json!({
                "approved": true, "approval_id": id, "decider": decider, "reason": reason,
            });
            if let (Some(serde_json::Value::Object(extra)), Some(out)) =
                (details, output.as_object_mut())
            {
                for (k, v) in extra {
                    out.entry(k).or_insert(v);
                }
            }
            TaskAnswer::Success(output)
        }
        approvals::Decision::Reject => TaskAnswer::Failure {
            error: "Tributary.Rejected".into(),
            cause: format!(
                "rejected by {decider}{}",
                reason.map(|r| format!(": {r}")).unwrap_or_default()
            ),
        },
    };
    svc.callbacks.answer(&approval.token, answer).await?;
    Ok(approval)
}

async fn mark_run(
    svc: &Services<'_>,
    pipeline: &str,
    date: NaiveDate,
    run_id: &str,
    to: PartitionState,
    reason: &str,
) -> UseCaseResult<Vec<String>> {
    let plan = plan_partition(svc, pipeline, date, run_id)?;
    let mut marked = Vec::new();
    for ds in &plan.datasets {
        let current = state::partition_status(svc.state, ds, date).await?;
        // Only this run's partitions, and never one that is published:
        // a failed later step must not take back what readers already see.
        let ours = current.as_ref().is_some_and(|s| {
            s.run_id.as_deref() == Some(run_id) && s.state != PartitionState::Published
        });
        if !ours {
            continue;
        }
        state::update_partition(svc.state, ds, date, |s| {
            if s.run_id.as_deref() == Some(run_id) && s.state != PartitionState::Published {
                s.state = to;
                s.error = Some(reason.to_string());
            }
        })
        .await?;
        marked.push(ds.clone());
    }
    Ok(marked)
}

/// A held run that was rejected, or whose approval timed out.
pub async fn quarantine_partition(
    svc: &Services<'_>,
    pipeline: &str,
    date: NaiveDate,
    run_id: &str,
    reason: &str,
) -> UseCaseResult<Vec<String>> {
    let marked = mark_run(
        svc,
        pipeline,
        date,
        run_id,
        PartitionState::Quarantined,
        reason,
    )
    .await?;
    svc.notifier
        .notify(
            "alerts",
            &format!("{pipeline} {date} quarantined"),
            &format!("Run {run_id} of {pipeline} {date} was quarantined ({reason}); datasets: {}. Its output stays under the run prefix for inspection.", marked.join(", ")),
        )
        .await?;
    Ok(marked)
}

/// A step failed for good: mark the run's partitions failed and alert.
pub async fn mark_run_failed(
    svc: &Services<'_>,
    pipeline: &str,
    date: NaiveDate,
    run_id: &str,
    error: &str,
    cause: &str,
) -> UseCaseResult<Vec<String>> {
    let reason = format!("{error}: {cause}");
    let marked = mark_run(svc, pipeline, date, run_id, PartitionState::Failed, &reason).await?;
    svc.notifier
        .notify(
            "alerts",
            &format!("{pipeline} {date} failed"),
            &format!("Run {run_id} of {pipeline} {date} failed with {error}: {cause}"),
        )
        .await?;
    Ok(marked)
}

/// Where each dataset of a pipeline date stands.
pub async fn partition_reports(
    svc: &Services<'_>,
    pipeline: &str,
    date: NaiveDate,
) -> UseCaseResult<Vec<DatasetRunReport>> {
    let plan = plan_partition(svc, pipeline, date, "report")?;
    let mut reports = Vec::new();
    for ds in plan.datasets {
        let status = state::partition_status(svc.state, &ds, date).await?;
        let location = svc
            .catalog
            .get_partition(&ds, date)
            .await?
            .map(|p| p.location);
        reports.push(DatasetRunReport {
            dataset: ds,
            date,
            state: status
                .as_ref()
                .map_or("unknown".into(), |s| s.state.name().to_string()),
            stats: status.as_ref().and_then(|s| s.clean.clone()),
            quality_score: status.as_ref().and_then(|s| s.quality_score),
            error: status.and_then(|s| s.error),
            location,
        });
    }
    Ok(reports)
}

// ---------------------------------------------------------------- catchup

/// The longest range one catchup or backfill plans: a year and a day.
pub const MAX_CATCHUP_DATES: i64 = 366;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CatchupPlan {
    pub pipeline: String,
    /// The last date to process: yesterday in the pipeline's time zone at
    /// the scheduled time, unless given.
    pub execution_date: NaiveDate,
    /// Dates to run, oldest first.
    pub dates: Vec<NaiveDate>,
    /// Already published (skipped unless forced).
    pub skipped: Vec<NaiveDate>,
    pub force: bool,
}

/// The date a pipeline should have completed by `now`: yesterday in its
/// time zone (what the nightly catchup's execution date is).
pub fn due_date(pipeline: &crate::config::PipelineConfig, now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&pipeline.tz()).date_naive() - Duration::days(1)
}

/// Freshness: how many days a pipeline's watermark lags behind the date it
/// is due to have reached; 0 when current (or moved ahead by hand). Without
/// a watermark it is late since the day before its first date with data;
/// without data, nothing is late.
pub fn freshness_lag_days(
    due: NaiveDate,
    watermark: Option<NaiveDate>,
    first_data: Option<NaiveDate>,
) -> i64 {
    let reached = watermark.or_else(|| first_data.map(|first| first - Duration::days(1)));
    reached.map_or(0, |reached| (due - reached).num_days().max(0))
}

/// Plan the dates between the watermark (exclusive) and the execution date,
/// or an explicit range. Without a watermark the range starts at the
/// pipeline's start_date, or, without one, at the earliest date any of the
/// pipeline's datasets arrived for.
pub async fn plan_catchup(
    svc: &Services<'_>,
    pipeline: &str,
    scheduled_time: DateTime<Utc>,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
    force: bool,
) -> UseCaseResult<CatchupPlan> {
    let p = pipeline_config(svc.config, pipeline)?;
    let execution_date = end.unwrap_or_else(|| due_date(p, scheduled_time));
    let start = match start {
        Some(s) => s,
        None => match state::watermark(svc.state, pipeline).await? {
            Some(w) => w.date + Duration::days(1),
            None => match p.start_date {
                Some(first) => first,
                None => earliest_arrival(svc, &p.datasets)
                    .await?
                    .unwrap_or(execution_date),
            },
        },
    };
    if start > execution_date {
        return Ok(CatchupPlan {
            pipeline: pipeline.to_string(),
            execution_date,
            dates: vec![],
            skipped: vec![],
            force,
        });
    }
    let span = (execution_date - start).num_days() + 1;
    if span > MAX_CATCHUP_DATES {
        return Err(UseCaseError::BadRequest(format!(
            "{start}..{execution_date} has {span} dates; a catchup covers at most {MAX_CATCHUP_DATES}: split it into several backfills"
        )));
    }
    let mut dates = Vec::new();
    let mut skipped = Vec::new();
    for offset in 0..span {
        let date = start + Duration::days(offset);
        let mut published = true;
        for ds in &p.datasets {
            let st = state::partition_status(svc.state, ds, date).await?;
            published &= st.is_some_and(|s| s.state == PartitionState::Published);
        }
        if published && !force {
            skipped.push(date);
        } else {
            dates.push(date);
        }
    }
    Ok(CatchupPlan {
        pipeline: pipeline.to_string(),
        execution_date,
        dates,
        skipped,
        force,
    })
}

async fn earliest_arrival(
    svc: &Services<'_>,
    datasets: &[String],
) -> UseCaseResult<Option<NaiveDate>> {
    let mut earliest: Option<NaiveDate> = None;
    for ds in datasets {
        for status in state::all_partitions(svc.state, ds).await? {
            if !status.files.is_empty() {
                earliest = Some(earliest.map_or(status.date, |e| e.min(status.date)));
            }
        }
    }
    Ok(earliest)
}

/// What catchup did for one date.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CatchupStatus {
    /// A run was started.
    Started,
    /// The run of these files was started earlier and has not ended.
    Running,
    /// The run of these files failed; a new file or `--force` re-runs it.
    Failed,
    /// The run of these files was held and rejected or not decided in time.
    Quarantined,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CatchupStart {
    pub pipeline: String,
    pub date: NaiveDate,
    pub status: CatchupStatus,
    /// The execution started, or the one that ran these files.
    pub execution_name: Option<String>,
    pub newly_started: bool,
    /// Why the date did not start (the failed or quarantined run's error).
    pub reason: Option<String>,
}

/// Start the partition run of a ready date (idempotent by name; `force`
/// starts a re-run even when one ran for these files). A date whose run of
/// the same files failed or was quarantined is reported as such and not
/// started again: only a new file (a new run id) or `force` re-runs it.
pub async fn start_partition_run(
    svc: &Services<'_>,
    pipeline: &str,
    date: NaiveDate,
    force: bool,
    requested_by: &str,
    now: DateTime<Utc>,
) -> UseCaseResult<CatchupStart> {
    let readiness = crate::partition::date_readiness(svc, pipeline, date, now).await?;
    let Some(run_id) = readiness.run_id else {
        return Err(UseCaseError::WrongState {
            dataset: readiness.missing.join(", "),
            date,
            state: "missing".into(),
            what: format!("{pipeline} {date} is not data_ready"),
        });
    };
    if !force {
        // A new file resets its partition to `arrived`, so a failed or
        // quarantined state here belongs to a run of the current files.
        let p = pipeline_config(svc.config, pipeline)?;
        for ds in &p.datasets {
            let Some(st) = state::partition_status(svc.state, ds, date).await? else {
                continue;
            };
            let status = match st.state {
                PartitionState::Failed => CatchupStatus::Failed,
                PartitionState::Quarantined => CatchupStatus::Quarantined,
                _ => continue,
            };
            return Ok(CatchupStart {
                pipeline: pipeline.to_string(),
                date,
                status,
                execution_name: st.run_id.map(|r| format!("{pipeline}-{date}-{r}")),
                newly_started: false,
                reason: Some(format!(
                    "{ds}: {}",
                    st.error.unwrap_or_else(|| st.state.name().to_string())
                )),
            });
        }
    }
    let tag = force.then(|| {
        let digest = xxhash_rust::xxh3::xxh3_64(
            format!("{requested_by}\u{1f}{}", Utc::now().timestamp_micros()).as_bytes(),
        );
        format!("r{:08x}", digest as u32)
    });
    let started = crate::partition::start_run(svc, pipeline, date, &run_id, tag.as_deref()).await?;
    Ok(CatchupStart {
        pipeline: pipeline.to_string(),
        date,
        status: if started.newly_started {
            CatchupStatus::Started
        } else {
            CatchupStatus::Running
        },
        execution_name: Some(started.execution_name),
        newly_started: started.newly_started,
        reason: None,
    })
}

/// The catchup report's groups, in the order people read them.
pub const CATCHUP_GROUPS: [(&str, &str); 7] = [
    ("started", "started"),
    ("running", "already running"),
    ("published", "already published"),
    ("failed", "failed"),
    ("quarantined", "quarantined"),
    ("waiting_for_data", "waiting for data"),
    ("no_data", "data never came"),
];

/// After a catchup: per date, what happened (started, already running,
/// already published, failed, quarantined, waiting for data, data never
/// came), and an alert naming every date that needs a person.
pub async fn report_catchup(
    svc: &Services<'_>,
    pipeline: &str,
    results: &[serde_json::Value],
    published: &[NaiveDate],
) -> UseCaseResult<serde_json::Value> {
    let mut groups: std::collections::BTreeMap<&str, Vec<serde_json::Value>> =
        CATCHUP_GROUPS.iter().map(|(k, _)| (*k, vec![])).collect();
    let mut lines = Vec::new();
    for r in results {
        let date = r["date"].as_str().unwrap_or("?").to_string();
        let (group, why) = match r["status"].as_str() {
            Some("started") => ("started", None),
            Some("running") => ("running", None),
            Some("quarantined") => ("quarantined", r["reason"].as_str().map(str::to_string)),
            // Polled to the end without the date becoming complete: some
            // data came (waiting) or none at all.
            Some("no_data") if r["any_data"] == true => (
                "waiting_for_data",
                Some(format!("still waiting for {}", r["waiting_for"])),
            ),
            Some("no_data") => ("no_data", Some(format!("still missing {}", r["missing"]))),
            _ => (
                "failed",
                Some(
                    r["reason"]
                        .as_str()
                        .or(r["error"]["Cause"].as_str())
                        .unwrap_or("?")
                        .to_string(),
                ),
            ),
        };
        if let Some(why) = why {
            lines.push(format!("  {date} {group}: {why}"));
        }
        if let Some(list) = groups.get_mut(group) {
            list.push(serde_json::Value::String(date));
        }
    }
    if let Some(list) = groups.get_mut("published") {
        list.extend(published.iter().map(|d| json!(d)));
    }
    if !lines.is_empty() {
        svc.notifier
            .notify(
                "alerts",
                &format!("{pipeline} catchup: {} date(s) need attention", lines.len()),
                &format!(
                    "Catchup of {pipeline} started {} run(s); these dates did not run:\n{}\nA new file for a date, or `tributary backfill --force`, runs it again.",
                    groups["started"].len(),
                    lines.join("\n")
                ),
            )
            .await?;
    }
    let mut out = serde_json::Map::new();
    out.insert("pipeline".into(), json!(pipeline));
    for (k, v) in groups {
        out.insert(k.into(), serde_json::Value::Array(v));
    }
    Ok(serde_json::Value::Object(out))
}
