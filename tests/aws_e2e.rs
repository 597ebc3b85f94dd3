//! The batch path on AWS, emulated: a raw CSV uploaded to S3 (moto), its S3
//! event delivered to the real object-created handler, then the clean,
//! validate and publish handlers run with the AWS adapters — Parquet lands
//! in S3, the partition in Glue, the status in DynamoDB, and a duplicated
//! event starts no second execution.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use tributary_aws::KinesisProducer;
use tributary_aws::{
    AwsAdapters, DynamoStateStore, GlueCatalog, S3ObjectStore, SfnCallbacks, SfnWorkflows,
    SnsNotifier,
};
use tributary_core::config::Config;
use tributary_core::layout::encode_event_key;
use tributary_core::partition::publish_partition;
use tributary_core::ports::StreamProducer;
use tributary_core::ports::StreamRecord;
use tributary_core::ports::{Catalog, ObjectStore};
use tributary_core::publish::read_manifest;
use tributary_core::services::Services;
use tributary_core::stream::serving::realtime_windows;
use tributary_core::stream::speed::dead_letters;
use tributary_core::stream::windows::total;
use tributary_core::table_schema::{catalog_tables, file_columns, TableFormat};
use tributary_e2e::{date, FailingStore};
use tributary_handlers::invoke;
use tributary_local::kinesis::event_source_mapping_event;
use tributary_testing::Moto;

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
[[datasets.orders.derived]]
name = "order_date"
kind = "date_of"
from = "ts"

[pipelines.orders_daily]
datasets = ["orders"]

[streams.orders]
event_id = "order_id"
event_time = "order_ts"
dimensions = ["product_id"]
measures = ["amount"]
window = "1m"
allowed_lateness = "5m"
serve_as = "sales"
[[streams.orders.fields]]
name = "order_id"
type = "string"
required = true
[[streams.orders.fields]]
name = "product_id"
type = "string"
required = true
[[streams.orders.fields]]
name = "amount"
type = "float"
required = true
[[streams.orders.fields]]
name = "order_ts"
type = "timestamp"
required = true
"#;

/// Every port on the emulator, with its bucket, table and Glue table made
/// (Terraform's part on AWS).
async fn aws_adapters(
    aws: &aws_config::SdkConfig,
    bucket: &str,
    machine_arn: &str,
    config: &Config,
) -> AwsAdapters {
    let adapters = AwsAdapters {
        objects: S3ObjectStore::new(aws, bucket, true),
        state: DynamoStateStore::new(aws, "tributary-state"),
        catalog: GlueCatalog::new(aws, "tributary", bucket),
        workflows: SfnWorkflows::new(aws, machine_arn),
        notifier: SnsNotifier::new(aws, BTreeMap::new()),
        callbacks: SfnCallbacks::new(aws),
        consumers: tributary_aws::LambdaConsumerSwitch::new(aws),
        approval_secret: b"test-secret".to_vec(),
        approval_base_url: "https://approvals.example".into(),
        scratch: tempfile::tempdir().unwrap().keep(),
    };
    adapters.objects.ensure_bucket().await.unwrap();
    adapters.state.ensure_table().await.unwrap();
    for table in catalog_tables(config).unwrap() {
        adapters.catalog.ensure_table(&table).await.unwrap();
    }
    adapters
}

/// Every catalog table with a partition on `date`: the columns Glue holds
/// for the partition (copied from its table, as Athena reads them) equal
/// the columns of every file at its location. Returns the tables checked.
async fn tables_match_their_files(
    aws: &aws_config::SdkConfig,
    adapters: &AwsAdapters,
    config: &Config,
    day: &str,
) -> Vec<String> {
    let glue = aws_sdk_glue::Client::new(aws);
    let mut checked = Vec::new();
    for table in catalog_tables(config).unwrap() {
        let Some(partition) = adapters
            .catalog
            .get_partition(&table.name, date(day))
            .await
            .unwrap()
        else {
            continue;
        };
        let out = glue
            .get_partition()
            .database_name("tributary")
            .table_name(&table.name)
            .partition_values(day)
            .send()
            .await
            .unwrap();
        let mut glue_columns: Vec<(String, String)> = out
            .partition()
            .and_then(|p| p.storage_descriptor())
            .map(|d| d.columns())
            .unwrap_or_default()
            .iter()
            .map(|c| {
                (
                    c.name().to_string(),
                    c.r#type().unwrap_or_default().to_string(),
                )
            })
            .collect();
        // JSON tables are matched by name, Parquet ones in order too.
        let by_name = table.format == TableFormat::JsonLines;
        if by_name {
            glue_columns.sort();
        }
        let files = adapters.objects.list(&partition.location).await.unwrap();
        assert!(
            !files.is_empty(),
            "{}: no files at {}",
            table.name,
            partition.location
        );
        for f in files {
            let bytes = adapters.objects.get_bytes(&f.key).await.unwrap();
            let mut in_file: Vec<(String, String)> = file_columns(&f.key, bytes)
                .unwrap()
                .into_iter()
                .map(|(n, t)| (n, t.to_string()))
                .collect();
            if by_name {
                in_file.sort();
            }
            assert_eq!(glue_columns, in_file, "{}: {}", table.name, f.key);
        }
        checked.push(table.name.clone());
    }
    checked
}

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
    let config = Config::parse(CONFIG, "pipeline.toml").unwrap();
    let adapters = aws_adapters(&aws, bucket, machine.state_machine_arn(), &config).await;
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
    // Glue's columns for the partition are the Parquet file's, the
    // derived ones included.
    assert_eq!(
        tables_match_their_files(&aws, &adapters, &config, "2025-12-03").await,
        vec!["orders".to_string()]
    );

    // A corrected file arrives, and its publish dies midway, after the new
    // run's files are written but before the manifest switches: readers of
    // S3 and Glue still see the first publication, whole.
    let first_manifest = read_manifest(&adapters.objects, "orders", date("2025-12-03"))
        .await
        .unwrap()
        .unwrap();
    let corrected = "id,amount,ts\no1,11,2025-12-03T10:00:00Z\no4,4,2025-12-03T13:00:00Z\n";
    let put = adapters
        .objects
        .put_bytes(key, corrected.as_bytes().to_vec())
        .await
        .unwrap();
    invoke(
        &svc,
        "object-created",
        s3_event(bucket, key, &put.etag, put.size),
    )
    .await
    .unwrap();
    let executions = sfn
        .list_executions()
        .state_machine_arn(machine.state_machine_arn())
        .send()
        .await
        .unwrap();
    assert_eq!(
        executions.executions().len(),
        2,
        "a new version is a new run"
    );
    let mut run_ids = Vec::new();
    for e in executions.executions() {
        let described = sfn
            .describe_execution()
            .execution_arn(e.execution_arn())
            .send()
            .await
            .unwrap();
        let input: Value = serde_json::from_str(described.input().unwrap()).unwrap();
        run_ids.push(input["run_id"].as_str().unwrap().to_string());
    }
    let second_run = run_ids
        .into_iter()
        .find(|r| *r != first_manifest.run_id)
        .unwrap();
    let step = json!({"dataset": "orders", "date": "2025-12-03", "run_id": second_run});
    invoke(&svc, "clean-partition", step.clone()).await.unwrap();
    invoke(&svc, "validate-partition", step.clone())
        .await
        .unwrap();
    let crashing = FailingStore {
        inner: &adapters.objects,
        fail_on: "_manifest.json",
    };
    let crashed = publish_partition(
        &Services {
            objects: &crashing,
            ..adapters.services(&config)
        },
        "orders",
        date("2025-12-03"),
        &second_run,
        false,
    )
    .await
    .unwrap_err();
    assert!(crashed.retryable(), "{crashed}");
    let seen = read_manifest(&adapters.objects, "orders", date("2025-12-03"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, first_manifest);
    for file in &seen.files {
        let bytes = adapters.objects.get_bytes(&file.key).await.unwrap();
        assert_eq!(&bytes[..4], b"PAR1", "{}", file.key);
    }
    let partition = adapters
        .catalog
        .get_partition("orders", date("2025-12-03"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(partition.location, first_manifest.location);
    // The retry (the state machine's Retry on Tributary.Retryable) completes it.
    let republished = invoke(&svc, "publish-partition", step).await.unwrap();
    let manifest = read_manifest(&adapters.objects, "orders", date("2025-12-03"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(manifest.run_id, second_run, "{republished}");
    assert_eq!(
        manifest.previous_run.as_deref(),
        Some(first_manifest.run_id.as_str())
    );
    assert_eq!(manifest.rows, 2);
    let partition = adapters
        .catalog
        .get_partition("orders", date("2025-12-03"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(partition.location, manifest.location);
}

/// The speed layer on emulated AWS: orders put on Kinesis through the
/// producer adapter, read back as the event source mapping would hand them
/// over, and aggregated by the real handler into DynamoDB, with poison in
/// the S3 DLQ; delivering the batch again, or in bisected halves, changes
/// nothing.
#[tokio::test]
async fn kinesis_records_aggregate_exactly_once_on_emulated_aws() {
    let moto = Moto::start();
    let aws = moto.sdk_config().await;
    let config = Config::parse(CONFIG, "pipeline.toml").unwrap();
    let adapters = aws_adapters(
        &aws,
        "tributary-data",
        "arn:aws:states:us-east-1:123456789012:stateMachine:unused",
        &config,
    )
    .await;
    let svc = adapters.services(&config);
    let producer = KinesisProducer::new(&aws, "orders");
    producer.ensure_stream(2).await.unwrap();

    let mut lines: Vec<String> = (0..60)
        .map(|i| {
            json!({"order_id": format!("O{i}"), "product_id": format!("P{}", i % 3),
                   "amount": 2.5, "order_ts": format!("2025-12-03T10:{:02}:{:02}Z", i / 6, i % 6 * 10)})
            .to_string()
        })
        .collect();
    // Poison, and an order the producer sent twice.
    lines.push("{not json".into());
    lines.push(json!({"order_id": "X1", "product_id": "P1", "amount": "lots", "order_ts": "2025-12-03T10:01:00Z"}).to_string());
    lines.push(lines[7].clone());
    let records = lines
        .iter()
        .map(|l| (format!("key-{}", l.len() % 7), l.as_bytes().to_vec()))
        .collect();
    producer.put_records(records).await.unwrap();
    let delivered = producer.read_all().await.unwrap();
    assert_eq!(delivered.len(), lines.len());

    let deliver = |records: Vec<StreamRecord>| {
        let svc = &svc;
        async move {
            let response = invoke(
                svc,
                "stream-aggregate",
                event_source_mapping_event("orders", &records),
            )
            .await
            .unwrap();
            assert_eq!(response["batchItemFailures"], json!([]), "{response}");
            response["streams"]["orders"].clone()
        }
    };
    let first = deliver(delivered.clone()).await;
    assert_eq!(
        (
            first["input"].as_u64(),
            first["aggregated"].as_u64(),
            first["dlq"].as_u64(),
            first["duplicates"].as_u64()
        ),
        (Some(63), Some(60), Some(2), Some(1)),
        "{first}"
    );
    let totals = |windows: BTreeMap<_, _>| {
        let mut count = 0;
        let mut sum = 0.0;
        for groups in windows.values() {
            let t = total(groups);
            count += t.count;
            sum += t.sum.first().copied().unwrap_or(0.0);
        }
        (count, sum)
    };
    let once = totals(
        realtime_windows(&svc, "orders", date("2025-12-03"))
            .await
            .unwrap(),
    );
    assert_eq!(once, (60, 150.0));
    // At-least-once delivery: the whole batch again, then bisected halves.
    let again = deliver(delivered.clone()).await;
    assert_eq!(again["aggregated"], 0, "{again}");
    let half = delivered.len() / 2;
    deliver(delivered[..half].to_vec()).await;
    deliver(delivered[half..].to_vec()).await;
    assert_eq!(
        totals(
            realtime_windows(&svc, "orders", date("2025-12-03"))
                .await
                .unwrap()
        ),
        once
    );
    // The day's batch views, published: Glue's columns are the rows' columns.
    tributary_core::stream::views::build_views(
        &svc,
        "orders",
        date("2025-12-03"),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(
        tables_match_their_files(&aws, &adapters, &config, "2025-12-03").await,
        vec!["hourly_sales".to_string(), "daily_sales".to_string()]
    );
    // Poison is kept in S3 with its payload, shard and sequence number.
    let letters = dead_letters(&svc, "orders").await.unwrap();
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(letters
        .iter()
        .all(|(_, l)| l.shard_id.starts_with("shardId-") && !l.error.is_empty()));
}
