//! Event source mappings, locally: whether each stream consumer is fed is
//! an item in the workspace's state store, so a stop survives the process
//! that made it. The records a disabled consumer has not seen wait in the
//! workspace until it is enabled again (see the CLI's stream delivery).

use async_trait::async_trait;
use serde_json::json;
use tributary_core::ports::{Condition, ConsumerSwitch, PortResult, StateStore};

pub const MAPPING_PK: &str = "event_source_mapping";

pub struct StateConsumerSwitch<S: StateStore> {
    store: S,
}

impl<S: StateStore> StateConsumerSwitch<S> {
    pub fn new(store: S) -> Self {
        StateConsumerSwitch { store }
    }
}

#[async_trait]
impl<S: StateStore> ConsumerSwitch for StateConsumerSwitch<S> {
    async fn set_enabled(&self, consumer: &str, enabled: bool) -> PortResult<()> {
        self.store
            .put(
                MAPPING_PK,
                consumer,
                json!({"enabled": enabled, "changed_at": chrono::Utc::now()}),
                Condition::Always,
            )
            .await
            .map(|_version| ())
    }

    /// A consumer nobody has switched yet is disabled, as Terraform
    /// creates the inference consumer's mapping.
    async fn enabled(&self, consumer: &str) -> PortResult<Option<bool>> {
        let item = self.store.get(MAPPING_PK, consumer).await?;
        Ok(Some(item.is_some_and(|i| i.value["enabled"] == true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_store::FileStateStore;

    #[tokio::test]
    async fn a_switch_survives_the_process_that_made_it() {
        let dir = tempfile::tempdir().unwrap();
        let switch = StateConsumerSwitch::new(FileStateStore::new(dir.path().join("state")));
        assert_eq!(
            switch.enabled("click-inference").await.unwrap(),
            Some(false)
        );
        switch.set_enabled("click-inference", true).await.unwrap();
        let again = StateConsumerSwitch::new(FileStateStore::new(dir.path().join("state")));
        assert_eq!(again.enabled("click-inference").await.unwrap(), Some(true));
        assert_eq!(
            again.enabled("stream-aggregate").await.unwrap(),
            Some(false)
        );
    }
}
