//! The speed and serving layers (the lambda architecture's streaming half): Kinesis events
//! decoded against the stream's schema, aggregated into event-time tumbling
//! windows idempotently, batch views built from the archived input, one
//! query over both, and reconciliation of the two.

pub mod events;
pub mod reconcile;
pub mod serving;
pub mod speed;
pub mod stats;
pub mod views;
pub mod windows;

use crate::config::StreamConfig;
use crate::error::{UseCaseError, UseCaseResult};
use crate::services::Services;

/// The stream's configuration, or an error listing the known ones.
pub fn stream_config<'a>(svc: &Services<'a>, stream: &str) -> UseCaseResult<&'a StreamConfig> {
    svc.config.streams.get(stream).ok_or_else(|| {
        UseCaseError::BadRequest(format!(
            "stream {stream:?} is not defined in pipeline.toml (known: {})",
            svc.config
                .streams
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// The state-store partition of a stream's own items: shard checkpoints,
/// the watermark, windows marked dirty by late data.
pub fn stream_pk(stream: &str) -> String {
    format!("rt#{stream}")
}

/// The partition holding a stream's realtime windows of one UTC hour
/// (an hour, not a day: every window write rewrites its partition in
/// stores that keep a partition together, and queries read a day as 24).
pub fn windows_pk(stream: &str, window_start_micros: i64) -> String {
    let hour = chrono::DateTime::from_timestamp_micros(window_start_micros)
        .map(|t| t.format("%Y-%m-%dT%H").to_string())
        .unwrap_or_default();
    format!("rt#{stream}#{hour}")
}

/// Event-id claims are spread over this many partition keys: at 10,000
/// events/s one key would take every write (DynamoDB allows about 1,000
/// write units a second per partition); 64 keep each well under that.
pub const DEDUPE_SHARDS: u64 = 64;

/// Where an event id is remembered for dedupe: its shard of the stream's
/// claims, chosen by a hash of the id.
pub fn dedupe_pk(stream: &str, event_id: &str) -> String {
    let shard = xxhash_rust::xxh3::xxh3_64(event_id.as_bytes()) % DEDUPE_SHARDS;
    format!("dedupe#{stream}#{shard:02}")
}

/// Kinesis sequence numbers are decimal strings of up to 56 digits: compare
/// them as numbers without parsing.
pub fn sequence_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}
