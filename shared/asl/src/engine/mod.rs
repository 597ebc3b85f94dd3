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

mod execution;
mod host;
mod items;
mod map;
mod parallel;
mod retry;
mod task;

pub use execution::*;
pub use host::*;

use crate::definition::{
    Catcher, Common, Kind, MapMode, MapState, Number, Parallel, Retrier, State, StateMachine, Task,
    Text, WaitFor,
};
use crate::errors;
use crate::intrinsics::{splitmix64, IntrinsicEnv};
use crate::path::{type_name, Path, ReferencePath};
use crate::template::Template;
use chrono::{SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

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

    /// A state's InputPath applied to its raw input.
    fn state_input(&self, state: &State, input: &Value, ctx: &Value) -> Result<Value, Stop> {
        self.select_io(&state.input_path, input, ctx, "InputPath", &state.name)
    }

    /// A state's OutputPath applied to what it produced.
    fn state_output(&self, state: &State, value: &Value, ctx: &Value) -> Result<Value, Stop> {
        self.select_io(&state.output_path, value, ctx, "OutputPath", &state.name)
    }

    /// A state's Parameters rendered over its effective input (or that input
    /// when it has none).
    fn parameters(
        &mut self,
        state: &State,
        parameters: &Option<Template>,
        effective: Value,
        ctx: &Value,
    ) -> Result<Value, Stop> {
        match parameters {
            Some(t) => t.render(&effective, ctx, &mut self.rng).map_err(|(e, m)| {
                Stop::from(Failure::new(
                    e,
                    format!("state '{}', Parameters: {m}", state.name),
                ))
            }),
            None => Ok(effective),
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
                let effective = self.state_input(state, &input, ctx)?;
                let effective = self.parameters(state, parameters, effective, ctx)?;
                let result = result.clone().unwrap_or(effective);
                let placed = place_result(result_path, input, result, &state.name)?;
                let output = self.state_output(state, &placed, ctx)?;
                Ok((output, state.next.clone()))
            }
            Kind::Wait(wait) => {
                let effective = self.state_input(state, &input, ctx)?;
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
                let output = self.state_output(state, &effective, ctx)?;
                Ok((output, state.next.clone()))
            }
            Kind::Choice { choices, default } => {
                let effective = self.state_input(state, &input, ctx)?;
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
                let output = self.state_output(state, &effective, ctx)?;
                Ok((output, Some(next)))
            }
            Kind::Succeed => {
                let effective = self.state_input(state, &input, ctx)?;
                let output = self.state_output(state, &effective, ctx)?;
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
