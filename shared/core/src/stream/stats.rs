//! What a stream's aggregation did, per UTC hour of processing: events in,
//! aggregated, dead-lettered, late, duplicates and redeliveries. One item
//! per stream and hour (`rt_stats#<stream>`, sort key `YYYY-MM-DDTHH`),
//! added to by every batch and expired after a week; what an operator's
//! view of the stream reads without scanning the archive.

use super::speed::BatchOutcome;
use crate::error::UseCaseResult;
use crate::ports::StateStore;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// How long an hour's counts are kept.
const KEEP_DAYS: i64 = 7;

pub fn stats_pk(stream: &str) -> String {
    format!("rt_stats#{stream}")
}

fn hour_key(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H").to_string()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HourCounts {
    pub input: u64,
    pub aggregated: u64,
    pub dlq: u64,
    pub late: u64,
    pub duplicates: u64,
    pub redelivered: u64,
    /// Epoch seconds after which the store may drop the item (TTL).
    pub expires_at: i64,
}

/// Add one batch's outcome to the hour it was processed in.
pub async fn record(
    state: &dyn StateStore,
    stream: &str,
    now: DateTime<Utc>,
    outcome: &BatchOutcome,
) -> UseCaseResult<()> {
    if outcome.input == 0 {
        return Ok(());
    }
    let expires_at = (now + Duration::days(KEEP_DAYS)).timestamp();
    crate::state::update(
        state,
        &stats_pk(stream),
        &hour_key(now),
        |current: Option<HourCounts>| {
            let c = current.unwrap_or_default();
            Some(HourCounts {
                input: c.input + outcome.input,
                aggregated: c.aggregated + outcome.aggregated,
                dlq: c.dlq + outcome.dlq,
                late: c.late + outcome.late,
                duplicates: c.duplicates + outcome.duplicates,
                redelivered: c.redelivered + outcome.redelivered,
                expires_at,
            })
        },
    )
    .await?;
    Ok(())
}

/// The last `hours` hours up to `now`, oldest first, hours without
/// batches included as zeros.
pub async fn recent(
    state: &dyn StateStore,
    stream: &str,
    now: DateTime<Utc>,
    hours: i64,
) -> UseCaseResult<Vec<(String, HourCounts)>> {
    let stored: std::collections::BTreeMap<String, HourCounts> = state
        .query(&stats_pk(stream))
        .await?
        .into_iter()
        .filter_map(|(hour, item)| Some((hour, serde_json::from_value(item.value).ok()?)))
        .collect();
    Ok((0..hours)
        .rev()
        .map(|back| {
            let hour = hour_key(now - Duration::hours(back));
            let counts = stored.get(&hour).cloned().unwrap_or_default();
            (hour, counts)
        })
        .collect())
}
