//! The stream consumers' event source mappings on Lambda: a consumer is
//! switched by enabling or disabling every mapping that feeds its function
//! (ListEventSourceMappings, UpdateEventSourceMapping). A disabled mapping
//! keeps its checkpoint: the stream holds the records until it is enabled.

use crate::port_error;
use async_trait::async_trait;
use aws_sdk_lambda::Client;
use std::collections::BTreeMap;
use tributary_core::ports::{ConsumerSwitch, PortError, PortResult};

/// The variable that names the deployed function of a stream consumer.
pub fn consumer_function_variable(consumer: &str) -> String {
    format!(
        "TRIBUTARY_{}_FUNCTION",
        consumer.replace('-', "_").to_ascii_uppercase()
    )
}

pub struct LambdaConsumerSwitch {
    client: Client,
    /// Consumer (its name in the function table) → deployed function name.
    functions: BTreeMap<String, String>,
}

impl LambdaConsumerSwitch {
    pub fn new(config: &aws_config::SdkConfig) -> LambdaConsumerSwitch {
        LambdaConsumerSwitch {
            client: Client::new(config),
            functions: BTreeMap::new(),
        }
    }

    pub fn with_function(mut self, consumer: &str, function_name: &str) -> Self {
        self.functions
            .insert(consumer.to_string(), function_name.to_string());
        self
    }

    fn function(&self, consumer: &str) -> PortResult<&str> {
        self.functions.get(consumer).map(String::as_str).ok_or_else(|| {
            PortError::permanent(
                format!("switching the {consumer} consumer"),
                format!(
                    "{} is not set: this function does not know which Lambda function consumes the stream",
                    consumer_function_variable(consumer)
                ),
                "no consumer function configured",
            )
        })
    }

    /// (UUID, state) of every mapping that feeds the function.
    async fn mappings(&self, function: &str) -> PortResult<Vec<(String, String)>> {
        let mut found = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_event_source_mappings()
                .function_name(function)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| {
                    port_error(
                        format!("listing the event source mappings of {function}"),
                        function,
                        e,
                    )
                })?;
            for m in page.event_source_mappings() {
                if let Some(uuid) = m.uuid() {
                    found.push((uuid.to_string(), m.state().unwrap_or_default().to_string()));
                }
            }
            match page.next_marker() {
                Some(next) if !next.is_empty() => marker = Some(next.to_string()),
                _ => return Ok(found),
            }
        }
    }
}

/// Disabled (or on its way there); any other state delivers or will.
fn delivers(state: &str) -> bool {
    !matches!(state, "Disabled" | "Disabling" | "Deleting")
}

#[async_trait]
impl ConsumerSwitch for LambdaConsumerSwitch {
    async fn set_enabled(&self, consumer: &str, enabled: bool) -> PortResult<()> {
        let function = self.function(consumer)?;
        let mappings = self.mappings(function).await?;
        if mappings.is_empty() {
            return Err(PortError::NotFound {
                what: format!("an event source mapping feeding {function}"),
            });
        }
        for (uuid, state) in mappings {
            if delivers(&state) == enabled {
                continue;
            }
            self.client
                .update_event_source_mapping()
                .uuid(&uuid)
                .enabled(enabled)
                .send()
                .await
                .map_err(|e| {
                    port_error(
                        format!(
                            "{} the event source mapping {uuid} of {function}",
                            if enabled { "enabling" } else { "disabling" }
                        ),
                        function,
                        e,
                    )
                })?;
        }
        Ok(())
    }

    /// Whether any mapping of the consumer delivers; `None` when this
    /// function was not told the consumer's name or it has no mapping.
    async fn enabled(&self, consumer: &str) -> PortResult<Option<bool>> {
        let Some(function) = self.functions.get(consumer) else {
            return Ok(None);
        };
        let mappings = self.mappings(function).await?;
        Ok((!mappings.is_empty()).then(|| mappings.iter().any(|(_, state)| delivers(state))))
    }
}
