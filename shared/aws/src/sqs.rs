//! An SQS queue read by an operator: the stream-failures queue, where the
//! Kinesis event source mappings describe the batches that still failed
//! after their retries.

use crate::port_error;
use aws_sdk_sqs::Client;
use tributary_core::ports::PortResult;

pub struct SqsQueue {
    client: Client,
    url: String,
}

/// A received message: its body, and the handle that deletes it.
#[derive(Debug, Clone)]
pub struct QueueMessage {
    pub id: String,
    pub receipt: String,
    pub body: String,
}

impl SqsQueue {
    pub fn new(config: &aws_config::SdkConfig, url: &str) -> SqsQueue {
        SqsQueue {
            client: Client::new(config),
            url: url.to_string(),
        }
    }

    /// Up to 10 messages, without waiting; each stays invisible to other
    /// readers for the queue's visibility timeout unless deleted.
    pub async fn receive(&self) -> PortResult<Vec<QueueMessage>> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| port_error("receiving messages".into(), &self.url, e))?;
        Ok(out
            .messages()
            .iter()
            .map(|m| QueueMessage {
                id: m.message_id().unwrap_or_default().to_string(),
                receipt: m.receipt_handle().unwrap_or_default().to_string(),
                body: m.body().unwrap_or_default().to_string(),
            })
            .collect())
    }

    pub async fn delete(&self, receipt: &str) -> PortResult<()> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| port_error("deleting a message".into(), &self.url, e))
    }
}
