//! Least privilege, proved: every function runs its sample event against a
//! stack on moto with moto's IAM enforcement on, signing with credentials
//! that carry exactly the policy Terraform renders for it
//! (scripts/infra/policies.py reads infra/modules/tributary), and a
//! permission taken out of one policy makes its function fail.
//!
//! moto authorises S3 requests against the object's ARN, so the data
//! bucket's per-layer grants are checked as AWS checks them; for the other
//! services it authorises actions against `*`, so their statements are
//! given `*` as resource here (the actions are still exactly the rendered
//! ones: query-api cannot write the state table).

#![cfg(feature = "aws")]

mod common;

use common::{json_of, tributary};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tributary_core::ports::{ObjectStore, StateStore};

const ACCOUNT: &str = "123456789012";
const BUCKET: &str = "tributary-data";
const MACHINES: [&str; 5] = [
    "partition_pipeline",
    "distributed_clean",
    "catchup",
    "feature_pipeline",
    "labeling",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn machine_arn(machine: &str) -> String {
    format!("arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:tributary-{machine}")
}

fn topic_arn(topic: &str) -> String {
    format!("arn:aws:sns:us-east-1:{ACCOUNT}:tributary-{topic}")
}

/// The values of the references the policy document uses, for this stack.
fn references() -> Value {
    json!({
        "aws_s3_bucket.data.arn": format!("arn:aws:s3:::{BUCKET}"),
        "aws_dynamodb_table.state.arn": format!("arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/tributary-state"),
        "local.partition": "aws",
        "local.region": "us-east-1",
        "local.account": ACCOUNT,
        "var.name_prefix": "tributary",
        "aws_cloudwatch_log_group.function[each.key].arn": format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/lambda/tributary-{{function}}"),
        "aws_glue_catalog_database.this.arn": format!("arn:aws:glue:us-east-1:{ACCOUNT}:database/tributary"),
        "aws_glue_catalog_database.this.name": "tributary",
        "local.partition_pipeline_arn": machine_arn("partition_pipeline"),
        "local.feature_pipeline_arn": machine_arn("feature_pipeline"),
        "local.labeling_arn": machine_arn("labeling"),
        "aws_sns_topic.approvals.arn": topic_arn("approvals"),
        "aws_sns_topic.alerts.arn": topic_arn("alerts"),
        "aws_kms_key.notifications.arn": format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/notifications"),
        "aws_secretsmanager_secret.approval_signing_key.arn": format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:approval"),
        "aws_kinesis_stream.this": [
            {"arn": format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/tributary-orders")},
            {"arn": format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/tributary-clicks")}
        ],
        "aws_sqs_queue.stream_failures.arn": format!("arn:aws:sqs:us-east-1:{ACCOUNT}:tributary-stream-failures"),
        "aws_sqs_queue.event_failures.arn": format!("arn:aws:sqs:us-east-1:{ACCOUNT}:tributary-event-failures"),
    })
}

/// Every function's policy as Terraform renders it.
fn rendered_policies(dir: &Path) -> BTreeMap<String, Value> {
    let refs = dir.join("refs.json");
    std::fs::write(&refs, references().to_string()).unwrap();
    let python = repo().join(".tools/infra-venv/bin/python");
    assert!(
        python.exists(),
        "{} is not installed: run `bash scripts/test.sh`",
        python.display()
    );
    let out = Command::new(python)
        .arg(repo().join("scripts/infra/policies.py"))
        .arg("--refs")
        .arg(&refs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The policy as moto can enforce it: S3 statements as rendered, the
/// others on `*` (moto authorises their actions against `*`). AWS
/// authorises a TransactWriteItems as the PutItem/UpdateItem/DeleteItem it
/// holds; moto asks for `dynamodb:TransactWriteItems` itself, so a
/// statement granting those writes grants it too.
fn as_moto_enforces(mut policy: Value) -> Value {
    for statement in policy["Statement"].as_array_mut().unwrap() {
        let actions = statement["Action"].as_array_mut().unwrap();
        let s3 = actions
            .iter()
            .all(|a| a.as_str().unwrap().starts_with("s3:"));
        if actions.iter().any(|a| a == "dynamodb:PutItem") {
            actions.push(json!("dynamodb:TransactWriteItems"));
        }
        if !s3 {
            statement["Resource"] = json!(["*"]);
        }
    }
    policy
}

/// The workspace's objects and state items, copied into the stack (what
/// the deployed pipeline would have written).
async fn copy_workspace(ws: &Path, aws: &aws_config::SdkConfig, moto: &tributary_testing::Moto) {
    let local = tributary_local::Workspace::new(ws).adapters();
    let bucket = tributary_aws::S3ObjectStore::new(aws, BUCKET, true);
    bucket.ensure_bucket().await.unwrap();
    for o in local.objects.list("").await.unwrap() {
        let body = local.objects.get_bytes(&o.key).await.unwrap();
        bucket.put_bytes(&o.key, body).await.unwrap();
    }
    let table = tributary_aws::DynamoStateStore::new(aws, "tributary-state");
    table.ensure_table().await.unwrap();
    for entry in std::fs::read_dir(ws.join("state")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(encoded) = name.strip_suffix(".json") else {
            continue;
        };
        let pk = percent_decode(encoded);
        for (sk, item) in local.state.query(&pk).await.unwrap() {
            table
                .put(
                    &pk,
                    &sk,
                    item.value,
                    tributary_core::ports::Condition::Always,
                )
                .await
                .unwrap();
        }
    }
    let config = tributary_core::config::Config::load(&ws.join("pipeline.toml")).unwrap();
    let catalog = tributary_aws::GlueCatalog::new(aws, "tributary", BUCKET);
    for t in tributary_core::table_schema::catalog_tables(&config).unwrap() {
        catalog.ensure_table(&t).await.unwrap();
    }
    let sfn = aws_sdk_sfn::Client::new(aws);
    for machine in MACHINES {
        sfn.create_state_machine()
            .name(format!("tributary-{machine}"))
            .definition(
                r#"{"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": true}}}"#,
            )
            .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/tributary-sfn"))
            .send()
            .await
            .unwrap();
    }
    // The click stream's mapping to click-inference, disabled as Terraform
    // creates it (start-inference enables it).
    let clicks = tributary_aws::KinesisProducer::new(aws, "tributary-clicks");
    clicks.ensure_stream(1).await.unwrap();
    moto.create_lambda_functions(&["tributary-click-inference".to_string()])
        .unwrap();
    moto.create_event_source_mapping(
        "tributary-click-inference",
        &format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/tributary-clicks"),
        false,
    )
    .unwrap();
    let sns = aws_sdk_sns::Client::new(aws);
    for topic in ["approvals", "alerts"] {
        sns.create_topic()
            .name(format!("tributary-{topic}"))
            .send()
            .await
            .unwrap();
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn stack_outputs(dir: &Path) -> PathBuf {
    let value = |v: Value| json!({"sensitive": false, "type": "string", "value": v});
    let machines: serde_json::Map<String, Value> = MACHINES
        .iter()
        .map(|m| (m.to_string(), json!(machine_arn(m))))
        .collect();
    let outputs = json!({
        "bucket": value(json!(BUCKET)),
        "state_table": value(json!("tributary-state")),
        "glue_database": value(json!("tributary")),
        "state_machine_arns": value(Value::Object(machines)),
        "approvals_topic_arn": value(json!(topic_arn("approvals"))),
        "alerts_topic_arn": value(json!(topic_arn("alerts"))),
        "approval_base_url": value(json!("https://approvals.example/")),
        "function_names": value(json!({"click-inference": "tributary-click-inference"})),
    });
    let path = dir.join("stack.json");
    std::fs::write(&path, outputs.to_string()).unwrap();
    path
}

/// `tributary --stack … --config … ARGS`, signing with `key`.
fn as_function(
    moto: &str,
    stack: &Path,
    config: &Path,
    key: &(String, String),
    args: &[&str],
) -> Output {
    common::on_stack_as(moto, stack, config, (&key.0, &key.1), args)
}

#[test]
fn every_function_runs_on_a_stack_with_only_its_rendered_policy() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));
    let moto = tributary_testing::Moto::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let aws = runtime.block_on(moto.sdk_config());
    runtime.block_on(copy_workspace(&ws, &aws, &moto));

    let policies = rendered_policies(dir.path());
    let mut keys = BTreeMap::new();
    for (function, policy) in &policies {
        let key = moto
            .iam_user_with_policy(&format!("fn-{function}"), &as_moto_enforces(policy.clone()))
            .unwrap();
        keys.insert(function.clone(), key);
    }
    // The planted mistake: clean-partition without its grant on rejects/.
    let mut planted = as_moto_enforces(policies["clean-partition"].clone());
    for statement in planted["Statement"].as_array_mut().unwrap() {
        if statement["Sid"] == "WriteData" {
            statement["Resource"]
                .as_array_mut()
                .unwrap()
                .retain(|r| !r.as_str().unwrap().contains("/rejects/"));
        }
    }
    let planted_key = moto
        .iam_user_with_policy("fn-clean-partition-planted", &planted)
        .unwrap();
    moto.enforce_iam().unwrap();

    let stack = stack_outputs(dir.path());
    let scratch = dir.path().join("events");
    std::fs::create_dir_all(&scratch).unwrap();
    let invoked = common::events::run_every_sample_event(&ws, &scratch, &mut |config, args| {
        let function = args[1];
        let key = keys
            .get(function)
            .unwrap_or_else(|| panic!("{function} has no policy in infra/ (local.functions)"));
        as_function(&moto.url, &stack, config, key, args)
    });
    common::events::assert_is_the_function_table(&ws, &invoked);

    // Without the grant on rejects/, the clean fails where it writes them.
    let clean = common::events::event("clean-partition.json");
    let out = as_function(
        &moto.url,
        &stack,
        &ws.join("pipeline.toml"),
        &planted_key,
        &[
            "invoke",
            "clean-partition",
            "--event",
            clean.to_str().unwrap(),
        ],
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("AccessDenied") || said.contains("Access Denied"),
        "{said}"
    );
    assert!(said.contains("rejects/"), "{said}");

    // query-api reads the state table and cannot write it.
    let (id, secret) = &keys["query-api"];
    let readonly = runtime.block_on(async {
        let config = moto.sdk_config_as(id, secret).await;
        let table = tributary_aws::DynamoStateStore::new(&config, "tributary-state");
        let read = table.get("watermark", "orders_daily").await;
        let write = table
            .put(
                "watermark",
                "orders_daily",
                json!({"date": "2000-01-01"}),
                tributary_core::ports::Condition::Always,
            )
            .await;
        (read.is_ok(), write.map_err(|e| e.to_string()))
    });
    assert!(readonly.0, "query-api could not read the state table");
    let refused = readonly.1.expect_err("query-api wrote the state table");
    assert!(refused.contains("AccessDenied"), "{refused}");
}
