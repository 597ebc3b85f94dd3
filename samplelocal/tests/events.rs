//! The sample events of samplelocal/events/ (the ones samplelocal/template.yaml
//! names for `sam local invoke`) work with `tributary invoke` on a demo
//! workspace: each in the shape AWS delivers it, each answered as on AWS.

mod common;

use common::{json_of, stdout_json, tributary};
use std::path::Path;

fn event(name: &str) -> String {
    common::events::event(name).to_string_lossy().into_owned()
}

#[test]
fn every_sample_event_invokes_its_function() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));
    let invoke =
        |function: &str, file: &str| tributary(&ws, &["invoke", function, "--event", &event(file)]);

    // S3 notification and EventBridge "Object Created" (URL-encoded keys):
    // arrivals of files the demo uploaded.
    for (file, key) in [
        ("s3-put.json", "raw/orders/date=2025-12-01/orders.csv"),
        (
            "eventbridge-object-created.json",
            "raw/customer_behavior_assets/date=2025-12-03/behavior.csv",
        ),
    ] {
        let out = json_of(&invoke("object-created", file));
        let text = out.to_string();
        assert!(text.contains(key), "{file}: {out}");
    }

    // A Kinesis batch from the deployed stream name (after the demo's
    // events, so not late): two orders counted, the malformed one kept in
    // the DLQ, the batch not failed.
    let out = json_of(&invoke("stream-aggregate", "kinesis-batch.json"));
    assert_eq!(out["batchItemFailures"], serde_json::json!([]), "{out}");
    assert_eq!(
        (
            out["streams"]["orders"]["aggregated"].as_u64(),
            out["streams"]["orders"]["dlq"].as_u64()
        ),
        (Some(2), Some(1)),
        "{out}"
    );

    // Schedules.
    let views = json_of(&invoke("build-views", "scheduler-build-views.json"));
    assert!(!views["built"].as_array().unwrap().is_empty(), "{views}");
    let reconciled = json_of(&invoke("reconcile", "scheduler-reconcile.json"));
    assert!(!reconciled["reports"].as_array().unwrap().is_empty());
    let sweep = json_of(&invoke("retention-sweep", "scheduler-retention-sweep.json"));
    assert_eq!(sweep["dry_run"], true, "{sweep}");

    // Function URLs: the query API answers 200 with JSON; a forged approval
    // POST is refused with a page and changes nothing.
    let query = json_of(&invoke("query-api", "function-url-get.json"));
    assert_eq!(query["statusCode"], 200, "{query}");
    let forged = stdout_json(&invoke("approval-callback", "function-url-post.json"));
    assert_eq!(forged["statusCode"], 403, "{forged}");
    assert!(forged["body"]
        .as_str()
        .unwrap()
        .contains("Nothing was changed"));
}

/// What starts the feature pipeline and labeling on a stack: a published
/// pipeline date (EventBridge's execution-succeeded event) starts each
/// feature set reading its dataset and each labeling of it, once however
/// often the event comes; the daily schedule starts the feature sets of
/// yesterday, except those a publish already started.
#[test]
fn a_published_date_and_the_daily_schedule_start_features_and_labeling() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));
    let invoke = |file: &str| {
        json_of(&tributary(
            &ws,
            &["invoke", "start-downstream", "--event", file],
        ))
    };
    let started = |out: &serde_json::Value| -> Vec<(String, String, bool)> {
        out["response"]["started"]
            .as_array()
            .or(out["started"].as_array())
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["workflow"].as_str().unwrap().to_string(),
                    s["execution_name"].as_str().unwrap().to_string(),
                    s["started"].as_bool().unwrap(),
                )
            })
            .collect()
    };

    // orders_daily 2025-12-02 published: both feature sets read orders, and
    // order_returns labels it.
    let publish = event("eventbridge-execution-succeeded.json");
    let out = invoke(&publish);
    let run = "2025-12-02-orders_daily-5f3a9c2e7b1d4a60";
    assert_eq!(
        started(&out),
        vec![
            ("feature_pipeline".into(), format!("shop-{run}"), true),
            (
                "feature_pipeline".into(),
                format!("shop_recent-{run}"),
                true
            ),
            ("labeling".into(), format!("order_returns-{run}"), true),
        ],
        "{out}"
    );
    // Each ran on the local interpreter to its first person: the feature
    // sets' publish approval, the labeling's review.
    let waiting: Vec<_> = out["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["waitingFor"]["state"].as_str().unwrap_or("-").to_string())
        .collect();
    assert_eq!(
        waiting,
        ["RequestApproval", "RequestApproval", "Review"],
        "{out}"
    );
    // EventBridge delivers at least once: the same event starts nothing.
    let again = invoke(&publish);
    assert!(started(&again).iter().all(|(_, _, s)| !s), "{again}");
    assert!(again.get("executions").is_none(), "{again}");

    // The daily schedule at 04:30 on the 4th: the feature sets of the 3rd.
    let daily = invoke(&event("scheduler-start-downstream.json"));
    assert_eq!(
        started(&daily),
        vec![
            (
                "feature_pipeline".into(),
                "shop-2025-12-03-daily".into(),
                true
            ),
            (
                "feature_pipeline".into(),
                "shop_recent-2025-12-03-daily".into(),
                true
            ),
        ],
        "{daily}"
    );
    // The 2nd by hand: already started by its publish, so nothing again.
    let by_hand = dir.path().join("daily-2nd.json");
    std::fs::write(&by_hand, r#"{"date": "2025-12-02"}"#).unwrap();
    let out = invoke(by_hand.to_str().unwrap());
    assert!(started(&out).iter().all(|(_, _, s)| !s), "{out}");

    // An execution that did not succeed published nothing.
    let failed = dir.path().join("failed.json");
    let mut event_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&publish).unwrap()).unwrap();
    event_json["detail"]["status"] = "FAILED".into();
    std::fs::write(&failed, event_json.to_string()).unwrap();
    let out = invoke(failed.to_str().unwrap());
    assert_eq!(out["started"], serde_json::json!([]), "{out}");
}

/// The failure path of a labeling (and, through the same function, of a
/// feature run): the execution fails with the step's error, the run's
/// record says failed, and the alerts audience is told.
#[test]
fn a_failed_labeling_run_is_marked_and_alerted() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));
    // Nothing of orders is published for the 9th: auto-label refuses.
    let out = stdout_json(&tributary(
        &ws,
        &[
            "label",
            "--labeling",
            "order_returns",
            "--date",
            "2025-12-09",
        ],
    ));
    assert_eq!(out["status"], "FAILED", "{out}");
    assert_eq!(out["error"], "Tributary.WrongState", "{out}");
    let outbox = std::fs::read_to_string(ws.join("outbox.jsonl")).unwrap();
    let alert: serde_json::Value = outbox
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .rfind(|m| m["topic"] == "alerts")
        .expect("an alert");
    assert_eq!(alert["subject"], "labeling order_returns 2025-12-09 failed");
    assert!(alert["message"]
        .as_str()
        .unwrap()
        .contains("publish orders 2025-12-09 first"));

    // The record the failure path marked, through mark-failed's own event.
    let event = dir.path().join("failed-features.json");
    std::fs::write(
        &event,
        r#"{"features": "shop", "date": "2025-12-03", "run_id": "daily",
            "error": {"Error": "Tributary.Failed", "Cause": "a test"}}"#,
    )
    .unwrap();
    let out = json_of(&tributary(
        &ws,
        &["invoke", "mark-failed", "--event", event.to_str().unwrap()],
    ));
    assert_eq!(out["record"]["state"], "failed", "{out}");
    assert_eq!(out["record"]["error"], "Tributary.Failed: a test", "{out}");
}

/// `sam local invoke --env-vars`: the file `tributary infra sam-env` writes
/// carries every variable the template's functions read, from a deployed
/// stack's outputs or, for an emulator, the template's own default names.
#[test]
fn the_sam_env_file_points_the_functions_at_a_stack_or_an_emulator() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let template =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml"))
            .unwrap();
    let globals = template.split("Resources:").next().unwrap();
    let read_by_functions: Vec<&str> = globals
        .lines()
        .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k))
        .filter(|k| k.starts_with("TRIBUTARY_"))
        .collect();
    assert!(read_by_functions.len() >= 5, "{read_by_functions:?}");

    let emulator = json_of(&tributary(
        &ws,
        &[
            "infra",
            "sam-env",
            "--endpoint",
            "http://host.docker.internal:5000",
        ],
    ));
    let params = &emulator["Parameters"];
    for name in &read_by_functions {
        assert!(params[*name].is_string(), "{name} missing: {emulator}");
    }
    assert!(template.contains(params["TRIBUTARY_BUCKET"].as_str().unwrap()));
    assert_eq!(
        params["AWS_ENDPOINT_URL"],
        "http://host.docker.internal:5000"
    );

    let outputs = dir.path().join("stack.json");
    let value = |v: serde_json::Value| serde_json::json!({"sensitive": false, "type": "string", "value": v});
    let mut stack = serde_json::json!({
        "bucket": value("prod-data".into()),
        "state_table": value("prod-state".into()),
        "glue_database": value("prod_catalog".into()),
        "state_machine_arns": value(serde_json::json!({
            "partition_pipeline": "arn:aws:states:eu-west-1:1:stateMachine:prod-partition_pipeline",
            "feature_pipeline": "arn:aws:states:eu-west-1:1:stateMachine:prod-feature_pipeline",
            "labeling": "arn:aws:states:eu-west-1:1:stateMachine:prod-labeling",
        })),
        "approvals_topic_arn": value("arn:aws:sns:eu-west-1:1:prod-approvals".into()),
        "alerts_topic_arn": value("arn:aws:sns:eu-west-1:1:prod-alerts".into()),
        "function_names": value(serde_json::json!({"click-inference": "prod-click-inference"})),
    });
    std::fs::write(&outputs, stack.to_string()).unwrap();
    let deployed = json_of(&tributary(
        &ws,
        &["infra", "sam-env", "--outputs", outputs.to_str().unwrap()],
    ));
    let params = &deployed["Parameters"];
    for name in &read_by_functions {
        assert!(params[*name].is_string(), "{name} missing: {deployed}");
    }
    assert_eq!(params["TRIBUTARY_TABLE"], "prod-state");
    assert_eq!(
        params["TRIBUTARY_STATE_MACHINE_ARN"],
        "arn:aws:states:eu-west-1:1:stateMachine:prod-partition_pipeline"
    );
    assert_eq!(
        params["TRIBUTARY_ALERTS_TOPIC_ARN"],
        "arn:aws:sns:eu-west-1:1:prod-alerts"
    );
    assert!(params.get("AWS_ENDPOINT_URL").is_none(), "{deployed}");

    // Outputs of something else: said plainly, with the variable it lacks.
    stack.as_object_mut().unwrap().remove("state_table");
    std::fs::write(&outputs, stack.to_string()).unwrap();
    let out = tributary(
        &ws,
        &["infra", "sam-env", "--outputs", outputs.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("state_table") && err.contains("TRIBUTARY_TABLE"),
        "{err}"
    );
}

/// Every function has a sample event in samplelocal/events/ (for `sam local
/// invoke` and `tributary invoke` alike), and each runs on a demo
/// workspace in the order a pipeline would call them, answering what the
/// state machines read from it. The set invoked is the function table.
#[test]
fn every_function_has_a_sample_event_that_runs() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));
    let scratch = dir.path().join("events");
    std::fs::create_dir_all(&scratch).unwrap();
    let invoked = common::events::run_every_sample_event(&ws, &scratch, &mut |config, args| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        tributary(&ws, &all)
    });
    common::events::assert_is_the_function_table(&ws, &invoked);
}
