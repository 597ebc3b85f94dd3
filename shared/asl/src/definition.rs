//! Loading a definition: every field checked, every error naming the state
//! and the field, all errors reported at once.

use crate::choice::{self, Condition, Operand};
use crate::path::{Path, ReferencePath};
use crate::template::{Dynamic, Template};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

#[derive(Debug, Clone, PartialEq)]
pub struct DefinitionError {
    /// `States.<name>` segments from the top, through Branches and
    /// ItemProcessors; empty for the top level.
    pub state: String,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.state.is_empty(), self.field.is_empty()) {
            (true, true) => write!(f, "{}", self.message),
            (true, false) => write!(f, "field '{}': {}", self.field, self.message),
            (false, true) => write!(f, "state '{}': {}", self.state, self.message),
            (false, false) => write!(
                f,
                "state '{}', field '{}': {}",
                self.state, self.field, self.message
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub struct DefinitionErrors(pub Vec<DefinitionError>);

impl std::fmt::Display for DefinitionErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct StateMachine {
    pub start_at: String,
    pub states: BTreeMap<String, State>,
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct State {
    pub name: String,
    pub kind: Kind,
    /// `None`: the JSON null, which means `{}`.
    pub input_path: Option<Path>,
    pub output_path: Option<Path>,
    pub next: Option<String>,
    pub end: bool,
}

impl State {
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Pass { .. } => "Pass",
            Kind::Task(_) => "Task",
            Kind::Choice { .. } => "Choice",
            Kind::Wait(_) => "Wait",
            Kind::Succeed => "Succeed",
            Kind::Fail { .. } => "Fail",
            Kind::Parallel(_) => "Parallel",
            Kind::Map(_) => "Map",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Kind {
    Pass {
        parameters: Option<Template>,
        result: Option<Value>,
        result_path: Option<ReferencePath>,
    },
    Task(Box<Task>),
    Choice {
        choices: Vec<(Condition, String)>,
        default: Option<String>,
    },
    Wait(WaitFor),
    Succeed,
    Fail {
        error: Option<Text>,
        cause: Option<Text>,
    },
    Parallel(Box<Parallel>),
    Map(Box<MapState>),
}

#[derive(Debug, Clone)]
pub enum Text {
    Fixed(String),
    Dynamic(Dynamic),
}

#[derive(Debug, Clone)]
pub enum Number {
    Fixed(u64),
    Path(Path),
}

#[derive(Debug, Clone)]
pub enum WaitFor {
    Seconds(Number),
    Timestamp(Text),
}

/// Processing shared by Task, Parallel and Map.
#[derive(Debug, Clone)]
pub struct Common {
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    /// `None`: ResultPath null, the result is discarded.
    pub result_path: Option<ReferencePath>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub resource: String,
    pub common: Common,
    pub timeout: Option<Number>,
    pub heartbeat: Option<Number>,
    pub credentials: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct Parallel {
    pub branches: Vec<StateMachine>,
    pub common: Common,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapMode {
    Inline,
    Distributed,
}

#[derive(Debug, Clone)]
pub struct MapState {
    pub processor: StateMachine,
    pub mode: MapMode,
    pub items_path: Path,
    /// ItemSelector, or the legacy Parameters of a Map.
    pub item_selector: Option<Template>,
    pub common: Common,
    pub max_concurrency: Number,
    pub tolerated_failure_count: Option<Number>,
    pub tolerated_failure_percentage: Option<Number>,
    pub item_reader: Option<ItemReader>,
    pub item_batcher: Option<ItemBatcher>,
}

#[derive(Debug, Clone)]
pub struct ItemReader {
    pub resource: String,
    pub parameters: Option<Template>,
    pub reader_config: Value,
}

#[derive(Debug, Clone)]
pub struct ItemBatcher {
    pub max_items_per_batch: Option<Number>,
    pub max_input_bytes_per_batch: Option<Number>,
    pub batch_input: Option<Template>,
}

#[derive(Debug, Clone)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: u64,
    pub max_attempts: u64,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<u64>,
    pub full_jitter: bool,
}

#[derive(Debug, Clone)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    pub result_path: Option<ReferencePath>,
}

const COMMON_FIELDS: &[&str] = &["Type", "Comment", "QueryLanguage"];

fn allowed_fields(t: &str) -> Option<&'static [&'static str]> {
    Some(match t {
        "Pass" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultPath",
            "Result",
        ],
        "Task" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "Resource",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Credentials",
        ],
        "Choice" => &["Choices", "Default", "InputPath", "OutputPath"],
        "Wait" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Seconds",
            "Timestamp",
            "SecondsPath",
            "TimestampPath",
        ],
        "Succeed" => &["InputPath", "OutputPath"],
        "Fail" => &["Error", "Cause", "ErrorPath", "CausePath"],
        "Parallel" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "Branches",
        ],
        "Map" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ItemSelector",
            "ItemsPath",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "Iterator",
            "ItemProcessor",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "Label",
        ],
        _ => return None,
    })
}

pub const STATE_TYPES: &[&str] = &[
    "Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map",
];

/// Load a definition from its JSON text.
pub fn load(text: &str) -> Result<StateMachine, DefinitionErrors> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        DefinitionErrors(vec![DefinitionError {
            state: String::new(),
            field: String::new(),
            message: format!(
                "not valid JSON at line {}, column {}: {e}",
                e.line(),
                e.column()
            ),
        }])
    })?;
    from_value(&value)
}

pub fn from_value(value: &Value) -> Result<StateMachine, DefinitionErrors> {
    let mut c = Checker { errors: Vec::new() };
    let machine = c.machine(value, "", true);
    if c.errors.is_empty() {
        Ok(machine.expect("a machine without errors is built"))
    } else {
        Err(DefinitionErrors(c.errors))
    }
}

struct Checker {
    errors: Vec<DefinitionError>,
}

fn scoped(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_string()
    } else {
        format!("{scope}/{name}")
    }
}

impl Checker {
    fn err(&mut self, state: &str, field: &str, message: impl Into<String>) {
        self.errors.push(DefinitionError {
            state: state.to_string(),
            field: field.to_string(),
            message: message.into(),
        });
    }

    /// `scope` names the enclosing states ("" at the top).
    fn machine(&mut self, v: &Value, scope: &str, top: bool) -> Option<StateMachine> {
        let Some(obj) = v.as_object() else {
            self.err(scope, "", "a state machine must be a JSON object");
            return None;
        };
        let allowed: &[&str] = if top {
            &[
                "StartAt",
                "States",
                "Comment",
                "Version",
                "TimeoutSeconds",
                "QueryLanguage",
            ]
        } else {
            &["StartAt", "States", "Comment", "ProcessorConfig"]
        };
        for k in obj.keys() {
            if !allowed.contains(&k.as_str()) {
                let hint = if k == "Assign" || k == "Arguments" || k == "Output" {
                    " (JSONata and variables are not supported: this interpreter runs the JSONPath query language)"
                } else {
                    ""
                };
                self.err(
                    scope,
                    k,
                    format!("unknown field{hint}; allowed here: {allowed:?}"),
                );
            }
        }
        self.query_language(obj, scope);
        let timeout_seconds = if top {
            self.opt_u64(obj, scope, "TimeoutSeconds", 1)
        } else {
            None
        };
        let start_at = match obj.get("StartAt").map(|s| s.as_str()) {
            Some(Some(s)) => s.to_string(),
            Some(None) => {
                self.err(scope, "StartAt", "must be a state name (string)");
                return None;
            }
            None => {
                self.err(scope, "StartAt", "missing: name the first state");
                return None;
            }
        };
        let Some(states_obj) = obj.get("States").and_then(|s| s.as_object()) else {
            self.err(scope, "States", "missing or not an object of named states");
            return None;
        };
        if states_obj.is_empty() {
            self.err(scope, "States", "has no states");
            return None;
        }
        let mut states = BTreeMap::new();
        for (name, sv) in states_obj {
            if name.chars().count() > 80 {
                self.err(
                    &scoped(scope, name),
                    "",
                    "state names are at most 80 characters",
                );
            }
            if let Some(s) = self.state(name, sv, scope) {
                states.insert(name.clone(), s);
            }
        }
        if !states_obj.contains_key(&start_at) {
            self.err(
                scope,
                "StartAt",
                format!(
                    "'{start_at}' is not one of the states {:?}",
                    states_obj.keys().collect::<Vec<_>>()
                ),
            );
        }
        let machine = StateMachine {
            start_at,
            states,
            timeout_seconds,
        };
        self.check_graph(&machine, states_obj, scope);
        Some(machine)
    }

    fn query_language(&mut self, obj: &Map<String, Value>, at: &str) {
        if let Some(q) = obj.get("QueryLanguage") {
            if q != "JSONPath" {
                self.err(
                    at,
                    "QueryLanguage",
                    format!("{q} is not supported; this interpreter runs \"JSONPath\""),
                );
            }
        }
    }

    /// Every transition points at a state of the same scope, every state is
    /// reachable, and something ends the machine.
    fn check_graph(&mut self, m: &StateMachine, raw: &Map<String, Value>, scope: &str) {
        let mut edges: BTreeMap<&str, Vec<(&str, String)>> = BTreeMap::new();
        for (name, s) in &m.states {
            let out = edges.entry(name).or_default();
            if let Some(n) = &s.next {
                out.push(("Next", n.clone()));
            }
            match &s.kind {
                Kind::Choice { choices, default } => {
                    out.extend(choices.iter().map(|(_, n)| ("Choices.Next", n.clone())));
                    if let Some(d) = default {
                        out.push(("Default", d.clone()));
                    }
                }
                Kind::Task(t) => out.extend(
                    t.common
                        .catch
                        .iter()
                        .map(|c| ("Catch.Next", c.next.clone())),
                ),
                Kind::Parallel(p) => out.extend(
                    p.common
                        .catch
                        .iter()
                        .map(|c| ("Catch.Next", c.next.clone())),
                ),
                Kind::Map(mp) => out.extend(
                    mp.common
                        .catch
                        .iter()
                        .map(|c| ("Catch.Next", c.next.clone())),
                ),
                _ => {}
            }
        }
        for (name, outs) in &edges {
            for (field, target) in outs {
                if !raw.contains_key(target) {
                    self.err(
                        &scoped(scope, name),
                        field,
                        format!("'{target}' is not a state of this machine (states cannot jump into or out of a Parallel branch or Map processor)"),
                    );
                }
            }
        }
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([m.start_at.as_str()]);
        while let Some(n) = queue.pop_front() {
            if !seen.insert(n) {
                continue;
            }
            if let Some(outs) = edges.get(n) {
                queue.extend(outs.iter().map(|(_, t)| t.as_str()));
            }
        }
        for name in raw.keys() {
            if !seen.contains(name.as_str()) && m.states.contains_key(name) {
                self.err(&scoped(scope, name), "", "unreachable from StartAt");
            }
        }
        let terminal = m
            .states
            .values()
            .any(|s| s.end || matches!(s.kind, Kind::Succeed | Kind::Fail { .. }));
        if !terminal && !m.states.is_empty() {
            self.err(
                scope,
                "States",
                "no terminal state: give one state \"End\": true, or add a Succeed or Fail state",
            );
        }
    }

    fn state(&mut self, name: &str, v: &Value, scope: &str) -> Option<State> {
        let at = scoped(scope, name);
        let Some(obj) = v.as_object() else {
            self.err(&at, "", "a state must be a JSON object");
            return None;
        };
        let Some(t) = obj.get("Type").and_then(|t| t.as_str()) else {
            self.err(&at, "Type", format!("missing; one of {STATE_TYPES:?}"));
            return None;
        };
        let Some(allowed) = allowed_fields(t) else {
            self.err(
                &at,
                "Type",
                format!("'{t}' is not a state type; one of {STATE_TYPES:?}"),
            );
            return None;
        };
        for k in obj.keys() {
            if !allowed.contains(&k.as_str()) && !COMMON_FIELDS.contains(&k.as_str()) {
                let elsewhere: Vec<&str> = STATE_TYPES
                    .iter()
                    .filter(|other| allowed_fields(other).is_some_and(|f| f.contains(&k.as_str())))
                    .copied()
                    .collect();
                let message = if elsewhere.is_empty() {
                    "unknown field".to_string()
                } else {
                    format!(
                        "not allowed in a {t} state (only in {})",
                        elsewhere.join(", ")
                    )
                };
                self.err(&at, k, message);
            }
        }
        self.query_language(obj, &at);
        let before = self.errors.len();
        // Transitions.
        let next = match obj.get("Next") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.err(&at, "Next", "must be a state name");
                None
            }
            None => None,
        };
        let end = match obj.get("End") {
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.err(&at, "End", "must be true or false");
                false
            }
            None => false,
        };
        let needs_transition = matches!(t, "Pass" | "Task" | "Wait" | "Parallel" | "Map");
        if needs_transition {
            match (next.is_some(), end) {
                (true, true) => self.err(
                    &at,
                    "End",
                    "a state has either Next or \"End\": true, not both",
                ),
                (false, false) => self.err(&at, "Next", "missing: give Next or \"End\": true"),
                _ => {}
            }
        }
        let input_path = self.io_path(obj, &at, "InputPath");
        let output_path = self.io_path(obj, &at, "OutputPath");
        let kind = match t {
            "Pass" => Kind::Pass {
                parameters: self.template(obj, &at, "Parameters"),
                result: obj.get("Result").cloned(),
                result_path: self.result_path(obj, &at, "ResultPath"),
            },
            "Task" => self.task(obj, &at).map(|t| Kind::Task(Box::new(t)))?,
            "Choice" => self.choice(obj, &at)?,
            "Wait" => Kind::Wait(self.wait(obj, &at)?),
            "Succeed" => Kind::Succeed,
            "Fail" => Kind::Fail {
                error: self.text_field(obj, &at, "Error", "ErrorPath"),
                cause: self.text_field(obj, &at, "Cause", "CausePath"),
            },
            "Parallel" => {
                let common = self.common(obj, &at);
                let branches = match obj.get("Branches").and_then(|b| b.as_array()) {
                    Some(bs) if !bs.is_empty() => bs
                        .iter()
                        .enumerate()
                        .filter_map(|(i, b)| self.machine(b, &format!("{at}/Branches[{i}]"), false))
                        .collect(),
                    _ => {
                        self.err(
                            &at,
                            "Branches",
                            "missing or empty: a Parallel state needs at least one branch",
                        );
                        Vec::new()
                    }
                };
                Kind::Parallel(Box::new(Parallel { branches, common }))
            }
            "Map" => Kind::Map(Box::new(self.map(obj, &at)?)),
            _ => unreachable!("type checked above"),
        };
        if self.errors.len() > before {
            return None;
        }
        Some(State {
            name: name.to_string(),
            kind,
            input_path: input_path.unwrap_or(None),
            output_path: output_path.unwrap_or(None),
            next,
            end,
        })
    }

    /// `Some(None)` for an explicit null; absent means `$`.
    fn io_path(&mut self, obj: &Map<String, Value>, at: &str, field: &str) -> Option<Option<Path>> {
        match obj.get(field) {
            None => Some(Some(Path::parse("$").expect("$ parses"))),
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) => match Path::parse(s) {
                Ok(p) => Some(Some(p)),
                Err(e) => {
                    self.err(at, field, e.to_string());
                    None
                }
            },
            Some(other) => {
                self.err(
                    at,
                    field,
                    format!("must be a path string or null, not {other}"),
                );
                None
            }
        }
    }

    fn result_path(
        &mut self,
        obj: &Map<String, Value>,
        at: &str,
        field: &str,
    ) -> Option<ReferencePath> {
        match obj.get(field) {
            None => Some(ReferencePath::parse("$").expect("$ parses")),
            Some(Value::Null) => None,
            Some(Value::String(s)) => match ReferencePath::parse(s) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.err(at, field, e.to_string());
                    None
                }
            },
            Some(other) => {
                self.err(
                    at,
                    field,
                    format!("must be a reference path string or null, not {other}"),
                );
                None
            }
        }
    }

    fn template(&mut self, obj: &Map<String, Value>, at: &str, field: &str) -> Option<Template> {
        let v = obj.get(field)?;
        match Template::parse(v) {
            Ok(t) => Some(t),
            Err(e) => {
                self.err(at, field, e);
                None
            }
        }
    }

    fn path_field(&mut self, obj: &Map<String, Value>, at: &str, field: &str) -> Option<Path> {
        match obj.get(field)? {
            Value::String(s) => match Path::parse(s) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.err(at, field, e.to_string());
                    None
                }
            },
            other => {
                self.err(at, field, format!("must be a path string, not {other}"));
                None
            }
        }
    }

    fn opt_u64(
        &mut self,
        obj: &Map<String, Value>,
        at: &str,
        field: &str,
        min: u64,
    ) -> Option<u64> {
        let v = obj.get(field)?;
        match v.as_u64() {
            Some(n) if n >= min => Some(n),
            _ => {
                self.err(at, field, format!("must be an integer ≥ {min}, not {v}"));
                None
            }
        }
    }

    /// A number given directly or through its `…Path` twin (not both).
    fn number(
        &mut self,
        obj: &Map<String, Value>,
        at: &str,
        field: &str,
        min: u64,
    ) -> Option<Number> {
        let path_field = format!("{field}Path");
        if obj.contains_key(field) && obj.contains_key(&path_field) {
            self.err(at, field, format!("give {field} or {path_field}, not both"));
            return None;
        }
        if let Some(n) = self.opt_u64(obj, at, field, min) {
            return Some(Number::Fixed(n));
        }
        self.path_field(obj, at, &path_field).map(Number::Path)
    }

    fn text_field(
        &mut self,
        obj: &Map<String, Value>,
        at: &str,
        field: &str,
        path_field: &str,
    ) -> Option<Text> {
        if obj.contains_key(field) && obj.contains_key(path_field) {
            self.err(at, field, format!("give {field} or {path_field}, not both"));
            return None;
        }
        if let Some(v) = obj.get(field) {
            return match v.as_str() {
                Some(s) => Some(Text::Fixed(s.to_string())),
                None => {
                    self.err(at, field, "must be a string");
                    None
                }
            };
        }
        let v = obj.get(path_field)?;
        match v.as_str().map(Dynamic::parse) {
            Some(Ok(d)) => Some(Text::Dynamic(d)),
            Some(Err(e)) => {
                self.err(at, path_field, e);
                None
            }
            None => {
                self.err(at, path_field, "must be a path or intrinsic string");
                None
            }
        }
    }

    fn common(&mut self, obj: &Map<String, Value>, at: &str) -> Common {
        Common {
            parameters: self.template(obj, at, "Parameters"),
            result_selector: self.template(obj, at, "ResultSelector"),
            result_path: self.result_path(obj, at, "ResultPath"),
            retry: self.retriers(obj, at),
            catch: self.catchers(obj, at),
        }
    }

    fn error_equals(
        &mut self,
        obj: &Map<String, Value>,
        at: &str,
        field: &str,
        last: bool,
    ) -> Vec<String> {
        let names: Vec<String> = match obj.get("ErrorEquals").and_then(|e| e.as_array()) {
            Some(list) if !list.is_empty() && list.iter().all(|e| e.is_string()) => list
                .iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect(),
            _ => {
                self.err(
                    at,
                    &format!("{field}.ErrorEquals"),
                    "must be a non-empty array of error names",
                );
                return Vec::new();
            }
        };
        if names.iter().any(|n| n == crate::errors::ALL) {
            if names.len() > 1 {
                self.err(
                    at,
                    &format!("{field}.ErrorEquals"),
                    "States.ALL must appear alone",
                );
            }
            if !last {
                self.err(
                    at,
                    &format!("{field}.ErrorEquals"),
                    "States.ALL must be in the last retrier or catcher",
                );
            }
        }
        names
    }

    /// The objects of a Retry or Catch list, each with its field name
    /// (`Retry[0]`) and whether it is the last one; entries that are not
    /// objects and fields that are not allowed are reported.
    fn handler_entries<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        at: &str,
        list_field: &str,
        allowed: &[&str],
    ) -> Vec<(String, bool, &'v Map<String, Value>)> {
        let what = if list_field == "Retry" {
            "retrier"
        } else {
            "catcher"
        };
        let Some(v) = obj.get(list_field) else {
            return Vec::new();
        };
        let Some(list) = v.as_array() else {
            self.err(at, list_field, format!("must be an array of {what}s"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, entry) in list.iter().enumerate() {
            let field = format!("{list_field}[{i}]");
            let Some(entry) = entry.as_object() else {
                self.err(at, &field, format!("a {what} must be an object"));
                continue;
            };
            for k in entry.keys() {
                if !allowed.contains(&k.as_str()) {
                    self.err(at, &format!("{field}.{k}"), format!("unknown {what} field"));
                }
            }
            out.push((field, i + 1 == list.len(), entry));
        }
        out
    }

    fn retriers(&mut self, obj: &Map<String, Value>, at: &str) -> Vec<Retrier> {
        let allowed = [
            "ErrorEquals",
            "IntervalSeconds",
            "MaxAttempts",
            "BackoffRate",
            "MaxDelaySeconds",
            "JitterStrategy",
            "Comment",
        ];
        let mut out = Vec::new();
        for (field, last, r) in self.handler_entries(obj, at, "Retry", &allowed) {
            let error_equals = self.error_equals(r, at, &field, last);
            let int =
                |c: &mut Checker, name: &str, min: u64, max: u64, default: u64| match r.get(name) {
                    None => default,
                    Some(v) => match v.as_u64() {
                        Some(n) if (min..=max).contains(&n) => n,
                        _ => {
                            c.err(
                                at,
                                &format!("{field}.{name}"),
                                format!("must be an integer from {min} to {max}, not {v}"),
                            );
                            default
                        }
                    },
                };
            let interval_seconds = int(self, "IntervalSeconds", 1, 99_999_999, 1);
            let max_attempts = int(self, "MaxAttempts", 0, 99_999_999, 3);
            let max_delay_seconds = r
                .contains_key("MaxDelaySeconds")
                .then(|| int(self, "MaxDelaySeconds", 1, 31_622_400, 1));
            let backoff_rate = match r.get("BackoffRate") {
                None => 2.0,
                Some(v) => match v.as_f64() {
                    Some(b) if b >= 1.0 => b,
                    _ => {
                        self.err(
                            at,
                            &format!("{field}.BackoffRate"),
                            format!("must be a number ≥ 1.0, not {v}"),
                        );
                        2.0
                    }
                },
            };
            let full_jitter = match r.get("JitterStrategy").map(|j| j.as_str()) {
                None | Some(Some("NONE")) => false,
                Some(Some("FULL")) => true,
                Some(_) => {
                    self.err(
                        at,
                        &format!("{field}.JitterStrategy"),
                        "must be \"FULL\" or \"NONE\"",
                    );
                    false
                }
            };
            out.push(Retrier {
                error_equals,
                interval_seconds,
                max_attempts,
                backoff_rate,
                max_delay_seconds,
                full_jitter,
            });
        }
        out
    }

    fn catchers(&mut self, obj: &Map<String, Value>, at: &str) -> Vec<Catcher> {
        let allowed = ["ErrorEquals", "Next", "ResultPath", "Comment"];
        let mut out = Vec::new();
        for (field, last, c) in self.handler_entries(obj, at, "Catch", &allowed) {
            let error_equals = self.error_equals(c, at, &field, last);
            let next = match c.get("Next").and_then(|n| n.as_str()) {
                Some(n) => n.to_string(),
                None => {
                    self.err(
                        at,
                        &format!("{field}.Next"),
                        "missing: a catcher names the state to go to",
                    );
                    continue;
                }
            };
            let result_path = match c.get("ResultPath") {
                None => Some(ReferencePath::parse("$").expect("$ parses")),
                Some(Value::Null) => None,
                Some(Value::String(s)) => match ReferencePath::parse(s) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        self.err(at, &format!("{field}.ResultPath"), e.to_string());
                        None
                    }
                },
                Some(_) => {
                    self.err(
                        at,
                        &format!("{field}.ResultPath"),
                        "must be a reference path or null",
                    );
                    None
                }
            };
            out.push(Catcher {
                error_equals,
                next,
                result_path,
            });
        }
        out
    }

    fn task(&mut self, obj: &Map<String, Value>, at: &str) -> Option<Task> {
        let resource = match obj.get("Resource").and_then(|r| r.as_str()) {
            Some(r) if !r.is_empty() => r.to_string(),
            _ => {
                self.err(
                    at,
                    "Resource",
                    "missing: a Task names the Lambda ARN or service integration it runs",
                );
                return None;
            }
        };
        let common = self.common(obj, at);
        let timeout = self.number(obj, at, "TimeoutSeconds", 1);
        let heartbeat = self.number(obj, at, "HeartbeatSeconds", 1);
        if let (Some(Number::Fixed(t)), Some(Number::Fixed(h))) = (&timeout, &heartbeat) {
            if h >= t {
                self.err(
                    at,
                    "HeartbeatSeconds",
                    format!("must be less than TimeoutSeconds ({h} ≥ {t})"),
                );
            }
        }
        Some(Task {
            resource,
            common,
            timeout,
            heartbeat,
            credentials: obj.get("Credentials").cloned(),
        })
    }

    fn choice(&mut self, obj: &Map<String, Value>, at: &str) -> Option<Kind> {
        let Some(list) = obj
            .get("Choices")
            .and_then(|c| c.as_array())
            .filter(|l| !l.is_empty())
        else {
            self.err(
                at,
                "Choices",
                "missing or empty: a Choice state needs at least one rule",
            );
            return None;
        };
        let mut choices = Vec::new();
        for (i, rule) in list.iter().enumerate() {
            let field = format!("Choices[{i}]");
            let Some(r) = rule.as_object() else {
                self.err(at, &field, "a choice rule must be an object");
                continue;
            };
            let next = match r.get("Next").and_then(|n| n.as_str()) {
                Some(n) => n.to_string(),
                None => {
                    self.err(
                        at,
                        &format!("{field}.Next"),
                        "missing: a top-level choice rule names the state to go to",
                    );
                    continue;
                }
            };
            if let Some(cond) = self.condition(r, at, &field, true) {
                choices.push((cond, next));
            }
        }
        let default = match obj.get("Default") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.err(at, "Default", "must be a state name");
                None
            }
        };
        Some(Kind::Choice { choices, default })
    }

    fn condition(
        &mut self,
        r: &Map<String, Value>,
        at: &str,
        field: &str,
        top: bool,
    ) -> Option<Condition> {
        for k in r.keys() {
            let known = matches!(k.as_str(), "Variable" | "And" | "Or" | "Not" | "Comment")
                || (k == "Next" && top)
                || choice::comparator(k).is_some();
            if !known {
                let why = if k == "Next" {
                    "only top-level choice rules have Next"
                } else {
                    "unknown comparison operator or field"
                };
                self.err(at, &format!("{field}.{k}"), why);
                return None;
            }
        }
        let nested = |c: &mut Checker, v: &Value, f: String| -> Option<Condition> {
            match v.as_object() {
                Some(o) => c.condition(o, at, &f, false),
                None => {
                    c.err(at, &f, "must be a choice rule object");
                    None
                }
            }
        };
        for (op, wrap) in [("And", true), ("Or", false)] {
            if let Some(v) = r.get(op) {
                let Some(list) = v.as_array().filter(|l| !l.is_empty()) else {
                    self.err(
                        at,
                        &format!("{field}.{op}"),
                        "must be a non-empty array of rules",
                    );
                    return None;
                };
                let mut inner = Vec::new();
                for (i, x) in list.iter().enumerate() {
                    inner.push(nested(self, x, format!("{field}.{op}[{i}]"))?);
                }
                return Some(if wrap {
                    Condition::And(inner)
                } else {
                    Condition::Or(inner)
                });
            }
        }
        if let Some(v) = r.get("Not") {
            return nested(self, v, format!("{field}.Not")).map(|c| Condition::Not(Box::new(c)));
        }
        let comparators: Vec<(&String, &Value)> = r
            .iter()
            .filter(|(k, _)| choice::comparator(k).is_some())
            .collect();
        let [(name, operand)] = comparators.as_slice() else {
            self.err(
                at,
                field,
                "a rule needs exactly one comparison operator (or And / Or / Not)",
            );
            return None;
        };
        let variable = match r.get("Variable").and_then(|v| v.as_str()) {
            Some(v) => match Path::parse(v) {
                Ok(p) => p,
                Err(e) => {
                    self.err(at, &format!("{field}.Variable"), e.to_string());
                    return None;
                }
            },
            None => {
                self.err(
                    at,
                    &format!("{field}.Variable"),
                    "missing: the path to test",
                );
                return None;
            }
        };
        let (op, is_path) = choice::comparator(name).expect("filtered above");
        let operand = if is_path {
            match operand.as_str().map(Path::parse) {
                Some(Ok(p)) => Operand::Path(p),
                _ => {
                    self.err(at, &format!("{field}.{name}"), "must be a path string");
                    return None;
                }
            }
        } else {
            if let Err(e) = op.check_literal(operand) {
                self.err(at, &format!("{field}.{name}"), e);
                return None;
            }
            Operand::Value((*operand).clone())
        };
        Some(Condition::Test {
            variable,
            op,
            operand,
        })
    }

    fn wait(&mut self, obj: &Map<String, Value>, at: &str) -> Option<WaitFor> {
        let given: Vec<&str> = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
            .into_iter()
            .filter(|f| obj.contains_key(*f))
            .collect();
        if given.len() != 1 {
            self.err(at, "Seconds", format!("a Wait state needs exactly one of Seconds, Timestamp, SecondsPath, TimestampPath (found {given:?})"));
            return None;
        }
        match given[0] {
            "Seconds" => self
                .opt_u64(obj, at, "Seconds", 0)
                .map(|s| WaitFor::Seconds(Number::Fixed(s))),
            "SecondsPath" => self
                .path_field(obj, at, "SecondsPath")
                .map(|p| WaitFor::Seconds(Number::Path(p))),
            "Timestamp" => match obj.get("Timestamp").and_then(|t| t.as_str()) {
                Some(t) if choice::timestamp(t).is_some() => {
                    Some(WaitFor::Timestamp(Text::Fixed(t.into())))
                }
                _ => {
                    self.err(at, "Timestamp", "must be an RFC 3339 timestamp with uppercase T and Z, e.g. 2026-03-14T01:59:00Z");
                    None
                }
            },
            _ => self
                .path_field(obj, at, "TimestampPath")
                .map(|p| WaitFor::Timestamp(Text::Dynamic(Dynamic::Path(p)))),
        }
    }

    fn map(&mut self, obj: &Map<String, Value>, at: &str) -> Option<MapState> {
        let common = self.common(obj, at);
        if obj.contains_key("ItemSelector") && obj.contains_key("Parameters") {
            self.err(
                at,
                "Parameters",
                "give ItemSelector or the legacy Parameters, not both",
            );
        }
        let item_selector = self
            .template(obj, at, "ItemSelector")
            .or_else(|| common.parameters.clone());
        let (processor_value, field) = match (obj.get("ItemProcessor"), obj.get("Iterator")) {
            (Some(p), None) => (p, "ItemProcessor"),
            (None, Some(i)) => (i, "Iterator"),
            (Some(_), Some(_)) => {
                self.err(
                    at,
                    "Iterator",
                    "give ItemProcessor or the legacy Iterator, not both",
                );
                return None;
            }
            (None, None) => {
                self.err(
                    at,
                    "ItemProcessor",
                    "missing: the states each item runs through",
                );
                return None;
            }
        };
        let mode = match processor_value
            .pointer("/ProcessorConfig/Mode")
            .map(|m| m.as_str())
        {
            None | Some(Some("INLINE")) => MapMode::Inline,
            Some(Some("DISTRIBUTED")) => MapMode::Distributed,
            Some(_) => {
                self.err(
                    at,
                    &format!("{field}.ProcessorConfig.Mode"),
                    "must be \"INLINE\" or \"DISTRIBUTED\"",
                );
                MapMode::Inline
            }
        };
        let processor = self.machine(processor_value, &format!("{at}/{field}"), false)?;
        let items_path = self
            .path_field(obj, at, "ItemsPath")
            .unwrap_or_else(|| Path::parse("$").expect("$ parses"));
        let max_concurrency = self
            .number(obj, at, "MaxConcurrency", 0)
            .unwrap_or(Number::Fixed(0));
        let tolerated_failure_count = self.number(obj, at, "ToleratedFailureCount", 0);
        let tolerated_failure_percentage = self.number(obj, at, "ToleratedFailurePercentage", 0);
        if let Some(Number::Fixed(p)) = tolerated_failure_percentage {
            if p > 100 {
                self.err(at, "ToleratedFailurePercentage", "must be from 0 to 100");
            }
        }
        let distributed_only = [
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "ToleratedFailureCount",
            "ToleratedFailurePercentage",
            "ToleratedFailureCountPath",
            "ToleratedFailurePercentagePath",
            "Label",
        ];
        if mode == MapMode::Inline {
            for f in distributed_only {
                if obj.contains_key(f) {
                    self.err(at, f, "only a DISTRIBUTED Map has this field (set ItemProcessor.ProcessorConfig.Mode)");
                }
            }
        }
        let item_reader = match obj.get("ItemReader").map(|r| r.as_object()) {
            None => None,
            Some(Some(r)) => {
                let resource = r
                    .get("Resource")
                    .and_then(|x| x.as_str())
                    .unwrap_or_default()
                    .to_string();
                if ![
                    "arn:aws:states:::s3:listObjectsV2",
                    "arn:aws:states:::s3:getObject",
                ]
                .contains(&resource.as_str())
                {
                    self.err(at, "ItemReader.Resource", "must be arn:aws:states:::s3:listObjectsV2 or arn:aws:states:::s3:getObject");
                }
                let parameters = self.template(r, at, "Parameters");
                Some(ItemReader {
                    resource,
                    parameters,
                    reader_config: r.get("ReaderConfig").cloned().unwrap_or(Value::Null),
                })
            }
            Some(None) => {
                self.err(at, "ItemReader", "must be an object");
                None
            }
        };
        let item_batcher = match obj.get("ItemBatcher").map(|b| b.as_object()) {
            None => None,
            Some(Some(b)) => {
                let max_items_per_batch = self.number(b, at, "MaxItemsPerBatch", 1);
                let max_input_bytes_per_batch = self.number(b, at, "MaxInputBytesPerBatch", 1);
                if max_items_per_batch.is_none() && max_input_bytes_per_batch.is_none() {
                    self.err(
                        at,
                        "ItemBatcher",
                        "needs MaxItemsPerBatch or MaxInputBytesPerBatch",
                    );
                }
                Some(ItemBatcher {
                    max_items_per_batch,
                    max_input_bytes_per_batch,
                    batch_input: self.template(b, at, "BatchInput"),
                })
            }
            Some(None) => {
                self.err(at, "ItemBatcher", "must be an object");
                None
            }
        };
        Some(MapState {
            processor,
            mode,
            items_path,
            item_selector,
            common: Common {
                parameters: None,
                ..common
            },
            max_concurrency,
            tolerated_failure_count,
            tolerated_failure_percentage,
            item_reader,
            item_batcher,
        })
    }
}
