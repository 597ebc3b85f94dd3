//! The batch path on AWS, emulated: a raw CSV uploaded to S3 (moto), its S3
//! event delivered to the real object-created handler, then the clean,
//! validate and publish handlers run with the AWS adapters — Parquet lands
//! in S3, the partition in Glue, the status in DynamoDB, and a duplicated
//! event starts no second execution.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use tributary_aws::emulator::Moto;
use tributary_aws::{
    AwsAdapters, DynamoStateStore, GlueCatalog, S3ObjectStore, SfnCallbacks, SfnWorkflows,
    SnsNotifier,
};
use tributary_core::config::Config;
use tributary_core::layout::encode_event_key;
use tributary_core::ports::{Catalog, ObjectStore};
use tributary_e2e::date;
use tributary_handlers::invoke;

const CONFIG: &str = r#"
[datasets.orders]
key = ["id"]
event_time = "ts"
quality_threshold = 0.9
[[datasets.orders.columns]]
name = "id"
type = "string"
required = true
[[datasets.orders.columns]]
name = "amount"
type = "float"
required = true
[[datasets.orders.columns]]
name = "ts"
type = "timestamp"
required = true
[[datasets.orders.rules]]
column = "amount"
min = 0.0
min_exclusive = true
reason = "nonpositive_amount"

[pipelines.orders_daily]
datasets = ["orders"]
"#;

fn s3_event(bucket: &str, key: &str, etag: &str, size: u64) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2025-12-03T10:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "X"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "raw",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "X"}, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": encode_event_key(key), "size": size, "eTag": etag, "sequencer": "0055AED6DCD90281E5"}}
    }]})
}

#[tokio::test]
async fn a_raw_file_becomes_a_published_partition_on_emulated_aws() {
    let moto = Moto::start();
    let aws = moto.sdk_config().await;
    let bucket = "tributary-data";
    let sfn = aws_sdk_sfn::Client::new(&aws);
    let machine = sfn
        .create_state_machine()
        .name("partition_pipeline")
        .definition(r#"{"StartAt":"Done","States":{"Done":{"Type":"Succeed"}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/tributary-sfn")
        .send()
        .await
        .unwrap();
    let adapters = AwsAdapters {
        objects: S3ObjectStore::new(&aws, bucket, true),
        state: DynamoStateStore::new(&aws, "tributary-state"),
        catalog: GlueCatalog::new(&aws, "tributary", bucket),
        workflows: SfnWorkflows::new(&aws, machine.state_machine_arn()),
        notifier: SnsNotifier::new(&aws, BTreeMap::new()),
        callbacks: SfnCallbacks::new(&aws),
        approval_secret: b"test-secret".to_vec(),
        approval_base_url: "https://approvals.example".into(),
        scratch: tempfile::tempdir().unwrap().keep(),
    };
    adapters.objects.ensure_bucket().await.unwrap();
    adapters.state.ensure_table().await.unwrap();
    adapters.catalog.ensure_table("orders").await.unwrap();
    let config = Config::parse(CONFIG, "pipeline.toml").unwrap();
    let svc = adapters.services(&config);

    // Upstream drops a file; S3 tells the object-created function.
    let key = "raw/orders/date=2025-12-03/orders export.csv";
    let csv = "id,amount,ts\no1,10.5,2025-12-03T10:00:00Z\no2,-1,2025-12-03T11:00:00Z\no3,7,2025-12-03T12:00:00+01:00\n";
    let put = adapters
        .objects
        .put_bytes(key, csv.as_bytes().to_vec())
        .await
        .unwrap();
    let event = s3_event(bucket, key, &put.etag, put.size);
    let first = invoke(&svc, "object-created", event.clone()).await.unwrap();
    // S3 delivers at least once: the same event again starts nothing new.
    invoke(&svc, "object-created", event).await.unwrap();
    let executions = sfn
        .list_executions()
        .state_machine_arn(machine.state_machine_arn())
        .send()
        .await
        .unwrap();
    assert_eq!(executions.executions().len(), 1, "{first}");
    let execution = sfn
        .describe_execution()
        .execution_arn(executions.executions()[0].execution_arn())
        .send()
        .await
        .unwrap();
    let input: Value = serde_json::from_str(execution.input().unwrap()).unwrap();
    assert_eq!(
        (input["pipeline"].as_str(), input["date"].as_str()),
        (Some("orders_daily"), Some("2025-12-03"))
    );

    // What the state machine's tasks do, with the run it was started for.
    let step = json!({"dataset": "orders", "date": "2025-12-03", "run_id": input["run_id"]});
    let cleaned = invoke(&svc, "clean-partition", step.clone()).await.unwrap();
    assert_eq!(
        (
            cleaned["stats"]["input"].as_u64(),
            cleaned["stats"]["kept"].as_u64()
        ),
        (Some(3), Some(2)),
        "{cleaned}"
    );
    let quality = invoke(&svc, "validate-partition", step.clone())
        .await
        .unwrap();
    assert!(quality["passed"].as_bool().unwrap(), "{quality}");
    let published = invoke(&svc, "publish-partition", step).await.unwrap();

    // Parquet in S3 under the published run, rejects kept with their reason.
    let location = published["manifest"]["location"]
        .as_str()
        .unwrap()
        .to_string();
    let files = adapters.objects.list(&location).await.unwrap();
    assert!(
        files.iter().any(|f| f.key.ends_with(".parquet")),
        "{files:?}"
    );
    let parquet = files.iter().find(|f| f.key.ends_with(".parquet")).unwrap();
    let bytes = adapters.objects.get_bytes(&parquet.key).await.unwrap();
    assert_eq!(&bytes[..4], b"PAR1");
    let rejects = adapters
        .objects
        .list("rejects/orders/date=2025-12-03/")
        .await
        .unwrap();
    assert!(!rejects.is_empty());
    // The partition in Glue points at the run; the status in DynamoDB.
    let partition = adapters
        .catalog
        .get_partition("orders", date("2025-12-03"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(partition.location, location);
    let status =
        tributary_core::state::partition_status(&adapters.state, "orders", date("2025-12-03"))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(status.state.name(), "published");
    let watermark = tributary_core::state::watermark(&adapters.state, "orders_daily")
        .await
        .unwrap();
    assert_eq!(watermark.map(|w| w.date), Some(date("2025-12-03")));
}
