//! The speed and serving layers' functions: stream-aggregate (Kinesis),
//! build-views (schedule or backfill), query-api (function URL), reconcile
//! (hourly schedule), replay-dlq.

use crate::error::{bad_event, HandlerError};
use crate::http::{json_response, HttpRequest};
use crate::metrics;
use crate::wire::{decode, encode, parse_day};
use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::LazyLock;
use tributary_core::error::UseCaseError;
use tributary_core::ports::StreamRecord;
use tributary_core::services::Services;
use tributary_core::stream::serving::{self, ViewCache};
use tributary_core::stream::speed;
use tributary_core::stream::{reconcile, views};

/// Batch views survive between warm invocations of the query API.
static VIEW_CACHE: LazyLock<ViewCache> = LazyLock::new(ViewCache::default);

/// The stream a Kinesis record came from: the name in its event source ARN
/// (`arn:aws:kinesis:<region>:<account>:stream/<name>`).
fn stream_of(record: &Value) -> Option<&str> {
    record
        .get("eventSourceARN")
        .and_then(Value::as_str)
        .and_then(|arn| arn.rsplit_once(":stream/"))
        .map(|(_, name)| name)
}

/// The configured stream a deployed Kinesis stream carries: its own name,
/// or the name Terraform deployed it under, `<prefix>-<stream>` (so several
/// environments share an account); the longest configured suffix wins.
pub fn configured_stream<'a>(svc: &'a Services<'_>, deployed: &str) -> Option<&'a str> {
    let streams = &svc.config.streams;
    if let Some((name, _)) = streams.get_key_value(deployed) {
        return Some(name);
    }
    streams
        .keys()
        .filter(|name| {
            deployed
                .strip_suffix(name.as_str())
                .is_some_and(|prefix| prefix.ends_with('-'))
        })
        .max_by_key(|name| name.len())
        .map(String::as_str)
}

/// A Kinesis event's records, decoded from their wire shape. A record whose
/// data is not even base64 is still handed on (as its raw text) so that it
/// lands in the DLQ with everything else about it.
pub fn kinesis_records(event: &Value) -> Result<Vec<(String, StreamRecord)>, HandlerError> {
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_event("not a Kinesis event: Records[] is missing".into()))?;
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let field = |p: &str| {
                r.pointer(p)
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_event(format!("Records[{i}]: {p} is missing")))
            };
            let stream = stream_of(r).ok_or_else(|| {
                bad_event(format!("Records[{i}]: eventSourceARN names no stream"))
            })?;
            let event_id = field("/eventID")?;
            let data = field("/kinesis/data")?;
            let arrival = r
                .pointer("/kinesis/approximateArrivalTimestamp")
                .and_then(Value::as_f64)
                .and_then(|t| DateTime::from_timestamp_micros((t * 1e6) as i64))
                .unwrap_or_else(Utc::now);
            Ok((
                stream.to_string(),
                StreamRecord {
                    shard_id: event_id.split(':').next().unwrap_or(event_id).to_string(),
                    sequence_number: field("/kinesis/sequenceNumber")?.to_string(),
                    partition_key: field("/kinesis/partitionKey")?.to_string(),
                    data: base64::engine::general_purpose::STANDARD
                        .decode(data)
                        .unwrap_or_else(|_| data.as_bytes().to_vec()),
                    arrival,
                },
            ))
        })
        .collect()
}

/// Kinesis event source mapping → partial batch response. Transient errors
/// name the first record to retry from; poison never fails the batch.
pub async fn stream_aggregate(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let records = kinesis_records(&event)?;
    let mut by_stream: std::collections::BTreeMap<String, Vec<StreamRecord>> = Default::default();
    for (stream, record) in records {
        let configured = configured_stream(svc, &stream)
            .unwrap_or(&stream)
            .to_string();
        by_stream.entry(configured).or_default().push(record);
    }
    let mut failures = Vec::new();
    let mut outcomes = serde_json::Map::new();
    for (stream, records) in by_stream {
        let outcome = speed::aggregate_batch(svc, &stream, &records, Utc::now()).await?;
        failures.extend(
            outcome
                .failed
                .iter()
                .map(|(_, seq)| json!({"itemIdentifier": seq})),
        );
        outcomes.insert(stream, encode(&outcome)?);
    }
    Ok(json!({"batchItemFailures": failures, "streams": outcomes}))
}

#[derive(Deserialize)]
struct ViewsInput {
    stream: Option<String>,
    date: Option<String>,
    start: Option<String>,
    end: Option<String>,
    /// The schedule's time: the views of the day before it.
    time: Option<String>,
}

fn dates_of(i: &ViewsInput) -> Result<Vec<NaiveDate>, HandlerError> {
    let parse = parse_day;
    match (&i.date, &i.start, &i.end, &i.time) {
        (Some(d), _, _, _) => Ok(vec![parse(d)?]),
        (None, Some(s), Some(e), _) => {
            let (s, e) = (parse(s)?, parse(e)?);
            if e < s || (e - s).num_days() > 366 {
                return Err(bad_event(format!("range {s}..{e} is empty or longer than a year")));
            }
            Ok(s.iter_days().take_while(|d| *d <= e).collect())
        }
        (None, None, None, Some(t)) => {
            let t = DateTime::parse_from_rfc3339(t)
                .map_err(|e| bad_event(format!("time {t:?}: {e}")))?;
            Ok(vec![t.date_naive().pred_opt().unwrap_or(t.date_naive())])
        }
        _ => Err(bad_event(
            "expected {stream, date} or {stream, start, end} (a backfill range) or a schedule's {time}".into(),
        )),
    }
}

fn streams_of<'a>(svc: &'a Services<'_>, stream: &'a Option<String>) -> Vec<&'a str> {
    match stream {
        Some(s) => vec![s.as_str()],
        None => svc.config.streams.keys().map(String::as_str).collect(),
    }
}

/// Build and publish batch views for a date or a range (backfill).
pub async fn build_views(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let input: ViewsInput = decode(event, "{stream, date} or {stream, start, end}")?;
    let mut built = Vec::new();
    for stream in streams_of(svc, &input.stream) {
        for date in dates_of(&input)? {
            built.push(encode(
                &views::build_views(svc, stream, date, Utc::now()).await?,
            )?);
        }
        // Views that late data made stale are rebuilt on every run.
        for rebuilt in views::rebuild_stale_views(svc, stream, Utc::now()).await? {
            built.push(encode(&rebuilt)?);
        }
    }
    Ok(json!({"built": built}))
}

/// The hourly reconciliation. Logs one embedded-metric line per stream
/// (`ReconcileDeviationPct`), which the deviation alarm watches.
pub async fn reconcile_streams(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let input: ViewsInput = decode(event, "{stream?, date?}")?;
    let dates = match (&input.date, &input.start) {
        (None, None) => None,
        _ => Some(dates_of(&input)?),
    };
    let mut reports = Vec::new();
    for stream in streams_of(svc, &input.stream) {
        let report = reconcile::reconcile(svc, stream, dates.clone(), Utc::now()).await?;
        metrics::emit(&metrics::line(
            Utc::now(),
            &[("stream", stream)],
            &[
                metrics::Metric {
                    name: "ReconcileDeviationPct",
                    unit: "Percent",
                    value: report.max_deviation_pct,
                },
                metrics::Metric {
                    name: "ReconcileCorrectedWindows",
                    unit: "Count",
                    value: report.corrected_windows as f64,
                },
            ],
        ));
        reports.push(encode(&report)?);
    }
    Ok(json!({"reports": reports}))
}

#[derive(Deserialize)]
struct ReplayInput {
    stream: String,
}

pub async fn replay_dlq(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let input: ReplayInput = decode(event, "{stream}")?;
    encode(&speed::replay_dead_letters(svc, &input.stream, Utc::now()).await?)
}

/// The query API behind a function URL: `GET /<name>?start&end&granularity`
/// and `GET /<name>/recent?window=`. Bad parameters are a 400 that says
/// what was wrong; the answer is JSON either way.
pub async fn query_api(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let request = HttpRequest::from_event(&event)?;
    if request.method != "GET" {
        return Ok(json_response(405, &json!({"error": "use GET"})));
    }
    let path = request.path.trim_matches('/');
    let (name, recent) = match path.split_once('/') {
        Some((name, "recent")) => (name, true),
        Some(_) => {
            return Ok(json_response(
                404,
                &json!({"error": format!("no such path /{path}")}),
            ))
        }
        None => (path, false),
    };
    let Some((stream, config)) = svc.config.served_stream(name) else {
        let known: Vec<String> = svc
            .config
            .streams
            .iter()
            .map(|(n, s)| format!("/{}", s.serve_as.as_deref().unwrap_or(n)))
            .collect();
        return Ok(json_response(
            404,
            &json!({"error": format!("nothing is served at /{name}; try {}", known.join(", "))}),
        ));
    };
    let params: Vec<(String, String)> = request.query.into_iter().collect();
    let answer = if recent {
        let window = params
            .iter()
            .find(|(k, _)| k == "window")
            .map(|(_, v)| v.as_str())
            .unwrap_or("5m");
        serving::recent(svc, stream, window).await
    } else {
        match serving::parse_sales_query(config, &params) {
            Ok(q) => serving::sales(svc, stream, &q, &VIEW_CACHE).await,
            Err(e) => Err(e),
        }
    };
    Ok(match answer {
        Ok(body) => json_response(200, &body),
        Err(UseCaseError::BadRequest(message)) => json_response(400, &json!({"error": message})),
        Err(e) => {
            let status = if e.retryable() { 503 } else { 500 };
            json_response(status, &json!({"error": e.to_string()}))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Malformed events are refused with a message that names what was
    /// wrong (the tests read the message, not only the failure).
    #[test]
    fn malformed_kinesis_events_say_what_is_wrong() {
        let kinesis = json!({"Records": [{
            "eventID": "shardId-000000000000:1", "eventSourceARN": "arn:aws:kinesis:us-east-1:1:stream/orders",
            "kinesis": {"sequenceNumber": "1", "partitionKey": "k"}
        }]});
        let err = kinesis_records(&kinesis).unwrap_err();
        assert_eq!(err.message, "Records[0]: /kinesis/data is missing");
        let err = kinesis_records(&json!({"Records": {}})).unwrap_err();
        assert!(
            err.message.contains("Records[] is missing"),
            "{}",
            err.message
        );
    }
}
