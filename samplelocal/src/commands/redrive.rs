//! `tributary --stack FILE redrive`: the stream batches that still failed
//! after the event source mapping's retries. Each message of the
//! stream-failures queue names a shard and the first and last sequence
//! number of a batch; its records are read from the stream again and handed
//! to the consumer that failed on them (stream-aggregate or
//! click-inference), as the mapping would. The consumers claim event ids,
//! so a record counted before the batch failed counts once. A message is
//! deleted only when its batch went through; one whose records the stream
//! has already trimmed (after its retention) is kept and reported.

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use tributary_core::services::Services;

/// The part of an on-failure record of a Kinesis event source mapping
/// this needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailureRecord {
    request_context: RequestContext,
    #[serde(rename = "KinesisBatchInfo")]
    batch: BatchInfo,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext {
    function_arn: String,
    #[serde(default)]
    condition: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchInfo {
    shard_id: String,
    start_sequence_number: String,
    end_sequence_number: String,
    stream_arn: String,
}

/// The consumers a batch may have failed in (the functions with a Kinesis
/// event source mapping in infra/).
const CONSUMERS: [&str; 2] = ["stream-aggregate", "click-inference"];

/// The consumer whose ARN (`…:function:<prefix>-<name>[:qualifier]`) failed.
fn consumer_of(function_arn: &str) -> Option<&'static str> {
    let name = function_arn.split(":function:").nth(1)?.split(':').next()?;
    CONSUMERS
        .into_iter()
        .find(|c| name == *c || name.ends_with(&format!("-{c}")))
}

pub async fn run(
    aws: &tributary_aws::SdkConfig,
    svc: &Services<'_>,
    queue_url: &str,
    json_out: bool,
) -> Result<()> {
    let queue = tributary_aws::SqsQueue::new(aws, queue_url);
    let mut batches = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let messages = queue.receive().await?;
        // A kept message comes back once its visibility timeout ends: one
        // pass over the queue is enough.
        let fresh: Vec<_> = messages
            .into_iter()
            .filter(|m| seen.insert(m.id.clone()))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for message in fresh {
            let outcome = redrive_one(aws, svc, &message.body).await;
            let done = outcome["redriven"] == true;
            if done {
                queue.delete(&message.receipt).await?;
            }
            batches.push(outcome);
        }
    }
    let kept = batches.iter().filter(|b| b["redriven"] != true).count();
    if json_out {
        super::report::print_json(&json!({"batches": batches, "kept": kept}))?;
    } else {
        println!(
            "{:<16} {:<22} {:>7} {:<18} OUTCOME",
            "STREAM", "SHARD", "RECORDS", "CONSUMER"
        );
        for b in &batches {
            println!(
                "{:<16} {:<22} {:>7} {:<18} {}",
                b["stream"].as_str().unwrap_or("?"),
                b["shard"].as_str().unwrap_or("?"),
                b["records"].as_u64().unwrap_or(0),
                b["consumer"].as_str().unwrap_or("?"),
                b["outcome"].as_str().unwrap_or_default()
            );
        }
        println!(
            "{} batch(es) redriven, {kept} kept in the queue",
            batches.len() - kept
        );
    }
    if kept > 0 {
        anyhow::bail!("{kept} failed batch(es) could not be redriven and stay in the queue");
    }
    Ok(())
}

/// One message: what became of its batch (`redriven` when the consumer
/// took every record).
async fn redrive_one(aws: &tributary_aws::SdkConfig, svc: &Services<'_>, body: &str) -> Value {
    let failure: FailureRecord = match serde_json::from_str(body) {
        Ok(f) => f,
        Err(e) => {
            return json!({"redriven": false, "outcome": format!("not a Kinesis on-failure record ({e}): left in the queue"), "body": body})
        }
    };
    let stream = failure
        .batch
        .stream_arn
        .rsplit_once(":stream/")
        .map_or(failure.batch.stream_arn.as_str(), |(_, s)| s)
        .to_string();
    let mut outcome = json!({
        "stream": stream,
        "shard": failure.batch.shard_id,
        "first": failure.batch.start_sequence_number,
        "last": failure.batch.end_sequence_number,
        "condition": failure.request_context.condition,
        "redriven": false,
    });
    let Some(consumer) = consumer_of(&failure.request_context.function_arn) else {
        outcome["outcome"] = json!(format!(
            "{} is not a stream consumer: left in the queue",
            failure.request_context.function_arn
        ));
        return outcome;
    };
    outcome["consumer"] = json!(consumer);
    let result: Result<Value> = async {
        let records = tributary_aws::KinesisProducer::new(aws, &stream)
            .records_between(
                &failure.batch.shard_id,
                &failure.batch.start_sequence_number,
                &failure.batch.end_sequence_number,
            )
            .await
            .with_context(|| format!("reading the failed batch from {stream}"))?;
        outcome["records"] = json!(records.len());
        if records.is_empty() {
            anyhow::bail!(
                "the stream no longer holds these records (past its retention): left in the queue"
            );
        }
        let mut event = tributary_local::kinesis::event_source_mapping_event(&stream, &records);
        for record in event["Records"].as_array_mut().into_iter().flatten() {
            record["eventSourceARN"] = json!(failure.batch.stream_arn);
        }
        super::ops::invoke_function(svc, consumer, event).await
    }
    .await;
    match result {
        Ok(response) => {
            let failed = response["batchItemFailures"].as_array().map_or(0, Vec::len);
            outcome["response"] = response;
            if failed == 0 {
                outcome["redriven"] = json!(true);
                outcome["outcome"] = json!("redriven");
            } else {
                outcome["outcome"] = json!(format!(
                    "{failed} record(s) failed again: left in the queue"
                ));
            }
        }
        Err(e) => outcome["outcome"] = json!(format!("{e:#}")),
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consumer_is_read_off_the_function_arn() {
        let arn = "arn:aws:lambda:eu-west-1:1:function:prod-stream-aggregate";
        assert_eq!(consumer_of(arn), Some("stream-aggregate"));
        assert_eq!(
            consumer_of("arn:aws:lambda:eu-west-1:1:function:prod-click-inference:7"),
            Some("click-inference")
        );
        assert_eq!(
            consumer_of("arn:aws:lambda:eu-west-1:1:function:prod-reconcile"),
            None
        );
    }
}
