//! Task states: Lambda and service integrations, task tokens and their
//! callbacks, timeouts and heartbeats, nested executions.

use super::*;

impl Engine<'_, '_> {
    pub(super) fn task_attempt(
        &mut self,
        state: &State,
        task: &Task,
        input: &Value,
        now: &mut i64,
        attempt: u64,
    ) -> Result<Value, Stop> {
        let started = *now;
        let base_ctx = self.context(&state.name, started, attempt, None, None);
        let effective = self.state_input(state, input, &base_ctx)?;
        self.recycle(base_ctx);
        let wants_token = task.resource.ends_with(".waitForTaskToken");
        let token = wants_token.then(|| self.new_token());
        let ctx = self.context(&state.name, started, attempt, token.as_deref(), None);
        let parameters = self.parameters(state, &task.common.parameters, effective, &ctx)?;
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
    pub(super) fn time_out(
        &mut self,
        now: &mut i64,
        at_ms: i64,
        error: &str,
        cause: String,
    ) -> Stop {
        if let Err(stop) = self.advance(now, at_ms) {
            return stop;
        }
        self.task_failed(*now, Failure::new(error, cause))
    }

    pub(super) fn task_failed(&mut self, now: i64, f: Failure) -> Stop {
        let event = if f.error == errors::TIMEOUT || f.error == errors::HEARTBEAT_TIMEOUT {
            "TaskTimedOut"
        } else {
            "TaskFailed"
        };
        self.event(now, event, json!({"error": f.error, "cause": f.cause}));
        Stop::Failed(f)
    }

    pub(super) fn new_token(&mut self) -> String {
        self.tokens_issued += 1;
        let a = self.rng.random_u64();
        let b = self.rng.random_u64();
        format!(
            "{}-{}-{:016x}{:016x}",
            self.options.execution_name, self.tokens_issued, a, b
        )
    }

    /// `states:startExecution(.sync|.sync:2)`: run the child to its end.
    pub(super) fn nested_execution(
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
            // DescribeExecution names a failed child's error and cause.
            let mut described = describe;
            described["Error"] = json!(child.error);
            described["Cause"] = json!(child.cause);
            return Err(Failure::new(errors::TASK_FAILED, described.to_string()));
        }
        let mut out = describe;
        if suffix == ".sync" {
            // The first version of the integration returns Output as text.
            out["Output"] = Value::String(child.output.unwrap_or(Value::Null).to_string());
            out["Input"] = Value::String(child.input.to_string());
        }
        Ok(out)
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
