//! The `tributary` binary as a user runs it.

mod common;
use common::*;

use serde_json::Value;
use std::path::{Path, PathBuf};

fn events() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("events")
}

#[test]
fn demo_processes_the_sample_and_accounts_for_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let out = json_of(&tributary(&ws, &["--json", "demo"]));
    let runs = out["runs"].as_array().unwrap();
    assert_eq!(
        runs.len(),
        10,
        "3 days x 3 single-day datasets + customer_360 on two days, minus..."
    );
    for r in runs {
        let s = &r["stats"];
        let rejected: u64 = s["rejected"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(
            s["input"].as_u64().unwrap(),
            s["kept"].as_u64().unwrap() + rejected + s["duplicates"].as_u64().unwrap()
        );
    }
    // The degraded user_events day was held, an approval was requested,
    // and the demo approved it: its execution resumed and published it.
    let approvals = out["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 1, "{out}");
    assert_eq!(approvals[0]["summary"]["held"][0]["dataset"], "user_events");
    assert_eq!(approvals[0]["summary"]["date"], "2025-12-02");
    assert_eq!(approvals[0]["execution"]["status"], "SUCCEEDED");
    assert!(runs.iter().all(|r| r["state"] == "published"), "{runs:?}");
    let executions = out["executions"].as_array().unwrap();
    assert!(
        executions.iter().all(|e| e["status"] == "SUCCEEDED"),
        "{executions:?}"
    );
    assert_eq!(out["waiting"][0]["pipeline"], "customer_360");
    assert_eq!(out["watermarks"]["orders_daily"], "2025-12-03");
    assert_eq!(out["watermarks"]["user_events_daily"], "2025-12-03");
    // The approval message, with its signed links, is in the outbox.
    let outbox = std::fs::read_to_string(ws.join("outbox.jsonl")).unwrap();
    assert!(
        outbox.contains("decision=approve&expires=") && outbox.contains("signature="),
        "{outbox}"
    );
    // The human-readable form prints the summary table.
    let text = tributary(&ws, &["demo"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("dataset") && stdout.contains("quality") && stdout.contains("published"),
        "{stdout}"
    );
}

#[test]
fn upload_invoke_partitions_watermark_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));

    // The missing behaviour file arrives: customer_360 becomes ready for 12-03.
    let file = dir.path().join("behavior.csv");
    std::fs::write(&file, "customer_id,total_spend,sessions,last_active_ts,churn_risk\nC0001,1.5,2,2025-12-03T10:00:00Z,0.2\n").unwrap();
    let up = json_of(&tributary(
        &ws,
        &[
            "--json",
            "upload",
            file.to_str().unwrap(),
            "--dataset",
            "customer_behavior_assets",
            "--date",
            "2025-12-03",
        ],
    ));
    assert_eq!(
        up["key"],
        "raw/customer_behavior_assets/date=2025-12-03/behavior.csv"
    );
    let run = &up["runs"][0];
    assert_eq!(run["execution"]["status"], "SUCCEEDED", "{up}");
    let states: Vec<&str> = run["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["published", "published"]);

    // The same arrival delivered again as an EventBridge event (same ETag)
    // starts nothing.
    let parts = json_of(&tributary(
        &ws,
        &[
            "--json",
            "partitions",
            "--dataset",
            "customer_behavior_assets",
        ],
    ));
    let file_meta = parts["partitions"][2]["files"][0].clone();
    let mut event: Value = serde_json::from_str(
        &std::fs::read_to_string(events().join("eventbridge-object-created.json")).unwrap(),
    )
    .unwrap();
    event["detail"]["object"]["etag"] = file_meta["etag"].clone();
    event["detail"]["object"]["size"] = file_meta["size"].clone();
    let redelivered = dir.path().join("redelivered.json");
    std::fs::write(&redelivered, event.to_string()).unwrap();
    let inv = json_of(&tributary(
        &ws,
        &[
            "invoke",
            "object-created",
            "--event",
            redelivered.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        inv["objects"][0]["started"][0]["newly_started"], false,
        "{inv}"
    );

    // A manual step-by-step run through the partition handlers.
    for f in ["clean-partition", "validate-partition", "publish-partition"] {
        let ev = events().join(format!("{f}.json"));
        let out = tributary(&ws, &["invoke", f, "--event", ev.to_str().unwrap()]);
        json_of(&out);
    }
    // A bad event is a clear error with the Step Functions error name.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"dataset": "orders", "date": "2025-02-30", "run_id": "x"}"#,
    )
    .unwrap();
    let out = tributary(
        &ws,
        &[
            "invoke",
            "clean-partition",
            "--event",
            bad.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["errorType"], "Tributary.BadEvent");

    let parts = json_of(&tributary(&ws, &["--json", "partitions", "--unprocessed"]));
    let unprocessed: Vec<&str> = parts["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["state"].as_str().unwrap())
        .collect();
    assert!(
        unprocessed.is_empty(),
        "the demo approved its held day: {unprocessed:?}"
    );
    assert_eq!(parts["watermarks"]["customer_360"]["date"], "2025-12-03");

    let w = json_of(&tributary(
        &ws,
        &[
            "--json",
            "watermark",
            "set",
            "--pipeline",
            "orders_daily",
            "--date",
            "2025-11-30",
            "--reason",
            "reprocess",
        ],
    ));
    assert_eq!(w["date"], "2025-11-30");
    assert_eq!(w["manual_changes"][0]["reason"], "reprocess");
    let out = tributary(
        &ws,
        &[
            "watermark",
            "set",
            "--pipeline",
            "nope",
            "--date",
            "2025-11-30",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown pipeline"));

    let plan = json_of(&tributary(
        &ws,
        &["--json", "retention", "--dry-run", "--today", "2026-06-01"],
    ));
    let deletions = plan["deletions"].as_array().unwrap();
    assert!(
        deletions
            .iter()
            .any(|d| d["layer"] == "raw" && d["dataset"] == "orders"),
        "{plan}"
    );
    // Every layer with a retention is swept, not only the dataset layers:
    // the demo's stream archive (90 days in the sample) is past it by June.
    assert!(
        deletions
            .iter()
            .any(|d| d["layer"] == "stream" && d["dataset"] == "orders"),
        "{plan}"
    );
    assert!(
        ws.join("bucket/raw/orders/date=2025-12-01/orders.csv")
            .exists(),
        "dry run"
    );
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let out = tributary(&ws, &["partitions"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no pipeline.toml"));
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        "[datasets.x]\n[[datasets.x.columns]]\nname = \"a\"\ntype = \"strng\"\n",
    )
    .unwrap();
    let out = tributary(&ws, &["--config", cfg.to_str().unwrap(), "partitions"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pipeline.toml") && err.contains("line 4") && err.contains("strng"),
        "{err}"
    );
    // A folder that is not a workspace is never wiped by demo.
    let precious = dir.path().join("precious");
    std::fs::create_dir_all(&precious).unwrap();
    std::fs::write(precious.join("thesis.txt"), "do not delete").unwrap();
    let out = tributary(&precious, &["demo"]);
    assert!(!out.status.success());
    assert!(precious.join("thesis.txt").exists());
}

#[test]
fn bench_clean_peer_mode_writes_the_harness_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.csv");
    std::fs::write(
        &input,
        "order_id,user_id,product_id,amount,currency,order_ts,status,country\n\
         A,1,P,1.00,USD,2025-06-01T10:00:00Z,paid,US\n\
         A,1,P,2.00,USD,2025-06-01T11:00:00Z,paid,US\n\
         B,2,P,0,USD,2025-06-01T10:00:00Z,paid,US\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = json_of(&tributary(
        dir.path(),
        &[
            "bench",
            "clean",
            "--in",
            input.to_str().unwrap(),
            "--out-dir",
            out_dir.to_str().unwrap(),
            "--threads",
            "2",
        ],
    ));
    assert_eq!(
        (
            out["input"].as_u64(),
            out["kept"].as_u64(),
            out["duplicates"].as_u64()
        ),
        (Some(3), Some(1), Some(1))
    );
    assert_eq!(out["rejected"]["nonpositive_amount"], 1);
    for f in [
        "orders_clean.parquet",
        "orders_rejected.parquet",
        "counts.json",
    ] {
        assert!(out_dir.join(f).exists(), "{f}");
    }
}

/// Every table the catalog registers (`tributary infra vars`, what
/// Terraform creates in Glue) has exactly the columns, in order and with
/// their types, of the files its published partitions hold: cleaned
/// datasets with their derived columns, batch views as JSON Lines rows.
#[test]
fn catalog_tables_have_the_columns_of_the_files_written() {
    use tributary_core::ports::{Catalog, ObjectStore};
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));
    let config = ws.join("pipeline.toml");
    let vars = json_of(&tributary(
        &ws,
        &["--config", config.to_str().unwrap(), "infra", "vars"],
    ));
    let adapters = tributary_local::Workspace::new(&ws).adapters();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut checked = Vec::new();
    for (table, def) in vars["glue_tables"].as_object().unwrap() {
        let mut declared: Vec<(String, String)> = def["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["type"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        // JSON tables are matched by name, Parquet ones in order too.
        let by_name = def["format"] == "json";
        if by_name {
            declared.sort();
        }
        let partitions = rt
            .block_on(adapters.catalog.list_partitions(table))
            .unwrap();
        for p in partitions {
            let files = rt.block_on(adapters.objects.list(&p.location)).unwrap();
            assert!(!files.is_empty(), "{table}: no files at {}", p.location);
            for f in files {
                let bytes = rt.block_on(adapters.objects.get_bytes(&f.key)).unwrap();
                let mut in_file: Vec<(String, String)> =
                    tributary_core::table_schema::file_columns(&f.key, bytes)
                        .unwrap()
                        .into_iter()
                        .map(|(n, t)| (n, t.to_string()))
                        .collect();
                if by_name {
                    in_file.sort();
                }
                assert_eq!(declared, in_file, "{table}: {}", f.key);
            }
            checked.push(table.clone());
        }
    }
    checked.dedup();
    for expected in ["orders", "user_events", "daily_sales", "hourly_sales"] {
        assert!(
            checked.iter().any(|t| t == expected),
            "{expected} not checked: {checked:?}"
        );
    }
    assert!(
        vars["glue_tables"]["orders"]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "order_date" && c["type"] == "date"),
        "the derived column is registered"
    );
}

/// `bench stream` reports a ratio against CPython only after both computed
/// the same poison, aggregates, counts and sums.
#[test]
fn bench_stream_checks_the_peer_computed_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let out = json_of(&tributary(
        &ws,
        &[
            "--json",
            "bench",
            "stream",
            "--events",
            "5000",
            "--latency-events",
            "100",
        ],
    ));
    let t = &out["throughput"];
    assert_eq!(t["same_results_as_cpython"], true, "{out}");
    assert!(t["ratio_vs_cpython"].as_f64().unwrap() > 0.0, "{out}");
}

/// The benchmark's workload (samplelocal/bench/peers/workload.py) knows by
/// construction what a correct cleaner reports; the cleaner the peers are
/// measured against reports exactly that, reason by reason.
#[test]
fn the_benchmark_workload_counts_are_what_the_cleaner_reports() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("orders.csv");
    let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/peers/workload.py");
    let made = std::process::Command::new("python3")
        .arg(&generator)
        .args(["--rows", "20000", "--out"])
        .arg(&data)
        .output()
        .expect("run python3 workload.py");
    assert!(made.status.success(), "{made:?}");
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(data.with_extension("csv.expected.json")).unwrap(),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let counts = json_of(&tributary(
        &dir.path().join("ws"),
        &[
            "bench",
            "clean",
            "--in",
            data.to_str().unwrap(),
            "--out-dir",
            out_dir.to_str().unwrap(),
            "--threads",
            "1",
        ],
    ));
    for key in ["input", "kept", "rejected", "rejected_total", "duplicates"] {
        assert_eq!(
            counts[key], expected[key],
            "{key}: {counts} against {expected}"
        );
    }
    assert!(expected["rejected"]["bad_status"].as_u64().unwrap() > 0);
    assert_eq!(expected["edge_rows_written"], 27);
}
