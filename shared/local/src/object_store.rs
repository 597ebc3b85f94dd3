//! The data bucket as a folder. Writes go to a temporary file and are renamed
//! into place, so a reader sees the old object or the new one, never half of
//! one. ETags are S3's single-part ETag (hex MD5), kept in a sidecar and
//! recomputed if the sidecar does not match the file.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use tributary_core::ports::{ObjectMeta, ObjectStore, PortError, PortResult};

pub struct FsObjectStore {
    root: PathBuf,
    tmp: PathBuf,
    meta: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Sidecar {
    etag: String,
    size: u64,
    modified_nanos: u128,
}

fn object_meta(key: &str, m: &fs::Metadata, etag: String) -> ObjectMeta {
    ObjectMeta {
        key: key.to_string(),
        size: m.len(),
        etag,
        last_modified: m
            .modified()
            .map(DateTime::<Utc>::from)
            .unwrap_or_else(|_| Utc::now()),
    }
}

fn modified_nanos(m: &fs::Metadata) -> u128 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

impl FsObjectStore {
    pub fn new(root: PathBuf, tmp: PathBuf) -> FsObjectStore {
        let meta = root.with_extension("meta");
        FsObjectStore { root, tmp, meta }
    }

    /// Map a key to a path, refusing anything that could leave the bucket.
    fn path(&self, key: &str) -> PortResult<PathBuf> {
        let bad = key.is_empty()
            || key.starts_with('/')
            || key.contains('\\')
            || key
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..");
        if bad {
            return Err(PortError::permanent(
                format!("object key {key:?}"),
                "keys must be relative, without empty, '.' or '..' segments",
                "invalid key",
            ));
        }
        Ok(self.root.join(key))
    }

    fn sidecar_path(&self, key: &str) -> PathBuf {
        self.meta.join(format!("{key}.json"))
    }

    fn write_atomically(
        &self,
        dest: &Path,
        mut fill: impl FnMut(&mut fs::File) -> std::io::Result<()>,
    ) -> PortResult<()> {
        let op = || format!("writing {}", dest.display());
        fs::create_dir_all(&self.tmp).map_err(|e| PortError::from_io(op(), e))?;
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| PortError::from_io(op(), e))?;
        }
        let mut tmp =
            tempfile::NamedTempFile::new_in(&self.tmp).map_err(|e| PortError::from_io(op(), e))?;
        fill(tmp.as_file_mut()).map_err(|e| PortError::from_io(op(), e))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| PortError::from_io(op(), e))?;
        tmp.persist(dest)
            .map_err(|e| PortError::from_io(op(), e.error))?;
        Ok(())
    }

    fn finish_put(&self, key: &str, path: &Path, etag: String) -> PortResult<ObjectMeta> {
        let m = fs::metadata(path).map_err(|e| PortError::from_io(format!("stat {key}"), e))?;
        let sidecar = Sidecar {
            etag: etag.clone(),
            size: m.len(),
            modified_nanos: modified_nanos(&m),
        };
        let body = serde_json::to_vec(&sidecar)
            .map_err(|e| PortError::permanent("sidecar", "a bug", e))?;
        self.write_atomically(&self.sidecar_path(key), |f| f.write_all(&body))?;
        Ok(object_meta(key, &m, etag))
    }

    fn meta_of(&self, key: &str, path: &Path) -> PortResult<Option<ObjectMeta>> {
        let m = match fs::metadata(path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(PortError::from_io(format!("stat {key}"), e)),
        };
        let cached = fs::read(self.sidecar_path(key))
            .ok()
            .and_then(|b| serde_json::from_slice::<Sidecar>(&b).ok())
            .filter(|s| s.size == m.len() && s.modified_nanos == modified_nanos(&m));
        let etag = match cached {
            Some(s) => s.etag,
            None => {
                let mut f = fs::File::open(path)
                    .map_err(|e| PortError::from_io(format!("reading {key}"), e))?;
                let mut h = Md5::new();
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = f
                        .read(&mut buf)
                        .map_err(|e| PortError::from_io(format!("reading {key}"), e))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                hex::encode(h.finalize())
            }
        };
        Ok(Some(object_meta(key, &m, etag)))
    }

    fn walk(&self, dir: &Path, out: &mut Vec<String>) -> PortResult<()> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(PortError::from_io(format!("listing {}", dir.display()), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| PortError::from_io("listing", e))?;
            let p = entry.path();
            if p.is_dir() {
                self.walk(&p, out)?;
            } else if let Ok(rel) = p.strip_prefix(&self.root) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for FsObjectStore {
    async fn put_bytes(&self, key: &str, body: Vec<u8>) -> PortResult<ObjectMeta> {
        let path = self.path(key)?;
        self.write_atomically(&path, |f| f.write_all(&body))?;
        self.finish_put(key, &path, hex::encode(Md5::digest(&body)))
    }

    async fn put_file(&self, key: &str, source: &Path) -> PortResult<ObjectMeta> {
        let path = self.path(key)?;
        let mut h = Md5::new();
        self.write_atomically(&path, |f| {
            let mut src = fs::File::open(source)?;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = src.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                h.update(&buf[..n]);
                f.write_all(&buf[..n])?;
            }
        })?;
        self.finish_put(key, &path, hex::encode(h.finalize()))
    }

    async fn get_bytes(&self, key: &str) -> PortResult<Vec<u8>> {
        let path = self.path(key)?;
        fs::read(&path).map_err(|e| PortError::from_io(format!("object {key}"), e))
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> PortResult<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.path(key)?;
        let op = || format!("object {key}");
        let mut file = fs::File::open(&path).map_err(|e| PortError::from_io(op(), e))?;
        file.seek(SeekFrom::Start(start))
            .map_err(|e| PortError::from_io(op(), e))?;
        let mut out = Vec::new();
        file.take(len)
            .read_to_end(&mut out)
            .map_err(|e| PortError::from_io(op(), e))?;
        Ok(out)
    }

    async fn get_to_file(&self, key: &str, dest: &Path) -> PortResult<ObjectMeta> {
        let path = self.path(key)?;
        let meta = self
            .meta_of(key, &path)?
            .ok_or_else(|| PortError::NotFound {
                what: format!("object {key}"),
            })?;
        fs::copy(&path, dest).map_err(|e| PortError::from_io(format!("object {key}"), e))?;
        Ok(meta)
    }

    async fn head(&self, key: &str) -> PortResult<Option<ObjectMeta>> {
        let path = self.path(key)?;
        self.meta_of(key, &path)
    }

    async fn list(&self, prefix: &str) -> PortResult<Vec<ObjectMeta>> {
        // Walk only the folder the prefix is certainly inside.
        let dir_part = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let start = if dir_part.is_empty() {
            self.root.clone()
        } else {
            self.path(dir_part)?
        };
        let mut keys = Vec::new();
        self.walk(&start, &mut keys)?;
        keys.retain(|k| k.starts_with(prefix));
        keys.sort();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(m) = self.meta_of(&k, &self.root.join(&k))? {
                out.push(m);
            }
        }
        Ok(out)
    }

    async fn delete(&self, key: &str) -> PortResult<()> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(PortError::from_io(format!("deleting {key}"), e)),
        }
        let _ = fs::remove_file(self.sidecar_path(key));
        // Tidy empty folders so listings of deleted partitions stay empty.
        let mut dir = path.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == self.root || fs::remove_dir(&d).is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        Ok(())
    }

    async fn copy(&self, from: &str, to: &str) -> PortResult<ObjectMeta> {
        let src = self.path(from)?;
        let meta = self
            .meta_of(from, &src)?
            .ok_or_else(|| PortError::NotFound {
                what: format!("object {from}"),
            })?;
        let dest = self.path(to)?;
        self.write_atomically(&dest, |f| {
            let mut s = fs::File::open(&src)?;
            std::io::copy(&mut s, f).map(|_| ())
        })?;
        self.finish_put(to, &dest, meta.etag)
    }
}
