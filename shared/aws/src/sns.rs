//! Notifications on SNS: each audience ("approvals", "alerts") is a topic.

use crate::port_error;
use async_trait::async_trait;
use aws_sdk_sns::Client;
use std::collections::BTreeMap;
use tributary_core::ports::{Notifier, PortError, PortResult};

pub struct SnsNotifier {
    client: Client,
    /// Audience → topic ARN; "*" serves any audience not named.
    topics: BTreeMap<String, String>,
}

/// SNS subjects are at most 100 characters, on one line.
fn subject(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.chars().count() <= 100 {
        line
    } else {
        format!("{}…", line.chars().take(99).collect::<String>())
    }
}

impl SnsNotifier {
    pub fn new(config: &aws_config::SdkConfig, topics: BTreeMap<String, String>) -> SnsNotifier {
        SnsNotifier {
            client: Client::new(config),
            topics,
        }
    }
}

#[async_trait]
impl Notifier for SnsNotifier {
    async fn notify(&self, topic: &str, subject_text: &str, message: &str) -> PortResult<String> {
        let arn = self
            .topics
            .get(topic)
            .or_else(|| self.topics.get("*"))
            .ok_or_else(|| {
                PortError::permanent(
                    format!("notifying {topic}"),
                    format!("no SNS topic is configured for {topic:?}: set TRIBUTARY_TOPIC_ARN"),
                    "unconfigured topic",
                )
            })?;
        let out = self
            .client
            .publish()
            .topic_arn(arn)
            .subject(subject(subject_text))
            .message(message)
            .send()
            .await
            .map_err(|e| port_error(format!("notifying {topic}"), arn, e))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn subjects_fit_sns() {
        assert_eq!(super::subject("a\nb"), "a b");
        assert_eq!(super::subject(&"x".repeat(150)).chars().count(), 100);
    }
}
