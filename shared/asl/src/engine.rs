//! Running a definition: input/output processing, every state type,
//! Retry/Catch, the context object, history events, on a virtual clock.
//!
//! The engine is deterministic: given the definition, the input, the start
//! time, the seed and what the host answers, it always takes the same path
//! and produces the same history. Parallel branches and Map iterations run
//! one after another on the calling thread, each on its own timeline that
//! starts when the state starts; the state ends when the last of them does
//! (with MaxConcurrency, an iteration starts when a slot frees up). When one
//! fails at time T, the siblings started by T run the states they entered by
//! T and stop (Engine::cancel_after). So a 48-hour approval timeout or a year
//! of daily Waits costs microseconds.

use crate::definition::{
    Catcher, Common, Kind, MapMode, MapState, Number, Parallel, Retrier, State, StateMachine, Task,
    Text, WaitFor,
};
use crate::errors;
use crate::intrinsics::IntrinsicEnv;
use crate::path::{type_name, Path, ReferencePath};
use chrono::{SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

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

/// Why a run of states stopped early.
#[derive(Debug)]
enum Stop {
    Failed(Failure),
    Suspended(Waiting),
    TimedOut,
    Aborted,
    /// A sibling iteration or branch failed: this one, started beside it,
    /// is stopped at the failure's time.
    Cancelled,
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Stop {
        Stop::Failed(f)
    }
}

fn runtime(cause: impl Into<String>) -> Stop {
    Stop::Failed(Failure::new(errors::RUNTIME, cause))
}

pub fn iso_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Rng(u64);

impl IntrinsicEnv for Rng {
    fn random_u64(&mut self) -> u64 {
        splitmix64(&mut self.0)
    }
}

/// Run an execution to its end (or until it waits on a callback nobody has
/// answered yet).
pub fn run(
    machine: &StateMachine,
    input: Value,
    options: &RunOptions,
    host: &mut dyn Host,
) -> Execution {
    let mut engine = Engine {
        host,
        options,
        rng: Rng(options.seed),
        history: Vec::new(),
        transitions: 0,
        tokens_issued: 0,
        deadline_ms: machine
            .timeout_seconds
            .map(|s| options.start_ms + (s as i64) * 1000),
        spare_contexts: Vec::new(),
        cancel_after: None,
        execution_base: json!({
            "Id": options.execution_arn(),
            "Input": input,
            "Name": options.execution_name,
            "RoleArn": format!("arn:aws:iam::{}:role/tributary-local", options.account),
            "StartTime": iso_ms(options.start_ms),
            "RedriveCount": 0,
        }),
    };
    let mut now = options.start_ms;
    engine.event(now, "ExecutionStarted", json!({"input": input}));
    let result = engine.run_machine(machine, input.clone(), &mut now, None);
    let mut exec = Execution {
        execution_arn: options.execution_arn(),
        name: options.execution_name.clone(),
        status: Status::Running,
        input,
        output: None,
        error: None,
        cause: None,
        start_ms: options.start_ms,
        stop_ms: Some(now),
        waiting: None,
        history: Vec::new(),
        transitions: 0,
    };
    match result {
        Ok(output) => {
            engine.event(now, "ExecutionSucceeded", json!({"output": output}));
            exec.status = Status::Succeeded;
            exec.output = Some(output);
        }
        Err(Stop::Failed(f)) => {
            engine.event(
                now,
                "ExecutionFailed",
                json!({"error": f.error, "cause": f.cause}),
            );
            exec.status = Status::Failed;
            exec.error = Some(f.error);
            exec.cause = Some(f.cause);
        }
        Err(Stop::TimedOut) => {
            let cause = format!(
                "the execution ran longer than the state machine's TimeoutSeconds ({} s)",
                machine.timeout_seconds.unwrap_or_default()
            );
            engine.event(
                now,
                "ExecutionTimedOut",
                json!({"error": errors::TIMEOUT, "cause": cause}),
            );
            exec.status = Status::TimedOut;
            exec.error = Some(errors::TIMEOUT.into());
            exec.cause = Some(cause);
        }
        Err(Stop::Aborted) | Err(Stop::Cancelled) => {
            engine.event(now, "ExecutionAborted", Value::Null);
            exec.status = Status::Aborted;
        }
        Err(Stop::Suspended(w)) => {
            exec.stop_ms = None;
            exec.waiting = Some(w);
        }
    }
    exec.history = engine.history;
    exec.transitions = engine.transitions;
    exec
}

struct Engine<'h, 'o> {
    host: &'h mut dyn Host,
    options: &'o RunOptions,
    rng: Rng,
    history: Vec<HistoryEvent>,
    transitions: u64,
    tokens_issued: u64,
    deadline_ms: Option<i64>,
    /// Inside iterations or branches started beside one that failed: no
    /// state is entered after this time (on AWS they are stopped then; a
    /// Task already invoked still runs, as a Lambda is not recalled).
    cancel_after: Option<i64>,
    execution_base: Value,
    spare_contexts: Vec<Value>,
}

/// `$$.Map.Item` while an iteration's input is being built.
struct MapItem<'a> {
    index: usize,
    value: &'a Value,
}

impl Engine<'_, '_> {
    fn event(&mut self, at_ms: i64, event_type: &str, details: Value) {
        let id = self.history.len() as u64 + 1;
        self.history.push(HistoryEvent {
            id,
            timestamp: iso_ms(at_ms),
            event_type: event_type.to_string(),
            details,
        });
    }

    /// The context object for a state. Contexts are pooled: the Execution
    /// part (which holds the whole execution input) is cloned once per
    /// nesting level, not once per state.
    fn context(
        &mut self,
        state: &str,
        entered_ms: i64,
        retry_count: u64,
        token: Option<&str>,
        item: Option<&MapItem<'_>>,
    ) -> Value {
        let mut ctx = self.spare_contexts.pop().unwrap_or_else(|| {
            json!({
                "Execution": self.execution_base,
                "StateMachine": {"Id": self.options.state_machine_arn(), "Name": self.options.state_machine_name},
            })
        });
        let Some(map) = ctx.as_object_mut() else {
            unreachable!("contexts are objects")
        };
        map.insert(
            "State".into(),
            json!({"Name": state, "EnteredTime": iso_ms(entered_ms), "RetryCount": retry_count}),
        );
        match token {
            Some(t) => map.insert("Task".into(), json!({"Token": t})),
            None => map.remove("Task"),
        };
        match item {
            Some(item) => map.insert(
                "Map".into(),
                json!({"Item": {"Index": item.index, "Value": item.value}}),
            ),
            None => map.remove("Map"),
        };
        ctx
    }

    fn recycle(&mut self, ctx: Value) {
        self.spare_contexts.push(ctx);
    }

    /// Advance simulated time; in real-time mode, also sleep.
    fn advance(&mut self, now: &mut i64, to_ms: i64) -> Result<(), Stop> {
        let target = match self.deadline_ms {
            Some(d) if to_ms > d => d,
            _ => to_ms,
        };
        if target > *now {
            if self.options.clock == ClockMode::Real {
                std::thread::sleep(std::time::Duration::from_millis((target - *now) as u64));
            }
            *now = target;
        }
        if self.deadline_ms.is_some_and(|d| to_ms > d) {
            return Err(Stop::TimedOut);
        }
        Ok(())
    }

    fn run_machine(
        &mut self,
        machine: &StateMachine,
        input: Value,
        now: &mut i64,
        scope: Option<&str>,
    ) -> Result<Value, Stop> {
        let mut current = machine.start_at.as_str();
        let mut input = input;
        loop {
            if self.deadline_ms.is_some_and(|d| *now > d) {
                return Err(Stop::TimedOut);
            }
            if self.host.aborted() {
                return Err(Stop::Aborted);
            }
            if self.cancel_after.is_some_and(|c| *now > c) {
                return Err(Stop::Cancelled);
            }
            let state = machine.states.get(current).ok_or_else(|| {
                runtime(format!(
                    "no state named '{current}'{}",
                    scope.map(|s| format!(" in {s}")).unwrap_or_default()
                ))
            })?;
            let kind = state.type_name();
            self.event(
                *now,
                &format!("{kind}StateEntered"),
                json!({"name": state.name, "input": input}),
            );
            self.transitions += 1;
            let (output, next) = self.run_state(state, input, now)?;
            if !matches!(state.kind, Kind::Fail { .. }) {
                self.event(
                    *now,
                    &format!("{kind}StateExited"),
                    json!({"name": state.name, "output": output}),
                );
            }
            match next {
                Some(n) => {
                    current = machine
                        .states
                        .get_key_value(n.as_str())
                        .map(|(k, _)| k.as_str())
                        .ok_or_else(|| {
                            runtime(format!(
                                "state '{}' goes to '{n}', which does not exist",
                                state.name
                            ))
                        })?;
                    input = output;
                }
                None => return Ok(output),
            }
        }
    }

    fn select_io(
        &self,
        path: &Option<Path>,
        value: &Value,
        context: &Value,
        field: &str,
        state: &str,
    ) -> Result<Value, Stop> {
        match path {
            None => Ok(Value::Object(Map::new())),
            Some(p) => p.select(value, context).ok_or_else(|| {
                runtime(format!(
                    "state '{state}': {field} '{}' matches nothing in {}",
                    p.text(),
                    preview(value)
                ))
            }),
        }
    }

    /// Run one state; returns its output and the next state (None: the end).
    fn run_state(
        &mut self,
        state: &State,
        input: Value,
        now: &mut i64,
    ) -> Result<(Value, Option<String>), Stop> {
        let ctx = self.context(&state.name, *now, 0, None, None);
        let result = self.run_state_with(state, input, now, &ctx);
        self.recycle(ctx);
        result
    }

    fn run_state_with(
        &mut self,
        state: &State,
        input: Value,
        now: &mut i64,
        ctx: &Value,
    ) -> Result<(Value, Option<String>), Stop> {
        match &state.kind {
            Kind::Pass {
                parameters,
                result,
                result_path,
            } => {
                let effective =
                    self.select_io(&state.input_path, &input, ctx, "InputPath", &state.name)?;
                let effective = match parameters {
                    Some(t) => t.render(&effective, ctx, &mut self.rng).map_err(|(e, m)| {
                        Failure::new(e, format!("state '{}', Parameters: {m}", state.name))
                    })?,
                    None => effective,
                };
                let result = result.clone().unwrap_or(effective);
                let placed = place_result(result_path, input, result, &state.name)?;
                let output =
                    self.select_io(&state.output_path, &placed, ctx, "OutputPath", &state.name)?;
                Ok((output, state.next.clone()))
            }
            Kind::Wait(wait) => {
                let effective =
                    self.select_io(&state.input_path, &input, ctx, "InputPath", &state.name)?;
                let until = match wait {
                    WaitFor::Seconds(n) => {
                        *now + self.number(n, &effective, ctx, &state.name, "SecondsPath")? as i64
                            * 1000
                    }
                    WaitFor::Timestamp(t) => {
                        let text = self.text(t, &effective, ctx)?;
                        crate::choice::timestamp(&text)
                            .ok_or_else(|| runtime(format!("state '{}': TimestampPath gave '{text}', which is not an RFC 3339 timestamp", state.name)))?
                            .timestamp_millis()
                    }
                };
                self.advance(now, until)?;
                let output = self.select_io(
                    &state.output_path,
                    &effective,
                    ctx,
                    "OutputPath",
                    &state.name,
                )?;
                Ok((output, state.next.clone()))
            }
            Kind::Choice { choices, default } => {
                let effective =
                    self.select_io(&state.input_path, &input, ctx, "InputPath", &state.name)?;
                let mut next = None;
                for (cond, target) in choices {
                    let hit = cond.evaluate(&effective, ctx).map_err(|m| {
                        runtime(format!("state '{}': invalid path '{}': the choice state's condition path references an invalid value", state.name, m.0))
                    })?;
                    if hit {
                        next = Some(target.clone());
                        break;
                    }
                }
                let next = match next.or_else(|| default.clone()) {
                    Some(n) => n,
                    None => {
                        return Err(Stop::Failed(Failure::new(
                            errors::NO_CHOICE_MATCHED,
                            format!(
                                "state '{}': no choice rule matched and there is no Default",
                                state.name
                            ),
                        )))
                    }
                };
                let output = self.select_io(
                    &state.output_path,
                    &effective,
                    ctx,
                    "OutputPath",
                    &state.name,
                )?;
                Ok((output, Some(next)))
            }
            Kind::Succeed => {
                let effective =
                    self.select_io(&state.input_path, &input, ctx, "InputPath", &state.name)?;
                let output = self.select_io(
                    &state.output_path,
                    &effective,
                    ctx,
                    "OutputPath",
                    &state.name,
                )?;
                Ok((output, None))
            }
            Kind::Fail { error, cause } => {
                let error = match error {
                    Some(t) => self.text(t, &input, ctx)?,
                    None => String::new(),
                };
                let cause = match cause {
                    Some(t) => self.text(t, &input, ctx)?,
                    None => String::new(),
                };
                Err(Stop::Failed(Failure { error, cause }))
            }
            Kind::Task(task) => {
                self.with_retries(state, &task.common, input, now, |e, input, now, attempt| {
                    e.task_attempt(state, task, input, now, attempt)
                })
            }
            Kind::Parallel(p) => {
                self.with_retries(state, &p.common, input, now, |e, input, now, _| {
                    e.parallel_attempt(state, p, input, now)
                })
            }
            Kind::Map(m) => self.with_retries(state, &m.common, input, now, |e, input, now, _| {
                e.map_attempt(state, m, input, now)
            }),
        }
    }

    fn number(
        &mut self,
        n: &Number,
        input: &Value,
        ctx: &Value,
        state: &str,
        field: &str,
    ) -> Result<u64, Stop> {
        match n {
            Number::Fixed(v) => Ok(*v),
            Number::Path(p) => {
                let v = p.select(input, ctx).ok_or_else(|| {
                    runtime(format!(
                        "state '{state}': {field} '{}' matches nothing",
                        p.text()
                    ))
                })?;
                v.as_u64().ok_or_else(|| {
                    runtime(format!(
                        "state '{state}': {field} '{}' must select a non-negative integer, got {v}",
                        p.text()
                    ))
                })
            }
        }
    }

    fn text(&mut self, t: &Text, input: &Value, ctx: &Value) -> Result<String, Stop> {
        match t {
            Text::Fixed(s) => Ok(s.clone()),
            Text::Dynamic(d) => {
                let v = d
                    .evaluate(input, ctx, &mut self.rng)
                    .map_err(|(e, m)| Stop::Failed(Failure::new(e, m)))?;
                match v {
                    Value::String(s) => Ok(s),
                    other => Err(runtime(format!(
                        "expected a string, got {}",
                        type_name(&other)
                    ))),
                }
            }
        }
    }

    /// Retry and Catch around one of Task, Parallel, Map. The attempt
    /// returns the state's result, before ResultSelector and ResultPath.
    fn with_retries(
        &mut self,
        state: &State,
        common: &Common,
        input: Value,
        now: &mut i64,
        mut attempt: impl FnMut(&mut Self, &Value, &mut i64, u64) -> Result<Value, Stop>,
    ) -> Result<(Value, Option<String>), Stop> {
        let mut retries_used = vec![0u64; common.retry.len()];
        let mut attempt_no = 0u64;
        loop {
            let outcome = attempt(self, &input, now, attempt_no).and_then(|result| {
                let ctx = self.context(&state.name, *now, attempt_no, None, None);
                let output = self.finish_result(state, common, &input, result, &ctx);
                self.recycle(ctx);
                output
            });
            let failure = match outcome {
                Ok(output) => return Ok((output, state.next.clone())),
                Err(Stop::Failed(f)) => f,
                Err(other) => return Err(other),
            };
            if let Some(ix) = common
                .retry
                .iter()
                .position(|r| errors::matches(&r.error_equals, &failure.error))
            {
                let retrier = &common.retry[ix];
                if retries_used[ix] < retrier.max_attempts {
                    let delay_ms = self.backoff_ms(retrier, retries_used[ix]);
                    retries_used[ix] += 1;
                    attempt_no += 1;
                    self.event(*now, "RetryScheduled", json!({"name": state.name, "error": failure.error, "attempt": attempt_no, "delayMs": delay_ms}));
                    self.advance(now, *now + delay_ms as i64)?;
                    continue;
                }
            }
            if let Some(catcher) = common
                .catch
                .iter()
                .find(|c| errors::matches(&c.error_equals, &failure.error))
            {
                return self.caught(state, catcher, input, failure, *now);
            }
            return Err(Stop::Failed(failure));
        }
    }

    /// ResultSelector, ResultPath and OutputPath over a state's result.
    fn finish_result(
        &mut self,
        state: &State,
        common: &Common,
        input: &Value,
        result: Value,
        ctx: &Value,
    ) -> Result<Value, Stop> {
        let selected = match &common.result_selector {
            Some(t) => t.render(&result, ctx, &mut self.rng).map_err(|(e, m)| {
                Failure::new(e, format!("state '{}', ResultSelector: {m}", state.name))
            })?,
            None => result,
        };
        let placed = place_result(&common.result_path, input.clone(), selected, &state.name)?;
        self.select_io(&state.output_path, &placed, ctx, "OutputPath", &state.name)
    }

    fn backoff_ms(&mut self, r: &Retrier, retries_so_far: u64) -> u64 {
        let mut delay =
            r.interval_seconds as f64 * r.backoff_rate.powi(retries_so_far.min(1000) as i32);
        if let Some(max) = r.max_delay_seconds {
            delay = delay.min(max as f64);
        }
        let mut ms = (delay * 1000.0).min(1.0e15) as u64;
        if r.full_jitter && ms > 0 {
            ms = self.rng.random_u64() % (ms + 1);
        }
        ms
    }

    fn caught(
        &mut self,
        state: &State,
        catcher: &Catcher,
        input: Value,
        failure: Failure,
        now: i64,
    ) -> Result<(Value, Option<String>), Stop> {
        self.event(
            now,
            "CatchTaken",
            json!({"name": state.name, "error": failure.error, "next": catcher.next}),
        );
        let error_output = json!({"Error": failure.error, "Cause": failure.cause});
        let output = match &catcher.result_path {
            None => input,
            Some(p) => {
                let mut target = input;
                p.place(&mut target, error_output).map_err(|e| {
                    runtime(format!("state '{}': Catch ResultPath: {e}", state.name))
                })?;
                target
            }
        };
        Ok((output, Some(catcher.next.clone())))
    }

    fn task_attempt(
        &mut self,
        state: &State,
        task: &Task,
        input: &Value,
        now: &mut i64,
        attempt: u64,
    ) -> Result<Value, Stop> {
        let started = *now;
        let base_ctx = self.context(&state.name, started, attempt, None, None);
        let effective = self.select_io(
            &state.input_path,
            input,
            &base_ctx,
            "InputPath",
            &state.name,
        )?;
        self.recycle(base_ctx);
        let wants_token = task.resource.ends_with(".waitForTaskToken");
        let token = wants_token.then(|| self.new_token());
        let ctx = self.context(&state.name, started, attempt, token.as_deref(), None);
        let parameters = match &task.common.parameters {
            Some(t) => t
                .render(&effective, &ctx, &mut self.rng)
                .map_err(|(e, m)| {
                    Failure::new(e, format!("state '{}', Parameters: {m}", state.name))
                })?,
            None => effective,
        };
        let timeout_s = match &task.timeout {
            Some(n) => Some(self.number(n, input, &ctx, &state.name, "TimeoutSecondsPath")?),
            None => None,
        };
        let heartbeat_s = match &task.heartbeat {
            Some(n) => Some(self.number(n, input, &ctx, &state.name, "HeartbeatSecondsPath")?),
            None => None,
        };
        let integration = Integration::of(&task.resource);
        let (function, payload) = match integration {
            Integration::LambdaArn(ref name) => (Some(name.clone()), parameters.clone()),
            Integration::LambdaInvoke => {
                let function = parameters
                    .get("FunctionName")
                    .and_then(|f| f.as_str())
                    .map(str::to_string);
                if function.is_none() {
                    return Err(Failure::new(
                        errors::RUNTIME,
                        format!(
                            "state '{}': lambda:invoke needs Parameters.FunctionName",
                            state.name
                        ),
                    )
                    .into());
                }
                (
                    function,
                    parameters
                        .get("Payload")
                        .cloned()
                        .unwrap_or_else(|| json!({})),
                )
            }
            Integration::Service => (None, parameters.clone()),
        };
        self.event(*now, "TaskScheduled", json!({"resource": task.resource, "parameters": payload, "timeoutInSeconds": timeout_s, "heartbeatInSeconds": heartbeat_s}));
        let call = TaskCall {
            state_name: &state.name,
            resource: &task.resource,
            function: function.as_deref(),
            payload: &payload,
            token: token.as_deref(),
            context: &ctx,
            attempt,
            timeout_ms: timeout_s.map(|s| s * 1000),
            heartbeat_ms: heartbeat_s.map(|s| s * 1000),
        };
        let timeout_ms = call.timeout_ms;
        if let Some(nested) = task
            .resource
            .strip_prefix("arn:aws:states:::states:startExecution")
        {
            let output = self.nested_execution(&call, nested, now);
            return output.map_err(Stop::Failed);
        }
        let outcome = self.host.invoke(&call);
        let elapsed = outcome.elapsed_ms;
        if let Some(t) = timeout_ms.filter(|t| elapsed > *t) {
            return Err(self.time_out(
                now,
                started + t as i64,
                errors::TIMEOUT,
                format!(
                    "state '{}': the task ran longer than its TimeoutSeconds ({} s)",
                    state.name,
                    t / 1000
                ),
            ));
        }
        self.advance(now, started + elapsed as i64)?;
        let result = match outcome.result {
            Err(f) => return Err(self.task_failed(*now, f)),
            Ok(v) => v,
        };
        let result = match &token {
            None => result,
            Some(token) => {
                self.event(
                    *now,
                    "TaskSubmitted",
                    json!({"resource": task.resource, "token": token}),
                );
                match self.host.callback(token, &call) {
                    Callback::Arrived {
                        result,
                        after_ms,
                        heartbeats_ms,
                    } => {
                        if let Some(h) = heartbeat_s.map(|h| h * 1000) {
                            let mut last = 0u64;
                            for beat in heartbeats_ms.iter().copied().chain([after_ms]) {
                                if beat.saturating_sub(last) > h {
                                    return Err(self.time_out(
                                        now,
                                        started + (last + h) as i64,
                                        errors::HEARTBEAT_TIMEOUT,
                                        format!(
                                            "state '{}': no heartbeat for {} s",
                                            state.name,
                                            h / 1000
                                        ),
                                    ));
                                }
                                last = beat;
                            }
                        }
                        if let Some(t) = timeout_ms.filter(|t| after_ms > *t) {
                            return Err(self.time_out(
                                now,
                                started + t as i64,
                                errors::TIMEOUT,
                                format!(
                                    "state '{}': no callback within TimeoutSeconds ({} s)",
                                    state.name,
                                    t / 1000
                                ),
                            ));
                        }
                        self.advance(now, started + after_ms as i64)?;
                        match result {
                            Ok(v) => v,
                            Err(f) => return Err(self.task_failed(*now, f)),
                        }
                    }
                    Callback::Pending => {
                        return Err(Stop::Suspended(Waiting {
                            token: token.clone(),
                            state: state.name.clone(),
                            deadline_ms: timeout_ms.map(|t| started + t as i64),
                        }))
                    }
                    Callback::Silent => {
                        let deadline = match (heartbeat_s, timeout_ms) {
                            (Some(h), _) => Some((h * 1000, errors::HEARTBEAT_TIMEOUT)),
                            (None, Some(t)) => Some((t, errors::TIMEOUT)),
                            (None, None) => None,
                        };
                        match deadline {
                            Some((after, error)) => {
                                return Err(self.time_out(
                                    now,
                                    started + after as i64,
                                    error,
                                    format!(
                                        "state '{}': no callback for task token within {} s",
                                        state.name,
                                        after / 1000
                                    ),
                                ));
                            }
                            None => {
                                return Err(Stop::Suspended(Waiting {
                                    token: token.clone(),
                                    state: state.name.clone(),
                                    deadline_ms: None,
                                }))
                            }
                        }
                    }
                }
            }
        };
        let result = match integration {
            Integration::LambdaInvoke if token.is_none() => json!({
                "ExecutedVersion": "$LATEST",
                "Payload": result,
                "SdkHttpMetadata": {"HttpStatusCode": 200},
                "SdkResponseMetadata": {"RequestId": format!("{}-{}", self.options.execution_name, self.history.len())},
                "StatusCode": 200
            }),
            _ => result,
        };
        self.event(
            *now,
            "TaskSucceeded",
            json!({"resource": task.resource, "output": result}),
        );
        self.recycle(ctx);
        Ok(result)
    }

    /// A task's deadline passed: move the clock to it and fail the task
    /// with `error` (States.Timeout or States.HeartbeatTimeout).
    fn time_out(&mut self, now: &mut i64, at_ms: i64, error: &str, cause: String) -> Stop {
        if let Err(stop) = self.advance(now, at_ms) {
            return stop;
        }
        self.task_failed(*now, Failure::new(error, cause))
    }

    fn task_failed(&mut self, now: i64, f: Failure) -> Stop {
        let event = if f.error == errors::TIMEOUT || f.error == errors::HEARTBEAT_TIMEOUT {
            "TaskTimedOut"
        } else {
            "TaskFailed"
        };
        self.event(now, event, json!({"error": f.error, "cause": f.cause}));
        Stop::Failed(f)
    }

    fn new_token(&mut self) -> String {
        self.tokens_issued += 1;
        let a = self.rng.random_u64();
        let b = self.rng.random_u64();
        format!(
            "{}-{}-{:016x}{:016x}",
            self.options.execution_name, self.tokens_issued, a, b
        )
    }

    /// `states:startExecution(.sync|.sync:2)`: run the child to its end.
    fn nested_execution(
        &mut self,
        call: &TaskCall<'_>,
        suffix: &str,
        now: &mut i64,
    ) -> Result<Value, Failure> {
        let arn = call
            .payload
            .get("StateMachineArn")
            .and_then(|a| a.as_str())
            .ok_or_else(|| {
                Failure::new(
                    errors::RUNTIME,
                    "startExecution needs Parameters.StateMachineArn",
                )
            })?
            .to_string();
        let machine = self.host.state_machine(&arn).ok_or_else(|| {
            Failure::new(
                "StateMachine.DoesNotExist",
                format!("no state machine '{arn}' is known to this run"),
            )
        })?;
        let input = match call.payload.get("Input") {
            Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
            Some(v) => v.clone(),
            None => json!({}),
        };
        let name = call
            .payload
            .get("Name")
            .and_then(|n| n.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "{}-child-{}",
                    self.options.execution_name,
                    self.history.len()
                )
            });
        let machine_name = arn.rsplit(':').next().unwrap_or(&arn).to_string();
        let mut options = RunOptions::new(&machine_name, &name, *now);
        options.clock = self.options.clock;
        let child = run(&machine, input, &options, &mut *self.host);
        let stop = child.stop_ms.unwrap_or(*now);
        let describe = json!({
            "ExecutionArn": child.execution_arn,
            "StateMachineArn": options.state_machine_arn(),
            "Name": name,
            "Status": child.status.as_str(),
            "StartDate": child.start_ms,
            "StopDate": stop,
            "Input": child.input,
            "Output": child.output,
        });
        if suffix.is_empty() {
            return Ok(
                json!({"ExecutionArn": describe["ExecutionArn"], "StartDate": child.start_ms}),
            );
        }
        if child.status == Status::Running {
            return Err(Failure::new(
                errors::TASK_FAILED,
                format!(
                    "child execution {name} waits for a callback; nested waits are not supported"
                ),
            ));
        }
        let _ = self.advance(now, stop);
        if child.status != Status::Succeeded {
            return Err(Failure::new(errors::TASK_FAILED, describe.to_string()));
        }
        let mut out = describe;
        if suffix == ".sync" {
            // The first version of the integration returns Output as text.
            out["Output"] = Value::String(child.output.unwrap_or(Value::Null).to_string());
            out["Input"] = Value::String(child.input.to_string());
        }
        Ok(out)
    }

    /// Runs a branch or iteration started beside one that failed at
    /// `failed_at`: states entered by then run, nothing after.
    fn cancelled_run(
        &mut self,
        machine: &StateMachine,
        input: Value,
        now: &mut i64,
        scope: &str,
        failed_at: i64,
    ) -> Result<Value, Stop> {
        let outer = self.cancel_after;
        self.cancel_after = Some(outer.map_or(failed_at, |c| c.min(failed_at)));
        let result = self.run_machine(machine, input, now, Some(scope));
        self.cancel_after = outer;
        match result {
            // A token it waits on is abandoned with it.
            Err(Stop::Suspended(_)) => Err(Stop::Cancelled),
            other => other,
        }
    }

    fn parallel_attempt(
        &mut self,
        state: &State,
        p: &Parallel,
        input: &Value,
        now: &mut i64,
    ) -> Result<Value, Stop> {
        let ctx = self.context(&state.name, *now, 0, None, None);
        let effective = self.select_io(&state.input_path, input, &ctx, "InputPath", &state.name)?;
        let branch_input = match &p.common.parameters {
            Some(t) => t
                .render(&effective, &ctx, &mut self.rng)
                .map_err(|(e, m)| {
                    Failure::new(e, format!("state '{}', Parameters: {m}", state.name))
                })?,
            None => effective,
        };
        self.recycle(ctx);
        self.event(*now, "ParallelStateStarted", Value::Null);
        let started = *now;
        let mut finished = started;
        let mut outputs = Vec::with_capacity(p.branches.len());
        // Branches all start together: after one fails, the others still
        // run up to the failure's time (their side effects happen on AWS
        // too), then stop.
        let mut failed: Option<(Failure, usize, i64)> = None;
        for (i, branch) in p.branches.iter().enumerate() {
            let mut t = started;
            let scope = format!("{}/Branches[{i}]", state.name);
            let result = match &failed {
                Some((_, _, failed_at)) => {
                    self.cancelled_run(branch, branch_input.clone(), &mut t, &scope, *failed_at)
                }
                None => self.run_machine(branch, branch_input.clone(), &mut t, Some(&scope)),
            };
            match result {
                Ok(out) if failed.is_none() => outputs.push(out),
                Ok(_) | Err(Stop::Cancelled) => {}
                Err(Stop::Failed(f)) if failed.is_none() => {
                    failed = Some((f, i, t.max(started)));
                }
                Err(Stop::Failed(_)) | Err(Stop::Suspended(_)) if failed.is_some() => {}
                Err(other) => {
                    *now = t;
                    return Err(other);
                }
            }
            finished = finished.max(t);
        }
        if let Some((f, branch, failed_at)) = failed {
            *now = failed_at;
            self.event(
                *now,
                "ParallelStateFailed",
                json!({"error": f.error, "cause": f.cause, "branch": branch}),
            );
            return Err(Stop::Failed(f));
        }
        *now = finished;
        self.event(*now, "ParallelStateSucceeded", Value::Null);
        Ok(Value::Array(outputs))
    }

    fn map_attempt(
        &mut self,
        state: &State,
        m: &MapState,
        input: &Value,
        now: &mut i64,
    ) -> Result<Value, Stop> {
        let ctx = self.context(&state.name, *now, 0, None, None);
        let effective = self.select_io(&state.input_path, input, &ctx, "InputPath", &state.name)?;
        let items: Vec<Value> = match &m.item_reader {
            Some(reader) => {
                let params = match &reader.parameters {
                    Some(t) => t
                        .render(&effective, &ctx, &mut self.rng)
                        .map_err(|(e, msg)| {
                            Failure::new(
                                e,
                                format!("state '{}', ItemReader.Parameters: {msg}", state.name),
                            )
                        })?,
                    None => json!({}),
                };
                crate::items::read(&mut *self.host, reader, &params).map_err(|f| {
                    Failure::new(f.error, format!("state '{}': {}", state.name, f.cause))
                })?
            }
            None => match m.items_path.select(&effective, &ctx) {
                Some(Value::Array(items)) => items,
                Some(other) => {
                    return Err(runtime(format!(
                        "state '{}': ItemsPath '{}' must select an array, got {}",
                        state.name,
                        m.items_path.text(),
                        type_name(&other)
                    )))
                }
                None => {
                    return Err(runtime(format!(
                        "state '{}': ItemsPath '{}' matches nothing in the input",
                        state.name,
                        m.items_path.text()
                    )))
                }
            },
        };
        let items = match &m.item_batcher {
            Some(b) => self.batch(state, b, items, &effective, &ctx)?,
            None => items,
        };
        let max_concurrency = self.number(
            &m.max_concurrency,
            &effective,
            &ctx,
            &state.name,
            "MaxConcurrencyPath",
        )? as usize;
        let tolerated_count = match &m.tolerated_failure_count {
            Some(n) => Some(self.number(
                n,
                &effective,
                &ctx,
                &state.name,
                "ToleratedFailureCountPath",
            )?),
            None => None,
        };
        let tolerated_pct = match &m.tolerated_failure_percentage {
            Some(n) => Some(self.number(
                n,
                &effective,
                &ctx,
                &state.name,
                "ToleratedFailurePercentagePath",
            )?),
            None => None,
        };
        let tolerant = m.mode == MapMode::Distributed
            && (tolerated_count.is_some() || tolerated_pct.is_some());
        self.recycle(ctx);
        self.event(*now, "MapStateStarted", json!({"length": items.len()}));
        let started = *now;
        // Each slot is free from this time on; an iteration takes the slot
        // that frees first (MaxConcurrency 0: as many slots as items).
        let slots = if max_concurrency == 0 {
            items.len().max(1)
        } else {
            max_concurrency
        };
        let mut slot_free = vec![started; slots.min(items.len().max(1))];
        let mut outputs = Vec::with_capacity(items.len());
        let mut failures = 0usize;
        let mut finished = started;
        // Iterations started beside one that failed (their slot was free
        // by then) still run up to the failure's time, as on AWS; later
        // ones never start.
        let mut failed: Option<(Failure, i64)> = None;
        for (index, item) in items.iter().enumerate() {
            let (slot, &begin) = slot_free
                .iter()
                .enumerate()
                .min_by_key(|(_, t)| **t)
                .expect("at least one slot");
            // Started before the failure: the first batch (one per slot)
            // and any whose slot freed strictly earlier.
            let started_by_then = |at: i64| index < slot_free.len() || begin < at;
            if failed.as_ref().is_some_and(|(_, at)| !started_by_then(*at)) {
                break;
            }
            let item_ctx = self.context(
                &state.name,
                begin,
                0,
                None,
                Some(&MapItem { index, value: item }),
            );
            let iteration_input = match &m.item_selector {
                Some(t) => t
                    .render(&effective, &item_ctx, &mut self.rng)
                    .map_err(|(e, msg)| {
                        Failure::new(e, format!("state '{}', ItemSelector: {msg}", state.name))
                    })?,
                None => item.clone(),
            };
            self.recycle(item_ctx);
            let mut t = begin;
            self.event(
                t,
                "MapIterationStarted",
                json!({"name": state.name, "index": index}),
            );
            let scope = format!("{}/{index}", state.name);
            if let Some((_, failed_at)) = &failed {
                let failed_at = *failed_at;
                match self.cancelled_run(&m.processor, iteration_input, &mut t, &scope, failed_at) {
                    Err(Stop::TimedOut) => return Err(Stop::TimedOut),
                    Err(Stop::Aborted) => return Err(Stop::Aborted),
                    _ => self.event(
                        t.min(failed_at),
                        "MapIterationAborted",
                        json!({"name": state.name, "index": index}),
                    ),
                }
                slot_free[slot] = t;
                continue;
            }
            match self.run_machine(&m.processor, iteration_input, &mut t, Some(&scope)) {
                Ok(out) => {
                    self.event(
                        t,
                        "MapIterationSucceeded",
                        json!({"name": state.name, "index": index}),
                    );
                    outputs.push(out);
                }
                Err(Stop::Failed(f)) => {
                    self.event(t, "MapIterationFailed", json!({"name": state.name, "index": index, "error": f.error, "cause": f.cause}));
                    if !tolerant {
                        failed = Some((f, t));
                        slot_free[slot] = t;
                        continue;
                    }
                    failures += 1;
                    outputs.push(json!({"Error": f.error, "Cause": f.cause}));
                }
                Err(other) => {
                    *now = t;
                    return Err(other);
                }
            }
            slot_free[slot] = t;
            finished = finished.max(t);
        }
        if let Some((f, failed_at)) = failed {
            *now = failed_at;
            self.event(*now, "MapStateFailed", Value::Null);
            return Err(Stop::Failed(f));
        }
        *now = finished;
        if tolerant {
            let total = items.len().max(1);
            let over_count = tolerated_count.is_some_and(|c| failures as u64 > c);
            let over_pct =
                tolerated_pct.is_some_and(|p| (failures as f64) * 100.0 / total as f64 > p as f64);
            if over_count || over_pct {
                self.event(*now, "MapStateFailed", Value::Null);
                return Err(Stop::Failed(Failure::new(
                    errors::EXCEED_TOLERATED_FAILURE_THRESHOLD,
                    format!(
                        "state '{}': {failures} of {} iterations failed, more than tolerated",
                        state.name,
                        items.len()
                    ),
                )));
            }
        }
        self.event(*now, "MapStateSucceeded", Value::Null);
        Ok(Value::Array(outputs))
    }

    fn batch(
        &mut self,
        state: &State,
        b: &crate::definition::ItemBatcher,
        items: Vec<Value>,
        effective: &Value,
        ctx: &Value,
    ) -> Result<Vec<Value>, Stop> {
        let max_items = match &b.max_items_per_batch {
            Some(n) => {
                self.number(n, effective, ctx, &state.name, "MaxItemsPerBatchPath")? as usize
            }
            None => usize::MAX,
        };
        let max_bytes = match &b.max_input_bytes_per_batch {
            Some(n) => {
                self.number(n, effective, ctx, &state.name, "MaxInputBytesPerBatchPath")? as usize
            }
            None => usize::MAX,
        };
        let batch_input = match &b.batch_input {
            Some(t) => Some(t.render(effective, ctx, &mut self.rng).map_err(|(e, m)| {
                Failure::new(
                    e,
                    format!("state '{}', ItemBatcher.BatchInput: {m}", state.name),
                )
            })?),
            None => None,
        };
        let mut batches = Vec::new();
        let mut current: Vec<Value> = Vec::new();
        let mut bytes = 0usize;
        for item in items {
            let size = item.to_string().len();
            if !current.is_empty()
                && (current.len() >= max_items.max(1) || bytes + size > max_bytes)
            {
                batches.push(std::mem::take(&mut current));
                bytes = 0;
            }
            bytes += size;
            current.push(item);
        }
        if !current.is_empty() {
            batches.push(current);
        }
        Ok(batches
            .into_iter()
            .map(|items| {
                let mut batch = json!({"Items": items});
                if let Some(bi) = &batch_input {
                    batch["BatchInput"] = bi.clone();
                }
                batch
            })
            .collect())
    }
}

/// How Step Functions treats a Task's Resource.
#[derive(Debug, Clone, PartialEq)]
enum Integration {
    /// `arn:aws:lambda:…:function:NAME[:qualifier]`: the function's own
    /// result is the task's result.
    LambdaArn(String),
    /// `arn:aws:states:::lambda:invoke[.waitForTaskToken]`: the result is
    /// wrapped in `{Payload, StatusCode, …}`.
    LambdaInvoke,
    Service,
}

impl Integration {
    fn of(resource: &str) -> Integration {
        if let Some(rest) = resource.strip_prefix("arn:aws:lambda:") {
            let name = rest.split(":function:").nth(1).unwrap_or(rest);
            let name = name.split(':').next().unwrap_or(name);
            return Integration::LambdaArn(name.to_string());
        }
        if resource.starts_with("arn:aws:states:::lambda:invoke") {
            return Integration::LambdaInvoke;
        }
        Integration::Service
    }
}

/// ResultPath: `None` keeps the input, else the result goes at the path.
fn place_result(
    path: &Option<ReferencePath>,
    input: Value,
    result: Value,
    state: &str,
) -> Result<Value, Stop> {
    match path {
        None => Ok(input),
        Some(p) => {
            let mut target = input;
            p.place(&mut target, result).map_err(|e| {
                Stop::Failed(Failure::new(
                    errors::RESULT_PATH_MATCH_FAILURE,
                    format!("state '{state}': {e}"),
                ))
            })?;
            Ok(target)
        }
    }
}

fn preview(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 200 {
        format!("{}…", s.chars().take(200).collect::<String>())
    } else {
        s
    }
}
