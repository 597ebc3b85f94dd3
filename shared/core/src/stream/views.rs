//! Batch views (`hourly_<name>`, `daily_<name>`) of a date, computed from the
//! speed layer's archived input — every valid event, late ones included,
//! each event id once — and published like any partition: written under a
//! run prefix, then the manifest and the catalog switched to it.

use super::events::from_value;
use super::speed::ArchivedEvent;
use super::stream_config;
use super::windows::{date_of, group_dims, merge_groups, rfc3339, window_start, Groups};
use crate::config::StreamConfig;
use crate::error::{UseCaseError, UseCaseResult};
use crate::jsonl;
use crate::layout::{manifest_key, partition_prefix, run_prefix, Layer};
use crate::ports::{CatalogPartition, ObjectMeta, PortError};
use crate::publish::{Manifest, ManifestFile};
use crate::services::Services;
use crate::state;
use crate::table_schema::VIEW_AGGREGATES;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};

/// The archive of one date, aggregated.
#[derive(Debug, Clone, Default)]
pub struct ArchiveAggregates {
    /// By window start (µs), in the stream's window size.
    pub windows: BTreeMap<i64, Groups>,
    pub events: u64,
    pub duplicates: u64,
    /// Archived lines that no longer pass the schema (it changed since).
    pub invalid: u64,
}

pub async fn archive_aggregates(
    svc: &Services<'_>,
    stream: &str,
    config: &StreamConfig,
    date: NaiveDate,
) -> UseCaseResult<ArchiveAggregates> {
    let mut out = ArchiveAggregates::default();
    let mut seen = HashSet::new();
    let mut objects = svc
        .objects
        .list(&partition_prefix(Layer::Stream, stream, date))
        .await?;
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    for object in objects {
        let lines: Vec<ArchivedEvent> = jsonl::get(svc.objects, &object.key)
            .await?
            .unwrap_or_default();
        for line in lines {
            let Ok(event) = from_value(config, &line.event) else {
                out.invalid += 1;
                continue;
            };
            if date_of(event.time_micros) != date {
                continue;
            }
            if !seen.insert(event.id.clone()) {
                out.duplicates += 1;
                continue;
            }
            out.events += 1;
            out.windows
                .entry(window_start(event.time_micros, config.window_secs()))
                .or_default()
                .entry(super::windows::group_key(&event.dims))
                .or_default()
                .add(&event.measures);
        }
    }
    Ok(out)
}

/// One published batch view of one date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchView {
    pub view: String,
    pub stream: String,
    pub date: NaiveDate,
    /// "hour" or "day".
    pub granularity: String,
    pub dimensions: Vec<String>,
    pub measures: Vec<String>,
    /// Period start (RFC 3339) → aggregates by dimension values.
    pub periods: BTreeMap<String, Groups>,
    pub events: u64,
    pub duplicates_dropped: u64,
    pub run_id: String,
    pub built_at: DateTime<Utc>,
}

/// What the serving layer checks to know whether its cached copy is current.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewPublication {
    pub date: NaiveDate,
    pub run_id: String,
    pub published_at: DateTime<Utc>,
    pub hourly_key: String,
    pub daily_key: String,
    /// Why this build replaced an earlier one (late data), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuilt_for: Option<String>,
}

/// When the speed layer last archived events of a date (`archived#<date>`
/// in the stream's state): views built before it miss those events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveChange {
    pub date: NaiveDate,
    pub changed_at: DateTime<Utc>,
}

const ARCHIVE_CHANGE_PREFIX: &str = "archived#";

/// Record that events of these dates were archived at `now` (one write per
/// date per batch): reconciliation and the view builds read it to find
/// what changed.
pub async fn archive_changed(
    svc: &Services<'_>,
    stream: &str,
    dates: impl IntoIterator<Item = NaiveDate>,
    now: DateTime<Utc>,
) -> UseCaseResult<()> {
    for date in dates {
        let change = ArchiveChange {
            date,
            changed_at: now,
        };
        svc.state
            .put(
                &super::stream_pk(stream),
                &format!("{ARCHIVE_CHANGE_PREFIX}{date}"),
                state::encode("an archive change", &change)?,
                crate::ports::Condition::Always,
            )
            .await?;
    }
    Ok(())
}

/// When each date's archive last changed.
pub async fn archive_changes(
    svc: &Services<'_>,
    stream: &str,
) -> UseCaseResult<BTreeMap<NaiveDate, DateTime<Utc>>> {
    Ok(archive_changes_in(
        &svc.state.query(&super::stream_pk(stream)).await?,
    ))
}

/// The archive changes among a stream's state items (`archived#<date>`).
pub fn archive_changes_in(
    items: &[(String, crate::ports::Versioned)],
) -> BTreeMap<NaiveDate, DateTime<Utc>> {
    items
        .iter()
        .filter(|(sk, _)| sk.starts_with(ARCHIVE_CHANGE_PREFIX))
        .filter_map(|(_, v)| serde_json::from_value::<ArchiveChange>(v.value.clone()).ok())
        .map(|c| (c.date, c.changed_at))
        .collect()
}

/// Published dates whose views were built before events of the date were
/// archived (late events, or a shard that was behind): their views are
/// stale until rebuilt.
pub async fn stale_dates(svc: &Services<'_>, stream: &str) -> UseCaseResult<Vec<NaiveDate>> {
    Ok(stale_among(
        &archive_changes(svc, stream).await?,
        &publications(svc, stream).await?,
    ))
}

/// [`stale_dates`] from what the caller has read already.
pub fn stale_among(
    changes: &BTreeMap<NaiveDate, DateTime<Utc>>,
    published: &BTreeMap<NaiveDate, ViewPublication>,
) -> Vec<NaiveDate> {
    published
        .iter()
        .filter(|(date, p)| changes.get(date).is_some_and(|t| *t > p.published_at))
        .map(|(date, _)| *date)
        .collect()
}

/// Why a stale view is rebuilt; the query answer repeats it.
pub const REBUILT_FOR_LATE_DATA: &str =
    "late data: events of this date arrived after its views were built";

/// Rebuild the views of every stale date (`build-views` does this after
/// the dates it was asked for).
pub async fn rebuild_stale_views(
    svc: &Services<'_>,
    stream: &str,
    now: DateTime<Utc>,
) -> UseCaseResult<Vec<ViewsBuilt>> {
    let stale = stale_dates(svc, stream).await?;
    rebuild_for_late_data(svc, stream, &stale, now).await
}

/// Rebuild the views of `dates`, saying late data is why.
pub async fn rebuild_for_late_data(
    svc: &Services<'_>,
    stream: &str,
    dates: &[NaiveDate],
    now: DateTime<Utc>,
) -> UseCaseResult<Vec<ViewsBuilt>> {
    let mut built = Vec::new();
    for date in dates {
        built.push(build(svc, stream, *date, now, Some(REBUILT_FOR_LATE_DATA)).await?);
    }
    Ok(built)
}

pub fn views_pk(stream: &str) -> String {
    format!("views#{stream}")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ViewsBuilt {
    pub stream: String,
    pub date: NaiveDate,
    pub run_id: String,
    pub events: u64,
    pub duplicates_dropped: u64,
    pub invalid: u64,
    pub hours: usize,
    pub views: Vec<String>,
    /// Set when stale views were rebuilt, saying why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuilt_for: Option<String>,
}

/// Build and publish the hourly and daily views of `date`.
pub async fn build_views(
    svc: &Services<'_>,
    stream: &str,
    date: NaiveDate,
    now: DateTime<Utc>,
) -> UseCaseResult<ViewsBuilt> {
    build(svc, stream, date, now, None).await
}

async fn build(
    svc: &Services<'_>,
    stream: &str,
    date: NaiveDate,
    now: DateTime<Utc>,
    rebuilt_for: Option<&str>,
) -> UseCaseResult<ViewsBuilt> {
    let config = stream_config(svc, stream)?;
    let archive = archive_aggregates(svc, stream, config, date).await?;
    let run_id = now.format("%Y%m%dT%H%M%S%6fZ").to_string();
    let (hourly_name, daily_name) = config.view_names(stream);
    let mut hourly: BTreeMap<String, Groups> = BTreeMap::new();
    let mut daily: Groups = Groups::new();
    for (start, groups) in &archive.windows {
        merge_groups(
            hourly
                .entry(rfc3339(window_start(*start, 3600)))
                .or_default(),
            groups,
        );
        merge_groups(&mut daily, groups);
    }
    let day_start = date
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_micros())
        .unwrap_or_default();
    let view = |name: &str, granularity: &str, periods: BTreeMap<String, Groups>| BatchView {
        view: name.to_string(),
        stream: stream.to_string(),
        date,
        granularity: granularity.to_string(),
        dimensions: config.dimensions.clone(),
        measures: config.measures.clone(),
        periods,
        events: archive.events,
        duplicates_dropped: archive.duplicates,
        run_id: run_id.clone(),
        built_at: now,
    };
    let hours = hourly.len();
    let hourly_key = publish_view(svc, &view(&hourly_name, "hour", hourly), now).await?;
    let daily_key = publish_view(
        svc,
        &view(
            &daily_name,
            "day",
            BTreeMap::from([(rfc3339(day_start), daily)]),
        ),
        now,
    )
    .await?;
    // Last: the serving layer's caches see the new run from here on.
    let publication = ViewPublication {
        date,
        run_id: run_id.clone(),
        published_at: now,
        hourly_key,
        daily_key,
        rebuilt_for: rebuilt_for.map(str::to_string),
    };
    state::update(
        svc.state,
        &views_pk(stream),
        &date.to_string(),
        |_: Option<ViewPublication>| Some(publication.clone()),
    )
    .await?;
    Ok(ViewsBuilt {
        stream: stream.to_string(),
        date,
        run_id,
        events: archive.events,
        duplicates_dropped: archive.duplicates,
        invalid: archive.invalid,
        hours,
        views: vec![hourly_name, daily_name],
        rebuilt_for: rebuilt_for.map(str::to_string),
    })
}

async fn publish_view(
    svc: &Services<'_>,
    view: &BatchView,
    now: DateTime<Utc>,
) -> UseCaseResult<String> {
    let location = run_prefix(Layer::Views, &view.view, view.date, &view.run_id);
    // One record per row (JSON Lines), as Athena's JSON SerDe reads them.
    let key = format!("{location}view.jsonl");
    jsonl::put(svc.objects, &key, &view_rows(view)).await?;
    let meta: ObjectMeta = svc.objects.head(&key).await?.ok_or_else(|| {
        PortError::transient(
            format!("publishing {key}"),
            "the object vanished after writing",
        )
    })?;
    let manifest_key = manifest_key(Layer::Views, &view.view, view.date);
    let previous: Option<Manifest> = match svc.objects.get_bytes(&manifest_key).await {
        Ok(b) => serde_json::from_slice(&b).ok(),
        Err(PortError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let rows: u64 = view.periods.values().map(|g| g.len() as u64).sum();
    let manifest = Manifest {
        dataset: view.view.clone(),
        date: view.date,
        run_id: view.run_id.clone(),
        location: location.clone(),
        files: vec![ManifestFile {
            key: key.clone(),
            size: meta.size,
            etag: meta.etag.clone(),
            sources: vec![],
            rows: Some(rows),
        }],
        rows,
        mode: "overwrite".into(),
        previous_run: previous.map(|p| p.run_id),
        published_at: now,
    };
    jsonl::put_json(svc.objects, &manifest_key, &manifest).await?;
    svc.catalog
        .put_partition(CatalogPartition {
            table: view.view.clone(),
            date: view.date,
            location,
        })
        .await?;
    Ok(key)
}

/// Every date with published views, with where they are.
pub async fn publications(
    svc: &Services<'_>,
    stream: &str,
) -> UseCaseResult<BTreeMap<NaiveDate, ViewPublication>> {
    let mut out = BTreeMap::new();
    for (sk, item) in svc.state.query(&views_pk(stream)).await? {
        let p: ViewPublication = serde_json::from_value(item.value).map_err(|e| {
            UseCaseError::BadRequest(format!(
                "{}/{sk} is not a view publication: {e}",
                views_pk(stream)
            ))
        })?;
        out.insert(p.date, p);
    }
    Ok(out)
}

/// A view's rows: one per period and dimension values, with the columns
/// of [`view_columns`] in order.
pub fn view_rows(view: &BatchView) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let mut rows = Vec::new();
    for (period, groups) in &view.periods {
        for (group, aggregate) in groups {
            let mut row = serde_json::Map::new();
            row.insert("period_start".into(), json!(period));
            for (d, value) in view.dimensions.iter().zip(group_dims(group)) {
                row.insert(d.clone(), json!(value));
            }
            row.insert("event_count".into(), json!(aggregate.count));
            for (i, m) in view.measures.iter().enumerate() {
                for (name, values) in
                    VIEW_AGGREGATES
                        .iter()
                        .zip([&aggregate.sum, &aggregate.min, &aggregate.max])
                {
                    row.insert(
                        format!("{m}_{name}"),
                        json!(values.get(i).copied().unwrap_or(0.0)),
                    );
                }
            }
            rows.push(row);
        }
    }
    rows
}

/// The periods of a published view (period start → aggregates by
/// dimension values), read back from its rows.
pub async fn read_view(
    svc: &Services<'_>,
    config: &StreamConfig,
    key: &str,
) -> UseCaseResult<BTreeMap<String, Groups>> {
    let bad = |what: String| UseCaseError::BadRequest(format!("{key} is not a batch view: {what}"));
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = jsonl::get(svc.objects, key)
        .await?
        .ok_or_else(|| bad("no such object".into()))?;
    let mut periods: BTreeMap<String, Groups> = BTreeMap::new();
    for (n, row) in rows.iter().enumerate() {
        let text = |c: &str| {
            row.get(c)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| bad(format!("row {} has no string {c}", n + 1)))
        };
        let number = |c: &str| {
            row.get(c)
                .and_then(|v| v.as_f64())
                .ok_or_else(|| bad(format!("row {} has no number {c}", n + 1)))
        };
        let dims = config
            .dimensions
            .iter()
            .map(|d| text(d))
            .collect::<UseCaseResult<Vec<_>>>()?;
        let mut aggregate = super::windows::Aggregate {
            count: row
                .get("event_count")
                .and_then(|v| v.as_u64())
                .ok_or_else(|| bad(format!("row {} has no event_count", n + 1)))?,
            ..Default::default()
        };
        for m in &config.measures {
            aggregate.sum.push(number(&format!("{m}_sum"))?);
            aggregate.min.push(number(&format!("{m}_min"))?);
            aggregate.max.push(number(&format!("{m}_max"))?);
        }
        periods
            .entry(text("period_start")?)
            .or_default()
            .insert(super::windows::group_key(&dims), aggregate);
    }
    Ok(periods)
}
