//! The speed and serving layers on this machine: replay a file as a Kinesis
//! stream into the stream-aggregate function, the DLQ, batch views, the
//! query API and reconciliation — each through the same handler the Lambda
//! runs.

use crate::commands::report::print_json;
use crate::local::LocalRuntime;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use tributary_core::config::{parse_duration_secs, StreamConfig};
use tributary_core::ports::StreamRecord;
use tributary_local::kinesis::KinesisStandIn;

pub struct ReplayOptions<'a> {
    pub file: &'a Path,
    pub stream: &'a str,
    pub batch_window: &'a str,
    /// Records per second; None: as fast as the consumer takes them.
    pub rate: Option<&'a str>,
    pub shards: u32,
    pub batch_size: usize,
}

/// The pacing a replay can keep: from one record every 1,000 seconds to a
/// million a second (beyond, the schedule's arithmetic would overflow or
/// mean "all at once", which is leaving `--rate` out).
const RATE_RANGE: std::ops::RangeInclusive<f64> = 0.001..=1_000_000.0;

fn parse_rate(text: &str) -> Result<f64> {
    let n = text.trim().trim_end_matches("/s");
    match n.parse::<f64>() {
        Ok(r) if RATE_RANGE.contains(&r) => Ok(r),
        _ => bail!(
            "--rate {text:?}: write records per second from {} to {}, for example 200/s (leave --rate out to replay all at once)",
            RATE_RANGE.start(),
            RATE_RANGE.end()
        ),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[derive(Default)]
pub struct Totals {
    pub outcome: serde_json::Map<String, Value>,
    pub invocations: u64,
    pub retries: u64,
}

/// The producer's partition key for each line: its event id when it has
/// one (so re-sent events land on the same shard), else its line number.
pub fn keyed_records(config: &StreamConfig, lines: &[&str]) -> Vec<(String, Vec<u8>)> {
    lines
        .iter()
        .enumerate()
        .map(|(n, line)| {
            let key = serde_json::from_str::<Value>(line)
                .ok()
                .and_then(|v| match &v[&config.event_id] {
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    other => Some(other.to_string()),
                })
                .unwrap_or_else(|| format!("line-{}", n + 1));
            (key, line.as_bytes().to_vec())
        })
        .collect()
}

/// Put everything at once, then consume the shards side by side, a batch
/// from each in turn, as concurrent shard pollers would.
pub async fn deliver_all(
    rt: &LocalRuntime,
    kinesis: &KinesisStandIn<'_>,
    records: Vec<(String, Vec<u8>)>,
    batch_size: usize,
    totals: &mut Totals,
) -> Result<Vec<StreamRecord>> {
    let put = kinesis.put_records_at(records, chrono::Utc::now()).await?;
    let mut queues: Vec<std::collections::VecDeque<StreamRecord>> = (0..kinesis.shards)
        .map(|shard| {
            let id = tributary_local::kinesis::shard_id(shard);
            put.iter().filter(|r| r.shard_id == id).cloned().collect()
        })
        .collect();
    while queues.iter().any(|q| !q.is_empty()) {
        for queue in queues.iter_mut() {
            let take = queue.len().min(batch_size);
            let batch: Vec<StreamRecord> = queue.drain(..take).collect();
            deliver(rt, kinesis, batch, batch_size, totals).await?;
        }
    }
    Ok(put)
}

/// Deliver one shard's buffered records as the event source mapping does:
/// batches of at most `batch_size`; a partial batch failure is retried from
/// the record it names.
async fn deliver(
    rt: &LocalRuntime,
    kinesis: &KinesisStandIn<'_>,
    mut records: Vec<StreamRecord>,
    batch_size: usize,
    totals: &mut Totals,
) -> Result<()> {
    while !records.is_empty() {
        let take = records.len().min(batch_size);
        let batch: Vec<StreamRecord> = records.drain(..take).collect();
        let mut pending = batch;
        for attempt in 0.. {
            let event = kinesis.event(&pending);
            totals.invocations += 1;
            let response = tributary_handlers::invoke(&rt.services(), "stream-aggregate", event)
                .await
                .map_err(|e| anyhow::anyhow!("stream-aggregate failed: {}", e.message))?;
            if let Some(o) = response.pointer(&format!("/streams/{}", kinesis.stream)) {
                for (k, v) in o.as_object().into_iter().flatten() {
                    if let Some(n) = v.as_u64() {
                        let sum = totals.outcome.get(k).and_then(Value::as_u64).unwrap_or(0) + n;
                        totals.outcome.insert(k.clone(), json!(sum));
                    }
                }
            }
            let failed = response["batchItemFailures"]
                .as_array()
                .and_then(|f| f.first())
                .and_then(|f| f["itemIdentifier"].as_str())
                .map(str::to_string);
            let Some(from) = failed else { break };
            if attempt >= 5 {
                bail!(
                    "shard {}: still failing from {from} after 5 retries",
                    pending[0].shard_id
                );
            }
            totals.retries += 1;
            pending.retain(|r| {
                tributary_core::stream::sequence_cmp(&r.sequence_number, &from).is_ge()
            });
            std::thread::sleep(Duration::from_millis(100 << attempt));
        }
    }
    Ok(())
}

/// `tributary stream --replay-file F`: the file's lines are put to the
/// stand-in stream (at `--rate`, or all at once), and every `--batch-window`
/// each shard's new records are delivered to stream-aggregate.
pub async fn replay(rt: &LocalRuntime, o: ReplayOptions<'_>, json_out: bool) -> Result<()> {
    let config = rt.config.streams.get(o.stream).with_context(|| {
        format!(
            "stream {:?} is not in pipeline.toml (known: {})",
            o.stream,
            rt.config
                .streams
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let window = parse_duration_secs(o.batch_window)
        .map(Duration::from_secs)
        .or_else(|| {
            o.batch_window
                .strip_suffix("ms")
                .and_then(|ms| ms.parse().ok())
                .map(Duration::from_millis)
        })
        .with_context(|| format!("--batch-window {:?}: write 1s, 500ms, 10s…", o.batch_window))?;
    let rate = o.rate.map(parse_rate).transpose()?;
    let text =
        std::fs::read_to_string(o.file).with_context(|| format!("reading {}", o.file.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let records = keyed_records(config, &lines);
    let kinesis = KinesisStandIn::new(o.stream, o.shards, &rt.adapters.state);
    let mut totals = Totals::default();
    let started = Instant::now();
    let mut latencies_ms: Vec<f64> = Vec::new();
    let mut put_records = Vec::new();
    match rate {
        None => put_records = deliver_all(rt, &kinesis, records, o.batch_size, &mut totals).await?,
        Some(rate) => {
            // Producer and event source mapping on one clock. Records are
            // put at their scheduled instant; a shard's buffer is delivered
            // when it holds a full batch or its oldest record has waited
            // the batching window, whichever comes first (as the mapping
            // does with BatchSize and MaximumBatchingWindowInSeconds).
            let mut buffers: Vec<(Vec<StreamRecord>, Vec<Instant>)> =
                (0..kinesis.shards).map(|_| Default::default()).collect();
            let mut pending = records.into_iter().enumerate().peekable();
            let schedule = |i: usize| started + Duration::from_secs_f64(i as f64 / rate);
            while pending.peek().is_some() || buffers.iter().any(|b| !b.0.is_empty()) {
                // Everything due goes in one PutRecords call, as a
                // producer library batches.
                let now = Instant::now();
                let mut due = Vec::new();
                while let Some((i, _)) = pending.peek() {
                    if schedule(*i) > now {
                        break;
                    }
                    due.push(pending.next().context("peeked")?.1);
                }
                if !due.is_empty() {
                    let put = kinesis.put_records_at(due, chrono::Utc::now()).await?;
                    let acknowledged = Instant::now();
                    put_records.extend(put.iter().cloned());
                    for r in put {
                        let shard = tributary_local::kinesis::shard_index(&r.shard_id);
                        let buffer = &mut buffers[shard.min(kinesis.shards - 1) as usize];
                        buffer.0.push(r);
                        buffer.1.push(acknowledged);
                    }
                }
                for buffer in buffers.iter_mut() {
                    let ready = buffer.0.len() >= o.batch_size
                        || buffer.1.first().is_some_and(|t| t.elapsed() >= window);
                    if !ready {
                        continue;
                    }
                    let take = buffer.0.len().min(o.batch_size);
                    let batch: Vec<StreamRecord> = buffer.0.drain(..take).collect();
                    let put_at: Vec<Instant> = buffer.1.drain(..take).collect();
                    deliver(rt, &kinesis, batch, o.batch_size, &mut totals).await?;
                    let done = Instant::now();
                    latencies_ms.extend(put_at.iter().map(|t| (done - *t).as_secs_f64() * 1000.0));
                }
                let next_put = pending.peek().map(|(i, _)| schedule(*i));
                let next_deadline = buffers
                    .iter()
                    .filter_map(|b| b.1.first().map(|t| *t + window))
                    .min();
                let wake = match (next_put, next_deadline) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(a), None) | (None, Some(a)) => a,
                    (None, None) => Instant::now(),
                };
                let now = Instant::now();
                if wake > now {
                    std::thread::sleep((wake - now).min(Duration::from_millis(5)));
                }
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The click stream's other consumer, behind its own mapping.
    let svc = rt.services();
    crate::mappings::hold(&svc, o.stream, &put_records).await?;
    let inference = crate::mappings::deliver_waiting(&svc).await?;
    latencies_ms.sort_by(f64::total_cmp);
    let mut summary = json!({
        "stream": o.stream,
        "file": o.file,
        "records": lines.len(),
        "shards": kinesis.shards,
        "invocations": totals.invocations,
        "retries": totals.retries,
        "outcome": totals.outcome,
        "elapsed_seconds": (elapsed * 1000.0).round() / 1000.0,
    });
    if o.stream == tributary_core::inference::CLICK_STREAM {
        summary[tributary_core::inference::CONSUMER] = json!(inference);
    }
    if !latencies_ms.is_empty() {
        summary["latency_ms"] = json!({
            "p50": (percentile(&latencies_ms, 0.5) * 10.0).round() / 10.0,
            "p99": (percentile(&latencies_ms, 0.99) * 10.0).round() / 10.0,
            "max": (latencies_ms.last().copied().unwrap_or(0.0) * 10.0).round() / 10.0,
            "what": "put to the stand-in stream → aggregated and queryable",
        });
    }
    if json_out {
        return print_json(&summary);
    }
    let get = |k: &str| totals.outcome.get(k).and_then(Value::as_u64).unwrap_or(0);
    println!(
        "{} records from {} onto stream {} ({} shard(s)), {} invocation(s) of stream-aggregate",
        lines.len(),
        o.file.display(),
        o.stream,
        kinesis.shards,
        totals.invocations
    );
    println!(
        "  aggregated {}  dead-lettered {}  late {}  duplicates {}  redelivered {}",
        get("aggregated"),
        get("dlq"),
        get("late"),
        get("duplicates"),
        get("redelivered")
    );
    if let Some(l) = summary.get("latency_ms") {
        println!(
            "  latency put → queryable: p50 {} ms, p99 {} ms",
            l["p50"], l["p99"]
        );
    }
    Ok(())
}

async fn call(rt: &LocalRuntime, function: &str, event: Value) -> Result<Value> {
    tributary_handlers::invoke(&rt.services(), function, event)
        .await
        .map_err(|e| anyhow::anyhow!("{function}: {}", e.message))
}

/// The dead letters of a workspace's or a stack's streams.
pub async fn dlq_list(
    svc: &tributary_core::services::Services<'_>,
    stream: Option<&str>,
    json_out: bool,
) -> Result<()> {
    let streams: Vec<&String> = match stream {
        Some(s) => vec![
            svc.config
                .streams
                .get_key_value(s)
                .with_context(|| format!("stream {s:?} is not in pipeline.toml"))?
                .0,
        ],
        None => svc.config.streams.keys().collect(),
    };
    let mut all = Vec::new();
    for s in streams {
        for (key, letter) in tributary_core::stream::speed::dead_letters(svc, s).await? {
            all.push(json!({"key": key, "letter": letter}));
        }
    }
    if json_out {
        return print_json(&all);
    }
    if all.is_empty() {
        println!("The DLQ is empty.");
    }
    for a in &all {
        let l = &a["letter"];
        println!(
            "{} {} {}  {}\n    {}",
            l["stream"].as_str().unwrap_or_default(),
            l["shard_id"].as_str().unwrap_or_default(),
            l["sequence_number"].as_str().unwrap_or_default(),
            l["error"].as_str().unwrap_or_default(),
            l["data_text"].as_str().unwrap_or("(binary)")
        );
    }
    Ok(())
}

pub async fn dlq_replay(rt: &LocalRuntime, stream: &str) -> Result<()> {
    print_json(&call(rt, "replay-dlq", json!({"stream": stream})).await?)
}

pub async fn views_build(
    rt: &LocalRuntime,
    stream: Option<&str>,
    date: Option<&str>,
    start: Option<&str>,
    end: Option<&str>,
) -> Result<()> {
    let event = json!({"stream": stream, "date": date, "start": start, "end": end});
    print_json(&call(rt, "build-views", event).await?)
}

pub async fn reconcile(rt: &LocalRuntime, stream: Option<&str>, date: Option<&str>) -> Result<()> {
    let event = json!({"stream": stream, "date": date});
    print_json(&call(rt, "reconcile", event).await?)
}

/// The function URL request the query API receives.
pub fn query_event(path: &str, query: &str) -> Value {
    json!({
        "version": "2.0", "rawPath": path, "rawQueryString": query,
        "requestContext": {"http": {"method": "GET", "path": path, "sourceIp": "127.0.0.1"}},
        "isBase64Encoded": false,
    })
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub struct QueryOptions<'a> {
    pub json: bool,
    pub name: &'a str,
    pub start: Option<&'a str>,
    pub end: Option<&'a str>,
    pub granularity: &'a str,
    pub filters: &'a [String],
    pub recent: Option<&'a str>,
}

pub async fn query(rt: &LocalRuntime, o: QueryOptions<'_>) -> Result<()> {
    let (path, params) = match o.recent {
        Some(w) => (
            format!("/{}/recent", o.name),
            vec![("window".to_string(), w.to_string())],
        ),
        None => {
            let mut p = vec![("granularity".to_string(), o.granularity.to_string())];
            for (k, v) in [("start", o.start), ("end", o.end)] {
                if let Some(v) = v {
                    p.push((k.to_string(), v.to_string()));
                }
            }
            for f in o.filters {
                let (k, v) = f
                    .split_once('=')
                    .with_context(|| format!("--filter {f:?}: write dimension=value"))?;
                p.push((k.to_string(), v.to_string()));
            }
            (format!("/{}", o.name), p)
        }
    };
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let response = call(rt, "query-api", query_event(&path, &query.join("&"))).await?;
    let status = response["statusCode"].as_u64().unwrap_or(500);
    let body: Value =
        serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
    if status != 200 {
        bail!(
            "{path} answered {status}: {}",
            body["error"].as_str().unwrap_or("no message")
        );
    }
    if o.json {
        return print_json(&body);
    }
    print!("{}", query_table(&body));
    Ok(())
}

/// The query answer for people: which source served each segment (as of
/// when), then the series, count and sums per period, and the total.
fn query_table(answer: &Value) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let measures: Vec<String> = answer["total"]["sum"]
        .as_object()
        .or(answer["sum"].as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let sums = |v: &Value| -> String {
        measures
            .iter()
            .map(|m| match v["sum"][m].as_f64() {
                Some(x) => format!(" {x:>14.2}"),
                None => format!(" {:>14}", "-"),
            })
            .collect()
    };
    let count = |v: &Value| v["count"].as_u64().unwrap_or(0);
    let header: String = measures
        .iter()
        .map(|m| format!(" {:>14}", format!("sum {m}")))
        .collect();
    if answer.get("series").is_none() {
        // `--recent`: one sliding window.
        let _ = writeln!(
            out,
            "{} {} .. {} (realtime, as of {})",
            answer["window"].as_str().unwrap_or("?"),
            answer["start"].as_str().unwrap_or("?"),
            answer["end"].as_str().unwrap_or("?"),
            answer["as_of"].as_str().unwrap_or("?")
        );
        let _ = writeln!(out, "{:<40} {:>8}{header}", "", "count");
        let _ = writeln!(out, "{:<40} {:>8}{}", "all", count(answer), sums(answer));
        for t in answer["top"].as_array().into_iter().flatten() {
            let dims: Vec<String> = t["dimensions"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("?")))
                .collect();
            let _ = writeln!(out, "{:<40} {:>8}{}", dims.join(" "), count(t), sums(t));
        }
        return out;
    }
    let _ = writeln!(out, "segments:");
    for seg in answer["segments"].as_array().into_iter().flatten() {
        let as_of = &seg["as_of"];
        let detail = match seg["source"].as_str() {
            Some("batch") => format!(
                "views run {} published {}{}",
                as_of["run_id"].as_str().unwrap_or("?"),
                as_of["published_at"].as_str().unwrap_or("?"),
                as_of["rebuilt_for"]
                    .as_str()
                    .map(|r| format!(", rebuilt for {r}"))
                    .unwrap_or_default()
            ),
            _ => format!(
                "newest event {}",
                as_of["newest_event"].as_str().unwrap_or("none yet")
            ),
        };
        let _ = writeln!(
            out,
            "  {} .. {}  {:<8}  {detail}",
            seg["start"].as_str().unwrap_or("?"),
            seg["end"].as_str().unwrap_or("?"),
            seg["source"].as_str().unwrap_or("?")
        );
    }
    let _ = writeln!(
        out,
        "{:<22} {:<8} {:>8}{header}",
        "period", "source", "count"
    );
    for point in answer["series"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<22} {:<8} {:>8}{}",
            point["start"].as_str().unwrap_or("?"),
            point["source"].as_str().unwrap_or("?"),
            count(point),
            sums(point)
        );
    }
    let _ = writeln!(
        out,
        "{:<22} {:<8} {:>8}{}",
        "total",
        "",
        count(&answer["total"]),
        sums(&answer["total"])
    );
    out
}
