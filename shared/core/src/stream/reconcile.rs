//! Reconciliation (hourly): realtime against batch per closed hour and day.
//! Deviation above the stream's threshold alerts. Realtime windows of any
//! hour that differs, or that late data made dirty, are rebuilt from the
//! archive the batch views come from — windows missing from realtime are
//! backfilled — so the next check of that hour finds no deviation. Every
//! check is kept for the trend.

use super::serving::realtime_windows;
use super::speed::DirtyWindow;
use super::views::{
    archive_aggregates, archive_changes_in, publications, read_view, rebuild_for_late_data,
    stale_among,
};
use super::windows::{
    date_of, rfc3339, total, window_sk, window_start, Groups, WindowItem, SOURCE_RECONCILED,
};
use super::{stream_config, stream_pk, windows_pk};
use crate::error::UseCaseResult;
use crate::ports::Condition;
use crate::services::Services;
use crate::state;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deviation {
    pub stream: String,
    pub period_start: String,
    /// "hour" or "day".
    pub granularity: String,
    pub batch: f64,
    pub realtime: f64,
    pub deviation_pct: f64,
    pub alert: bool,
    pub checked_at: DateTime<Utc>,
    /// When the item expires (epoch seconds, the TTL attribute): history is
    /// kept for the stream's `reconcile_history`.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReconcileReport {
    pub stream: String,
    pub threshold_pct: f64,
    #[serde(skip)]
    history_secs: i64,
    /// The figure compared: the first measure's sum, or the event count.
    pub compared: String,
    pub dates: Vec<NaiveDate>,
    pub deviations: Vec<Deviation>,
    pub alerts: u64,
    pub max_deviation_pct: f64,
    /// Realtime windows rewritten from the archive.
    pub corrected_windows: u64,
    /// Of those, windows realtime did not have at all.
    pub backfilled_windows: u64,
    pub dirty_windows_cleared: u64,
    /// Dates whose views late data had made stale, rebuilt before the check.
    #[serde(default)]
    pub views_rebuilt: Vec<NaiveDate>,
}

pub fn history_pk(stream: &str) -> String {
    format!("reconcile#{stream}")
}

fn deviation_pct(batch: f64, realtime: f64) -> f64 {
    if batch == 0.0 {
        if realtime == 0.0 {
            0.0
        } else {
            100.0
        }
    } else {
        ((realtime - batch).abs() / batch.abs() * 100.0 * 1000.0).round() / 1000.0
    }
}

/// The last check of a date (`reconciled#<date>` in the stream's state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DateChecked {
    date: NaiveDate,
    checked_at: DateTime<Utc>,
    /// The views' run the check compared against.
    view_run: String,
}

const CHECKED_PREFIX: &str = "reconciled#";

/// Reconcile `dates`, or by default only the dates that changed since
/// their last check: never checked, new views, events archived since, or
/// windows late data made dirty — so each hourly run does an hour's work.
/// Views that late data made stale are rebuilt first.
pub async fn reconcile(
    svc: &Services<'_>,
    stream: &str,
    dates: Option<Vec<NaiveDate>>,
    now: DateTime<Utc>,
) -> UseCaseResult<ReconcileReport> {
    let config = stream_config(svc, stream)?;
    // One read of the stream's state: archive changes, checks, dirty windows.
    let stream_items = svc.state.query(&stream_pk(stream)).await?;
    let archived = archive_changes_in(&stream_items);
    let mut published = publications(svc, stream).await?;
    let rebuilt =
        rebuild_for_late_data(svc, stream, &stale_among(&archived, &published), now).await?;
    if !rebuilt.is_empty() {
        published = publications(svc, stream).await?;
    }
    let checked: BTreeMap<NaiveDate, DateChecked> = stream_items
        .iter()
        .filter(|(sk, _)| sk.starts_with(CHECKED_PREFIX))
        .filter_map(|(_, v)| serde_json::from_value::<DateChecked>(v.value.clone()).ok())
        .map(|c| (c.date, c))
        .collect();
    let dirty: BTreeSet<i64> = stream_items
        .iter()
        .filter(|(sk, _)| sk.starts_with("dirty#"))
        .filter_map(|(_, v)| serde_json::from_value::<DirtyWindow>(v.value.clone()).ok())
        .filter_map(|d| DateTime::parse_from_rfc3339(&d.window_start).ok())
        .map(|t| t.timestamp_micros())
        .collect();
    let dirty_dates: BTreeSet<NaiveDate> = dirty.iter().map(|w| date_of(*w)).collect();
    let changed = |date: &NaiveDate| {
        let Some(last) = checked.get(date) else {
            return true;
        };
        published
            .get(date)
            .is_some_and(|p| p.run_id != last.view_run)
            || archived.get(date).is_some_and(|t| *t > last.checked_at)
            || dirty_dates.contains(date)
    };
    let dates: Vec<NaiveDate> = match dates {
        Some(d) => d
            .into_iter()
            .filter(|d| published.contains_key(d))
            .collect(),
        None => published.keys().copied().filter(changed).collect(),
    };
    let mut report = ReconcileReport {
        stream: stream.to_string(),
        threshold_pct: config.deviation_threshold_pct,
        history_secs: config.reconcile_history_secs() as i64,
        compared: config
            .measures
            .first()
            .map(|m| format!("sum of {m}"))
            .unwrap_or_else(|| "event count".into()),
        dates: dates.clone(),
        views_rebuilt: rebuilt.iter().map(|b| b.date).collect(),
        ..Default::default()
    };
    for date in dates {
        let publication = &published[&date];
        let view = read_view(svc, config, &publication.hourly_key).await?;
        let realtime = realtime_windows(svc, stream, date).await?;
        let mut realtime_hours: BTreeMap<i64, f64> = BTreeMap::new();
        for (start, groups) in &realtime {
            *realtime_hours
                .entry(window_start(*start, 3600))
                .or_default() += total(groups).headline();
        }
        let mut batch_hours: BTreeMap<i64, f64> = BTreeMap::new();
        for (start, groups) in &view {
            if let Ok(t) = DateTime::parse_from_rfc3339(start) {
                batch_hours.insert(t.timestamp_micros(), total(groups).headline());
            }
        }
        let hours: BTreeSet<i64> = realtime_hours
            .keys()
            .chain(batch_hours.keys())
            .copied()
            .collect();
        let mut to_correct = BTreeSet::new();
        let (mut day_batch, mut day_realtime) = (0.0, 0.0);
        for hour in hours {
            let b = batch_hours.get(&hour).copied().unwrap_or(0.0);
            let r = realtime_hours.get(&hour).copied().unwrap_or(0.0);
            day_batch += b;
            day_realtime += r;
            let d = record(svc, stream, &mut report, hour, "hour", b, r, now).await?;
            let dirty_here = dirty.range(hour..hour + 3_600_000_000).next().is_some();
            if d > 0.0 || dirty_here {
                to_correct.insert(hour);
            }
        }
        let day_start = date
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_micros())
            .unwrap_or_default();
        record(
            svc,
            stream,
            &mut report,
            day_start,
            "day",
            day_batch,
            day_realtime,
            now,
        )
        .await?;
        let check = DateChecked {
            date,
            checked_at: now,
            view_run: publication.run_id.clone(),
        };
        svc.state
            .put(
                &stream_pk(stream),
                &format!("{CHECKED_PREFIX}{date}"),
                state::encode("a reconciliation check", &check)?,
                Condition::Always,
            )
            .await?;
        if to_correct.is_empty() {
            continue;
        }
        let archive = archive_aggregates(svc, stream, config, date).await?;
        for hour in to_correct {
            let end = hour + 3_600_000_000;
            let windows: BTreeSet<i64> = archive
                .windows
                .range(hour..end)
                .map(|(k, _)| *k)
                .chain(realtime.range(hour..end).map(|(k, _)| *k))
                .collect();
            for w in windows {
                let groups: Groups = archive.windows.get(&w).cloned().unwrap_or_default();
                if realtime.get(&w) != Some(&groups) {
                    if !realtime.contains_key(&w) {
                        report.backfilled_windows += 1;
                    }
                    report.corrected_windows += 1;
                    let item = WindowItem {
                        window_start: w,
                        source: SOURCE_RECONCILED.into(),
                        groups,
                        ..Default::default()
                    };
                    svc.state
                        .put(
                            &windows_pk(stream, w),
                            &window_sk(w, SOURCE_RECONCILED),
                            state::encode("a reconciled window", &item)?,
                            Condition::Always,
                        )
                        .await?;
                }
            }
            for w in dirty.range(hour..end) {
                svc.state
                    .delete(
                        &stream_pk(stream),
                        &format!("dirty#{}", rfc3339(*w)),
                        Condition::Always,
                    )
                    .await?;
                report.dirty_windows_cleared += 1;
            }
        }
    }
    if report.alerts > 0 {
        let worst: Vec<String> = report
            .deviations
            .iter()
            .filter(|d| d.alert)
            .map(|d| {
                format!(
                    "{} {}: realtime {} vs batch {} ({:.1} %)",
                    d.granularity, d.period_start, d.realtime, d.batch, d.deviation_pct
                )
            })
            .collect();
        svc.notifier
            .notify(
                "alerts",
                &format!(
                    "[tributary] {stream}: realtime deviates from batch by up to {:.1} % (threshold {} %)",
                    report.max_deviation_pct, report.threshold_pct
                ),
                &format!(
                    "Reconciliation compared the {} of stream {stream}.\n{}\n\nThe realtime windows of these periods were rebuilt from the archive ({} windows, {} of them missing). Late data and poison records replayed from the DLQ are the usual causes; see `tributary dlq list`.",
                    report.compared,
                    worst.join("\n"),
                    report.corrected_windows,
                    report.backfilled_windows
                ),
            )
            .await?;
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn record(
    svc: &Services<'_>,
    stream: &str,
    report: &mut ReconcileReport,
    start: i64,
    granularity: &str,
    batch: f64,
    realtime: f64,
    now: DateTime<Utc>,
) -> UseCaseResult<f64> {
    let pct = deviation_pct(batch, realtime);
    let alert = pct > report.threshold_pct;
    let d = Deviation {
        stream: stream.to_string(),
        period_start: rfc3339(start),
        granularity: granularity.to_string(),
        batch,
        realtime,
        deviation_pct: pct,
        alert,
        checked_at: now,
        expires_at: Some(now.timestamp() + report.history_secs),
    };
    svc.state
        .put(
            &history_pk(stream),
            &format!("{}#{granularity}#{}", d.period_start, now.to_rfc3339()),
            state::encode("a deviation", &d)?,
            Condition::Always,
        )
        .await?;
    report.max_deviation_pct = report.max_deviation_pct.max(pct);
    if alert {
        report.alerts += 1;
    }
    report.deviations.push(d);
    Ok(pct)
}

/// Every check kept and not expired at `now`, oldest period first.
pub async fn history(
    svc: &Services<'_>,
    stream: &str,
    now: DateTime<Utc>,
) -> UseCaseResult<Vec<Deviation>> {
    Ok(svc
        .state
        .query(&history_pk(stream))
        .await?
        .into_iter()
        .filter(|(_, v)| !crate::ports::expired(&v.value, now.timestamp()))
        .filter_map(|(_, v)| serde_json::from_value(v.value).ok())
        .collect())
}

/// Delete history items past their expiry (or, `dry_run`, count them).
/// DynamoDB's TTL does this on AWS (within days); the daily retention sweep
/// does it everywhere, so a store without TTL does not grow either.
/// Returns how many are (or would be) gone.
pub async fn prune_history(
    svc: &Services<'_>,
    stream: &str,
    now: DateTime<Utc>,
    dry_run: bool,
) -> UseCaseResult<u64> {
    let mut pruned = 0;
    for (sk, v) in svc.state.query(&history_pk(stream)).await? {
        if crate::ports::expired(&v.value, now.timestamp()) {
            if !dry_run {
                svc.state
                    .delete(&history_pk(stream), &sk, Condition::Always)
                    .await?;
            }
            pruned += 1;
        }
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    #[test]
    fn deviation_is_relative_to_batch() {
        assert_eq!(super::deviation_pct(100.0, 112.0), 12.0);
        assert_eq!(super::deviation_pct(100.0, 92.0), 8.0);
        assert_eq!(super::deviation_pct(0.0, 0.0), 0.0);
        assert_eq!(super::deviation_pct(0.0, 3.0), 100.0);
    }
}
