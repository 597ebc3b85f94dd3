//! StartExecution, locally: executions are recorded by name in the state
//! store (a second start with the same name is refused, as in Step
//! Functions) and queued for the caller to run in-process.

use async_trait::async_trait;
use std::sync::Mutex;
use tributary_core::ports::{
    Condition, PortError, PortResult, StateStore, Workflow, WorkflowStarter,
};

pub const EXECUTION_PK: &str = "execution";

#[derive(Debug, Clone, PartialEq)]
pub struct QueuedRun {
    pub workflow: Workflow,
    pub execution_name: String,
    pub input: serde_json::Value,
}

pub struct QueuedWorkflows<S: StateStore> {
    store: S,
    queue: Mutex<Vec<QueuedRun>>,
}

impl<S: StateStore> QueuedWorkflows<S> {
    pub fn new(store: S) -> Self {
        QueuedWorkflows {
            store,
            queue: Mutex::new(Vec::new()),
        }
    }

    /// Take the runs started since the last call, in start order.
    pub fn drain(&self) -> Vec<QueuedRun> {
        self.queue
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default()
    }
}

#[async_trait]
impl<S: StateStore> WorkflowStarter for QueuedWorkflows<S> {
    async fn start(
        &self,
        workflow: Workflow,
        execution_name: &str,
        input: serde_json::Value,
    ) -> PortResult<bool> {
        let record = serde_json::json!({
            "workflow": workflow,
            "input": input,
            "started_at": chrono::Utc::now(),
        });
        match self
            .store
            .put(EXECUTION_PK, execution_name, record, Condition::NotExists)
            .await
        {
            Ok(_) => {}
            Err(PortError::ConditionFailed { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
        if let Ok(mut q) = self.queue.lock() {
            q.push(QueuedRun {
                workflow,
                execution_name: execution_name.to_string(),
                input,
            });
        }
        Ok(true)
    }
}
