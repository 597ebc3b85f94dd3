//! Step Functions: starting executions by name (idempotent: S3 delivers
//! events at least once) and answering task tokens.

use crate::port_error;
use async_trait::async_trait;
use aws_sdk_sfn::Client;
use tributary_core::ports::{PortError, PortResult, TaskAnswer, TaskCallbacks, WorkflowStarter};

pub struct SfnWorkflows {
    client: Client,
    state_machine_arn: String,
}

impl SfnWorkflows {
    pub fn new(config: &aws_config::SdkConfig, state_machine_arn: &str) -> SfnWorkflows {
        SfnWorkflows {
            client: Client::new(config),
            state_machine_arn: state_machine_arn.to_string(),
        }
    }

    /// Every execution of a state machine (any of the stack's, not only the
    /// one this starts), each as `tributary executions list` shows it (the workspace's
    /// rows have the same fields): `state_machine` is the machine's file name.
    pub async fn list_executions(
        &self,
        state_machine: &str,
        state_machine_arn: &str,
    ) -> PortResult<Vec<serde_json::Value>> {
        let iso = |t: &aws_sdk_sfn::primitives::DateTime| {
            chrono::DateTime::from_timestamp_millis(t.to_millis().unwrap_or_default())
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        };
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
    async fn start(&self, name: &str, input: serde_json::Value) -> PortResult<bool> {
        let name = execution_name(name)?;
        let execution_arn = format!(
            "{}:{name}",
            self.state_machine_arn
                .replacen(":stateMachine:", ":execution:", 1)
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
                    &self.state_machine_arn,
                    e,
                ))
            }
        }
        match self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
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
                &self.state_machine_arn,
                e,
            )),
        }
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
