//! Training data with a point-in-time join, a simple recommendation model,
//! its evaluation on a held-out split, and activating a version.
//!
//! Point in time: an order placed on day D is joined with the feature
//! snapshot published for D-1 — features computed through the end of the
//! day before — so no row ever sees values from its own future.
//!
//! The model: for each customer segment (low / mid / high spend by the
//! scaled 'amount' feature of the snapshot), the top-N products by
//! recency-weighted purchases (weight halves every `half_life_days`), with a
//! global top-N for customers without a segment. It is evaluated on the
//! latest 20 % of rows (hit rate at N, against the global top-N as a
//! baseline), then refit on all rows and saved as a versioned artifact under
//! `models/<set>/version=V/`. Activation is a conditional write in the
//! state store, so two deployments cannot interleave.

use crate::error::{UseCaseError, UseCaseResult};
use crate::features::parse_ts;
use crate::layout::{partition_prefix, Layer};
use crate::ports::PortError;
use crate::published;
use crate::services::Services;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const TOP_N: usize = 5;
pub const HALF_LIFE_DAYS: f64 = 7.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRow {
    pub user_id: String,
    pub product_id: String,
    pub ts: DateTime<Utc>,
    pub segment: String,
    /// The feature snapshot date the row was joined with (always before ts).
    pub as_of: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub rows: usize,
    pub without_snapshot: usize,
    pub days: Vec<NaiveDate>,
}

fn run_prefix(set: &str, date: NaiveDate, run_id: &str) -> String {
    format!(
        "{}run={run_id}/",
        partition_prefix(Layer::Features, set, date)
    )
}

/// Segment from the scaled spend feature of a snapshot row.
pub fn segment_of(features: &Value) -> String {
    let z = features.as_object().and_then(|m| {
        m.iter()
            .filter(|(k, _)| k.starts_with("amount_") && k.ends_with("d_z"))
            .max_by_key(|(k, _)| {
                k.trim_start_matches("amount_")
                    .trim_end_matches("d_z")
                    .parse::<u32>()
                    .unwrap_or(0)
            })
            .and_then(|(_, v)| v.as_f64())
    });
    match z {
        Some(z) if z > 0.5 => "high".into(),
        Some(z) if z < -0.5 => "low".into(),
        Some(_) => "mid".into(),
        None => "unknown".into(),
    }
}

/// The user snapshot published for a date: user id → features.
async fn snapshot(
    svc: &Services<'_>,
    set: &str,
    date: NaiveDate,
) -> UseCaseResult<Option<BTreeMap<String, Value>>> {
    let current_key = format!(
        "{}_current.json",
        partition_prefix(Layer::Features, set, date)
    );
    let current: Value = match svc.objects.get_bytes(&current_key).await {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| UseCaseError::BadRequest(format!("{current_key}: {e}")))?,
        Err(PortError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let location = current["location"].as_str().unwrap_or_default();
    let rows: Vec<Value> = crate::jsonl::get(svc.objects, &format!("{location}users.jsonl"))
        .await?
        .unwrap_or_default();
    Ok(Some(
        rows.into_iter()
            .filter_map(|r| Some((r.get("entity")?.as_str()?.to_string(), r)))
            .collect(),
    ))
}

/// Orders of the last `lookback_days` up to `date`, each joined with the
/// snapshot of the day before it.
pub async fn build_training_set(
    svc: &Services<'_>,
    set: &str,
    date: NaiveDate,
    run_id: &str,
    lookback_days: u32,
) -> UseCaseResult<TrainingSummary> {
    let config = svc.config.features.get(set).ok_or_else(|| {
        UseCaseError::BadRequest(format!(
            "feature set {set:?} is not defined in pipeline.toml"
        ))
    })?;
    let mut rows = Vec::new();
    let mut without = 0;
    let mut days = Vec::new();
    for back in (0..lookback_days).rev() {
        let day = date - Duration::days(back as i64);
        let Some(orders) = published::rows(
            svc,
            &config.orders_dataset,
            day,
            &["user_id", "product_id", "order_ts"],
        )
        .await?
        else {
            continue;
        };
        let as_of = day - Duration::days(1);
        let snap = snapshot(svc, set, as_of).await?;
        days.push(day);
        for o in orders {
            let get = |c: &str| o.get(c).cloned().flatten();
            let (Some(user), Some(product), Some(ts)) = (
                get("user_id"),
                get("product_id"),
                get("order_ts").as_deref().and_then(parse_ts),
            ) else {
                continue;
            };
            match snap.as_ref().and_then(|s| s.get(&user)) {
                Some(features) => rows.push(TrainingRow {
                    segment: segment_of(features),
                    user_id: user,
                    product_id: product,
                    ts,
                    as_of,
                }),
                None => without += 1,
            }
        }
    }
    rows.sort_by_key(|r| r.ts);
    crate::jsonl::put(
        svc.objects,
        &format!("{}training.jsonl", run_prefix(set, date, run_id)),
        &rows,
    )
    .await?;
    Ok(TrainingSummary {
        rows: rows.len(),
        without_snapshot: without,
        days,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub version: String,
    pub top_n: usize,
    pub half_life_days: f64,
    pub segments: BTreeMap<String, Vec<String>>,
    pub global: Vec<String>,
    pub trained_at: DateTime<Utc>,
    pub rows: usize,
}

fn fit(rows: &[TrainingRow], top_n: usize) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let Some(reference) = rows.iter().map(|r| r.ts).max() else {
        return (BTreeMap::new(), Vec::new());
    };
    let weight = |ts: DateTime<Utc>| {
        0.5f64.powf((reference - ts).num_seconds() as f64 / 86_400.0 / HALF_LIFE_DAYS)
    };
    let mut by_segment: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let mut global: BTreeMap<String, f64> = BTreeMap::new();
    for r in rows {
        *by_segment
            .entry(r.segment.clone())
            .or_default()
            .entry(r.product_id.clone())
            .or_default() += weight(r.ts);
        *global.entry(r.product_id.clone()).or_default() += weight(r.ts);
    }
    let top = |scores: BTreeMap<String, f64>| {
        let mut v: Vec<(String, f64)> = scores.into_iter().collect();
        // Highest score first; ties by product id, so training is deterministic.
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v.into_iter()
            .take(top_n)
            .map(|(p, _)| p)
            .collect::<Vec<_>>()
    };
    (
        by_segment
            .into_iter()
            .map(|(s, scores)| (s, top(scores)))
            .collect(),
        top(global),
    )
}

fn hit_rate(
    test: &[TrainingRow],
    segments: &BTreeMap<String, Vec<String>>,
    global: &[String],
    use_segments: bool,
) -> f64 {
    if test.is_empty() {
        return 0.0;
    }
    let hits = test
        .iter()
        .filter(|r| {
            let list = if use_segments {
                segments
                    .get(&r.segment)
                    .map(|v| v.as_slice())
                    .unwrap_or(global)
            } else {
                global
            };
            list.contains(&r.product_id)
        })
        .count();
    hits as f64 / test.len() as f64
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub version: String,
    pub train_rows: usize,
    pub test_rows: usize,
    pub hit_rate_at_n: f64,
    pub baseline_hit_rate_at_n: f64,
    pub key: String,
}

/// Train on the earliest 80 %, evaluate on the latest 20 %, refit on all,
/// and save the versioned artifact with its evaluation.
pub async fn train(
    svc: &Services<'_>,
    set: &str,
    date: NaiveDate,
    run_id: &str,
) -> UseCaseResult<Evaluation> {
    let rows: Vec<TrainingRow> = crate::jsonl::get(
        svc.objects,
        &format!("{}training.jsonl", run_prefix(set, date, run_id)),
    )
    .await?
    .ok_or_else(|| {
        UseCaseError::BadRequest(format!(
            "no training set for {set} {date} run {run_id}: build it first"
        ))
    })?;
    if rows.len() < 2 {
        return Err(UseCaseError::BadRequest(format!(
            "{} training row(s) for {set} {date}: at least 2 are needed to hold some out",
            rows.len()
        )));
    }
    let split = ((rows.len() as f64) * 0.8)
        .floor()
        .clamp(1.0, rows.len() as f64 - 1.0) as usize;
    let (train_rows, test_rows) = rows.split_at(split);
    let (segments, global) = fit(train_rows, TOP_N);
    let version = format!("{date}-{run_id}");
    let evaluation_hit = hit_rate(test_rows, &segments, &global, true);
    let baseline = hit_rate(test_rows, &segments, &global, false);
    let (segments, global) = fit(&rows, TOP_N);
    let model = Model {
        version: version.clone(),
        top_n: TOP_N,
        half_life_days: HALF_LIFE_DAYS,
        segments,
        global,
        trained_at: Utc::now(),
        rows: rows.len(),
    };
    let prefix = format!("{}/{set}/version={version}/", Layer::Models.prefix());
    let evaluation = Evaluation {
        version,
        train_rows: train_rows.len(),
        test_rows: test_rows.len(),
        hit_rate_at_n: (evaluation_hit * 1e4).round() / 1e4,
        baseline_hit_rate_at_n: (baseline * 1e4).round() / 1e4,
        key: format!("{prefix}model.json"),
    };
    crate::jsonl::put_json(svc.objects, &format!("{prefix}model.json"), &model).await?;
    crate::jsonl::put_json(
        svc.objects,
        &format!("{prefix}evaluation.json"),
        &evaluation,
    )
    .await?;
    Ok(evaluation)
}

const MODEL_PK: &str = "model";

/// Ask a person whether to deploy a trained version (the message gives its
/// hit rate against the popularity baseline).
pub async fn request_deploy_approval(
    svc: &Services<'_>,
    asked: crate::orchestration::TaskAsking<'_>,
    set: &str,
    date: NaiveDate,
    e: &Evaluation,
) -> UseCaseResult<crate::orchestration::ApprovalRequested> {
    let lines = vec![
        format!(
            "  hit rate at {TOP_N}: {:.3} (global top-{TOP_N} baseline {:.3})",
            e.hit_rate_at_n, e.baseline_hit_rate_at_n
        ),
        format!(
            "  trained on {} rows, evaluated on the latest {}",
            e.train_rows, e.test_rows
        ),
    ];
    crate::orchestration::request_decision(
        svc,
        crate::orchestration::Decision {
            token: asked.token,
            execution: asked.execution,
            subject: &format!("Deploy model {set} {}?", e.version),
            purpose: &format!("deploy recommendation model {set} version {}", e.version),
            summary: json!({"kind": "model_deploy", "features": set, "date": date, "version": e.version,
                            "checks": {"hit_rate_at_n": e.hit_rate_at_n, "baseline_hit_rate_at_n": e.baseline_hit_rate_at_n},
                            "users": e.train_rows, "items": e.test_rows}),
            detail_lines: &lines,
            ttl: crate::orchestration::DECISION_TTL,
        },
    )
    .await
}

/// Make a version the active one; the previous one is remembered for
/// rollback. Conditional on the state it read, so concurrent activations
/// cannot interleave.
pub async fn activate(
    svc: &Services<'_>,
    set: &str,
    version: &str,
    by: &str,
) -> UseCaseResult<Value> {
    let key = format!(
        "{}/{set}/version={version}/model.json",
        Layer::Models.prefix()
    );
    if svc.objects.head(&key).await?.is_none() {
        return Err(UseCaseError::BadRequest(format!(
            "model version {version} of {set} does not exist ({key})"
        )));
    }
    let activated = crate::state::update(svc.state, MODEL_PK, set, |current: Option<Value>| {
        let previous = current
            .as_ref()
            .and_then(|c| c["active"].as_str().map(str::to_string));
        Some(json!({"active": version, "previous": previous, "activated_at": Utc::now(), "activated_by": by}))
    })
    .await?;
    Ok(activated.unwrap_or(Value::Null))
}

pub async fn active(svc: &Services<'_>, set: &str) -> UseCaseResult<Option<Value>> {
    Ok(svc.state.get(MODEL_PK, set).await?.map(|v| v.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: &str, product: &str, day: u32, segment: &str) -> TrainingRow {
        TrainingRow {
            user_id: user.into(),
            product_id: product.into(),
            ts: format!("2026-01-{day:02}T12:00:00Z").parse().unwrap(),
            segment: segment.into(),
            as_of: NaiveDate::from_ymd_opt(2026, 1, day - 1).unwrap(),
        }
    }

    #[test]
    fn recent_purchases_weigh_more_and_segments_get_their_own_lists() {
        let rows = vec![
            row("1", "OLD", 2, "high"),
            row("1", "OLD", 2, "high"),
            row("2", "NEW", 20, "high"),
            row("2", "NEW", 21, "high"),
            row("2", "NEW", 22, "high"),
            row("3", "CHEAP", 22, "low"),
        ];
        let (segments, global) = fit(&rows, 1);
        assert_eq!(
            segments["high"],
            vec!["NEW"],
            "three recent beat two from three weeks ago"
        );
        assert_eq!(segments["low"], vec!["CHEAP"]);
        assert_eq!(global, vec!["NEW"]);
        let test = vec![row("9", "CHEAP", 23, "low"), row("9", "NEW", 23, "high")];
        assert_eq!(hit_rate(&test, &segments, &global, true), 1.0);
        assert_eq!(hit_rate(&test, &segments, &global, false), 0.5);
    }

    #[test]
    fn segments_come_from_the_longest_spend_window() {
        assert_eq!(
            segment_of(&json!({"amount_7d_z": -2.0, "amount_30d_z": 1.2})),
            "high"
        );
        assert_eq!(segment_of(&json!({"amount_30d_z": -0.9})), "low");
        assert_eq!(segment_of(&json!({"amount_30d_z": 0.1})), "mid");
        assert_eq!(segment_of(&json!({"events_7d": 1})), "unknown");
    }
}
