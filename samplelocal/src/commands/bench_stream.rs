//! `tributary bench stream`: the speed layer's figures.
//!
//! - decode + validate + aggregate throughput on one core, against the same
//!   work in CPython (`samplelocal/bench/stream_peer.py`) in the same run;
//! - event → queryable latency with 1 s batching: a paced replay through the
//!   stand-in stream into stream-aggregate (`tributary stream --rate`);
//! - query p99 for a one-day range, warm, through the query-api handler.

use crate::local::LocalRuntime;
use crate::sample;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Instant;
use tributary_core::stream::events::decode;
use tributary_core::stream::windows::{group_key, window_start, Groups};

#[derive(clap::Args, Debug)]
pub struct BenchStreamArgs {
    /// Events for the throughput run.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Events for the high-rate latency run (paced at --rate).
    #[arg(long, default_value_t = 15000)]
    pub latency_events: usize,
    #[arg(long, default_value = "1000/s")]
    pub rate: String,
    /// The CPython peer; empty to skip it.
    #[arg(long, default_value = "python3")]
    pub python: String,
}

fn events(n: usize) -> Vec<String> {
    // Deterministic: a small LCG instead of a dependency.
    let mut x: u64 = 42;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x >> 33
    };
    (0..n)
        .map(|i| {
            let secs = 1_764_720_000 + (i as u64 * 86_400 / n as u64);
            let t = chrono::DateTime::from_timestamp(secs as i64, (next() % 1000) as u32 * 1_000_000)
                .unwrap_or_default();
            format!(
                "{{\"order_id\":\"B{i:08}\",\"user_id\":{},\"product_id\":\"P{:03}\",\"amount\":{}.{:02},\"order_ts\":\"{}\"}}",
                next() % 5000,
                next() % 200,
                next() % 200,
                next() % 100,
                t.format("%Y-%m-%dT%H:%M:%S%.3fZ")
            )
        })
        .collect()
}

/// What the throughput run computed, in the peer's terms: poison, the
/// (minute, product) aggregates, their event count and amount sum, and a
/// digest of every (minute, product, count).
fn aggregates_of(windows: &BTreeMap<i64, Groups>, poison: u64) -> Value {
    const MODULUS: u128 = (1 << 61) - 1;
    let (mut groups, mut aggregated, mut amount, mut digest) = (0u64, 0u64, 0.0f64, 0u128);
    for (start, by_product) in windows {
        let minute_index = (*start / 60_000_000) as u128;
        for (key, a) in by_product {
            let product: u128 = tributary_core::stream::windows::group_dims(key)
                .first()
                .and_then(|p| p.get(1..)?.parse().ok())
                .unwrap_or(0);
            groups += 1;
            aggregated += a.count;
            amount += a.sum.first().copied().unwrap_or(0.0);
            digest =
                (digest + a.count as u128 * (minute_index % 100_003 + 1) * (product + 1)) % MODULUS;
        }
    }
    json!({"poison": poison, "windows": groups, "aggregated": aggregated,
           "amount_sum": amount, "digest": digest as u64})
}

/// A speed ratio means something only if both sides computed the same:
/// poison, aggregates, counts and sums (floats summed in another order may
/// differ in the last bits).
fn check_same_results(ours: &Value, peer: &Value) -> Result<()> {
    for field in ["poison", "windows", "aggregated", "digest"] {
        anyhow::ensure!(
            ours[field].as_u64().is_some() && ours[field] == peer[field],
            "the peer computed something else: {field} is {} here and {} in CPython (ours {ours}, peer {peer}); no ratio is reported",
            ours[field],
            peer[field]
        );
    }
    let (a, b) = (
        ours["amount_sum"].as_f64().unwrap_or(f64::NAN),
        peer["amount_sum"].as_f64().unwrap_or(f64::NAN),
    );
    anyhow::ensure!(
        (a - b).abs() <= 1e-9 * a.abs().max(1.0),
        "the peer computed something else: amount sum {a} here, {b} in CPython; no ratio is reported"
    );
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
    sorted.get(i).copied().unwrap_or(0.0)
}

pub fn run(args: &BenchStreamArgs, json_out: bool) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = tributary_core::config::Config::parse(sample::PIPELINE_TOML, "pipeline.toml")?;
    let stream = config
        .streams
        .get("orders")
        .context("sample lacks [streams.orders]")?;

    // 1. Throughput on one core.
    let lines = events(args.events);
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, lines.join("\n"))?;
    let started = Instant::now();
    let mut windows: BTreeMap<i64, Groups> = BTreeMap::new();
    let mut poison = 0u64;
    for line in &lines {
        match decode(stream, line.as_bytes()) {
            Ok((e, _)) => windows
                .entry(window_start(e.time_micros, stream.window_secs()))
                .or_default()
                .entry(group_key(&e.dims))
                .or_default()
                .add(&e.measures),
            Err(_) => poison += 1,
        }
    }
    let ours = started.elapsed().as_secs_f64();
    let ours_rate = args.events as f64 / ours;
    let peer = if args.python.is_empty() {
        None
    } else {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/stream_peer.py");
        let out = std::process::Command::new(&args.python)
            .arg(script)
            .arg(&file)
            .output()
            .with_context(|| format!("running {} {script}", args.python))?;
        let v: Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "the peer printed no JSON: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        check_same_results(&aggregates_of(&windows, poison), &v)?;
        v["seconds"].as_f64().map(|s| args.events as f64 / s)
    };

    // 2. Event → queryable latency: paced replays with 1 s batching and the
    //    mapping's default batch size (100). At a high rate batches fill
    //    before the window; at a low rate the window decides.
    let ws = dir.path().join("ws");
    let exe = std::env::current_exe()?;
    let rt = LocalRuntime::fresh(&ws, sample::PIPELINE_TOML)?;
    drop(rt);
    let mut latency = serde_json::Map::new();
    let mut offset = args.events;
    for (label, rate, count) in [
        ("high_rate", args.rate.as_str(), args.latency_events),
        ("low_rate", "50/s", 150),
    ] {
        let file = dir.path().join(format!("{label}.jsonl"));
        std::fs::write(&file, events(offset + count)[offset..].join("\n"))?;
        offset += count;
        let out = std::process::Command::new(&exe)
            .arg("--workspace")
            .arg(&ws)
            .args(["--json", "stream", "--replay-file"])
            .arg(&file)
            .args(["--rate", rate, "--batch-window", "1s", "--shards", "2"])
            .args(["--batch-size", "100"])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "the paced replay failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let replay: Value = serde_json::from_slice(&out.stdout)?;
        let mut figures = replay["latency_ms"].clone();
        figures["rate"] = json!(rate);
        figures["events"] = json!(count);
        latency.insert(label.to_string(), figures);
    }

    // 3. Query p99 for a one-day range, warm (views built for that day).
    let rt = LocalRuntime::open(&ws, None)?;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let query_ms = tokio.block_on(async {
        let svc = rt.services();
        let day = tributary_core::layout::parse_date("2025-12-03").context("date")?;
        tributary_core::stream::views::build_views(&svc, "orders", day, chrono::Utc::now()).await?;
        let event = super::stream::query_event(
            "/sales",
            "start=2025-12-03&end=2025-12-04&granularity=hour",
        );
        let mut ms = Vec::new();
        for i in 0..1000 {
            let t = Instant::now();
            let r = tributary_handlers::invoke(&svc, "query-api", event.clone())
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            anyhow::ensure!(r["statusCode"] == 200, "query failed: {r}");
            if i >= 10 {
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        ms.sort_by(f64::total_cmp);
        anyhow::Ok(ms)
    })?;

    let report = json!({
        "throughput": {
            "events": args.events, "poison": poison, "windows": windows.len(),
            "same_results_as_cpython": peer.is_some(),
            "tributary_events_per_s": ours_rate.round(),
            "cpython_events_per_s": peer.map(f64::round),
            "ratio_vs_cpython": peer.map(|p| (ours_rate / p * 10.0).round() / 10.0),
            "target_events_per_s": 500_000,
        },
        "latency_ms": latency,
        "latency_setup": {"batch_window": "1s", "batch_size": 100, "shards": 2, "target_p99_ms": 1000},
        "query_one_day_ms": {
            "p50": (percentile(&query_ms, 0.5) * 1000.0).round() / 1000.0,
            "p99": (percentile(&query_ms, 0.99) * 1000.0).round() / 1000.0,
            "target_p99": 10,
        },
    });
    if json_out {
        return super::report::print_json(&report);
    }
    println!(
        "decode + validate + aggregate: {:.0} events/s on one core (target 500,000){}",
        ours_rate,
        peer.map(|p| format!("; CPython {p:.0} events/s; ratio {:.1}×", ours_rate / p))
            .unwrap_or_default()
    );
    for (label, l) in &latency {
        println!(
            "event → queryable ({label}: {} at {}; window 1 s, batch size 100, 2 shards): p50 {} ms, p99 {} ms, max {} ms",
            l["events"], l["rate"], l["p50"], l["p99"], l["max"]
        );
    }
    println!(
        "query, one day hourly, warm: p50 {} ms, p99 {} ms (target p99 < 10 ms)",
        report["query_one_day_ms"]["p50"], report["query_one_day_ms"]["p99"]
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check refuses a peer that computed anything else.
    #[test]
    fn a_ratio_needs_the_same_results_on_both_sides() {
        let ours =
            json!({"poison": 1, "windows": 3, "aggregated": 10, "amount_sum": 12.5, "digest": 77});
        assert!(check_same_results(&ours, &ours).is_ok());
        for (field, other) in [
            ("poison", json!(0)),
            ("windows", json!(4)),
            ("aggregated", json!(9)),
            ("digest", json!(78)),
            ("amount_sum", json!(12.6)),
        ] {
            let mut peer = ours.clone();
            peer[field] = other;
            let err = check_same_results(&ours, &peer).unwrap_err().to_string();
            assert!(err.contains("computed something else"), "{field}: {err}");
        }
    }
}
