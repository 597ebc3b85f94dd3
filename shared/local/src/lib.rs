//! Embedded adapters for the local runtime: a filesystem bucket, a
//! file-backed state store with DynamoDB's conditional-write semantics (safe
//! across processes), a catalog on the same store, and a workflow starter
//! that queues runs for the CLI to execute.

mod catalog;
mod object_store;
mod state_store;
mod workflows;

pub use catalog::FileCatalog;
pub use object_store::FsObjectStore;
pub use state_store::FileStateStore;
pub use workflows::{QueuedRun, QueuedWorkflows};

use std::path::PathBuf;
use tributary_core::config::Config;
use tributary_core::usecases::Services;

/// The folders of one local workspace (default `./.tributary`).
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
}

impl Workspace {
    pub fn new(root: impl Into<PathBuf>) -> Workspace {
        Workspace { root: root.into() }
    }
    pub fn bucket(&self) -> PathBuf {
        self.root.join("bucket")
    }
    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }
    pub fn catalog(&self) -> PathBuf {
        self.root.join("catalog")
    }
    pub fn scratch(&self) -> PathBuf {
        self.root.join("scratch")
    }
    pub fn object_store(&self) -> FsObjectStore {
        FsObjectStore::new(self.bucket(), self.root.join("tmp"))
    }
    pub fn state_store(&self) -> FileStateStore {
        FileStateStore::new(self.state())
    }
    pub fn catalog_store(&self) -> FileCatalog {
        FileCatalog::new(FileStateStore::new(self.catalog()))
    }
    pub fn adapters(&self) -> LocalAdapters {
        LocalAdapters {
            objects: self.object_store(),
            state: self.state_store(),
            catalog: self.catalog_store(),
            workflows: QueuedWorkflows::new(self.state_store()),
            scratch: self.scratch(),
        }
    }
}

/// Every embedded adapter of one workspace, ready to hand to the use cases.
pub struct LocalAdapters {
    pub objects: FsObjectStore,
    pub state: FileStateStore,
    pub catalog: FileCatalog,
    pub workflows: QueuedWorkflows<FileStateStore>,
    pub scratch: PathBuf,
}

impl LocalAdapters {
    pub fn services<'a>(&'a self, config: &'a Config) -> Services<'a> {
        Services {
            config,
            objects: &self.objects,
            state: &self.state,
            catalog: &self.catalog,
            workflows: &self.workflows,
            scratch: &self.scratch,
        }
    }
}

#[cfg(test)]
mod tests;
