//! Atomic partition publication: readers follow one manifest per partition,
//! which a publish replaces in a single put.
//!
//! Overwrite and append runs write their parts straight into their own
//! prefix `cleaned/<ds>/date=D/run=<id>/`, which nothing points at until
//! publication; a merge run stages them under `_staging/run=<id>/`.
//! Publishing composes the run's final files in its prefix (holding exactly
//! the published files, so a catalog reader listing the location sees
//! nothing else: the run's own parts stay where they are, an append copies
//! the published files it keeps, a merge writes its merged file), then writes the
//! partition's `_manifest.json` (one atomic put), then switches the catalog
//! partition's location to the run prefix. Until the
//! manifest is replaced, readers keep seeing the previous run in full; after,
//! the new run in full. A writer that dies anywhere before the manifest put
//! leaves the old publication untouched and only an orphan run prefix behind,
//! which the retention sweep removes.
//!
//! Output modes: `overwrite` publishes the run's files; `append` publishes
//! every raw file's rows exactly once: the run cleans only raw files that no
//! published file holds yet (new names, and new versions of a name, which
//! replace that name's rows), copies the published files it keeps into its
//! prefix and adds its own (each manifest file names the raw files it holds);
//! `merge` rewrites previous rows whose key reappears (upsert) into one file.

use crate::config::OutputMode;
use crate::keys::{value_keys, KeyPacker};
use crate::layout::{file_name, manifest_key, run_prefix, Layer};
use crate::ports::{ObjectMeta, ObjectStore, PortError};
use arrow_array::{BooleanArray, RecordBatch};
use chrono::{DateTime, NaiveDate, Utc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub key: String,
    pub size: u64,
    pub etag: String,
    /// The raw files whose rows this file holds (absent in manifests
    /// written before it was recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceFile>,
    /// Rows in this file, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

/// One version of a raw file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    pub key: String,
    pub etag: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub dataset: String,
    pub date: NaiveDate,
    pub run_id: String,
    /// Where the catalog points; every file below is under it.
    pub location: String,
    pub files: Vec<ManifestFile>,
    pub rows: u64,
    pub mode: String,
    pub previous_run: Option<String>,
    pub published_at: DateTime<Utc>,
}

/// What a run cleaned and, in append mode, which published files it keeps
/// (decided when it is cleaned, applied when it is published), so every raw
/// file's rows are published exactly once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSources {
    /// The published run the plan was made against.
    pub base_run: Option<String>,
    /// Raw files the run cleaned. Append mode: new ones, new versions of a
    /// name, and the other sources of a published file that held a replaced
    /// one; other modes: every data file of the date.
    pub cleaned: Vec<SourceFile>,
    /// Append mode: published files carried over unchanged.
    pub kept: Vec<ManifestFile>,
    /// Merge mode, cleaned in ranges: the run's parts, in its own prefix,
    /// already hold the rows of `base_run` that no new row replaces, and
    /// are published as they are.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub merged_in_clean: bool,
}

/// Whether publish still has to merge a run's parts with the published rows
/// (a merge run cleaned by one function): those parts are staged. Every
/// other run's parts are final in the run's own prefix.
pub fn publish_merges(mode: OutputMode, sources: Option<&RunSources>) -> bool {
    mode == OutputMode::Merge && !sources.is_some_and(|s| s.merged_in_clean)
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("manifest {key} is not valid JSON: {source}")]
    CorruptManifest {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("merging {dataset} {date}: {message} (if the schema changed on purpose, publish once with output_mode = \"overwrite\")")]
    Merge {
        dataset: String,
        date: NaiveDate,
        message: String,
    },
    #[error("{dataset} {date}: this run was planned against published run {planned_against:?}, but {published:?} is published now; run the date again so the new files are planned against it")]
    Superseded {
        dataset: String,
        date: NaiveDate,
        planned_against: Option<String>,
        published: Option<String>,
    },
    #[error("{key}: not a readable Parquet file: {message}")]
    NotParquet { key: String, message: String },
    #[error("scratch file {path}: {source}")]
    Scratch {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl PublishError {
    pub fn retryable(&self) -> bool {
        match self {
            PublishError::Port(e) => e.retryable(),
            PublishError::Scratch { .. } => true,
            _ => false,
        }
    }
}

pub async fn read_manifest(
    objects: &dyn ObjectStore,
    dataset: &str,
    date: NaiveDate,
) -> Result<Option<Manifest>, PublishError> {
    let key = manifest_key(Layer::Cleaned, dataset, date);
    match objects.get_bytes(&key).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| PublishError::CorruptManifest { key, source }),
        Err(PortError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub struct PublishRequest<'a> {
    pub dataset: &'a str,
    pub date: NaiveDate,
    pub run_id: &'a str,
    pub mode: OutputMode,
    pub key_columns: &'a [String],
    /// The run's staged data files (under its staging prefix).
    pub staged: Vec<ObjectMeta>,
    pub staged_rows: u64,
    /// What the run cleaned into its staged files and, in append mode,
    /// which published files it keeps (None: a run cleaned by a version
    /// that did not record it; append then keeps every published file).
    pub sources: Option<&'a RunSources>,
}

/// Build the run's final file set for the output mode and switch the
/// manifest to it. Idempotent: publishing the already-published run again
/// changes nothing.
pub async fn publish_run(
    objects: &dyn ObjectStore,
    scratch: &Path,
    req: PublishRequest<'_>,
) -> Result<Manifest, PublishError> {
    let previous = read_manifest(objects, req.dataset, req.date).await?;
    if let Some(p) = &previous {
        if p.run_id == req.run_id {
            return Ok(p.clone());
        }
    }
    let location = run_prefix(Layer::Cleaned, req.dataset, req.date, req.run_id);
    // A publish retried after copying the kept files of an append finds
    // them in the run's prefix beside the cleaned parts: they are not the
    // run's own rows.
    let mut req = req;
    req.staged.retain(|f| {
        !(f.key.starts_with(&location) && file_name(&f.key).starts_with(PREVIOUS_PREFIX))
    });
    let mut files: Vec<ManifestFile> = Vec::new();
    // One staged file (the cleaner writes one) holds all the run's rows.
    let staged_file_rows = (req.staged.len() == 1).then_some(req.staged_rows);
    let published = |meta: ObjectMeta, sources: Vec<SourceFile>, rows: Option<u64>| ManifestFile {
        key: meta.key,
        size: meta.size,
        etag: meta.etag,
        sources,
        rows,
    };
    let cleaned_sources = req.sources.map(|s| s.cleaned.clone()).unwrap_or_default();
    let merged_in_clean = req.sources.is_some_and(|s| s.merged_in_clean);
    // What a run decided against one publication is wrong against another:
    // the files an append keeps, the previous rows a merge in ranges kept.
    let current = previous.as_ref().map(|p| p.run_id.clone());
    if let Some(plan) = req.sources {
        let planned = req.mode == OutputMode::Append || merged_in_clean;
        if planned && plan.base_run != current {
            return Err(PublishError::Superseded {
                dataset: req.dataset.to_string(),
                date: req.date,
                planned_against: plan.base_run.clone(),
                published: current,
            });
        }
    }
    if req.mode == OutputMode::Append {
        // The published files the run keeps: its plan's; a run cleaned
        // without a plan keeps all.
        let kept = match (req.sources, &previous) {
            (Some(plan), _) => plan.kept.as_slice(),
            (None, Some(prev)) => prev.files.as_slice(),
            (None, None) => &[],
        };
        for (i, f) in kept.iter().enumerate() {
            let dest = format!("{location}{PREVIOUS_PREFIX}{i:04}-{}", file_name(&f.key));
            let meta = objects.copy(&f.key, &dest).await?;
            files.push(published(meta, f.sources.clone(), f.rows));
        }
    }
    let merged_sources = |prev: &Manifest| {
        let mut sources: Vec<SourceFile> = prev
            .files
            .iter()
            .flat_map(|f| f.sources.iter().cloned())
            .filter(|s| !cleaned_sources.iter().any(|n| n.key == s.key))
            .collect();
        sources.extend(cleaned_sources.iter().cloned());
        sources
    };
    match (req.mode, &previous) {
        (OutputMode::Merge, Some(prev)) if merged_in_clean => {
            // The parts hold the previous rows they keep: published where
            // they are, each naming every source of the date.
            let sources = merged_sources(prev);
            for f in &req.staged {
                files.push(published(f.clone(), sources.clone(), None));
            }
        }
        (OutputMode::Overwrite | OutputMode::Append, _) | (OutputMode::Merge, None) => {
            for f in &req.staged {
                // Parts the cleaner wrote into the run's prefix are
                // published where they are; only staged ones are copied.
                let meta = if f.key.starts_with(&location) {
                    f.clone()
                } else {
                    objects
                        .copy(&f.key, &format!("{location}{}", file_name(&f.key)))
                        .await?
                };
                files.push(published(meta, cleaned_sources.clone(), staged_file_rows));
            }
        }
        (OutputMode::Merge, Some(prev)) => {
            let (meta, merged_rows) = merge(objects, scratch, &req, prev, &location).await?;
            files = vec![published(meta, merged_sources(prev), Some(merged_rows))];
        }
    }
    // The manifest counts every file's rows: from its footer where no step
    // counted them (parts of a run cleaned in ranges, files of old manifests).
    for f in files.iter_mut().filter(|f| f.rows.is_none()) {
        let (_, footer) = parquet_footer(objects, &f.key, f.size).await?;
        f.rows = Some(
            decode_parquet_footer(&f.key, &footer)?
                .file_metadata()
                .num_rows() as u64,
        );
    }
    let rows = files.iter().filter_map(|f| f.rows).sum();
    let manifest = Manifest {
        dataset: req.dataset.to_string(),
        date: req.date,
        run_id: req.run_id.to_string(),
        location,
        files,
        rows,
        mode: format!("{:?}", req.mode).to_lowercase(),
        previous_run: previous.map(|p| p.run_id),
        published_at: Utc::now(),
    };
    let body = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| PortError::permanent("encoding manifest", "a bug", e))?;
    // The switch: one atomic object write.
    objects
        .put_bytes(&manifest_key(Layer::Cleaned, req.dataset, req.date), body)
        .await?;
    Ok(manifest)
}

/// The last bytes of a Parquet object fetched to read its footer; a longer
/// footer is fetched again whole.
const PARQUET_FOOTER_PROBE_BYTES: u64 = 64 << 10;

/// The end of a Parquet object that holds its footer (metadata, length and
/// magic): where it starts, and its bytes. One ranged read, two for a
/// footer longer than 64 KiB.
pub(crate) async fn parquet_footer(
    objects: &dyn ObjectStore,
    key: &str,
    size: u64,
) -> Result<(u64, Vec<u8>), PublishError> {
    let not_parquet = |message: String| PublishError::NotParquet {
        key: key.to_string(),
        message,
    };
    let probe = PARQUET_FOOTER_PROBE_BYTES.min(size);
    let tail = objects.get_range(key, size - probe, probe).await?;
    let need = crate::clean::distributed::parquet_footer_bytes(&tail)
        .ok_or_else(|| not_parquet("it does not end with a Parquet footer".into()))?;
    if need <= probe {
        let cut = (probe - need) as usize;
        return Ok((size - need, tail[cut..].to_vec()));
    }
    let start = size
        .checked_sub(need)
        .ok_or_else(|| not_parquet(format!("its footer claims {need} bytes of {size}")))?;
    Ok((start, objects.get_range(key, start, need).await?))
}

/// A Parquet object's metadata from its footer's bytes.
pub(crate) fn decode_parquet_footer(
    key: &str,
    footer: &[u8],
) -> Result<parquet::file::metadata::ParquetMetaData, PublishError> {
    let metadata = &footer[..footer.len().saturating_sub(8)];
    parquet::file::metadata::ParquetMetaDataReader::decode_metadata(metadata).map_err(|e| {
        PublishError::NotParquet {
            key: key.to_string(),
            message: e.to_string(),
        }
    })
}

/// The name prefix of published files an append run keeps, copied into
/// its prefix.
const PREVIOUS_PREFIX: &str = "prev-";

/// Which raw files an append run cleans, and which published files it
/// keeps, so every raw file's rows are published exactly once: a published
/// file is kept while none of its sources was replaced by a new version;
/// every raw file no kept file holds is cleaned. When nothing is new (a
/// forced re-run) the date is rebuilt from raw, keeping only published
/// files whose raw files are gone (deleted by retention). Files of
/// manifests that did not record their sources are rebuilt from raw.
pub fn plan_append(raw: &[SourceFile], previous: Option<&Manifest>) -> RunSources {
    let current = |key: &str| raw.iter().find(|r| r.key == key);
    let published = previous.map_or(&[][..], |m| m.files.as_slice());
    let unchanged = |f: &ManifestFile| {
        !f.sources.is_empty()
            && f.sources
                .iter()
                .all(|s| current(&s.key).is_none_or(|r| r.etag == s.etag))
    };
    let mut kept: Vec<ManifestFile> = published.iter().filter(|f| unchanged(f)).cloned().collect();
    let held = |r: &SourceFile, kept: &[ManifestFile]| kept.iter().any(|f| f.sources.contains(r));
    let mut cleaned: Vec<SourceFile> = raw.iter().filter(|r| !held(r, &kept)).cloned().collect();
    if cleaned.is_empty() {
        kept.retain(|f| f.sources.iter().all(|s| current(&s.key).is_none()));
        cleaned = raw.to_vec();
    }
    RunSources {
        base_run: previous.map(|m| m.run_id.clone()),
        cleaned,
        kept,
        merged_in_clean: false,
    }
}

fn remove_scratch(path: &Path) -> Result<(), PublishError> {
    std::fs::remove_file(path).map_err(|source| PublishError::Scratch {
        path: path.display().to_string(),
        source,
    })
}

/// Upsert: previous rows whose key appears in the new run are replaced.
/// Memory: the new run's keys, plus one batch at a time.
async fn merge(
    objects: &dyn ObjectStore,
    scratch: &Path,
    req: &PublishRequest<'_>,
    prev: &Manifest,
    location: &str,
) -> Result<(ObjectMeta, u64), PublishError> {
    let fail = |message: String| PublishError::Merge {
        dataset: req.dataset.to_string(),
        date: req.date,
        message,
    };
    let mut packer = KeyPacker::default();
    let mut new_local = Vec::new();
    for (i, f) in req.staged.iter().enumerate() {
        let p = scratch.join(format!("merge-new-{i}.parquet"));
        objects.get_to_file(&f.key, &p).await?;
        new_local.push(p);
    }
    let mut old_local = Vec::new();
    for (i, f) in prev.files.iter().enumerate() {
        let p = scratch.join(format!("merge-old-{i}.parquet"));
        objects.get_to_file(&f.key, &p).await?;
        old_local.push(p);
    }
    let read_batches =
        |path: &Path| -> Result<(arrow_schema::SchemaRef, Vec<RecordBatch>), String> {
            let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| e.to_string())?;
            let schema = builder.schema().clone();
            let batches = builder
                .build()
                .map_err(|e| e.to_string())?
                .map(|b| b.map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((schema, batches))
        };
    let mut new_keys = HashSet::new();
    let mut schema = None;
    for p in &new_local {
        let (s, batches) = read_batches(p).map_err(fail)?;
        schema.get_or_insert(s);
        for batch in batches {
            new_keys.extend(value_keys(&batch, req.key_columns, &mut packer).map_err(fail)?);
        }
    }
    let schema = schema.ok_or_else(|| fail("the run staged no files".into()))?;
    let merged_path = scratch.join("merged.parquet");
    let file = std::fs::File::create(&merged_path).map_err(|source| PublishError::Scratch {
        path: merged_path.display().to_string(),
        source,
    })?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut writer =
        ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| fail(e.to_string()))?;
    let mut rows = 0u64;
    let schema_changed = |e: parquet::errors::ParquetError| {
        fail(format!("previous and new data differ in schema: {e}"))
    };
    for p in &old_local {
        for batch in read_batches(p).map_err(fail)?.1 {
            let keys = value_keys(&batch, req.key_columns, &mut packer).map_err(fail)?;
            let keep: BooleanArray = keys.iter().map(|k| Some(!new_keys.contains(k))).collect();
            let filtered = arrow_select::filter::filter_record_batch(&batch, &keep)
                .map_err(|e| fail(e.to_string()))?;
            rows += filtered.num_rows() as u64;
            writer.write(&filtered).map_err(schema_changed)?;
        }
    }
    for p in &new_local {
        for batch in read_batches(p).map_err(fail)?.1 {
            rows += batch.num_rows() as u64;
            writer.write(&batch).map_err(schema_changed)?;
        }
    }
    writer.close().map_err(|e| fail(e.to_string()))?;
    let meta = objects
        .put_file(&format!("{location}part-merged.parquet"), &merged_path)
        .await?;
    for p in new_local
        .iter()
        .chain(&old_local)
        .chain(std::iter::once(&merged_path))
    {
        remove_scratch(p)?;
    }
    Ok((meta, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(key: &str, etag: &str) -> SourceFile {
        SourceFile {
            key: key.into(),
            etag: etag.into(),
        }
    }

    fn file(key: &str, sources: Vec<SourceFile>) -> ManifestFile {
        ManifestFile {
            key: key.into(),
            size: 1,
            etag: "x".into(),
            sources,
            rows: Some(1),
        }
    }

    fn manifest(files: Vec<ManifestFile>) -> Manifest {
        Manifest {
            dataset: "d".into(),
            date: NaiveDate::from_ymd_opt(2025, 12, 3).unwrap(),
            run_id: "r1".into(),
            location: "l/".into(),
            files,
            rows: 0,
            mode: "append".into(),
            previous_run: None,
            published_at: Utc::now(),
        }
    }

    #[test]
    fn append_cleans_only_what_no_published_file_holds() {
        let m = manifest(vec![
            file("p0", vec![src("a", "1"), src("b", "1")]),
            file("p1", vec![src("c", "1")]),
        ]);
        // A new file: only it is cleaned; both published files are kept.
        let plan = plan_append(
            &[src("a", "1"), src("b", "1"), src("c", "1"), src("d", "1")],
            Some(&m),
        );
        assert_eq!(plan.cleaned, vec![src("d", "1")]);
        assert_eq!(plan.kept.len(), 2);
        assert_eq!(plan.base_run.as_deref(), Some("r1"));
        // b replaced: p0 is dropped, a (its other source) is cleaned again.
        let plan = plan_append(&[src("a", "1"), src("b", "2"), src("c", "1")], Some(&m));
        assert_eq!(plan.cleaned, vec![src("a", "1"), src("b", "2")]);
        assert_eq!(plan.kept, vec![m.files[1].clone()]);
        // Nothing new (a forced re-run): rebuilt from raw; a file whose raw
        // file is gone (retention) is kept.
        let plan = plan_append(&[src("a", "1"), src("b", "1")], Some(&m));
        assert_eq!(plan.cleaned, vec![src("a", "1"), src("b", "1")]);
        assert_eq!(plan.kept, vec![m.files[1].clone()]);
        // Files of a manifest that did not record sources are rebuilt.
        let legacy = manifest(vec![file("old", vec![])]);
        let plan = plan_append(&[src("a", "1")], Some(&legacy));
        assert_eq!((plan.cleaned.len(), plan.kept.len()), (1, 0));
        // First publication.
        let plan = plan_append(&[src("a", "1")], None);
        assert_eq!(
            (plan.cleaned.len(), plan.kept.len(), plan.base_run),
            (1, 0, None)
        );
    }
}
