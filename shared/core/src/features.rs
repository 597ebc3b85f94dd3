//! Feature engineering (scenarios 1 and 5): user, item and behaviour
//! features over sliding windows of published partitions, joined, scaled,
//! scored, and published to `features/` and the online store.
//!
//! Files, per run: `features/<set>/date=D/run=R/{user,item,behaviour}.jsonl`
//! (one job each, run in parallel by the state machine), then
//! `users.jsonl`, `items.jsonl`, `scaling.json`, `quality.json`; publishing
//! writes `features/<set>/date=D/_current.json` (one put) and upserts the
//! latest values per entity into the state store (`online#<set>#user`,
//! `online#<set>#item`), never replacing newer values with older ones.

use crate::config::FeatureSetConfig;
use crate::error::{UseCaseError, UseCaseResult};
use crate::layout::{partition_prefix, Layer};
use crate::ports::PortError;
use crate::published::{self, TextRow};
use crate::services::Services;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    User,
    Item,
    Behaviour,
}

impl Job {
    pub fn parse(s: &str) -> Option<Job> {
        match s {
            "user" => Some(Job::User),
            "item" => Some(Job::Item),
            "behaviour" => Some(Job::Behaviour),
            _ => None,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Job::User => "user",
            Job::Item => "item",
            Job::Behaviour => "behaviour",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    pub job: Job,
    pub entities: usize,
    pub rows_read: usize,
    pub dates_read: Vec<NaiveDate>,
    pub dates_missing: Vec<NaiveDate>,
}

fn feature_set<'a>(svc: &'a Services<'_>, name: &str) -> UseCaseResult<&'a FeatureSetConfig> {
    svc.config.features.get(name).ok_or_else(|| {
        UseCaseError::BadRequest(format!(
            "feature set {name:?} is not defined in pipeline.toml (known: {})",
            svc.config
                .features
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

fn run_prefix(set: &str, date: NaiveDate, run_id: &str) -> String {
    format!(
        "{}run={run_id}/",
        partition_prefix(Layer::Features, set, date)
    )
}

async fn put_json_lines(svc: &Services<'_>, key: &str, rows: &[Value]) -> UseCaseResult<()> {
    crate::jsonl::put(svc.objects, key, rows).await
}

async fn get_json_lines(svc: &Services<'_>, key: &str) -> UseCaseResult<Vec<Value>> {
    crate::jsonl::get(svc.objects, key).await?.ok_or_else(|| {
        UseCaseError::BadRequest(format!(
            "{key} does not exist: an earlier step of this run has not written it"
        ))
    })
}

async fn put_json(svc: &Services<'_>, key: &str, v: &Value) -> UseCaseResult<()> {
    crate::jsonl::put_json(svc.objects, key, v).await
}

pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
}

/// Running totals for one entity.
#[derive(Default)]
struct Acc {
    count: BTreeMap<u32, f64>,
    sum: BTreeMap<u32, f64>,
    clicks: BTreeMap<u32, f64>,
    views: BTreeMap<u32, f64>,
    buyers: BTreeSet<String>,
    last: Option<DateTime<Utc>>,
}

/// Compute one feature job for the window ending at `date` (inclusive).
pub async fn compute_job(
    svc: &Services<'_>,
    set: &str,
    job: Job,
    date: NaiveDate,
    run_id: &str,
) -> UseCaseResult<JobSummary> {
    let config = feature_set(svc, set)?;
    let longest = *config.windows_days.iter().max().unwrap_or(&30);
    let (dataset, columns): (&str, &[&str]) = match job {
        Job::User | Job::Item => (
            &config.orders_dataset,
            &["user_id", "product_id", "amount", "order_ts"],
        ),
        Job::Behaviour => (
            &config.events_dataset,
            &["user_id", "event_type", "event_ts"],
        ),
    };
    let mut accs: BTreeMap<String, Acc> = BTreeMap::new();
    let (mut dates_read, mut dates_missing, mut rows_read) = (Vec::new(), Vec::new(), 0usize);
    for back in 0..longest {
        let day = date - Duration::days(back as i64);
        let Some(rows) = published::rows(svc, dataset, day, columns).await? else {
            dates_missing.push(day);
            continue;
        };
        dates_read.push(day);
        rows_read += rows.len();
        for row in rows {
            accumulate(&mut accs, job, &row, back, &config.windows_days);
        }
    }
    let end = (date + Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc());
    let mut out = Vec::with_capacity(accs.len());
    for (entity, a) in &accs {
        let mut f = Map::new();
        f.insert("entity".into(), json!(entity));
        for w in &config.windows_days {
            let c = a.count.get(w).copied().unwrap_or(0.0);
            let s = a.sum.get(w).copied().unwrap_or(0.0);
            match job {
                Job::User => {
                    f.insert(format!("orders_{w}d"), json!(c));
                    f.insert(format!("amount_{w}d"), json!(round(s)));
                }
                Job::Item => {
                    f.insert(format!("orders_{w}d"), json!(c));
                    f.insert(format!("revenue_{w}d"), json!(round(s)));
                }
                Job::Behaviour => {
                    f.insert(format!("events_{w}d"), json!(c));
                    f.insert(
                        format!("clicks_{w}d"),
                        json!(a.clicks.get(w).copied().unwrap_or(0.0)),
                    );
                    f.insert(
                        format!("views_{w}d"),
                        json!(a.views.get(w).copied().unwrap_or(0.0)),
                    );
                }
            }
        }
        let long = a.sum.get(&longest).copied().unwrap_or(0.0);
        match job {
            Job::User => {
                f.insert(
                    format!("log1p_amount_{longest}d"),
                    json!(round(long.ln_1p())),
                );
            }
            Job::Item => {
                f.insert(
                    format!("log1p_revenue_{longest}d"),
                    json!(round(long.ln_1p())),
                );
                f.insert(format!("buyers_{longest}d"), json!(a.buyers.len()));
            }
            Job::Behaviour => {}
        }
        if let Some(last) = a.last {
            let prefix = if job == Job::Behaviour {
                "last_event"
            } else {
                "last_order"
            };
            f.insert(format!("{prefix}_hour"), json!(last.hour()));
            f.insert(
                format!("{prefix}_dow"),
                json!(last.weekday().num_days_from_monday()),
            );
            if let Some(end) = end {
                f.insert(
                    format!("days_since_{prefix}"),
                    json!(round((end - last).num_seconds() as f64 / 86_400.0)),
                );
            }
        }
        out.push(Value::Object(f));
    }
    let prefix = run_prefix(set, date, run_id);
    put_json_lines(svc, &format!("{prefix}{}.jsonl", job.name()), &out).await?;
    let summary = JobSummary {
        job,
        entities: out.len(),
        rows_read,
        dates_read,
        dates_missing,
    };
    put_json(
        svc,
        &format!("{prefix}{}.summary.json", job.name()),
        &json!(summary),
    )
    .await?;
    Ok(summary)
}

fn round(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn accumulate(
    accs: &mut BTreeMap<String, Acc>,
    job: Job,
    row: &TextRow,
    days_back: u32,
    windows: &[u32],
) {
    let get = |c: &str| row.get(c).and_then(|v| v.clone());
    let (entity, ts) = match job {
        Job::User => (get("user_id"), get("order_ts")),
        Job::Item => (get("product_id"), get("order_ts")),
        Job::Behaviour => (get("user_id"), get("event_ts")),
    };
    let Some(entity) = entity else { return };
    let a = accs.entry(entity).or_default();
    let amount = get("amount")
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    let event = get("event_type").unwrap_or_default();
    for w in windows.iter().filter(|w| days_back < **w) {
        *a.count.entry(*w).or_default() += 1.0;
        *a.sum.entry(*w).or_default() += amount;
        if event == "click" {
            *a.clicks.entry(*w).or_default() += 1.0;
        }
        if event == "view" {
            *a.views.entry(*w).or_default() += 1.0;
        }
    }
    if job == Job::Item {
        if let Some(u) = get("user_id") {
            a.buyers.insert(u);
        }
    }
    if let Some(t) = ts.as_deref().and_then(parse_ts) {
        a.last = Some(a.last.map_or(t, |l| l.max(t)));
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureQuality {
    pub set: String,
    pub date: NaiveDate,
    pub run_id: String,
    pub users: usize,
    pub items: usize,
    /// check → score in 0..1
    pub checks: BTreeMap<String, f64>,
    pub score: f64,
    pub threshold: f64,
    pub passed: bool,
}

/// The AND-join: user and behaviour features joined per user, standard
/// scaling with its statistics saved, and a quality score.
pub async fn merge(
    svc: &Services<'_>,
    set: &str,
    date: NaiveDate,
    run_id: &str,
) -> UseCaseResult<FeatureQuality> {
    let config = feature_set(svc, set)?;
    let prefix = run_prefix(set, date, run_id);
    let mut summaries = Vec::new();
    for job in [Job::User, Job::Item, Job::Behaviour] {
        let key = format!("{prefix}{}.summary.json", job.name());
        let bytes = svc.objects.get_bytes(&key).await.map_err(|e| match e {
            PortError::NotFound { .. } => UseCaseError::BadRequest(format!(
                "the {} feature job has not run for {set} {date} run {run_id}",
                job.name()
            )),
            other => other.into(),
        })?;
        let s: JobSummary = serde_json::from_slice(&bytes)
            .map_err(|e| UseCaseError::BadRequest(format!("{key}: {e}")))?;
        summaries.push(s);
    }
    let users = get_json_lines(svc, &format!("{prefix}user.jsonl")).await?;
    let behaviour = get_json_lines(svc, &format!("{prefix}behaviour.jsonl")).await?;
    let items = get_json_lines(svc, &format!("{prefix}item.jsonl")).await?;
    let mut joined: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for row in users.iter().chain(behaviour.iter()) {
        if let Some(obj) = row.as_object() {
            let entity = obj
                .get("entity")
                .and_then(|e| e.as_str())
                .unwrap_or_default()
                .to_string();
            joined.entry(entity).or_default().extend(obj.clone());
        }
    }
    let with_both = joined
        .values()
        .filter(|r| {
            r.keys().any(|k| k.starts_with("orders_")) && r.keys().any(|k| k.starts_with("events_"))
        })
        .count();
    // Standard scaling of every numeric feature; the statistics are saved
    // so serving and training scale the same way.
    let mut columns: BTreeSet<String> = BTreeSet::new();
    for r in joined.values() {
        columns.extend(
            r.iter()
                .filter(|(k, v)| *k != "entity" && v.is_number())
                .map(|(k, _)| k.clone()),
        );
    }
    let mut scaling = Map::new();
    let mut all_finite = true;
    for c in &columns {
        let values: Vec<f64> = joined
            .values()
            .map(|r| r.get(c).and_then(|v| v.as_f64()).unwrap_or(0.0))
            .collect();
        all_finite &= values.iter().all(|v| v.is_finite());
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        scaling.insert(c.clone(), json!({"mean": round(mean), "std": round(std)}));
        for r in joined.values_mut() {
            let v = r.get(c).and_then(|v| v.as_f64()).unwrap_or(0.0);
            let z = if std > 0.0 { (v - mean) / std } else { 0.0 };
            r.insert(format!("{c}_z"), json!(round(z)));
        }
    }
    let window_days = *config.windows_days.iter().max().unwrap_or(&30) as f64;
    let coverage = summaries
        .iter()
        .map(|s| s.dates_read.len() as f64 / window_days)
        .sum::<f64>()
        / summaries.len() as f64;
    let mut checks = BTreeMap::new();
    checks.insert("window_coverage".to_string(), round(coverage.min(1.0)));
    checks.insert(
        "entities_present".to_string(),
        if joined.is_empty() || items.is_empty() {
            0.0
        } else {
            1.0
        },
    );
    checks.insert(
        "finite_values".to_string(),
        if all_finite { 1.0 } else { 0.0 },
    );
    checks.insert(
        "join_coverage".to_string(),
        round(with_both as f64 / joined.len().max(1) as f64),
    );
    let score = round(checks.values().sum::<f64>() / checks.len() as f64);
    let users_out: Vec<Value> = joined.into_values().map(Value::Object).collect();
    put_json_lines(svc, &format!("{prefix}users.jsonl"), &users_out).await?;
    put_json_lines(svc, &format!("{prefix}items.jsonl"), &items).await?;
    put_json(
        svc,
        &format!("{prefix}scaling.json"),
        &Value::Object(scaling),
    )
    .await?;
    let quality = FeatureQuality {
        set: set.to_string(),
        date,
        run_id: run_id.to_string(),
        users: users_out.len(),
        items: items.len(),
        checks,
        score,
        threshold: config.quality_threshold,
        passed: score >= config.quality_threshold,
    };
    put_json(svc, &format!("{prefix}quality.json"), &json!(quality)).await?;
    Ok(quality)
}

/// Ask a person whether to publish a feature set whose quality is below
/// its threshold (the message lists each check's score).
pub async fn request_publish_approval(
    svc: &Services<'_>,
    asked: crate::orchestration::TaskAsking<'_>,
    quality: &FeatureQuality,
) -> UseCaseResult<crate::orchestration::ApprovalRequested> {
    let q = quality;
    let lines: Vec<String> = q
        .checks
        .iter()
        .map(|(check, score)| format!("  {check}: {score:.3}"))
        .collect();
    crate::orchestration::request_decision(
        svc,
        crate::orchestration::Decision {
            token: asked.token,
            execution: asked.execution,
            subject: &format!("Publish features {} {}?", q.set, q.date),
            purpose: &format!(
                "publish feature set {} for {}: quality {:.3} < {:.3}",
                q.set, q.date, q.score, q.threshold
            ),
            summary: json!({"kind": "feature_publish", "features": q.set, "date": q.date,
                            "run_id": q.run_id, "score": q.score, "threshold": q.threshold,
                            "checks": q.checks, "users": q.users, "items": q.items}),
            detail_lines: &lines,
            ttl: crate::orchestration::DECISION_TTL,
        },
    )
    .await
}

/// The OR-join target: reached by auto-publish or by an approval. Points
/// `_current.json` at the run and materialises the latest values per entity
/// into the online store.
pub async fn publish(
    svc: &Services<'_>,
    set: &str,
    date: NaiveDate,
    run_id: &str,
) -> UseCaseResult<Value> {
    let prefix = run_prefix(set, date, run_id);
    let mut online_updates = 0;
    let mut counts = Map::new();
    for (table, file) in [("user", "users.jsonl"), ("item", "items.jsonl")] {
        let rows = get_json_lines(svc, &format!("{prefix}{file}")).await?;
        counts.insert(table.into(), json!(rows.len()));
        let pk = format!("online#{set}#{table}");
        for row in rows {
            let Some(entity) = row
                .get("entity")
                .and_then(|e| e.as_str())
                .map(str::to_string)
            else {
                continue;
            };
            if upsert_latest(svc, &pk, &entity, date, run_id, row).await? {
                online_updates += 1;
            }
        }
    }
    let current = json!({"set": set, "date": date, "run_id": run_id, "location": prefix, "published_at": Utc::now(), "counts": counts});
    put_json(
        svc,
        &format!(
            "{}_current.json",
            partition_prefix(Layer::Features, set, date)
        ),
        &current,
    )
    .await?;
    Ok(json!({"location": prefix, "counts": counts, "online_updates": online_updates}))
}

/// Write an entity's features unless the store already holds a later date.
async fn upsert_latest(
    svc: &Services<'_>,
    pk: &str,
    entity: &str,
    date: NaiveDate,
    run_id: &str,
    features: Value,
) -> UseCaseResult<bool> {
    let mut written = false;
    crate::state::update(svc.state, pk, entity, |current: Option<Value>| {
        let as_of = current
            .as_ref()
            .and_then(|c| c.get("as_of")?.as_str().and_then(crate::layout::parse_date));
        written = as_of.is_none_or(|d| d <= date);
        written.then(|| json!({"as_of": date, "run_id": run_id, "features": features.clone()}))
    })
    .await?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)]) -> TextRow {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect()
    }

    #[test]
    fn windows_count_only_the_days_inside_them() {
        let mut accs = BTreeMap::new();
        let order = |amount: &str, ts: &str| {
            row(&[
                ("user_id", "7"),
                ("product_id", "P"),
                ("amount", amount),
                ("order_ts", ts),
            ])
        };
        accumulate(
            &mut accs,
            Job::User,
            &order("10", "2026-01-10T09:00:00Z"),
            0,
            &[7, 30],
        );
        accumulate(
            &mut accs,
            Job::User,
            &order("5", "2026-01-01T23:00:00Z"),
            9,
            &[7, 30],
        );
        let a = &accs["7"];
        assert_eq!(a.count[&7], 1.0);
        assert_eq!(a.count[&30], 2.0);
        assert_eq!(a.sum[&30], 15.0);
        assert_eq!(a.last.unwrap().hour(), 9);
    }

    #[test]
    fn timestamps_in_either_text_form() {
        assert!(parse_ts("2025-12-01T22:00:57Z").is_some());
        assert!(parse_ts("2025-12-01T22:00:57+00:00").is_some());
        assert!(parse_ts("2025-12-01 22:00:57.5").is_some());
        assert!(parse_ts("yesterday").is_none());
    }
}
