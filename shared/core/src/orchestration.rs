//! The steps `statemachines/partition_pipeline.asl.json` calls besides
//! clean / validate / publish: planning a run, asking a person to approve a
//! held partition, quarantining what was rejected, marking a failed run and
//! alerting, and the per-dataset report of a pipeline date.

use crate::approvals::{self, ApprovalLinks, ApprovalRequest};
use crate::ports::TaskAnswer;
use crate::quality::QualityReport;
use crate::state::{self, PartitionState};
use crate::usecases::{DatasetRunReport, Services, UseCaseError, UseCaseResult};
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

fn unknown_pipeline(svc: &Services<'_>, pipeline: &str) -> UseCaseError {
    UseCaseError::UnknownPipeline {
        pipeline: pipeline.to_string(),
        known: svc
            .config
            .pipelines
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The datasets one run of a pipeline date covers.
pub fn plan_partition(
    svc: &Services<'_>,
    pipeline: &str,
    date: NaiveDate,
    run_id: &str,
) -> UseCaseResult<PartitionPlan> {
    let p = svc
        .config
        .pipelines
        .get(pipeline)
        .ok_or_else(|| unknown_pipeline(svc, pipeline))?;
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
    let now = Utc::now();
    let (approval, links) = approvals::request(
        svc.state,
        &svc.links,
        ApprovalRequest {
            token: token.to_string(),
            execution: execution.to_string(),
            purpose: purpose.clone(),
            summary: json!({"pipeline": pipeline, "date": date, "run_id": run_id, "held": datasets}),
            ttl,
        },
        now,
    )
    .await?;
    let lines: Vec<String> = held
        .iter()
        .map(|r| {
            format!(
                "  {}: quality {:.3} < {:.3} over {} rows",
                r.dataset, r.score, r.threshold, r.rows
            )
        })
        .collect();
    let message = format!(
        "Approval needed: {purpose}.\n{}\nReview and approve: {}\nReview and reject:  {}\nThe links open a confirmation page and expire at {}.",
        lines.join("\n"),
        links.approve,
        links.reject,
        approval.expires_at.format("%Y-%m-%d %H:%M UTC")
    );
    let message_id = svc
        .notifier
        .notify(
            "approvals",
            &format!("Approve {pipeline} {date}?"),
            &message,
        )
        .await?;
    Ok(ApprovalRequested {
        approval_id: approval.id,
        expires_at: approval.expires_at,
        links,
        message_id,
    })
}

/// A person decided (through a signed link or the CLI): record it once,
/// then answer the task token so the waiting execution resumes.
pub async fn decide_and_answer(
    svc: &Services<'_>,
    id: &str,
    decision: approvals::Decision,
    decider: &str,
    reason: Option<String>,
) -> UseCaseResult<approvals::Approval> {
    let approval =
        approvals::decide(svc.state, id, decision, decider, reason.clone(), Utc::now()).await?;
    let answer = match decision {
        approvals::Decision::Approve => TaskAnswer::Success(json!({
            "approved": true, "approval_id": id, "decider": decider, "reason": reason,
        })),
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
