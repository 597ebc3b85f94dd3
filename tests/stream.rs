//! The speed and serving layers end to end through the real handlers:
//! Kinesis events in the event source mapping's shape (from the stand-in),
//! delivered more than once, with poison, duplicates and late events.

use serde_json::{json, Value};
use tributary_core::ports::StreamRecord;
use tributary_core::ports::{ObjectStore, StateStore};
use tributary_core::stream::reconcile;
use tributary_core::stream::serving::{self, realtime_windows, ViewCache};
use tributary_core::stream::speed;
use tributary_core::stream::windows::total;
use tributary_e2e::{date, Harness};
use tributary_handlers::invoke;
use tributary_local::kinesis::KinesisStandIn;

fn config(naive: &str) -> String {
    format!(
        r#"
[datasets.orders]
[[datasets.orders.columns]]
name = "order_id"
type = "string"

[streams.orders]
event_id = "order_id"
event_time = "order_ts"
dimensions = ["product_id"]
measures = ["amount"]
window = "1m"
allowed_lateness = "2m"
serve_as = "sales"
deviation_threshold_pct = 10.0

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
naive_timestamps = "{naive}"
"#
    )
}

fn order(id: &str, product: &str, amount: f64, ts: &str) -> String {
    json!({"order_id": id, "product_id": product, "amount": amount, "order_ts": ts}).to_string()
}

/// 10:00:00 + `seconds`, as an RFC 3339 time on 2025-12-03.
fn at(seconds: u32) -> String {
    format!(
        "2025-12-03T{:02}:{:02}:{:02}Z",
        10 + seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

async fn put(h: &Harness, lines: &[String]) -> Vec<StreamRecord> {
    let kinesis = KinesisStandIn::new("orders", 1, &h.adapters.state);
    let records = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("key-{i}"), l.as_bytes().to_vec()))
        .collect();
    kinesis
        .put_records_at(records, chrono::Utc::now())
        .await
        .unwrap()
}

async fn deliver(h: &Harness, records: &[StreamRecord]) -> Value {
    let kinesis = KinesisStandIn::new("orders", 1, &h.adapters.state);
    let response = invoke(&h.services(), "stream-aggregate", kinesis.event(records))
        .await
        .unwrap();
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    response["streams"]["orders"].clone()
}

/// The realtime total (count, sum) of the date.
async fn realtime_total(h: &Harness) -> (u64, f64) {
    let windows = realtime_windows(&h.services(), "orders", date("2025-12-03"))
        .await
        .unwrap();
    let mut count = 0;
    let mut sum = 0.0;
    for groups in windows.values() {
        let t = total(groups);
        count += t.count;
        sum += t.sum.first().copied().unwrap_or(0.0);
    }
    (count, (sum * 100.0).round() / 100.0)
}

#[tokio::test]
async fn a_batch_delivered_five_times_counts_once() {
    let h = Harness::new(&config("reject"));
    let lines: Vec<String> = (0..50)
        .map(|i| order(&format!("O{i}"), "P1", 2.0, &at(i * 7)))
        .collect();
    let records = put(&h, &lines).await;
    let first = deliver(&h, &records).await;
    assert_eq!(first["aggregated"], 50);
    let once = realtime_total(&h).await;
    assert_eq!(once, (50, 100.0));
    for _ in 0..4 {
        let again = deliver(&h, &records).await;
        assert_eq!(again["aggregated"], 0, "{again}");
        assert_eq!(again["redelivered"], 50, "{again}");
    }
    // Bisected halves and an overlapping retry change nothing either.
    deliver(&h, &records[..25]).await;
    deliver(&h, &records[20..]).await;
    assert_eq!(realtime_total(&h).await, once);
}

#[tokio::test]
async fn a_batch_that_died_half_way_is_completed_by_its_retry_not_repeated() {
    let h = Harness::new(&config("reject"));
    // Windows 10:00 and 10:01; the first attempt got only 10:00 written.
    let lines: Vec<String> = (0..20)
        .map(|i| order(&format!("O{i}"), "P1", 1.0, &at(i * 6)))
        .collect();
    let records = put(&h, &lines).await;
    deliver(&h, &records[..10]).await;
    // The checkpoint of that attempt was lost with it: undo it.
    h.adapters
        .state
        .delete(
            "rt#orders",
            "shard#shardId-000000000000",
            tributary_core::ports::Condition::Always,
        )
        .await
        .unwrap();
    let retry = deliver(&h, &records).await;
    assert_eq!(retry["aggregated"], 10, "{retry}");
    assert_eq!(retry["redelivered"], 10, "{retry}");
    assert_eq!(realtime_total(&h).await, (20, 20.0));
}

#[tokio::test]
async fn poison_goes_to_the_dlq_and_every_record_is_accounted_for() {
    let h = Harness::new(&config("reject"));
    let mut lines = Vec::new();
    for i in 0..90 {
        lines.push(order(&format!("O{i}"), "P1", 1.5, &at(i * 2)));
        if i % 9 == 0 {
            lines.push(match i % 4 {
                0 => "{\"order_id\": \"X\", \"amount\": ".to_string(),
                1 => order(&format!("B{i}"), "P1", 1.0, "yesterday"),
                2 => json!({"order_id": format!("B{i}"), "product_id": "P1", "order_ts": at(i)})
                    .to_string(),
                _ => json!({"order_id": format!("B{i}"), "product_id": "P1", "amount": "1", "order_ts": at(i)})
                    .to_string(),
            });
        }
    }
    assert_eq!(lines.len(), 100);
    let records = put(&h, &lines).await;
    let outcome = deliver(&h, &records).await;
    let n = |k: &str| outcome[k].as_u64().unwrap();
    assert_eq!(n("dlq"), 10, "{outcome}");
    assert_eq!(
        n("input"),
        n("aggregated") + n("dlq") + n("late"),
        "{outcome}"
    );
    let letters = speed::dead_letters(&h.services(), "orders").await.unwrap();
    assert_eq!(letters.len(), 10);
    for (key, letter) in &letters {
        assert!(key.starts_with("dlq/orders/date="), "{key}");
        assert!(!letter.error.is_empty() && !letter.data_base64.is_empty());
        assert!(letter.sequence_number.starts_with("49"));
        assert_eq!(letter.shard_id, "shardId-000000000000");
    }
    assert!(letters
        .iter()
        .any(|(_, l)| l.error.contains("\"amount\" is missing")));
    assert!(letters
        .iter()
        .any(|(_, l)| l.error.contains("should be float")));
}

#[tokio::test]
async fn duplicates_by_event_id_are_dropped() {
    let h = Harness::new(&config("reject"));
    let a = order("O1", "P1", 5.0, &at(0));
    let records = put(&h, &[a.clone(), order("O2", "P1", 5.0, &at(1)), a.clone()]).await;
    let o = deliver(&h, &records).await;
    assert_eq!(
        (o["aggregated"].as_u64(), o["duplicates"].as_u64()),
        (Some(2), Some(1))
    );
    // Re-sent later by the producer: a new record, the same event.
    let again = put(&h, &[a]).await;
    assert_eq!(deliver(&h, &again).await["duplicates"], 1);
    assert_eq!(realtime_total(&h).await, (2, 10.0));
}

/// 100 on-time orders of 10.00 in hour 10 (10:00-10:49), then the stream
/// moves to 11:10 and `late` more orders of hour 10 arrive.
async fn hour_with_late_orders(h: &Harness, late: u32) -> Value {
    let mut lines: Vec<String> = (0..100)
        .map(|i| order(&format!("O{i}"), "P1", 10.0, &at(i * 30)))
        .collect();
    lines.push(order("N1", "P2", 1.0, &at(4200)));
    let on_time = put(h, &lines).await;
    deliver(h, &on_time).await;
    let late_lines: Vec<String> = (0..late)
        .map(|i| order(&format!("L{i}"), "P1", 10.0, &at(600 + i)))
        .collect();
    let late_records = put(h, &late_lines).await;
    deliver(h, &late_records).await
}

#[tokio::test]
async fn late_events_are_archived_mark_their_window_and_are_corrected_by_reconcile() {
    let h = Harness::new(&config("reject"));
    let outcome = hour_with_late_orders(&h, 12).await;
    assert_eq!(outcome["late"], 12, "{outcome}");
    let svc = h.services();
    let late = h
        .adapters
        .objects
        .list("late/orders/date=2025-12-03/")
        .await
        .unwrap();
    assert_eq!(late.len(), 1, "{late:?}");
    let dirty = h.adapters.state.query("rt#orders").await.unwrap();
    assert!(
        dirty
            .iter()
            .any(|(sk, _)| sk.starts_with("dirty#2025-12-03T10:10")),
        "{dirty:?}"
    );

    invoke(
        &svc,
        "build-views",
        json!({"stream": "orders", "date": "2025-12-03"}),
    )
    .await
    .unwrap();
    let report = reconcile::reconcile(&svc, "orders", None, chrono::Utc::now())
        .await
        .unwrap();
    let hour10 = report
        .deviations
        .iter()
        .find(|d| d.granularity == "hour" && d.period_start == "2025-12-03T10:00:00Z")
        .unwrap();
    assert_eq!((hour10.batch, hour10.realtime), (1120.0, 1000.0));
    assert!(report.corrected_windows > 0 && report.dirty_windows_cleared > 0);
    // Corrected: realtime now equals batch, and the next check says so.
    assert_eq!(realtime_total(&h).await, (113, 1121.0));
    let next = reconcile::reconcile(
        &svc,
        "orders",
        Some(vec![date("2025-12-03")]),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(next.max_deviation_pct, 0.0, "{next:?}");
    assert_eq!(next.corrected_windows, 0);
    let history = reconcile::history(&svc, "orders", chrono::Utc::now())
        .await
        .unwrap();
    assert!(history.len() >= 2 * report.deviations.len());
}

async fn alerts_after(late: u32) -> (f64, u64, usize) {
    let h = Harness::new(&config("reject"));
    hour_with_late_orders(&h, late).await;
    let svc = h.services();
    invoke(
        &svc,
        "build-views",
        json!({"stream": "orders", "date": "2025-12-03"}),
    )
    .await
    .unwrap();
    let report = reconcile::reconcile(&svc, "orders", None, chrono::Utc::now())
        .await
        .unwrap();
    let hour10 = report
        .deviations
        .iter()
        .find(|d| d.granularity == "hour" && d.period_start == "2025-12-03T10:00:00Z")
        .unwrap()
        .deviation_pct;
    let outbox = std::fs::read_to_string(h.dir.path().join("outbox.jsonl")).unwrap_or_default();
    let alerts = outbox
        .lines()
        .filter(|l| l.contains("deviates from batch"))
        .count();
    (hour10, report.alerts, alerts)
}

#[tokio::test]
async fn the_deviation_alert_fires_at_12_percent_and_not_at_8() {
    // Batch 1000 + 10 × late; realtime 1000.
    let (pct12, alerts12, sent12) = alerts_after(14).await; // 140/1140 = 12.3 %
    assert!(pct12 > 12.0 && pct12 < 12.5, "{pct12}");
    assert!(alerts12 >= 1 && sent12 == 1, "{alerts12} {sent12}");
    let (pct8, alerts8, sent8) = alerts_after(9).await; // 90/1090 = 8.3 %
    assert!(pct8 > 8.0 && pct8 < 8.5, "{pct8}");
    assert_eq!((alerts8, sent8), (0, 0));
}

#[tokio::test]
async fn the_merged_query_has_no_gap_and_no_double_count_at_the_seam() {
    let h = Harness::new(&config("reject"));
    // Day 1 (closed, with a batch view) and day 2 (realtime only), events
    // in the last minute of day 1 and the first of day 2.
    let lines = vec![
        order("A", "P1", 1.0, "2025-12-03T23:59:30Z"),
        order("B", "P1", 2.0, "2025-12-03T23:59:59Z"),
        order("C", "P1", 4.0, "2025-12-04T00:00:00Z"),
        order("D", "P2", 8.0, "2025-12-04T00:00:30Z"),
    ];
    let records = put(&h, &lines).await;
    deliver(&h, &records).await;
    let svc = h.services();
    invoke(
        &svc,
        "build-views",
        json!({"stream": "orders", "date": "2025-12-03"}),
    )
    .await
    .unwrap();
    let cache = ViewCache::default();
    let config = h.config.streams["orders"].clone();
    let q = |params: &[(&str, &str)]| {
        serving::parse_sales_query(
            &config,
            &params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        )
        .unwrap()
    };
    let hourly = serving::sales(
        &svc,
        "orders",
        &q(&[
            ("start", "2025-12-03T22:00:00Z"),
            ("end", "2025-12-04T02:00:00Z"),
            ("granularity", "hour"),
        ]),
        &cache,
    )
    .await
    .unwrap();
    let series = hourly["series"].as_array().unwrap();
    assert_eq!(series.len(), 4, "every hour present: {hourly}");
    let sources: Vec<&str> = series
        .iter()
        .map(|p| p["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["batch", "batch", "realtime", "realtime"]);
    assert_eq!(hourly["total"]["count"], 4);
    assert_eq!(hourly["total"]["sum"]["amount"], 15.0);
    let segments = hourly["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 2);
    assert_eq!(segments[0]["end"], segments[1]["start"]);
    assert_eq!(segments[1]["start"], "2025-12-04T00:00:00Z");
    // The same through the function URL, with a filter and as days.
    let url = json!({"version": "2.0", "rawPath": "/sales",
        "rawQueryString": "start=2025-12-03&end=2025-12-05&granularity=day&product_id=P1",
        "requestContext": {"http": {"method": "GET", "path": "/sales"}}});
    let r = invoke(&svc, "query-api", url).await.unwrap();
    assert_eq!(r["statusCode"], 200, "{r}");
    let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    let counts: Vec<u64> = body["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [2, 1]);
    // Bad parameters: 400 with a message.
    for bad in [
        "start=2025-12-03",
        "start=x&end=2025-12-04",
        "start=2025-12-04&end=2025-12-03",
        "start=2025-12-03&end=2025-12-04&granularity=week",
        "start=2025-12-03&end=2025-12-04&colour=red",
    ] {
        let url = json!({"version": "2.0", "rawPath": "/sales", "rawQueryString": bad,
            "requestContext": {"http": {"method": "GET", "path": "/sales"}}});
        let r = invoke(&svc, "query-api", url).await.unwrap();
        assert_eq!(r["statusCode"], 400, "{bad}: {r}");
        assert!(r["body"].as_str().unwrap().contains("error"));
    }
}

#[tokio::test]
async fn a_new_batch_view_invalidates_the_cached_one() {
    let h = Harness::new(&config("reject"));
    let records = put(&h, &[order("A", "P1", 1.0, "2025-12-03T10:00:00Z")]).await;
    deliver(&h, &records).await;
    let svc = h.services();
    let build = || {
        invoke(
            &svc,
            "build-views",
            json!({"stream": "orders", "date": "2025-12-03"}),
        )
    };
    build().await.unwrap();
    let cache = ViewCache::default();
    let config = h.config.streams["orders"].clone();
    let q = serving::parse_sales_query(
        &config,
        &[
            ("start".into(), "2025-12-03".into()),
            ("end".into(), "2025-12-04".into()),
            ("granularity".into(), "day".into()),
        ],
    )
    .unwrap();
    let count = |v: Value| v["total"]["count"].as_u64().unwrap();
    assert_eq!(
        count(serving::sales(&svc, "orders", &q, &cache).await.unwrap()),
        1
    );
    let more = put(&h, &[order("B", "P1", 1.0, "2025-12-03T10:00:05Z")]).await;
    deliver(&h, &more).await;
    // Still the published view until a new one is published.
    assert_eq!(
        count(serving::sales(&svc, "orders", &q, &cache).await.unwrap()),
        1
    );
    std::thread::sleep(std::time::Duration::from_millis(2));
    build().await.unwrap();
    assert_eq!(
        count(serving::sales(&svc, "orders", &q, &cache).await.unwrap()),
        2
    );
}

#[tokio::test]
async fn dlq_replay_after_fixing_the_schema_recovers_each_record_once() {
    let strict = Harness::new(&config("reject"));
    let lines = vec![
        order("A", "P1", 1.0, "2025-12-03T10:00:00Z"),
        order("N1", "P1", 2.0, "2025-12-03T10:00:10"), // no UTC offset
        order("N2", "P1", 4.0, "2025-12-03T10:00:20"),
    ];
    let records = put(&strict, &lines).await;
    assert_eq!(deliver(&strict, &records).await["dlq"], 2);
    // The fix: naive timestamps are UTC. Same workspace, new config.
    let fixed = tributary_core::config::Config::parse(&config("assume_utc"), "fixed.toml").unwrap();
    let svc = tributary_core::services::Services {
        config: &fixed,
        ..strict.services()
    };
    let first = speed::replay_dead_letters(&svc, "orders", chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((first.replayed, first.still_poison), (2, 0));
    let second = speed::replay_dead_letters(&svc, "orders", chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(second.replayed, 0);
    assert_eq!(realtime_total(&strict).await, (3, 7.0));
    assert!(speed::dead_letters(&svc, "orders")
        .await
        .unwrap()
        .is_empty());
    // Replayed events reach the batch layer too.
    let built = invoke(
        &svc,
        "build-views",
        json!({"stream": "orders", "date": "2025-12-03"}),
    )
    .await
    .unwrap();
    assert_eq!(built["built"][0]["events"], 3, "{built}");
}

/// The local state store, except that the `fail_at`-th write of a window
/// item fails with a transient error (a throttled DynamoDB write).
struct ThrottledWindows<'a> {
    inner: &'a dyn StateStore,
    window_puts: std::sync::atomic::AtomicU32,
    fail_at: u32,
}

#[async_trait::async_trait]
impl StateStore for ThrottledWindows<'_> {
    async fn get(
        &self,
        pk: &str,
        sk: &str,
    ) -> tributary_core::ports::PortResult<Option<tributary_core::ports::Versioned>> {
        self.inner.get(pk, sk).await
    }
    async fn put(
        &self,
        pk: &str,
        sk: &str,
        value: Value,
        condition: tributary_core::ports::Condition,
    ) -> tributary_core::ports::PortResult<u64> {
        if pk.starts_with("rt#orders#") {
            let n = self
                .window_puts
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1;
            if n == self.fail_at {
                return Err(tributary_core::ports::PortError::transient(
                    format!("writing {pk}/{sk}"),
                    "ProvisionedThroughputExceededException",
                ));
            }
        }
        self.inner.put(pk, sk, value, condition).await
    }
    async fn delete(
        &self,
        pk: &str,
        sk: &str,
        condition: tributary_core::ports::Condition,
    ) -> tributary_core::ports::PortResult<()> {
        self.inner.delete(pk, sk, condition).await
    }
    async fn query(
        &self,
        pk: &str,
    ) -> tributary_core::ports::PortResult<Vec<(String, tributary_core::ports::Versioned)>> {
        self.inner.query(pk).await
    }
    async fn put_new_items(
        &self,
        items: Vec<(String, String, Value)>,
        now: i64,
    ) -> tributary_core::ports::PortResult<Vec<Option<Value>>> {
        self.inner.put_new_items(items, now).await
    }
    async fn transact(
        &self,
        writes: Vec<tributary_core::ports::TransactWrite>,
    ) -> tributary_core::ports::PortResult<()> {
        self.inner.transact(writes).await
    }
}

#[tokio::test]
async fn a_transient_failure_answers_with_a_partial_batch_response_and_the_retry_counts_once() {
    for fail_at in [1, 2] {
        let h = Harness::new(&config("reject"));
        // Two windows (10:00 and 10:01), 10 orders each.
        let lines: Vec<String> = (0..20)
            .map(|i| order(&format!("O{i}"), "P1", 1.0, &at(i * 6)))
            .collect();
        let records = put(&h, &lines).await;
        let throttled = ThrottledWindows {
            inner: &h.adapters.state,
            window_puts: Default::default(),
            fail_at,
        };
        let svc = tributary_core::services::Services {
            state: &throttled,
            ..h.services()
        };
        let kinesis = KinesisStandIn::new("orders", 1, &h.adapters.state);
        let response = invoke(&svc, "stream-aggregate", kinesis.event(&records))
            .await
            .unwrap();
        assert_eq!(
            response["batchItemFailures"],
            json!([{"itemIdentifier": records[0].sequence_number}]),
            "fail_at {fail_at}: {response}"
        );
        // Lambda retries from the record named, here the whole batch.
        let retry = deliver(&h, &records).await;
        assert_eq!(
            retry["aggregated"].as_u64().unwrap(),
            20 - 10 * (fail_at as u64 - 1),
            "{retry}"
        );
        assert_eq!(realtime_total(&h).await, (20, 20.0), "fail_at {fail_at}");
        assert_eq!(retry["duplicates"], 0, "{retry}");
    }
}

/// Deployed, a stream is named `<prefix>-<stream>` (several environments
/// share an account): its records count for the configured stream.
#[tokio::test]
async fn a_deployed_stream_name_maps_to_its_configured_stream() {
    let h = Harness::new(&config("reject"));
    let lines: Vec<String> = (0..5)
        .map(|i| order(&format!("O{i}"), "P1", 2.0, &at(i * 7)))
        .collect();
    let records = put(&h, &lines).await;
    let event =
        tributary_local::kinesis::event_source_mapping_event("tributary-dev-orders", &records);
    let response = invoke(&h.services(), "stream-aggregate", event)
        .await
        .unwrap();
    assert_eq!(response["streams"]["orders"]["aggregated"], 5, "{response}");
    assert_eq!(realtime_total(&h).await, (5, 10.0));
}

async fn build_views(h: &Harness, day: &str) {
    invoke(
        &h.services(),
        "build-views",
        json!({"stream": "orders", "date": day}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn reconcile_checks_only_the_dates_that_changed_and_its_history_expires() {
    let h = Harness::new(&config("reject"));
    let records = put(
        &h,
        &[
            order("A", "P1", 1.0, "2025-12-03T10:00:00Z"),
            order("B", "P1", 2.0, "2025-12-04T10:00:00Z"),
        ],
    )
    .await;
    deliver(&h, &records).await;
    build_views(&h, "2025-12-03").await;
    build_views(&h, "2025-12-04").await;
    let svc = h.services();
    let now = chrono::Utc::now();
    let first = reconcile::reconcile(&svc, "orders", None, now)
        .await
        .unwrap();
    assert_eq!(first.dates, vec![date("2025-12-03"), date("2025-12-04")]);
    let checks = reconcile::history(&svc, "orders", now).await.unwrap().len();
    // Nothing changed: the next hourly run checks nothing and keeps nothing.
    let idle = reconcile::reconcile(&svc, "orders", None, now)
        .await
        .unwrap();
    assert!(idle.dates.is_empty(), "{idle:?}");
    assert_eq!(
        reconcile::history(&svc, "orders", now).await.unwrap().len(),
        checks
    );
    // New events of 12-04 (a shard that was behind): only 12-04 is checked.
    let more = put(&h, &[order("C", "P2", 4.0, "2025-12-04T11:00:00Z")]).await;
    deliver(&h, &more).await;
    let after = reconcile::reconcile(&svc, "orders", None, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(after.dates, vec![date("2025-12-04")], "{after:?}");
    // Checks expire after reconcile_history (30 days by default); the
    // retention sweep removes them where the store has no TTL.
    let later = now + chrono::Duration::days(31);
    assert!(reconcile::history(&svc, "orders", later)
        .await
        .unwrap()
        .is_empty());
    let swept = tributary_core::retention::retention_sweep(&svc, later.date_naive(), false)
        .await
        .unwrap();
    assert!(
        swept.iter().any(|d| d.layer == "reconcile-history"),
        "{swept:?}"
    );
    assert!(h
        .adapters
        .state
        .query(&reconcile::history_pk("orders"))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn late_data_for_a_built_day_makes_its_views_stale_until_rebuilt() {
    let h = Harness::new(&config("reject"));
    let records = put(&h, &[order("A", "P1", 1.0, "2025-12-03T10:00:00Z")]).await;
    deliver(&h, &records).await;
    build_views(&h, "2025-12-03").await;
    let svc = h.services();
    assert!(tributary_core::stream::views::stale_dates(&svc, "orders")
        .await
        .unwrap()
        .is_empty());
    // After the nightly build, an event of that day arrives.
    let late = put(&h, &[order("L", "P1", 5.0, "2025-12-03T10:30:00Z")]).await;
    deliver(&h, &late).await;
    assert_eq!(
        tributary_core::stream::views::stale_dates(&svc, "orders")
            .await
            .unwrap(),
        vec![date("2025-12-03")]
    );
    // The next reconcile rebuilds the day's views first: batch counts it.
    let report = reconcile::reconcile(&svc, "orders", None, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(report.views_rebuilt, vec![date("2025-12-03")], "{report:?}");
    let config = h.config.streams["orders"].clone();
    let params: Vec<(String, String)> = [
        ("start", "2025-12-03"),
        ("end", "2025-12-04"),
        ("granularity", "day"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let answer = serving::sales(
        &svc,
        "orders",
        &serving::parse_sales_query(&config, &params).unwrap(),
        &ViewCache::default(),
    )
    .await
    .unwrap();
    assert_eq!(answer["total"]["count"], 2, "{answer}");
    assert_eq!(answer["series"][0]["source"], "batch");
    assert!(
        answer.to_string().contains("late data"),
        "the answer says the segment was rebuilt for late data: {answer}"
    );
    assert!(tributary_core::stream::views::stale_dates(&svc, "orders")
        .await
        .unwrap()
        .is_empty());
}

/// Every state-store call a consumer makes, by method and partition key
/// kind (the part before the first `#`).
struct CountingState<'a> {
    inner: &'a dyn StateStore,
    calls: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl CountingState<'_> {
    fn count(&self, method: &str, pk: &str) {
        let kind = pk.split('#').next().unwrap_or_default();
        *self
            .calls
            .lock()
            .unwrap()
            .entry(format!("{method} {kind}"))
            .or_default() += 1;
    }
}

#[async_trait::async_trait]
impl StateStore for CountingState<'_> {
    async fn get(
        &self,
        pk: &str,
        sk: &str,
    ) -> tributary_core::ports::PortResult<Option<tributary_core::ports::Versioned>> {
        self.count("get", pk);
        self.inner.get(pk, sk).await
    }
    async fn put(
        &self,
        pk: &str,
        sk: &str,
        value: Value,
        condition: tributary_core::ports::Condition,
    ) -> tributary_core::ports::PortResult<u64> {
        self.count("put", pk);
        self.inner.put(pk, sk, value, condition).await
    }
    async fn delete(
        &self,
        pk: &str,
        sk: &str,
        condition: tributary_core::ports::Condition,
    ) -> tributary_core::ports::PortResult<()> {
        self.count("delete", pk);
        self.inner.delete(pk, sk, condition).await
    }
    async fn query(
        &self,
        pk: &str,
    ) -> tributary_core::ports::PortResult<Vec<(String, tributary_core::ports::Versioned)>> {
        self.count("query", pk);
        self.inner.query(pk).await
    }
    async fn put_new_items(
        &self,
        items: Vec<(String, String, Value)>,
        now: i64,
    ) -> tributary_core::ports::PortResult<Vec<Option<Value>>> {
        self.count("put_new_items", items.first().map_or("", |i| i.0.as_str()));
        self.inner.put_new_items(items, now).await
    }
    async fn transact(
        &self,
        writes: Vec<tributary_core::ports::TransactWrite>,
    ) -> tributary_core::ports::PortResult<()> {
        self.count("transact", writes.first().map_or("", |w| w.pk.as_str()));
        self.inner.transact(writes).await
    }
}

/// At 10,000 events/s the event-id claims must not be one serial write per
/// event on one hot key: a batch of 100 records claims its ids in one call,
/// spread over the sharded claim keys, and the consumer's other state calls
/// do not grow with the records either.
#[tokio::test]
async fn a_batch_of_100_records_claims_its_event_ids_in_one_call_over_sharded_keys() {
    let h = Harness::new(&config("reject"));
    let lines: Vec<String> = (0..100)
        .map(|i| order(&format!("O{i}"), "P1", 1.0, &at(i % 50)))
        .collect();
    let records = put(&h, &lines).await;
    let counting = CountingState {
        inner: &h.adapters.state,
        calls: Default::default(),
    };
    let svc = tributary_core::services::Services {
        state: &counting,
        ..h.services()
    };
    let kinesis = KinesisStandIn::new("orders", 1, &h.adapters.state);
    let response = invoke(&svc, "stream-aggregate", kinesis.event(&records))
        .await
        .unwrap();
    assert_eq!(
        response["streams"]["orders"]["aggregated"], 100,
        "{response}"
    );
    let calls = counting.calls.lock().unwrap().clone();
    println!("state-store calls for a batch of 100 records: {calls:?}");
    assert_eq!(calls.get("put_new_items dedupe"), Some(&1), "{calls:?}");
    // A constant per batch, never per record: watermarks, window state, and
    // the hour's counts the console reads (one get and one put).
    let total: u64 = calls.values().sum();
    assert!(total <= 14, "{total} calls for 100 records: {calls:?}");
    assert_eq!(calls.get("put rt_stats"), Some(&1), "{calls:?}");
    // The claims landed on many shards, none holding most of them.
    let mut shards = std::collections::BTreeMap::new();
    for i in 0..100 {
        *shards
            .entry(tributary_core::stream::dedupe_pk(
                "orders",
                &format!("O{i}"),
            ))
            .or_insert(0u32) += 1;
    }
    assert!(shards.len() > 40, "{shards:?}");
    assert!(shards.values().all(|&n| n <= 8), "{shards:?}");
    // Delivered again, every id is already claimed: nothing counts twice.
    let again = invoke(&h.services(), "stream-aggregate", kinesis.event(&records))
        .await
        .unwrap();
    assert_eq!(realtime_total(&h).await.0, 100, "{again}");
}

/// Every delivered batch adds to its processing hour's counts, redeliveries
/// apart: what the console's stream page shows without reading the archive.
#[tokio::test]
async fn each_hour_counts_what_its_batches_did() {
    let h = Harness::new(&config("reject"));
    let mut lines: Vec<String> = (0..20)
        .map(|i| order(&format!("O{i}"), "P1", 1.0, &at(i * 3)))
        .collect();
    lines.push(order("O3", "P1", 1.0, &at(9)));
    lines.push("not json".to_string());
    let records = put(&h, &lines).await;
    deliver(&h, &records).await;
    deliver(&h, &records[..5]).await;
    let hours =
        tributary_core::stream::stats::recent(&h.adapters.state, "orders", chrono::Utc::now(), 3)
            .await
            .unwrap();
    assert_eq!(hours.len(), 3);
    let now = &hours[2].1;
    assert_eq!(
        (
            now.input,
            now.aggregated,
            now.duplicates,
            now.dlq,
            now.redelivered
        ),
        (27, 20, 1, 1, 5),
        "{hours:?}"
    );
    assert_eq!(hours[0].1.input, 0, "quiet hours are zeros");
}
