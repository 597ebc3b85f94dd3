//! One contract per port, asserted against both implementations: the local
//! adapters (files) and the AWS adapters on moto server (a real AWS-API
//! emulator on 127.0.0.1, installed by `scripts/test.sh` into `.tools/`).

use std::sync::Arc;
use tributary_aws::{DynamoStateStore, KinesisProducer, S3ObjectStore};
use tributary_core::ports::StreamRecord;
use tributary_core::ports::{
    Catalog, Condition, ConsumerSwitch, ObjectStore, PortError, StateStore, StreamProducer,
    TransactWrite, WorkflowStarter,
};
use tributary_core::stream::sequence_cmp;
use tributary_local::kinesis::{shard_id, KinesisStandIn};
use tributary_local::{FileStateStore, FsObjectStore};
use tributary_testing::Moto;

fn moto() -> Moto {
    Moto::start()
}

async fn sdk_config(moto: &Moto) -> aws_config::SdkConfig {
    moto.sdk_config().await
}

// ---------------------------------------------------------------- objects

async fn object_store_contract(store: &dyn ObjectStore, scratch: &std::path::Path) {
    // Keys as S3 events deliver them decoded: '=' and spaces and non-ASCII.
    let key = "raw/orders/date=2025-12-03/export 1 (ü).csv";
    let put = store.put_bytes(key, b"a,b\n1,2\n".to_vec()).await.unwrap();
    assert_eq!(put.size, 8);
    // S3 single-part ETag: the hex MD5 of the content.
    assert_eq!(put.etag, md5_hex(b"a,b\n1,2\n"));
    let head = store.head(key).await.unwrap().expect("head after put");
    assert_eq!((head.size, head.etag.clone()), (8, put.etag.clone()));
    assert_eq!(store.get_bytes(key).await.unwrap(), b"a,b\n1,2\n");
    assert!(matches!(
        store.get_bytes("raw/orders/none.csv").await,
        Err(PortError::NotFound { .. })
    ));
    assert!(store.head("raw/orders/none.csv").await.unwrap().is_none());

    // Ranged reads: inside, running past the end, at and past the end.
    assert_eq!(store.get_range(key, 2, 3).await.unwrap(), b"b\n1");
    assert_eq!(store.get_range(key, 5, 100).await.unwrap(), b",2\n");
    assert_eq!(store.get_range(key, 0, 8).await.unwrap(), b"a,b\n1,2\n");
    assert!(store.get_range(key, 8, 4).await.unwrap().is_empty());
    assert!(store.get_range(key, 50, 4).await.unwrap().is_empty());
    assert!(store.get_range(key, 3, 0).await.unwrap().is_empty());
    assert!(matches!(
        store.get_range("raw/orders/none.csv", 0, 4).await,
        Err(PortError::NotFound { .. })
    ));

    // A prefix ends at a slash: date=2025-12-03/ never lists date=2025-12-031.
    store
        .put_bytes("raw/orders/date=2025-12-031/x.csv", b"x".to_vec())
        .await
        .unwrap();
    let listed = store.list("raw/orders/date=2025-12-03/").await.unwrap();
    assert_eq!(
        listed.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
        [key]
    );

    // Copy replaces the destination; the content hash travels with it.
    store
        .put_bytes("cleaned/t/old.txt", b"old".to_vec())
        .await
        .unwrap();
    let copied = store.copy(key, "cleaned/t/old.txt").await.unwrap();
    assert_eq!(copied.etag, put.etag);
    assert_eq!(
        store.get_bytes("cleaned/t/old.txt").await.unwrap(),
        b"a,b\n1,2\n"
    );
    assert!(matches!(
        store.copy("raw/none", "cleaned/t/x").await,
        Err(PortError::NotFound { .. })
    ));
    store.delete("cleaned/t/old.txt").await.unwrap();
    assert!(store.head("cleaned/t/old.txt").await.unwrap().is_none());

    // Pagination: more than one page of 1,000, in key order.
    for i in 0..1005 {
        store
            .put_bytes(
                &format!("stream/s/date=2025-12-03/hour=00/{i:05}.jsonl"),
                vec![b'x'],
            )
            .await
            .unwrap();
    }
    let many = store.list("stream/s/").await.unwrap();
    assert_eq!(many.len(), 1005);
    assert!(many.windows(2).all(|w| w[0].key < w[1].key));

    // Files up and down, one large enough to go in parts on S3.
    let big: Vec<u8> = (0..17 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let up = scratch.join("big.bin");
    std::fs::write(&up, &big).unwrap();
    let meta = store.put_file("cleaned/t/big.bin", &up).await.unwrap();
    assert_eq!(meta.size, big.len() as u64);
    let down = scratch.join("down.bin");
    let got = store.get_to_file("cleaned/t/big.bin", &down).await.unwrap();
    assert_eq!(got.size, big.len() as u64);
    assert!(
        std::fs::read(&down).unwrap() == big,
        "the downloaded file differs"
    );
    // A Parquet reader's footer read: the last bytes of a multipart object.
    let tail = store
        .get_range("cleaned/t/big.bin", big.len() as u64 - 8, 8)
        .await
        .unwrap();
    assert_eq!(tail, big[big.len() - 8..]);
}

#[tokio::test]
async fn object_store_local() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsObjectStore::new(dir.path().join("bucket"), dir.path().join("tmp"));
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    object_store_contract(&store, dir.path()).await;
}

#[tokio::test]
async fn object_store_s3_on_moto() {
    let moto = moto();
    let config = sdk_config(&moto).await;
    let store = S3ObjectStore::new(&config, "tributary-contract", true);
    store.ensure_bucket().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    object_store_contract(&store, dir.path()).await;
}

/// Objects above CopyObject's 5 GiB are copied in UploadPartCopy ranges;
/// here with small limits, on moto: a 12 MiB object in three parts, byte for
/// byte. (Its ETag is then a multipart ETag, as S3's own would be, so the
/// contract's "the content hash travels with a copy" holds below the limit
/// only.)
#[tokio::test]
async fn object_store_s3_copies_in_parts_on_moto() {
    let moto = moto();
    let config = sdk_config(&moto).await;
    let store = S3ObjectStore::new(&config, "tributary-copy-parts", true)
        .with_copy_parts(1, 5 * 1024 * 1024);
    store.ensure_bucket().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    store
        .put_bytes("cleaned/t/date=2025-12-03/_staging/big.bin", big.clone())
        .await
        .unwrap();
    let copied = store
        .copy(
            "cleaned/t/date=2025-12-03/_staging/big.bin",
            "cleaned/t/date=2025-12-03/run=r1/big.bin",
        )
        .await
        .unwrap();
    assert_eq!(copied.size, big.len() as u64);
    let down = dir.path().join("copied.bin");
    store
        .get_to_file("cleaned/t/date=2025-12-03/run=r1/big.bin", &down)
        .await
        .unwrap();
    assert!(std::fs::read(&down).unwrap() == big, "the copy differs");
    let missing = store.copy("cleaned/t/none.bin", "cleaned/t/x.bin").await;
    assert!(
        matches!(missing, Err(PortError::NotFound { .. })),
        "{missing:?}"
    );
}

// ---------------------------------------------------------------- state

async fn state_store_contract(store: Arc<dyn StateStore>) {
    let v1 = store
        .put(
            "p#1",
            "a",
            serde_json::json!({"n": 1}),
            Condition::NotExists,
        )
        .await
        .unwrap();
    assert_eq!(v1, 1);
    assert!(matches!(
        store
            .put(
                "p#1",
                "a",
                serde_json::json!({"n": 9}),
                Condition::NotExists
            )
            .await,
        Err(PortError::ConditionFailed { .. })
    ));
    assert!(matches!(
        store
            .put(
                "p#1",
                "a",
                serde_json::json!({"n": 9}),
                Condition::VersionIs(7)
            )
            .await,
        Err(PortError::ConditionFailed { .. })
    ));
    let v2 = store
        .put(
            "p#1",
            "a",
            serde_json::json!({"n": 2}),
            Condition::VersionIs(1),
        )
        .await
        .unwrap();
    assert_eq!(v2, 2);
    assert_eq!(
        store
            .put("p#1", "a", serde_json::json!({"n": 3}), Condition::Always)
            .await
            .unwrap(),
        3
    );
    let got = store.get("p#1", "a").await.unwrap().unwrap();
    assert_eq!((got.value["n"].as_i64(), got.version), (Some(3), 3));
    assert!(store.get("p#1", "zz").await.unwrap().is_none());

    // Query: every item of the key, in sort-key order.
    for sk in ["c", "b#2", "b#10"] {
        store
            .put("p#1", sk, serde_json::json!({}), Condition::Always)
            .await
            .unwrap();
    }
    let keys: Vec<String> = store
        .query("p#1")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["a", "b#10", "b#2", "c"]);

    // Delete only when the version still matches.
    assert!(matches!(
        store.delete("p#1", "a", Condition::VersionIs(1)).await,
        Err(PortError::ConditionFailed { .. })
    ));
    store
        .delete("p#1", "a", Condition::VersionIs(3))
        .await
        .unwrap();
    assert!(store.get("p#1", "a").await.unwrap().is_none());

    // Two writers race on the same version: exactly one wins.
    store
        .put(
            "race",
            "x",
            serde_json::json!({"w": 0}),
            Condition::NotExists,
        )
        .await
        .unwrap();
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .put(
                        "race",
                        "x",
                        serde_json::json!({"w": w}),
                        Condition::VersionIs(1),
                    )
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for w in writers {
        match w.await.unwrap() {
            Ok(2) => wins += 1,
            Err(PortError::ConditionFailed { .. }) => {}
            other => panic!("unexpected outcome of a race: {other:?}"),
        }
    }
    assert_eq!(wins, 1);

    // Transactions: all or nothing, across partition keys.
    let put = |pk: &str, sk: &str, n: i64, condition| TransactWrite {
        pk: pk.into(),
        sk: sk.into(),
        value: Some(serde_json::json!({ "n": n })),
        condition,
    };
    store
        .transact(vec![
            put("t#1", "a", 1, Condition::NotExists),
            put("t#2", "b", 1, Condition::NotExists),
        ])
        .await
        .unwrap();
    let refused = store
        .transact(vec![
            put("t#1", "a", 2, Condition::VersionIs(1)),
            put("t#2", "b", 2, Condition::VersionIs(5)), // fails
            TransactWrite {
                pk: "t#1".into(),
                sk: "c".into(),
                value: None,
                condition: Condition::Always,
            },
        ])
        .await;
    match refused {
        Err(PortError::ConditionFailed { what, .. }) => assert_eq!(what, "t#2/b"),
        other => panic!("expected the second write's condition to fail: {other:?}"),
    }
    let a = store.get("t#1", "a").await.unwrap().unwrap();
    assert_eq!(
        (a.value["n"].as_i64(), a.version),
        (Some(1), 1),
        "nothing written"
    );
    store
        .transact(vec![
            put("t#1", "a", 2, Condition::VersionIs(1)),
            TransactWrite {
                pk: "t#2".into(),
                sk: "b".into(),
                value: None,
                condition: Condition::VersionIs(1),
            },
        ])
        .await
        .unwrap();
    let a = store.get("t#1", "a").await.unwrap().unwrap();
    assert_eq!((a.value["n"].as_i64(), a.version), (Some(2), 2));
    assert!(store.get("t#2", "b").await.unwrap().is_none());
    // Refused before anything is sent: an item twice, or nothing at all.
    for bad in [
        vec![
            put("t#1", "a", 3, Condition::Always),
            put("t#1", "a", 4, Condition::Always),
        ],
        vec![],
    ] {
        assert!(matches!(
            store.transact(bad).await,
            Err(PortError::Permanent { .. })
        ));
    }
    // Two transactions race on one version: exactly one applies whole.
    let racers: Vec<_> = (0..2)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .transact(vec![
                        TransactWrite {
                            pk: "t#1".into(),
                            sk: "a".into(),
                            value: Some(serde_json::json!({ "w": w })),
                            condition: Condition::VersionIs(2),
                        },
                        TransactWrite {
                            pk: "t#3".into(),
                            sk: format!("by-{w}"),
                            value: Some(serde_json::json!({})),
                            condition: Condition::NotExists,
                        },
                    ])
                    .await
            })
        })
        .collect();
    let mut applied = Vec::new();
    for (w, r) in racers.into_iter().enumerate() {
        match r.await.unwrap() {
            Ok(()) => applied.push(w),
            // Lost the condition, or (DynamoDB) a conflict with the other one.
            Err(PortError::ConditionFailed { .. }) | Err(PortError::Transient { .. }) => {}
            Err(e) => panic!("unexpected outcome of a racing transaction: {e:?}"),
        }
    }
    assert_eq!(applied.len(), 1, "exactly one transaction applies");
    let side: Vec<String> = store
        .query("t#3")
        .await
        .unwrap()
        .into_iter()
        .map(|(sk, _)| sk)
        .collect();
    assert_eq!(
        side,
        [format!("by-{}", applied[0])],
        "the loser wrote nothing"
    );

    // A watermark never moves backwards, whoever tries.
    let d = |s: &str| tributary_core::layout::parse_date(s).unwrap();
    tributary_core::state::advance_watermark(store.as_ref(), "p", d("2025-12-05"))
        .await
        .unwrap();
    tributary_core::state::advance_watermark(store.as_ref(), "p", d("2025-12-03"))
        .await
        .unwrap();
    let w = tributary_core::state::watermark(store.as_ref(), "p")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w.date, d("2025-12-05"));

    // Concurrent writers (tasks on a multi-thread runtime: separate threads,
    // and for DynamoDB separate requests in flight): the larger value wins
    // and a reader never sees the watermark move backwards.
    let dates: Vec<_> = [7, 3, 9, 1, 8, 2, 6, 4, 5, 10, 12, 11]
        .iter()
        .map(|day| d(&format!("2025-11-{day:02}")))
        .collect();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if let Some(w) = tributary_core::state::watermark(store.as_ref(), "race")
                    .await
                    .unwrap()
                {
                    seen.push(w.date);
                }
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    let writers: Vec<_> = dates
        .iter()
        .map(|date| {
            let (store, date) = (store.clone(), *date);
            tokio::spawn(async move {
                tributary_core::state::advance_watermark(store.as_ref(), "race", date)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap();
    assert!(
        seen.windows(2).all(|p| p[0] <= p[1]),
        "the watermark moved backwards: {seen:?}"
    );
    let w = tributary_core::state::watermark(store.as_ref(), "race")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w.date, d("2025-11-12"), "the largest value wins");

    // Put-if-absent claims with a TTL: held, then expired and reclaimed.
    let claim_on = |pk: &str, id: &str, by: &str, expires: i64| {
        (
            pk.to_string(),
            id.to_string(),
            serde_json::json!({"by": by, "expires_at": expires}),
        )
    };
    let claim = |by: &str, expires: i64| claim_on("d#s", "e1", by, expires);
    let first = store
        .put_new_items(vec![claim("r1", 1000), claim("r2", 1000)], 500)
        .await
        .unwrap();
    assert_eq!(first[0], None);
    assert_eq!(first[1].as_ref().unwrap()["by"], "r1");
    let later = store
        .put_new_items(vec![claim("r3", 3000)], 2000)
        .await
        .unwrap();
    assert_eq!(later[0], None, "an expired claim counts as absent");
    assert_eq!(
        store.get("d#s", "e1").await.unwrap().unwrap().value["by"],
        "r3"
    );
    // One call across partition keys, more than one request's worth (the
    // DynamoDB adapter reads and writes 100 at a time), some already held.
    let batch: Vec<_> = (0..150)
        .map(|i| claim_on(&format!("d#s#{:02}", i % 7), &format!("b{i}"), "r4", 9000))
        .chain([claim_on("d#s", "e1", "r4", 9000)])
        .collect();
    let held = store.put_new_items(batch, 2000).await.unwrap();
    assert_eq!(held.len(), 151);
    assert!(held[..150].iter().all(Option::is_none), "{held:?}");
    assert_eq!(held[150].as_ref().unwrap()["by"], "r3");
    assert_eq!(
        store.get("d#s#03", "b3").await.unwrap().unwrap().value["by"],
        "r4"
    );
    let again = store
        .put_new_items(vec![claim_on("d#s#03", "b3", "r5", 9000)], 2000)
        .await
        .unwrap();
    assert_eq!(again[0].as_ref().unwrap()["by"], "r4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_store_local() {
    let dir = tempfile::tempdir().unwrap();
    state_store_contract(Arc::new(FileStateStore::new(dir.path().to_path_buf()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_store_dynamodb_on_moto() {
    let moto = moto();
    let config = sdk_config(&moto).await;
    let store = DynamoStateStore::new(&config, "tributary-contract");
    store.ensure_table().await.unwrap();
    state_store_contract(Arc::new(store)).await;
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(bytes))
}

// ---------------------------------------------------------------- catalog

async fn catalog_contract(catalog: &dyn tributary_core::ports::Catalog) {
    use tributary_core::ports::CatalogPartition;
    let d = |s: &str| tributary_core::layout::parse_date(s).unwrap();
    let part = |date: &str, run: &str| CatalogPartition {
        table: "orders".into(),
        date: d(date),
        location: format!("cleaned/orders/date={date}/run={run}/"),
    };
    assert!(catalog
        .get_partition("orders", d("2025-12-03"))
        .await
        .unwrap()
        .is_none());
    catalog
        .put_partition(part("2025-12-03", "r1"))
        .await
        .unwrap();
    // Publishing again switches the location (UpdatePartition).
    catalog
        .put_partition(part("2025-12-03", "r2"))
        .await
        .unwrap();
    assert_eq!(
        catalog
            .get_partition("orders", d("2025-12-03"))
            .await
            .unwrap(),
        Some(part("2025-12-03", "r2"))
    );
    catalog
        .put_partition(part("2025-12-01", "r1"))
        .await
        .unwrap();
    let all = catalog.list_partitions("orders").await.unwrap();
    assert_eq!(all, [part("2025-12-01", "r1"), part("2025-12-03", "r2")]);
    catalog
        .delete_partition("orders", d("2025-12-01"))
        .await
        .unwrap();
    catalog
        .delete_partition("orders", d("2025-12-01"))
        .await
        .unwrap();
    assert_eq!(catalog.list_partitions("orders").await.unwrap().len(), 1);

    // Many at once (more than one Glue batch and one GetPartitions page),
    // one of them already registered: it is switched, not duplicated.
    let start = d("2024-01-01");
    let many: Vec<CatalogPartition> = (0..250)
        .map(|i| {
            let date = (start + chrono::Days::new(i)).to_string();
            part(&date, "bulk")
        })
        .chain(std::iter::once(part("2025-12-03", "r3")))
        .collect();
    catalog.put_partitions(many.clone()).await.unwrap();
    let all = catalog.list_partitions("orders").await.unwrap();
    assert_eq!(all.len(), 251);
    assert!(all.windows(2).all(|w| w[0].date < w[1].date));
    assert_eq!(all.last(), Some(&part("2025-12-03", "r3")));
    assert_eq!(all[0], part("2024-01-01", "bulk"));
}

#[tokio::test]
async fn catalog_local() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = tributary_local::FileCatalog::new(FileStateStore::new(dir.path().to_path_buf()));
    catalog_contract(&catalog).await;
}

#[tokio::test]
async fn catalog_glue_on_moto() {
    let moto = moto();
    let config = sdk_config(&moto).await;
    let catalog = tributary_aws::GlueCatalog::new(&config, "tributary", "data-bucket");
    catalog
        .ensure_table(&tributary_core::table_schema::TableDefinition {
            name: "orders".into(),
            layer: tributary_core::layout::Layer::Cleaned,
            format: tributary_core::table_schema::TableFormat::Parquet,
            columns: vec![("id".into(), "string")],
        })
        .await
        .unwrap();
    catalog_contract(&catalog).await;
    // A table that was never created: a permanent error that says what to do.
    let missing = catalog
        .put_partition(tributary_core::ports::CatalogPartition {
            table: "nope".into(),
            date: tributary_core::layout::parse_date("2025-12-03").unwrap(),
            location: "cleaned/nope/".into(),
        })
        .await
        .unwrap_err();
    assert!(!missing.retryable());
    assert!(missing.to_string().contains("infra/"), "{missing}");
}

// ---------------------------------------------------------------- workflows

async fn workflow_contract(starter: &dyn tributary_core::ports::WorkflowStarter) {
    use tributary_core::ports::Workflow::PartitionPipeline;
    let input = serde_json::json!({"pipeline": "p", "date": "2025-12-03"});
    assert!(starter
        .start(PartitionPipeline, "p-2025-12-03-abc", input.clone())
        .await
        .unwrap());
    // The same name again (a duplicated S3 event): no second execution.
    assert!(!starter
        .start(PartitionPipeline, "p-2025-12-03-abc", input.clone())
        .await
        .unwrap());
    assert!(starter
        .start(PartitionPipeline, "p-2025-12-04-abc", input)
        .await
        .unwrap());
}

#[tokio::test]
async fn workflows_local() {
    let dir = tempfile::tempdir().unwrap();
    let starter =
        tributary_local::QueuedWorkflows::new(FileStateStore::new(dir.path().to_path_buf()));
    workflow_contract(&starter).await;
    assert_eq!(starter.drain().len(), 2);
}

#[tokio::test]
async fn workflows_step_functions_on_moto() {
    let moto = moto();
    let config = sdk_config(&moto).await;
    let sfn = aws_sdk_sfn::Client::new(&config);
    let machine = sfn
        .create_state_machine()
        .name("partition_pipeline")
        .definition(r#"{"StartAt":"Done","States":{"Done":{"Type":"Succeed"}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/tributary-sfn")
        .send()
        .await
        .unwrap();
    let features = sfn
        .create_state_machine()
        .name("feature_pipeline")
        .definition(r#"{"StartAt":"Done","States":{"Done":{"Type":"Succeed"}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/tributary-sfn")
        .send()
        .await
        .unwrap();
    use tributary_core::ports::Workflow;
    let starter = tributary_aws::SfnWorkflows::new(&config, machine.state_machine_arn())
        .with_machine(Workflow::FeaturePipeline, features.state_machine_arn());
    workflow_contract(&starter).await;
    let executions = |arn: String| {
        let sfn = sfn.clone();
        async move {
            let listed = sfn
                .list_executions()
                .state_machine_arn(arn)
                .send()
                .await
                .unwrap();
            listed.executions().len()
        }
    };
    assert_eq!(executions(machine.state_machine_arn().to_string()).await, 2);
    // Each workflow starts on its own machine.
    assert!(starter
        .start(
            Workflow::FeaturePipeline,
            "shop-2025-12-03-r1",
            serde_json::json!({})
        )
        .await
        .unwrap());
    assert_eq!(
        executions(features.state_machine_arn().to_string()).await,
        1
    );
    // A machine this process was given no ARN for is refused, naming the
    // variable that is missing.
    let unset = starter
        .start(Workflow::Labeling, "l-2025-12-03", serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(!unset.retryable());
    assert!(
        unset
            .to_string()
            .contains("TRIBUTARY_LABELING_STATE_MACHINE_ARN"),
        "{unset}"
    );
    // A name Step Functions would refuse is caught before the call.
    let bad = starter
        .start(
            Workflow::PartitionPipeline,
            &"x".repeat(81),
            serde_json::json!({}),
        )
        .await
        .unwrap_err();
    assert!(!bad.retryable());
}

/// A task token waited on, beaten, answered: SendTaskHeartbeat keeps the
/// wait alive, SendTaskSuccess ends it, and a spent token is refused with
/// an error that says so and is not worth retrying.
#[tokio::test]
async fn task_callbacks_on_step_functions_on_moto() {
    use tributary_core::ports::{TaskAnswer, TaskCallbacks};
    let moto = moto();
    moto.execute_state_machines().unwrap();
    moto.create_lambda_functions(&["tributary-request-approval".to_string()])
        .unwrap();
    moto.queue_lambda_results(&[serde_json::json!({})]).unwrap();
    let config = sdk_config(&moto).await;
    let sfn = aws_sdk_sfn::Client::new(&config);
    let definition = serde_json::json!({
        "StartAt": "Wait",
        "States": {"Wait": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {
                "FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:tributary-request-approval",
                "Payload": {"token.$": "$$.Task.Token"}
            },
            "TimeoutSeconds": 300,
            "HeartbeatSeconds": 60,
            "End": true
        }}
    });
    let machine = sfn
        .create_state_machine()
        .name("callbacks")
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/tributary-sfn")
        .send()
        .await
        .unwrap();
    let arn = sfn
        .start_execution()
        .state_machine_arn(machine.state_machine_arn())
        .input("{}")
        .send()
        .await
        .unwrap()
        .execution_arn()
        .to_string();
    let callbacks = tributary_aws::SfnCallbacks::new(&config);
    // The token travels in the scheduled task's parameters; moto registers
    // it a moment after scheduling.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let token = loop {
        let history = sfn
            .get_execution_history()
            .execution_arn(&arn)
            .send()
            .await
            .unwrap();
        let token = history.events().iter().find_map(|e| {
            let params: serde_json::Value =
                serde_json::from_str(e.task_scheduled_event_details()?.parameters()).ok()?;
            params["Payload"]["token"].as_str().map(str::to_string)
        });
        if let Some(token) = token {
            if callbacks
                .answer(&token, TaskAnswer::Heartbeat)
                .await
                .is_ok()
            {
                break token;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no live task token");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    callbacks
        .answer(&token, TaskAnswer::Heartbeat)
        .await
        .expect("a second heartbeat");
    callbacks
        .answer(&token, TaskAnswer::Success(serde_json::json!({"ok": true})))
        .await
        .unwrap();
    let status = loop {
        let d = sfn
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await
            .unwrap();
        if d.status().as_str() != "RUNNING" {
            break d.status().as_str().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "still running");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(status, "SUCCEEDED");
    let spent = callbacks
        .answer(&token, TaskAnswer::Heartbeat)
        .await
        .unwrap_err();
    assert!(!spent.retryable());
    assert!(spent.to_string().contains("no longer valid"), "{spent}");
}

// ---------------------------------------------------------------- streams

/// 1,200 records (more than two PutRecords calls) under 60 partition keys
/// on a stream of two shards.
async fn stream_producer_contract(producer: &dyn StreamProducer) -> Vec<StreamRecord> {
    let records: Vec<(String, Vec<u8>)> = (0..1200)
        .map(|i| {
            (
                format!("user-{}", i % 60),
                format!("{{\"n\":{i}}}").into_bytes(),
            )
        })
        .collect();
    let put = producer.put_records(records.clone()).await.unwrap();
    assert_eq!(put.len(), records.len());
    // In input order, as sent.
    for (placed, (key, data)) in put.iter().zip(&records) {
        assert_eq!((&placed.partition_key, &placed.data), (key, data));
    }
    // A key always lands on the same shard, and both shards are used.
    let mut shard_of_key = std::collections::BTreeMap::new();
    for r in &put {
        let shard = shard_of_key
            .entry(r.partition_key.clone())
            .or_insert_with(|| r.shard_id.clone());
        assert_eq!(shard, &r.shard_id, "{}", r.partition_key);
    }
    let shards: std::collections::BTreeSet<_> = shard_of_key.values().collect();
    assert_eq!(shards.len(), 2, "{shards:?}");
    // Per shard, sequence numbers are decimal and increase in put order.
    let mut last: std::collections::BTreeMap<&str, &str> = Default::default();
    for r in &put {
        assert!(
            r.sequence_number.bytes().all(|b| b.is_ascii_digit()),
            "{}",
            r.sequence_number
        );
        if let Some(previous) = last.insert(&r.shard_id, &r.sequence_number) {
            assert_eq!(
                sequence_cmp(previous, &r.sequence_number),
                std::cmp::Ordering::Less
            );
        }
    }
    // Records Kinesis would refuse fail the call before anything is sent,
    // naming the record, and a retry cannot help.
    for (bad, expected) in [
        (
            vec![
                ("k".to_string(), b"ok".to_vec()),
                (String::new(), b"x".to_vec()),
            ],
            "record 1",
        ),
        (
            vec![("k".to_string(), vec![0u8; 1 << 20])],
            "at most 1048576",
        ),
    ] {
        let err = producer.put_records(bad).await.unwrap_err();
        assert!(!err.retryable(), "{err}");
        assert!(err.to_string().contains(expected), "{err}");
    }
    put
}

#[tokio::test]
async fn stream_producer_local() {
    let dir = tempfile::tempdir().unwrap();
    let state = FileStateStore::new(dir.path().to_path_buf());
    stream_producer_contract(&KinesisStandIn::new("orders", 2, &state)).await;
}

#[tokio::test]
async fn stream_producer_kinesis_on_moto() {
    let moto = moto();
    let config = sdk_config(&moto).await;
    let producer = KinesisProducer::new(&config, "orders");
    producer.ensure_stream(2).await.unwrap();
    let put = stream_producer_contract(&producer).await;
    // Read back from the oldest record: exactly what was put, each shard
    // in sequence order (the refused calls added nothing).
    let read = producer.read_all().await.unwrap();
    let key = |r: &StreamRecord| {
        (
            r.shard_id.clone(),
            r.sequence_number.clone(),
            r.partition_key.clone(),
            r.data.clone(),
        )
    };
    let mut expected: Vec<_> = put.iter().map(key).collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| sequence_cmp(&a.1, &b.1)));
    assert_eq!(read.iter().map(key).collect::<Vec<_>>(), expected);
    // The stand-in places every partition key on the shard Kinesis does.
    let dir = tempfile::tempdir().unwrap();
    let state = FileStateStore::new(dir.path().to_path_buf());
    let stand_in = KinesisStandIn::new("orders", 2, &state);
    for r in &put {
        assert_eq!(
            shard_id(stand_in.shard_of(&r.partition_key)),
            r.shard_id,
            "{}",
            r.partition_key
        );
    }
    // A stream that does not exist is a permanent error naming it.
    let missing = KinesisProducer::new(&config, "nope")
        .put_records(vec![("k".into(), b"x".to_vec())])
        .await
        .unwrap_err();
    assert!(!missing.retryable(), "{missing}");
    assert!(
        missing.to_string().contains("Kinesis stream nope"),
        "{missing}"
    );
}

// ---------------------------------------------------------------- notifier

#[tokio::test]
async fn notifications_on_sns_on_moto() {
    let moto = moto();
    let config = sdk_config(&moto).await;
    let sns = aws_sdk_sns::Client::new(&config);
    let topic = sns
        .create_topic()
        .name("tributary-alerts")
        .send()
        .await
        .unwrap();
    let topics = std::collections::BTreeMap::from([(
        "alerts".to_string(),
        topic.topic_arn().unwrap().to_string(),
    )]);
    let notifier = tributary_aws::SnsNotifier::new(&config, topics);
    use tributary_core::ports::Notifier;
    let id = notifier
        .notify("alerts", &format!("deviation {}", "!".repeat(200)), "body")
        .await
        .unwrap();
    assert!(!id.is_empty());
    let unknown = notifier.notify("approvals", "s", "m").await.unwrap_err();
    assert!(
        unknown.to_string().contains("TRIBUTARY_TOPIC_ARN"),
        "{unknown}"
    );
}

// ---------------------------------------------------------------- wiring

/// A cold start on emulated AWS: the adapters are wired from the
/// environment Terraform sets, the signing key read from Secrets Manager.
#[tokio::test]
async fn wiring_reads_the_approval_secret_from_secrets_manager_on_moto() {
    let moto = moto();
    let config = sdk_config(&moto).await;
    let secret = aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name("tributary-approval-signing")
        .secret_string("a-long-random-key")
        .send()
        .await
        .unwrap();
    let arn = secret.arn().unwrap().to_string();
    // The SDK's default credential chain reads these from the process
    // (each test runs in its own process under nextest).
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    let environment = |secret_arn: String| {
        let url = moto.url.clone();
        move |name: &str| -> Option<String> {
            Some(match name {
                "AWS_ENDPOINT_URL" => url.clone(),
                "AWS_REGION" => "us-east-1".into(),
                "TRIBUTARY_APPROVAL_SECRET_ARN" => secret_arn.clone(),
                "TRIBUTARY_APPROVAL_BASE_URL" => return None,
                other if other.starts_with("TRIBUTARY_") => format!("value-of-{other}"),
                _ => return None,
            })
        }
    };
    let adapters = tributary_aws::AwsAdapters::from_env(environment(arn))
        .await
        .unwrap();
    assert_eq!(adapters.approval_secret, b"a-long-random-key");
    assert!(adapters.approval_base_url.is_empty());
    // A secret that is not there fails the cold start, naming it.
    let Err(e) = tributary_aws::AwsAdapters::from_env(environment(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone".into(),
    ))
    .await
    else {
        panic!("wired without its secret");
    };
    let message = e.to_string();
    assert!(message.contains("secret:gone"), "{message}");
}

/// Approval requests and alerts reach their own topics when Terraform
/// deploys two: with only the alerts topic there, alerts are published and
/// approval requests fail naming the approvals topic.
#[tokio::test]
async fn alerts_and_approval_requests_go_to_their_own_topics_on_moto() {
    let moto = moto();
    let config = sdk_config(&moto).await;
    let alerts = aws_sdk_sns::Client::new(&config)
        .create_topic()
        .name("tributary-alerts")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();
    let approvals = alerts.replace("tributary-alerts", "tributary-approvals");
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    let url = moto.url.clone();
    let environment = move |name: &str| -> Option<String> {
        Some(match name {
            "AWS_ENDPOINT_URL" => url.clone(),
            "AWS_REGION" => "us-east-1".into(),
            "TRIBUTARY_TOPIC_ARN" => approvals.clone(),
            "TRIBUTARY_ALERTS_TOPIC_ARN" => alerts.clone(),
            "TRIBUTARY_APPROVAL_SECRET_ARN" | "TRIBUTARY_APPROVAL_BASE_URL" => return None,
            other if other.starts_with("TRIBUTARY_") => format!("value-of-{other}"),
            _ => return None,
        })
    };
    let adapters = tributary_aws::AwsAdapters::from_env(environment)
        .await
        .unwrap();
    use tributary_core::ports::Notifier;
    let sent = adapters
        .notifier
        .notify("alerts", "a run failed", "body")
        .await;
    assert!(sent.is_ok(), "{sent:?}");
    let refused = adapters
        .notifier
        .notify("approvals", "approve?", "body")
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("tributary-approvals"),
        "{refused}"
    );
}

// ---------------------------------------------------------------- consumers

/// A consumer's mapping starts disabled (as Terraform creates the
/// inference consumer's), is switched both ways, and says so.
async fn consumer_switch_contract(switch: &dyn ConsumerSwitch) {
    assert_eq!(
        switch.enabled("click-inference").await.unwrap(),
        Some(false)
    );
    switch.set_enabled("click-inference", true).await.unwrap();
    assert_eq!(switch.enabled("click-inference").await.unwrap(), Some(true));
    // Switching to where it is already is no error.
    switch.set_enabled("click-inference", true).await.unwrap();
    switch.set_enabled("click-inference", false).await.unwrap();
    assert_eq!(
        switch.enabled("click-inference").await.unwrap(),
        Some(false)
    );
}

#[tokio::test]
async fn consumer_switch_local() {
    let dir = tempfile::tempdir().unwrap();
    let switch =
        tributary_local::StateConsumerSwitch::new(FileStateStore::new(dir.path().to_path_buf()));
    consumer_switch_contract(&switch).await;
}

#[tokio::test]
async fn consumer_switch_lambda_on_moto() {
    let moto = moto();
    let config = sdk_config(&moto).await;
    let clicks = KinesisProducer::new(&config, "tributary-clicks");
    clicks.ensure_stream(1).await.unwrap();
    let functions = [
        "tributary-click-inference".to_string(),
        "tributary-other".to_string(),
    ];
    moto.create_lambda_functions(&functions).unwrap();
    moto.create_event_source_mapping(
        "tributary-click-inference",
        "arn:aws:kinesis:us-east-1:123456789012:stream/tributary-clicks",
        false,
    )
    .unwrap();
    // The other function's mapping on the same stream is left alone.
    moto.create_event_source_mapping(
        "tributary-other",
        "arn:aws:kinesis:us-east-1:123456789012:stream/tributary-clicks",
        true,
    )
    .unwrap();
    let switch = tributary_aws::LambdaConsumerSwitch::new(&config)
        .with_function("click-inference", "tributary-click-inference");
    consumer_switch_contract(&switch).await;
    let other = tributary_aws::LambdaConsumerSwitch::new(&config)
        .with_function("click-inference", "tributary-other");
    assert_eq!(other.enabled("click-inference").await.unwrap(), Some(true));

    // A function that was not told the consumer's name fails clearly, and
    // a function without a mapping is not found.
    let untold = tributary_aws::LambdaConsumerSwitch::new(&config);
    let refused = untold
        .set_enabled("click-inference", false)
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("TRIBUTARY_CLICK_INFERENCE_FUNCTION is not set"),
        "{refused}"
    );
    assert_eq!(untold.enabled("click-inference").await.unwrap(), None);
    let unmapped = tributary_aws::LambdaConsumerSwitch::new(&config)
        .with_function("click-inference", "tributary-nothing");
    assert!(matches!(
        unmapped.set_enabled("click-inference", true).await,
        Err(PortError::NotFound { .. })
    ));
}
