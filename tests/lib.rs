//! Helpers for the end-to-end tests: a workspace on a temporary folder with
//! the embedded adapters, and a reader that follows the published manifest
//! the way a downstream consumer would.

use arrow_array::cast::AsArray;
use arrow_array::Array;
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::PathBuf;
use tributary_core::config::Config;
use tributary_core::ports::{ObjectStore, StateStore};
use tributary_core::publish::read_manifest;
use tributary_core::usecases::Services;
use tributary_local::{FileCatalog, FileStateStore, FsObjectStore, QueuedWorkflows, Workspace};

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub objects: FsObjectStore,
    pub state: FileStateStore,
    pub catalog: FileCatalog,
    pub workflows: QueuedWorkflows<FileStateStore>,
    pub scratch: PathBuf,
}

impl Harness {
    pub fn new(config: &str) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = Workspace::new(dir.path());
        Harness {
            config: Config::parse(config, "test.toml").expect("test config"),
            objects: ws.object_store(),
            state: ws.state_store(),
            catalog: ws.catalog_store(),
            workflows: QueuedWorkflows::new(ws.state_store()),
            scratch: ws.scratch(),
            dir,
        }
    }

    pub fn services(&self) -> Services<'_> {
        self.services_with(&self.objects)
    }

    /// The same services with another object store (e.g. one that fails).
    pub fn services_with<'a>(&'a self, objects: &'a dyn ObjectStore) -> Services<'a> {
        Services {
            config: &self.config,
            objects,
            state: &self.state as &dyn StateStore,
            catalog: &self.catalog,
            workflows: &self.workflows,
            scratch: &self.scratch,
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
        let Some(manifest) = read_manifest(&self.objects, dataset, date)
            .await
            .expect("manifest")
        else {
            return vec![];
        };
        let mut out = Vec::new();
        for f in &manifest.files {
            let bytes = self
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
