//! Pausing and resuming executions by replay.
//!
//! The engine is deterministic, so an execution never needs its stack
//! saved: what it needs is what the outside world answered. A `Journal`
//! records every task outcome in call order and every task-token answer by
//! token; resuming runs the definition again from the start, answering
//! recorded calls from the journal (no function runs twice) until it gets
//! past the point where it paused.

use crate::engine::{Callback, Failure, Host, TaskCall, TaskOutcome};
use crate::StateMachine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Journal {
    /// Outcomes of `Host::invoke`, in the order the engine asked.
    pub outcomes: Vec<RecordedCall>,
    /// SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat, by token.
    pub answers: BTreeMap<String, TokenAnswer>,
    /// ItemReader object reads, in order: a replayed Map sees the same
    /// items even if the bucket changed since.
    #[serde(default)]
    pub reads: Vec<Result<Value, Failure>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecordedCall {
    pub state: String,
    pub resource: String,
    pub result: Result<Value, Failure>,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TokenAnswer {
    /// Epoch ms of each SendTaskHeartbeat.
    pub heartbeats_ms: Vec<i64>,
    /// The final answer and when it came (epoch ms).
    pub result: Option<Result<Value, Failure>>,
    pub answered_ms: Option<i64>,
}

/// A host that answers from the journal first and records what the inner
/// host answers after that. Unanswered tokens are `Pending` until
/// `now_ms` passes their deadline, then `Silent` (so they time out).
pub struct JournalHost<'a> {
    pub inner: &'a mut dyn Host,
    pub journal: Journal,
    next_call: usize,
    next_read: usize,
    now_ms: i64,
}

impl<'a> JournalHost<'a> {
    pub fn new(inner: &'a mut dyn Host, journal: Journal, now_ms: i64) -> Self {
        JournalHost {
            inner,
            journal,
            next_call: 0,
            next_read: 0,
            now_ms,
        }
    }
}

fn entered_ms(call: &TaskCall<'_>) -> Option<i64> {
    let text = call.context.pointer("/State/EnteredTime")?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

impl JournalHost<'_> {
    fn replay_read(&mut self) -> Option<Result<Value, Failure>> {
        let recorded = self.journal.reads.get(self.next_read).cloned();
        if recorded.is_some() {
            self.next_read += 1;
        }
        recorded
    }
}

impl Host for JournalHost<'_> {
    fn invoke(&mut self, call: &TaskCall<'_>) -> TaskOutcome {
        if let Some(recorded) = self.journal.outcomes.get(self.next_call) {
            if recorded.state == call.state_name && recorded.resource == call.resource {
                self.next_call += 1;
                return TaskOutcome {
                    result: recorded.result.clone(),
                    elapsed_ms: recorded.elapsed_ms,
                };
            }
            // The definition changed under a paused execution: stop
            // trusting the journal from here on.
            self.journal.outcomes.truncate(self.next_call);
        }
        let outcome = self.inner.invoke(call);
        self.journal.outcomes.push(RecordedCall {
            state: call.state_name.to_string(),
            resource: call.resource.to_string(),
            result: outcome.result.clone(),
            elapsed_ms: outcome.elapsed_ms,
        });
        self.next_call += 1;
        outcome
    }

    fn callback(&mut self, token: &str, call: &TaskCall<'_>) -> Callback {
        let started = entered_ms(call).unwrap_or(self.now_ms);
        let since = |t: i64| (t - started).max(0) as u64;
        match self.journal.answers.get(token) {
            Some(TokenAnswer {
                result: Some(result),
                answered_ms,
                heartbeats_ms,
            }) => Callback::Arrived {
                result: result.clone(),
                after_ms: since(answered_ms.unwrap_or(started)),
                heartbeats_ms: heartbeats_ms.iter().map(|&h| since(h)).collect(),
            },
            answer => {
                let pending = match self.inner.callback(token, call) {
                    Callback::Pending => Callback::Pending,
                    answered_or_silent => return answered_or_silent,
                };
                let heartbeats: Vec<u64> = answer
                    .map(|a| a.heartbeats_ms.iter().map(|&h| since(h)).collect())
                    .unwrap_or_default();
                let waited = since(self.now_ms);
                let last_sign_of_life = heartbeats.last().copied().unwrap_or(0);
                let overdue = call.timeout_ms.is_some_and(|t| waited >= t)
                    || call
                        .heartbeat_ms
                        .is_some_and(|h| waited >= last_sign_of_life + h);
                if overdue {
                    // Past a deadline while paused: the engine places the
                    // timeout exactly where it fell.
                    return Callback::Arrived {
                        result: Err(Failure::new(
                            crate::errors::TIMEOUT,
                            "no answer before the deadline",
                        )),
                        after_ms: waited,
                        heartbeats_ms: heartbeats,
                    };
                }
                pending
            }
        }
    }

    fn list_objects(&mut self, bucket: &str, prefix: &str) -> Result<Vec<Value>, Failure> {
        if let Some(r) = self.replay_read() {
            return r.map(|v| v.as_array().cloned().unwrap_or_default());
        }
        let result = self.inner.list_objects(bucket, prefix);
        self.journal.reads.push(result.clone().map(Value::Array));
        self.next_read += 1;
        result
    }

    fn get_object(&mut self, bucket: &str, key: &str) -> Result<String, Failure> {
        if let Some(r) = self.replay_read() {
            return r.map(|v| v.as_str().unwrap_or_default().to_string());
        }
        let result = self.inner.get_object(bucket, key);
        self.journal.reads.push(result.clone().map(Value::String));
        self.next_read += 1;
        result
    }

    fn state_machine(&mut self, arn: &str) -> Option<StateMachine> {
        self.inner.state_machine(arn)
    }

    fn aborted(&mut self) -> bool {
        self.inner.aborted()
    }
}
