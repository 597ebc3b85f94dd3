//! The Kinesis stand-in: records put to a stream land on a shard chosen the
//! way Kinesis chooses (MD5 of the partition key over equal hash-key
//! ranges), get increasing sequence numbers per shard that survive
//! restarts, and are handed to the consumer as the event source mapping
//! does: `{"Records": [...]}` with base64 data, eventID, eventSourceARN and
//! approximateArrivalTimestamp.

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use serde_json::{json, Value};
use tributary_core::ports::StreamRecord;
use tributary_core::ports::{check_stream_records, PortResult, StateStore, StreamProducer};
use tributary_core::state;

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "000000000000";

pub struct KinesisStandIn<'a> {
    pub stream: String,
    pub shards: u32,
    state: &'a dyn StateStore,
}

pub fn shard_id(index: u32) -> String {
    format!("shardId-{index:012}")
}

/// The index in a shard id made by [`shard_id`].
pub fn shard_index(shard_id: &str) -> u32 {
    shard_id
        .strip_prefix("shardId-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl<'a> KinesisStandIn<'a> {
    pub fn new(stream: &str, shards: u32, state: &'a dyn StateStore) -> KinesisStandIn<'a> {
        KinesisStandIn {
            stream: stream.to_string(),
            shards: shards.max(1),
            state,
        }
    }

    pub fn shard_of(&self, partition_key: &str) -> u32 {
        let digest = Md5::digest(partition_key.as_bytes());
        let hash = u128::from_be_bytes(digest.into());
        // Kinesis splits the 2^128 hash keys into ranges of floor(2^128 / n),
        // the last range taking the remainder. 2^128 does not fit in a u128:
        // floor((MAX + 1) / n) = floor(MAX / n), plus one when n divides MAX + 1.
        let n = self.shards as u128;
        if n == 1 {
            return 0;
        }
        let width = u128::MAX / n + u128::from(u128::MAX % n == n - 1);
        ((hash / width) as u32).min(self.shards - 1)
    }

    /// PutRecords arriving at `arrival`: each record gets its shard and
    /// sequence number; the result is in input order.
    pub async fn put_records_at(
        &self,
        records: Vec<(String, Vec<u8>)>,
        arrival: DateTime<Utc>,
    ) -> PortResult<Vec<StreamRecord>> {
        check_stream_records(&self.stream, &records)?;
        let mut out: Vec<(usize, StreamRecord)> = Vec::with_capacity(records.len());
        let mut by_shard: std::collections::BTreeMap<u32, Vec<(usize, String, Vec<u8>)>> =
            Default::default();
        for (index, (key, data)) in records.into_iter().enumerate() {
            by_shard
                .entry(self.shard_of(&key))
                .or_default()
                .push((index, key, data));
        }
        for (shard, records) in by_shard {
            let n = records.len() as u64;
            let next = state::update(
                self.state,
                &format!("kinesis#{}", self.stream),
                &shard_id(shard),
                |old: Option<u64>| Some(old.unwrap_or(0) + n),
            )
            .await?
            .unwrap_or(n);
            let first = next - n + 1;
            for (i, (index, partition_key, data)) in records.into_iter().enumerate() {
                out.push((
                    index,
                    StreamRecord {
                        shard_id: shard_id(shard),
                        // Kinesis sequence numbers are 56 decimal digits.
                        sequence_number: format!("49{:054}", first + i as u64),
                        partition_key,
                        data,
                        arrival,
                    },
                ));
            }
        }
        out.sort_by_key(|(index, _)| *index);
        Ok(out.into_iter().map(|(_, r)| r).collect())
    }

    /// The event the event source mapping hands the function.
    pub fn event(&self, records: &[StreamRecord]) -> Value {
        event_source_mapping_event(&self.stream, records)
    }
}

/// The event a Kinesis event source mapping hands a function for these
/// records of `stream`, whichever producer put them.
pub fn event_source_mapping_event(stream: &str, records: &[StreamRecord]) -> Value {
    let arn = format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{stream}");
    let records: Vec<Value> = records
            .iter()
            .map(|r| {
                json!({
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": r.partition_key,
                        "sequenceNumber": r.sequence_number,
                        "data": base64::engine::general_purpose::STANDARD.encode(&r.data),
                        "approximateArrivalTimestamp": r.arrival.timestamp_micros() as f64 / 1e6,
                    },
                    "eventSource": "aws:kinesis",
                    "eventVersion": "1.0",
                    "eventID": format!("{}:{}", r.shard_id, r.sequence_number),
                    "eventName": "aws:kinesis:record",
                    "invokeIdentityArn": format!("arn:aws:iam::{ACCOUNT}:role/tributary-stream-aggregate"),
                    "awsRegion": REGION,
                    "eventSourceARN": arn,
                })
            })
            .collect();
    json!({ "Records": records })
}

#[async_trait]
impl StreamProducer for KinesisStandIn<'_> {
    async fn put_records(&self, records: Vec<(String, Vec<u8>)>) -> PortResult<Vec<StreamRecord>> {
        self.put_records_at(records, Utc::now()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_spread_over_shards_with_increasing_sequence_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let state = crate::FileStateStore::new(dir.path().to_path_buf());
        let one = KinesisStandIn::new("s", 1, &state);
        assert_eq!(one.shard_of("anything"), 0);
        let four = KinesisStandIn::new("s", 4, &state);
        let used: std::collections::BTreeSet<u32> =
            (0..100).map(|i| four.shard_of(&format!("k{i}"))).collect();
        assert_eq!(used.len(), 4);
        let records = (0..10).map(|i| (format!("k{i}"), vec![b'x'])).collect();
        let first = four.put_records_at(records, Utc::now()).await.unwrap();
        let again = four
            .put_records_at(vec![("k0".into(), vec![b'y'])], Utc::now())
            .await
            .unwrap();
        let earlier = first.iter().filter(|r| r.shard_id == again[0].shard_id);
        assert!(earlier.clone().count() > 0);
        for r in earlier {
            assert_eq!(r.sequence_number.len(), 56);
            assert!(r.sequence_number < again[0].sequence_number);
        }
        let event = four.event(&again);
        assert_eq!(
            event["Records"][0]["eventSourceARN"],
            "arn:aws:kinesis:us-east-1:000000000000:stream/s"
        );
        assert_eq!(event["Records"][0]["kinesis"]["data"], "eQ==");
    }
}
