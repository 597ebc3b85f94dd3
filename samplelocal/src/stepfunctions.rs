//! The local Step Functions service: executions of the ASL interpreter kept
//! in the workspace's state store (so another process can answer a task
//! token and resume them), StartExecution, SendTask*, DescribeExecution,
//! StopExecution and the history. Tasks naming a tributary function run
//! it in-process; service integrations act on the workspace's stores.
//!
//! The service owns one async runtime for everything it does. The
//! interpreter is synchronous and drives handlers on that runtime, so when
//! the service is called from async code it runs on a thread of its own
//! (callers never need to).

use crate::integrations::LocalServices;
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
use tributary_core::services::Services;
use tributary_local::{FileStateStore, FsObjectStore, Workspace};

const EXECUTIONS_PK: &str = "asl#execution";
const TOKENS_PK: &str = "asl#token";

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

/// The service on one workspace.
pub struct StepFunctions {
    workspace: PathBuf,
    /// Only the stores the service and its integrations use.
    state: FileStateStore,
    objects: FsObjectStore,
    /// Always `Some` until dropped: see the `Drop` impl.
    runtime: Option<tokio::runtime::Runtime>,
}

/// The service is often dropped by async code (a `LocalRuntime` going out
/// of scope in a command), where dropping a runtime would block; its
/// runtime has no background work left, so it is let go without waiting.
impl Drop for StepFunctions {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
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

pub enum Answer {
    Success(Value),
    Failure(Failure),
    Heartbeat,
}

impl StepFunctions {
    pub fn open(workspace: &Path) -> Result<StepFunctions> {
        Ok(StepFunctions {
            workspace: workspace.to_path_buf(),
            state: Workspace::new(workspace).state_store(),
            objects: Workspace::new(workspace).object_store(),
            runtime: Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting the Step Functions service's runtime")?,
            ),
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime is taken only when the service is dropped")
    }

    /// Run `work` where it may block on the service's runtime: here, or —
    /// when the caller is itself async code on a runtime — on a thread of
    /// its own.
    fn outside_async<T: Send>(&self, work: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        if tokio::runtime::Handle::try_current().is_err() {
            return work();
        }
        std::thread::scope(|scope| {
            scope
                .spawn(work)
                .join()
                .map_err(|_| anyhow!("the Step Functions service's thread panicked"))?
        })
    }

    fn load(&self, name: &str) -> Result<Option<(StoredExecution, u64)>> {
        let item = self
            .runtime()
            .block_on(self.state.get(EXECUTIONS_PK, name))?;
        match item {
            None => Ok(None),
            Some(v) => Ok(Some((
                serde_json::from_value(v.value)
                    .with_context(|| format!("execution record {name} is damaged"))?,
                v.version,
            ))),
        }
    }

    fn load_existing(&self, name: &str) -> Result<(StoredExecution, u64)> {
        self.load(name)?
            .ok_or_else(|| anyhow!("no execution named {name} in {}", self.workspace.display()))
    }

    fn save(&self, exec: &StoredExecution, version: Option<u64>) -> Result<()> {
        let condition = match version {
            Some(v) => Condition::VersionIs(v),
            None => Condition::NotExists,
        };
        let value = serde_json::to_value(exec)?;
        match self.runtime().block_on(
            self.state
                .put(EXECUTIONS_PK, &exec.name, value, condition),
        ) {
            Ok(_) => Ok(()),
            Err(PortError::ConditionFailed { .. }) => bail!(
                "execution {} was changed by another process at the same time; run the command again",
                exec.name
            ),
            Err(e) => Err(e.into()),
        }
    }

    fn execution_of_token(&self, token: &str) -> Result<String> {
        let item = self.runtime().block_on(self.state.get(TOKENS_PK, token))?;
        item.and_then(|v| v.value.as_str().map(str::to_string))
            .ok_or_else(|| anyhow!("no paused execution is waiting on task token {token}"))
    }

    fn host<'f>(
        &'f self,
        stored: &StoredExecution,
        functions: Option<&'f Services<'f>>,
        replay_only: bool,
    ) -> ServiceHost<'f> {
        ServiceHost {
            canned: stored.canned.clone(),
            functions,
            state: &self.state,
            objects: &self.objects,
            runtime: self.runtime(),
            unanswered_timeout: stored.unanswered_timeout,
            replay_only,
        }
    }

    /// Run (or resume) a stored execution to its next stop and save it.
    fn advance(
        &self,
        mut stored: StoredExecution,
        version: Option<u64>,
        functions: Option<&Services<'_>>,
        with_history: bool,
    ) -> Result<Value> {
        let machine = tributary_asl::load(&stored.definition).map_err(|e| anyhow!("{e}"))?;
        let mut options = RunOptions::new(&stored.state_machine, &stored.name, stored.start_ms);
        options.seed = stored.seed;
        options.clock = stored.clock;
        let mut host = self.host(&stored, functions, false);
        let now = chrono::Utc::now().timestamp_millis().max(stored.start_ms);
        let mut journal_host =
            JournalHost::new(&mut host, std::mem::take(&mut stored.journal), now);
        let exec = tributary_asl::run(&machine, stored.input.clone(), &options, &mut journal_host);
        stored.journal = journal_host.journal;
        stored.summary = summary(&exec, false);
        self.save(&stored, version)?;
        if let Some(w) = &exec.waiting {
            self.runtime().block_on(self.state.put(
                TOKENS_PK,
                &w.token,
                json!(stored.name),
                Condition::Always,
            ))?;
        }
        Ok(summary(&exec, with_history))
    }

    /// StartExecution: run a new execution to its first stop (the end, or a
    /// task token nobody answered yet), or — for a name that exists — return
    /// that execution unchanged. The flag says whether it was new.
    pub fn start(
        &self,
        functions: Option<&Services<'_>>,
        req: StartRequest,
        with_history: bool,
    ) -> Result<(Value, bool)> {
        if let Err(errors) = tributary_asl::load(&req.definition) {
            bail!(
                "{} is not a valid state machine:\n{errors}",
                req.state_machine
            );
        }
        self.outside_async(|| {
            if let Some((existing, _)) = self.load(&req.name)? {
                let mut out = existing.summary.clone();
                if with_history {
                    out["history"] = self.history_of(&existing)?;
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
            Ok((self.advance(stored, None, functions, with_history)?, true))
        })
    }

    /// SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat, then resume the
    /// execution to its next stop; returns its summary.
    pub fn send_answer(
        &self,
        functions: Option<&Services<'_>>,
        token: &str,
        answer: Answer,
    ) -> Result<Value> {
        self.outside_async(|| {
            let name = self.execution_of_token(token)?;
            let (mut stored, version) = self
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
            self.advance(stored, Some(version), functions, false)
        })
    }

    /// An execution's latest summary (DescribeExecution).
    pub fn describe(&self, name: &str) -> Result<Value> {
        self.outside_async(|| Ok(self.load_existing(name)?.0.summary))
    }

    /// Every execution: name, state machine, status, start and stop.
    pub fn list(&self) -> Result<Vec<Value>> {
        self.outside_async(|| {
            let items = self.runtime()
                .block_on(self.state.query(EXECUTIONS_PK))?;
            Ok(items
                .iter()
                .map(|(name, v)| {
                    let s = &v.value["summary"];
                    json!({"name": name, "stateMachine": v.value["state_machine"], "status": s["status"],
                           "startDate": s["startDate"], "stopDate": s["stopDate"]})
                })
                .collect())
        })
    }

    /// Everything a run report needs: the definition as run, the summary
    /// and the history events.
    pub fn record(&self, name: &str) -> Result<(String, Value, Value)> {
        self.outside_async(|| {
            let (stored, _) = self.load_existing(name)?;
            let history = self.history_of(&stored)?;
            Ok((stored.definition, stored.summary, history))
        })
    }

    /// StopExecution: a paused execution becomes ABORTED and its token
    /// dead. Returns its summary.
    pub fn stop(&self, name: &str) -> Result<Value> {
        self.outside_async(|| {
            let (mut stored, version) = self.load_existing(name)?;
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
            self.save(&stored, Some(version))?;
            Ok(stored.summary)
        })
    }

    /// Regenerate the history by replaying the journal (nothing runs again).
    fn history_of(&self, stored: &StoredExecution) -> Result<Value> {
        let machine = tributary_asl::load(&stored.definition).map_err(|e| anyhow!("{e}"))?;
        let mut options = RunOptions::new(&stored.state_machine, &stored.name, stored.start_ms);
        options.seed = stored.seed;
        let mut host = self.host(stored, None, true);
        let at = stored.summary["stopDate"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.timestamp_millis())
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let mut journal_host = JournalHost::new(&mut host, stored.journal.clone(), at);
        let mut exec =
            tributary_asl::run(&machine, stored.input.clone(), &options, &mut journal_host);
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

    /// An execution's events (GetExecutionHistory).
    pub fn history(&self, name: &str) -> Result<Value> {
        self.outside_async(|| self.history_of(&self.load_existing(name)?.0))
    }
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

/// Functions the workspace can run in-process, service integrations on the
/// workspace's stores, canned answers for the rest.
struct ServiceHost<'f> {
    canned: BTreeMap<String, Value>,
    functions: Option<&'f Services<'f>>,
    state: &'f FileStateStore,
    objects: &'f FsObjectStore,
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

impl Host for ServiceHost<'_> {
    /// Child machines of `states:startExecution.sync`: the embedded ones,
    /// by name or by an ARN ending in it.
    fn state_machine(&mut self, arn: &str) -> Option<tributary_asl::definition::StateMachine> {
        let name = arn.rsplit(':').next().unwrap_or(arn);
        let name = name.strip_prefix("tributary-").unwrap_or(name);
        let text = match name {
            crate::workflows::DISTRIBUTED_CLEAN_NAME => {
                crate::workflows::distributed_clean().ok()?
            }
            _ => return None,
        };
        tributary_asl::definition::load(&text).ok()
    }

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

impl ServiceHost<'_> {
    fn services(&self) -> LocalServices<'_> {
        LocalServices {
            state: self.state,
            objects: self.objects,
            runtime: self.runtime,
        }
    }

    fn run_function(
        &self,
        services: &Services<'_>,
        function: &str,
        payload: &Value,
    ) -> TaskOutcome {
        // The click stream's mapping delivers while the pipeline waits for
        // the consumer to prove itself (on AWS it polls all the time).
        if function == "inference-health" {
            if let Err(e) = self
                .runtime
                .block_on(crate::mappings::deliver_waiting(services))
            {
                return TaskOutcome::failed("Tributary.Retryable", &format!("{e:#}"));
            }
        }
        let result = self.runtime.block_on(tributary_handlers::invoke(
            services,
            function,
            payload.clone(),
        ));
        TaskOutcome {
            result: result.map_err(|e| Failure::new(e.error_type, e.message)),
            elapsed_ms: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
