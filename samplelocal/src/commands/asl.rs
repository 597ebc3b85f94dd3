//! `tributary asl validate|run`, `executions …` and `task-success|failure|
//! heartbeat`: the ASL interpreter on the command line, with executions
//! kept in the workspace's state store so another process can answer a
//! task token and resume them.

use crate::integrations::LocalServices;
use crate::local::LocalRuntime;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tributary_asl::{
    Callback, ClockMode, Execution, Failure, Host, Journal, JournalHost, RunOptions, TaskCall,
    TaskOutcome, TokenAnswer,
};
use tributary_core::ports::{Condition, PortError, StateStore};
use tributary_local::{LocalAdapters, Workspace};

const EXECUTIONS_PK: &str = "asl#execution";
const TOKENS_PK: &str = "asl#token";

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The state machine definition (*.asl.json).
    pub file: PathBuf,
    /// Execution input: JSON text, or @FILE.
    #[arg(long, default_value = "{}")]
    pub input: String,
    /// Canned result for a Task state: NAME=@result.json or NAME=JSON. A
    /// {"Error": …, "Cause": …} object makes the task fail with that error;
    /// for a .waitForTaskToken task it is the callback's answer.
    #[arg(long = "task", value_name = "NAME=@FILE")]
    pub tasks: Vec<String>,
    /// Substitute ${NAME} in the definition (as Terraform's templatefile does);
    /// `${<function>_function}` defaults to the in-process function.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Execution name (default: derived from the file and the input, so a
    /// repeated run returns the existing execution, as StartExecution does).
    #[arg(long)]
    pub name: Option<String>,
    /// Start time, RFC 3339 or `now`. Virtual time runs from here; a token
    /// still unanswered when its deadline has passed in real time times out.
    #[arg(long, default_value = "now")]
    pub start_time: String,
    /// Include the history events in the output.
    #[arg(long)]
    pub history: bool,
    /// What a task token nobody has answered does: `pause` the execution
    /// (answer later with `tributary task-success`), or `timeout` at its
    /// TimeoutSeconds/HeartbeatSeconds in virtual time.
    #[arg(long, default_value = "pause", value_parser = ["pause", "timeout"])]
    pub unanswered: String,
    /// Sleep through Wait states and back-off for real.
    #[arg(long)]
    pub real_time: bool,
}

/// What is kept of an execution between processes.
#[derive(Debug, Serialize, Deserialize)]
struct StoredExecution {
    name: String,
    state_machine: String,
    definition: String,
    input: Value,
    start_ms: i64,
    seed: u64,
    clock: ClockMode,
    canned: BTreeMap<String, Value>,
    unanswered_timeout: bool,
    journal: Journal,
    summary: Value,
    /// When `executions stop` aborted the (paused) execution.
    #[serde(default)]
    aborted_ms: Option<i64>,
}

struct Store {
    workspace: PathBuf,
    state: Box<dyn StateStore>,
    runtime: tokio::runtime::Runtime,
}

impl Store {
    fn open(workspace: &Path) -> Result<Store> {
        Ok(Store {
            workspace: workspace.to_path_buf(),
            state: Box::new(Workspace::new(workspace).adapters().state),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }

    fn adapters(&self) -> LocalAdapters {
        Workspace::new(&self.workspace).adapters()
    }

    fn load(&self, name: &str) -> Result<Option<(StoredExecution, u64)>> {
        let item = self.runtime.block_on(self.state.get(EXECUTIONS_PK, name))?;
        match item {
            None => Ok(None),
            Some(v) => Ok(Some((
                serde_json::from_value(v.value)
                    .with_context(|| format!("execution record {name} is damaged"))?,
                v.version,
            ))),
        }
    }

    fn save(&self, exec: &StoredExecution, version: Option<u64>) -> Result<()> {
        let condition = match version {
            Some(v) => Condition::VersionIs(v),
            None => Condition::NotExists,
        };
        let value = serde_json::to_value(exec)?;
        match self
            .runtime
            .block_on(self.state.put(EXECUTIONS_PK, &exec.name, value, condition))
        {
            Ok(_) => Ok(()),
            Err(PortError::ConditionFailed { .. }) => bail!(
                "execution {} was changed by another process at the same time; run the command again",
                exec.name
            ),
            Err(e) => Err(e.into()),
        }
    }

    fn execution_of_token(&self, token: &str) -> Result<String> {
        let item = self.runtime.block_on(self.state.get(TOKENS_PK, token))?;
        item.and_then(|v| v.value.as_str().map(str::to_string))
            .ok_or_else(|| anyhow!("no paused execution is waiting on task token {token}"))
    }
}

/// Functions the workspace can run in-process, service integrations on the
/// workspace's stores, canned answers for the rest.
struct CliHost<'f> {
    canned: BTreeMap<String, Value>,
    functions: Option<&'f LocalRuntime>,
    adapters: LocalAdapters,
    runtime: &'f tokio::runtime::Runtime,
    unanswered_timeout: bool,
    /// Replays never run anything: they only re-read the journal.
    replay_only: bool,
}

fn canned_outcome(v: &Value) -> Result<Value, Failure> {
    match v.as_object() {
        Some(o) if o.contains_key("Error") && o.keys().all(|k| k == "Error" || k == "Cause") => {
            Err(Failure::new(
                o["Error"].as_str().unwrap_or("Error").to_string(),
                o.get("Cause")
                    .and_then(|c| c.as_str())
                    .unwrap_or_default()
                    .to_string(),
            ))
        }
        _ => Ok(v.clone()),
    }
}

/// The tributary function a Lambda name or ARN refers to, if any.
fn known_function(function: &str) -> Option<&'static str> {
    let name = function.rsplit(':').next().unwrap_or(function);
    let name = name.strip_prefix("tributary-").unwrap_or(name);
    tributary_handlers::function(name).map(|f| f.name)
}

impl Host for CliHost<'_> {
    fn invoke(&mut self, call: &TaskCall<'_>) -> TaskOutcome {
        if self.replay_only {
            return TaskOutcome::failed(
                "Tributary.NotRecorded",
                "replaying history: this call was never made",
            );
        }
        let resource = call.resource.trim_end_matches(".waitForTaskToken");
        if call.token.is_some() {
            // The request that carries the token goes out (a notification,
            // a function); the answer comes from a canned result or
            // `tributary task-success`.
            if let Some(outcome) = self.services().call(resource, call.payload) {
                return outcome;
            }
            if let (Some(function), Some(rt)) =
                (call.function.and_then(known_function), self.functions)
            {
                return self.run_function(rt, function, call.payload);
            }
            return TaskOutcome::ok(json!({"sent": true}));
        }
        if let Some(v) = self.canned.get(call.state_name) {
            return TaskOutcome {
                result: canned_outcome(v),
                elapsed_ms: 0,
            };
        }
        if let Some(outcome) = self.services().call(resource, call.payload) {
            return outcome;
        }
        match (call.function.and_then(known_function), self.functions) {
            (Some(function), Some(rt)) => self.run_function(rt, function, call.payload),
            _ => TaskOutcome::failed(
                "Tributary.NoTaskResult",
                &format!(
                    "state '{}': resource {} is not a tributary function this workspace can run; pass --task '{}=@result.json'",
                    call.state_name, call.resource, call.state_name
                ),
            ),
        }
    }

    fn list_objects(&mut self, _bucket: &str, prefix: &str) -> Result<Vec<Value>, Failure> {
        if self.replay_only {
            return Err(Failure::new(
                "Tributary.NotRecorded",
                "replaying history: this read was never made",
            ));
        }
        self.services().list_objects(prefix)
    }

    fn get_object(&mut self, _bucket: &str, key: &str) -> Result<String, Failure> {
        if self.replay_only {
            return Err(Failure::new(
                "Tributary.NotRecorded",
                "replaying history: this read was never made",
            ));
        }
        self.services().get_object(key)
    }

    fn callback(&mut self, _token: &str, call: &TaskCall<'_>) -> Callback {
        if let Some(v) = self.canned.get(call.state_name) {
            return Callback::Arrived {
                result: canned_outcome(v),
                after_ms: 0,
                heartbeats_ms: vec![],
            };
        }
        if self.unanswered_timeout {
            Callback::Silent
        } else {
            Callback::Pending
        }
    }
}

impl CliHost<'_> {
    fn services(&self) -> LocalServices<'_> {
        LocalServices {
            state: &self.adapters.state,
            objects: &self.adapters.objects,
            runtime: self.runtime,
        }
    }

    fn run_function(&self, rt: &LocalRuntime, function: &str, payload: &Value) -> TaskOutcome {
        let services = rt.services();
        let result = self.runtime.block_on(tributary_handlers::invoke(
            &services,
            function,
            payload.clone(),
        ));
        TaskOutcome {
            result: result.map_err(|e| Failure::new(e.error_type, e.message)),
            elapsed_ms: 0,
        }
    }
}

fn json_arg(text: &str, what: &str) -> Result<Value> {
    let (source, body) = match text.strip_prefix('@') {
        Some(file) => (
            file.to_string(),
            std::fs::read_to_string(file).with_context(|| format!("reading {what} file {file}"))?,
        ),
        None => ("the command line".to_string(), text.to_string()),
    };
    serde_json::from_str(&body).with_context(|| format!("{what} from {source} is not valid JSON"))
}

pub fn substitute(text: &str, vars: &BTreeMap<String, String>, file: &Path) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| anyhow!("{}: unterminated ${{ placeholder", file.display()))?;
        let name = &after[..end];
        let value = vars.get(name).ok_or_else(|| {
            anyhow!(
                "{}: placeholder ${{{name}}} has no value; pass --var {name}=VALUE",
                file.display()
            )
        })?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn pairs(args: &[String], flag: &str) -> Result<Vec<(String, String)>> {
    args.iter()
        .map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("{flag} {a}: expected NAME=VALUE"))
        })
        .collect()
}

pub fn validate(files: &[PathBuf], json_out: bool) -> Result<()> {
    let mut report = Vec::new();
    let mut invalid = 0;
    for file in files {
        let errors: Vec<String> = match std::fs::read_to_string(file) {
            Err(e) => vec![format!("cannot read: {e}")],
            Ok(text) => match tributary_asl::load(&text) {
                Ok(_) => vec![],
                Err(errs) => errs.0.iter().map(|e| e.to_string()).collect(),
            },
        };
        if !errors.is_empty() {
            invalid += 1;
        }
        if !json_out {
            if errors.is_empty() {
                println!("{}: valid", file.display());
            }
            for e in &errors {
                println!("{}: {e}", file.display());
            }
        }
        report.push(json!({"file": file, "valid": errors.is_empty(), "errors": errors}));
    }
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"files": report}))?
        );
    }
    if invalid > 0 {
        bail!("{invalid} of {} definition(s) invalid", files.len());
    }
    Ok(())
}

fn summary(exec: &Execution, with_history: bool) -> Value {
    let mut out = json!({
        "status": exec.status.as_str(),
        "output": exec.output,
        "error": exec.error,
        "cause": exec.cause,
        "name": exec.name,
        "executionArn": exec.execution_arn,
        "startDate": tributary_asl::engine::iso_ms(exec.start_ms),
        "stopDate": exec.stop_ms.map(tributary_asl::engine::iso_ms),
        "transitions": exec.transitions,
    });
    if let Some(w) = &exec.waiting {
        out["waitingFor"] = json!({
            "state": w.state,
            "taskToken": w.token,
            "deadline": w.deadline_ms.map(tributary_asl::engine::iso_ms),
        });
    }
    if with_history {
        out["history"] = serde_json::to_value(&exec.history).unwrap_or(Value::Null);
    }
    out
}

/// Print the one JSON object and turn the status into the exit code.
fn finish(out: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(out)?);
    let status = out["status"].as_str().unwrap_or_default();
    if status == "SUCCEEDED" {
        Ok(())
    } else if status == "RUNNING" {
        bail!(
            "execution paused at state '{}': answer with `tributary task-success --token {}` (or task-failure)",
            out["waitingFor"]["state"].as_str().unwrap_or_default(),
            out["waitingFor"]["taskToken"].as_str().unwrap_or_default()
        )
    } else {
        bail!(
            "execution {}: {} {}",
            status,
            out["error"].as_str().unwrap_or_default(),
            out["cause"].as_str().unwrap_or_default()
        )
    }
}

fn functions_for(workspace: &Path, config: Option<&Path>) -> Option<LocalRuntime> {
    let has_config = config.is_some() || workspace.join("pipeline.toml").exists();
    has_config
        .then(|| LocalRuntime::open(workspace, config).ok())
        .flatten()
}

/// Run (or resume) a stored execution to its next stop and save it.
fn advance(
    store: &Store,
    mut stored: StoredExecution,
    version: Option<u64>,
    functions: Option<&LocalRuntime>,
    with_history: bool,
) -> Result<Value> {
    let machine = tributary_asl::load(&stored.definition).map_err(|e| anyhow!("{e}"))?;
    let mut options = RunOptions::new(&stored.state_machine, &stored.name, stored.start_ms);
    options.seed = stored.seed;
    options.clock = stored.clock;
    let mut host = CliHost {
        canned: stored.canned.clone(),
        functions,
        adapters: store.adapters(),
        runtime: &store.runtime,
        unanswered_timeout: stored.unanswered_timeout,
        replay_only: false,
    };
    let now = chrono::Utc::now().timestamp_millis().max(stored.start_ms);
    let mut journal_host = JournalHost::new(&mut host, std::mem::take(&mut stored.journal), now);
    let exec = tributary_asl::run(&machine, stored.input.clone(), &options, &mut journal_host);
    stored.journal = journal_host.journal;
    stored.summary = summary(&exec, false);
    store.save(&stored, version)?;
    if let Some(w) = &exec.waiting {
        store.runtime.block_on(store.state.put(
            TOKENS_PK,
            &w.token,
            json!(stored.name),
            Condition::Always,
        ))?;
    }
    Ok(summary(&exec, with_history))
}

/// What StartExecution needs.
pub struct StartRequest {
    pub state_machine: String,
    /// The definition with placeholders already substituted.
    pub definition: String,
    pub name: String,
    pub input: Value,
    pub start_ms: i64,
    pub canned: BTreeMap<String, Value>,
    pub unanswered_timeout: bool,
    pub clock: ClockMode,
}

/// StartExecution: run a new execution to its first stop (the end, or a
/// task token nobody answered yet), or — for a name that exists — return
/// that execution unchanged. The flag says whether it was new.
pub fn start(
    workspace: &Path,
    functions: Option<&LocalRuntime>,
    req: StartRequest,
    with_history: bool,
) -> Result<(Value, bool)> {
    if let Err(errors) = tributary_asl::load(&req.definition) {
        bail!(
            "{} is not a valid state machine:\n{errors}",
            req.state_machine
        );
    }
    let store = Store::open(workspace)?;
    if let Some((existing, _)) = store.load(&req.name)? {
        let mut out = existing.summary.clone();
        if with_history {
            out["history"] = history_of(&store, &existing)?;
        }
        return Ok((out, false));
    }
    let stored = StoredExecution {
        seed: RunOptions::new(&req.state_machine, &req.name, req.start_ms).seed,
        name: req.name,
        state_machine: req.state_machine,
        definition: req.definition,
        input: req.input,
        start_ms: req.start_ms,
        clock: req.clock,
        canned: req.canned,
        unanswered_timeout: req.unanswered_timeout,
        journal: Journal::default(),
        summary: Value::Null,
        aborted_ms: None,
    };
    Ok((
        advance(&store, stored, None, functions, with_history)?,
        true,
    ))
}

pub fn run(args: &RunArgs, workspace: &Path, config: Option<&Path>) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    // `${clean_partition_function}` and friends default to the in-process
    // functions; --var overrides or adds.
    let mut vars = crate::workflows::function_vars();
    vars.extend(pairs(&args.vars, "--var")?);
    let definition = substitute(&text, &vars, &args.file)?;
    if let Err(errors) = tributary_asl::load(&definition) {
        bail!(
            "{} is not a valid state machine:\n{errors}",
            args.file.display()
        );
    }
    let input = json_arg(&args.input, "--input")?;
    let mut canned = BTreeMap::new();
    for (state, value) in pairs(&args.tasks, "--task")? {
        let result = json_arg(&value, &format!("--task {state}"))?;
        canned.insert(state, result);
    }
    let state_machine = args
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| {
            n.trim_end_matches(".json")
                .trim_end_matches(".asl")
                .to_string()
        })
        .unwrap_or_else(|| "state-machine".into());
    let name = match &args.name {
        Some(n) => n.clone(),
        None => {
            let digest = xxhash_rust::xxh3::xxh3_64(
                format!("{definition}\u{1f}{input}\u{1f}{:?}", canned).as_bytes(),
            );
            format!("{state_machine}-{digest:016x}")
        }
    };
    let start_ms = match args.start_time.as_str() {
        "now" => chrono::Utc::now().timestamp_millis(),
        t => chrono::DateTime::parse_from_rfc3339(t)
            .with_context(|| format!("--start-time {t} is neither RFC 3339 nor `now`"))?
            .timestamp_millis(),
    };
    let functions = functions_for(workspace, config);
    let (out, _) = start(
        workspace,
        functions.as_ref(),
        StartRequest {
            state_machine,
            definition,
            name,
            input,
            start_ms,
            canned,
            unanswered_timeout: args.unanswered == "timeout",
            clock: if args.real_time {
                ClockMode::Real
            } else {
                ClockMode::Virtual
            },
        },
        args.history,
    )?;
    finish(&out)
}

/// Regenerate the history by replaying the journal (nothing runs again).
fn history_of(store: &Store, stored: &StoredExecution) -> Result<Value> {
    let machine = tributary_asl::load(&stored.definition).map_err(|e| anyhow!("{e}"))?;
    let mut options = RunOptions::new(&stored.state_machine, &stored.name, stored.start_ms);
    options.seed = stored.seed;
    let mut host = CliHost {
        canned: stored.canned.clone(),
        functions: None,
        adapters: store.adapters(),
        runtime: &store.runtime,
        unanswered_timeout: stored.unanswered_timeout,
        replay_only: true,
    };
    let at = stored.summary["stopDate"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_millis())
        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
    let mut journal_host = JournalHost::new(&mut host, stored.journal.clone(), at);
    let mut exec = tributary_asl::run(&machine, stored.input.clone(), &options, &mut journal_host);
    if let Some(at) = stored.aborted_ms {
        exec.history.push(tributary_asl::HistoryEvent {
            id: exec.history.len() as u64 + 1,
            timestamp: tributary_asl::engine::iso_ms(at),
            event_type: "ExecutionAborted".into(),
            details: json!({"cause": "stopped by an operator (tributary executions stop)"}),
        });
    }
    Ok(serde_json::to_value(exec.history)?)
}

/// StopExecution: a paused execution becomes ABORTED and its token dead.
pub fn stop(workspace: &Path, name: &str) -> Result<()> {
    let store = Store::open(workspace)?;
    let (mut stored, version) = store
        .load(name)?
        .ok_or_else(|| anyhow!("no execution named {name} in {}", workspace.display()))?;
    if stored.summary["status"] != "RUNNING" {
        bail!(
            "execution {name} is {}, not running",
            stored.summary["status"].as_str().unwrap_or("?")
        );
    }
    let now = chrono::Utc::now().timestamp_millis();
    stored.aborted_ms = Some(now);
    stored.summary["status"] = json!("ABORTED");
    stored.summary["stopDate"] = json!(tributary_asl::engine::iso_ms(now));
    if let Some(w) = stored.summary.as_object_mut() {
        w.remove("waitingFor");
    }
    store.save(&stored, Some(version))?;
    println!("{}", serde_json::to_string_pretty(&stored.summary)?);
    Ok(())
}

pub fn list(workspace: &Path, json_out: bool) -> Result<()> {
    let store = Store::open(workspace)?;
    let items = store.runtime.block_on(store.state.query(EXECUTIONS_PK))?;
    let rows: Vec<Value> = items
        .iter()
        .map(|(name, v)| {
            let s = &v.value["summary"];
            json!({"name": name, "stateMachine": v.value["state_machine"], "status": s["status"],
                   "startDate": s["startDate"], "stopDate": s["stopDate"]})
        })
        .collect();
    if json_out {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{:<48} {:<10} {:<26} STOP", "NAME", "STATUS", "START");
        for r in &rows {
            println!(
                "{:<48} {:<10} {:<26} {}",
                r["name"].as_str().unwrap_or_default(),
                r["status"].as_str().unwrap_or_default(),
                r["startDate"].as_str().unwrap_or_default(),
                r["stopDate"].as_str().unwrap_or("-")
            );
        }
    }
    Ok(())
}

/// Everything a run report needs: the definition as run, the summary and
/// the history events.
pub fn execution_record(workspace: &Path, name: &str) -> Result<(String, Value, Value)> {
    let store = Store::open(workspace)?;
    let (stored, _) = store
        .load(name)?
        .ok_or_else(|| anyhow!("no execution named {name} in {}", workspace.display()))?;
    let history = history_of(&store, &stored)?;
    Ok((stored.definition.clone(), stored.summary.clone(), history))
}

/// An execution's latest summary (DescribeExecution).
pub fn describe(workspace: &Path, name: &str) -> Result<Value> {
    let store = Store::open(workspace)?;
    let (stored, _) = store
        .load(name)?
        .ok_or_else(|| anyhow!("no execution named {name} in {}", workspace.display()))?;
    Ok(stored.summary)
}

pub fn show(workspace: &Path, name: &str, history: bool) -> Result<()> {
    let store = Store::open(workspace)?;
    let (stored, _) = store
        .load(name)?
        .ok_or_else(|| anyhow!("no execution named {name} in {}", workspace.display()))?;
    let out = if history {
        json!({"name": name, "events": history_of(&store, &stored)?})
    } else {
        stored.summary.clone()
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

pub enum Answer {
    Success(Value),
    Failure(Failure),
    Heartbeat,
}

/// SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat, then resume the
/// execution to its next stop; returns its summary.
pub fn send_answer(
    workspace: &Path,
    functions: Option<&LocalRuntime>,
    token: &str,
    answer: Answer,
) -> Result<Value> {
    let store = Store::open(workspace)?;
    let name = store.execution_of_token(token)?;
    let (mut stored, version) = store
        .load(&name)?
        .ok_or_else(|| anyhow!("execution {name} of token {token} is gone"))?;
    if stored.summary["status"] != "RUNNING" {
        bail!(
            "execution {name} is {} and no longer waits on this token (TaskTimedOut or already answered)",
            stored.summary["status"].as_str().unwrap_or("?")
        );
    }
    let now = chrono::Utc::now().timestamp_millis();
    let entry = stored
        .journal
        .answers
        .entry(token.to_string())
        .or_insert_with(TokenAnswer::default);
    if entry.result.is_some() {
        bail!("task token {token} was already answered");
    }
    match answer {
        Answer::Heartbeat => entry.heartbeats_ms.push(now),
        Answer::Success(v) => {
            entry.result = Some(Ok(v));
            entry.answered_ms = Some(now);
        }
        Answer::Failure(f) => {
            entry.result = Some(Err(f));
            entry.answered_ms = Some(now);
        }
    }
    advance(&store, stored, Some(version), functions, false)
}

/// The CLI's task-success / task-failure / task-heartbeat.
pub fn answer(workspace: &Path, config: Option<&Path>, token: &str, answer: Answer) -> Result<()> {
    let functions = functions_for(workspace, config);
    let out = send_answer(workspace, functions.as_ref(), token, answer)?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    match out["status"].as_str() {
        Some("SUCCEEDED") | Some("RUNNING") => Ok(()),
        Some(other) => bail!(
            "execution {} is now {other}",
            out["name"].as_str().unwrap_or("?")
        ),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_substituted_or_named() {
        let vars = BTreeMap::from([("clean_arn".to_string(), "arn:x".to_string())]);
        assert_eq!(
            substitute("{\"Resource\": \"${clean_arn}\"}", &vars, Path::new("f")).unwrap(),
            "{\"Resource\": \"arn:x\"}"
        );
        let err = substitute("${missing}", &vars, Path::new("f.asl.json")).unwrap_err();
        assert!(err.to_string().contains("--var missing=VALUE"), "{err}");
    }

    #[test]
    fn function_names_and_arns_resolve() {
        assert_eq!(known_function("clean-partition"), Some("clean-partition"));
        assert_eq!(
            known_function("arn:aws:lambda:eu-west-1:1:function:tributary-publish-partition"),
            Some("publish-partition")
        );
        assert_eq!(known_function("notify"), None);
    }

    #[test]
    fn canned_errors_fail_the_task() {
        assert_eq!(
            canned_outcome(&json!({"Error": "Rejected", "Cause": "no"})),
            Err(Failure::new("Rejected", "no"))
        );
        assert_eq!(
            canned_outcome(&json!({"Error": "x", "more": 1})),
            Ok(json!({"Error": "x", "more": 1}))
        );
    }
}
