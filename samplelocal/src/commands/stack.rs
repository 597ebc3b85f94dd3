//! `tributary --stack FILE …`: the operations on a deployed stack, through
//! the AWS adapters the functions use, wired from the stack's Terraform
//! outputs. Each command prints what its local form prints.
//!
//! The default build leaves the AWS SDK out (a first `tributary demo` must
//! not compile it); `--features aws` builds the AWS-capable CLI.

use crate::cli::Cli;
use anyhow::Result;
use std::path::Path;

/// The functions' environment variable each Terraform output fills
/// (`state_machine_arns` is a map: its `partition_pipeline`).
pub(crate) const OUTPUTS: &[(&str, &str)] = &[
    ("TRIBUTARY_BUCKET", "bucket"),
    ("TRIBUTARY_TABLE", "state_table"),
    ("TRIBUTARY_GLUE_DATABASE", "glue_database"),
    (
        "TRIBUTARY_STATE_MACHINE_ARN",
        "state_machine_arns.partition_pipeline",
    ),
    (
        "TRIBUTARY_FEATURES_STATE_MACHINE_ARN",
        "state_machine_arns.feature_pipeline",
    ),
    (
        "TRIBUTARY_LABELING_STATE_MACHINE_ARN",
        "state_machine_arns.labeling",
    ),
    (
        "TRIBUTARY_STREAM_FAILURES_QUEUE_URL",
        "stream_failures_queue_url",
    ),
    ("TRIBUTARY_TOPIC_ARN", "approvals_topic_arn"),
    ("TRIBUTARY_ALERTS_TOPIC_ARN", "alerts_topic_arn"),
    ("TRIBUTARY_APPROVAL_BASE_URL", "approval_base_url"),
    (
        "TRIBUTARY_CLICK_INFERENCE_FUNCTION",
        "function_names.click-inference",
    ),
];

/// A stack's `terraform output -json`, read from `path`.
pub(crate) fn read_outputs(path: &Path) -> Result<serde_json::Value> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the stack outputs {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not JSON: write it with `terraform output -json > {}`",
            path.display(),
            path.display()
        )
    })
}

/// A value of `terraform output -json` (`{"name": {"value": …}}`, or a
/// plain `{"name": …}`), by a dotted path.
fn output_value<'a>(outputs: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let mut parts = path.split('.');
    let first = outputs.get(parts.next()?)?;
    let mut value = first.get("value").unwrap_or(first);
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

/// A string value of `terraform output -json`, by a dotted path.
pub(crate) fn output(outputs: &serde_json::Value, path: &str) -> Option<String> {
    output_value(outputs, path)?.as_str().map(str::to_string)
}

#[cfg(not(feature = "aws"))]
pub async fn run(_cli: &Cli, _stack: &Path) -> Result<()> {
    anyhow::bail!(
        "--stack needs the AWS-capable build, which the default one leaves out: cargo run -p tributary --features aws -- --stack FILE …"
    )
}

#[cfg(feature = "aws")]
pub async fn run(cli: &Cli, stack: &Path) -> Result<()> {
    use crate::cli::{ApprovalsCommand, Command, DlqCommand, ExecutionsCommand, WatermarkCommand};
    use anyhow::Context;
    use tributary_core::approvals::Decision;
    use tributary_core::config::Config;

    let outputs = read_outputs(stack)?;
    let get = |name: &str| {
        OUTPUTS
            .iter()
            .find(|(env, _)| *env == name)
            .and_then(|(_, path)| output(&outputs, path))
            .or_else(|| std::env::var(name).ok())
    };
    let adapters = tributary_aws::AwsAdapters::from_env(&get)
        .await
        .with_context(|| format!("wiring the stack of {}", stack.display()))?;
    let config_path = cli.config.as_deref().context(
        "--stack needs --config with the pipeline.toml the stack was deployed with (its datasets and pipelines)",
    )?;
    let config = Config::load(config_path)?;
    let svc = adapters.services(&config);
    match &cli.command {
        Command::Partitions {
            dataset,
            unprocessed,
        } => {
            super::ops::partitions(
                &config,
                svc.state,
                dataset.as_deref(),
                *unprocessed,
                cli.json,
            )
            .await
        }
        Command::Watermark(WatermarkCommand::Set {
            pipeline,
            date,
            reason,
        }) => super::ops::watermark_set(&config, svc.state, pipeline, date, reason, cli.json).await,
        Command::Approvals(ApprovalsCommand::List) => {
            super::approvals::list(svc.state, cli.json).await
        }
        Command::Executions(ExecutionsCommand::List) => {
            // Every state machine of the stack, by file name.
            let machines = output_value(&outputs, "state_machine_arns")
                .and_then(serde_json::Value::as_object)
                .context("the stack outputs have no state_machine_arns")?;
            let mut rows = Vec::new();
            for (machine, arn) in machines {
                if let Some(arn) = arn.as_str() {
                    rows.extend(adapters.workflows.list_executions(machine, arn).await?);
                }
            }
            rows.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
            super::asl::print_executions(&rows, cli.json)
        }
        Command::Approvals(ApprovalsCommand::Approve {
            id,
            reason,
            by,
            corrections,
            again,
        }) => {
            let details =
                super::approvals::decision_details(&svc, id, corrections.as_deref(), *again)
                    .await?;
            let decider = super::approvals::decider(by.clone());
            decide(&adapters, &svc, id, Decision::Approve, &decider, reason.clone(), details).await
        }
        Command::Approvals(ApprovalsCommand::Reject { id, reason, by }) => {
            let decider = super::approvals::decider(by.clone());
            decide(&adapters, &svc, id, Decision::Reject, &decider, reason.clone(), None).await
        }
        Command::Backfill {
            pipeline,
            start,
            end,
            force,
        } => {
            let catchup = machine_arn(&outputs, "catchup")?;
            let (name, input) = super::catchup::backfill_execution(pipeline, start, end, *force);
            adapters.workflows.start_on(&catchup, &name, input).await?;
            let execution_arn = format!("{}:{name}", execution_prefix(&catchup));
            // The catchup runs on the stack; its partition runs start there
            // asynchronously, so only the catchup's own report is shown.
            let execution = settled(&adapters, &execution_arn, BACKFILL_WAIT).await?;
            super::catchup::report(&execution, &[], cli.json)
        }
        Command::Executions(ExecutionsCommand::Show { name }) => {
            let (_, execution) = find_execution(&adapters, &outputs, name).await?;
            super::report::print_json(&execution)
        }
        Command::Executions(ExecutionsCommand::History { name }) => {
            let (arn, _) = find_execution(&adapters, &outputs, name).await?;
            let events = adapters.workflows.history(&arn).await?;
            super::report::print_json(&serde_json::json!({"name": name, "events": events}))
        }
        // One function run here against the stack, as `sam local invoke`
        // would run it there (with the caller's credentials).
        Command::Invoke { function, event } => {
            let event = super::ops::read_event(event)?;
            let response = super::ops::invoke_function(&svc, function, event).await?;
            super::report::print_json(&response)
        }
        Command::Dlq(DlqCommand::Replay { stream }) => {
            let event = serde_json::json!({ "stream": stream });
            let response = super::ops::invoke_function(&svc, "replay-dlq", event).await?;
            super::report::print_json(&response)
        }
        Command::Redrive => {
            let queue = get("TRIBUTARY_STREAM_FAILURES_QUEUE_URL").context(
                "the stack outputs have no stream_failures_queue_url (nor is TRIBUTARY_STREAM_FAILURES_QUEUE_URL set)",
            )?;
            let aws = tributary_aws::AwsSettings::from_env().sdk_config().await;
            super::redrive::run(&aws, &svc, &queue, cli.json).await
        }
        // The consumer's mapping is switched with the caller's
        // credentials, as the stop-inference and rollback-model functions
        // do with theirs.
        Command::Model(command) => super::model::run_on(&svc, command).await,
        Command::Dlq(DlqCommand::List { stream }) => {
            super::stream::dlq_list(&svc, stream.as_deref(), cli.json).await
        }
        // The deployed retention-sweep schedule deletes; from a terminal,
        // a stack is only asked what it would delete.
        Command::Retention { dry_run: true, today } => {
            super::ops::retention(&svc, true, today.as_deref(), cli.json).await
        }
        Command::Retention { dry_run: false, .. } => anyhow::bail!(
            "against a stack, retention runs only with --dry-run: the deployed retention-sweep schedule does the deleting"
        ),
        other => anyhow::bail!(
            "{} works on a local workspace only so far; against a stack: {SUPPORTED}",
            command_name(other)
        ),
    }
}

#[cfg(feature = "aws")]
const SUPPORTED: &str = "partitions, watermark set, approvals list|approve|reject, backfill, executions list|show|history, dlq list|replay, redrive, model status|rollback|stop, retention --dry-run, invoke";

/// How long a decision or a backfill waits for its execution to move on
/// before printing where it stands (it goes on on the stack either way).
#[cfg(feature = "aws")]
const DECISION_WAIT: std::time::Duration = std::time::Duration::from_secs(15);
#[cfg(feature = "aws")]
const BACKFILL_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// A state machine's ARN from the outputs' `state_machine_arns`.
#[cfg(feature = "aws")]
fn machine_arn(outputs: &serde_json::Value, machine: &str) -> Result<String> {
    use anyhow::Context;
    output(outputs, &format!("state_machine_arns.{machine}"))
        .with_context(|| format!("the stack outputs have no state_machine_arns.{machine}"))
}

/// The prefix of a state machine's execution ARNs.
#[cfg(feature = "aws")]
fn execution_prefix(state_machine_arn: &str) -> String {
    state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
}

/// An execution of any of the stack's state machines, by name: its ARN and
/// summary.
#[cfg(feature = "aws")]
async fn find_execution(
    adapters: &tributary_aws::AwsAdapters,
    outputs: &serde_json::Value,
    name: &str,
) -> Result<(String, serde_json::Value)> {
    let machines = output_value(outputs, "state_machine_arns")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| anyhow::anyhow!("the stack outputs have no state_machine_arns"))?;
    for arn in machines.values().filter_map(serde_json::Value::as_str) {
        let execution_arn = format!("{}:{name}", execution_prefix(arn));
        if let Some(summary) = adapters.workflows.describe(&execution_arn).await? {
            return Ok((execution_arn, summary));
        }
    }
    anyhow::bail!(
        "no execution {name:?} on any of the stack's state machines ({}); `executions list` shows them",
        machines.keys().cloned().collect::<Vec<_>>().join(", ")
    )
}

/// The execution's summary once it stops running, or after `wait`.
#[cfg(feature = "aws")]
async fn settled(
    adapters: &tributary_aws::AwsAdapters,
    execution_arn: &str,
    wait: std::time::Duration,
) -> Result<serde_json::Value> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let summary = adapters
            .workflows
            .describe(execution_arn)
            .await?
            .ok_or_else(|| anyhow::anyhow!("execution {execution_arn} does not exist"))?;
        if summary["status"] != "RUNNING" || std::time::Instant::now() >= deadline {
            return Ok(summary);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Record the decision and answer the execution's task token, as the
/// approval link does; print the execution as it stands afterwards.
#[cfg(feature = "aws")]
async fn decide(
    adapters: &tributary_aws::AwsAdapters,
    svc: &tributary_core::services::Services<'_>,
    id: &str,
    decision: tributary_core::approvals::Decision,
    decider: &str,
    reason: Option<String>,
    details: Option<serde_json::Value>,
) -> Result<()> {
    let approval = tributary_core::orchestration::decide_and_answer(
        svc,
        id,
        decision,
        decider,
        reason,
        details,
        chrono::Utc::now(),
    )
    .await?;
    let execution = settled(adapters, &approval.execution, DECISION_WAIT).await?;
    super::report::print_json(&execution)
}

#[cfg(feature = "aws")]
fn command_name(command: &crate::cli::Command) -> String {
    let text = format!("{command:?}");
    text.split(['(', ' ', '{'])
        .next()
        .unwrap_or("this command")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_read_from_terraform_output_json_or_plain() {
        let tf = serde_json::json!({
            "bucket": {"sensitive": false, "type": "string", "value": "data-b"},
            "state_machine_arns": {"value": {"partition_pipeline": "arn:sm:p"}},
        });
        assert_eq!(output(&tf, "bucket").as_deref(), Some("data-b"));
        assert_eq!(
            output(&tf, "state_machine_arns.partition_pipeline").as_deref(),
            Some("arn:sm:p")
        );
        assert_eq!(output(&tf, "state_table"), None);
        let plain = serde_json::json!({"bucket": "b2"});
        assert_eq!(output(&plain, "bucket").as_deref(), Some("b2"));
    }
}
