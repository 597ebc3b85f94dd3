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

use std::path::{Path, PathBuf};

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
    pub fn exists(path: &Path) -> bool {
        path.join("bucket").is_dir()
    }
}

#[cfg(test)]
mod tests;
