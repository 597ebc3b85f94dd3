//! The local runtime: embedded adapters on a workspace folder, the handlers
//! called in-process, and started runs executed right away.

use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tributary_core::config::Config;
use tributary_core::layout::{encode_event_key, parse_date, partition_prefix, Layer};
use tributary_core::ports::{ObjectMeta, ObjectStore};
use tributary_core::usecases::{self, DatasetRunReport, Services};
use tributary_local::{LocalAdapters, Workspace};

/// Marks a folder as a tributary workspace, so `demo` may reset it.
const MARKER: &str = ".tributary-workspace";

pub struct LocalRuntime {
    pub config: Config,
    pub adapters: LocalAdapters,
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
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating workspace {}", root.display()))?;
        std::fs::write(root.join(MARKER), b"")?;
        Ok(LocalRuntime {
            adapters: Workspace::new(root).adapters(),
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

    /// Execute every run the handlers started (the local stand-in for Step
    /// Functions until the ASL interpreter runs the state machines).
    pub async fn run_started(&self) -> Result<Vec<DatasetRunReport>> {
        let mut reports = Vec::new();
        loop {
            let queued = self.adapters.workflows.drain();
            if queued.is_empty() {
                return Ok(reports);
            }
            for run in queued {
                let pipeline = run.input["pipeline"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let run_id = run.input["run_id"].as_str().unwrap_or_default().to_string();
                let date = run.input["date"]
                    .as_str()
                    .and_then(parse_date)
                    .with_context(|| {
                        format!("execution {} has no valid date", run.execution_name)
                    })?;
                reports.extend(
                    usecases::run_partition_pipeline(&self.services(), &pipeline, date, &run_id)
                        .await?,
                );
            }
        }
    }
}

pub struct UploadResult {
    pub key: String,
    pub response: Value,
    pub runs: Vec<DatasetRunReport>,
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
