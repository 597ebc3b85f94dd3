//! A DynamoDB-like table in files: one JSON document per partition key,
//! replaced atomically (write + rename), with conditional writes made atomic
//! by an exclusive lock on the partition key's lock file. Several processes
//! may use the same workspace at once; state survives restarts.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tributary_core::ports::{
    check_transaction, expired, Condition, PortError, PortResult, StateStore, TransactWrite,
    Versioned,
};

pub struct FileStateStore {
    root: PathBuf,
    /// Parsed partitions by key, with the identity of the file they were
    /// read from: re-parsing a large partition (a day of stream windows)
    /// on every read would make each write cost its whole size twice.
    /// Any change by any process replaces the file (new inode, size, mtime),
    /// so a stale entry is never used.
    cache: Mutex<HashMap<String, (FileIdentity, Arc<Partition>)>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

fn identity(meta: &fs::Metadata) -> FileIdentity {
    use std::os::unix::fs::MetadataExt;
    FileIdentity {
        inode: meta.ino(),
        len: meta.len(),
        modified: meta.modified().ok(),
    }
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
        FileStateStore {
            root,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn data_path(&self, pk: &str) -> PathBuf {
        self.root.join(format!("{}.json", file_name(pk)))
    }

    fn read(&self, pk: &str) -> PortResult<Arc<Partition>> {
        let path = self.data_path(pk);
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Arc::new(Partition::new()))
            }
            Err(e) => return Err(PortError::from_io(format!("reading state {pk}"), e)),
        };
        let id = identity(&meta);
        if let Some((cached, partition)) = self.cache.lock().ok().and_then(|c| c.get(pk).cloned()) {
            if cached == id {
                return Ok(partition);
            }
        }
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Arc::new(Partition::new()))
            }
            Err(e) => return Err(PortError::from_io(format!("reading state {pk}"), e)),
        };
        let partition: Partition = serde_json::from_slice(&bytes).map_err(|e| {
            PortError::permanent(
                format!("reading state {pk}"),
                format!("{} is corrupt; restore it or remove it", path.display()),
                e,
            )
        })?;
        let partition = Arc::new(partition);
        // Only when the file did not change while it was read.
        if fs::metadata(&path).map(|m| identity(&m)).ok() == Some(id) {
            if let Ok(mut c) = self.cache.lock() {
                c.insert(pk.to_string(), (id, partition.clone()));
            }
        }
        Ok(partition)
    }

    /// Run `f` on the partition under its exclusive lock and persist the result.
    fn with_lock<T>(
        &self,
        pk: &str,
        f: impl FnOnce(&mut Partition) -> PortResult<T>,
    ) -> PortResult<T> {
        let lock = self.lock(pk)?;
        let mut partition = self.take_for_write(pk)?;
        let result = f(&mut partition)?;
        self.persist(pk, partition)?;
        drop(lock);
        Ok(result)
    }

    /// The partition key's exclusive lock, held until the file is dropped.
    fn lock(&self, pk: &str) -> PortResult<fs::File> {
        let op = || format!("state {pk}");
        fs::create_dir_all(&self.root).map_err(|e| PortError::from_io(op(), e))?;
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join(format!("{}.lock", file_name(pk))))
            .map_err(|e| PortError::from_io(op(), e))?;
        lock.lock().map_err(|e| PortError::from_io(op(), e))?;
        Ok(lock)
    }

    /// The partition, owned, for a writer holding its lock.
    fn take_for_write(&self, pk: &str) -> PortResult<Partition> {
        let current = self.read(pk)?;
        // Own it without a deep copy: the cache gives up its reference.
        if let Ok(mut c) = self.cache.lock() {
            c.remove(pk);
        }
        Ok(Arc::unwrap_or_clone(current))
    }

    /// Replace the partition's file (write + rename) under its lock.
    fn persist(&self, pk: &str, partition: Partition) -> PortResult<()> {
        let op = || format!("state {pk}");
        // Small partitions stay readable; large ones (stream windows,
        // dedupe claims) are written compactly: they are rewritten often.
        let body = if partition.len() <= 200 {
            serde_json::to_vec_pretty(&partition)
        } else {
            serde_json::to_vec(&partition)
        }
        .map_err(|e| PortError::permanent(op(), "a bug", e))?;
        let mut tmp =
            tempfile::NamedTempFile::new_in(&self.root).map_err(|e| PortError::from_io(op(), e))?;
        tmp.write_all(&body)
            .map_err(|e| PortError::from_io(op(), e))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| PortError::from_io(op(), e))?;
        let path = self.data_path(pk);
        tmp.persist(&path)
            .map_err(|e| PortError::from_io(op(), e.error))?;
        if let (Ok(meta), Ok(mut cache)) = (fs::metadata(&path), self.cache.lock()) {
            cache.insert(pk.to_string(), (identity(&meta), Arc::new(partition)));
        }
        Ok(())
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
        Ok(self.read(pk)?.get(sk).map(|i| Versioned {
            value: i.value.clone(),
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

    /// One lock and one rewrite per partition key of the call; expired
    /// items are dropped from a partition as DynamoDB's TTL sweep would.
    async fn put_new_items(
        &self,
        items: Vec<(String, String, serde_json::Value)>,
        now_epoch_secs: i64,
    ) -> PortResult<Vec<Option<serde_json::Value>>> {
        let mut by_pk: BTreeMap<String, Vec<(usize, String, serde_json::Value)>> = BTreeMap::new();
        let count = items.len();
        for (i, (pk, sk, value)) in items.into_iter().enumerate() {
            by_pk.entry(pk).or_default().push((i, sk, value));
        }
        let mut found = vec![None; count];
        for (pk, items) in by_pk {
            self.with_lock(&pk, |partition| {
                partition.retain(|_, item| !expired(&item.value, now_epoch_secs));
                for (i, sk, value) in items {
                    match partition.get(&sk) {
                        Some(existing) => found[i] = Some(existing.value.clone()),
                        None => {
                            partition.insert(sk, StoredItem { value, version: 1 });
                        }
                    }
                }
                Ok(())
            })?;
        }
        Ok(found)
    }

    /// Every partition key involved is locked, in key order (so two
    /// transactions cannot deadlock), all conditions are checked, then
    /// each partition file is replaced. Writers never see a half-applied
    /// transaction. Unlike DynamoDB, a lock-free reader of two partition
    /// keys can, between two renames, see one written and not the other,
    /// and a crash between them leaves it so; items under one partition key
    /// are all or nothing.
    async fn transact(&self, writes: Vec<TransactWrite>) -> PortResult<()> {
        check_transaction(&writes)?;
        let pks: std::collections::BTreeSet<&str> = writes.iter().map(|w| w.pk.as_str()).collect();
        let mut held = Vec::with_capacity(pks.len());
        let mut partitions = BTreeMap::new();
        for pk in pks {
            held.push(self.lock(pk)?);
            partitions.insert(pk.to_string(), self.take_for_write(pk)?);
        }
        for w in &writes {
            check(&w.pk, &w.sk, partitions[&w.pk].get(&w.sk), w.condition)?;
        }
        for w in writes {
            let Some(partition) = partitions.get_mut(&w.pk) else {
                continue;
            };
            match w.value {
                Some(value) => {
                    let version = partition.get(&w.sk).map_or(1, |i| i.version + 1);
                    partition.insert(w.sk, StoredItem { value, version });
                }
                None => {
                    partition.remove(&w.sk);
                }
            }
        }
        for (pk, partition) in partitions {
            self.persist(&pk, partition)?;
        }
        drop(held);
        Ok(())
    }

    async fn query(&self, pk: &str) -> PortResult<Vec<(String, Versioned)>> {
        Ok(self
            .read(pk)?
            .iter()
            .map(|(sk, i)| {
                (
                    sk.clone(),
                    Versioned {
                        value: i.value.clone(),
                        version: i.version,
                    },
                )
            })
            .collect())
    }
}
