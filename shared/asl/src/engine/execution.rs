//! The execution record: how a run is set up (options, clock) and what it
//! leaves (status, output, history, where it waits).

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClockMode {
    /// Waits, back-off and timeouts advance simulated time instantly.
    Virtual,
    /// Waits and back-off really sleep.
    Real,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub execution_name: String,
    pub state_machine_name: String,
    pub region: String,
    pub account: String,
    pub start_ms: i64,
    pub clock: ClockMode,
    pub seed: u64,
}

impl RunOptions {
    pub fn new(state_machine_name: &str, execution_name: &str, start_ms: i64) -> RunOptions {
        RunOptions {
            execution_name: execution_name.to_string(),
            state_machine_name: state_machine_name.to_string(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            start_ms,
            clock: ClockMode::Virtual,
            seed: name_seed(execution_name),
        }
    }

    pub fn state_machine_arn(&self) -> String {
        format!(
            "arn:aws:states:{}:{}:stateMachine:{}",
            self.region, self.account, self.state_machine_name
        )
    }

    pub fn execution_arn(&self) -> String {
        format!(
            "arn:aws:states:{}:{}:execution:{}:{}",
            self.region, self.account, self.state_machine_name, self.execution_name
        )
    }
}

fn name_seed(name: &str) -> u64 {
    // FNV-1a: stable across platforms and releases, unlike std's hasher.
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Running => "RUNNING",
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::TimedOut => "TIMED_OUT",
            Status::Aborted => "ABORTED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    pub id: u64,
    pub timestamp: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(skip_serializing_if = "Value::is_null", default)]
    pub details: Value,
}

/// A paused execution: which task token it waits on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiting {
    pub token: String,
    pub state: String,
    /// When the task times out (epoch ms), if it has a timeout.
    pub deadline_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Execution {
    pub execution_arn: String,
    pub name: String,
    pub status: Status,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub start_ms: i64,
    pub stop_ms: Option<i64>,
    pub waiting: Option<Waiting>,
    pub history: Vec<HistoryEvent>,
    pub transitions: u64,
}
