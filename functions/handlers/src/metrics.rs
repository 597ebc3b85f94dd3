//! CloudWatch metrics as Embedded Metric Format lines: a function logs one
//! JSON line and CloudWatch Logs turns it into metrics, with no API call on
//! the request path. Alarms in infra/modules/tributary/monitoring.tf watch
//! them (namespace `tributary`).

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

pub const NAMESPACE: &str = "tributary";

/// One metric of a line: its name, CloudWatch unit and value.
pub struct Metric<'a> {
    pub name: &'a str,
    pub unit: &'a str,
    pub value: f64,
}

/// The EMF line of `metrics` under `dimensions` (name, value) at `at`.
pub fn line(at: DateTime<Utc>, dimensions: &[(&str, &str)], metrics: &[Metric<'_>]) -> Value {
    let mut out = Map::new();
    out.insert(
        "_aws".into(),
        json!({
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(name, _)| *name).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|m| json!({"Name": m.name, "Unit": m.unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    for (name, value) in dimensions {
        out.insert((*name).into(), json!(value));
    }
    for m in metrics {
        out.insert(m.name.into(), json!(m.value));
    }
    Value::Object(out)
}

/// Log a line where CloudWatch reads it: only inside Lambda (a local run's
/// terminal has no use for it).
pub fn emit(line: &Value) {
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_its_metrics_dimensions_and_values() {
        let at = DateTime::parse_from_rfc3339("2025-12-03T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let l = line(
            at,
            &[("dataset", "orders")],
            &[
                Metric {
                    name: "RowsKept",
                    unit: "Count",
                    value: 3.0,
                },
                Metric {
                    name: "QualityScore",
                    unit: "None",
                    value: 0.5,
                },
            ],
        );
        assert_eq!(
            l,
            json!({
                "_aws": {"Timestamp": 1764756000000i64, "CloudWatchMetrics": [{
                    "Namespace": "tributary", "Dimensions": [["dataset"]],
                    "Metrics": [{"Name": "RowsKept", "Unit": "Count"}, {"Name": "QualityScore", "Unit": "None"}]}]},
                "dataset": "orders", "RowsKept": 3.0, "QualityScore": 0.5,
            })
        );
    }
}
