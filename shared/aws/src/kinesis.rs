//! Records onto Kinesis (PutRecords) for replays, tools and tests, and the
//! whole stream read back from its oldest record, as a consumer sees it.

use crate::port_error;
use async_trait::async_trait;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType, StreamStatus};
use aws_sdk_kinesis::Client;
use chrono::{DateTime, Utc};
use std::time::Duration;
use tributary_core::ports::StreamRecord;
use tributary_core::ports::{check_stream_records, PortError, PortResult, StreamProducer};

/// PutRecords takes at most 500 records and 5 MiB per call.
const MAX_RECORDS_PER_CALL: usize = 500;
const MAX_BYTES_PER_CALL: usize = 5 << 20;
/// Records a shard refused for throughput are sent again this many times,
/// with exponential back-off, before the call fails as transient.
const RETRIES: u32 = 6;

pub struct KinesisProducer {
    client: Client,
    stream: String,
}

impl KinesisProducer {
    pub fn new(config: &aws_config::SdkConfig, stream: &str) -> KinesisProducer {
        KinesisProducer {
            client: Client::new(config),
            stream: stream.to_string(),
        }
    }

    fn resource(&self) -> String {
        format!("Kinesis stream {}", self.stream)
    }

    /// Creates the stream with `shards` shards if it does not exist and
    /// waits until it is active (Terraform does this on AWS; tests and
    /// emulators need it).
    pub async fn ensure_stream(&self, shards: i32) -> PortResult<()> {
        let created = self
            .client
            .create_stream()
            .stream_name(&self.stream)
            .shard_count(shards)
            .send()
            .await;
        if let Err(e) = created {
            if e.as_service_error()
                .is_none_or(|s| !s.is_resource_in_use_exception())
            {
                return Err(port_error(
                    format!("creating {}", self.resource()),
                    &self.resource(),
                    e,
                ));
            }
        }
        for _ in 0..100 {
            let summary = self
                .client
                .describe_stream_summary()
                .stream_name(&self.stream)
                .send()
                .await
                .map_err(|e| {
                    port_error(
                        format!("describing {}", self.resource()),
                        &self.resource(),
                        e,
                    )
                })?;
            if summary
                .stream_description_summary()
                .is_some_and(|s| s.stream_status() == &StreamStatus::Active)
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(PortError::transient(
            format!("waiting for {}", self.resource()),
            "the stream did not become ACTIVE within 10 s",
        ))
    }

    /// One PutRecords call, resending only the records a shard refused.
    async fn put_call(
        &self,
        records: &[(String, Vec<u8>)],
    ) -> PortResult<Vec<(String, String, DateTime<Utc>)>> {
        let mut placed: Vec<Option<(String, String, DateTime<Utc>)>> = vec![None; records.len()];
        let mut pending: Vec<usize> = (0..records.len()).collect();
        let mut last_refusal = String::new();
        for attempt in 0..=RETRIES {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt.min(5))).await;
            }
            let entries = pending
                .iter()
                .map(|&i| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(&records[i].0)
                        .data(Blob::new(records[i].1.clone()))
                        .build()
                        .map_err(|e| {
                            PortError::permanent(
                                format!("putting records on {}", self.resource()),
                                "the request could not be built: a bug",
                                e,
                            )
                        })
                })
                .collect::<PortResult<Vec<_>>>()?;
            let out = self
                .client
                .put_records()
                .stream_name(&self.stream)
                .set_records(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    port_error(
                        format!("putting records on {}", self.resource()),
                        &self.resource(),
                        e,
                    )
                })?;
            let arrival = Utc::now();
            let mut refused = Vec::new();
            for (&index, result) in pending.iter().zip(out.records()) {
                match (result.shard_id(), result.sequence_number()) {
                    (Some(shard), Some(sequence)) if result.error_code().is_none() => {
                        placed[index] = Some((shard.to_string(), sequence.to_string(), arrival));
                    }
                    _ => {
                        last_refusal = format!(
                            "{}: {}",
                            result.error_code().unwrap_or("no shard in the answer"),
                            result.error_message().unwrap_or_default()
                        );
                        refused.push(index);
                    }
                }
            }
            if out.records().len() < pending.len() {
                refused.extend(pending[out.records().len()..].iter().copied());
            }
            pending = refused;
        }
        if !pending.is_empty() {
            return Err(PortError::transient(
                format!("putting records on {}", self.resource()),
                format!(
                    "{} record(s) still refused after {RETRIES} retries ({last_refusal}); the stream may need more capacity",
                    pending.len()
                ),
            ));
        }
        Ok(placed.into_iter().flatten().collect())
    }

    /// Every record on the stream, oldest first per shard, shard by shard:
    /// what a consumer starting at TRIM_HORIZON receives.
    pub async fn read_all(&self) -> PortResult<Vec<StreamRecord>> {
        let op = || format!("reading {}", self.resource());
        let mut shards = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let request = match &next_token {
                Some(token) => self.client.list_shards().next_token(token),
                None => self.client.list_shards().stream_name(&self.stream),
            };
            let out = request
                .send()
                .await
                .map_err(|e| port_error(op(), &self.resource(), e))?;
            shards.extend(out.shards().iter().map(|s| s.shard_id().to_string()));
            next_token = out.next_token().map(str::to_string);
            if next_token.is_none() {
                break;
            }
        }
        let mut records = Vec::new();
        for shard in shards {
            records.extend(self.read_shard(&shard, None, None).await?);
        }
        Ok(records)
    }

    /// The records of one shard from sequence number `first` through
    /// `last`, both included: a batch the event source mapping reported
    /// as failed. Empty when the stream has trimmed them.
    pub async fn records_between(
        &self,
        shard: &str,
        first: &str,
        last: &str,
    ) -> PortResult<Vec<StreamRecord>> {
        self.read_shard(shard, Some(first), Some(last)).await
    }

    /// A shard read from its oldest record (or from `from`) until it is
    /// caught up (or past `through`).
    async fn read_shard(
        &self,
        shard: &str,
        from: Option<&str>,
        through: Option<&str>,
    ) -> PortResult<Vec<StreamRecord>> {
        let op = || format!("reading {} shard {shard}", self.resource());
        let request = self
            .client
            .get_shard_iterator()
            .stream_name(&self.stream)
            .shard_id(shard);
        let request = match from {
            Some(sequence) => request
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number(sequence),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let mut iterator = request
            .send()
            .await
            .map_err(|e| port_error(op(), &self.resource(), e))?
            .shard_iterator()
            .map(str::to_string);
        let mut records = Vec::new();
        while let Some(it) = iterator {
            let out = self
                .client
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .map_err(|e| port_error(op(), &self.resource(), e))?;
            let mut past_the_end = false;
            for r in out.records() {
                if through.is_some_and(|last| sequence_after(r.sequence_number(), last)) {
                    past_the_end = true;
                    break;
                }
                let arrival = r
                    .approximate_arrival_timestamp()
                    .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
                    .unwrap_or_default();
                records.push(StreamRecord {
                    shard_id: shard.to_string(),
                    sequence_number: r.sequence_number().to_string(),
                    partition_key: r.partition_key().unwrap_or_default().to_string(),
                    data: r.data().as_ref().to_vec(),
                    arrival,
                });
            }
            // An open shard always returns a next iterator: stop at the
            // first empty answer that is not behind the newest record.
            let caught_up =
                out.records().is_empty() && out.millis_behind_latest().unwrap_or(0) == 0;
            iterator = if caught_up || past_the_end {
                None
            } else {
                out.next_shard_iterator().map(str::to_string)
            };
        }
        Ok(records)
    }
}

/// Sequence numbers are decimal numbers of up to 128 bits, without leading
/// zeros: a longer one is later, and so is a larger one of the same length.
fn sequence_after(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

/// Splits records into PutRecords calls within the count and size limits.
fn calls(records: &[(String, Vec<u8>)]) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (key, data)) in records.iter().enumerate() {
        let size = key.len() + data.len();
        if i > start && (i - start == MAX_RECORDS_PER_CALL || bytes + size > MAX_BYTES_PER_CALL) {
            ranges.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < records.len() {
        ranges.push(start..records.len());
    }
    ranges
}

#[async_trait]
impl StreamProducer for KinesisProducer {
    async fn put_records(&self, records: Vec<(String, Vec<u8>)>) -> PortResult<Vec<StreamRecord>> {
        check_stream_records(&self.stream, &records)?;
        let mut out = Vec::with_capacity(records.len());
        for range in calls(&records) {
            let placed = self.put_call(&records[range.clone()]).await?;
            for ((partition_key, data), (shard_id, sequence_number, arrival)) in
                records[range].iter().zip(placed)
            {
                out.push(StreamRecord {
                    shard_id,
                    sequence_number,
                    partition_key: partition_key.clone(),
                    data: data.clone(),
                    arrival,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn calls_keep_within_the_count_and_size_limits() {
        let small: Vec<_> = (0..1001)
            .map(|i| (format!("k{i}"), vec![0u8; 10]))
            .collect();
        let ranges = super::calls(&small);
        assert_eq!(ranges, vec![0..500, 500..1000, 1000..1001]);
        let big: Vec<_> = (0..12)
            .map(|i| (format!("k{i}"), vec![0u8; (1 << 20) - 8]))
            .collect();
        let ranges = super::calls(&big);
        assert_eq!(ranges, vec![0..5, 5..10, 10..12]);
        assert!(super::calls(&[]).is_empty());
    }
}
