//! Step Functions: starting executions by name (idempotent: S3 delivers
//! events at least once) and answering task tokens.

use crate::port_error;
use async_trait::async_trait;
use aws_sdk_sfn::Client;
use std::collections::HashMap;
use tributary_core::ports::{
    PortError, PortResult, TaskAnswer, TaskCallbacks, Workflow, WorkflowStarter,
};

pub struct SfnWorkflows {
    client: Client,
    /// The ARN of each state machine this process may start.
    machines: HashMap<Workflow, String>,
}

impl SfnWorkflows {
    /// Starts the partition pipeline at `partition_pipeline_arn`; the other
    /// machines come with [`SfnWorkflows::with_machine`].
    pub fn new(config: &aws_config::SdkConfig, partition_pipeline_arn: &str) -> SfnWorkflows {
        SfnWorkflows {
            client: Client::new(config),
            machines: HashMap::from([(
                Workflow::PartitionPipeline,
                partition_pipeline_arn.to_string(),
            )]),
        }
    }

    pub fn with_machine(mut self, workflow: Workflow, arn: &str) -> SfnWorkflows {
        self.machines.insert(workflow, arn.to_string());
        self
    }

    fn machine_arn(&self, workflow: Workflow) -> PortResult<&str> {
        self.machines
            .get(&workflow)
            .map(String::as_str)
            .ok_or_else(|| {
                PortError::permanent(
                    format!("starting {}", workflow.file_name()),
                    format!(
                        "this function has no ARN for the {} state machine: set {}",
                        workflow.file_name(),
                        crate::adapters::state_machine_variable(workflow)
                    ),
                    "state machine not configured",
                )
            })
    }

    /// StartExecution on any state machine by ARN, idempotent by name (the
    /// port's start; the CLI's backfill starts the catchup machine so).
    /// StartExecution alone cannot say "already there": for a running
    /// standard execution with the same name and input it succeeds again
    /// with the same answer. So the execution is looked up first; a start
    /// that races another one still creates no second execution.
    pub async fn start_on(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: serde_json::Value,
    ) -> PortResult<bool> {
        let name = execution_name(name)?;
        let execution_arn = format!(
            "{}:{name}",
            state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
        );
        match self
            .client
            .describe_execution()
            .execution_arn(&execution_arn)
            .send()
            .await
        {
            Ok(_) => return Ok(false),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_does_not_exist()) => {}
            Err(e) => {
                return Err(port_error(
                    format!("looking up execution {name}"),
                    state_machine_arn,
                    e,
                ))
            }
        }
        match self
            .client
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_already_exists()) =>
            {
                Ok(false)
            }
            Err(e) => Err(port_error(
                format!("starting execution {name}"),
                state_machine_arn,
                e,
            )),
        }
    }

    /// DescribeExecution in the workspace's summary shape (`tributary
    /// executions show`): status, output, error, cause, name, ARN, start
    /// and stop. None when there is no such execution.
    pub async fn describe(&self, execution_arn: &str) -> PortResult<Option<serde_json::Value>> {
        let d = match self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
        {
            Ok(d) => d,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_does_not_exist()) =>
            {
                return Ok(None)
            }
            Err(e) => {
                return Err(port_error(
                    "describing an execution".into(),
                    execution_arn,
                    e,
                ))
            }
        };
        let json_text = |t: Option<&str>| {
            t.map(|t| serde_json::from_str(t).unwrap_or_else(|_| serde_json::json!(t)))
        };
        Ok(Some(serde_json::json!({
            "status": d.status().as_str(),
            "output": json_text(d.output()),
            "error": d.error(),
            "cause": d.cause(),
            "name": d.name(),
            "executionArn": d.execution_arn(),
            "startDate": iso(d.start_date()),
            "stopDate": d.stop_date().and_then(iso),
        })))
    }

    /// GetExecutionHistory in the workspace's event shape (`tributary
    /// executions history`): id, timestamp, type and the event's details
    /// (state name, input, output, error, cause, resource, as present).
    pub async fn history(&self, execution_arn: &str) -> PortResult<Vec<serde_json::Value>> {
        let mut events = Vec::new();
        let mut pages = self
            .client
            .get_execution_history()
            .execution_arn(execution_arn)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                port_error("reading an execution's history".into(), execution_arn, e)
            })?;
            for e in page.events() {
                let mut event = serde_json::json!({
                    "id": e.id(),
                    "timestamp": iso(e.timestamp()),
                    "type": e.r#type().as_str(),
                });
                let details = history_details(e);
                if !details.is_empty() {
                    event["details"] = serde_json::Value::Object(details);
                }
                events.push(event);
            }
        }
        Ok(events)
    }

    /// Every execution of a state machine (any of the stack's, not only the
    /// one this starts), each as `tributary executions list` shows it (the workspace's
    /// rows have the same fields): `state_machine` is the machine's file name.
    pub async fn list_executions(
        &self,
        state_machine: &str,
        state_machine_arn: &str,
    ) -> PortResult<Vec<serde_json::Value>> {
        let mut rows = Vec::new();
        let mut pages = self
            .client
            .list_executions()
            .state_machine_arn(state_machine_arn)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                port_error(
                    format!("listing executions of {state_machine}"),
                    state_machine_arn,
                    e,
                )
            })?;
            for e in page.executions() {
                rows.push(serde_json::json!({
                    "name": e.name(),
                    "stateMachine": state_machine,
                    "status": e.status().as_str(),
                    "startDate": iso(e.start_date()),
                    "stopDate": e.stop_date().and_then(iso),
                }));
            }
        }
        rows.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        Ok(rows)
    }
}

/// A Step Functions time as the workspace writes it (RFC 3339, ms, Z).
fn iso(t: &aws_sdk_sfn::primitives::DateTime) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(t.to_millis().unwrap_or_default())
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// What a history event says beyond its type, from whichever of its
/// details is set, under the names the workspace's history uses.
fn history_details(
    e: &aws_sdk_sfn::types::HistoryEvent,
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::json;
    let parsed = |t: Option<&str>| t.map(|t| serde_json::from_str(t).unwrap_or_else(|_| json!(t)));
    let mut d = serde_json::Map::new();
    let mut put = |k: &str, v: Option<serde_json::Value>| {
        if let Some(v) = v {
            d.insert(k.to_string(), v);
        }
    };
    if let Some(x) = e.execution_started_event_details() {
        put("input", parsed(x.input()));
    }
    if let Some(x) = e.execution_succeeded_event_details() {
        put("output", parsed(x.output()));
    }
    if let Some(x) = e.execution_failed_event_details() {
        put("error", x.error().map(|v| json!(v)));
        put("cause", x.cause().map(|v| json!(v)));
    }
    if let Some(x) = e.state_entered_event_details() {
        put("name", Some(json!(x.name())));
        put("input", parsed(x.input()));
    }
    if let Some(x) = e.state_exited_event_details() {
        put("name", Some(json!(x.name())));
        put("output", parsed(x.output()));
    }
    if let Some(x) = e.task_scheduled_event_details() {
        put("resource", Some(json!(x.resource())));
        put("parameters", parsed(Some(x.parameters())));
    }
    if let Some(x) = e.task_succeeded_event_details() {
        put("output", parsed(x.output()));
    }
    if let Some(x) = e.task_failed_event_details() {
        put("error", x.error().map(|v| json!(v)));
        put("cause", x.cause().map(|v| json!(v)));
    }
    if let Some(x) = e.task_timed_out_event_details() {
        put("error", x.error().map(|v| json!(v)));
        put("cause", x.cause().map(|v| json!(v)));
    }
    if let Some(x) = e.lambda_function_failed_event_details() {
        put("error", x.error().map(|v| json!(v)));
        put("cause", x.cause().map(|v| json!(v)));
    }
    d
}

/// Execution names allow 80 characters of letters, digits, '-' and '_'.
fn execution_name(name: &str) -> PortResult<&str> {
    let valid = !name.is_empty()
        && name.len() <= 80
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(name)
    } else {
        Err(PortError::permanent(
            format!("starting execution {name:?}"),
            "execution names are at most 80 letters, digits, '-' or '_': a bug in the name derivation",
            "invalid execution name",
        ))
    }
}

#[async_trait]
impl WorkflowStarter for SfnWorkflows {
    /// StartExecution alone cannot say "already there": for a running
    /// standard execution with the same name and input it succeeds again
    /// with the same answer. So the execution is looked up first; a start
    /// that races another one still creates no second execution.
    async fn start(
        &self,
        workflow: Workflow,
        name: &str,
        input: serde_json::Value,
    ) -> PortResult<bool> {
        self.start_on(self.machine_arn(workflow)?, name, input)
            .await
    }
}

pub struct SfnCallbacks {
    client: Client,
}

impl SfnCallbacks {
    pub fn new(config: &aws_config::SdkConfig) -> SfnCallbacks {
        SfnCallbacks {
            client: Client::new(config),
        }
    }
}

#[async_trait]
impl TaskCallbacks for SfnCallbacks {
    async fn answer(&self, token: &str, answer: TaskAnswer) -> PortResult<()> {
        let resource = "the waiting execution";
        match answer {
            TaskAnswer::Success(output) => self
                .client
                .send_task_success()
                .task_token(token)
                .output(output.to_string())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| port_error("answering a task token (success)".into(), resource, e)),
            TaskAnswer::Failure { error, cause } => self
                .client
                .send_task_failure()
                .task_token(token)
                .error(error)
                .cause(cause)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| port_error("answering a task token (failure)".into(), resource, e)),
            TaskAnswer::Heartbeat => self
                .client
                .send_task_heartbeat()
                .task_token(token)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| port_error("sending a task heartbeat".into(), resource, e)),
        }
    }
}
