//! A DynamoDB-like table in files: one JSON document per partition key,
//! replaced atomically (write + rename), with conditional writes made atomic
//! by an exclusive lock on the partition key's lock file. Several processes
//! may use the same workspace at once; state survives restarts.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use tributary_core::ports::{expired, Condition, PortError, PortResult, StateStore, Versioned};

pub struct FileStateStore {
    root: PathBuf,
}

#[derive(Serialize, Deserialize, Clone)]
struct StoredItem {
    value: serde_json::Value,
    version: u64,
}

type Partition = BTreeMap<String, StoredItem>;

/// Partition keys become file names: keep them readable but safe.
fn file_name(pk: &str) -> String {
    let mut out = String::new();
    for b in pk.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl FileStateStore {
    pub fn new(root: PathBuf) -> FileStateStore {
        FileStateStore { root }
    }

    fn data_path(&self, pk: &str) -> PathBuf {
        self.root.join(format!("{}.json", file_name(pk)))
    }

    fn read(&self, pk: &str) -> PortResult<Partition> {
        match fs::read(self.data_path(pk)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                PortError::permanent(
                    format!("reading state {pk}"),
                    format!(
                        "{} is corrupt; restore it or remove it",
                        self.data_path(pk).display()
                    ),
                    e,
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Partition::new()),
            Err(e) => Err(PortError::from_io(format!("reading state {pk}"), e)),
        }
    }

    /// Run `f` on the partition under its exclusive lock and persist the result.
    fn with_lock<T>(
        &self,
        pk: &str,
        f: impl FnOnce(&mut Partition) -> PortResult<T>,
    ) -> PortResult<T> {
        let op = || format!("state {pk}");
        fs::create_dir_all(&self.root).map_err(|e| PortError::from_io(op(), e))?;
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join(format!("{}.lock", file_name(pk))))
            .map_err(|e| PortError::from_io(op(), e))?;
        lock.lock().map_err(|e| PortError::from_io(op(), e))?;
        let mut partition = self.read(pk)?;
        let result = f(&mut partition)?;
        let body = serde_json::to_vec_pretty(&partition)
            .map_err(|e| PortError::permanent(op(), "a bug", e))?;
        let mut tmp =
            tempfile::NamedTempFile::new_in(&self.root).map_err(|e| PortError::from_io(op(), e))?;
        tmp.write_all(&body)
            .map_err(|e| PortError::from_io(op(), e))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| PortError::from_io(op(), e))?;
        tmp.persist(self.data_path(pk))
            .map_err(|e| PortError::from_io(op(), e.error))?;
        drop(lock);
        Ok(result)
    }
}

fn check(pk: &str, sk: &str, current: Option<&StoredItem>, condition: Condition) -> PortResult<()> {
    let failed = |detail: String| PortError::ConditionFailed {
        what: format!("{pk}/{sk}"),
        detail,
    };
    match (condition, current) {
        (Condition::Always, _) => Ok(()),
        (Condition::NotExists, None) => Ok(()),
        (Condition::NotExists, Some(c)) => {
            Err(failed(format!("item exists (version {})", c.version)))
        }
        (Condition::VersionIs(v), Some(c)) if c.version == v => Ok(()),
        (Condition::VersionIs(v), Some(c)) => {
            Err(failed(format!("expected version {v}, found {}", c.version)))
        }
        (Condition::VersionIs(v), None) => {
            Err(failed(format!("expected version {v}, item is absent")))
        }
    }
}

#[async_trait]
impl StateStore for FileStateStore {
    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Versioned>> {
        Ok(self.read(pk)?.remove(sk).map(|i| Versioned {
            value: i.value,
            version: i.version,
        }))
    }

    async fn put(
        &self,
        pk: &str,
        sk: &str,
        value: serde_json::Value,
        condition: Condition,
    ) -> PortResult<u64> {
        self.with_lock(pk, |partition| {
            check(pk, sk, partition.get(sk), condition)?;
            let version = partition.get(sk).map_or(1, |i| i.version + 1);
            partition.insert(sk.to_string(), StoredItem { value, version });
            Ok(version)
        })
    }

    async fn delete(&self, pk: &str, sk: &str, condition: Condition) -> PortResult<()> {
        self.with_lock(pk, |partition| {
            check(pk, sk, partition.get(sk), condition)?;
            partition.remove(sk);
            Ok(())
        })
    }

    /// One lock and one rewrite for the whole call; expired items are
    /// dropped from the partition as DynamoDB's TTL sweep would.
    async fn put_new_items(
        &self,
        pk: &str,
        items: Vec<(String, serde_json::Value)>,
        now_epoch_secs: i64,
    ) -> PortResult<Vec<Option<serde_json::Value>>> {
        self.with_lock(pk, |partition| {
            partition.retain(|_, item| !expired(&item.value, now_epoch_secs));
            Ok(items
                .into_iter()
                .map(|(sk, value)| match partition.get(&sk) {
                    Some(existing) => Some(existing.value.clone()),
                    None => {
                        partition.insert(sk, StoredItem { value, version: 1 });
                        None
                    }
                })
                .collect())
        })
    }

    async fn query(&self, pk: &str) -> PortResult<Vec<(String, Versioned)>> {
        Ok(self
            .read(pk)?
            .into_iter()
            .map(|(sk, i)| {
                (
                    sk,
                    Versioned {
                        value: i.value,
                        version: i.version,
                    },
                )
            })
            .collect())
    }
}
