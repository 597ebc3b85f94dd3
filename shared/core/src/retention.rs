//! The retention sweep: partitions past each layer's retention, superseded
//! runs, and expired reconciliation checks.

use crate::config::{RetentionTarget, DATASET_LAYERS};
use crate::error::UseCaseResult;
use crate::layout::{dataset_prefix, run_of_key, Layer, PartitionKey};
use crate::publish::read_manifest;
use crate::services::Services;
use crate::state::{self, PartitionState};
use chrono::{Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Deletion {
    pub dataset: String,
    pub layer: String,
    pub date: NaiveDate,
    pub what: String,
    pub objects: u64,
    pub bytes: u64,
}

/// How long a run prefix that no manifest points to is left alone: it may
/// belong to a run still in flight.
const ORPHAN_GRACE_HOURS: i64 = 24;

/// Delete partitions older than each layer's retention, for every layer
/// the system writes by date (datasets: raw, cleaned, rejects, quality;
/// streams: stream, late, dlq, views; feature sets; labelings), and run
/// prefixes that are neither the published run nor the one before it.
/// What readers find through the catalog or a publication record is
/// unpublished first (cleaned partitions: catalog partition, status →
/// expired; views: catalog partition and the stream's publication).
pub async fn retention_sweep(
    svc: &Services<'_>,
    today: NaiveDate,
    dry_run: bool,
) -> UseCaseResult<Vec<Deletion>> {
    let mut deletions = Vec::new();
    let targets = svc.config.retention_targets();
    // Validated at load: days ≤ MAX_RETENTION_DAYS, so this cannot overflow.
    let cutoff = |t: &RetentionTarget| today - Duration::days(i64::from(t.days));
    for name in svc.config.datasets.keys() {
        // Every dataset layer is visited, for superseded runs, retention or not.
        for layer in DATASET_LAYERS {
            let expiry = targets
                .iter()
                .find(|t| t.layer == layer && &t.name == name)
                .map(cutoff);
            sweep_prefix(svc, layer, name, None, expiry, dry_run, &mut deletions).await?;
        }
    }
    for t in targets
        .iter()
        .filter(|t| !DATASET_LAYERS.contains(&t.layer))
    {
        let stream = t.stream.as_deref();
        sweep_prefix(
            svc,
            t.layer,
            &t.name,
            stream,
            Some(cutoff(t)),
            dry_run,
            &mut deletions,
        )
        .await?;
    }
    // Reconciliation checks past their expiry (a store without TTL keeps them).
    let as_of = today
        .and_hms_opt(0, 0, 0)
        .map_or_else(Utc::now, |t| t.and_utc());
    for stream in svc.config.streams.keys() {
        let expired = crate::stream::reconcile::prune_history(svc, stream, as_of, dry_run).await?;
        if expired > 0 {
            deletions.push(Deletion {
                dataset: stream.clone(),
                layer: "reconcile-history".into(),
                date: today,
                what: format!("{expired} reconciliation check(s) past reconcile_history"),
                objects: expired,
                bytes: 0,
            });
        }
    }
    Ok(deletions)
}

/// One prefix `<layer>/<name>/`: partitions dated before `expiry` go, and
/// for cleaned and rejects, runs neither published nor the one before.
/// `stream`: the stream whose publications views of this name are.
async fn sweep_prefix(
    svc: &Services<'_>,
    layer: Layer,
    name: &str,
    stream: Option<&str>,
    expiry: Option<NaiveDate>,
    dry_run: bool,
    deletions: &mut Vec<Deletion>,
) -> UseCaseResult<()> {
    let objects = svc.objects.list(&dataset_prefix(layer, name)).await?;
    let mut by_date: BTreeMap<NaiveDate, Vec<_>> = BTreeMap::new();
    for o in objects {
        if let Ok(k) = PartitionKey::parse(&o.key) {
            by_date.entry(k.date).or_default().push(o);
        }
    }
    for (date, objs) in by_date {
        if expiry.is_some_and(|c| date < c) {
            deletions.push(Deletion {
                dataset: name.to_string(),
                layer: layer.to_string(),
                date,
                what: "partition past retention".into(),
                objects: objs.len() as u64,
                bytes: objs.iter().map(|o| o.size).sum(),
            });
            if !dry_run {
                // Unpublish first so no reader is pointed at deleted files.
                match layer {
                    Layer::Cleaned => {
                        svc.catalog.delete_partition(name, date).await?;
                        state::update_partition(svc.state, name, date, |s| {
                            s.state = PartitionState::Expired
                        })
                        .await?;
                    }
                    Layer::Views => {
                        svc.catalog.delete_partition(name, date).await?;
                        if let Some(stream) = stream {
                            svc.state
                                .delete(
                                    &crate::stream::views::views_pk(stream),
                                    &date.to_string(),
                                    crate::ports::Condition::Always,
                                )
                                .await?;
                        }
                    }
                    _ => {}
                }
                for o in &objs {
                    svc.objects.delete(&o.key).await?;
                }
            }
            continue;
        }
        if matches!(layer, Layer::Cleaned | Layer::Rejects) {
            let manifest = read_manifest(svc.objects, name, date).await?;
            let mut keep: Vec<String> = manifest
                .iter()
                .flat_map(|m| std::iter::once(m.run_id.clone()).chain(m.previous_run.clone()))
                .collect();
            // The partition's current run, however old: a run held for
            // approval waits up to 48 hours for its decision with its files.
            if let Some(current) = state::partition_status(svc.state, name, date)
                .await?
                .and_then(|s| s.run_id)
            {
                keep.push(current);
            }
            let mut runs: BTreeMap<String, Vec<_>> = BTreeMap::new();
            for o in objs {
                if let Some(run) = run_of_key(&o.key) {
                    runs.entry(run.to_string()).or_default().push(o);
                }
            }
            let grace = Utc::now() - Duration::hours(ORPHAN_GRACE_HOURS);
            for (run, objs) in runs {
                let newest = objs.iter().map(|o| o.last_modified).max();
                if keep.contains(&run) || newest.is_none_or(|t| t > grace) {
                    continue;
                }
                deletions.push(Deletion {
                    dataset: name.to_string(),
                    layer: layer.to_string(),
                    date,
                    what: format!("superseded run {run}"),
                    objects: objs.len() as u64,
                    bytes: objs.iter().map(|o| o.size).sum(),
                });
                if !dry_run {
                    for o in &objs {
                        svc.objects.delete(&o.key).await?;
                    }
                }
            }
        }
    }
    Ok(())
}
