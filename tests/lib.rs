//! Helpers for the end-to-end tests: a workspace on a temporary folder with
//! the embedded adapters, and a reader that follows the published manifest
//! the way a downstream consumer would.

use arrow_array::cast::AsArray;
use arrow_array::Array;
use async_trait::async_trait;
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::Path;
use tributary_core::config::Config;
use tributary_core::error::{UseCaseError, UseCaseResult};
use tributary_core::partition::{
    clean_partition, publish_partition, validate_partition, DatasetRunReport,
};
use tributary_core::ports::{ObjectMeta, ObjectStore, PortError, PortResult};
use tributary_core::publish::read_manifest;
use tributary_core::services::Services;
use tributary_local::{LocalAdapters, Workspace};

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub adapters: LocalAdapters,
}

impl Harness {
    pub fn new(config: &str) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        Harness {
            config: Config::parse(config, "test.toml").expect("test config"),
            adapters: Workspace::new(dir.path()).adapters(),
            dir,
        }
    }

    pub fn services(&self) -> Services<'_> {
        self.adapters.services(&self.config)
    }

    /// The same services with another object store (e.g. one that fails).
    pub fn services_with<'a>(&'a self, objects: &'a dyn ObjectStore) -> Services<'a> {
        Services {
            objects,
            ..self.services()
        }
    }

    /// Rows of one string column of the published partition, read through
    /// the manifest.
    pub async fn published_column(
        &self,
        dataset: &str,
        date: NaiveDate,
        column: &str,
    ) -> Vec<String> {
        let Some(manifest) = read_manifest(&self.adapters.objects, dataset, date)
            .await
            .expect("manifest")
        else {
            return vec![];
        };
        let mut out = Vec::new();
        for f in &manifest.files {
            let bytes = self
                .adapters
                .objects
                .get_bytes(&f.key)
                .await
                .expect("published file");
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
                .expect("parquet")
                .build()
                .expect("reader");
            for batch in reader {
                let batch = batch.expect("batch");
                let col = batch
                    .column_by_name(column)
                    .expect("column")
                    .as_string::<i32>()
                    .clone();
                out.extend((0..col.len()).map(|i| col.value(i).to_string()));
            }
        }
        out
    }
}

pub fn date(s: &str) -> NaiveDate {
    tributary_core::layout::parse_date(s).expect("test date")
}

/// Clean → validate → publish (or hold) every dataset of a pipeline date, in
/// one call with no orchestration: how these domain tests set up partitions.
/// Deployed and local runs go through `statemachines/partition_pipeline.asl.json`
/// (tested in samplelocal/).
pub async fn run_partition_pipeline(
    svc: &Services<'_>,
    pipeline: &str,
    date: NaiveDate,
    run_id: &str,
) -> UseCaseResult<Vec<DatasetRunReport>> {
    let p = svc
        .config
        .pipelines
        .get(pipeline)
        .ok_or_else(|| UseCaseError::UnknownPipeline {
            pipeline: pipeline.to_string(),
            known: String::new(),
        })?;
    let mut reports = Vec::new();
    for ds in &p.datasets {
        let mut report = DatasetRunReport {
            dataset: ds.clone(),
            date,
            state: String::new(),
            stats: None,
            quality_score: None,
            error: None,
            location: None,
        };
        let step = async {
            let cleaned = clean_partition(svc, ds, date, run_id).await?;
            report.stats = Some(cleaned.stats);
            let quality = validate_partition(svc, ds, date, run_id).await?;
            report.quality_score = Some(quality.score);
            if quality.passed {
                let published = publish_partition(svc, ds, date, run_id, false).await?;
                report.location = Some(published.manifest.location);
            }
            Ok::<_, UseCaseError>(())
        }
        .await;
        if let Err(e) = step {
            report.error = Some(e.to_string());
        }
        report.state = tributary_core::state::partition_status(svc.state, ds, date)
            .await?
            .map_or("unknown".into(), |s| s.state.name().to_string());
        reports.push(report);
    }
    Ok(reports)
}

/// An object store that fails every operation on keys matching a pattern,
/// as a Lambda killed or throttled mid-publish would.
pub struct FailingStore<'a> {
    pub inner: &'a dyn ObjectStore,
    pub fail_on: &'a str,
}

impl FailingStore<'_> {
    fn check(&self, key: &str) -> PortResult<()> {
        if key.contains(self.fail_on) {
            return Err(PortError::transient(
                format!("writing {key}"),
                "simulated crash",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for FailingStore<'_> {
    async fn put_bytes(&self, key: &str, body: Vec<u8>) -> PortResult<ObjectMeta> {
        self.check(key)?;
        self.inner.put_bytes(key, body).await
    }
    async fn put_file(&self, key: &str, path: &Path) -> PortResult<ObjectMeta> {
        self.check(key)?;
        self.inner.put_file(key, path).await
    }
    async fn get_bytes(&self, key: &str) -> PortResult<Vec<u8>> {
        self.inner.get_bytes(key).await
    }
    async fn get_range(&self, key: &str, start: u64, len: u64) -> PortResult<Vec<u8>> {
        self.inner.get_range(key, start, len).await
    }
    async fn get_to_file(&self, key: &str, path: &Path) -> PortResult<ObjectMeta> {
        self.inner.get_to_file(key, path).await
    }
    async fn head(&self, key: &str) -> PortResult<Option<ObjectMeta>> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> PortResult<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> PortResult<()> {
        self.inner.delete(key).await
    }
    async fn copy(&self, from: &str, to: &str) -> PortResult<ObjectMeta> {
        self.check(to)?;
        self.inner.copy(from, to).await
    }
}
