//! Conformance tests, most of them the worked examples of the AWS Step
//! Functions documentation (input and output processing, error handling,
//! Map, Parallel, task tokens), run through the whole engine.

mod errors;
mod execution;
mod flow;
mod io;
mod map_parallel;
mod tasks;
mod validation;

use crate::engine::{iso_ms, Callback, Failure, Host, RunOptions, Status, TaskCall, TaskOutcome};
use crate::{load, run, Execution, StateMachine};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Answers per state name, consumed in order (the last one repeats).
#[derive(Default)]
struct Canned {
    answers: HashMap<String, Vec<TaskOutcome>>,
    callbacks: HashMap<String, Callback>,
    machines: HashMap<String, StateMachine>,
    items: Vec<Value>,
    /// (state, function, payload) of every invocation.
    calls: Vec<(String, Option<String>, Value)>,
    /// Echo the payload back when a state has no answer.
    echo: bool,
}

impl Canned {
    fn answer(mut self, state: &str, outcomes: Vec<TaskOutcome>) -> Self {
        self.answers.insert(state.into(), outcomes);
        self
    }
    fn callback(mut self, state: &str, cb: Callback) -> Self {
        self.callbacks.insert(state.into(), cb);
        self
    }
    fn echo(mut self) -> Self {
        self.echo = true;
        self
    }
    fn calls_to(&self, state: &str) -> Vec<&Value> {
        self.calls
            .iter()
            .filter(|c| c.0 == state)
            .map(|c| &c.2)
            .collect()
    }
}

impl Host for Canned {
    fn invoke(&mut self, call: &TaskCall<'_>) -> TaskOutcome {
        self.calls.push((
            call.state_name.to_string(),
            call.function.map(str::to_string),
            call.payload.clone(),
        ));
        if call.token.is_some() {
            return TaskOutcome::ok(json!({}));
        }
        match self.answers.get_mut(call.state_name) {
            Some(list) if list.len() > 1 => list.remove(0),
            Some(list) if list.len() == 1 => list[0].clone(),
            _ if self.echo => TaskOutcome::ok(call.payload.clone()),
            _ => TaskOutcome::failed("Test.NoAnswer", call.state_name),
        }
    }
    fn callback(&mut self, _token: &str, call: &TaskCall<'_>) -> Callback {
        self.callbacks
            .get(call.state_name)
            .cloned()
            .unwrap_or(Callback::Silent)
    }
    fn state_machine(&mut self, arn: &str) -> Option<StateMachine> {
        self.machines.get(arn).cloned()
    }
    fn list_objects(&mut self, _bucket: &str, prefix: &str) -> Result<Vec<Value>, Failure> {
        Ok(self
            .items
            .iter()
            .filter(|i| i["Key"].as_str().is_some_and(|k| k.starts_with(prefix)))
            .cloned()
            .collect())
    }
}

const START: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn exec(definition: Value, input: Value, host: &mut Canned) -> Execution {
    let machine = load(&definition.to_string()).unwrap_or_else(|e| panic!("{e}"));
    run(
        &machine,
        input,
        &RunOptions::new("test", "run-1", START),
        host,
    )
}

fn output(e: &Execution) -> &Value {
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    e.output.as_ref().unwrap()
}

fn task(resource: &str) -> Value {
    json!({"Type": "Task", "Resource": resource, "End": true})
}

fn single(state: Value) -> Value {
    json!({"StartAt": "S", "States": {"S": state}})
}

fn ok(v: Value) -> Vec<TaskOutcome> {
    vec![TaskOutcome::ok(v)]
}
