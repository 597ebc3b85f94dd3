//! retention-sweep, on its daily schedule.

use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{json, Value};
use tributary_core::retention;
use tributary_core::services::Services;

use crate::error::HandlerError;
use crate::wire::{self, decode, encode};

/// The daily schedule's input: `{}` sweeps as of today (UTC); `today` and
/// `dry_run` are for operators trying it by hand.
#[derive(Debug, Default, Deserialize)]
struct SweepInput {
    #[serde(default, deserialize_with = "wire::optional_date")]
    today: Option<NaiveDate>,
    #[serde(default)]
    dry_run: bool,
}

/// Deletes partitions past each layer's retention, unpublishing them from
/// the catalog first (S3 lifecycle expiry is only the backstop: it cannot
/// unpublish).
pub async fn retention_sweep(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: SweepInput = if event.is_null() {
        SweepInput::default()
    } else {
        decode(event, "{today?: YYYY-MM-DD, dry_run?: bool}")?
    };
    let today = i.today.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let deletions = retention::retention_sweep(svc, today, i.dry_run).await?;
    Ok(json!({"today": today, "dry_run": i.dry_run, "deletions": encode(&deletions)?}))
}
