//! `tributary --stack FILE`: the operations against a deployed stack (here
//! moto on 127.0.0.1, its resources named as Terraform's outputs name them)
//! print what the same commands print on a workspace holding the same
//! state, `--json` or not.

#![cfg(feature = "aws")]

mod common;

use common::{json_of, tributary};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};
use tributary_core::ports::StateStore;
use tributary_core::state;

/// What `terraform output -json` prints for the parts the CLI reads.
fn stack_outputs(dir: &Path) -> std::path::PathBuf {
    let value = |v: Value| json!({"sensitive": false, "type": "string", "value": v});
    let outputs = json!({
        "bucket": value(json!("tributary-data")),
        "state_table": value(json!("tributary-state")),
        "glue_database": value(json!("tributary")),
        "state_machine_arns": value(json!({
            "partition_pipeline": "arn:aws:states:us-east-1:123456789012:stateMachine:tributary-partition_pipeline"
        })),
        "approvals_topic_arn": value(json!("arn:aws:sns:us-east-1:123456789012:tributary-approvals")),
        "alerts_topic_arn": value(json!("arn:aws:sns:us-east-1:123456789012:tributary-alerts")),
        "approval_base_url": value(json!("https://approvals.example/")),
    });
    let path = dir.join("stack.json");
    std::fs::write(&path, outputs.to_string()).unwrap();
    path
}

/// The CLI against the stack, with moto's endpoint and test credentials
/// (the usual AWS chain reads them from the environment).
fn on_stack(moto_url: &str, stack: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .arg("--stack")
        .arg(stack)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("AWS_ENDPOINT_URL", moto_url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("TRIBUTARY_WORKSPACE")
        .output()
        .expect("run tributary --stack")
}

/// A document without its clock readings, which differ between two stores
/// written a moment apart.
fn without_times(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.retain(|k, _| k != "updated_at" && k != "at" && k != "run_started_at");
                o.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

fn text(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn operations_on_a_stack_print_what_they_print_on_a_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));
    let config = ws.join("pipeline.toml");
    let moto = tributary_testing::Moto::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The stack's state table holds what the workspace's does (Terraform
    // makes the table; the pipeline wrote the items).
    runtime.block_on(async {
        let aws = moto.sdk_config().await;
        let table = tributary_aws::DynamoStateStore::new(&aws, "tributary-state");
        table.ensure_table().await.unwrap();
        let local = tributary_local::Workspace::new(&ws).adapters();
        let config = tributary_core::config::Config::load(&config).unwrap();
        for dataset in config.datasets.keys() {
            for p in state::all_partitions(&local.state, dataset).await.unwrap() {
                state::update_partition(&table, dataset, p.date, |s| *s = p.clone())
                    .await
                    .unwrap();
            }
        }
        for pipeline in config.pipelines.keys() {
            if let Some(w) = state::watermark(&local.state, pipeline).await.unwrap() {
                state::advance_watermark(&table as &dyn StateStore, pipeline, w.date)
                    .await
                    .unwrap();
            }
        }
        // Approval requests, and each stream's reconciliation history.
        let mut keys = vec![tributary_core::approvals::PK.to_string()];
        keys.extend(
            config
                .streams
                .keys()
                .map(|s| tributary_core::stream::reconcile::history_pk(s)),
        );
        // One request still waiting (the demo decides all of its own), in
        // both, so the listings have something to show.
        let decided = local
            .state
            .query(tributary_core::approvals::PK)
            .await
            .unwrap();
        let mut waiting = decided
            .first()
            .expect("the demo asked for an approval")
            .1
            .value
            .clone();
        waiting["id"] = json!("waiting-1");
        waiting["status"] = json!("pending");
        waiting["expires_at"] =
            json!((chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339());
        for store in [&local.state as &dyn StateStore, &table] {
            store
                .put(
                    tributary_core::approvals::PK,
                    "waiting-1",
                    waiting.clone(),
                    tributary_core::ports::Condition::Always,
                )
                .await
                .unwrap();
        }
        for pk in &keys {
            for (sk, item) in local.state.query(pk).await.unwrap() {
                table
                    .put(
                        pk,
                        &sk,
                        item.value,
                        tributary_core::ports::Condition::Always,
                    )
                    .await
                    .unwrap();
            }
        }
        // Two runs of the partition pipeline on the stack's Step Functions.
        let sfn = aws_sdk_sfn::Client::new(&aws);
        let machine = sfn
            .create_state_machine()
            .name("tributary-partition_pipeline")
            .definition(r#"{"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": true}}}"#)
            .role_arn("arn:aws:iam::123456789012:role/tributary-test")
            .send()
            .await
            .unwrap();
        use tributary_core::ports::WorkflowStarter;
        let starter = tributary_aws::SfnWorkflows::new(&aws, machine.state_machine_arn());
        for name in ["orders_daily-2025-12-02-b", "orders_daily-2025-12-01-a"] {
            assert!(starter.start(name, json!({})).await.unwrap());
        }
        // And its bucket holds the workspace's objects.
        use tributary_core::ports::ObjectStore;
        let bucket = tributary_aws::S3ObjectStore::new(&aws, "tributary-data", true);
        bucket.ensure_bucket().await.unwrap();
        for o in local.objects.list("").await.unwrap() {
            let body = local.objects.get_bytes(&o.key).await.unwrap();
            bucket.put_bytes(&o.key, body).await.unwrap();
        }
    });
    let stack = stack_outputs(dir.path());
    let config = config.to_str().unwrap();
    let compare = |args: &[&str]| {
        let mut local_args = vec!["--config", config];
        local_args.extend_from_slice(args);
        let local = tributary(&ws, &local_args);
        let remote = on_stack(&moto.url, &stack, Path::new(config), args);
        (text(&local), text(&remote))
    };

    let (local, remote) = compare(&["--json", "partitions"]);
    let local: Value = serde_json::from_str(&local).unwrap();
    assert!(
        local["partitions"].as_array().is_some_and(|p| p.len() > 3),
        "{local}"
    );
    assert_eq!(
        without_times(local),
        without_times(serde_json::from_str(&remote).unwrap())
    );
    let (local, remote) = compare(&["partitions", "--unprocessed"]);
    assert_eq!(local, remote);

    // Moving a watermark by hand: the same answer, then the same listing.
    let set = [
        "--json",
        "watermark",
        "set",
        "--pipeline",
        "orders_daily",
        "--date",
        "2025-11-30",
        "--reason",
        "replaying November",
    ];
    let (local, remote) = compare(&set);
    assert_eq!(
        without_times(serde_json::from_str(&local).unwrap()),
        without_times(serde_json::from_str(&remote).unwrap())
    );
    let (local, remote) = compare(&["partitions"]);
    assert!(local.contains("2025-11-30"), "{local}");
    assert_eq!(local, remote);

    // Approval requests waiting, and what retention would delete.
    let (local, remote) = compare(&["--json", "approvals", "list"]);
    assert!(local.contains("waiting-1"), "{local}");
    assert_eq!(local, remote);
    let (local, remote) = compare(&["approvals", "list"]);
    assert_eq!(local, remote);
    let (local, remote) = compare(&["--json", "retention", "--dry-run", "--today", "2027-06-01"]);
    let deletions: Value = serde_json::from_str(&local).unwrap();
    assert!(
        deletions["deletions"]
            .as_array()
            .is_some_and(|d| !d.is_empty()),
        "{deletions}"
    );
    assert_eq!(local, remote);
    let (local, remote) = compare(&["retention", "--dry-run", "--today", "2027-06-01"]);
    assert_eq!(local, remote);
    // The stream's dead letters, each with its error.
    let (local, remote) = compare(&["--json", "dlq", "list"]);
    assert!(local.contains("\"error\""), "{local}");
    assert_eq!(local, remote);
    let (local, remote) = compare(&["dlq", "list"]);
    assert_eq!(local, remote);
    // Deleting is the deployed schedule's job, not a terminal's.
    let out = on_stack(&moto.url, &stack, Path::new(config), &["retention"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only with --dry-run"));

    // The stack's executions, in the workspace's columns.
    let remote = text(&on_stack(
        &moto.url,
        &stack,
        Path::new(config),
        &["--json", "executions", "list"],
    ));
    let rows: Value = serde_json::from_str(&remote).unwrap();
    let seen: Vec<(&str, &str, &str)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap(),
                r["stateMachine"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("orders_daily-2025-12-01-a", "partition_pipeline", "RUNNING"),
            ("orders_daily-2025-12-02-b", "partition_pipeline", "RUNNING"),
        ]
    );
    let local_rows: Value =
        serde_json::from_str(&text(&tributary(&ws, &["--json", "executions", "list"]))).unwrap();
    let fields = |r: &Value| {
        let mut keys: Vec<String> = r.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(fields(&local_rows[0]), fields(&rows[0]));
    let header = |out: String| out.lines().next().unwrap_or_default().to_string();
    assert_eq!(
        header(text(&tributary(&ws, &["executions", "list"]))),
        header(text(&on_stack(
            &moto.url,
            &stack,
            Path::new(config),
            &["executions", "list"]
        )))
    );

    // What is not there yet says so, and names what is.
    let out = on_stack(
        &moto.url,
        &stack,
        Path::new(config),
        &[
            "backfill",
            "--pipeline",
            "orders_daily",
            "--start",
            "2025-12-01",
            "--end",
            "2025-12-02",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("works on a local workspace only so far") && err.contains("partitions"),
        "{err}"
    );
}

/// Outputs that are not there: a clear error naming the file and what is
/// missing, before anything is called.
#[test]
fn a_stack_file_that_is_not_terraform_output_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline.toml");
    let stack = dir.path().join("stack.json");
    std::fs::write(&stack, "not json").unwrap();
    let out = on_stack("http://127.0.0.1:9", &stack, &config, &["partitions"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("terraform output -json"), "{err}");

    std::fs::write(&stack, r#"{"bucket": {"value": "b"}}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .arg("--stack")
        .arg(&stack)
        .arg("--config")
        .arg(&config)
        .arg("partitions")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("TRIBUTARY_TABLE") && err.contains("stack.json"),
        "{err}"
    );
}
