//! The partition pipeline's functions (statemachines/partition_pipeline)
//! and object-created, the S3 trigger that starts it.

use aws_lambda_events::event::s3::S3Event;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use tributary_core::downstream;
use tributary_core::orchestration;
use tributary_core::partition;
use tributary_core::ports::Workflow;
use tributary_core::quality::QualityReport;
use tributary_core::services::Services;

use crate::error::{bad_event, HandlerError};
use crate::metrics;
use crate::wire::{self, decode, encode};

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

/// `{pipeline, date, run_id}`: what plan-partition receives.
#[derive(Debug, Deserialize)]
struct RunInput {
    pipeline: String,
    #[serde(deserialize_with = "wire::date")]
    date: NaiveDate,
    #[serde(deserialize_with = "wire::run_id")]
    run_id: String,
}

pub async fn plan_partition(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: RunInput = decode(event, "{pipeline, date, run_id}")?;
    encode(&orchestration::plan_partition(
        svc,
        &i.pipeline,
        i.date,
        &i.run_id,
    )?)
}

/// `{dataset, date, run_id}`: what each dataset's step receives.
#[derive(Debug, Deserialize)]
pub struct DatasetInput {
    pub dataset: String,
    #[serde(deserialize_with = "wire::date")]
    pub date: NaiveDate,
    #[serde(deserialize_with = "wire::run_id")]
    pub run_id: String,
}

const DATASET_SHAPE: &str = "{dataset, date, run_id}";

pub async fn clean_partition(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: DatasetInput = decode(event, DATASET_SHAPE)?;
    encode(&partition::clean_partition(svc, &i.dataset, i.date, &i.run_id).await?)
}

/// Validates the run, and logs the partition's metrics (one embedded-metric
/// line: rows in, kept, rejected, duplicates, quality score, run duration).
pub async fn validate_partition(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: DatasetInput = decode(event, DATASET_SHAPE)?;
    let report = partition::validate_partition(svc, &i.dataset, i.date, &i.run_id).await?;
    let status = tributary_core::state::partition_status(svc.state, &i.dataset, i.date)
        .await
        .map_err(tributary_core::error::UseCaseError::from)?;
    metrics::emit(&partition_metrics(&report, status.as_ref(), Utc::now()));
    encode(&report)
}

/// A validated run's metrics, per dataset.
fn partition_metrics(
    report: &QualityReport,
    status: Option<&tributary_core::state::PartitionStatus>,
    now: DateTime<Utc>,
) -> Value {
    let stats = status.and_then(|s| s.clean.clone()).unwrap_or_default();
    let count = |name, value: u64| metrics::Metric {
        name,
        unit: "Count",
        value: value as f64,
    };
    let mut found = vec![
        count("RowsIn", stats.input),
        count("RowsKept", stats.kept),
        count("RowsRejected", stats.rejected_total),
        count("Duplicates", stats.duplicates),
        metrics::Metric {
            name: "QualityScore",
            unit: "None",
            value: report.score,
        },
    ];
    if let Some(started) = status.and_then(|s| s.run_started_at) {
        found.push(metrics::Metric {
            name: "RunSeconds",
            unit: "Seconds",
            value: (now - started).num_milliseconds() as f64 / 1000.0,
        });
    }
    metrics::line(now, &[("dataset", &report.dataset)], &found)
}

/// publish-partition's input: a dataset's step, and whether a person
/// approved it.
#[derive(Debug, Deserialize)]
struct PublishInput {
    #[serde(flatten)]
    dataset: DatasetInput,
    /// Absent on the auto-publish path.
    #[serde(default)]
    approved: bool,
}

pub async fn publish_partition(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let PublishInput {
        dataset: i,
        approved,
    } = decode(event, "{dataset, date, run_id, approved?}")?;
    encode(&partition::publish_partition(svc, &i.dataset, i.date, &i.run_id, approved).await?)
}

#[derive(Debug, Deserialize)]
struct ApprovalInput {
    #[serde(flatten)]
    waiting: wire::Waiting,
    pipeline: String,
    #[serde(deserialize_with = "wire::date")]
    date: NaiveDate,
    #[serde(deserialize_with = "wire::run_id")]
    run_id: String,
    /// The quality reports of the run's datasets; those that failed are
    /// the ones held. (`held`, the older name, carried only the failed.)
    #[serde(alias = "held")]
    reports: Vec<QualityReport>,
    #[serde(default = "default_approval_hours")]
    expires_in_hours: i64,
}

fn default_approval_hours() -> i64 {
    48
}

pub async fn request_approval(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: ApprovalInput = decode(event, "{token, execution, pipeline, date, run_id, reports}")?;
    let held: Vec<_> = i.reports.into_iter().filter(|r| !r.passed).collect();
    if held.is_empty() {
        return Err(bad_event(
            "request-approval needs at least one dataset whose quality failed".into(),
        ));
    }
    encode(
        &orchestration::request_partition_approval(
            svc,
            &i.waiting.token,
            &i.waiting.execution,
            &i.pipeline,
            i.date,
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
    #[serde(deserialize_with = "wire::date")]
    date: NaiveDate,
    #[serde(deserialize_with = "wire::run_id")]
    run_id: String,
    reason: String,
}

pub async fn quarantine_partition(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: QuarantineInput = decode(event, "{pipeline, date, run_id, reason}")?;
    let marked =
        orchestration::quarantine_partition(svc, &i.pipeline, i.date, &i.run_id, &i.reason).await?;
    Ok(json!({ "quarantined": marked }))
}

/// Whose run failed: a pipeline date's, a feature set's or a labeling's
/// (each state machine's failure path passes its own input key).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FailedRun {
    Pipeline(String),
    Features(String),
    Labeling(String),
}

#[derive(Debug, Deserialize)]
struct FailedInput {
    #[serde(flatten)]
    run: FailedRun,
    #[serde(deserialize_with = "wire::date")]
    date: NaiveDate,
    #[serde(deserialize_with = "wire::run_id")]
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

/// Every state machine's failure path: the run is marked failed where its
/// state is kept, and the alerts audience is told.
pub async fn mark_failed(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: FailedInput = decode(
        event,
        "{pipeline | features | labeling, date, run_id, error: {Error, Cause}}",
    )?;
    let (error, cause) = (&i.error.error, &i.error.cause);
    let (workflow, name) = match &i.run {
        FailedRun::Pipeline(pipeline) => {
            let marked =
                orchestration::mark_run_failed(svc, pipeline, i.date, &i.run_id, error, cause)
                    .await?;
            return Ok(json!({ "failed": marked }));
        }
        FailedRun::Features(name) => (Workflow::FeaturePipeline, name),
        FailedRun::Labeling(name) => (Workflow::Labeling, name),
    };
    let marked =
        downstream::mark_failed(svc, workflow, name, i.date, &i.run_id, error, cause).await?;
    Ok(json!({ "failed": [name], "record": encode(&marked)? }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A validated run's metrics: its counts, quality score and how long
    /// its clean and validate took, per dataset.
    #[test]
    fn a_validated_run_reports_its_counts_score_and_duration() {
        let now = Utc::now();
        let date = NaiveDate::from_ymd_opt(2025, 12, 3).unwrap();
        let mut status = tributary_core::state::PartitionStatus::new("orders", date);
        status.clean = Some(tributary_core::clean::CleanStats {
            input: 10,
            kept: 7,
            rejected_total: 2,
            duplicates: 1,
            ..Default::default()
        });
        status.run_started_at = Some(now - chrono::Duration::seconds(90));
        let report = QualityReport {
            dataset: "orders".into(),
            date: "2025-12-03".into(),
            run_id: "r1".into(),
            rows: 7,
            score: 0.75,
            threshold: 0.9,
            passed: false,
            expectations: vec![],
        };
        let line = partition_metrics(&report, Some(&status), now);
        assert_eq!(line["dataset"], "orders");
        let values: Vec<(String, f64)> = [
            "RowsIn",
            "RowsKept",
            "RowsRejected",
            "Duplicates",
            "QualityScore",
            "RunSeconds",
        ]
        .iter()
        .map(|m| (m.to_string(), line[*m].as_f64().unwrap()))
        .collect();
        assert_eq!(
            values,
            [
                ("RowsIn", 10.0),
                ("RowsKept", 7.0),
                ("RowsRejected", 2.0),
                ("Duplicates", 1.0),
                ("QualityScore", 0.75),
                ("RunSeconds", 90.0)
            ]
            .map(|(m, v)| (m.to_string(), v))
        );
        let declared = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(declared, 6);
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
    fn malformed_notifications_say_what_is_wrong() {
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
    }

    #[test]
    fn partition_input_is_checked() {
        let parse = |event| decode::<DatasetInput>(event, DATASET_SHAPE);
        assert!(parse(json!({"dataset": "o", "date": "2025-02-30", "run_id": "r"})).is_err());
        assert!(parse(json!({"dataset": "o", "date": "2025-02-03", "run_id": "../x"})).is_err());
        assert!(parse(json!({"dataset": "o", "date": "2025-02-03", "run_id": "r1"})).is_ok());
    }
}

/// `{execution, dataset, slots}`: a dataset clean of one execution asking
/// for (or giving back) a clean slot. `slots` may come as text: Terraform
/// fills it into the state machine from the clean function's reserved
/// concurrency.
#[derive(Debug, Deserialize)]
struct SlotInput {
    execution: String,
    dataset: String,
    #[serde(default, deserialize_with = "wire::count")]
    slots: usize,
}

impl SlotInput {
    fn holder(&self) -> String {
        format!("{}/{}", self.execution, self.dataset)
    }
}

pub async fn acquire_slot(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: SlotInput = decode(event, "{execution, dataset, slots}")?;
    encode(
        &tributary_core::slots::acquire(svc.state, &i.holder(), i.slots, chrono::Utc::now())
            .await?,
    )
}

pub async fn release_slot(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: SlotInput = decode(event, "{execution, dataset}")?;
    let held = tributary_core::slots::release(svc.state, &i.holder(), chrono::Utc::now()).await?;
    encode(&serde_json::json!({"released": i.holder(), "held": held}))
}
