//! What a host implements: the calls a state machine makes to the outside
//! world (tasks, callbacks, item reads, nested machines) and their answers.

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub error: String,
    pub cause: String,
}

impl Failure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            cause: cause.into(),
        }
    }
}

/// One call of a Task state, as the host sees it.
#[derive(Debug)]
pub struct TaskCall<'a> {
    pub state_name: &'a str,
    /// The Resource as written (placeholders already substituted).
    pub resource: &'a str,
    /// For a Lambda ARN or `lambda:invoke`: the function (name or ARN).
    pub function: Option<&'a str>,
    /// What the function or service receives.
    pub payload: &'a Value,
    /// For `.waitForTaskToken`: the token the callback must quote.
    pub token: Option<&'a str>,
    pub context: &'a Value,
    /// 0 for the first attempt, then 1, 2, … on retries.
    pub attempt: u64,
    /// TimeoutSeconds and HeartbeatSeconds, resolved, in milliseconds.
    pub timeout_ms: Option<u64>,
    pub heartbeat_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskOutcome {
    pub result: Result<Value, Failure>,
    /// Simulated duration (milliseconds of virtual time the call takes).
    pub elapsed_ms: u64,
}

impl TaskOutcome {
    pub fn ok(v: Value) -> TaskOutcome {
        TaskOutcome {
            result: Ok(v),
            elapsed_ms: 0,
        }
    }
    pub fn failed(error: &str, cause: &str) -> TaskOutcome {
        TaskOutcome {
            result: Err(Failure::new(error, cause)),
            elapsed_ms: 0,
        }
    }
}

/// What became of a task token.
#[derive(Debug, Clone)]
pub enum Callback {
    /// SendTaskSuccess / SendTaskFailure, `after_ms` after the task started;
    /// `heartbeats_ms` are the SendTaskHeartbeat calls before it.
    Arrived {
        result: Result<Value, Failure>,
        after_ms: u64,
        heartbeats_ms: Vec<u64>,
    },
    /// Nobody has answered yet, but someone may: pause the execution.
    Pending,
    /// Nobody will answer: the task times out at its deadline (or the
    /// execution pauses if it has none).
    Silent,
}

/// The engine's outside world: functions, service integrations, callbacks,
/// item readers and nested state machines.
pub trait Host {
    fn invoke(&mut self, call: &TaskCall<'_>) -> TaskOutcome;

    fn callback(&mut self, _token: &str, _call: &TaskCall<'_>) -> Callback {
        Callback::Silent
    }

    /// S3 ListObjectsV2 for a distributed Map's ItemReader: every object
    /// under the prefix, as `{Key, Size, ETag, LastModified, StorageClass}`.
    fn list_objects(&mut self, bucket: &str, _prefix: &str) -> Result<Vec<Value>, Failure> {
        Err(Failure::new(
            errors::ITEM_READER_FAILED,
            format!("this host has no object store (s3://{bucket})"),
        ))
    }

    /// S3 GetObject for an ItemReader, as text.
    fn get_object(&mut self, bucket: &str, key: &str) -> Result<String, Failure> {
        Err(Failure::new(
            errors::ITEM_READER_FAILED,
            format!("this host has no object store (s3://{bucket}/{key})"),
        ))
    }

    /// A state machine for `states:startExecution.sync` by ARN or name.
    fn state_machine(&mut self, _arn: &str) -> Option<StateMachine> {
        None
    }

    /// Checked between states: has someone stopped the execution?
    fn aborted(&mut self) -> bool {
        false
    }
}
