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
