//! Back-pressure: how many partition runs clean at once. A backfill of a
//! year, a year of files uploaded at once or the catchup after an outage
//! starts every date's execution, and each dataset clean of each execution
//! first takes a slot here, holding it through clean and validate only, so
//! a run waiting for a person's approval holds none and never blocks the
//! other dates. A full pool answers `Tributary.NoSlot`, which the state
//! machine retries with capped back-off (minutes apart, not a busy loop).
//!
//! The pool is one state-store item updated under its version, so holders
//! never exceed the limit however many executions ask at once. A holder
//! that dies without releasing (an aborted execution) loses its slot when
//! its lease ends.

use crate::error::{UseCaseError, UseCaseResult};
use crate::ports::StateStore;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longer than a clean and a validate with all their retries.
pub const LEASE: Duration = Duration::hours(2);

const PK: &str = "slots#clean";
const SK: &str = "pool";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Pool {
    /// Holder (execution and dataset) → when its lease ends.
    holders: BTreeMap<String, DateTime<Utc>>,
}

/// What asking for a slot gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    pub holder: String,
    pub held: usize,
    pub limit: usize,
}

/// Take one of `limit` clean slots for `holder`, or fail with
/// `UseCaseError::NoSlot` (retryable by the state machine) when all are
/// held. Asking again while holding refreshes the lease.
pub async fn acquire(
    state: &dyn StateStore,
    holder: &str,
    limit: usize,
    now: DateTime<Utc>,
) -> UseCaseResult<Slot> {
    let limit = limit.max(1);
    let mut full = false;
    let pool = crate::state::update::<Pool, _>(state, PK, SK, |pool| {
        let mut pool = pool.unwrap_or_default();
        pool.holders.retain(|_, until| *until > now);
        full = !pool.holders.contains_key(holder) && pool.holders.len() >= limit;
        if full {
            return None;
        }
        pool.holders.insert(holder.to_string(), now + LEASE);
        Some(pool)
    })
    .await?
    .unwrap_or_default();
    if full {
        return Err(UseCaseError::NoSlot {
            held: pool.holders.values().filter(|until| **until > now).count(),
            limit,
        });
    }
    Ok(Slot {
        holder: holder.to_string(),
        held: pool.holders.len(),
        limit,
    })
}

/// Give `holder`'s slot back (nothing to do when it holds none).
pub async fn release(
    state: &dyn StateStore,
    holder: &str,
    now: DateTime<Utc>,
) -> UseCaseResult<usize> {
    let pool = crate::state::update::<Pool, _>(state, PK, SK, |pool| {
        let mut pool = pool?;
        let before = pool.holders.len();
        pool.holders.retain(|h, until| h != holder && *until > now);
        (pool.holders.len() != before).then_some(pool)
    })
    .await?
    .unwrap_or_default();
    Ok(pool.holders.len())
}
