//! SendTaskSuccess / SendTaskFailure, locally: answers are queued for the
//! caller to apply to the paused execution with the interpreter (the same
//! way `QueuedWorkflows` queues starts).

use async_trait::async_trait;
use std::sync::Mutex;
use tributary_core::ports::{PortResult, TaskAnswer, TaskCallbacks};

#[derive(Default)]
pub struct QueuedCallbacks {
    queue: Mutex<Vec<(String, TaskAnswer)>>,
}

impl QueuedCallbacks {
    /// Take the answers given since the last call, in order.
    pub fn drain(&self) -> Vec<(String, TaskAnswer)> {
        self.queue
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default()
    }
}

#[async_trait]
impl TaskCallbacks for QueuedCallbacks {
    async fn answer(&self, token: &str, answer: TaskAnswer) -> PortResult<()> {
        if let Ok(mut q) = self.queue.lock() {
            q.push((token.to_string(), answer));
        }
        Ok(())
    }
}
