//! Embedded adapters for the local runtime: a filesystem bucket, a
//! file-backed state store with DynamoDB's conditional-write semantics (safe
//! across processes), a catalog on the same store, and a workflow starter
//! that queues runs for the CLI to execute.

mod callbacks;
mod catalog;
pub mod kinesis;
pub mod mappings;
mod object_store;
mod outbox;
mod state_store;
mod workflows;

pub use callbacks::QueuedCallbacks;
pub use catalog::FileCatalog;
pub use mappings::StateConsumerSwitch;
pub use object_store::FsObjectStore;
pub use outbox::OutboxNotifier;
pub use state_store::FileStateStore;
pub use workflows::{QueuedRun, QueuedWorkflows};

use std::path::PathBuf;
use tributary_core::config::Config;
use tributary_core::services::{Ports, Services};

/// `tributary serve`'s default address.
pub const DEFAULT_APPROVAL_BASE_URL: &str = "http://127.0.0.1:8765";

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
    pub fn outbox(&self) -> PathBuf {
        self.root.join("outbox.jsonl")
    }
    /// The workspace's approval-link secret: 32 random bytes made on first
    /// use and kept in `approval.key` (readable by the owner only).
    pub fn approval_secret(&self) -> Vec<u8> {
        let path = self.root.join("approval.key");
        if let Ok(hex_text) = std::fs::read_to_string(&path) {
            if let Ok(bytes) = hex::decode(hex_text.trim()) {
                if bytes.len() >= 16 {
                    return bytes;
                }
            }
        }
        let mut bytes = vec![0u8; 32];
        if getrandom::fill(&mut bytes).is_err() {
            // No OS randomness: links still work within this process, and
            // the next process makes a new key.
            return bytes;
        }
        let _ = std::fs::create_dir_all(&self.root);
        let tmp = self
            .root
            .join(format!("approval.key.{}", std::process::id()));
        if write_private(&tmp, hex::encode(&bytes).as_bytes()).is_ok() {
            // Another process may have won the race: whoever renamed last
            // wins, and everyone re-reads the file.
            let _ = std::fs::rename(&tmp, &path);
            if let Ok(text) = std::fs::read_to_string(&path) {
                if let Ok(winner) = hex::decode(text.trim()) {
                    return winner;
                }
            }
        }
        bytes
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
            notifier: OutboxNotifier::new(self.outbox()),
            callbacks: QueuedCallbacks::default(),
            consumers: StateConsumerSwitch::new(self.state_store()),
            approval_secret: self.approval_secret(),
            approval_base_url: std::env::var("TRIBUTARY_APPROVAL_BASE_URL")
                .unwrap_or_else(|_| DEFAULT_APPROVAL_BASE_URL.to_string()),
            scratch: self.scratch(),
        }
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

/// Every embedded adapter of one workspace, ready to hand to the use cases.
pub struct LocalAdapters {
    pub objects: FsObjectStore,
    pub state: FileStateStore,
    pub catalog: FileCatalog,
    pub workflows: QueuedWorkflows<FileStateStore>,
    pub notifier: OutboxNotifier,
    pub callbacks: QueuedCallbacks,
    pub consumers: StateConsumerSwitch<FileStateStore>,
    /// Signs approval links; generated once per workspace (`approval.key`).
    pub approval_secret: Vec<u8>,
    /// Where `tributary serve` answers approval links.
    pub approval_base_url: String,
    pub scratch: PathBuf,
}

impl LocalAdapters {
    pub fn services<'a>(&'a self, config: &'a Config) -> Services<'a> {
        self.granted_services::<{ Ports::ALL.bits() }>(config)
    }

    /// Services with only the ports in `PORTS` (bits of a [`Ports`]).
    pub fn granted_services<'a, const PORTS: u8>(&'a self, config: &'a Config) -> Services<'a> {
        tributary_core::services_from_adapters!(self, config, Ports::from_bits(PORTS))
    }
}

#[cfg(test)]
mod tests;
