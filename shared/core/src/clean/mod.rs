//! Streaming CSV → typed Arrow batches → Parquet, with every rejected row kept
//! with its reason, file and line.
//!
//! Two passes over the input keep memory bounded by the batch size rather
//! than the file size: the first pass only evaluates rows and remembers, per
//! dedupe key, which row wins (latest event time; the first in the file on a
//! tie); the second pass evaluates again (deterministically) and writes. The
//! only state that grows with the input is one compact entry per distinct key
//! and one bit per row.

mod builders;
pub(crate) mod dedupe;
pub mod plan;
mod records;
pub mod temporal;

pub use plan::{CleanPlan, Rejection};

use builders::{KeptBuilders, RejectBuilders};
use dedupe::{KeyPacker, WinnerIndex};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use plan::{Cell, REASON_INVALID_UTF8, REASON_RAGGED_ROW};
use records::{Record, RecordError, RecordReader};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: the file is empty (no header line); the upstream export probably failed")]
    EmptyFile { file: String },
    #[error("{file}: line 1: header lacks required column(s) {missing:?} (header has {header:?})")]
    MissingColumns {
        file: String,
        missing: Vec<String>,
        header: Vec<String>,
    },
    #[error("{file}: line 1: unexpected column(s) {extra:?}; the dataset sets extra_columns = \"fail\" (set it to \"drop\" to ignore them)")]
    ExtraColumns { file: String, extra: Vec<String> },
    #[error("{file}: line {line}: {message}")]
    Malformed {
        file: String,
        line: u64,
        message: String,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode Parquet {path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("invalid cleaning plan: {0}")]
    Plan(String),
}

impl CleanError {
    /// Reading or writing a local file can fail transiently (disk full,
    /// interrupted download); malformed input never fixes itself.
    pub fn retryable(&self) -> bool {
        matches!(self, CleanError::Read { .. } | CleanError::Write { .. })
    }
}

/// One input file and the name it is reported under (its object key).
#[derive(Debug, Clone)]
pub struct CleanInput {
    pub path: PathBuf,
    pub source_name: String,
}

#[derive(Debug, Clone)]
pub struct CleanOptions {
    pub batch_rows: usize,
    /// 1 runs everything on the calling thread; 2 or more evaluate and encode
    /// on separate threads.
    pub threads: usize,
    /// Add reject_detail, source_file and source_line to rejected rows.
    pub reject_provenance: bool,
    pub zstd_level: i32,
}

impl Default for CleanOptions {
    fn default() -> Self {
        CleanOptions {
            batch_rows: 16_384,
            threads: 1,
            reject_provenance: true,
            zstd_level: 3,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CleanStats {
    pub input: u64,
    pub kept: u64,
    pub rejected: BTreeMap<String, u64>,
    pub rejected_total: u64,
    pub duplicates: u64,
    pub files: u64,
    pub bytes: u64,
    /// Columns present in a file but not in the dataset, dropped, per file.
    pub dropped_columns: BTreeMap<String, Vec<String>>,
}

impl CleanStats {
    /// The accounting invariant: nothing is lost.
    pub fn balanced(&self) -> bool {
        self.input == self.kept + self.rejected_total + self.duplicates
            && self.rejected_total == self.rejected.values().sum::<u64>()
    }
}

/// What the evaluation loop hands to the writer.
enum Output {
    Kept(arrow_array::RecordBatch),
    Rejected(arrow_array::RecordBatch),
}

/// Clean `inputs` (one partition: dedupe spans all of them) into
/// `kept_path` and `rejects_path`.
pub fn clean_files(
    plan: &CleanPlan,
    inputs: &[CleanInput],
    kept_path: &Path,
    rejects_path: &Path,
    opts: &CleanOptions,
) -> Result<CleanStats, CleanError> {
    let winners = if plan.key.is_empty() {
        None
    } else {
        Some(find_winners(plan, inputs)?)
    };
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(opts.zstd_level).map_err(|e| CleanError::Plan(e.to_string()))?,
        ))
        .build();
    let kept_schema = plan.kept_schema();
    let reject_schema = RejectBuilders::schema(plan, opts.reject_provenance);
    let mut kept_writer = new_writer(kept_path, kept_schema, props.clone())?;
    let mut reject_writer = new_writer(rejects_path, reject_schema, props)?;
    let mut write = |out: Output| -> Result<(), CleanError> {
        match out {
            Output::Kept(b) => kept_writer.write(&b).map_err(|source| CleanError::Parquet {
                path: kept_path.to_path_buf(),
                source,
            }),
            Output::Rejected(b) => reject_writer
                .write(&b)
                .map_err(|source| CleanError::Parquet {
                    path: rejects_path.to_path_buf(),
                    source,
                }),
        }
    };
    let stats = if opts.threads <= 1 {
        emit_rows(plan, inputs, winners.as_ref(), opts, &mut write)?
    } else {
        // Evaluation and Parquet encoding are about equally expensive: run
        // them on two threads, connected by a small bounded queue so memory
        // stays at a few batches.
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Output>(4);
            let producer = scope.spawn(|| {
                let tx = tx;
                emit_rows(plan, inputs, winners.as_ref(), opts, &mut |out| {
                    // The writer only hangs up after an error, which it reports.
                    let _ = tx.send(out);
                    Ok(())
                })
            });
            let mut write_result = Ok(());
            for out in rx {
                if write_result.is_ok() {
                    write_result = write(out);
                }
            }
            let stats = producer
                .join()
                .map_err(|_| CleanError::Plan("the evaluation thread panicked".into()))??;
            write_result.map(|_| stats)
        })?
    };
    kept_writer.close().map_err(|source| CleanError::Parquet {
        path: kept_path.to_path_buf(),
        source,
    })?;
    reject_writer
        .close()
        .map_err(|source| CleanError::Parquet {
            path: rejects_path.to_path_buf(),
            source,
        })?;
    debug_assert!(stats.balanced(), "{stats:?}");
    Ok(stats)
}

fn new_writer(
    path: &Path,
    schema: arrow_schema::SchemaRef,
    props: WriterProperties,
) -> Result<ArrowWriter<File>, CleanError> {
    let file = File::create(path).map_err(|source| CleanError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    ArrowWriter::try_new(file, schema, Some(props)).map_err(|source| CleanError::Parquet {
        path: path.to_path_buf(),
        source,
    })
}

/// Pass 1: which row wins for each key.
fn find_winners(plan: &CleanPlan, inputs: &[CleanInput]) -> Result<WinnerIndex, CleanError> {
    // Upstream exports run 50-200 bytes a row; reserving for the short end
    // costs a little memory and saves every rehash. Compressed inputs are
    // sized by their stored bytes, so they start smaller and may grow.
    let bytes: u64 = inputs
        .iter()
        .filter_map(|i| std::fs::metadata(&i.path).ok())
        .map(|m| m.len())
        .sum();
    let mut index = WinnerIndex::with_expected_rows((bytes / 64).min(64 << 20) as usize);
    let mut packer = KeyPacker::default();
    let mut cells = Vec::with_capacity(plan.columns.len());
    for_each_row(plan, inputs, |row| {
        if let RowFields::Fields(fields) = row.fields {
            if plan.evaluate(fields, &mut cells).is_ok() {
                let key = packer.pack(plan.key.iter().map(|&k| fields[k].unwrap_or_default()));
                index.offer(key, plan.event_time_of(&cells).unwrap_or(0), row.ordinal);
            }
        }
        Ok(())
    })?;
    Ok(index.into_winners())
}

/// Pass 2: evaluate every row again and emit kept and rejected batches.
fn emit_rows(
    plan: &CleanPlan,
    inputs: &[CleanInput],
    winners: Option<&WinnerIndex>,
    opts: &CleanOptions,
    sink: &mut dyn FnMut(Output) -> Result<(), CleanError>,
) -> Result<CleanStats, CleanError> {
    let mut stats = CleanStats::default();
    let mut kept = KeptBuilders::new(plan, opts.batch_rows);
    let mut rejects = RejectBuilders::new(plan, opts.reject_provenance, 1024);
    let mut cells: Vec<Cell> = Vec::with_capacity(plan.columns.len());
    let file_stats = for_each_row(plan, inputs, |row| {
        stats.input += 1;
        let outcome = match row.fields {
            RowFields::Fields(fields) => match plan.evaluate(fields, &mut cells) {
                Ok(()) => {
                    if winners.is_some_and(|w| !w.is_winner(row.ordinal)) {
                        stats.duplicates += 1;
                    } else {
                        kept.append(plan, fields, &cells);
                        stats.kept += 1;
                        if kept.len() >= opts.batch_rows {
                            sink(Output::Kept(kept.finish()))?;
                        }
                    }
                    return Ok(());
                }
                Err(rejection) => (rejection, fields.to_vec()),
            },
            RowFields::Unusable { rejection, fields } => (rejection, fields),
        };
        let (rejection, fields) = outcome;
        *stats.rejected.entry(rejection.reason.clone()).or_default() += 1;
        stats.rejected_total += 1;
        rejects.append(&fields, &rejection, row.source, row.line);
        if rejects.len() >= opts.batch_rows {
            sink(Output::Rejected(rejects.finish()))?;
        }
        Ok(())
    })?;
    if kept.len() > 0 {
        sink(Output::Kept(kept.finish()))?;
    }
    if rejects.len() > 0 {
        sink(Output::Rejected(rejects.finish()))?;
    }
    stats.files = file_stats.files;
    stats.bytes = file_stats.bytes;
    stats.dropped_columns = file_stats.dropped_columns;
    Ok(stats)
}

enum RowFields<'a> {
    /// Trimmed fields in config column order (`None`: column not in file).
    Fields(&'a [Option<&'a [u8]>]),
    /// A row that cannot be mapped onto the columns (ragged, not UTF-8).
    Unusable {
        rejection: Rejection,
        fields: Vec<Option<&'a [u8]>>,
    },
}

struct Row<'a> {
    fields: RowFields<'a>,
    source: &'a str,
    line: u64,
    /// Position among all rows of all inputs; identical in both passes.
    ordinal: u64,
}

#[derive(Default)]
struct FileStats {
    files: u64,
    bytes: u64,
    dropped_columns: BTreeMap<String, Vec<String>>,
}

fn open_input(input: &CleanInput) -> Result<Box<dyn Read + '_>, CleanError> {
    let file = File::open(&input.path).map_err(|source| CleanError::Read {
        file: input.source_name.clone(),
        source,
    })?;
    let buffered = BufReader::with_capacity(1 << 18, file);
    if input.source_name.ends_with(".gz") || input.path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(BufReader::with_capacity(
            1 << 18,
            flate2::read::MultiGzDecoder::new(buffered),
        )))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Read every row of every input, mapped onto the plan's columns.
fn for_each_row(
    plan: &CleanPlan,
    inputs: &[CleanInput],
    mut on_row: impl FnMut(Row<'_>) -> Result<(), CleanError>,
) -> Result<FileStats, CleanError> {
    let mut stats = FileStats::default();
    let mut ordinal = 0u64;
    for input in inputs {
        let file = input.source_name.as_str();
        let mut reader = RecordReader::new(open_input(input)?);
        let read_err = |e: RecordError| match e {
            RecordError::Io(source) => CleanError::Read {
                file: file.to_string(),
                source,
            },
            RecordError::TooLong { line } => CleanError::Malformed {
                file: file.to_string(),
                line,
                message: e.to_string(),
            },
        };
        let Some(header_record) = reader.next_record().map_err(read_err)? else {
            return Err(CleanError::EmptyFile {
                file: file.to_string(),
            });
        };
        let header = parse_header(&header_record);
        let source_index = map_header(plan, file, &header, &mut stats)?;
        let width = header.len();
        let mut spare_fields: Vec<Option<&[u8]>> = Vec::with_capacity(source_index.len());
        while let Some(record) = reader.next_record().map_err(read_err)? {
            let line = record.line;
            let mut fields = reuse_allocation(std::mem::take(&mut spare_fields));
            let mapped = |src: &Option<usize>| {
                src.and_then(|i| record.get(i)).map(|v| {
                    if plan.trim {
                        plan::trim_space_tab(v)
                    } else {
                        v
                    }
                })
            };
            fields.extend(source_index.iter().map(mapped));
            let row_fields = if record.len() != width {
                RowFields::Unusable {
                    rejection: Rejection {
                        reason: REASON_RAGGED_ROW.into(),
                        detail: format!(
                            "expected {width} fields, found {}: {:?}",
                            record.len(),
                            record
                                .iter()
                                .map(|f| String::from_utf8_lossy(f).into_owned())
                                .collect::<Vec<_>>()
                        ),
                    },
                    fields: fields.clone(),
                }
            } else if !record.utf8 {
                let (col, at) = first_invalid_utf8(&header, &record);
                RowFields::Unusable {
                    rejection: Rejection {
                        reason: REASON_INVALID_UTF8.into(),
                        detail: format!("column {col}: invalid UTF-8 at byte {at}"),
                    },
                    fields: fields.clone(),
                }
            } else {
                RowFields::Fields(&fields)
            };
            on_row(Row {
                fields: row_fields,
                source: file,
                line,
                ordinal,
            })?;
            ordinal += 1;
            spare_fields = reuse_allocation(fields);
        }
        stats.files += 1;
        // Bytes as stored (compressed for .gz), which is what throughput
        // and cost are measured in.
        stats.bytes += std::fs::metadata(&input.path).map_or(0, |m| m.len());
    }
    Ok(stats)
}

/// An empty vector with `fields`' allocation but a fresh lifetime, so one
/// buffer serves every record (`collect` reuses the allocation in place).
fn reuse_allocation<'b>(mut fields: Vec<Option<&[u8]>>) -> Vec<Option<&'b [u8]>> {
    fields.clear();
    fields.into_iter().map(|_| None).collect()
}

fn parse_header(record: &Record<'_>) -> Vec<String> {
    record
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let f = if i == 0 {
                f.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(f)
            } else {
                f
            };
            String::from_utf8_lossy(plan::trim_space_tab(f)).into_owned()
        })
        .collect()
}

/// For each plan column, its index in the file (or None when absent).
fn map_header(
    plan: &CleanPlan,
    file: &str,
    header: &[String],
    stats: &mut FileStats,
) -> Result<Vec<Option<usize>>, CleanError> {
    let index: Vec<Option<usize>> = plan
        .columns
        .iter()
        .map(|c| header.iter().position(|h| *h == c.name))
        .collect();
    let missing: Vec<String> = plan
        .columns
        .iter()
        .zip(&index)
        .filter(|(c, i)| c.required && i.is_none())
        .map(|(c, _)| c.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(CleanError::MissingColumns {
            file: file.to_string(),
            missing,
            header: header.to_vec(),
        });
    }
    let extra: Vec<String> = header
        .iter()
        .filter(|h| !plan.column_names().any(|c| c == h.as_str()))
        .cloned()
        .collect();
    if !extra.is_empty() {
        if plan.fail_on_extra_columns {
            return Err(CleanError::ExtraColumns {
                file: file.to_string(),
                extra,
            });
        }
        stats.dropped_columns.insert(file.to_string(), extra);
    }
    Ok(index)
}

fn first_invalid_utf8(header: &[String], record: &Record<'_>) -> (String, usize) {
    for (i, f) in record.iter().enumerate() {
        if let Err(e) = std::str::from_utf8(f) {
            let name = header.get(i).cloned().unwrap_or_else(|| format!("#{i}"));
            return (name, e.valid_up_to());
        }
    }
    ("?".into(), 0)
}

#[cfg(test)]
mod tests;
