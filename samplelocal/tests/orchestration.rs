//! The partition pipeline as a state machine, end to end through the CLI:
//! approval approved and rejected, an approval timing out, and the same S3
//! event delivered three times.

mod common;
use common::*;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The sample's degraded user_events day: its quality is below threshold.
fn degraded_events() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample/raw/user_events/date=2025-12-02/events.csv")
}

fn upload_degraded(ws: &Path, date: &str) -> Value {
    let file = degraded_events();
    json_of(&tributary(
        ws,
        &[
            "--json",
            "upload",
            file.to_str().unwrap(),
            "--dataset",
            "user_events",
            "--date",
            date,
        ],
    ))
}

fn state_of(ws: &Path, dataset: &str, date: &str) -> String {
    let parts = json_of(&tributary(
        ws,
        &["--json", "partitions", "--dataset", dataset],
    ));
    parts["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["date"] == date)
        .map(|p| p["state"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn low_quality_waits_for_a_person_who_approves_or_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));

    // A degraded day arrives: the execution pauses at RequestApproval.
    let up = upload_degraded(&ws, "2025-12-04");
    let run = &up["runs"][0];
    assert_eq!(run["execution"]["status"], "RUNNING", "{up}");
    assert_eq!(run["execution"]["waitingFor"]["state"], "RequestApproval");
    assert_eq!(state_of(&ws, "user_events", "2025-12-04"), "held");
    let pending = json_of(&tributary(&ws, &["--json", "approvals", "list"]));
    let first = pending["pending"][0]["id"].as_str().unwrap().to_string();
    // The text list: the request and the execution ARN on lines of their own.
    let text = tributary(&ws, &["approvals", "list"]);
    let listed = String::from_utf8_lossy(&text.stdout);
    let purpose = pending["pending"][0]["purpose"].as_str().unwrap();
    assert!(listed.lines().any(|l| l.trim() == purpose), "{listed}");
    assert!(
        listed
            .lines()
            .filter(|l| l.contains("arn:aws:states"))
            .all(|l| l.trim_start().starts_with("execution") && !l.contains(purpose)),
        "{listed}"
    );
    assert_eq!(
        pending["pending"][0]["summary"]["held"][0]["dataset"],
        "user_events"
    );

    // Rejected: the run is quarantined and the execution fails, saying why.
    let rejected = tributary(
        &ws,
        &[
            "approvals",
            "reject",
            &first,
            "--reason",
            "late vendor file",
            "--by",
            "ana",
        ],
    );
    let v = stdout_json(&rejected);
    assert_eq!(v["status"], "FAILED", "{v}");
    assert_eq!(v["error"], "Tributary.Quarantined");
    assert!(
        v["cause"].as_str().unwrap().contains("rejected by ana"),
        "{v}"
    );
    assert_eq!(state_of(&ws, "user_events", "2025-12-04"), "quarantined");
    let outbox = std::fs::read_to_string(ws.join("outbox.jsonl")).unwrap();
    assert!(
        outbox.contains("quarantined"),
        "an alert went out: {outbox}"
    );

    // The run report draws the machine, the path taken and where it failed.
    let page = dir.path().join("rejected.html");
    let name = v["name"].as_str().unwrap();
    let out = tributary(&ws, &["report", name, "--out", page.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    for expected in [
        "<svg",
        "RequestApproval",
        "Quarantined",
        "Tributary.Quarantined",
        "rows in",
        "failed here",
    ] {
        assert!(
            html.contains(expected),
            "{expected} missing from the report"
        );
    }
    assert!(html.contains("#dafbe1"), "visited states are highlighted");

    // Deciding again changes nothing.
    let again = tributary(&ws, &["approvals", "approve", &first]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already Rejected"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // Another degraded day, approved: published despite its quality.
    upload_degraded(&ws, "2025-12-05");
    let pending = json_of(&tributary(&ws, &["--json", "approvals", "list"]));
    let second = pending["pending"][0]["id"].as_str().unwrap().to_string();
    let v = json_of(&tributary(
        &ws,
        &["approvals", "approve", &second, "--by", "ben"],
    ));
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    assert_eq!(
        v["output"]["approval"]["decider"],
        "ben (tributary approvals)"
    );
    assert_eq!(state_of(&ws, "user_events", "2025-12-05"), "published");
    // The quarantined 12-04 is a gap: the watermark does not jump over it.
    let parts = json_of(&tributary(&ws, &["--json", "partitions"]));
    assert_eq!(
        parts["watermarks"]["user_events_daily"]["date"],
        "2025-12-03"
    );

    // Catchup over the gap reports the quarantined day (it does not claim to
    // have started it) and alerts; the published day is listed as such.
    let out = json_of(&backfill(
        &ws,
        "user_events_daily",
        "2025-12-04",
        "2025-12-05",
        false,
    ));
    let report = &out["execution"]["output"]["report"];
    assert_eq!(report["quarantined"], json!(["2025-12-04"]), "{out}");
    assert_eq!(report["started"], json!([]), "{out}");
    assert_eq!(report["published"], json!(["2025-12-05"]), "{out}");
    assert_eq!(out["runs"], json!([]), "nothing ran");
    let outbox = std::fs::read_to_string(ws.join("outbox.jsonl")).unwrap();
    assert!(outbox.contains("2025-12-04 quarantined"), "{outbox}");
    // Forced, the day runs again (and waits for a person again).
    let forced = json_of(&backfill(
        &ws,
        "user_events_daily",
        "2025-12-04",
        "2025-12-04",
        true,
    ));
    assert_eq!(
        forced["execution"]["output"]["report"]["started"],
        json!(["2025-12-04"]),
        "{forced}"
    );
}

#[test]
fn an_unanswered_approval_times_out_and_quarantines_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));
    // Re-run the degraded day through the very file Terraform deploys, with
    // nobody answering: 48 hours of virtual time later it times out.
    let def =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../statemachines/partition_pipeline.asl.json");
    let input = json!({"pipeline": "user_events_daily", "date": "2025-12-02", "run_id": "rerun1"})
        .to_string();
    let out = tributary(
        &ws,
        &[
            "asl",
            "run",
            def.to_str().unwrap(),
            "--input",
            &input,
            "--unanswered",
            "timeout",
            "--history",
        ],
    );
    let v = stdout_json(&out);
    assert_eq!(v["status"], "FAILED", "{v}");
    assert_eq!(v["error"], "Tributary.Quarantined");
    assert!(
        v["cause"].as_str().unwrap().contains("States.Timeout"),
        "{v}"
    );
    let history = v["history"].as_array().unwrap();
    assert!(history.iter().any(|e| e["type"] == "TaskTimedOut"));
    assert_eq!(state_of(&ws, "user_events", "2025-12-02"), "quarantined");
    // Readers still see the run the demo published for that day.
    let parts = json_of(&tributary(
        &ws,
        &["--json", "partitions", "--dataset", "user_events"],
    ));
    let day = parts["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["date"] == "2025-12-02")
        .unwrap()
        .clone();
    assert!(
        day["published_run"].is_string() && day["published_run"] != "rerun1",
        "{day}"
    );
}

#[test]
fn the_same_s3_event_three_times_starts_one_execution() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sample/raw/orders/date=2025-12-01/orders.csv");
    let up = json_of(&tributary(
        &ws,
        &[
            "--json",
            "upload",
            file.to_str().unwrap(),
            "--dataset",
            "orders",
            "--date",
            "2025-12-09",
        ],
    ));
    let name = up["runs"][0]["execution"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let parts = json_of(&tributary(
        &ws,
        &["--json", "partitions", "--dataset", "orders"],
    ));
    let f = parts["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["date"] == "2025-12-09")
        .unwrap()["files"][0]
        .clone();
    // The bundled S3 notification, pointed at this object.
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("events/s3-put.json");
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(template).unwrap()).unwrap();
    event["Records"][0]["s3"]["object"]["key"] = json!("raw/orders/date%3D2025-12-09/orders.csv");
    event["Records"][0]["s3"]["object"]["eTag"] = f["etag"].clone();
    event["Records"][0]["s3"]["object"]["size"] = f["size"].clone();
    let path = dir.path().join("event.json");
    std::fs::write(&path, event.to_string()).unwrap();
    for _ in 0..2 {
        let inv = json_of(&tributary(
            &ws,
            &[
                "invoke",
                "object-created",
                "--event",
                path.to_str().unwrap(),
            ],
        ));
        assert_eq!(
            inv["objects"][0]["started"][0]["execution_name"],
            name.as_str()
        );
        assert_eq!(
            inv["objects"][0]["started"][0]["newly_started"], false,
            "{inv}"
        );
    }
    let list = json_of(&tributary(&ws, &["--json", "executions", "list"]));
    let same: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"].as_str().unwrap().contains("2025-12-09"))
        .collect();
    assert_eq!(same.len(), 1, "{list}");
    assert_eq!(same[0]["status"], "SUCCEEDED");
}

/// Raw files land in the bucket without their S3 events (lost, or sent
/// before the pipeline existed): only catchup can find them.
fn drop_raw_orders(ws: &Path, days: &[u32]) {
    let sample =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sample/raw/orders/date=2025-12-01/orders.csv");
    for d in days {
        let dir = ws.join(format!("bucket/raw/orders/date=2025-12-{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&sample, dir.join("orders.csv")).unwrap();
    }
}

/// `tributary --json backfill --pipeline P --start S --end E [--force]`
fn backfill(
    ws: &Path,
    pipeline: &str,
    start: &str,
    end: &str,
    force: bool,
) -> std::process::Output {
    let mut args = vec![
        "--json",
        "backfill",
        "--pipeline",
        pipeline,
        "--start",
        start,
        "--end",
        end,
    ];
    if force {
        args.push("--force");
    }
    tributary(ws, &args)
}

fn backfill_orders(ws: &Path, start: &str, end: &str, force: bool) -> std::process::Output {
    backfill(ws, "orders_daily", start, end, force)
}

fn watermark(ws: &Path, pipeline: &str) -> String {
    let parts = json_of(&tributary(ws, &["--json", "partitions"]));
    parts["watermarks"][pipeline]["date"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn catchup_over_a_ten_day_gap_with_two_days_missing() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));
    assert_eq!(watermark(&ws, "orders_daily"), "2025-12-03");
    drop_raw_orders(&ws, &[4, 5, 6, 8, 9, 11, 12, 13]);

    let out = json_of(&backfill_orders(&ws, "2025-12-04", "2025-12-13", false));
    let report = &out["execution"]["output"]["report"];
    assert_eq!(out["execution"]["status"], "SUCCEEDED", "{out}");
    assert_eq!(report["started"].as_array().unwrap().len(), 8, "{report}");
    assert_eq!(report["no_data"], json!(["2025-12-07", "2025-12-10"]));
    // Each missing day was polled (six hours of virtual waiting) first.
    let results = out["execution"]["output"]["results"].as_array().unwrap();
    let missing = results.iter().find(|r| r["date"] == "2025-12-07").unwrap();
    assert_eq!(missing["polls"], 6);
    assert_eq!(out["runs"].as_array().unwrap().len(), 8);
    // Published around the gap, but the watermark stops before it.
    assert_eq!(state_of(&ws, "orders", "2025-12-13"), "published");
    assert_eq!(watermark(&ws, "orders_daily"), "2025-12-06");
    let outbox = std::fs::read_to_string(ws.join("outbox.jsonl")).unwrap();
    assert!(outbox.contains("2025-12-07 no_data"), "{outbox}");

    // The two days arrive; the next scheduled catchup (yesterday = 12-13 in
    // the pipeline's time zone) runs exactly them and closes the gap.
    drop_raw_orders(&ws, &[7, 10]);
    let tick = json_of(&tributary(
        &ws,
        &[
            "--json",
            "schedule",
            "tick",
            "--pipeline",
            "orders_daily",
            "--at",
            "2025-12-14T06:00:00Z",
        ],
    ));
    let catchup = &tick["catchups"][0]["execution"]["output"];
    assert_eq!(
        catchup["plan"]["dates"],
        json!(["2025-12-07", "2025-12-10"]),
        "{tick}"
    );
    assert_eq!(catchup["plan"]["skipped"].as_array().unwrap().len(), 5);
    assert_eq!(watermark(&ws, "orders_daily"), "2025-12-13");

    // The same scheduled time again starts nothing new.
    let again = json_of(&tributary(
        &ws,
        &[
            "--json",
            "schedule",
            "tick",
            "--pipeline",
            "orders_daily",
            "--at",
            "2025-12-14T06:00:00Z",
        ],
    ));
    assert_eq!(again["catchups"][0]["runs"], json!([]));

    // A backfill skips published days unless forced.
    let skip = json_of(&backfill_orders(&ws, "2025-12-12", "2025-12-13", false));
    assert_eq!(skip["execution"]["output"]["plan"]["dates"], json!([]));
    let forced = json_of(&backfill_orders(&ws, "2025-12-12", "2025-12-13", true));
    assert_eq!(forced["runs"].as_array().unwrap().len(), 2, "{forced}");
    assert_eq!(forced["runs"][0]["execution"]["status"], "SUCCEEDED");

    // A range too long is refused with the reason.
    let long = backfill_orders(&ws, "2020-01-01", "2025-12-13", false);
    assert!(!long.status.success());
    let v = stdout_json(&long);
    assert_eq!(v["execution"]["error"], "Tributary.BadInput", "{v}");
    assert!(
        v["execution"]["cause"]
            .as_str()
            .unwrap()
            .contains("at most 366"),
        "{v}"
    );
}

fn pending_approval(ws: &Path) -> Value {
    let pending = json_of(&tributary(ws, &["--json", "approvals", "list"]));
    pending["pending"][0].clone()
}

fn start_labeling(ws: &Path, date: &str) -> Value {
    json_of(&tributary(
        ws,
        &["label", "--labeling", "order_returns", "--date", date],
    ))
}

/// `tributary approvals approve ID --by WHO`, which must succeed.
fn approve(ws: &Path, id: &Value, by: &str) -> Value {
    json_of(&tributary(
        ws,
        &["approvals", "approve", id.as_str().unwrap(), "--by", by],
    ))
}

fn labeled(ws: &Path, date: &str) -> Vec<Value> {
    let path = ws.join(format!(
        "bucket/labels/order_returns/date={date}/labeled.jsonl"
    ));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn labeling_routes_by_confidence_loops_on_relabel_and_merges_sources() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));
    // Another annotator's labels wait under external/: an optional branch.
    let ext = ws.join("bucket/labels/order_returns/date=2025-12-01/external");
    std::fs::create_dir_all(&ext).unwrap();
    std::fs::write(
        ext.join("vendor.csv"),
        "id,label\nO10000,kept\nO10001,returned\n",
    )
    .unwrap();

    let started = start_labeling(&ws, "2025-12-01");
    assert_eq!(started["status"], "RUNNING", "{started}");
    assert_eq!(started["waitingFor"]["state"], "Review");
    let review = pending_approval(&ws);
    assert_eq!(review["summary"]["kind"], "label_review");
    assert_eq!(review["summary"]["round"], 1);
    let pending = review["summary"]["pending"].as_u64().unwrap();
    let first = review["summary"]["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Round 1: correct one label and send the rest back.
    let corrections = dir.path().join("corrections.csv");
    std::fs::write(&corrections, format!("id,label\n{first},returned\n")).unwrap();
    let id = review["id"].as_str().unwrap().to_string();
    let v = json_of(&tributary(
        &ws,
        &[
            "approvals",
            "approve",
            &id,
            "--corrections",
            corrections.to_str().unwrap(),
            "--again",
            "--by",
            "ana",
        ],
    ));
    assert_eq!(v["status"], "RUNNING", "{v}");
    let second = pending_approval(&ws);
    assert_eq!(second["summary"]["round"], 2);
    assert_eq!(second["summary"]["pending"].as_u64().unwrap(), pending - 1);

    // A correction for an id that is not pending is refused, nothing changes.
    std::fs::write(&corrections, "id,label\nNOPE,returned\n").unwrap();
    let bad = tributary(
        &ws,
        &[
            "approvals",
            "approve",
            second["id"].as_str().unwrap(),
            "--corrections",
            corrections.to_str().unwrap(),
        ],
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("nothing was decided"), "{err}");
    assert_eq!(pending_approval(&ws)["id"], second["id"], "still pending");
    // Then the reviewer confirms the rest: the loop ends.
    let v = approve(&ws, &second["id"], "ana");
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    assert_eq!(v["output"]["labeled"]["by_source"]["human"], 1);

    // Start again; this time confirm the rest in round 1.
    let started = start_labeling(&ws, "2025-12-01");
    assert_eq!(started["status"], "RUNNING");
    let review = pending_approval(&ws);
    let v = approve(&ws, &review["id"], "ben");
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    let rows = labeled(&ws, "2025-12-01");
    assert_eq!(rows.len(), 124, "one label per published order");
    let source_of = |id: &str| {
        rows.iter().find(|r| r["id"] == id).unwrap()["source"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        source_of("O10000"),
        "external",
        "another annotator outranks the rules"
    );
    assert!(rows.iter().any(|r| r["source"] == "human-confirmed"));
    assert!(!rows.iter().any(|r| r["source"] == "rules-unreviewed"));

    // Rejected: the batch is not published, and the execution says why.
    let started = start_labeling(&ws, "2025-12-02");
    assert_eq!(started["status"], "RUNNING");
    let review = pending_approval(&ws);
    let out = tributary(
        &ws,
        &[
            "approvals",
            "reject",
            review["id"].as_str().unwrap(),
            "--reason",
            "rules out of date",
        ],
    );
    let v = stdout_json(&out);
    assert_eq!(v["error"], "Tributary.LabelsRejected", "{v}");
    assert!(v["cause"].as_str().unwrap().contains("rules out of date"));
    assert!(!ws
        .join("bucket/labels/order_returns/date=2025-12-02/labeled.jsonl")
        .exists());

    // Nobody reviews in time: leftovers are published flagged, not lost.
    let def = Path::new(env!("CARGO_MANIFEST_DIR")).join("../statemachines/labeling.asl.json");
    let input =
        json!({"labeling": "order_returns", "date": "2025-12-03", "run_id": "t1"}).to_string();
    let v = json_of(&tributary(
        &ws,
        &[
            "asl",
            "run",
            def.to_str().unwrap(),
            "--input",
            &input,
            "--unanswered",
            "timeout",
        ],
    ));
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    assert!(
        v["output"]["labeled"]["by_source"]["rules-unreviewed"]
            .as_u64()
            .unwrap()
            > 0,
        "{v}"
    );
}

#[test]
fn features_publish_by_themselves_or_after_a_person_and_the_online_store_never_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));

    // Full windows: quality passes and the features publish by themselves.
    let v = json_of(&tributary(
        &ws,
        &["features", "--set", "shop_recent", "--date", "2025-12-03"],
    ));
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    let out = &v["output"];
    assert_eq!(out["approval"]["by"], "quality gate");
    assert!(out["quality"]["report"]["score"].as_f64().unwrap() >= 0.9);
    assert_eq!(
        out["jobs"].as_array().unwrap().len(),
        3,
        "three jobs joined (AND)"
    );
    let users = out["published"]["counts"]["user"].as_u64().unwrap();
    assert!(users > 0 && out["published"]["online_updates"].as_u64().unwrap() > users);
    let current = ws.join("bucket/features/shop_recent/date=2025-12-03/_current.json");
    let current: Value = serde_json::from_str(&std::fs::read_to_string(current).unwrap()).unwrap();
    let location = current["location"].as_str().unwrap();
    let scaling: Value = serde_json::from_str(
        &std::fs::read_to_string(ws.join("bucket").join(location).join("scaling.json")).unwrap(),
    )
    .unwrap();
    assert!(
        scaling["amount_3d"]["std"].as_f64().unwrap() > 0.0,
        "scaling statistics saved: {scaling}"
    );

    // An older date published afterwards does not overwrite newer online
    // values (its windows are partly empty, so a person approves it first).
    let online = || {
        let store = tributary_local::Workspace::new(&ws).state_store();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mut values = std::collections::BTreeMap::new();
        for table in ["user", "item"] {
            let pk = format!("online#shop_recent#{table}");
            for (entity, item) in rt
                .block_on(tributary_core::ports::StateStore::query(&store, &pk))
                .unwrap()
            {
                values.insert(format!("{table}/{entity}"), item.value);
            }
        }
        values
    };
    let newer = online();
    assert!(!newer.is_empty());
    assert!(
        newer.values().all(|v| v["as_of"] == "2025-12-03"),
        "{newer:?}"
    );
    let older = json_of(&tributary(
        &ws,
        &["features", "--set", "shop_recent", "--date", "2025-12-02"],
    ));
    assert_eq!(older["status"], "RUNNING", "{older}");
    let older = approve(&ws, &pending_approval(&ws)["id"], "ana");
    let counts = &older["output"]["published"];
    let total =
        counts["counts"]["user"].as_u64().unwrap() + counts["counts"]["item"].as_u64().unwrap();
    assert!(
        counts["online_updates"].as_u64().unwrap() < total,
        "{counts}"
    );
    // Read back: every entity the newer date wrote keeps its values; only
    // entities it did not have got the older date's.
    let after = online();
    for (entity, value) in &newer {
        assert_eq!(
            after.get(entity),
            Some(value),
            "{entity} went back to an older date"
        );
    }
    assert!(
        after
            .iter()
            .filter(|(e, _)| !newer.contains_key(*e))
            .all(|(_, v)| v["as_of"] == "2025-12-02"),
        "{after:?}"
    );

    // 30-day windows over three days of data: quality is low, a person decides.
    let v = json_of(&tributary(
        &ws,
        &["features", "--set", "shop", "--date", "2025-12-03"],
    ));
    assert_eq!(v["status"], "RUNNING", "{v}");
    assert_eq!(v["waitingFor"]["state"], "RequestApproval");
    let request = pending_approval(&ws);
    assert_eq!(request["summary"]["kind"], "feature_publish");
    assert!(
        request["summary"]["checks"]["window_coverage"]
            .as_f64()
            .unwrap()
            < 0.2
    );
    let v = approve(&ws, &request["id"], "ana");
    assert_eq!(
        v["status"], "SUCCEEDED",
        "the approval path reaches the same Publish (OR-join): {v}"
    );
    assert!(ws
        .join("bucket/features/shop/date=2025-12-03/_current.json")
        .exists());

    // Rejected: nothing is published for that date.
    let v = json_of(&tributary(
        &ws,
        &["features", "--set", "shop", "--date", "2025-12-02"],
    ));
    assert_eq!(v["status"], "RUNNING");
    let request = pending_approval(&ws);
    let out = tributary(
        &ws,
        &[
            "approvals",
            "reject",
            request["id"].as_str().unwrap(),
            "--reason",
            "wait for a month of data",
        ],
    );
    let v = stdout_json(&out);
    assert_eq!(v["error"], "Tributary.FeaturesNotPublished", "{v}");
    assert!(!ws
        .join("bucket/features/shop/date=2025-12-02/_current.json")
        .exists());
}

#[test]
fn a_model_is_trained_point_in_time_evaluated_and_activated_after_approval() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));
    // Two days of feature snapshots first (partly empty windows: approved).
    for date in ["2025-12-01", "2025-12-02"] {
        json_of(&tributary(
            &ws,
            &["features", "--set", "shop_recent", "--date", date],
        ));
        let pending = json_of(&tributary(&ws, &["--json", "approvals", "list"]));
        for p in pending["pending"].as_array().unwrap() {
            if p["summary"]["kind"] == "feature_publish" {
                approve(&ws, &p["id"], "ana");
            }
        }
    }
    let v = json_of(&tributary(
        &ws,
        &["features", "--set", "shop_recent", "--date", "2025-12-03"],
    ));
    assert_eq!(v["waitingFor"]["state"], "DeployApproval", "{v}");
    // Clicks on the stream before any consumer runs wait there for it.
    let put = put_clicks(&ws, dir.path(), 1, 3);
    assert_eq!(put["click-inference"]["waiting"], 3, "{put}");
    let request = pending_of_kind(&ws, "model_deploy", "2025-12-03");
    let checks = &request["summary"]["checks"];
    assert!(checks["hit_rate_at_n"].as_f64().unwrap() >= 0.0);
    let v = approve(&ws, &request["id"], "ben");
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    let version = v["output"]["model"]["evaluation"]["version"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(v["output"]["activated"]["active"], version.as_str());
    // Point in time: every training row was joined with the snapshot of
    // the day before it, never its own day or later.
    let location = v["output"]["published"]["location"].as_str().unwrap();
    let training =
        std::fs::read_to_string(ws.join("bucket").join(location).join("training.jsonl")).unwrap();
    let rows: Vec<Value> = training
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.len() >= 2);
    for r in &rows {
        let day = &r["ts"].as_str().unwrap()[..10];
        assert!(r["as_of"].as_str().unwrap() < day, "{r}");
    }
    let model: Value = serde_json::from_str(
        &std::fs::read_to_string(ws.join(format!(
            "bucket/models/shop_recent/version={version}/model.json"
        )))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(model["global"].as_array().unwrap().len(), 5);
    assert!(ws
        .join(format!(
            "bucket/models/shop_recent/version={version}/evaluation.json"
        ))
        .exists());

    // Activation started the streaming consumer on that version, and the
    // run finished only once it had processed the waiting clicks.
    let status = json_of(&tributary(
        &ws,
        &["model", "status", "--set", "shop_recent"],
    ));
    assert_eq!(status["consumer"]["status"], "running", "{status}");
    assert_eq!(status["consumer"]["model_version"], version.as_str());
    assert_eq!(status["consumer"]["processed"], 3, "{status}");
    assert_eq!(status["consumer"]["healthy"], true, "{status}");
    assert_eq!(status["consumer"]["mapping_enabled"], true, "{status}");

    // Clicks arrive on the stream (a Kinesis event): one record is poison.
    let click = |user: u32, product: &str| {
        json!({"kinesis": {"data": base64(&json!({"user_id": user, "product_id": product, "event_ts": "2025-12-04T10:00:00Z"}).to_string()),
                           "sequenceNumber": format!("{user}"), "approximateArrivalTimestamp": 1.0}, "eventID": "shardId-000:1"})
    };
    let mut records = vec![click(1, "SKU-1"), click(2, "SKU-2")];
    records.push(json!({"kinesis": {"data": "bm90IGpzb24=", "sequenceNumber": "99"}, "eventID": "shardId-000:99"}));
    let event = dir.path().join("clicks.json");
    std::fs::write(&event, json!({"Records": records}).to_string()).unwrap();
    let out = json_of(&tributary(
        &ws,
        &[
            "invoke",
            "click-inference",
            "--event",
            event.to_str().unwrap(),
        ],
    ));
    assert_eq!(out["consumers"][0]["processed"], 2, "{out}");
    assert_eq!(out["dead_lettered"], 1);
    assert_eq!(out["batchItemFailures"], json!([]));
    let dlq = ws.join("bucket/dlq/clicks");
    assert!(
        dlq.exists(),
        "the poison record is kept with its position and error"
    );
    let status = json_of(&tributary(
        &ws,
        &["model", "status", "--set", "shop_recent"],
    ));
    assert_eq!(status["consumer"]["processed"], 5);

    // A new version replaces it: the consumer restarts on the new version,
    // its counts restart too, and with no click since the restart it never
    // proves itself: the run fails saying so (it used to pass on a flag
    // written one step before it was read).
    json_of(&tributary(
        &ws,
        &["features", "--set", "shop_recent", "--date", "2025-12-03"],
    ));
    let request = pending_of_kind(&ws, "model_deploy", "2025-12-03");
    let second = approve(&ws, &request["id"], "ben");
    assert_eq!(second["status"], "FAILED", "{second}");
    assert!(
        second.to_string().contains("InferenceUnhealthy"),
        "{second}"
    );
    let status = json_of(&tributary(
        &ws,
        &["model", "status", "--set", "shop_recent"],
    ));
    let second_version = status["active"]["active"].as_str().unwrap().to_string();
    assert_ne!(second_version, version);
    assert_eq!(status["consumer"]["model_version"], second_version.as_str());
    assert_eq!(status["consumer"]["restarts"], 1);
    assert_eq!(status["consumer"]["processed"], 0, "{status}");
    assert!(
        status["consumer"]["reason"]
            .as_str()
            .unwrap()
            .contains("no clicks processed since it started"),
        "{status}"
    );
    // Clicks arrive: it processes them and is healthy.
    put_clicks(&ws, dir.path(), 10, 2);
    let status = json_of(&tributary(
        &ws,
        &["model", "status", "--set", "shop_recent"],
    ));
    assert_eq!(status["consumer"]["processed"], 2, "{status}");
    assert_eq!(status["consumer"]["healthy"], true, "{status}");

    // Rollback: the previous version is active again and the consumer runs on it.
    let rolled = json_of(&tributary(
        &ws,
        &["model", "rollback", "--set", "shop_recent"],
    ));
    assert_eq!(rolled["activated"]["active"], version.as_str(), "{rolled}");
    assert_eq!(rolled["consumer"]["model_version"], version.as_str());
    let stopped = json_of(&tributary(&ws, &["model", "stop", "--set", "shop_recent"]));
    assert_eq!(stopped["consumer"]["status"], "stopped");

    // Stopped, the consumer reads nothing: clicks wait in the stream, and
    // it is not healthy.
    let put = put_clicks(&ws, dir.path(), 20, 4);
    assert_eq!(put["click-inference"]["waiting"], 4, "{put}");
    let status = json_of(&tributary(
        &ws,
        &["model", "status", "--set", "shop_recent"],
    ));
    assert_eq!(status["consumer"]["processed"], 0, "{status}");
    assert_eq!(status["consumer"]["mapping_enabled"], false, "{status}");
    assert_eq!(status["consumer"]["healthy"], false, "{status}");
    // Rolling back (to the second version again) starts it: the waiting
    // clicks are processed, none lost.
    let rolled = json_of(&tributary(
        &ws,
        &["model", "rollback", "--set", "shop_recent"],
    ));
    assert_eq!(rolled["consumer"]["model_version"], second_version.as_str());
    let status = json_of(&tributary(
        &ws,
        &["model", "status", "--set", "shop_recent"],
    ));
    assert_eq!(status["consumer"]["processed"], 4, "{status}");
    assert_eq!(status["consumer"]["healthy"], true, "{status}");
}

/// Puts `count` clicks (users from `first_user`) on the workspace's click
/// stream; returns what `tributary stream` reports.
fn put_clicks(ws: &Path, dir: &Path, first_user: u32, count: u32) -> Value {
    let lines: Vec<String> = (first_user..first_user + count)
        .map(|user| {
            json!({"event_id": format!("c-{user}"), "user_id": user, "product_id": "SKU-1",
                   "event_ts": "2025-12-04T10:00:00Z"})
            .to_string()
        })
        .collect();
    let file = dir.join(format!("clicks-{first_user}.jsonl"));
    std::fs::write(&file, lines.join("\n")).unwrap();
    json_of(&tributary(
        ws,
        &[
            "--json",
            "stream",
            "--replay-file",
            file.to_str().unwrap(),
            "--stream",
            "clicks",
        ],
    ))
}

/// The pending approval of a kind for a date.
fn pending_of_kind(ws: &Path, kind: &str, date: &str) -> Value {
    let pending = json_of(&tributary(ws, &["--json", "approvals", "list"]));
    pending["pending"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["summary"]["kind"] == kind && p["summary"]["date"] == date)
        .unwrap_or_else(|| panic!("no pending {kind} for {date}: {pending}"))
        .clone()
}

fn base64(text: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                A[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// A dataset complete after a quiet period: uploads start nothing; the
/// scheduled catchup polls the date on the execution's (virtual) clock and
/// starts one run once no file came for `quiet_for`.
#[test]
fn the_schedule_starts_a_date_once_its_files_have_gone_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let config = dir.path().join("pipeline.toml");
    std::fs::write(
        &config,
        r#"
[datasets.parts]
complete_when = "quiet"
quiet_for = "30m"
[[datasets.parts.columns]]
name = "id"
type = "string"
required = true

[pipelines.parts_daily]
datasets = ["parts"]
start_date = 2025-12-03
"#,
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    for hour in 0..2 {
        let part = dir.path().join(format!("part-{hour}.csv"));
        std::fs::write(&part, format!("id\nh{hour}\n")).unwrap();
        let up = json_of(&tributary(
            &ws,
            &[
                "--config",
                cfg,
                "--json",
                "upload",
                part.to_str().unwrap(),
                "--dataset",
                "parts",
                "--date",
                "2025-12-03",
            ],
        ));
        assert_eq!(
            up["runs"],
            json!([]),
            "an upload of a quiet dataset starts nothing: {up}"
        );
    }
    let tick = json_of(&tributary(
        &ws,
        &[
            "--config",
            cfg,
            "--json",
            "schedule",
            "tick",
            "--at",
            "2025-12-04T06:00:00Z",
        ],
    ));
    let catchup = &tick["catchups"][0];
    assert_eq!(
        catchup["execution"]["output"]["report"]["started"],
        json!(["2025-12-03"]),
        "{tick}"
    );
    let runs = catchup["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{tick}");
    assert_eq!(runs[0]["datasets"][0]["stats"]["files"], 2, "{tick}");
    assert_eq!(runs[0]["datasets"][0]["state"], "published", "{tick}");
}
