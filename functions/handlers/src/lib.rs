//! Lambda handler logic: an AWS event (as JSON) in, a use case called, a
//! JSON response or a typed error out. No Lambda runtime and no SDK here, so
//! the `tributary` CLI calls exactly these functions in-process.

use aws_lambda_events::event::s3::S3Event;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{json, Value};
use tributary_core::error::UseCaseError;
use tributary_core::features;
use tributary_core::inference;
use tributary_core::labeling;
use tributary_core::layout::parse_date;
use tributary_core::model;
use tributary_core::orchestration;
use tributary_core::partition;
use tributary_core::retention;
use tributary_core::services::Services;

/// The functions, by the name their binary and Terraform resource use.
pub mod approval_callback;
pub mod process;
pub mod stream;

pub const FUNCTIONS: [&str; 34] = [
    "object-created",
    "plan-partition",
    "clean-partition",
    "validate-partition",
    "publish-partition",
    "request-approval",
    "quarantine-partition",
    "mark-failed",
    "approval-callback",
    "plan-catchup",
    "check-date",
    "start-partition-run",
    "catchup-report",
    "auto-label",
    "request-label-review",
    "apply-label-review",
    "merge-labels",
    "compute-features",
    "merge-features",
    "request-feature-approval",
    "publish-features",
    "build-training-set",
    "train-model",
    "request-deploy-approval",
    "activate-model",
    "start-inference",
    "inference-health",
    "click-inference",
    "stream-aggregate",
    "build-views",
    "query-api",
    "reconcile",
    "replay-dlq",
    "retention-sweep",
];

/// A handler failure as Lambda reports it: `error_type` is what Step
/// Functions matches in `Retry`/`Catch` (`Tributary.Retryable`, ...).
#[derive(Debug, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct HandlerError {
    pub error_type: String,
    pub message: String,
    pub retryable: bool,
}

impl From<UseCaseError> for HandlerError {
    fn from(e: UseCaseError) -> Self {
        HandlerError {
            error_type: e.error_name().to_string(),
            message: e.to_string(),
            retryable: e.retryable(),
        }
    }
}

pub(crate) fn bad_event(message: String) -> HandlerError {
    HandlerError {
        error_type: "Tributary.BadEvent".into(),
        message,
        retryable: false,
    }
}

/// How a Lambda process running `function` sets itself up: only the
/// cleaner handles bulk data (object-created starts an execution, it does
/// not clean in the Lambda).
pub fn workload_of(function: &str) -> process::Workload {
    match function {
        "clean-partition" => process::Workload::Bulk,
        _ => process::Workload::Light,
    }
}

/// Run a function by name on a raw event.
pub async fn invoke(
    svc: &Services<'_>,
    function: &str,
    event: Value,
) -> Result<Value, HandlerError> {
    match function {
        "object-created" => object_created(svc, event).await,
        "clean-partition" => clean_partition(svc, event).await,
        "validate-partition" => validate_partition(svc, event).await,
        "publish-partition" => publish_partition(svc, event).await,
        "plan-partition" => plan_partition(svc, event).await,
        "request-approval" => request_approval(svc, event).await,
        "quarantine-partition" => quarantine_partition(svc, event).await,
        "mark-failed" => mark_failed(svc, event).await,
        "plan-catchup" => plan_catchup(svc, event).await,
        "check-date" => check_date(svc, event).await,
        "start-partition-run" => start_partition_run(svc, event).await,
        "catchup-report" => catchup_report(svc, event).await,
        "auto-label" => auto_label(svc, event).await,
        "request-label-review" => request_label_review(svc, event).await,
        "apply-label-review" => apply_label_review(svc, event).await,
        "merge-labels" => merge_labels(svc, event).await,
        "compute-features" => compute_features(svc, event).await,
        "merge-features" => merge_features(svc, event).await,
        "request-feature-approval" => request_feature_approval(svc, event).await,
        "publish-features" => publish_features(svc, event).await,
        "build-training-set" => build_training_set(svc, event).await,
        "train-model" => train_model(svc, event).await,
        "request-deploy-approval" => request_deploy_approval(svc, event).await,
        "activate-model" => activate_model(svc, event).await,
        "start-inference" => start_inference(svc, event).await,
        "inference-health" => inference_health(svc, event).await,
        "click-inference" => click_inference(svc, event).await,
        "stream-aggregate" => stream::stream_aggregate(svc, event).await,
        "build-views" => stream::build_views(svc, event).await,
        "query-api" => stream::query_api(svc, event).await,
        "reconcile" => stream::reconcile_streams(svc, event).await,
        "replay-dlq" => stream::replay_dlq(svc, event).await,
        "retention-sweep" => retention_sweep(svc, event).await,
        "approval-callback" => {
            let request = approval_callback::HttpRequest::from_event(&event)?;
            Ok(approval_callback::handle(svc, &request, chrono::Utc::now()).await)
        }
        other => Err(bad_event(format!(
            "unknown function {other:?}; known: {}",
            FUNCTIONS.join(", ")
        ))),
    }
}

/// One created object, whichever notification shape carried it.
#[derive(Debug, PartialEq)]
pub struct CreatedObject {
    /// As delivered: URL-encoded.
    pub encoded_key: String,
    pub etag: String,
    pub size: u64,
}

#[derive(Deserialize)]
struct EventBridgeObject {
    key: String,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    size: Option<u64>,
}

#[derive(Deserialize)]
struct EventBridgeDetail {
    object: EventBridgeObject,
}

/// Accept the direct S3 notification (`Records[]`) and the EventBridge
/// "Object Created" shape. Both carry the key URL-encoded.
pub fn created_objects(event: &Value) -> Result<Vec<CreatedObject>, HandlerError> {
    if event.get("Records").is_some() {
        let parsed: S3Event = serde_json::from_value(event.clone())
            .map_err(|e| bad_event(format!("not an S3 notification: {e}")))?;
        return parsed
            .records
            .into_iter()
            .filter(|r| {
                r.event_name
                    .as_deref()
                    .is_none_or(|n| n.starts_with("ObjectCreated"))
            })
            .map(|r| {
                let key =
                    r.s3.object
                        .key
                        .ok_or_else(|| bad_event("S3 record without s3.object.key".into()))?;
                Ok(CreatedObject {
                    encoded_key: key,
                    etag: r.s3.object.e_tag.unwrap_or_default(),
                    size: r.s3.object.size.unwrap_or(0).max(0) as u64,
                })
            })
            .collect();
    }
    if let Some(detail_type) = event.get("detail-type").and_then(Value::as_str) {
        if detail_type != "Object Created" {
            return Err(bad_event(format!(
                "EventBridge event of type {detail_type:?}; object-created handles \"Object Created\" only"
            )));
        }
        let detail: EventBridgeDetail = serde_json::from_value(
            event.get("detail").cloned().unwrap_or(Value::Null),
        )
        .map_err(|e| {
            bad_event(format!(
                "EventBridge Object Created without detail.object.key: {e}"
            ))
        })?;
        return Ok(vec![CreatedObject {
            encoded_key: detail.object.key,
            etag: detail.object.etag.unwrap_or_default(),
            size: detail.object.size.unwrap_or(0),
        }]);
    }
    Err(bad_event(
        "neither an S3 notification (Records[]) nor an EventBridge \"Object Created\" event".into(),
    ))
}

pub async fn object_created(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let mut outcomes = Vec::new();
    for o in created_objects(&event)? {
        let outcome = partition::on_object_created(svc, &o.encoded_key, &o.etag, o.size).await?;
        outcomes.push(outcome);
    }
    Ok(json!({ "objects": outcomes }))
}

/// The input every partition step receives from the state machine.
#[derive(Debug, Deserialize)]
pub struct PartitionInput {
    pub dataset: String,
    pub date: String,
    pub run_id: String,
    #[serde(default)]
    pub approved: bool,
}

impl PartitionInput {
    fn parse(event: Value) -> Result<(PartitionInput, NaiveDate), HandlerError> {
        let input: PartitionInput = serde_json::from_value(event)
            .map_err(|e| bad_event(format!("expected {{dataset, date, run_id}}: {e}")))?;
        let date = parse_date(&input.date)
            .ok_or_else(|| bad_event(format!("date {:?} is not YYYY-MM-DD", input.date)))?;
        if input.run_id.is_empty() || !tributary_core::layout::valid_name(&input.run_id) {
            return Err(bad_event(format!(
                "run_id {:?} must be letters, digits, '_' or '-'",
                input.run_id
            )));
        }
        Ok((input, date))
    }
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, HandlerError> {
    serde_json::to_value(v).map_err(|e| HandlerError {
        error_type: "Tributary.Failed".into(),
        message: format!("encoding the response: {e}"),
        retryable: false,
    })
}

pub async fn clean_partition(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let (i, date) = PartitionInput::parse(event)?;
    to_json(&partition::clean_partition(svc, &i.dataset, date, &i.run_id).await?)
}

pub async fn validate_partition(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let (i, date) = PartitionInput::parse(event)?;
    to_json(&partition::validate_partition(svc, &i.dataset, date, &i.run_id).await?)
}

pub async fn publish_partition(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let (i, date) = PartitionInput::parse(event)?;
    to_json(&partition::publish_partition(svc, &i.dataset, date, &i.run_id, i.approved).await?)
}

/// `{pipeline, date, run_id}`: what every run-level step receives.
#[derive(Debug, Deserialize)]
struct RunInput {
    pipeline: String,
    date: String,
    run_id: String,
}

pub(crate) fn parse_run<T: serde::de::DeserializeOwned>(
    event: Value,
    shape: &str,
) -> Result<T, HandlerError> {
    serde_json::from_value(event).map_err(|e| bad_event(format!("expected {shape}: {e}")))
}

pub(crate) fn run_date(date: &str) -> Result<NaiveDate, HandlerError> {
    parse_date(date).ok_or_else(|| bad_event(format!("date {date:?} is not YYYY-MM-DD")))
}

pub async fn plan_partition(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: RunInput = parse_run(event, "{pipeline, date, run_id}")?;
    to_json(&orchestration::plan_partition(
        svc,
        &i.pipeline,
        run_date(&i.date)?,
        &i.run_id,
    )?)
}

#[derive(Debug, Deserialize)]
struct ApprovalInput {
    token: String,
    execution: String,
    pipeline: String,
    date: String,
    run_id: String,
    /// The quality reports of the run's datasets; those that failed are
    /// the ones held. (`held`, the older name, carried only the failed.)
    #[serde(alias = "held")]
    reports: Vec<tributary_core::quality::QualityReport>,
    #[serde(default = "default_approval_hours")]
    expires_in_hours: i64,
}

fn default_approval_hours() -> i64 {
    48
}

pub async fn request_approval(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: ApprovalInput = parse_run(event, "{token, execution, pipeline, date, run_id, reports}")?;
    let held: Vec<_> = i.reports.into_iter().filter(|r| !r.passed).collect();
    if held.is_empty() {
        return Err(bad_event(
            "request-approval needs at least one dataset whose quality failed".into(),
        ));
    }
    to_json(
        &orchestration::request_partition_approval(
            svc,
            &i.token,
            &i.execution,
            &i.pipeline,
            run_date(&i.date)?,
            &i.run_id,
            &held,
            chrono::Duration::hours(i.expires_in_hours.clamp(1, 24 * 30)),
        )
        .await?,
    )
}

#[derive(Debug, Deserialize)]
struct QuarantineInput {
    pipeline: String,
    date: String,
    run_id: String,
    reason: String,
}

pub async fn quarantine_partition(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: QuarantineInput = parse_run(event, "{pipeline, date, run_id, reason}")?;
    let marked = orchestration::quarantine_partition(
        svc,
        &i.pipeline,
        run_date(&i.date)?,
        &i.run_id,
        &i.reason,
    )
    .await?;
    Ok(json!({ "quarantined": marked }))
}

#[derive(Debug, Deserialize)]
struct FailedInput {
    pipeline: String,
    date: String,
    run_id: String,
    /// What a Catch put at ResultPath: `{Error, Cause}`.
    error: CaughtError,
}

#[derive(Debug, Deserialize)]
struct CaughtError {
    #[serde(rename = "Error")]
    error: String,
    #[serde(rename = "Cause", default)]
    cause: String,
}

pub async fn mark_failed(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: FailedInput = parse_run(event, "{pipeline, date, run_id, error: {Error, Cause}}")?;
    let marked = orchestration::mark_run_failed(
        svc,
        &i.pipeline,
        run_date(&i.date)?,
        &i.run_id,
        &i.error.error,
        &i.error.cause,
    )
    .await?;
    Ok(json!({ "failed": marked }))
}

/// A catchup's input: from the schedule `{pipeline, scheduled_time}`, or
/// from a backfill `{pipeline, start, end, force}`.
#[derive(Debug, Deserialize)]
struct CatchupInput {
    pipeline: String,
    #[serde(default)]
    scheduled_time: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    force: bool,
}

pub async fn plan_catchup(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: CatchupInput = parse_run(
        event,
        "{pipeline, scheduled_time} or {pipeline, start, end, force}",
    )?;
    let start = i.start.as_deref().map(run_date).transpose()?;
    let end = i.end.as_deref().map(run_date).transpose()?;
    if let (Some(s), Some(e)) = (start, end) {
        if s > e {
            return Err(bad_event(format!("start {s} is after end {e}")));
        }
    }
    let at = i.scheduled_time.unwrap_or_else(chrono::Utc::now);
    to_json(&orchestration::plan_catchup(svc, &i.pipeline, at, start, end, i.force).await?)
}

#[derive(Debug, Deserialize)]
struct DateInput {
    pipeline: String,
    date: String,
    #[serde(default)]
    force: bool,
    /// The execution's time (`$$.State.EnteredTime`): quiet-period
    /// completion is judged at it, so a virtual clock is honoured.
    #[serde(default)]
    now: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn check_date(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: DateInput = parse_run(event, "{pipeline, date[, now]}")?;
    let date = run_date(&i.date)?;
    let plan = orchestration::plan_partition(svc, &i.pipeline, date, "check")?;
    for ds in &plan.datasets {
        partition::discover_arrivals(svc, ds, date).await?;
    }
    let now = i.now.unwrap_or_else(chrono::Utc::now);
    to_json(&partition::date_readiness(svc, &i.pipeline, date, now).await?)
}

pub async fn start_partition_run(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: DateInput = parse_run(event, "{pipeline, date, force[, now]}")?;
    to_json(
        &orchestration::start_partition_run(
            svc,
            &i.pipeline,
            run_date(&i.date)?,
            i.force,
            "catchup",
            i.now.unwrap_or_else(chrono::Utc::now),
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
    published: Vec<chrono::NaiveDate>,
}

pub async fn catchup_report(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: ReportInput = parse_run(event, "{pipeline, results[, published]}")?;
    Ok(orchestration::report_catchup(svc, &i.pipeline, &i.results, &i.published).await?)
}

/// The daily schedule's input: `{}` sweeps as of today (UTC); `today` and
/// `dry_run` are for operators trying it by hand.
#[derive(Debug, Default, Deserialize)]
struct SweepInput {
    #[serde(default)]
    today: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

/// Deletes partitions past each layer's retention, unpublishing them from
/// the catalog first (S3 lifecycle expiry is only the backstop: it cannot
/// unpublish).
pub async fn retention_sweep(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: SweepInput = if event.is_null() {
        SweepInput::default()
    } else {
        parse_run(event, "{today?: YYYY-MM-DD, dry_run?: bool}")?
    };
    let today = match &i.today {
        Some(d) => run_date(d)?,
        None => chrono::Utc::now().date_naive(),
    };
    let deletions = retention::retention_sweep(svc, today, i.dry_run).await?;
    Ok(json!({"today": today, "dry_run": i.dry_run, "deletions": to_json(&deletions)?}))
}

#[derive(Debug, Deserialize)]
struct LabelRunInput {
    labeling: String,
    date: String,
    run_id: String,
    #[serde(default)]
    round: u32,
    #[serde(default)]
    token: String,
    #[serde(default)]
    execution: String,
    #[serde(default)]
    answer: Option<tributary_core::labeling::ReviewAnswer>,
}

fn label_run(event: Value) -> Result<(LabelRunInput, NaiveDate), HandlerError> {
    let i: LabelRunInput = parse_run(event, "{labeling, date, run_id}")?;
    let date = run_date(&i.date)?;
    Ok((i, date))
}

pub async fn auto_label(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let (i, date) = label_run(event)?;
    to_json(&labeling::auto_label(svc, &i.labeling, date, &i.run_id).await?)
}

pub async fn request_label_review(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let (i, date) = label_run(event)?;
    if i.token.is_empty() {
        return Err(bad_event(
            "request-label-review needs the task token".into(),
        ));
    }
    Ok(labeling::request_review(
        svc,
        &i.token,
        &i.execution,
        &i.labeling,
        date,
        &i.run_id,
        i.round,
    )
    .await?)
}

pub async fn apply_label_review(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let (i, date) = label_run(event)?;
    let answer = i.answer.clone().unwrap_or_default();
    to_json(&labeling::apply_review(svc, &i.labeling, date, &i.run_id, i.round, &answer).await?)
}

pub async fn merge_labels(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let (i, date) = label_run(event)?;
    Ok(labeling::merge(svc, &i.labeling, date, &i.run_id).await?)
}

#[derive(Debug, Deserialize)]
struct FeatureRunInput {
    features: String,
    date: String,
    run_id: String,
    #[serde(default)]
    job: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    execution: String,
    #[serde(default)]
    quality: Option<features::FeatureQuality>,
    #[serde(default)]
    evaluation: Option<model::Evaluation>,
    #[serde(default)]
    version: String,
    #[serde(default)]
    approval: Option<Value>,
}

fn feature_run(event: Value) -> Result<(FeatureRunInput, NaiveDate), HandlerError> {
    let i: FeatureRunInput = parse_run(event, "{features, date, run_id}")?;
    let date = run_date(&i.date)?;
    Ok((i, date))
}

pub async fn compute_features(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let (i, date) = feature_run(event)?;
    let job = features::Job::parse(&i.job).ok_or_else(|| {
        bad_event(format!(
            "job {:?} is not one of user, item, behaviour",
            i.job
        ))
    })?;
    to_json(&features::compute_job(svc, &i.features, job, date, &i.run_id).await?)
}

pub async fn merge_features(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let (i, date) = feature_run(event)?;
    to_json(&features::merge(svc, &i.features, date, &i.run_id).await?)
}

pub async fn request_feature_approval(
    svc: &Services<'_>,
    event: Value,
) -> Result<Value, HandlerError> {
    let (i, date) = feature_run(event)?;
    let q = i
        .quality
        .ok_or_else(|| bad_event("request-feature-approval needs the quality report".into()))?;
    let lines: Vec<String> = q
        .checks
        .iter()
        .map(|(check, score)| format!("  {check}: {score:.3}"))
        .collect();
    to_json(
        &orchestration::request_decision(
            svc,
            orchestration::Decision {
                token: &i.token,
                execution: &i.execution,
                subject: &format!("Publish features {} {date}?", i.features),
                purpose: &format!(
                    "publish feature set {} for {date}: quality {:.3} < {:.3}",
                    i.features, q.score, q.threshold
                ),
                summary: json!({"kind": "feature_publish", "features": i.features, "date": date,
                                "run_id": i.run_id, "score": q.score, "threshold": q.threshold,
                                "checks": q.checks, "users": q.users, "items": q.items}),
                detail_lines: &lines,
                ttl: chrono::Duration::hours(48),
            },
        )
        .await?,
    )
}

pub async fn publish_features(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let (i, date) = feature_run(event)?;
    Ok(features::publish(svc, &i.features, date, &i.run_id).await?)
}

pub async fn build_training_set(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let (i, date) = feature_run(event)?;
    let lookback = svc
        .config
        .features
        .get(&i.features)
        .and_then(|f| f.windows_days.iter().max().copied())
        .unwrap_or(30);
    to_json(&model::build_training_set(svc, &i.features, date, &i.run_id, lookback).await?)
}

pub async fn train_model(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let (i, date) = feature_run(event)?;
    to_json(&model::train(svc, &i.features, date, &i.run_id).await?)
}

pub async fn request_deploy_approval(
    svc: &Services<'_>,
    event: Value,
) -> Result<Value, HandlerError> {
    let (i, date) = feature_run(event)?;
    let e = i
        .evaluation
        .ok_or_else(|| bad_event("request-deploy-approval needs the evaluation".into()))?;
    let lines = vec![
        format!(
            "  hit rate at {}: {:.3} (global top-{} baseline {:.3})",
            model::TOP_N,
            e.hit_rate_at_n,
            model::TOP_N,
            e.baseline_hit_rate_at_n
        ),
        format!(
            "  trained on {} rows, evaluated on the latest {}",
            e.train_rows, e.test_rows
        ),
    ];
    to_json(
        &orchestration::request_decision(
            svc,
            orchestration::Decision {
                token: &i.token,
                execution: &i.execution,
                subject: &format!("Deploy model {} {}?", i.features, e.version),
                purpose: &format!("deploy recommendation model {} version {}", i.features, e.version),
                summary: json!({"kind": "model_deploy", "features": i.features, "date": date, "version": e.version,
                                "checks": {"hit_rate_at_n": e.hit_rate_at_n, "baseline_hit_rate_at_n": e.baseline_hit_rate_at_n},
                                "users": e.train_rows, "items": e.test_rows}),
                detail_lines: &lines,
                ttl: chrono::Duration::hours(48),
            },
        )
        .await?,
    )
}

pub async fn activate_model(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let (i, _) = feature_run(event)?;
    if i.version.is_empty() {
        return Err(bad_event("activate-model needs the version".into()));
    }
    let by = i
        .approval
        .as_ref()
        .and_then(|a| a["decider"].as_str())
        .unwrap_or("the pipeline")
        .to_string();
    Ok(model::activate(svc, &i.features, &i.version, &by).await?)
}

#[derive(Debug, Deserialize)]
struct SetInput {
    features: String,
    #[serde(default)]
    version: String,
}

pub async fn start_inference(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: SetInput = parse_run(event, "{features, version}")?;
    to_json(&inference::start(svc, &i.features, &i.version).await?)
}

pub async fn inference_health(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: SetInput = parse_run(event, "{features}")?;
    Ok(inference::health(svc, &i.features).await?)
}

/// The click stream (a Kinesis event): each record's data is base64 JSON.
/// Records that do not decode are kept in dlq/ with their shard position
/// and the error, and never fail the batch.
pub async fn click_inference(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let records = event
        .get("Records")
        .and_then(|r| r.as_array())
        .ok_or_else(|| bad_event("not a Kinesis event: Records[] is missing".into()))?;
    let mut clicks = Vec::new();
    let mut poison = Vec::new();
    for r in records {
        let data = r
            .pointer("/kinesis/data")
            .and_then(|d| d.as_str())
            .unwrap_or_default();
        let decoded = approval_callback::decode_base64(data)
            .ok_or("data is not base64 text")
            .and_then(|text| serde_json::from_str::<Value>(&text).map_err(|_| "data is not JSON"));
        match decoded {
            Ok(click) => clicks.push(click),
            Err(error) => poison.push(json!({
                "error": error, "data": data,
                "shard": r["eventID"], "sequence_number": r.pointer("/kinesis/sequenceNumber"),
                "arrived": r.pointer("/kinesis/approximateArrivalTimestamp"),
            })),
        }
    }
    let mut outcomes = Vec::new();
    for set in svc.config.features.keys() {
        let running = inference::health(svc, set).await?;
        if running["status"] != "running" {
            continue;
        }
        let outcome = inference::recommend(svc, set, &clicks).await?;
        poison.extend(outcome.rejected.iter().cloned());
        outcomes.push(json!({"features": set, "processed": outcome.processed, "model_version": outcome.model_version}));
    }
    if !poison.is_empty() {
        let key = format!(
            "{}click-inference-{}.jsonl",
            tributary_core::layout::partition_prefix(
                tributary_core::layout::Layer::Dlq,
                "clicks",
                chrono::Utc::now().date_naive()
            ),
            chrono::Utc::now().timestamp_micros()
        );
        tributary_core::jsonl::put(svc.objects, &key, &poison)
            .await
            .map_err(HandlerError::from)?;
    }
    Ok(json!({"batchItemFailures": [], "consumers": outcomes, "dead_lettered": poison.len()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_cleaner_is_a_bulk_workload() {
        assert_eq!(workload_of("clean-partition"), process::Workload::Bulk);
        for light in [
            "object-created",
            "publish-partition",
            "stream-aggregate",
            "query-api",
        ] {
            assert_eq!(workload_of(light), process::Workload::Light, "{light}");
        }
    }

    #[test]
    fn both_notification_shapes() {
        let s3 = json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-west-1",
            "eventTime": "2025-12-03T10:00:00.000Z", "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "X"}, "requestParameters": {"sourceIPAddress": "1.2.3.4"},
            "responseElements": {},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "raw",
                   "bucket": {"name": "b", "ownerIdentity": {"principalId": "X"}, "arn": "arn:aws:s3:::b"},
                   "object": {"key": "raw/orders/date%3D2025-12-03/a+b.csv", "size": 12, "eTag": "abc", "sequencer": "1"}}
        }]});
        let got = created_objects(&s3).unwrap();
        assert_eq!(got[0].encoded_key, "raw/orders/date%3D2025-12-03/a+b.csv");
        assert_eq!((got[0].size, got[0].etag.as_str()), (12, "abc"));
        let eb = json!({"version": "0", "detail-type": "Object Created", "source": "aws.s3",
            "detail": {"version": "0", "bucket": {"name": "b"},
                       "object": {"key": "raw/orders/date%3D2025-12-03/x.csv", "size": 5, "etag": "e"}}});
        let got = created_objects(&eb).unwrap();
        assert_eq!(got[0].encoded_key, "raw/orders/date%3D2025-12-03/x.csv");
        let err = created_objects(&json!({"hello": 1})).unwrap_err();
        assert_eq!(err.error_type, "Tributary.BadEvent");
        let err =
            created_objects(&json!({"detail-type": "Object Deleted", "detail": {}})).unwrap_err();
        assert!(err.message.contains("Object Deleted"));
    }

    /// Malformed events are refused with a message that names what was
    /// wrong (the tests read the message, not only the failure).
    #[test]
    fn malformed_events_say_what_is_wrong() {
        let err = created_objects(&json!({"Records": "not a list"})).unwrap_err();
        assert_eq!(err.error_type, "Tributary.BadEvent");
        assert!(
            err.message.contains("not an S3 notification") && err.message.contains("invalid type"),
            "{}",
            err.message
        );
        let err =
            created_objects(&json!({"Records": [{"s3": {"object": {"size": 3}}}]})).unwrap_err();
        assert!(
            err.message.contains("missing field `bucket`"),
            "{}",
            err.message
        );

        let kinesis = json!({"Records": [{
            "eventID": "shardId-000000000000:1", "eventSourceARN": "arn:aws:kinesis:us-east-1:1:stream/orders",
            "kinesis": {"sequenceNumber": "1", "partitionKey": "k"}
        }]});
        let err = stream::kinesis_records(&kinesis).unwrap_err();
        assert_eq!(err.message, "Records[0]: /kinesis/data is missing");
        let err = stream::kinesis_records(&json!({"Records": {}})).unwrap_err();
        assert!(
            err.message.contains("Records[] is missing"),
            "{}",
            err.message
        );

        let err =
            approval_callback::HttpRequest::from_event(&json!({"rawPath": "/x"})).unwrap_err();
        assert!(
            err.message
                .contains("requestContext.http.method is missing"),
            "{}",
            err.message
        );
        let err = approval_callback::HttpRequest::from_event(&json!({
            "requestContext": {"http": {"method": "POST"}},
            "isBase64Encoded": true, "body": "%%% not base64"
        }))
        .unwrap_err();
        assert_eq!(err.message, "the request body is not valid base64");
    }

    #[test]
    fn partition_input_is_checked() {
        assert!(PartitionInput::parse(
            json!({"dataset": "o", "date": "2025-02-30", "run_id": "r"})
        )
        .is_err());
        assert!(PartitionInput::parse(
            json!({"dataset": "o", "date": "2025-02-03", "run_id": "../x"})
        )
        .is_err());
        assert!(PartitionInput::parse(
            json!({"dataset": "o", "date": "2025-02-03", "run_id": "r1"})
        )
        .is_ok());
    }
}
