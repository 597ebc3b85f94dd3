//! The local runtime: embedded adapters on a workspace folder, the handlers
//! called in-process, and started runs executed right away.

use crate::stepfunctions::{self, StartRequest, StepFunctions};
use crate::workflows;
use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tributary_core::approvals;
use tributary_core::config::Config;
use tributary_core::layout::{encode_event_key, parse_date, partition_prefix, Layer};
use tributary_core::orchestration;
use tributary_core::partition::DatasetRunReport;
use tributary_core::ports::{ObjectMeta, ObjectStore};
use tributary_core::ports::{TaskAnswer, Workflow};
use tributary_core::services::Services;
use tributary_local::{LocalAdapters, Workspace};

/// Marks a folder as a tributary workspace, so `demo` may reset it.
const MARKER: &str = ".tributary-workspace";

pub struct LocalRuntime {
    pub root: PathBuf,
    pub config: Config,
    pub adapters: LocalAdapters,
    /// The workspace's Step Functions service.
    pub executions: StepFunctions,
}

/// One started run of a pipeline date, where its execution stopped, and
/// where each of its datasets stands.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PipelineRun {
    pub pipeline: String,
    pub date: NaiveDate,
    pub execution: Value,
    pub datasets: Vec<DatasetRunReport>,
}

/// What the handlers of one call started, run: partition pipeline dates,
/// and the executions of the other state machines.
#[derive(Debug, Default)]
pub struct QueuedRuns {
    pub pipelines: Vec<PipelineRun>,
    pub others: Vec<Value>,
}

impl LocalRuntime {
    /// Open a workspace with the given config (or the workspace's own
    /// `pipeline.toml`).
    pub fn open(root: &Path, config: Option<&Path>) -> Result<LocalRuntime> {
        let config_path: PathBuf = match config {
            Some(p) => p.to_path_buf(),
            None => {
                let own = root.join("pipeline.toml");
                if !own.exists() {
                    bail!(
                        "no pipeline.toml: pass --config FILE, or run `tributary demo` to create a workspace at {} with the sample config",
                        root.display()
                    );
                }
                own
            }
        };
        let config = Config::load(&config_path)?;
        for warning in config.warnings(&config_path.display().to_string()) {
            eprintln!("warning: {warning}");
        }
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating workspace {}", root.display()))?;
        std::fs::write(root.join(MARKER), b"")?;
        Ok(LocalRuntime {
            root: root.to_path_buf(),
            adapters: Workspace::new(root).adapters(),
            executions: StepFunctions::open(root)?,
            config,
        })
    }

    /// Create (or reset) a workspace holding `config_text` as its pipeline.toml.
    pub fn fresh(root: &Path, config_text: &str) -> Result<LocalRuntime> {
        if root.exists() {
            let is_workspace = root.join(MARKER).exists();
            let empty = std::fs::read_dir(root)?.next().is_none();
            if !is_workspace && !empty {
                bail!(
                    "{} exists and is not a tributary workspace; choose another --workspace",
                    root.display()
                );
            }
            std::fs::remove_dir_all(root)
                .with_context(|| format!("resetting {}", root.display()))?;
        }
        std::fs::create_dir_all(root)?;
        std::fs::write(root.join("pipeline.toml"), config_text)?;
        LocalRuntime::open(root, None)
    }

    pub fn services(&self) -> Services<'_> {
        self.adapters.services(&self.config)
    }

    /// What an upstream system does: put the file under raw/, then deliver
    /// the S3 ObjectCreated notification exactly as AWS would (URL-encoded
    /// key) to the object-created handler, then run what it started.
    pub async fn upload(
        &self,
        bytes: Vec<u8>,
        dataset: &str,
        date: &str,
        file_name: &str,
    ) -> Result<UploadResult> {
        let date: NaiveDate =
            parse_date(date).with_context(|| format!("--date {date:?} is not YYYY-MM-DD"))?;
        if self.config.dataset(dataset).is_none() {
            bail!(
                "unknown dataset {dataset:?} (known: {})",
                self.config.dataset_names()
            );
        }
        let key = format!(
            "{}{}",
            partition_prefix(Layer::Raw, dataset, date),
            file_name
        );
        let meta = self.adapters.objects.put_bytes(&key, bytes).await?;
        let event = s3_put_event(&meta);
        let response = tributary_handlers::invoke(&self.services(), "object-created", event)
            .await
            .map_err(|e| anyhow::anyhow!(e.to_string()))?;
        let runs = self.run_started().await?;
        Ok(UploadResult {
            key,
            response,
            runs,
        })
    }

    /// Run every partition pipeline execution the handlers started on the
    /// interpreter, each to its end or to a task token nobody answered yet
    /// (an approval).
    pub async fn run_started(&self) -> Result<Vec<PipelineRun>> {
        Ok(self.run_queued().await?.pipelines)
    }

    /// Run every execution the handlers started, of any state machine:
    /// partition pipelines with their datasets' reports, the others
    /// (features, labelings started by start-downstream) as their
    /// execution summaries.
    pub async fn run_queued(&self) -> Result<QueuedRuns> {
        let mut runs = Vec::new();
        let mut others = Vec::new();
        loop {
            let queued = self.adapters.workflows.drain();
            if queued.is_empty() {
                return Ok(QueuedRuns {
                    pipelines: runs,
                    others,
                });
            }
            for run in queued {
                let execution = self.run_execution(
                    run.workflow.file_name(),
                    workflows::definition(run.workflow)?,
                    &run.execution_name,
                    run.input.clone(),
                )?;
                if run.workflow != Workflow::PartitionPipeline {
                    others.push(execution);
                    continue;
                }
                let pipeline = run.input["pipeline"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let date = run.input["date"]
                    .as_str()
                    .and_then(parse_date)
                    .with_context(|| {
                        format!("execution {} has no valid date", run.execution_name)
                    })?;
                let datasets =
                    orchestration::partition_reports(&self.services(), &pipeline, date).await?;
                runs.push(PipelineRun {
                    pipeline,
                    date,
                    execution,
                    datasets,
                });
            }
        }
    }

    /// Run the catchup state machine (schedule or backfill input), then the
    /// partition runs it started.
    pub async fn run_catchup(&self, name: &str, input: Value) -> Result<(Value, Vec<PipelineRun>)> {
        let execution = self.run_execution("catchup", workflows::catchup()?, name, input)?;
        let runs = self.run_started().await?;
        Ok((execution, runs))
    }

    /// Start the labeling state machine for one labeling and date; it runs
    /// to its end or pauses for a person's review.
    pub fn run_labeling(&self, labeling: &str, date: &str) -> Result<Value> {
        self.start_run(
            "labeling",
            workflows::labeling()?,
            json!({"labeling": labeling, "date": date}),
            &format!("{labeling}-{date}"),
        )
    }

    /// Start the feature pipeline for one feature set and date.
    pub fn run_features(&self, set: &str, date: &str) -> Result<Value> {
        self.start_run(
            "feature_pipeline",
            workflows::feature_pipeline()?,
            json!({"features": set, "date": date}),
            &format!("{set}-{date}"),
        )
    }

    /// Start an execution with a fresh run id (each start is its own run).
    fn start_run(
        &self,
        machine: &str,
        definition: String,
        mut input: Value,
        what: &str,
    ) -> Result<Value> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3f").to_string();
        input["run_id"] = json!(format!("r{stamp}"));
        self.run_execution(
            machine,
            definition,
            &format!("{machine}-{what}-{stamp}"),
            input,
        )
    }

    /// Start an execution on the interpreter, now, on the virtual clock; it
    /// runs to its end or to a task token nobody answered yet.
    fn run_execution(
        &self,
        machine: &str,
        definition: String,
        name: &str,
        input: Value,
    ) -> Result<Value> {
        let request = StartRequest {
            state_machine: machine.into(),
            definition,
            name: name.to_string(),
            input,
            start_ms: chrono::Utc::now().timestamp_millis(),
            canned: Default::default(),
            unanswered_timeout: false,
            clock: tributary_asl::ClockMode::Virtual,
        };
        let (execution, _) = self
            .executions
            .start(Some(&self.services()), request, false)?;
        Ok(execution)
    }

    /// An execution's latest summary (DescribeExecution).
    pub fn describe_execution(&self, name: &str) -> Result<Value> {
        self.executions.describe(name)
    }

    /// What the approval callback does after a click: record the decision
    /// once (signed links are checked by the caller), answer the task token,
    /// and resume the execution. Returns the execution's summary.
    pub async fn decide_approval(
        &self,
        id: &str,
        decision: approvals::Decision,
        decider: &str,
        reason: Option<String>,
        details: Option<Value>,
    ) -> Result<Value> {
        orchestration::decide_and_answer(
            &self.services(),
            id,
            decision,
            decider,
            reason,
            details,
            chrono::Utc::now(),
        )
        .await?;
        let mut resumed = self.apply_callbacks()?;
        resumed
            .pop()
            .context("the decision produced no task answer to apply")
    }

    /// Apply the task-token answers handlers gave (SendTaskSuccess/Failure)
    /// to the paused executions, resuming each to its next stop.
    pub fn apply_callbacks(&self) -> Result<Vec<Value>> {
        let mut summaries = Vec::new();
        for (token, answer) in self.adapters.callbacks.drain() {
            let answer = match answer {
                TaskAnswer::Success(v) => stepfunctions::Answer::Success(v),
                TaskAnswer::Failure { error, cause } => {
                    stepfunctions::Answer::Failure(tributary_asl::Failure::new(error, cause))
                }
                TaskAnswer::Heartbeat => stepfunctions::Answer::Heartbeat,
            };
            summaries.push(
                self.executions
                    .send_answer(Some(&self.services()), &token, answer)?,
            );
        }
        Ok(summaries)
    }
}

pub struct UploadResult {
    pub key: String,
    pub response: Value,
    pub runs: Vec<PipelineRun>,
}

/// The S3 event notification S3 sends for a PUT (keys URL-encoded).
pub fn s3_put_event(meta: &ObjectMeta) -> Value {
    json!({ "Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "local",
        "eventTime": meta.last_modified.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "eventName": "ObjectCreated:Put",
        "userIdentity": { "principalId": "tributary-local" },
        "requestParameters": { "sourceIPAddress": "127.0.0.1" },
        "responseElements": { "x-amz-request-id": "local", "x-amz-id-2": "local" },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "raw-arrivals",
            "bucket": { "name": "tributary-local", "ownerIdentity": { "principalId": "local" }, "arn": "arn:aws:s3:::tributary-local" },
            "object": { "key": encode_event_key(&meta.key), "size": meta.size, "eTag": meta.etag, "sequencer": "0" }
        }
    }]})
}
