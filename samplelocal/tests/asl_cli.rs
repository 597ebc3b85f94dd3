//! `tributary asl …`, `executions …` and `task-success` as a user runs them.

mod common;
use common::*;

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Output;

fn approval() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/approval.asl.json")
}

fn run_approval(ws: &Path, date: &str, extra: &[&str]) -> Output {
    let def = approval();
    let input = json!({"date": date}).to_string();
    let mut args = vec![
        "asl",
        "run",
        def.to_str().unwrap(),
        "--var",
        "score_arn=arn:aws:lambda:us-east-1:1:function:score",
        "--input",
        &input,
    ];
    args.extend_from_slice(extra);
    if !extra.contains(&"--start-time") {
        args.extend_from_slice(&["--start-time", "2026-01-01T00:00:00Z"]);
    }
    tributary(ws, &args)
}

#[test]
fn validate_reports_state_and_field_and_sets_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let good = tributary(&ws, &["asl", "validate", approval().to_str().unwrap()]);
    assert!(good.status.success());
    let bad = dir.path().join("bad.asl.json");
    std::fs::write(
        &bad,
        r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B", "Resource": "x"}, "B": {"Type": "Wait", "End": true}}}"#,
    )
    .unwrap();
    let out = tributary(
        &ws,
        &[
            "asl",
            "validate",
            approval().to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("state 'A', field 'Resource'"), "{text}");
    assert!(
        text.contains("state 'B'") && text.contains("exactly one of Seconds"),
        "{text}"
    );
}

#[test]
fn run_prints_one_json_object_and_exits_by_status() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let high = dir.path().join("high.json");
    std::fs::write(&high, r#"{"score": 0.95}"#).unwrap();
    let task = format!("Score=@{}", high.display());
    let out = run_approval(&ws, "2026-01-01", &["--task", &task]);
    assert!(out.status.success());
    let v = stdout_json(&out);
    assert_eq!(v["status"], "SUCCEEDED");
    assert_eq!(v["output"]["outcome"], "published");
    assert!(v["error"].is_null() && v["cause"].is_null());

    // Rejected by the approver: caught, quarantined, a failed execution.
    let out = run_approval(
        &ws,
        "2026-01-02",
        &[
            "--task",
            "Score={\"score\": 0.2}",
            "--task",
            "Approve={\"Error\": \"Rejected\", \"Cause\": \"late file\"}",
        ],
    );
    assert!(!out.status.success());
    let v = stdout_json(&out);
    assert_eq!(v["status"], "FAILED");
    assert_eq!(v["error"], "Tributary.Quarantined");
    assert_eq!(v["cause"], "2026-01-02 quarantined: Rejected");

    // Nobody answers in 48 hours of virtual time.
    let out = run_approval(
        &ws,
        "2026-01-03",
        &[
            "--task",
            "Score={\"score\": 0.2}",
            "--unanswered",
            "timeout",
            "--history",
        ],
    );
    let v = stdout_json(&out);
    assert_eq!(v["cause"], "2026-01-03 quarantined: States.Timeout");
    assert_eq!(v["stopDate"], "2026-01-03T00:00:00.000Z");
    assert!(v["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "TaskTimedOut"));

    // A task nobody can run is a clear failure, not a hang.
    let out = run_approval(&ws, "2026-01-04", &[]);
    let v = stdout_json(&out);
    assert_eq!(v["error"], "Tributary.NoTaskResult");
    assert!(
        v["cause"]
            .as_str()
            .unwrap()
            .contains("--task 'Score=@result.json'"),
        "{v}"
    );
}

#[test]
fn a_paused_execution_is_answered_from_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    // Started now (not in the past), so the 48-hour deadline is ahead.
    let out = run_approval(
        &ws,
        "2026-01-05",
        &["--task", "Score={\"score\": 0.2}", "--start-time", "now"],
    );
    let paused = stdout_json(&out);
    assert_eq!(paused["status"], "RUNNING");
    let token = paused["waitingFor"]["taskToken"]
        .as_str()
        .unwrap()
        .to_string();
    let name = paused["name"].as_str().unwrap().to_string();

    // Starting the same execution again returns it, as StartExecution does.
    let again = stdout_json(&run_approval(
        &ws,
        "2026-01-05",
        &["--task", "Score={\"score\": 0.2}"],
    ));
    assert_eq!(again["name"], paused["name"]);
    assert_eq!(again["status"], "RUNNING");

    let hb = tributary(&ws, &["task-heartbeat", "--token", &token]);
    assert!(
        hb.status.success(),
        "{}",
        String::from_utf8_lossy(&hb.stderr)
    );
    let done = tributary(
        &ws,
        &[
            "task-success",
            "--token",
            &token,
            "--output",
            r#"{"approved": true}"#,
        ],
    );
    let v = stdout_json(&done);
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    assert_eq!(v["output"]["approval"], json!({"approved": true}));

    let twice = tributary(&ws, &["task-success", "--token", &token, "--output", "{}"]);
    assert!(!twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stderr).contains("no longer waits"));

    let shown = stdout_json(&tributary(&ws, &["executions", "show", &name]));
    assert_eq!(shown["status"], "SUCCEEDED");
    let history = stdout_json(&tributary(&ws, &["executions", "history", &name]));
    let types: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"ExecutionStarted"));
    assert_eq!(types.last(), Some(&"ExecutionSucceeded"));
    assert!(types.contains(&"TaskSubmitted"));
    let listed = tributary(&ws, &["--json", "executions", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&name));

    // Another paused run, stopped by an operator: ABORTED, its token dead.
    let other = stdout_json(&run_approval(
        &ws,
        "2026-01-06",
        &["--task", "Score={\"score\": 0.2}", "--start-time", "now"],
    ));
    let other_name = other["name"].as_str().unwrap();
    let stopped = stdout_json(&tributary(&ws, &["executions", "stop", other_name]));
    assert_eq!(stopped["status"], "ABORTED");
    let late = tributary(
        &ws,
        &[
            "task-success",
            "--token",
            other["waitingFor"]["taskToken"].as_str().unwrap(),
        ],
    );
    assert!(!late.status.success());
    let history = stdout_json(&tributary(&ws, &["executions", "history", other_name]));
    assert_eq!(
        history["events"].as_array().unwrap().last().unwrap()["type"],
        "ExecutionAborted"
    );

    let unknown = tributary(&ws, &["task-failure", "--token", "nope", "--error", "X"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no paused execution"));
}

#[test]
fn item_readers_and_service_integrations_use_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let bucket = ws.join("bucket");
    for (key, body) in [
        ("raw/orders/a.csv", "a,b\n1"),
        ("raw/orders/b.csv", "x"),
        ("raw/other/c.csv", "ignored"),
        (
            "config/targets.csv",
            "date,limit\n2026-01-01,\"1,000\"\n2026-01-02,5\n",
        ),
    ] {
        let path = bucket.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let def = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory.asl.json");
    let out = tributary(
        &ws,
        &[
            "asl",
            "run",
            def.to_str().unwrap(),
            "--input",
            r#"{"prefix": "raw/orders/"}"#,
        ],
    );
    let v = stdout_json(&out);
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    let files = v["output"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["Key"], "raw/orders/a.csv");
    assert_eq!(
        v["output"]["targets"],
        json!([{"date": "2026-01-01", "limit": "1,000"}, {"date": "2026-01-02", "limit": "5"}])
    );
    assert_eq!(v["output"]["check"], json!({"size": "5"}));
    assert_eq!(v["output"]["sns"], json!({"sent": 1}));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 files listed"));
}
