//! The speed and serving layers through `tributary`: the demo's stream part,
//! `stream --replay-file` (all at once and paced), `dlq list`, `query`, and
//! `/sales` on `tributary serve`.

mod common;
use common::*;

use std::path::Path;

fn sample_events() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample/stream/orders_events.jsonl")
        .display()
        .to_string()
}

#[test]
fn the_demo_streams_reconciles_and_serves_sales() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let demo = json_of(&tributary(&ws, &["--json", "demo"]));
    let s = &demo["stream"];
    let n = |k: &str| s[k].as_u64().unwrap();
    assert_eq!(n("input"), 730, "{s}");
    assert_eq!(
        n("input"),
        n("aggregated") + n("dlq") + n("late") + n("duplicates"),
        "{s}"
    );
    assert_eq!((n("dlq"), n("late"), n("duplicates")), (60, 40, 30));
    assert!(demo["reconcile"]["alerts"].as_u64().unwrap() >= 1);

    // The same file again: new records of the same events.
    let again = json_of(&tributary(
        &ws,
        &[
            "--json",
            "stream",
            "--replay-file",
            &sample_events(),
            "--shards",
            "3",
        ],
    ));
    let o = &again["outcome"];
    assert_eq!(o["aggregated"], 0, "{again}");
    assert_eq!(o["duplicates"], 670, "{again}");
    assert_eq!(o["dlq"], 60, "{again}");

    let dlq = json_of(&tributary(&ws, &["--json", "dlq", "list"]));
    assert_eq!(dlq.as_array().unwrap().len(), 120);

    let day = json_of(&tributary(
        &ws,
        &[
            "--json",
            "query",
            "--start",
            "2025-12-03",
            "--end",
            "2025-12-04",
            "--granularity",
            "day",
        ],
    ));
    assert_eq!(day["total"]["count"], 640, "{day}");
    assert_eq!(day["segments"][0]["source"], "batch");
    let minutes = json_of(&tributary(
        &ws,
        &[
            "--json",
            "query",
            "--start",
            "2025-12-03T10:00:00Z",
            "--end",
            "2025-12-03T12:00:00Z",
            "--granularity",
            "minute",
            "--filter",
            "product_id=P001",
        ],
    ));
    assert_eq!(minutes["series"].as_array().unwrap().len(), 120);
    let recent = json_of(&tributary(&ws, &["--json", "query", "--recent", "15m"]));
    assert!(recent["count"].as_u64().unwrap() > 0, "{recent}");
    // Without --json: a table, which source served each segment first.
    let table = tributary(
        &ws,
        &[
            "query",
            "--start",
            "2025-12-03",
            "--end",
            "2025-12-05",
            "--granularity",
            "day",
        ],
    );
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success(), "{text}");
    assert!(
        text.starts_with("segments:") && text.contains("batch") && text.contains("realtime"),
        "{text}"
    );
    assert!(
        text.contains("sum amount") && text.contains("total"),
        "{text}"
    );
    assert!(
        serde_json::from_str::<serde_json::Value>(&text).is_err(),
        "not JSON: {text}"
    );
    // A reader that goes away (`| head`) ends the command quietly.
    for args in [
        &[
            "query",
            "--start",
            "2025-12-03T10:00:00Z",
            "--end",
            "2025-12-03T12:00:00Z",
            "--granularity",
            "minute",
        ][..],
        &["--json", "dlq", "list"][..],
    ] {
        let (status, stderr) = with_stdout_closed(&ws, args);
        assert!(
            status.success() || std::os::unix::process::ExitStatusExt::signal(&status) == Some(13),
            "{args:?}: {status:?} {stderr}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
    }
    let bad = tributary(
        &ws,
        &["query", "--start", "2025-12-04", "--end", "2025-12-03"],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not after start"));

    let (server, addr) = serve(&ws);
    let (status, body) = http(
        &addr,
        "GET",
        "/sales?start=2025-12-03&end=2025-12-04&granularity=hour",
        "",
    );
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["total"]["count"], 640);
    let (status, body) = http(&addr, "GET", "/sales?start=soon", "");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("start"), "{body}");
    let (status, _) = http(&addr, "GET", "/sales/recent?window=5m", "");
    assert_eq!(status, 200);
    drop(server);
}

#[test]
fn a_paced_replay_reports_latency() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));
    let text = std::fs::read_to_string(sample_events()).unwrap();
    let first: Vec<&str> = text.lines().take(60).collect();
    let file = dir.path().join("few.jsonl");
    std::fs::write(&file, first.join("\n")).unwrap();
    let out = json_of(&tributary(
        &ws,
        &[
            "--json",
            "stream",
            "--replay-file",
            file.to_str().unwrap(),
            "--rate",
            "400/s",
            "--batch-window",
            "50ms",
            "--shards",
            "2",
        ],
    ));
    assert_eq!(out["records"], 60);
    assert!(out["latency_ms"]["p99"].as_f64().is_some(), "{out}");
    let bad = tributary(
        &ws,
        &[
            "stream",
            "--replay-file",
            file.to_str().unwrap(),
            "--rate",
            "fast",
        ],
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--rate"));
}
