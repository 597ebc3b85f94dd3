//! `[streams.<name>]`: a Kinesis stream's fields, windows, lateness,
//! dedupe, views, reconciliation and retention.

use super::dataset::{ColumnConfig, ColumnType};
use super::retention::{check_retention, STREAM_LAYERS};
use super::{
    parse_duration_secs, ConfigError, Invalid, MAX_ALLOWED_LATENESS_SECS, MAX_DEDUPE_HORIZON_SECS,
};
use crate::layout::valid_name;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A Kinesis stream of JSON events for the speed layer: its schema, the
/// tumbling windows it is aggregated into, and how late data is treated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    #[serde(default)]
    pub description: Option<String>,
    /// The field that identifies an event (dedupe key).
    pub event_id: String,
    /// The timestamp field windows are cut by.
    pub event_time: String,
    /// Fields every aggregate is grouped by.
    #[serde(default)]
    pub dimensions: Vec<String>,
    /// Numeric fields summed, minimised and maximised (count is always kept).
    #[serde(default)]
    pub measures: Vec<String>,
    /// Tumbling window size: "10s", "1m", "5m", "1h" (divides an hour).
    #[serde(default = "default_stream_window")]
    pub window: String,
    /// How far behind the newest event time an event may be and still count
    /// in realtime; older events are archived as late for the batch layer.
    #[serde(default = "default_allowed_lateness")]
    pub allowed_lateness: String,
    /// How long an event id is remembered to drop re-sent events.
    #[serde(default = "default_dedupe_horizon")]
    pub dedupe_horizon: String,
    /// The serving name: the query API answers `/<serve_as>` and the batch
    /// views are `daily_<serve_as>` and `hourly_<serve_as>`.
    #[serde(default)]
    pub serve_as: Option<String>,
    /// Reconciliation alerts above this deviation (percent).
    #[serde(default = "default_deviation_threshold")]
    pub deviation_threshold_pct: f64,
    /// How long each reconciliation check is kept (the deviation trend).
    #[serde(default = "default_reconcile_history")]
    pub reconcile_history: String,
    /// Days to keep the archive (stream), late events (late), dead letters
    /// (dlq) and batch views (views); a layer not listed is kept forever.
    #[serde(default)]
    pub retention_days: BTreeMap<String, u32>,
    /// The event schema.
    pub fields: Vec<ColumnConfig>,
}

fn default_stream_window() -> String {
    "1m".into()
}
fn default_allowed_lateness() -> String {
    "5m".into()
}
fn default_dedupe_horizon() -> String {
    "1h".into()
}
fn default_reconcile_history() -> String {
    "30d".into()
}
fn default_deviation_threshold() -> f64 {
    10.0
}

impl StreamConfig {
    /// Validated at load: these never fall back.
    pub fn window_secs(&self) -> u64 {
        parse_duration_secs(&self.window).unwrap_or(60)
    }
    pub fn allowed_lateness_secs(&self) -> u64 {
        parse_duration_secs(&self.allowed_lateness).unwrap_or(300)
    }
    pub fn dedupe_horizon_secs(&self) -> u64 {
        parse_duration_secs(&self.dedupe_horizon).unwrap_or(3600)
    }
    pub fn reconcile_history_secs(&self) -> u64 {
        parse_duration_secs(&self.reconcile_history).unwrap_or(30 * 86_400)
    }
    pub fn field(&self, name: &str) -> Option<&ColumnConfig> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The stream's batch views, hourly and daily: `hourly_<serve_as>` and
    /// `daily_<serve_as>` (the stream's own name without serve_as).
    pub fn view_names(&self, stream: &str) -> (String, String) {
        let name = self.serve_as.as_deref().unwrap_or(stream);
        (format!("hourly_{name}"), format!("daily_{name}"))
    }

    pub(super) fn validate(&self, name: &str, invalid: Invalid) -> Result<(), ConfigError> {
        let st = self;
        let at = |f: &str| format!("streams.{name}.{f}");
        let known = st
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let need = |field: String, f: &str| {
            st.field(f).ok_or_else(|| {
                invalid(
                    field,
                    format!("field {f:?} is not declared"),
                    format!("declare it under [[streams.{name}.fields]] or use one of: {known}"),
                )
            })
        };
        need(at("event_id"), &st.event_id)?;
        let time = need(at("event_time"), &st.event_time)?;
        if time.column_type != ColumnType::Timestamp {
            return Err(invalid(
                at("event_time"),
                format!("field {:?} is a {}", st.event_time, time.column_type.name()),
                "point event_time at a timestamp field".into(),
            ));
        }
        for d in &st.dimensions {
            need(at("dimensions"), d)?;
            // A view row holds period_start, the dimensions, event_count and
            // <measure>_sum/_min/_max; the partition key is date.
            let taken = ["date", "period_start", "event_count"].contains(&d.as_str())
                || st.measures.iter().any(|m| {
                    ["sum", "min", "max"]
                        .iter()
                        .any(|a| *d == format!("{m}_{a}"))
                });
            if taken {
                return Err(invalid(
                    at("dimensions"),
                    format!("{d:?} is also a column of the batch views (date, period_start, event_count, <measure>_sum/_min/_max)"),
                    "rename the field".into(),
                ));
            }
        }
        for m in &st.measures {
            let f = need(at("measures"), m)?;
            if !matches!(f.column_type, ColumnType::Int | ColumnType::Float) {
                return Err(invalid(
                    at("measures"),
                    format!("field {m:?} is a {}", f.column_type.name()),
                    "measures must be int or float fields".into(),
                ));
            }
        }
        let window = parse_duration_secs(&st.window).filter(|w| *w > 0 && 3600 % w == 0);
        if window.is_none() {
            return Err(invalid(
                at("window"),
                format!("{:?} is not a window size that divides an hour", st.window),
                "use for example \"10s\", \"1m\", \"5m\" or \"1h\"".into(),
            ));
        }
        let history = parse_duration_secs(&st.reconcile_history);
        if !history.is_some_and(|h| (3600..=3660 * 86_400).contains(&h)) {
            return Err(invalid(
                at("reconcile_history"),
                format!(
                    "{:?} is not a duration of 1h to 3660d",
                    st.reconcile_history
                ),
                "keep reconciliation checks for example \"30d\"".into(),
            ));
        }
        for (field, value, max, example) in [
            (
                "allowed_lateness",
                &st.allowed_lateness,
                MAX_ALLOWED_LATENESS_SECS,
                "7d",
            ),
            (
                "dedupe_horizon",
                &st.dedupe_horizon,
                MAX_DEDUPE_HORIZON_SECS,
                "366d",
            ),
        ] {
            match parse_duration_secs(value) {
                None => {
                    return Err(invalid(
                        at(field),
                        format!("{value:?} is not a duration"),
                        "write a number and a unit: s, m, h or d (\"5m\")".into(),
                    ))
                }
                Some(secs) if secs > max => {
                    return Err(invalid(
                        at(field),
                        format!("{value:?} is longer than {example}"),
                        format!("use at most {example}"),
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some(serve) = &st.serve_as {
            if !valid_name(serve) {
                return Err(invalid(
                    at("serve_as"),
                    format!("{serve:?} becomes a URL path and view names"),
                    "use only letters, digits, '_' and '-'".into(),
                ));
            }
        }
        if st.deviation_threshold_pct.is_nan() || st.deviation_threshold_pct <= 0.0 {
            return Err(invalid(
                at("deviation_threshold_pct"),
                format!(
                    "{} is not a positive percentage",
                    st.deviation_threshold_pct
                ),
                "use for example 10.0".into(),
            ));
        }
        check_retention(
            &format!("streams.{name}"),
            &st.retention_days,
            &STREAM_LAYERS,
            invalid,
        )?;
        Ok(())
    }
}
