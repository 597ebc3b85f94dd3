//! The batch partition path end to end over the embedded adapters:
//! arrival → data_ready → clean → validate → publish, output modes, an
//! interrupted publish, watermarks, approval, retention.

use serde_json::json;
use tributary_core::error::UseCaseError;
use tributary_core::layout::encode_event_key;
use tributary_core::partition::{self, ArrivalOutcome};
use tributary_core::ports::ObjectStore;
use tributary_core::publish::read_manifest;
use tributary_core::retention;
use tributary_core::state::{self, PartitionState};
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
    partition::on_object_created(&h.services(), &encode_event_key(key), &meta.etag, meta.size)
        .await
        .expect("arrival")
}

async fn run_all(h: &Harness) -> Vec<partition::DatasetRunReport> {
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
        partition::on_object_created(&h.services(), &encode_event_key(key), &meta.etag, meta.size)
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
    partition::on_object_created(&h.services(), &encode_event_key(key), &meta.etag, meta.size)
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
        // %FF decodes to a byte that is not UTF-8.
        (
            "raw/orders/date%3D2025-12-03/a%FF.csv",
            "decoded bytes are not UTF-8",
        ),
    ] {
        let err = partition::on_object_created(&svc, key, "e", 1)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(needle), "{key}: {err}");
        assert_eq!(err.error_name(), "Tributary.BadInput");
        assert!(!err.retryable());
    }
    // Nothing of any refused key was recorded or started.
    assert!(state::all_partitions(&h.adapters.state, "orders")
        .await
        .unwrap()
        .is_empty());
    assert!(h.adapters.workflows.drain().is_empty());
    let ignored =
        partition::on_object_created(&svc, "cleaned/orders/date=2025-12-03/x.parquet", "e", 1)
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

/// The published ids of a date, sorted.
async fn published_ids(h: &Harness, d: &str) -> Vec<String> {
    let mut ids = h.published_column("orders", date(d), "id").await;
    ids.sort();
    ids
}

#[tokio::test]
async fn append_publishes_every_raw_files_rows_exactly_once() {
    let h = Harness::new(&config("append"));
    let d = "2025-12-03";
    arrive(
        &h,
        "raw/orders/date=2025-12-03/a.csv",
        csv(&[("a1", 1.0, T1), ("a2", 2.0, T1)]),
    )
    .await;
    run_all(&h).await;
    assert_eq!(published_ids(&h, d).await, vec!["a1", "a2"]);

    // A second, differently named file adds its rows, and only its rows.
    arrive(
        &h,
        "raw/orders/date=2025-12-03/b.csv",
        csv(&[("b1", 3.0, T1)]),
    )
    .await;
    let reports = run_all(&h).await;
    assert_eq!(
        reports[0].stats.as_ref().unwrap().input,
        1,
        "only b.csv was cleaned"
    );
    assert_eq!(published_ids(&h, d).await, vec!["a1", "a2", "b1"]);

    // S3 re-delivers b.csv's event: nothing runs, nothing is added.
    let meta = h
        .adapters
        .objects
        .head("raw/orders/date=2025-12-03/b.csv")
        .await
        .unwrap()
        .unwrap();
    partition::on_object_created(
        &h.services(),
        &encode_event_key("raw/orders/date=2025-12-03/b.csv"),
        &meta.etag,
        meta.size,
    )
    .await
    .unwrap();
    assert!(run_all(&h).await.iter().all(|r| r.state == "published"));
    assert_eq!(published_ids(&h, d).await, vec!["a1", "a2", "b1"]);

    // A forced re-run of the same files rebuilds the date: still once each.
    let forced = tributary_core::orchestration::start_partition_run(
        &h.services(),
        "orders_daily",
        date(d),
        true,
        "test",
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert!(forced.newly_started);
    run_all(&h).await;
    assert_eq!(published_ids(&h, d).await, vec!["a1", "a2", "b1"]);

    // a.csv is replaced by a new version: its rows replace a.csv's rows.
    arrive(
        &h,
        "raw/orders/date=2025-12-03/a.csv",
        csv(&[("a3", 4.0, T1)]),
    )
    .await;
    run_all(&h).await;
    assert_eq!(published_ids(&h, d).await, vec!["a3", "b1"]);
    let m = read_manifest(&h.adapters.objects, "orders", date(d))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.rows, 2);
    assert!(
        m.files.iter().all(|f| f.key.starts_with(&m.location)),
        "location holds every file"
    );
    let sources: Vec<&str> = m
        .files
        .iter()
        .flat_map(|f| f.sources.iter().map(|s| s.key.as_str()))
        .collect();
    assert_eq!(
        sources.len(),
        2,
        "each raw file is held by one published file: {sources:?}"
    );
}

#[tokio::test]
async fn a_marker_file_is_recorded_as_a_marker_and_never_cleaned() {
    let h = Harness::new(&config("overwrite"));
    let d = date("2025-12-03");
    let marker = arrive(&h, "raw/orders/date=2025-12-03/_SUCCESS", vec![]).await;
    let ArrivalOutcome::Recorded { started, .. } = marker else {
        panic!("not recorded")
    };
    assert!(started.is_empty(), "a marker alone is no data");
    arrive(
        &h,
        "raw/orders/date=2025-12-03/part-0.csv",
        csv(&[("a", 1.0, T1)]),
    )
    .await;
    h.adapters
        .objects
        .put_bytes(
            "raw/orders/date=2025-12-03/.part-1.csv.tmp",
            b"garbage".to_vec(),
        )
        .await
        .unwrap();
    let reports = run_all(&h).await;
    assert_eq!(reports[0].state, "published", "{reports:?}");
    assert_eq!(
        reports[0].stats.as_ref().unwrap().files,
        1,
        "only the data file"
    );
    let st = state::partition_status(&h.adapters.state, "orders", d)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.files.len(), 1);
    assert_eq!(st.markers.len(), 1);
    assert!(st.markers[0].key.ends_with("/_SUCCESS"));
}

const HOURLY: &str = r#"
[datasets.orders]
complete_when = "RULE"
QUIET
[[datasets.orders.columns]]
name = "id"
type = "string"
required = true
[[datasets.orders.columns]]
name = "amount"
type = "float"
[[datasets.orders.columns]]
name = "ts"
type = "timestamp"

[pipelines.orders_daily]
datasets = ["orders"]
"#;

#[tokio::test]
async fn hourly_parts_start_one_run_when_the_marker_arrives() {
    let h = Harness::new(&HOURLY.replace("RULE", "marker").replace("QUIET", ""));
    for hour in 0..3 {
        let out = arrive(
            &h,
            &format!("raw/orders/date=2025-12-03/part-{hour:02}.csv"),
            csv(&[(&format!("h{hour}"), 1.0, T1)]),
        )
        .await;
        let ArrivalOutcome::Recorded {
            started, waiting, ..
        } = out
        else {
            panic!()
        };
        assert!(started.is_empty(), "hour {hour} started a run");
        assert_eq!(waiting["orders_daily"], vec!["orders".to_string()]);
    }
    let readiness = partition::date_readiness(
        &h.services(),
        "orders_daily",
        date("2025-12-03"),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(readiness.waiting_for["orders"], "marker _SUCCESS");
    assert!(readiness.any_data);
    let ArrivalOutcome::Recorded { started, .. } =
        arrive(&h, "raw/orders/date=2025-12-03/_SUCCESS", vec![]).await
    else {
        panic!()
    };
    assert_eq!(started.len(), 1);
    let reports = run_all(&h).await;
    assert_eq!(reports.len(), 1, "one run for the date");
    assert_eq!(reports[0].stats.as_ref().unwrap().files, 3);
    let mut ids = h.published_column("orders", date("2025-12-03"), "id").await;
    ids.sort();
    assert_eq!(ids, vec!["h0", "h1", "h2"]);
}

#[tokio::test]
async fn a_quiet_period_makes_a_date_complete() {
    let h = Harness::new(
        &HOURLY
            .replace("RULE", "quiet")
            .replace("QUIET", "quiet_for = \"30m\""),
    );
    let d = date("2025-12-03");
    for hour in 0..2 {
        let ArrivalOutcome::Recorded { started, .. } = arrive(
            &h,
            &format!("raw/orders/date=2025-12-03/part-{hour:02}.csv"),
            csv(&[(&format!("h{hour}"), 1.0, T1)]),
        )
        .await
        else {
            panic!()
        };
        assert!(started.is_empty());
    }
    let now = chrono::Utc::now();
    let svc = h.services();
    let soon =
        partition::date_readiness(&svc, "orders_daily", d, now + chrono::Duration::minutes(29))
            .await
            .unwrap();
    assert!(!soon.ready, "{soon:?}");
    let later =
        partition::date_readiness(&svc, "orders_daily", d, now + chrono::Duration::minutes(31))
            .await
            .unwrap();
    assert!(later.ready && later.run_id.is_some(), "{later:?}");
    // The catchup's StartRun judges at the execution's time too.
    let start = tributary_core::orchestration::start_partition_run(
        &svc,
        "orders_daily",
        d,
        false,
        "test",
        now + chrono::Duration::minutes(31),
    )
    .await
    .unwrap();
    assert_eq!(
        start.status,
        tributary_core::orchestration::CatchupStatus::Started
    );
}

#[test]
fn completion_rules_are_checked_at_load() {
    let quiet = HOURLY.replace("RULE", "quiet").replace("QUIET", "");
    let e = tributary_core::config::Config::parse(&quiet, "p.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("datasets.orders.quiet_for"), "{e}");
    let marker = HOURLY
        .replace("RULE", "marker")
        .replace("QUIET", "marker = \"DONE\"");
    let e = tributary_core::config::Config::parse(&marker, "p.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("datasets.orders.marker") && e.contains("'_'"),
        "{e}"
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
        // Publishing an append of a new version copies nothing (the parts
        // are written in the run's prefix): the manifest switch is its one write.
        ("append", "_manifest.json"),
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
        partition::clean_partition(&svc, "orders", d, run_id)
            .await
            .unwrap();
        partition::validate_partition(&svc, "orders", d, run_id)
            .await
            .unwrap();
        let failing = FailingStore {
            inner: &h.adapters.objects,
            fail_on,
        };
        let err =
            partition::publish_partition(&h.services_with(&failing), "orders", d, run_id, false)
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
        partition::publish_partition(&svc, "orders", d, run_id, false)
            .await
            .unwrap();
        let after = read_manifest(&h.adapters.objects, "orders", d)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.run_id, *run_id);
        assert_eq!(after.previous_run.as_deref(), Some(before.run_id.as_str()));
        // Publishing the same run again is a no-op.
        let again = partition::publish_partition(&svc, "orders", d, run_id, false)
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
    let err = partition::publish_partition(&h.services(), "orders", d, &run_id, false)
        .await
        .unwrap_err();
    assert!(matches!(err, UseCaseError::WrongState { .. }), "{err}");
    assert!(read_manifest(&h.adapters.objects, "orders", d)
        .await
        .unwrap()
        .is_none());
    partition::publish_partition(&h.services(), "orders", d, &run_id, true)
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
async fn a_start_date_holds_the_watermark_at_a_missing_first_date_and_catchup_plans_it() {
    let with_start = config("overwrite").replace(
        "[pipelines.orders_daily]\ndatasets = [\"orders\"]",
        "[pipelines.orders_daily]\ndatasets = [\"orders\"]\nstart_date = 2025-12-01",
    );
    let h = Harness::new(&with_start);
    assert!(h
        .config
        .warnings("t.toml")
        .iter()
        .all(|w| !w.contains("orders_daily")));
    assert!(h
        .config
        .warnings("t.toml")
        .iter()
        .any(|w| w.contains("pipelines.joined")));
    // 12-02 and 12-03 arrive and publish; 12-01 never came.
    for day in ["2025-12-02", "2025-12-03"] {
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
        None,
        "12-01 is missing: no watermark yet"
    );
    let at = chrono::DateTime::parse_from_rfc3339("2025-12-04T06:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let plan = tributary_core::orchestration::plan_catchup(
        &h.services(),
        "orders_daily",
        at,
        None,
        None,
        false,
    )
    .await
    .unwrap();
    assert_eq!(plan.dates, vec![date("2025-12-01")], "{plan:?}");
    assert_eq!(plan.skipped, vec![date("2025-12-02"), date("2025-12-03")]);
    arrive(
        &h,
        "raw/orders/date=2025-12-01/a.csv",
        csv(&[("a", 1.0, T1)]),
    )
    .await;
    run_all(&h).await;
    assert_eq!(watermark_of(&h).await, Some(date("2025-12-03")));
}

#[tokio::test]
async fn catchup_reports_a_failed_date_instead_of_starting_it_and_a_new_file_reruns_it() {
    use tributary_core::orchestration::{report_catchup, start_partition_run, CatchupStatus};
    let h = Harness::new(&config("overwrite"));
    let d = date("2025-12-03");
    // A file without the required columns: the clean fails for good.
    arrive(&h, "raw/orders/date=2025-12-03/a.csv", b"id\nx\n".to_vec()).await;
    let reports = run_all(&h).await;
    assert_eq!(reports[0].state, "failed", "{reports:?}");
    let svc = h.services();
    let now = chrono::Utc::now();
    let start = start_partition_run(&svc, "orders_daily", d, false, "catchup", now)
        .await
        .unwrap();
    assert_eq!(start.status, CatchupStatus::Failed, "{start:?}");
    assert!(!start.newly_started);
    assert!(
        start.reason.as_deref().unwrap().contains("orders"),
        "{start:?}"
    );
    assert!(h.adapters.workflows.drain().is_empty(), "nothing started");
    let report = report_catchup(
        &svc,
        "orders_daily",
        &[serde_json::to_value(&start).unwrap()],
        &[date("2025-12-02")],
    )
    .await
    .unwrap();
    assert_eq!(report["failed"], json!(["2025-12-03"]));
    assert_eq!(report["started"], json!([]));
    assert_eq!(report["published"], json!(["2025-12-02"]));
    let outbox = std::fs::read_to_string(h.dir.path().join("outbox.jsonl")).unwrap();
    assert!(outbox.contains("2025-12-03 failed"), "{outbox}");
    // Forced, it runs again.
    let forced = start_partition_run(&svc, "orders_daily", d, true, "catchup", now)
        .await
        .unwrap();
    assert_eq!(forced.status, CatchupStatus::Started);
    h.adapters.workflows.drain();
    // A corrected file is a new version: its arrival starts a run.
    arrive(
        &h,
        "raw/orders/date=2025-12-03/a.csv",
        csv(&[("a", 1.0, T1)]),
    )
    .await;
    assert_eq!(run_all(&h).await[0].state, "published");
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
    // The rejects file holds each rejected row, with its reason and line.
    let bytes = h.adapters.objects.get_bytes(&rejects[0].key).await.unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(bytes),
    )
    .unwrap()
    .build()
    .unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        use arrow_array::cast::AsArray;
        use arrow_array::Array;
        let batch = batch.unwrap();
        let reasons = batch
            .column_by_name("reject_reason")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let ids = batch
            .column_by_name("id")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let lines = batch
            .column_by_name("source_line")
            .unwrap()
            .as_primitive::<arrow_array::types::Int64Type>()
            .clone();
        for i in 0..batch.num_rows() {
            rows.push((
                lines.value(i),
                ids.is_null(i)
                    .then(String::new)
                    .unwrap_or_else(|| ids.value(i).to_string()),
                reasons.value(i).to_string(),
            ));
        }
    }
    rows.sort();
    assert_eq!(
        rows,
        vec![
            (4, "b".to_string(), "nonpositive_amount".to_string()),
            (5, "c".to_string(), "bad_timestamp".to_string()),
            (6, String::new(), "null_required".to_string()),
        ]
    );
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
    let planned = retention::retention_sweep(&h.services(), today, true)
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
    retention::retention_sweep(&h.services(), today, false)
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

const EVERY_LAYER: &str = r#"
[datasets.orders]
[datasets.orders.retention_days]
raw = 10
[[datasets.orders.columns]]
name = "id"
type = "string"

[labeling.returns]
dataset = "orders"
id_column = "id"
default_label = "kept"
retention_days = { labels = 10 }

[streams.sales]
event_id = "id"
event_time = "ts"
retention_days = { stream = 10, late = 10, dlq = 10, views = 10 }
[[streams.sales.fields]]
name = "id"
type = "string"
[[streams.sales.fields]]
name = "ts"
type = "timestamp"
"#;

#[tokio::test]
async fn retention_sweeps_every_layer_it_accepts() {
    use tributary_core::ports::{Catalog, CatalogPartition, Condition, StateStore};
    let h = Harness::new(EVERY_LAYER);
    let keys = [
        "raw/orders/date=2025-01-01/a.csv",
        "labels/returns/date=2025-01-01/labeled.jsonl",
        "stream/sales/date=2025-01-01/hour=03/s-1.jsonl",
        "late/sales/date=2025-01-01/hour=03/s-1.jsonl",
        "dlq/sales/date=2025-01-01/s-1.json",
        "views/daily_sales/date=2025-01-01/run=r/view.parquet",
        "views/hourly_sales/date=2025-01-01/run=r/view.parquet",
    ];
    for k in keys {
        h.adapters
            .objects
            .put_bytes(k, b"x".to_vec())
            .await
            .unwrap();
    }
    // Newer than the retention: kept.
    let fresh = "stream/sales/date=2025-03-01/hour=03/s-2.jsonl";
    h.adapters
        .objects
        .put_bytes(fresh, b"x".to_vec())
        .await
        .unwrap();
    let d = date("2025-01-01");
    for view in ["daily_sales", "hourly_sales"] {
        h.adapters
            .catalog
            .put_partition(CatalogPartition {
                table: view.into(),
                date: d,
                location: format!("views/{view}/date=2025-01-01/run=r/"),
            })
            .await
            .unwrap();
    }
    let publications = tributary_core::stream::views::views_pk("sales");
    h.adapters
        .state
        .put(
            &publications,
            "2025-01-01",
            json!({"date": "2025-01-01"}),
            Condition::Always,
        )
        .await
        .unwrap();
    let today = date("2025-03-02");
    let planned = retention::retention_sweep(&h.services(), today, true)
        .await
        .unwrap();
    let mut layers: Vec<&str> = planned.iter().map(|d| d.layer.as_str()).collect();
    layers.sort();
    assert_eq!(
        layers,
        vec!["dlq", "labels", "late", "raw", "stream", "views", "views"],
        "{planned:?}"
    );
    retention::retention_sweep(&h.services(), today, false)
        .await
        .unwrap();
    for k in keys {
        assert!(
            h.adapters.objects.head(k).await.unwrap().is_none(),
            "{k} kept"
        );
    }
    assert!(h.adapters.objects.head(fresh).await.unwrap().is_some());
    for view in ["daily_sales", "hourly_sales"] {
        assert!(h
            .adapters
            .catalog
            .get_partition(view, d)
            .await
            .unwrap()
            .is_none());
    }
    assert!(h
        .adapters
        .state
        .get(&publications, "2025-01-01")
        .await
        .unwrap()
        .is_none());
}

const LABELED: &str = r#"
[datasets.orders]
[[datasets.orders.columns]]
name = "id"
type = "string"
required = true
[[datasets.orders.columns]]
name = "status"
type = "string"

[pipelines.orders_daily]
datasets = ["orders"]

[labeling.returns]
dataset = "orders"
id_column = "id"
default_label = "kept"
default_confidence = 0.5
accept_confidence = 0.8
[[labeling.returns.rules]]
label = "returned"
column = "status"
in = ["refunded"]
confidence = 0.95
"#;

#[tokio::test]
async fn a_label_review_confirms_only_the_page_the_reviewer_saw() {
    use tributary_core::labeling::{self, ReviewAnswer, REVIEW_PAGE};
    let h = Harness::new(LABELED);
    let d = date("2025-12-03");
    // 120 rows the rules are unsure of (default label, 0.5), 5 they know.
    let mut body = String::from("id,status\n");
    for i in 0..120 {
        body.push_str(&format!("u{i:03},open\n"));
    }
    for i in 0..5 {
        body.push_str(&format!("r{i},refunded\n"));
    }
    arrive(&h, "raw/orders/date=2025-12-03/a.csv", body.into_bytes()).await;
    run_all(&h).await;
    let svc = h.services();
    let auto = labeling::auto_label(&svc, "returns", d, "L1")
        .await
        .unwrap();
    assert_eq!((auto.rows, auto.low_confidence), (125, 120));

    let asked = labeling::request_review(&svc, "token-1", "exec-1", "returns", d, "L1", 1)
        .await
        .unwrap();
    assert_eq!(
        (asked["pending"].as_u64(), asked["shown"].as_u64()),
        (Some(120), Some(REVIEW_PAGE as u64))
    );
    let approval =
        tributary_core::approvals::get(&h.adapters.state, asked["approval_id"].as_str().unwrap())
            .await
            .unwrap();
    let shown = approval.summary["items"].as_array().unwrap();
    assert_eq!(shown.len(), REVIEW_PAGE);
    assert_eq!(
        shown[0]["fields"]["status"], "open",
        "the reviewer sees the row's content: {}",
        shown[0]
    );
    let message = std::fs::read_to_string(h.dir.path().join("outbox.jsonl")).unwrap();
    assert!(message.contains("status=open"), "{message}");

    // A correction on the page and an approval: exactly the page is decided.
    let answer = ReviewAnswer {
        corrections: [("u000".to_string(), "returned".to_string())].into(),
        ..Default::default()
    };
    let applied = labeling::apply_review(&svc, "returns", d, "L1", 1, &answer)
        .await
        .unwrap();
    assert_eq!(
        (
            applied.corrected,
            applied.confirmed,
            applied.remaining,
            applied.next_round
        ),
        (1, REVIEW_PAGE - 1, 120 - REVIEW_PAGE, 1)
    );
    let pending = labeling::pending_review(&svc, "returns", d, "L1")
        .await
        .unwrap();
    assert_eq!(pending.len(), 120 - REVIEW_PAGE);
    let shown_ids: Vec<&str> = shown.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert!(pending.iter().all(|p| !shown_ids.contains(&p.id.as_str())));
    // A correction for a pending id the reviewer was not shown is refused.
    let unseen = ReviewAnswer {
        corrections: [("u119".to_string(), "returned".to_string())].into(),
        ..Default::default()
    };
    let err = labeling::apply_review(&svc, "returns", d, "L1", 1, &unseen)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("page"), "{err}");
    // The merge marks what nobody reviewed as such.
    let merged = labeling::merge(&svc, "returns", d, "L1").await.unwrap();
    assert_eq!(
        merged["by_source"]["rules-unreviewed"],
        120 - REVIEW_PAGE,
        "{merged}"
    );
    assert_eq!(
        merged["by_source"]["human-confirmed"],
        REVIEW_PAGE - 1,
        "{merged}"
    );
}

/// An approval link used after it expired decides nothing, through the
/// approval-callback function on a clock the test sets: the page says it
/// expired, the request stays undecided, no task token is answered, and
/// the pending list no longer offers it.
#[tokio::test]
async fn an_expired_approval_link_decides_nothing() {
    use tributary_core::approvals::{self, ApprovalRequest, ApprovalStatus};
    use tributary_handlers::approval_callback::handle;
    use tributary_handlers::http::HttpRequest;
    let h = Harness::new(&config("overwrite"));
    let svc = h.services();
    let t0 = chrono::Utc::now();
    let (approval, links) = approvals::request(
        &h.adapters.state,
        &svc.links,
        ApprovalRequest {
            token: "token-1".into(),
            execution: "exec-1".into(),
            purpose: "publish orders".into(),
            summary: json!({"pipeline": "orders_daily", "date": "2025-12-03", "run_id": "r", "held": []}),
            ttl: chrono::Duration::hours(1),
        },
        t0,
    )
    .await
    .unwrap();
    let request = |method: &str| {
        let url = &links.approve;
        let path = &url[url.find("/approvals/").unwrap()..];
        let (path, query) = path.split_once('?').unwrap();
        HttpRequest::from_event(&json!({
            "rawPath": path,
            "rawQueryString": if method == "GET" { query } else { "" },
            "body": if method == "POST" { format!("{query}&decider=Ana") } else { String::new() },
            "requestContext": {"http": {"method": method}},
        }))
        .unwrap()
    };
    // Within the hour the link opens its confirmation page.
    let open = handle(&svc, &request("GET"), t0 + chrono::Duration::minutes(30)).await;
    assert_eq!(open["statusCode"], 200, "{open}");
    // Two hours later: refused, and nothing is decided.
    let later = t0 + chrono::Duration::hours(2);
    for method in ["GET", "POST"] {
        let answer = handle(&svc, &request(method), later).await;
        assert_eq!(answer["statusCode"], 410, "{method}: {answer}");
        assert!(
            answer["body"].as_str().unwrap().contains("expired"),
            "{answer}"
        );
    }
    let stored = approvals::get(&h.adapters.state, &approval.id)
        .await
        .unwrap();
    assert_eq!(stored.status, ApprovalStatus::Pending);
    assert!(
        h.adapters.callbacks.drain().is_empty(),
        "no task token was answered"
    );
    assert!(approvals::pending(&h.adapters.state, later)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        approvals::pending(&h.adapters.state, t0)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A run held for approval keeps its files however long the person takes
/// (the approval link lives 48 hours); a run nothing names is swept once
/// it is a day old.
#[tokio::test]
async fn retention_keeps_the_files_of_a_run_held_for_approval() {
    let h = Harness::new(&config("overwrite"));
    arrive(
        &h,
        "raw/orders/date=2025-12-01/a.csv",
        csv(&[("a", 1.0, T1)]),
    )
    .await;
    run_all(&h).await;
    let day = date("2025-12-01");
    let held = "cleaned/orders/date=2025-12-01/run=held1/part-00000.parquet";
    let held_rejects = "rejects/orders/date=2025-12-01/run=held1/rejects.parquet";
    let stray = "cleaned/orders/date=2025-12-01/run=stray1/part-00000.parquet";
    for key in [held, held_rejects, stray] {
        h.adapters
            .objects
            .put_bytes(key, b"x".to_vec())
            .await
            .unwrap();
    }
    tributary_core::state::update_partition(&h.adapters.state, "orders", day, |s| {
        s.run_id = Some("held1".into());
        s.state = tributary_core::state::PartitionState::Held;
    })
    .await
    .unwrap();
    // Thirty hours old, past the day a stray run is given.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(30 * 3600);
    let mut stack = vec![h.dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains("run=held1")
                || p.to_string_lossy().contains("run=stray1")
            {
                std::fs::File::options()
                    .write(true)
                    .open(&p)
                    .unwrap()
                    .set_modified(old)
                    .unwrap();
            }
        }
    }
    retention::retention_sweep(&h.services(), date("2025-12-05"), false)
        .await
        .unwrap();
    for key in [held, held_rejects] {
        assert!(
            h.adapters.objects.head(key).await.unwrap().is_some(),
            "{key} was swept"
        );
    }
    assert!(
        h.adapters.objects.head(stray).await.unwrap().is_none(),
        "the stray run stays"
    );
}
