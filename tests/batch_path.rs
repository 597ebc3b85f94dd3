//! The batch partition path end to end over the embedded adapters:
//! arrival → data_ready → clean → validate → publish, output modes, an
//! interrupted publish, watermarks, approval, retention.

use serde_json::json;
use tributary_core::layout::encode_event_key;
use tributary_core::ports::ObjectStore;
use tributary_core::publish::read_manifest;
use tributary_core::state::{self, PartitionState};
use tributary_core::usecases::{self, ArrivalOutcome, UseCaseError};
use tributary_e2e::{date, FailingStore, Harness};

const CONFIG: &str = r#"
[datasets.orders]
key = ["id"]
event_time = "ts"
output_mode = "OUTPUT_MODE"
quality_threshold = 0.9
[datasets.orders.retention_days]
raw = 10
cleaned = 30
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
[[datasets.orders.expectations]]
kind = "between"
column = "amount"
max = 100
mostly = 0.95

[datasets.customers]
[[datasets.customers.columns]]
name = "id"
type = "string"
required = true

[pipelines.orders_daily]
datasets = ["orders"]

[pipelines.joined]
datasets = ["orders", "customers"]
"#;

fn config(mode: &str) -> String {
    CONFIG.replace("OUTPUT_MODE", mode)
}

fn csv(rows: &[(&str, f64, &str)]) -> Vec<u8> {
    let mut s = String::from("id,amount,ts\n");
    for (id, amount, ts) in rows {
        s.push_str(&format!("{id},{amount},{ts}\n"));
    }
    s.into_bytes()
}

/// Put a raw file and deliver its (URL-encoded) S3 event.
async fn arrive(h: &Harness, key: &str, body: Vec<u8>) -> ArrivalOutcome {
    let meta = h.adapters.objects.put_bytes(key, body).await.expect("put");
    usecases::on_object_created(&h.services(), &encode_event_key(key), &meta.etag, meta.size)
        .await
        .expect("arrival")
}

async fn run_all(h: &Harness) -> Vec<usecases::DatasetRunReport> {
    let mut reports = Vec::new();
    for run in h.adapters.workflows.drain() {
        let d = date(run.input["date"].as_str().expect("date"));
        let pipeline = run.input["pipeline"].as_str().expect("pipeline");
        let run_id = run.input["run_id"].as_str().expect("run id");
        reports.extend(
            tributary_e2e::run_partition_pipeline(&h.services(), pipeline, d, run_id)
                .await
                .expect("run"),
        );
    }
    reports
}

const T1: &str = "2025-12-03T10:00:00Z";
const T2: &str = "2025-12-03T11:00:00Z";

#[tokio::test]
async fn data_ready_waits_for_every_dataset_and_duplicate_events_start_nothing() {
    let h = Harness::new(&config("overwrite"));
    let key = "raw/orders/date=2025-12-03/my orders+1.csv";
    let first = arrive(&h, key, csv(&[("a", 1.0, T1)])).await;
    let ArrivalOutcome::Recorded {
        started,
        waiting,
        key: recorded,
        ..
    } = first
    else {
        panic!("not recorded")
    };
    assert_eq!(recorded, key, "the URL-encoded key was decoded");
    assert_eq!(started.len(), 1, "orders_daily is ready");
    assert!(started[0].newly_started);
    assert_eq!(waiting["joined"], vec!["customers".to_string()]);
    // S3 delivers at least once: the same event again starts nothing new.
    let meta = h.adapters.objects.head(key).await.unwrap().unwrap();
    let again =
        usecases::on_object_created(&h.services(), &encode_event_key(key), &meta.etag, meta.size)
            .await
            .unwrap();
    let ArrivalOutcome::Recorded { started, .. } = again else {
        panic!()
    };
    assert!(!started[0].newly_started);
    assert_eq!(h.adapters.workflows.drain().len(), 1);
    // ... and does not reset a partition that has moved on.
    tributary_e2e::run_partition_pipeline(
        &h.services(),
        "orders_daily",
        date("2025-12-03"),
        &started[0].run_id,
    )
    .await
    .unwrap();
    usecases::on_object_created(&h.services(), &encode_event_key(key), &meta.etag, meta.size)
        .await
        .unwrap();
    let st = state::partition_status(&h.adapters.state, "orders", date("2025-12-03"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.state, PartitionState::Published);
    // The second dataset makes the joined pipeline ready.
    let ArrivalOutcome::Recorded {
        started, waiting, ..
    } = arrive(
        &h,
        "raw/customers/date=2025-12-03/c.csv",
        b"id\nc1\n".to_vec(),
    )
    .await
    else {
        panic!()
    };
    assert!(waiting.is_empty());
    assert_eq!(
        started
            .iter()
            .map(|s| s.pipeline.as_str())
            .collect::<Vec<_>>(),
        vec!["joined"]
    );
}

#[tokio::test]
async fn keys_outside_the_layout_are_refused_with_a_reason() {
    let h = Harness::new(&config("overwrite"));
    let svc = h.services();
    for (key, needle) in [
        ("raw/unknown/date=2025-12-03/x.csv", "does not define"),
        ("raw/orders/date=2025-13-03/x.csv", "not a calendar date"),
        (
            "raw/orders/date%3D2025-12-03/..%2F..%2Fetc",
            "unsafe path segment",
        ),
        ("raw/orders/x.csv", "outside the bucket layout"),
    ] {
        let err = usecases::on_object_created(&svc, key, "e", 1)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(needle), "{key}: {err}");
        assert_eq!(err.error_name(), "Tributary.BadInput");
        assert!(!err.retryable());
    }
    let ignored =
        usecases::on_object_created(&svc, "cleaned/orders/date=2025-12-03/x.parquet", "e", 1)
            .await
            .unwrap();
    assert!(matches!(ignored, ArrivalOutcome::Ignored { .. }));
}

#[tokio::test]
async fn overwrite_replaces_the_partition() {
    let h = Harness::new(&config("overwrite"));
    arrive(
        &h,
        "raw/orders/date=2025-12-03/a.csv",
        csv(&[("a", 1.0, T1), ("b", 2.0, T1)]),
    )
    .await;
    run_all(&h).await;
    arrive(
        &h,
        "raw/orders/date=2025-12-03/a.csv",
        csv(&[("c", 3.0, T1)]),
    )
    .await;
    let reports = run_all(&h).await;
    assert!(
        reports.iter().all(|r| r.state == "published"),
        "{reports:?}"
    );
    assert_eq!(
        h.published_column("orders", date("2025-12-03"), "id").await,
        vec!["c"]
    );
}

#[tokio::test]
async fn append_adds_to_the_partition() {
    let h = Harness::new(&config("append"));
    arrive(
        &h,
        "raw/orders/date=2025-12-03/a.csv",
        csv(&[("a", 1.0, T1)]),
    )
    .await;
    run_all(&h).await;
    // A second file for the date: the partition is a new version.
    arrive(
        &h,
        "raw/orders/date=2025-12-03/a.csv",
        csv(&[("b", 2.0, T1)]),
    )
    .await;
    run_all(&h).await;
    let mut ids = h.published_column("orders", date("2025-12-03"), "id").await;
    ids.sort();
    assert_eq!(ids, vec!["a", "b"]);
    let m = read_manifest(&h.adapters.objects, "orders", date("2025-12-03"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.rows, 2);
    assert!(
        m.files.iter().all(|f| f.key.starts_with(&m.location)),
        "location holds every file"
    );
}

#[tokio::test]
async fn merge_upserts_on_the_key() {
    let h = Harness::new(&config("merge"));
    arrive(
        &h,
        "raw/orders/date=2025-12-03/a.csv",
        csv(&[("a", 1.0, T1), ("b", 2.0, T1)]),
    )
    .await;
    run_all(&h).await;
    arrive(
        &h,
        "raw/orders/date=2025-12-03/a.csv",
        csv(&[("b", 20.0, T2), ("c", 3.0, T1)]),
    )
    .await;
    run_all(&h).await;
    let d = date("2025-12-03");
    let mut ids = h.published_column("orders", d, "id").await;
    ids.sort();
    assert_eq!(ids, vec!["a", "b", "c"], "b was replaced, not duplicated");
    let m = read_manifest(&h.adapters.objects, "orders", d)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((m.rows, m.files.len()), (3, 1));
    let catalog = tributary_core::ports::Catalog::get_partition(&h.adapters.catalog, "orders", d)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(catalog.location, m.location);
}

#[tokio::test]
async fn an_interrupted_publish_leaves_the_previous_publication_whole() {
    for (mode, fail_on) in [
        ("overwrite", "_manifest.json"),
        ("merge", "_manifest.json"),
        ("append", "/run="),
    ] {
        let h = Harness::new(&config(mode));
        let d = date("2025-12-03");
        arrive(
            &h,
            "raw/orders/date=2025-12-03/a.csv",
            csv(&[("a", 1.0, T1), ("b", 2.0, T1)]),
        )
        .await;
        run_all(&h).await;
        let before = read_manifest(&h.adapters.objects, "orders", d)
            .await
            .unwrap()
            .unwrap();
        // The new version is cleaned and validated, then publish dies midway.
        let ArrivalOutcome::Recorded { started, .. } = arrive(
            &h,
            "raw/orders/date=2025-12-03/a.csv",
            csv(&[("c", 3.0, T1)]),
        )
        .await
        else {
            panic!()
        };
        h.adapters.workflows.drain();
        let run_id = &started[0].run_id;
        let svc = h.services();
        usecases::clean_partition(&svc, "orders", d, run_id)
            .await
            .unwrap();
        usecases::validate_partition(&svc, "orders", d, run_id)
            .await
            .unwrap();
        let failing = FailingStore {
            inner: &h.adapters.objects,
            fail_on,
        };
        let err =
            usecases::publish_partition(&h.services_with(&failing), "orders", d, run_id, false)
                .await
                .unwrap_err();
        assert!(err.retryable(), "{mode}: {err}");
        // Readers still see exactly the previous version, through manifest and catalog.
        assert_eq!(
            read_manifest(&h.adapters.objects, "orders", d)
                .await
                .unwrap()
                .unwrap(),
            before,
            "{mode}"
        );
        let mut ids = h.published_column("orders", d, "id").await;
        ids.sort();
        assert_eq!(ids, vec!["a", "b"], "{mode}");
        let cat = tributary_core::ports::Catalog::get_partition(&h.adapters.catalog, "orders", d)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cat.location, before.location, "{mode}");
        // The retry (Step Functions Retry on Tributary.Retryable) completes it.
        usecases::publish_partition(&svc, "orders", d, run_id, false)
            .await
            .unwrap();
        let after = read_manifest(&h.adapters.objects, "orders", d)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.run_id, *run_id);
        assert_eq!(after.previous_run.as_deref(), Some(before.run_id.as_str()));
        // Publishing the same run again is a no-op.
        let again = usecases::publish_partition(&svc, "orders", d, run_id, false)
            .await
            .unwrap();
        assert_eq!(again.manifest, after);
    }
}

#[tokio::test]
async fn held_partitions_publish_only_when_approved() {
    let h = Harness::new(&config("overwrite"));
    let d = date("2025-12-03");
    // Half of the amounts above 100: the between expectation fails.
    arrive(
        &h,
        "raw/orders/date=2025-12-03/a.csv",
        csv(&[("a", 500.0, T1), ("b", 2.0, T1)]),
    )
    .await;
    let reports = run_all(&h).await;
    assert_eq!(reports[0].state, "held");
    assert!(reports[0].quality_score.unwrap() < 0.9);
    let status = state::partition_status(&h.adapters.state, "orders", d)
        .await
        .unwrap()
        .unwrap();
    let run_id = status.run_id.clone().unwrap();
    let err = usecases::publish_partition(&h.services(), "orders", d, &run_id, false)
        .await
        .unwrap_err();
    assert!(matches!(err, UseCaseError::WrongState { .. }), "{err}");
    assert!(read_manifest(&h.adapters.objects, "orders", d)
        .await
        .unwrap()
        .is_none());
    usecases::publish_partition(&h.services(), "orders", d, &run_id, true)
        .await
        .unwrap();
    let status = state::partition_status(&h.adapters.state, "orders", d)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.state, PartitionState::Published);
    let report: serde_json::Value = serde_json::from_slice(
        &h.adapters
            .objects
            .get_bytes("quality/orders/date=2025-12-03/report.json")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(report["passed"], json!(false));
    assert_eq!(
        report["expectations"][0]["unexpected_examples"],
        json!(["500.0"])
    );
}

async fn watermark_of(h: &Harness) -> Option<chrono::NaiveDate> {
    state::watermark(&h.adapters.state, "orders_daily")
        .await
        .unwrap()
        .map(|w| w.date)
}

#[tokio::test]
async fn watermark_advances_over_contiguous_dates_only_and_never_backwards() {
    let h = Harness::new(&config("overwrite"));
    for day in ["2025-12-01", "2025-12-03"] {
        arrive(
            &h,
            &format!("raw/orders/date={day}/a.csv"),
            csv(&[("a", 1.0, T1)]),
        )
        .await;
    }
    run_all(&h).await;
    assert_eq!(
        watermark_of(&h).await,
        Some(date("2025-12-01")),
        "12-02 is missing: stop there"
    );
    arrive(
        &h,
        "raw/orders/date=2025-12-02/a.csv",
        csv(&[("a", 1.0, T1)]),
    )
    .await;
    run_all(&h).await;
    assert_eq!(
        watermark_of(&h).await,
        Some(date("2025-12-03")),
        "the gap closed: jump over 12-03"
    );
    // The automatic advance never moves backwards.
    let after = state::advance_watermark(&h.adapters.state, "orders_daily", date("2025-11-01"))
        .await
        .unwrap();
    assert_eq!(after.map(|w| w.date), Some(date("2025-12-03")));
    // An operator may, and it is recorded.
    let w = state::set_watermark(
        &h.adapters.state,
        "orders_daily",
        date("2025-11-30"),
        "alice",
        "reprocess December",
    )
    .await
    .unwrap();
    assert_eq!(w.date, date("2025-11-30"));
    assert_eq!(w.manual_changes[0].by, "alice");
    // The joined pipeline never completed (no customers): no watermark.
    assert!(state::watermark(&h.adapters.state, "joined")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn counts_balance_and_rejects_keep_their_rows() {
    let h = Harness::new(&config("overwrite"));
    let body = b"id,amount,ts\na,1,2025-12-03T10:00:00Z\na,2,2025-12-03T11:00:00Z\nb,-1,2025-12-03T10:00:00Z\nc,1,yesterday\n,1,2025-12-03T10:00:00Z\n".to_vec();
    arrive(&h, "raw/orders/date=2025-12-03/a.csv", body).await;
    let reports = run_all(&h).await;
    let s = reports[0].stats.clone().unwrap();
    assert_eq!(
        (s.input, s.kept, s.rejected_total, s.duplicates),
        (5, 1, 3, 1)
    );
    assert!(s.balanced());
    let rejects = h
        .adapters
        .objects
        .list("rejects/orders/date=2025-12-03/")
        .await
        .unwrap();
    assert_eq!(rejects.len(), 1);
}

#[tokio::test]
async fn retention_deletes_expired_partitions_from_storage_catalog_and_state() {
    let h = Harness::new(&config("overwrite"));
    for day in ["2025-01-01", "2025-12-01"] {
        arrive(
            &h,
            &format!("raw/orders/date={day}/a.csv"),
            csv(&[("a", 1.0, T1)]),
        )
        .await;
    }
    run_all(&h).await;
    let today = date("2025-12-05");
    let planned = usecases::retention_sweep(&h.services(), today, true)
        .await
        .unwrap();
    let layers: Vec<(String, String)> = planned
        .iter()
        .map(|d| (d.layer.clone(), d.date.to_string()))
        .collect();
    assert!(
        layers.contains(&("raw".into(), "2025-01-01".into())),
        "{layers:?}"
    );
    assert!(
        layers.contains(&("cleaned".into(), "2025-01-01".into())),
        "{layers:?}"
    );
    assert!(!layers.iter().any(|(_, d)| d == "2025-12-01"), "{layers:?}");
    assert!(
        h.adapters
            .objects
            .head("raw/orders/date=2025-01-01/a.csv")
            .await
            .unwrap()
            .is_some(),
        "dry run deletes nothing"
    );
    usecases::retention_sweep(&h.services(), today, false)
        .await
        .unwrap();
    assert!(h
        .adapters
        .objects
        .list("raw/orders/date=2025-01-01/")
        .await
        .unwrap()
        .is_empty());
    assert!(h
        .adapters
        .objects
        .list("cleaned/orders/date=2025-01-01/")
        .await
        .unwrap()
        .is_empty());
    assert!(h
        .adapters
        .objects
        .head("raw/orders/date=2025-12-01/a.csv")
        .await
        .unwrap()
        .is_some());
    let d = date("2025-01-01");
    assert!(
        tributary_core::ports::Catalog::get_partition(&h.adapters.catalog, "orders", d)
            .await
            .unwrap()
            .is_none()
    );
    let st = state::partition_status(&h.adapters.state, "orders", d)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.state, PartitionState::Expired);
    // Rejects have no retention configured here: kept.
    assert!(!h
        .adapters
        .objects
        .list("rejects/orders/date=2025-01-01/")
        .await
        .unwrap()
        .is_empty());
}

/// Approval links need the signing key and the callback's URL; without
/// either no request is stored (a token nobody could answer) and the error
/// says which variable to set.
#[tokio::test]
async fn no_approval_request_is_stored_without_a_key_or_a_callback_url() {
    use tributary_core::approvals::{self, ApprovalError, ApprovalRequest, LinkSigner};
    let h = Harness::new(&config("overwrite"));
    let request = || ApprovalRequest {
        token: "token".into(),
        execution: "execution".into(),
        purpose: "publish".into(),
        summary: json!({}),
        ttl: chrono::Duration::hours(1),
    };
    for (secret, base_url, variable) in [
        (&b"secret"[..], " ", "TRIBUTARY_APPROVAL_BASE_URL"),
        (
            &b""[..],
            "https://approvals.example",
            "TRIBUTARY_APPROVAL_SECRET_ARN",
        ),
    ] {
        let signer = LinkSigner { secret, base_url };
        let err = approvals::request(&h.adapters.state, &signer, request(), chrono::Utc::now())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ApprovalError::NoCallbackUrl | ApprovalError::NoSigningKey
            ),
            "{err}"
        );
        assert!(err.to_string().contains(variable), "{err}");
        // Nor does an unkeyed callback accept any link.
        assert!(matches!(
            LinkSigner {
                secret: b"",
                base_url
            }
            .verify(
                "id",
                approvals::Decision::Approve,
                0,
                "",
                chrono::Utc::now()
            ),
            Err(ApprovalError::NoSigningKey)
        ));
    }
    let stored = tributary_core::ports::StateStore::query(&h.adapters.state, "approval")
        .await
        .unwrap();
    assert!(stored.is_empty(), "{stored:?}");
}
