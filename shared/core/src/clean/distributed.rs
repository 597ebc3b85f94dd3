//! The distributed clean's pure steps: cutting raw files into byte ranges
//! that separate workers clean from ranged reads, checking that the ranges
//! met where they should, and resolving one dedupe bucket. Together they
//! give exactly what [`super::clean_files`] gives for the same inputs: the
//! same kept rows, the same rejects at the same lines, the same counts.
//!
//! A range worker reads the records that *start* in its range: the first
//! begins after the first line break at or after the byte before the range
//! (or right after the header), the last is the one that starts before the
//! range's end, read to its end however far that is. Without quoted line
//! breaks, range i therefore ends exactly where range i + 1 begins. A
//! quoted line break right after a cut makes the next range start inside a
//! field; the range before it then ends somewhere else, and the two are
//! cleaned again as one ([`check_boundaries`]), the rule the single-process
//! cleaner applies within a file. Only a range whose start is known to be a
//! record's start is trusted, so an error or a boundary is believed only
//! along a chain of met boundaries from the file's first range.
//!
//! Valid rows leave a range hash-partitioned by their dedupe key into
//! buckets, each row with its packed key, the event time dedupe compares
//! and its position in the input (range, then row), so a bucket resolves
//! every key it holds alone ([`resolve_bucket`]): the latest event time
//! wins, on a tie the row earlier in the input.

use super::builders::RejectBuilders;
use super::dedupe::{row_id, PackedKeyHasher};
use super::plan::Cell;
use super::{
    parse_range, CleanError, CleanInput, CleanOptions, CleanPlan, CleanStats, FileStats, Range,
    SourceFile,
};
use crate::keys::{value_keys, KeyPacker};
use arrow_array::{
    Array, ArrayRef, FixedSizeBinaryArray, Int64Array, RecordBatch, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;
use std::sync::Arc;

/// The first bytes of a file a worker fetches to read its header.
pub const HEADER_PROBE_BYTES: u64 = 64 << 10;

/// Columns a bucket row carries besides the kept ones.
pub const KEY_COLUMN: &str = "__tributary_key";
pub const TIME_COLUMN: &str = "__tributary_event_time";
pub const ROW_COLUMN: &str = "__tributary_row";

/// One byte range of one raw file: a line of the ranges manifest. A range
/// cleaned again together with its neighbours covers planned ranges
/// `range..=last`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeTask {
    pub range: u32,
    pub last: u32,
    /// The file's position among the partition's raw files (listing order).
    pub file: u32,
    pub key: String,
    pub start: u64,
    /// Exclusive; a compressed file's range is the whole file.
    pub end: u64,
    /// The file's size.
    pub size: u64,
    pub compressed: bool,
}

impl RangeTask {
    /// A name for the range's outputs; a merged range has its own, so its
    /// outputs never mix with the ones it replaces.
    pub fn id(&self) -> String {
        if self.range == self.last {
            format!("{:06}", self.range)
        } else {
            format!("{:06}-{:06}", self.range, self.last)
        }
    }

    /// The bytes a worker fetches first: from the byte before its start
    /// (a record starts at the range's start only after a line break) to
    /// `tail` bytes past its end, where the last record usually ends.
    pub fn fetch_span(&self, tail: u64) -> (u64, u64) {
        if self.compressed {
            return (0, self.size);
        }
        (
            self.start.saturating_sub(1),
            self.end.saturating_add(tail).min(self.size),
        )
    }

    fn covers(&self, other: &RangeTask) -> bool {
        self.range <= other.range && other.last <= self.last
    }
}

/// Merge mode: a file of the publication the run was planned against, or
/// some of its row groups, whose rows go into the run's buckets so each
/// bucket replaces the previous rows whose key its new rows hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousTask {
    /// The task's place among the run's previous tasks.
    pub previous: u32,
    pub key: String,
    pub size: u64,
    /// Row groups `first..=last` and the bytes `[start, end)` they take;
    /// None: the whole file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_groups: Option<RowGroupSpan>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowGroupSpan {
    pub first: usize,
    pub last: usize,
    pub start: u64,
    pub end: u64,
}

impl PreviousTask {
    pub fn id(&self) -> String {
        format!("p{:05}", self.previous)
    }
}

/// One line of the ranges manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CleanItem {
    Range(RangeTask),
    Previous(PreviousTask),
}

/// Bytes at a Parquet file's end that hold its footer's length and magic.
pub const PARQUET_TAIL_BYTES: u64 = 8;

/// How many bytes at the end of a Parquet file its footer takes (metadata,
/// length and magic), from at least its last 8 bytes; None when they are
/// not a Parquet file's end.
pub fn parquet_footer_bytes(tail: &[u8]) -> Option<u64> {
    let n = tail.len();
    if n < 8 || &tail[n - 4..] != b"PAR1" {
        return None;
    }
    let len = u32::from_le_bytes(tail[n - 8..n - 4].try_into().ok()?);
    Some(u64::from(len) + PARQUET_TAIL_BYTES)
}

/// Consecutive row groups grouped into spans of about `budget` compressed
/// bytes (a row group larger than that is a span of its own).
pub fn row_group_spans(
    metadata: &parquet::file::metadata::ParquetMetaData,
    budget: u64,
) -> Vec<RowGroupSpan> {
    let mut spans: Vec<RowGroupSpan> = Vec::new();
    for (i, rg) in metadata.row_groups().iter().enumerate() {
        let (start, end) = rg.columns().iter().fold((u64::MAX, 0u64), |(s, e), c| {
            let (at, len) = c.byte_range();
            (s.min(at), e.max(at + len))
        });
        if start >= end {
            continue;
        }
        match spans.last_mut() {
            Some(span) if end - span.start <= budget => {
                span.last = i;
                span.end = end;
            }
            _ => spans.push(RowGroupSpan {
                first: i,
                last: i,
                start,
                end,
            }),
        }
    }
    spans
}

/// The rows of a Parquet file's row groups `groups` (all when None) from
/// `local`, a copy holding at least those groups and the footer at their
/// offsets; the file's schema must be `expected` (merge adds previous
/// rows to new ones).
pub fn read_row_groups(
    local: &Path,
    groups: Option<RowGroupSpan>,
    expected: &SchemaRef,
    name: &str,
) -> Result<Vec<RecordBatch>, CleanError> {
    let unreadable = |e: parquet::errors::ParquetError| {
        CleanError::Input(format!("{name}: cannot read the published file: {e}"))
    };
    let file = std::fs::File::open(local).map_err(|source| CleanError::Read {
        file: name.to_string(),
        source,
    })?;
    let mut builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(unreadable)?;
    let differs = |have: &Schema| {
        let shape = |s: &Schema| -> Vec<(String, DataType)> {
            s.fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect()
        };
        shape(have) != shape(expected)
    };
    if differs(builder.schema()) {
        return Err(CleanError::Input(format!(
            "{name}: previous and new data differ in schema: published {:?}, cleaned now {:?}",
            builder.schema().fields(),
            expected.fields()
        )));
    }
    if let Some(g) = groups {
        builder = builder.with_row_groups((g.first..=g.last).collect());
    }
    builder
        .build()
        .map_err(unreadable)?
        .map(|b| b.map_err(|e| CleanError::Input(format!("{name}: {e}"))))
        .collect()
}

/// Rows split into `buckets` by their key's stored values ([`value_keys`]),
/// the key merge matches previous rows on: a new row and the previous row
/// it replaces meet in one bucket, and so do rows one dedupe key holds.
pub fn bucket_by_values(
    batches: &[RecordBatch],
    key_columns: &[String],
    buckets: u32,
) -> Result<Vec<Vec<RecordBatch>>, CleanError> {
    let mut out = vec![Vec::new(); buckets.max(1) as usize];
    let mut packer = KeyPacker::default();
    for batch in batches {
        let keys = value_keys(batch, key_columns, &mut packer).map_err(CleanError::Plan)?;
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); out.len()];
        for (i, k) in keys.into_iter().enumerate() {
            rows[bucket_of(k, buckets) as usize].push(i as u32);
        }
        for (b, indices) in rows.into_iter().enumerate() {
            if indices.is_empty() {
                continue;
            }
            let indices = UInt32Array::from(indices);
            let columns = batch
                .columns()
                .iter()
                .map(|c| arrow_select::take::take(c.as_ref(), &indices, None))
                .collect::<Result<Vec<ArrayRef>, _>>()
                .map_err(|e| CleanError::Plan(format!("splitting rows into buckets: {e}")))?;
            out[b].push(
                RecordBatch::try_new(batch.schema(), columns)
                    .map_err(|e| CleanError::Plan(format!("splitting rows into buckets: {e}")))?,
            );
        }
    }
    Ok(out)
}

/// Merge: the previous rows no new row replaces (none holds their key), and
/// how many they are.
pub fn previous_rows_kept(
    new_rows: &[RecordBatch],
    previous: &[RecordBatch],
    key_columns: &[String],
) -> Result<(Vec<RecordBatch>, u64), CleanError> {
    let mut packer = KeyPacker::default();
    let mut replaced =
        std::collections::HashSet::<u128, BuildHasherDefault<PackedKeyHasher>>::default();
    for batch in new_rows {
        replaced.extend(value_keys(batch, key_columns, &mut packer).map_err(CleanError::Plan)?);
    }
    let mut kept = Vec::with_capacity(previous.len());
    let mut rows = 0u64;
    for batch in previous {
        let keys = value_keys(batch, key_columns, &mut packer).map_err(CleanError::Plan)?;
        let keep: arrow_array::BooleanArray =
            keys.iter().map(|k| Some(!replaced.contains(k))).collect();
        let filtered = arrow_select::filter::filter_record_batch(batch, &keep)
            .map_err(|e| CleanError::Plan(format!("filtering replaced rows: {e}")))?;
        rows += filtered.num_rows() as u64;
        if filtered.num_rows() > 0 {
            kept.push(filtered);
        }
    }
    Ok((kept, rows))
}

/// Whether a raw file's name says it is gzip (one range: not splittable).
pub fn is_compressed(key: &str) -> bool {
    key.ends_with(".gz")
}

/// Cut every file into ranges of `range_bytes` (a compressed file is one).
/// `files` are (key, size) in the order the single-process clean reads them.
pub fn cut_ranges(files: &[(String, u64)], range_bytes: u64) -> Vec<RangeTask> {
    let range_bytes = range_bytes.max(1);
    let mut tasks = Vec::new();
    for (file, (key, size)) in files.iter().enumerate() {
        let compressed = is_compressed(key);
        let mut start = 0u64;
        loop {
            let end = if compressed {
                *size
            } else {
                start.saturating_add(range_bytes).min(*size)
            };
            let range = tasks.len() as u32;
            tasks.push(RangeTask {
                range,
                last: range,
                file: file as u32,
                key: key.clone(),
                start,
                end,
                size: *size,
                compressed,
            });
            start = end;
            if start >= *size {
                break;
            }
        }
    }
    tasks
}

/// An input error found in a range, kept for the boundary check: it is
/// real only if the range started where a record starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeFailure {
    /// The line within the range (0: its first record), for errors at a line.
    pub line: Option<u64>,
    /// The error as the single-process clean words it, line left out.
    pub message: String,
}

/// What a range worker reports: where its records began and ended, how
/// many lines it read, its counts before dedupe, or the input error it met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeSummary {
    pub task: RangeTask,
    /// Where its first record started and its last one ended.
    pub first: u64,
    pub end: u64,
    pub lines: u64,
    /// The line the file's first data record is on (after the header).
    pub data_line: u64,
    /// Counts before dedupe: `kept` is every valid row.
    pub stats: CleanStats,
    pub failure: Option<RangeFailure>,
    /// No record starts in the range: its boundaries are its neighbours'.
    #[serde(default)]
    pub empty: bool,
}

/// A cleaned range: its summary, its valid rows by bucket (with the
/// columns dedupe needs), and its rejects with lines counted from the
/// range's first record.
pub struct CleanedRange {
    pub summary: RangeSummary,
    pub buckets: Vec<Vec<RecordBatch>>,
    pub rejects: Vec<RecordBatch>,
}

/// What a worker's bytes were enough for.
pub enum RangeRead {
    Cleaned(Box<CleanedRange>),
    /// The range's records run past the fetched bytes: fetch up to here.
    NeedBytes {
        through: u64,
    },
}

/// The schema of a bucket file: the kept columns, then key, event time and
/// position.
pub fn bucket_schema(plan: &CleanPlan) -> SchemaRef {
    let mut fields: Vec<Field> = plan
        .kept_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(KEY_COLUMN, DataType::FixedSizeBinary(16), false));
    fields.push(Field::new(TIME_COLUMN, DataType::Int64, false));
    fields.push(Field::new(ROW_COLUMN, DataType::UInt64, false));
    Arc::new(Schema::new(fields))
}

/// A valid row's position in the input: its range, then its place among
/// the range's valid rows (ordered as the rows are in the files).
pub fn position(range: u32, index: u64) -> u64 {
    row_id(range as usize, index)
}

/// The bucket of a packed key, out of `buckets`.
pub fn bucket_of(key: u128, buckets: u32) -> u32 {
    let mut h = PackedKeyHasher::default();
    h.write_u128(key);
    // The high bits: the dedupe table inside a worker uses the low ones.
    ((h.finish() >> 32) % u64::from(buckets.max(1))) as u32
}

/// Clean one range from `local`: a sparse copy of the file holding its
/// first bytes (the header) and the bytes `fetched` (file offsets, end
/// exclusive) at their own offsets. `buckets` = 0 keeps the valid rows as
/// they are (a dataset without a key needs no shuffle).
pub fn clean_range(
    plan: &CleanPlan,
    task: &RangeTask,
    local: &Path,
    fetched: (u64, u64),
    buckets: u32,
    opts: &CleanOptions,
) -> Result<RangeRead, CleanError> {
    let input = CleanInput {
        path: local.to_path_buf(),
        source_name: task.key.clone(),
    };
    let mut file_stats = FileStats::default();
    let failed = |data_line: u64, failure: RangeFailure| {
        RangeRead::Cleaned(Box::new(CleanedRange {
            summary: RangeSummary {
                task: task.clone(),
                first: task.start,
                end: task.start,
                lines: 0,
                data_line,
                stats: CleanStats::default(),
                failure: Some(failure),
                empty: false,
            },
            buckets: vec![],
            rejects: vec![],
        }))
    };
    let source = match SourceFile::open(plan, &input, &mut file_stats) {
        Ok(s) => s,
        Err(e) if e.retryable() => return Err(e),
        Err(e) => {
            return Ok(failed(
                1,
                RangeFailure {
                    line: None,
                    message: e.to_string(),
                },
            ))
        }
    };
    let more = |through: u64| RangeRead::NeedBytes {
        through: through.min(task.size),
    };
    let grow = |to: u64| more(to.saturating_add(fetched.1 - fetched.0).max(to + (1 << 20)));
    if !task.compressed && source.data_start > HEADER_PROBE_BYTES && fetched.0 > HEADER_PROBE_BYTES
    {
        return Err(CleanError::Malformed {
            file: task.key.clone(),
            line: 1,
            message: format!(
                "the header is longer than {HEADER_PROBE_BYTES} bytes; a range worker reads only that much of it"
            ),
        });
    }
    let first = if task.compressed || task.start <= source.data_start {
        source.data_start.max(task.start)
    } else {
        // A record starts in the range only after a line break in it (or
        // right before it); none means a record longer than the range
        // covers it, which the ranges around it account for.
        let from = task.start - 1;
        let until = task.end.min(fetched.1);
        if until < task.end {
            return Ok(grow(fetched.1));
        }
        let handle = std::fs::File::open(local).map_err(|e| source.read_err(e))?;
        let mut probe = vec![0u8; 64 << 10];
        let mut at = from;
        let mut found = None;
        while at < until {
            let want = probe.len().min((until - at) as usize);
            let n =
                super::read_at(&handle, &mut probe[..want], at).map_err(|e| source.read_err(e))?;
            if n == 0 {
                break;
            }
            if let Some(i) = memchr::memchr(b'\n', &probe[..n]) {
                found = Some(at + i as u64 + 1);
                break;
            }
            at += n as u64;
        }
        match found {
            Some(first) => first,
            None => return Ok(RangeRead::Cleaned(Box::new(empty_range(task, &source)))),
        }
    };
    let range = if task.compressed {
        source.whole_range(0)
    } else {
        Range {
            file: 0,
            start: first,
            // Nothing starts in the range when its first record starts
            // after it (one record longer than the range).
            end: task.end.max(first),
            first_line: 0,
        }
    };
    let mut keys: Vec<(u128, i64)> = Vec::new();
    let mut packer = KeyPacker::default();
    let keyed = buckets > 0 && !plan.key.is_empty();
    let files = [source];
    let parsed = parse_range(
        plan,
        &files,
        &range,
        0,
        opts,
        |fields: &[Option<&[u8]>], cells: &[Cell], _| {
            if keyed {
                let key = packer.pack(plan.key.iter().map(|&k| fields[k].unwrap_or_default()));
                keys.push((key, plan.event_time_of(cells).unwrap_or(0)));
            }
        },
    );
    let [source] = files;
    let (out, range_end) = match parsed {
        Ok(p) => p,
        Err(e) if e.retryable() => return Err(e),
        Err(CleanError::Malformed { line, message, .. }) => {
            return Ok(failed(
                source.data_line,
                RangeFailure {
                    line: Some(line),
                    message,
                },
            ))
        }
        Err(e) => {
            return Ok(failed(
                source.data_line,
                RangeFailure {
                    line: None,
                    message: e.to_string(),
                },
            ))
        }
    };
    if !task.compressed && range_end.end >= fetched.1 && fetched.1 < task.size {
        // The last record may go on past what was fetched.
        return Ok(grow(fetched.1));
    }
    let mut stats = out.stats;
    // A file's own counts and dropped columns are its first range's.
    if task.start == 0 {
        stats.files = 1;
        stats.bytes = task.size;
        stats.dropped_columns = file_stats.dropped_columns;
    }
    stats.ranges = 1;
    let kept = if keyed {
        split_into_buckets(plan, task.range, out.kept, &keys, buckets)?
    } else {
        vec![out.kept]
    };
    Ok(RangeRead::Cleaned(Box::new(CleanedRange {
        summary: RangeSummary {
            task: task.clone(),
            first,
            end: range_end.end,
            lines: range_end.lines,
            // A compressed range's lines count from the stream's start.
            data_line: if task.compressed { 1 } else { source.data_line },
            stats,
            failure: None,
            empty: false,
        },
        buckets: kept,
        rejects: out.rejects,
    })))
}

/// A range in which no record starts.
fn empty_range(task: &RangeTask, source: &SourceFile<'_>) -> CleanedRange {
    CleanedRange {
        summary: RangeSummary {
            task: task.clone(),
            first: task.end,
            end: task.end,
            lines: 0,
            data_line: source.data_line,
            stats: CleanStats {
                ranges: 1,
                ..CleanStats::default()
            },
            failure: None,
            empty: true,
        },
        buckets: vec![],
        rejects: vec![],
    }
}

/// Add key, event time and position to the kept batches and split their
/// rows by bucket, keeping input order within each.
fn split_into_buckets(
    plan: &CleanPlan,
    range: u32,
    kept: Vec<RecordBatch>,
    keys: &[(u128, i64)],
    buckets: u32,
) -> Result<Vec<Vec<RecordBatch>>, CleanError> {
    let schema = bucket_schema(plan);
    let arrow =
        |e: arrow_schema::ArrowError| CleanError::Plan(format!("splitting into buckets: {e}"));
    let mut out: Vec<Vec<RecordBatch>> = (0..buckets).map(|_| Vec::new()).collect();
    let mut ordinal = 0usize;
    for batch in kept {
        let rows = batch.num_rows();
        let slice = &keys[ordinal..ordinal + rows];
        let key_bytes =
            FixedSizeBinaryArray::try_from_iter(slice.iter().map(|(k, _)| k.to_le_bytes()))
                .map_err(arrow)?;
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns.push(Arc::new(key_bytes));
        columns.push(Arc::new(Int64Array::from_iter_values(
            slice.iter().map(|(_, t)| *t),
        )));
        columns.push(Arc::new(UInt64Array::from_iter_values(
            (ordinal..ordinal + rows).map(|i| row_id(range as usize, i as u64)),
        )));
        let full = RecordBatch::try_new(schema.clone(), columns).map_err(arrow)?;
        let mut indices: Vec<Vec<u32>> = (0..buckets).map(|_| Vec::new()).collect();
        for (i, (key, _)) in slice.iter().enumerate() {
            indices[bucket_of(*key, buckets) as usize].push(i as u32);
        }
        for (b, rows) in indices.into_iter().enumerate() {
            if !rows.is_empty() {
                out[b].push(
                    arrow_select::take::take_record_batch(&full, &UInt32Array::from(rows))
                        .map_err(arrow)?,
                );
            }
        }
        ordinal += rows;
    }
    Ok(out)
}

/// A range whose start is known and whose end met the next range's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptedRange {
    pub task: RangeTask,
    /// The absolute line its first record is on.
    pub first_line: u64,
}

/// What the boundary check decided.
#[derive(Debug)]
pub enum Boundaries {
    /// Every range met its neighbours: these are the partition's ranges,
    /// and their counts before dedupe.
    Accepted {
        ranges: Vec<AcceptedRange>,
        stats: CleanStats,
    },
    /// Clean these (merged) ranges, then check again.
    Reclean(Vec<RangeTask>),
    /// An input error at a trusted place: the clean fails as the
    /// single-process one would.
    Failed(CleanError),
}

/// The summaries that count: a merged range's replaces the ones it covers.
pub fn current_summaries(mut all: Vec<RangeSummary>) -> Vec<RangeSummary> {
    all.sort_by_key(|s| (s.task.range, std::cmp::Reverse(s.task.last)));
    let mut current: Vec<RangeSummary> = Vec::with_capacity(all.len());
    for s in all {
        if current.last().is_some_and(|c| c.task.covers(&s.task)) {
            continue;
        }
        current.push(s);
    }
    current
}

/// Check that every range of every file ends where the next begins,
/// walking each file from its first range while boundaries meet. The first
/// misplaced boundary of a file merges the two ranges around it. `planned`
/// is how many ranges the manifest has: a missing summary is a bug in the
/// caller, reported as such.
pub fn check_boundaries(summaries: &[RangeSummary], planned: u32) -> Boundaries {
    let summaries = current_summaries(summaries.to_vec());
    let mut next_expected = 0u32;
    for s in &summaries {
        if s.task.range != next_expected {
            return Boundaries::Failed(CleanError::Plan(format!(
                "range {next_expected} of {planned} has no summary"
            )));
        }
        next_expected = s.task.last + 1;
    }
    if next_expected != planned {
        return Boundaries::Failed(CleanError::Plan(format!(
            "ranges {next_expected}.. of {planned} have no summary"
        )));
    }
    let mut accepted = Vec::with_capacity(summaries.len());
    let mut reclean = Vec::new();
    let mut stats = CleanStats::default();
    let mut i = 0;
    while i < summaries.len() {
        // One file: its ranges are consecutive.
        let file = summaries[i].task.file;
        let mut j = i;
        while j < summaries.len() && summaries[j].task.file == file {
            j += 1;
        }
        let ranges = &summaries[i..j];
        let mut line = ranges[0].data_line;
        // The last range holding records, whose end the next such range
        // must start at.
        let mut previous: Option<&RangeSummary> = None;
        for s in ranges {
            if let Some(f) = &s.failure {
                return Boundaries::Failed(match f.line {
                    Some(l) => CleanError::Malformed {
                        file: s.task.key.clone(),
                        line: line + l,
                        message: f.message.clone(),
                    },
                    None => CleanError::Input(f.message.clone()),
                });
            }
            if s.empty {
                merge_stats(&mut stats, &s.stats);
                continue;
            }
            if let Some(p) = previous {
                if p.end != s.first {
                    let mut merged = p.task.clone();
                    merged.last = s.task.last;
                    merged.end = s.task.end;
                    reclean.push(merged);
                    break;
                }
            }
            accepted.push(AcceptedRange {
                task: s.task.clone(),
                first_line: line,
            });
            merge_stats(&mut stats, &s.stats);
            line += s.lines;
            previous = Some(s);
        }
        i = j;
    }
    if reclean.is_empty() {
        Boundaries::Accepted {
            ranges: accepted,
            stats,
        }
    } else {
        Boundaries::Reclean(reclean)
    }
}

/// Add one part's counts to a total.
pub fn merge_stats(total: &mut CleanStats, part: &CleanStats) {
    total.input += part.input;
    total.kept += part.kept;
    total.duplicates += part.duplicates;
    total.rejected_total += part.rejected_total;
    for (reason, n) in &part.rejected {
        *total.rejected.entry(reason.clone()).or_insert(0) += n;
    }
    total.files += part.files;
    total.bytes += part.bytes;
    total.ranges += part.ranges;
    for (file, columns) in &part.dropped_columns {
        total.dropped_columns.insert(file.clone(), columns.clone());
    }
}

/// A range's rejects with their lines made the file's.
pub fn absolute_rejects(
    batches: &[RecordBatch],
    first_line: u64,
    provenance: bool,
) -> Vec<RecordBatch> {
    if !provenance {
        return batches.to_vec();
    }
    batches
        .iter()
        .map(|b| RejectBuilders::shift_lines(b, first_line))
        .collect()
}

/// One bucket resolved: its winning rows (kept columns only, in input
/// order) with their positions in the input, and how many lost.
pub struct ResolvedBucket {
    pub kept: Vec<RecordBatch>,
    pub positions: Vec<UInt64Array>,
    pub duplicates: u64,
}

/// The dedupe winner of every key in one bucket's rows, gathered from every
/// accepted range in range order: the latest event time, on a tie the row
/// earlier in the input, exactly the single-process rule.
pub fn resolve_bucket(
    plan: &CleanPlan,
    batches: &[RecordBatch],
) -> Result<ResolvedBucket, CleanError> {
    let bad = |what: &str| CleanError::Plan(format!("a bucket file lacks its {what} column"));
    let kept_width = plan.kept_schema().fields().len();
    let mut best: HashMap<u128, (i64, u64, usize, usize), BuildHasherDefault<PackedKeyHasher>> =
        HashMap::default();
    let mut rows = 0u64;
    for (b, batch) in batches.iter().enumerate() {
        let keys = batch
            .column_by_name(KEY_COLUMN)
            .and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>())
            .ok_or_else(|| bad("key"))?;
        let times = batch
            .column_by_name(TIME_COLUMN)
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .ok_or_else(|| bad("event time"))?;
        let positions = batch
            .column_by_name(ROW_COLUMN)
            .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
            .ok_or_else(|| bad("position"))?;
        for i in 0..batch.num_rows() {
            let key =
                u128::from_le_bytes(keys.value(i).try_into().map_err(|_| bad("16-byte key"))?);
            let candidate = (times.value(i), positions.value(i), b, i);
            best.entry(key)
                .and_modify(|w| {
                    if candidate.0 > w.0 || (candidate.0 == w.0 && candidate.1 < w.1) {
                        *w = candidate;
                    }
                })
                .or_insert(candidate);
        }
        rows += batch.num_rows() as u64;
    }
    let mut winners: Vec<Vec<bool>> = batches.iter().map(|b| vec![false; b.num_rows()]).collect();
    for (_, _, b, i) in best.values() {
        winners[*b][*i] = true;
    }
    let mut kept = Vec::with_capacity(batches.len());
    let mut kept_positions = Vec::with_capacity(batches.len());
    let mut won = 0u64;
    for (batch, mask) in batches.iter().zip(winners) {
        let mask = arrow_array::BooleanArray::from(mask);
        won += mask.true_count() as u64;
        let narrowed = batch
            .project(&(0..kept_width).collect::<Vec<_>>())
            .map_err(|e| CleanError::Plan(format!("a bucket file's columns: {e}")))?;
        let filtered = arrow_select::filter::filter_record_batch(&narrowed, &mask)
            .map_err(|e| CleanError::Plan(format!("filtering duplicates: {e}")))?;
        if filtered.num_rows() > 0 {
            let positions = batch
                .column_by_name(ROW_COLUMN)
                .ok_or_else(|| bad("position"))?;
            let positions = arrow_select::filter::filter(positions, &mask)
                .map_err(|e| CleanError::Plan(format!("filtering duplicates: {e}")))?;
            kept_positions.push(
                positions
                    .as_any()
                    .downcast_ref::<UInt64Array>()
                    .ok_or_else(|| bad("position"))?
                    .clone(),
            );
            kept.push(filtered);
        }
    }
    Ok(ResolvedBucket {
        kept,
        positions: kept_positions,
        duplicates: rows - won,
    })
}

/// Write a worker's local copy of a file: `header` (the file's first
/// bytes) at offset 0 and `body` at `body_at`. The gap between them stays a
/// hole, so the copy takes the disk of what was fetched, not of the file.
pub fn write_local_copy(
    path: &Path,
    header: &[u8],
    body: &[u8],
    body_at: u64,
) -> std::io::Result<()> {
    write_sparse(path, &[(0, header), (body_at, body)])
}

/// A file holding each `(offset, bytes)` at its offset, holes between.
pub fn write_sparse(path: &Path, pieces: &[(u64, &[u8])]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::create(path)?;
    for (at, bytes) in pieces {
        file.write_all_at(bytes, *at)?;
    }
    Ok(())
}

/// Batches as one Arrow IPC file in memory (a bucket or rejects part).
pub fn to_ipc(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, CleanError> {
    let err = |e: arrow_schema::ArrowError| CleanError::Plan(format!("encoding Arrow IPC: {e}"));
    let mut writer = arrow_ipc::writer::FileWriter::try_new(Vec::new(), schema).map_err(err)?;
    for b in batches {
        writer.write(b).map_err(err)?;
    }
    writer.into_inner().map_err(err)
}

/// The batches of an Arrow IPC file written by [`to_ipc`]; `name` says
/// where it came from in an error.
pub fn from_ipc(bytes: Vec<u8>, name: &str) -> Result<Vec<RecordBatch>, CleanError> {
    let err = |e: arrow_schema::ArrowError| {
        CleanError::Input(format!("{name}: not an Arrow IPC file: {e}"))
    };
    let reader =
        arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None).map_err(err)?;
    reader.map(|b| b.map_err(err)).collect()
}
