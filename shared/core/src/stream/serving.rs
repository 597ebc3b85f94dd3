//! The query API: any time range, answered from batch views for closed
//! periods and realtime windows for the rest. Each bucket of the answer
//! comes from exactly one source, so the seam has neither a gap nor a double
//! count; the answer says which source served which segment, as of when.

use super::speed::watermark;
use super::views::{publications, read_view, ViewPublication};

/// A view's periods: period start → aggregates by dimension values.
type ViewPeriods = std::collections::BTreeMap<String, super::windows::Groups>;
use super::windows::{
    date_of, group_dims, merge_groups, merge_window_items, rfc3339, total, Aggregate, Groups,
    WindowItem,
};
use super::{stream_config, windows_pk};
use crate::config::StreamConfig;
use crate::error::{UseCaseError, UseCaseResult};
use crate::services::Services;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Minute,
    Hour,
    Day,
}

impl Granularity {
    fn secs(self) -> i64 {
        match self {
            Granularity::Minute => 60,
            Granularity::Hour => 3600,
            Granularity::Day => 86_400,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SalesQuery {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub granularity: Granularity,
    /// (dimension index, value)
    pub filters: Vec<(usize, String)>,
}

/// At most this many buckets per answer (a month of minutes).
const MAX_BUCKETS: i64 = 44_640;

fn bad(message: String) -> UseCaseError {
    UseCaseError::BadRequest(message)
}

fn parse_time(name: &str, value: &str) -> UseCaseResult<DateTime<Utc>> {
    if let Some(d) = crate::layout::parse_date(value) {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            bad(format!(
                "{name}={value:?} is not a date (2025-12-03) or an RFC 3339 time (2025-12-03T10:00:00Z)"
            ))
        })
}

/// Parse `start`, `end`, `granularity` and dimension filters.
pub fn parse_sales_query(
    config: &StreamConfig,
    params: &[(String, String)],
) -> UseCaseResult<SalesQuery> {
    let (mut start, mut end, mut granularity) = (None, None, Granularity::Hour);
    let mut filters = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "start" => start = Some(parse_time("start", v)?),
            "end" => end = Some(parse_time("end", v)?),
            "granularity" => {
                granularity = match v.as_str() {
                    "minute" => Granularity::Minute,
                    "hour" => Granularity::Hour,
                    "day" => Granularity::Day,
                    _ => return Err(bad(format!("granularity={v:?}: use minute, hour or day"))),
                }
            }
            other => match config.dimensions.iter().position(|d| d == other) {
                Some(i) => filters.push((i, v.clone())),
                None => {
                    return Err(bad(format!(
                        "unknown parameter {other:?}: use start, end, granularity{}",
                        config
                            .dimensions
                            .iter()
                            .map(|d| format!(", {d}"))
                            .collect::<String>()
                    )))
                }
            },
        }
    }
    let start = start.ok_or_else(|| bad("start is required (start=2025-12-03)".into()))?;
    let end = end.ok_or_else(|| bad("end is required (end=2025-12-04)".into()))?;
    if end <= start {
        return Err(bad(format!("end {end} is not after start {start}")));
    }
    if granularity == Granularity::Minute && config.window_secs() > 60 {
        return Err(bad(format!(
            "granularity=minute is finer than the stream's {} windows: use hour or day",
            config.window
        )));
    }
    let g = granularity.secs();
    let buckets = (end.timestamp() - start.timestamp().div_euclid(g) * g + g - 1) / g;
    if buckets > MAX_BUCKETS {
        return Err(bad(format!(
            "{buckets} {} buckets asked for; at most {MAX_BUCKETS}: narrow the range or coarsen the granularity",
            granularity.name()
        )));
    }
    Ok(SalesQuery {
        start,
        end,
        granularity,
        filters,
    })
}

/// Batch views cached across warm invocations, keyed by the run that
/// published them: a new publication is seen on the next query.
#[derive(Default)]
pub struct ViewCache {
    views: Mutex<HashMap<(String, NaiveDate, String), Arc<ViewPeriods>>>,
}

impl ViewCache {
    async fn get(
        &self,
        svc: &Services<'_>,
        stream: &str,
        publication: &ViewPublication,
        granularity: Granularity,
    ) -> UseCaseResult<Arc<ViewPeriods>> {
        let key = (
            format!("{stream}/{}", granularity.name()),
            publication.date,
            publication.run_id.clone(),
        );
        if let Some(v) = self.views.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(v);
        }
        let object = match granularity {
            Granularity::Day => &publication.daily_key,
            _ => &publication.hourly_key,
        };
        let view = Arc::new(read_view(svc, stream_config(svc, stream)?, object).await?);
        if let Ok(mut m) = self.views.lock() {
            // Older runs of the same view and date are stale now.
            m.retain(|k, _| !(k.0 == key.0 && k.1 == key.1));
            m.insert(key, view.clone());
        }
        Ok(view)
    }
}

/// Realtime windows of one date, merged over shards.
pub async fn realtime_windows(
    svc: &Services<'_>,
    stream: &str,
    date: NaiveDate,
) -> UseCaseResult<BTreeMap<i64, Groups>> {
    let midnight = date
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_micros())
        .unwrap_or_default();
    let mut parsed = Vec::new();
    for hour in 0..24 {
        let pk = windows_pk(stream, midnight + hour * 3_600_000_000);
        for (sk, item) in svc.state.query(&pk).await? {
            parsed.push(
                serde_json::from_value::<WindowItem>(item.value)
                    .map_err(|e| bad(format!("{pk}/{sk} is not a window: {e}")))?,
            );
        }
    }
    Ok(merge_window_items(parsed))
}

fn filtered(groups: &Groups, filters: &[(usize, String)]) -> Aggregate {
    if filters.is_empty() {
        return total(groups);
    }
    let mut t = Aggregate::default();
    for (k, a) in groups {
        let dims = group_dims(k);
        if filters
            .iter()
            .all(|(i, v)| dims.get(*i).is_some_and(|d| d == v))
        {
            t.merge(a);
        }
    }
    t
}

fn aggregate_json(config: &StreamConfig, a: &Aggregate) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("count".into(), json!(a.count));
    for (label, values) in [("sum", &a.sum), ("min", &a.min), ("max", &a.max)] {
        let named: Map<String, Value> = config
            .measures
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let v = values.get(i).copied();
                (name.clone(), v.map_or(Value::Null, |x| json!(round(x))))
            })
            .collect();
        m.insert(label.into(), Value::Object(named));
    }
    m
}

fn round(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// `GET /<name>?start=…&end=…&granularity=…[&<dimension>=…]`
pub async fn sales(
    svc: &Services<'_>,
    stream: &str,
    q: &SalesQuery,
    cache: &ViewCache,
) -> UseCaseResult<Value> {
    let config = stream_config(svc, stream)?;
    let published = publications(svc, stream).await?;
    let mark = watermark(svc, stream).await?;
    let g = q.granularity.secs() * 1_000_000;
    let mut bucket = q.start.timestamp_micros().div_euclid(g) * g;
    let end = q.end.timestamp_micros();
    let mut realtime: HashMap<NaiveDate, BTreeMap<i64, Groups>> = HashMap::new();
    let mut series = Vec::new();
    let mut segments: Vec<Map<String, Value>> = Vec::new();
    let mut grand = Aggregate::default();
    while bucket < end {
        let date = date_of(bucket);
        let batch = match (q.granularity, published.get(&date)) {
            (Granularity::Minute, _) | (_, None) => None,
            (_, Some(p)) => Some(p),
        };
        let (aggregate, source, as_of) = match batch {
            Some(p) => {
                let view = cache.get(svc, stream, p, q.granularity).await?;
                let a = view
                    .get(&rfc3339(bucket))
                    .map(|groups| filtered(groups, &q.filters))
                    .unwrap_or_default();
                (
                    a,
                    "batch",
                    match &p.rebuilt_for {
                        // Say so when a segment's view was rebuilt for late data.
                        Some(why) => {
                            json!({"published_at": p.published_at, "run_id": p.run_id, "rebuilt_for": why})
                        }
                        None => json!({"published_at": p.published_at, "run_id": p.run_id}),
                    },
                )
            }
            None => {
                let windows = match realtime.entry(date) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(realtime_windows(svc, stream, date).await?)
                    }
                };
                let mut groups = Groups::new();
                for (_, w) in windows.range(bucket..bucket + g) {
                    merge_groups(&mut groups, w);
                }
                (
                    filtered(&groups, &q.filters),
                    "realtime",
                    json!({"newest_event": (mark.max_event_time > 0).then(|| rfc3339(mark.max_event_time)),
                           "updated_at": mark.updated_at}),
                )
            }
        };
        grand.merge(&aggregate);
        let mut point = aggregate_json(config, &aggregate);
        point.insert("start".into(), json!(rfc3339(bucket)));
        point.insert("source".into(), json!(source));
        series.push(Value::Object(point));
        let bucket_end = rfc3339(bucket + g);
        match segments.last_mut() {
            Some(s) if s["source"] == source && s["as_of"] == as_of => {
                s.insert("end".into(), json!(bucket_end));
            }
            _ => {
                let mut s = Map::new();
                s.insert("source".into(), json!(source));
                s.insert("start".into(), json!(rfc3339(bucket)));
                s.insert("end".into(), json!(bucket_end));
                s.insert("as_of".into(), as_of);
                segments.push(s);
            }
        }
        bucket += g;
    }
    Ok(json!({
        "stream": stream,
        "start": q.start, "end": q.end,
        "granularity": q.granularity.name(),
        "filters": q.filters.iter().map(|(i, v)| (config.dimensions[*i].clone(), json!(v))).collect::<Map<_, _>>(),
        "total": aggregate_json(config, &grand),
        "segments": segments,
        "series": series,
    }))
}

/// `GET /<name>/recent?window=1m|5m|15m`: the sliding window ending at the
/// stream's newest event time (the event-time clock), from realtime windows.
pub async fn recent(svc: &Services<'_>, stream: &str, window: &str) -> UseCaseResult<Value> {
    let config = stream_config(svc, stream)?;
    let minutes: i64 = match window {
        "1m" => 1,
        "5m" => 5,
        "15m" => 15,
        _ => return Err(bad(format!("window={window:?}: use 1m, 5m or 15m"))),
    };
    let mark = watermark(svc, stream).await?;
    if mark.max_event_time == 0 {
        return Ok(json!({"stream": stream, "window": window, "events": 0,
                         "note": "no event has been aggregated yet"}));
    }
    let w = config.window_secs() as i64 * 1_000_000;
    // The window holding the newest event is included whole.
    let end = mark.max_event_time.div_euclid(w) * w + w;
    let start = end - minutes * 60_000_000;
    let mut groups = Groups::new();
    for date in [date_of(start), date_of(end - 1)]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
    {
        for (_, g) in realtime_windows(svc, stream, date).await?.range(start..end) {
            merge_groups(&mut groups, g);
        }
    }
    let mut top: Vec<(&String, &Aggregate)> = groups.iter().collect();
    top.sort_by(|a, b| {
        b.1.headline()
            .total_cmp(&a.1.headline())
            .then_with(|| a.0.cmp(b.0))
    });
    let by_dimension: Vec<Value> = top
        .into_iter()
        .take(10)
        .map(|(k, a)| {
            let mut m = aggregate_json(config, a);
            let dims: Map<String, Value> = config
                .dimensions
                .iter()
                .cloned()
                .zip(group_dims(k).into_iter().map(Value::String))
                .collect();
            m.insert("dimensions".into(), Value::Object(dims));
            Value::Object(m)
        })
        .collect();
    let mut answer = aggregate_json(config, &total(&groups));
    answer.insert("stream".into(), json!(stream));
    answer.insert("window".into(), json!(window));
    answer.insert("start".into(), json!(rfc3339(start)));
    answer.insert("end".into(), json!(rfc3339(end)));
    answer.insert("source".into(), json!("realtime"));
    answer.insert("as_of".into(), json!(rfc3339(mark.max_event_time)));
    answer.insert("top".into(), Value::Array(by_dimension));
    Ok(Value::Object(answer))
}
