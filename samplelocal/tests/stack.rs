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

/// What `terraform output -json` prints for the parts the CLI reads, with
/// the state machines that exist on the emulator.
fn stack_outputs(dir: &Path, machines: &[&str]) -> std::path::PathBuf {
    let value = |v: Value| json!({"sensitive": false, "type": "string", "value": v});
    let machines: serde_json::Map<String, Value> = machines
        .iter()
        .map(|m| {
            (
                m.to_string(),
                json!(format!(
                    "arn:aws:states:us-east-1:123456789012:stateMachine:tributary-{m}"
                )),
            )
        })
        .collect();
    let outputs = json!({
        "bucket": value(json!("tributary-data")),
        "state_table": value(json!("tributary-state")),
        "glue_database": value(json!("tributary")),
        "state_machine_arns": value(Value::Object(machines)),
        "approvals_topic_arn": value(json!("arn:aws:sns:us-east-1:123456789012:tributary-approvals")),
        "alerts_topic_arn": value(json!("arn:aws:sns:us-east-1:123456789012:tributary-alerts")),
        "approval_base_url": value(json!("https://approvals.example/")),
        "function_names": value(json!({"click-inference": "tributary-click-inference"})),
    });
    let path = dir.join("stack.json");
    std::fs::write(&path, outputs.to_string()).unwrap();
    path
}

/// The CLI against the stack, with moto's endpoint and test credentials.
fn on_stack(moto_url: &str, stack: &Path, config: &Path, args: &[&str]) -> Output {
    common::on_stack_as(moto_url, stack, config, ("test", "test"), args)
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
            assert!(starter
                .start(
                    tributary_core::ports::Workflow::PartitionPipeline,
                    name,
                    json!({})
                )
                .await
                .unwrap());
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
    let stack = stack_outputs(dir.path(), &["partition_pipeline"]);
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
    // Replayed with the same schema, the poison stays poison, on both.
    let (local, remote) = compare(&["dlq", "replay", "--stream", "orders"]);
    let replay: Value = serde_json::from_str(&local).unwrap();
    assert!(replay["still_poison"].as_u64().unwrap() > 0, "{replay}");
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
    let out = on_stack(&moto.url, &stack, Path::new(config), &["reconcile"]);
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

/// Waits for moto to schedule the execution's callback task, and returns
/// the token its parameters carry.
async fn task_token(sfn: &aws_sdk_sfn::Client, execution_arn: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let history = sfn
            .get_execution_history()
            .execution_arn(execution_arn)
            .send()
            .await
            .unwrap();
        let token = history.events().iter().find_map(|e| {
            let params: Value =
                serde_json::from_str(e.task_scheduled_event_details()?.parameters()).ok()?;
            params["Payload"]["token"].as_str().map(str::to_string)
        });
        if let Some(token) = token {
            return token;
        }
        assert!(std::time::Instant::now() < deadline, "no task token");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Deciding approvals, backfilling and reading executions on a stack: a
/// decision is recorded and answers the execution's task token (which then
/// finishes on the stack); a backfill starts the catchup machine with the
/// workspace's input and prints its report; show and history read the
/// stack's executions in the workspace's shapes.
#[test]
fn decisions_backfills_and_execution_details_on_a_stack() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));
    let config = ws.join("pipeline.toml");
    let moto = tributary_testing::Moto::start();
    moto.execute_state_machines().unwrap();
    moto.create_lambda_functions(&["tributary-request-approval".to_string()])
        .unwrap();
    moto.queue_lambda_results(&[json!({}), json!({})]).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let aws = runtime.block_on(moto.sdk_config());
    let sfn = aws_sdk_sfn::Client::new(&aws);
    let table = tributary_aws::DynamoStateStore::new(&aws, "tributary-state");
    // A partition pipeline that waits for a person, as the deployed one
    // does at RequestApproval, and a catchup that reports its plan.
    let waits = json!({
        "StartAt": "RequestApproval",
        "States": {
            "RequestApproval": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {
                    "FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:tributary-request-approval",
                    "Payload": {"token.$": "$$.Task.Token"}
                },
                "TimeoutSeconds": 300,
                "ResultPath": "$.decision",
                "End": true
            }
        }
    });
    let catchup = json!({
        "StartAt": "Plan",
        "States": {"Plan": {
            "Type": "Pass",
            "Parameters": {
                "plan": {"dates.$": "States.Array($.start, $.end)", "execution_date.$": "$.end", "skipped": []},
                "report": {"published": []}
            },
            "End": true
        }}
    });
    let (approve_id, reject_id) = runtime.block_on(async {
        table.ensure_table().await.unwrap();
        let mut ids = Vec::new();
        for (machine, definition) in [("partition_pipeline", &waits), ("catchup", &catchup)] {
            sfn.create_state_machine()
                .name(format!("tributary-{machine}"))
                .definition(definition.to_string())
                .role_arn("arn:aws:iam::123456789012:role/tributary-test")
                .send()
                .await
                .unwrap();
        }
        let machine =
            "arn:aws:states:us-east-1:123456789012:stateMachine:tributary-partition_pipeline";
        for name in [
            "orders_daily-2025-12-02-held",
            "orders_daily-2025-12-03-held",
        ] {
            let execution = sfn
                .start_execution()
                .state_machine_arn(machine)
                .name(name)
                .input(json!({"pipeline": "orders_daily", "date": &name[13..23]}).to_string())
                .send()
                .await
                .unwrap()
                .execution_arn()
                .to_string();
            let token = task_token(&sfn, &execution).await;
            // What request-approval stores for it.
            let (approval, _) = tributary_core::approvals::request(
                &table,
                &tributary_core::approvals::LinkSigner {
                    secret: b"k",
                    base_url: "https://approvals.example/",
                },
                tributary_core::approvals::ApprovalRequest {
                    token,
                    execution,
                    purpose: format!("publish {name}"),
                    summary: json!({"pipeline": "orders_daily"}),
                    ttl: chrono::Duration::hours(48),
                },
                chrono::Utc::now(),
            )
            .await
            .unwrap();
            ids.push(approval.id);
        }
        (ids[0].clone(), ids[1].clone())
    });
    let stack = stack_outputs(dir.path(), &["partition_pipeline", "catchup"]);
    let run = |args: &[&str]| text(&on_stack(&moto.url, &stack, &config, args));

    // Approve: recorded with who decided, and the execution goes on to its
    // end with the decision as the task's result.
    let approved: Value = serde_json::from_str(&run(&[
        "approvals",
        "approve",
        &approve_id,
        "--by",
        "ops",
        "--reason",
        "checked",
    ]))
    .unwrap();
    assert_eq!(approved["status"], "SUCCEEDED", "{approved}");
    assert_eq!(
        approved["output"]["decision"]["approved"], true,
        "{approved}"
    );
    assert_eq!(
        approved["output"]["decision"]["decider"],
        "ops (tributary approvals)"
    );
    // Reject: the execution fails with the error the pipeline catches.
    let rejected: Value = serde_json::from_str(&run(&[
        "approvals",
        "reject",
        &reject_id,
        "--reason",
        "bad day",
    ]))
    .unwrap();
    assert_eq!(rejected["status"], "FAILED", "{rejected}");
    assert_eq!(rejected["error"], "Tributary.Rejected", "{rejected}");
    // Who and why are recorded with the request (moto drops the task
    // failure's cause, which carries them on AWS).
    let decided = runtime
        .block_on(tributary_core::approvals::get(&table, &reject_id))
        .unwrap();
    assert_eq!(decided.reason.as_deref(), Some("bad day"));
    assert!(decided.decider.unwrap().ends_with("(tributary approvals)"));
    // Both decided once: nothing is pending, and a second decision is refused.
    let pending: Value = serde_json::from_str(&run(&["--json", "approvals", "list"])).unwrap();
    assert_eq!(pending["pending"], json!([]), "{pending}");
    let again = on_stack(
        &moto.url,
        &stack,
        &config,
        &["approvals", "approve", &approve_id],
    );
    assert!(!again.status.success());

    // Show and history: the workspace's shapes.
    let shown: Value = serde_json::from_str(&run(&[
        "executions",
        "show",
        "orders_daily-2025-12-02-held",
    ]))
    .unwrap();
    assert_eq!(shown, approved);
    let local_show: Value = serde_json::from_str(&text(&tributary(
        &ws,
        &["executions", "show", &execution_names(&ws)[0]],
    )))
    .unwrap();
    for key in [
        "status",
        "output",
        "error",
        "cause",
        "name",
        "executionArn",
        "startDate",
        "stopDate",
    ] {
        assert!(
            local_show.get(key).is_some() && shown.get(key).is_some(),
            "{key}"
        );
    }
    let history: Value = serde_json::from_str(&run(&[
        "executions",
        "history",
        "orders_daily-2025-12-03-held",
    ]))
    .unwrap();
    let types: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"ExecutionStarted"), "{history}");
    assert_eq!(types.last(), Some(&"ExecutionFailed"), "{history}");
    assert!(types.contains(&"TaskScheduled"), "{history}");
    let failed = history["events"].as_array().unwrap().last().unwrap();
    assert_eq!(
        failed["details"]["error"], "Tributary.Rejected",
        "{history}"
    );
    let unknown = on_stack(&moto.url, &stack, &config, &["executions", "show", "nope"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no execution \"nope\""));

    // Backfill: the catchup machine, started with the workspace's input,
    // reported as the workspace reports it.
    let report = run(&[
        "backfill",
        "--pipeline",
        "orders_daily",
        "--start",
        "2025-12-01",
        "--end",
        "2025-12-02",
    ]);
    assert!(
        report.starts_with("backfill-orders_daily-2025-12-01-2025-12-02-")
            && report.contains("SUCCEEDED: 2 date(s) planned up to 2025-12-02, 0 skipped"),
        "{report}"
    );
    let json_report: Value = serde_json::from_str(&run(&[
        "--json",
        "backfill",
        "--pipeline",
        "orders_daily",
        "--start",
        "2025-12-03",
        "--end",
        "2025-12-03",
        "--force",
    ]))
    .unwrap();
    assert_eq!(json_report["runs"], json!([]), "{json_report}");
    let name = json_report["execution"]["name"].as_str().unwrap();
    let history: Value = serde_json::from_str(&run(&["executions", "history", name])).unwrap();
    assert_eq!(
        history["events"][0]["details"]["input"],
        json!({"pipeline": "orders_daily", "start": "2025-12-03", "end": "2025-12-03", "force": true})
    );
}

/// The names of the workspace's executions.
fn execution_names(ws: &Path) -> Vec<String> {
    let rows: Value =
        serde_json::from_str(&text(&tributary(ws, &["--json", "executions", "list"]))).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

/// `redrive`: a batch the event source mapping gave up on (its on-failure
/// record in the stream-failures queue) is read from the stream again and
/// handed to the consumer that failed; the message goes once the batch is
/// through, and a record already counted counts once however often the
/// batch is redriven.
#[test]
fn failed_stream_batches_are_redriven_and_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));
    let config = ws.join("pipeline.toml");
    let moto = tributary_testing::Moto::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let aws = runtime.block_on(moto.sdk_config());
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let (queue_url, failure) = runtime.block_on(async {
        tributary_aws::DynamoStateStore::new(&aws, "tributary-state")
            .ensure_table()
            .await
            .unwrap();
        tributary_aws::S3ObjectStore::new(&aws, "tributary-data", true)
            .ensure_bucket()
            .await
            .unwrap();
        let stream = tributary_aws::KinesisProducer::new(&aws, "tributary-orders");
        stream.ensure_stream(1).await.unwrap();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        use tributary_core::ports::StreamProducer;
        let put = stream
            .put_records(
                (1..=3)
                    .map(|i| {
                        let order = json!({"order_id": format!("R-{i}"), "user_id": i,
                            "product_id": "P001", "amount": 10.0 * i as f64, "order_ts": now});
                        (format!("R-{i}"), order.to_string().into_bytes())
                    })
                    .collect(),
            )
            .await
            .unwrap();
        let queue_url = sqs
            .create_queue()
            .queue_name("tributary-stream-failures")
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string();
        // What Lambda writes to an on-failure destination of a Kinesis
        // event source mapping.
        let failure = json!({
            "requestContext": {
                "requestId": "c9b8fa9f-5a7f-4d2e-9f3c-2f0d8a1b7e10",
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:tributary-stream-aggregate",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": 11
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": now,
            "KinesisBatchInfo": {
                "shardId": put[0].shard_id,
                "startSequenceNumber": put[0].sequence_number,
                "endSequenceNumber": put[2].sequence_number,
                "approximateArrivalOfFirstRecord": now,
                "approximateArrivalOfLastRecord": now,
                "batchSize": 3,
                "streamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/tributary-orders"
            }
        });
        (queue_url, failure)
    });
    let stack = stack_outputs(dir.path(), &["partition_pipeline"]);
    let mut outputs: Value =
        serde_json::from_str(&std::fs::read_to_string(&stack).unwrap()).unwrap();
    outputs["stream_failures_queue_url"] =
        json!({"sensitive": false, "type": "string", "value": queue_url});
    std::fs::write(&stack, outputs.to_string()).unwrap();
    let send = || {
        runtime
            .block_on(
                sqs.send_message()
                    .queue_url(&queue_url)
                    .message_body(failure.to_string())
                    .send(),
            )
            .unwrap();
    };
    let redrive = || -> Value {
        serde_json::from_str(&text(&on_stack(
            &moto.url,
            &stack,
            &config,
            &["--json", "redrive"],
        )))
        .unwrap()
    };

    send();
    let first = redrive();
    let batch = &first["batches"][0];
    assert_eq!(batch["redriven"], true, "{first}");
    assert_eq!(batch["consumer"], "stream-aggregate");
    assert_eq!(batch["records"], 3);
    assert_eq!(
        batch["response"]["streams"]["orders"]["aggregated"], 3,
        "{first}"
    );
    // The message went with its batch: nothing is left to redrive.
    assert_eq!(redrive()["batches"], json!([]));
    // The same batch again (a second failure record for it): counted once.
    send();
    let again = redrive();
    let counted = &again["batches"][0]["response"]["streams"]["orders"];
    assert_eq!(
        (
            counted["aggregated"].as_u64(),
            counted["redelivered"].as_u64()
        ),
        (Some(0), Some(3)),
        "{again}"
    );
    // Locally there is no failure queue, and the CLI says where it is.
    let out = tributary(&ws, &["redrive"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--stack"));
}

/// `model status|rollback|stop` on a stack: the consumer's state is the
/// stack's, and its stream mapping is really switched (a stopped consumer
/// leaves clicks in the stream).
#[test]
fn the_inference_consumer_is_rolled_back_and_stopped_on_a_stack() {
    let dir = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline.toml");
    let moto = tributary_testing::Moto::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let aws = runtime.block_on(moto.sdk_config());
    runtime.block_on(async {
        let table = tributary_aws::DynamoStateStore::new(&aws, "tributary-state");
        table.ensure_table().await.unwrap();
        let bucket = tributary_aws::S3ObjectStore::new(&aws, "tributary-data", true);
        bucket.ensure_bucket().await.unwrap();
        use tributary_core::ports::ObjectStore;
        for version in ["v1", "v2"] {
            let model = json!({"version": version, "segments": {}, "global": ["P001"]});
            bucket
                .put_bytes(
                    &format!("models/shop/version={version}/model.json"),
                    model.to_string().into_bytes(),
                )
                .await
                .unwrap();
        }
        // v2 is active after v1, its consumer running.
        table
            .put(
                "model",
                "shop",
                json!({"active": "v2", "previous": "v1"}),
                tributary_core::ports::Condition::Always,
            )
            .await
            .unwrap();
        table
            .put(
                "inference",
                "shop",
                json!({"status": "running", "model_version": "v2", "started_at": "2025-12-04T08:00:00Z",
                       "restarts": 0, "processed": 40, "errors": 0, "last_event_ts": null}),
                tributary_core::ports::Condition::Always,
            )
            .await
            .unwrap();
        tributary_aws::KinesisProducer::new(&aws, "tributary-clicks")
            .ensure_stream(1)
            .await
            .unwrap();
    });
    moto.create_lambda_functions(&["tributary-click-inference".to_string()])
        .unwrap();
    moto.create_event_source_mapping(
        "tributary-click-inference",
        "arn:aws:kinesis:us-east-1:123456789012:stream/tributary-clicks",
        true,
    )
    .unwrap();
    let stack = stack_outputs(dir.path(), &["partition_pipeline"]);
    let mapping = || {
        runtime.block_on(async {
            use tributary_core::ports::ConsumerSwitch;
            tributary_aws::LambdaConsumerSwitch::new(&aws)
                .with_function("click-inference", "tributary-click-inference")
                .enabled("click-inference")
                .await
                .unwrap()
        })
    };
    let model = |args: &[&str]| {
        let mut full = vec!["model"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--set", "shop"]);
        json_of(&on_stack(&moto.url, &stack, &config, &full))
    };

    let status = model(&["status"]);
    assert_eq!(status["active"]["active"], "v2", "{status}");
    assert_eq!(status["consumer"]["healthy"], true, "{status}");
    assert_eq!(status["consumer"]["mapping_enabled"], true, "{status}");

    let stopped = model(&["stop"]);
    assert_eq!(stopped["consumer"]["status"], "stopped", "{stopped}");
    assert_eq!(mapping(), Some(false), "stopping disables the mapping");
    let status = model(&["status"]);
    assert_eq!(status["consumer"]["healthy"], false, "{status}");
    assert_eq!(status["consumer"]["mapping_enabled"], false, "{status}");

    let rolled = model(&["rollback"]);
    assert_eq!(rolled["activated"]["active"], "v1", "{rolled}");
    assert_eq!(rolled["consumer"]["model_version"], "v1", "{rolled}");
    assert_eq!(rolled["consumer"]["processed"], 0, "{rolled}");
    assert_eq!(mapping(), Some(true), "rolling back enables the mapping");
    // Started, not yet proven: healthy only once it processes clicks.
    let status = model(&["status"]);
    assert_eq!(status["consumer"]["healthy"], false, "{status}");
    assert!(
        status["consumer"]["reason"]
            .as_str()
            .unwrap()
            .contains("no clicks processed"),
        "{status}"
    );
}
