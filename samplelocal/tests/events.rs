//! The sample events of samplelocal/events/ (the ones samplelocal/template.yaml
//! names for `sam local invoke`) work with `tributary invoke` on a demo
//! workspace: each in the shape AWS delivers it, each answered as on AWS.

mod common;

use common::{json_of, stdout_json, tributary};
use std::path::Path;

fn event(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(name)
        .to_string_lossy()
        .into_owned()
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
        "state_machine_arns": value(serde_json::json!({"partition_pipeline": "arn:aws:states:eu-west-1:1:stateMachine:prod-partition_pipeline"})),
        "approvals_topic_arn": value("arn:aws:sns:eu-west-1:1:prod-approvals".into()),
        "alerts_topic_arn": value("arn:aws:sns:eu-west-1:1:prod-alerts".into()),
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
