use super::*;
use tributary_core::ports::{
    Catalog, CatalogPartition, Condition, ObjectStore, PortError, StateStore,
};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn object_store_round_trip_list_and_etag() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::new(dir.path());
    let s = ws.object_store();
    rt().block_on(async {
        let m = s
            .put_bytes("raw/a/date=2025-01-01/x y.csv", b"hello".to_vec())
            .await
            .unwrap();
        assert_eq!(m.etag, "5d41402abc4b2a76b9719d911017c592"); // md5("hello"), as S3 reports it
        s.put_bytes("raw/a/date=2025-01-02/z.csv", b"z".to_vec())
            .await
            .unwrap();
        s.put_bytes("raw/ab/date=2025-01-01/q.csv", b"q".to_vec())
            .await
            .unwrap();
        let listed: Vec<String> = s
            .list("raw/a/")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert_eq!(
            listed,
            vec![
                "raw/a/date=2025-01-01/x y.csv",
                "raw/a/date=2025-01-02/z.csv"
            ]
        );
        assert_eq!(
            s.list("raw/a").await.unwrap().len(),
            3,
            "a bare prefix matches like S3"
        );
        assert_eq!(
            s.get_bytes("raw/a/date=2025-01-01/x y.csv").await.unwrap(),
            b"hello"
        );
        let copied = s
            .copy("raw/a/date=2025-01-02/z.csv", "cleaned/a/z")
            .await
            .unwrap();
        assert_eq!(
            copied.etag,
            s.head("raw/a/date=2025-01-02/z.csv")
                .await
                .unwrap()
                .unwrap()
                .etag
        );
        s.delete("raw/a/date=2025-01-02/z.csv").await.unwrap();
        s.delete("raw/a/date=2025-01-02/z.csv").await.unwrap(); // idempotent, like S3
        assert!(s
            .head("raw/a/date=2025-01-02/z.csv")
            .await
            .unwrap()
            .is_none());
        assert!(matches!(
            s.get_bytes("nope").await,
            Err(PortError::NotFound { .. })
        ));
        for bad in ["../x", "a//b", "/abs", "a/./b"] {
            assert!(s.put_bytes(bad, vec![]).await.is_err(), "{bad}");
        }
        // A stale sidecar (file replaced behind the store's back) is not trusted.
        std::fs::write(ws.bucket().join("cleaned/a/z"), b"changed!").unwrap();
        let m = s.head("cleaned/a/z").await.unwrap().unwrap();
        assert_eq!(m.size, 8);
        assert_ne!(m.etag, copied.etag);
    });
}

#[test]
fn conditional_writes_follow_dynamodb_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let s = Workspace::new(dir.path()).state_store();
    rt().block_on(async {
        let v1 = s
            .put("p", "a", serde_json::json!(1), Condition::NotExists)
            .await
            .unwrap();
        assert_eq!(v1, 1);
        assert!(matches!(
            s.put("p", "a", serde_json::json!(2), Condition::NotExists)
                .await,
            Err(PortError::ConditionFailed { .. })
        ));
        assert!(matches!(
            s.put("p", "a", serde_json::json!(2), Condition::VersionIs(7))
                .await,
            Err(PortError::ConditionFailed { .. })
        ));
        assert_eq!(
            s.put("p", "a", serde_json::json!(2), Condition::VersionIs(1))
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            s.get("p", "a").await.unwrap().unwrap().value,
            serde_json::json!(2)
        );
        s.put("p", "b", serde_json::json!("x"), Condition::Always)
            .await
            .unwrap();
        let q: Vec<String> = s
            .query("p")
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(q, vec!["a", "b"]);
        s.delete("p", "a", Condition::Always).await.unwrap();
        assert!(s.get("p", "a").await.unwrap().is_none());
        // Survives a restart: a new store instance on the same folder.
        let again = Workspace::new(dir.path()).state_store();
        assert_eq!(again.get("p", "b").await.unwrap().unwrap().version, 1);
    });
}

#[test]
fn concurrent_writers_never_lose_an_update() {
    // Separate store instances open separate lock-file descriptions, as
    // separate processes would.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let root = root.clone();
            std::thread::spawn(move || {
                let s = Workspace::new(&root).state_store();
                rt().block_on(async {
                    for _ in 0..25 {
                        loop {
                            let cur = s.get("counter", "n").await.unwrap();
                            let (n, cond) = match cur {
                                Some(v) => {
                                    (v.value.as_u64().unwrap(), Condition::VersionIs(v.version))
                                }
                                None => (0, Condition::NotExists),
                            };
                            match s.put("counter", "n", serde_json::json!(n + 1), cond).await {
                                Ok(_) => break,
                                Err(PortError::ConditionFailed { .. }) => continue,
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                });
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let s = Workspace::new(&root).state_store();
    let v = rt().block_on(s.get("counter", "n")).unwrap().unwrap();
    assert_eq!(v.value, serde_json::json!(100));
    assert_eq!(v.version, 100);
}

#[test]
fn catalog_switches_locations() {
    let dir = tempfile::tempdir().unwrap();
    let c = Workspace::new(dir.path()).catalog_store();
    let date = chrono::NaiveDate::from_ymd_opt(2025, 1, 2).unwrap();
    rt().block_on(async {
        for loc in [
            "cleaned/t/date=2025-01-02/run=a/",
            "cleaned/t/date=2025-01-02/run=b/",
        ] {
            c.put_partition(CatalogPartition {
                table: "t".into(),
                date,
                location: loc.into(),
            })
            .await
            .unwrap();
        }
        let p = c.get_partition("t", date).await.unwrap().unwrap();
        assert_eq!(p.location, "cleaned/t/date=2025-01-02/run=b/");
        assert_eq!(c.list_partitions("t").await.unwrap().len(), 1);
        c.delete_partition("t", date).await.unwrap();
        assert!(c.get_partition("t", date).await.unwrap().is_none());
    });
}

#[test]
fn workflow_starts_are_idempotent_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let w = QueuedWorkflows::new(Workspace::new(dir.path()).state_store());
    use tributary_core::ports::{Workflow, WorkflowStarter};
    let start = |name| w.start(Workflow::PartitionPipeline, name, serde_json::json!({}));
    rt().block_on(async {
        assert!(start("p-2025-01-01-abc").await.unwrap());
        assert!(!start("p-2025-01-01-abc").await.unwrap());
    });
    let queued = w.drain();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].workflow, Workflow::PartitionPipeline);
    assert!(w.drain().is_empty());
}

/// A function's ports refuse what its grant leaves out, at compile time
/// (a Lambda binary) and at run time (the CLI's `invoke`) alike, and say
/// where the grant is declared.
#[test]
fn ungranted_ports_refuse_and_say_where_to_grant_them() {
    let dir = tempfile::tempdir().unwrap();
    let adapters = Workspace::new(dir.path()).adapters();
    let config = Config::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samplelocal/pipeline.toml"),
    )
    .unwrap();
    let at_compile_time = adapters.granted_services::<{ Ports::STATE.bits() }>(&config);
    let at_run_time = adapters.services(&config).granted(Ports::STATE);
    rt().block_on(async {
        for svc in [at_compile_time, at_run_time] {
            svc.state
                .put("p", "s", serde_json::json!({}), Condition::Always)
                .await
                .unwrap();
            let err = svc.objects.get_bytes("raw/a.csv").await.unwrap_err();
            assert!(!err.retryable());
            let message = format!("{err}");
            assert!(message.contains("get raw/a.csv on OBJECTS"), "{message}");
            assert!(
                message.contains("tributary_handlers::FUNCTIONS"),
                "{message}"
            );
            let err = svc
                .notifier
                .notify("alerts", "run failed", "")
                .await
                .unwrap_err();
            let source = std::error::Error::source(&err).unwrap().to_string();
            assert_eq!(source, "this function is not granted the NOTIFIER port");
        }
    });
}
