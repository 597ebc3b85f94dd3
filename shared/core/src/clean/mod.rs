//! Streaming CSV → typed Arrow batches → Parquet, with every rejected row kept
//! with its reason, file and line.
//!
//! Every row is parsed and evaluated once. With a dedupe key, pass 1 parses
//! the ranges into Arrow batches, spills them to scratch disk next to the
//! output (see `spill`), and remembers per key which row wins (latest event
//! time; the first in the file on a tie); pass 2 reads the batches back,
//! drops the rows that lost, and writes. Memory stays bounded by a few
//! ranges rather than the file size: the only state that grows with the
//! input is one 32-byte dedupe candidate per valid row during pass 1 (freed
//! before pass 2) and one bit per valid row. Scratch disk holds the kept
//! candidates and rejects in Arrow form, about the size of the input,
//! until the clean ends. Without a key there is one pass and no scratch.

mod builders;
pub(crate) mod dedupe;
pub mod distributed;
mod encode;
pub mod plan;
mod records;
pub mod rejects;
mod spill;

pub use plan::{CleanPlan, Rejection};

use crate::keys::KeyPacker;
use builders::{KeptBuilders, RejectBuilders};
use dedupe::{row_id, Candidates};
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
    #[error("scratch space {path}: {source}")]
    Scratch {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid cleaning plan: {0}")]
    Plan(String),
    /// An input error found by a range worker, carried to the boundary
    /// check as its text.
    #[error("{0}")]
    Input(String),
}

impl CleanError {
    /// Reading or writing a local file can fail transiently (an interrupted
    /// download, a scratch file gone); a full disk is full again on the
    /// next try, and malformed input never fixes itself.
    pub fn retryable(&self) -> bool {
        match self {
            CleanError::Read { source, .. }
            | CleanError::Write { source, .. }
            | CleanError::Scratch { source, .. } => !crate::services::disk_full(source),
            _ => false,
        }
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
    /// Plain files are read in ranges of about this many bytes.
    pub range_bytes: u64,
    /// Rows per Parquet row group (`None`: the engine's default).
    pub row_group_rows: Option<usize>,
}

impl Default for CleanOptions {
    fn default() -> Self {
        CleanOptions {
            batch_rows: 16_384,
            threads: 1,
            reject_provenance: true,
            zstd_level: 3,
            range_bytes: RANGE_BYTES,
            row_group_rows: None,
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
    /// The byte ranges the files were parsed in (a file whose cut fell in a
    /// quoted line break counts as one): how far the clean could spread.
    #[serde(default)]
    pub ranges: u64,
}

impl CleanStats {
    /// The accounting invariant: nothing is lost.
    pub fn balanced(&self) -> bool {
        self.input == self.kept + self.rejected_total + self.duplicates
            && self.rejected_total == self.rejected.values().sum::<u64>()
    }
}

/// Clean `inputs` (one partition: dedupe spans all of them) into
/// `kept_path` and `rejects_path`.
///
/// Plain files are cut into byte ranges at line breaks. With a dedupe key,
/// pass 1 scans the ranges on `opts.threads` threads and resolves which row
/// wins per key; pass 2 parses them again and writes, encoding the kept
/// file's columns in parallel. Either way the output is the same as one
/// sequential reader's: a range is trusted only when the range before it
/// ended exactly where it starts (a quoted line break across a cut makes the
/// file fall back to one range).
pub fn clean_files(
    plan: &CleanPlan,
    inputs: &[CleanInput],
    kept_path: &Path,
    rejects_path: &Path,
    opts: &CleanOptions,
) -> Result<CleanStats, CleanError> {
    let threads = opts.threads.max(1);
    let mut file_stats = FileStats::default();
    let files = inputs
        .iter()
        .map(|input| SourceFile::open(plan, input, &mut file_stats))
        .collect::<Result<Vec<_>, _>>()?;
    let scratch = kept_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let pass1 = if plan.key.is_empty() {
        None
    } else {
        Some(find_winners(plan, &files, opts, scratch)?)
    };
    // No pass 1 tells where lines start without a key, so each file is
    // then read whole, once, here.
    let ranges = match &pass1 {
        Some(p) => p.ranges.clone(),
        None => files
            .iter()
            .enumerate()
            .map(|(i, f)| f.whole_range(i))
            .collect(),
    };
    let mut props = WriterProperties::builder().set_compression(Compression::ZSTD(
        ZstdLevel::try_new(opts.zstd_level).map_err(|e| CleanError::Plan(e.to_string()))?,
    ));
    if let Some(rows) = opts.row_group_rows {
        props = props.set_max_row_group_row_count(Some(rows.max(1)));
    }
    let props = props.build();
    let kept = encode::ColumnParallelWriter::create(kept_path, plan.kept_schema(), props.clone())?;
    let reject_schema = RejectBuilders::schema(plan, opts.reject_provenance);
    let rejects = new_writer(rejects_path, reject_schema, props)?;
    let parse = |r: usize| match &pass1 {
        Some(pass1) => unspill_range(pass1, r, opts),
        None => parse_range(
            plan,
            &files,
            &ranges[r],
            ranges[r].first_line,
            opts,
            |_, _, _| (),
        )
        .map(|(out, _)| out),
    };
    let mut stats = kept.run(ranges.len(), threads, parse, rejects, rejects_path)?;
    stats.files = file_stats.files;
    stats.bytes = file_stats.bytes;
    stats.dropped_columns = file_stats.dropped_columns;
    stats.ranges = ranges.len() as u64;
    debug_assert!(stats.balanced(), "{stats:?}");
    Ok(stats)
}

/// The schema of a rejects file written with provenance (reason, detail,
/// source file and line), as the use cases write them.
pub fn reject_schema(plan: &CleanPlan) -> arrow_schema::SchemaRef {
    RejectBuilders::schema(plan, true)
}

/// Run `work(i)` for i in 0..threads, the first on the calling thread, and
/// return the results in that order. A panic in any is re-raised: losing a
/// thread's share would silently drop rows.
pub(crate) fn on_threads<T: Send>(threads: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    if threads <= 1 {
        return vec![work(0)];
    }
    let work = &work;
    std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads).map(|i| scope.spawn(move || work(i))).collect();
        let mut results = vec![work(0)];
        results.extend(others.into_iter().map(|h| match h.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }));
        results
    })
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

/// Plain input is cut into ranges of about this many bytes by default: enough work per
/// range to amortise its setup, small enough to balance two threads.
const RANGE_BYTES: u64 = 4 << 20;

/// One input file, its header read and mapped onto the plan's columns.
struct SourceFile<'a> {
    input: &'a CleanInput,
    header: Vec<String>,
    source_index: Vec<Option<usize>>,
    /// The file has exactly the plan's columns, in the plan's order (the
    /// usual case): a record's fields are the row's as they come.
    in_plan_order: bool,
    compressed: bool,
    /// Plain files: where the first data record starts, and its line.
    data_start: u64,
    data_line: u64,
    len: u64,
}

/// A stretch of one file read by one reader.
#[derive(Debug, Clone)]
struct Range {
    file: usize,
    /// Byte offsets; a compressed file is one range, read from its start.
    start: u64,
    end: u64,
    /// The line `start` is on.
    first_line: u64,
}

/// What scanning a range found: how many lines it held and where its last
/// record ended.
#[derive(Debug, Clone, Copy)]
struct RangeEnd {
    lines: u64,
    end: u64,
}

impl<'a> SourceFile<'a> {
    fn open(
        plan: &CleanPlan,
        input: &'a CleanInput,
        stats: &mut FileStats,
    ) -> Result<SourceFile<'a>, CleanError> {
        let file = input.source_name.as_str();
        let compressed =
            input.source_name.ends_with(".gz") || input.path.extension().is_some_and(|e| e == "gz");
        let len = std::fs::metadata(&input.path)
            .map_err(|source| CleanError::Read {
                file: file.to_string(),
                source,
            })?
            .len();
        let mut reader = RecordReader::new(open_stream(input, compressed)?);
        let Some(header_record) = reader.next_record().map_err(|e| read_error(file, 1, e))? else {
            return Err(CleanError::EmptyFile {
                file: file.to_string(),
            });
        };
        let header = parse_header(&header_record);
        let source_index = map_header(plan, file, &header, stats)?;
        let in_plan_order = source_index.len() == header.len()
            && source_index.iter().enumerate().all(|(i, s)| *s == Some(i));
        stats.files += 1;
        // Bytes as stored (compressed for .gz), which is what throughput
        // and cost are measured in.
        stats.bytes += len;
        Ok(SourceFile {
            input,
            header,
            source_index,
            in_plan_order,
            compressed,
            data_start: reader.position(),
            data_line: reader.lines_consumed() + 1,
            len,
        })
    }

    fn whole_range(&self, file: usize) -> Range {
        Range {
            file,
            start: if self.compressed { 0 } else { self.data_start },
            end: if self.compressed { u64::MAX } else { self.len },
            first_line: if self.compressed { 1 } else { self.data_line },
        }
    }

    /// Cut a plain file after line breaks about every `range_bytes`. Line
    /// numbers of later ranges are filled in once pass 1 has counted them.
    fn ranges(&self, file: usize, range_bytes: u64) -> Result<Vec<Range>, CleanError> {
        if self.compressed {
            return Ok(vec![self.whole_range(file)]);
        }
        let handle = File::open(&self.input.path).map_err(|source| self.read_err(source))?;
        let mut cuts = vec![self.data_start];
        let mut probe = vec![0u8; 64 << 10];
        let mut at = self.data_start.saturating_add(range_bytes);
        'cuts: while at < self.len {
            loop {
                let n = read_at(&handle, &mut probe, at).map_err(|e| self.read_err(e))?;
                if n == 0 {
                    break 'cuts;
                }
                if let Some(i) = memchr::memchr(b'\n', &probe[..n]) {
                    let cut = at + i as u64 + 1;
                    if cut >= self.len {
                        break 'cuts;
                    }
                    cuts.push(cut);
                    at = cut.saturating_add(range_bytes);
                    break;
                }
                at += n as u64;
            }
        }
        let mut ranges: Vec<Range> = cuts
            .windows(2)
            .map(|w| (w[0], w[1]))
            .chain(std::iter::once((cuts[cuts.len() - 1], self.len)))
            .map(|(start, end)| Range {
                file,
                start,
                end,
                first_line: 0,
            })
            .collect();
        ranges[0].first_line = self.data_line;
        Ok(ranges)
    }

    /// About how many rows the file holds, a little over rather than
    /// under, for reserving the dedupe candidates: from the lines in its
    /// first 64 KiB after the header for plain files. A compressed file's
    /// size says little, so it is taken as 64 bytes a row (the short end of
    /// upstream exports) and its candidates grow as they come.
    fn estimated_rows(&self) -> u64 {
        const SAMPLE: usize = 64 << 10;
        let short_rows = |bytes: u64| bytes / 64 + 1024;
        if self.compressed {
            return short_rows(self.len);
        }
        let data = self.len.saturating_sub(self.data_start);
        let mut sample = vec![0u8; SAMPLE.min(data as usize)];
        let sampled = File::open(&self.input.path)
            .and_then(|f| read_at(&f, &mut sample, self.data_start))
            .unwrap_or(0);
        let lines = memchr::memchr_iter(b'\n', &sample[..sampled]).count() as u64;
        if lines < 16 {
            return short_rows(data);
        }
        let rows = data * lines / sampled as u64;
        rows + rows / 10 + 1024
    }

    fn read_err(&self, source: std::io::Error) -> CleanError {
        CleanError::Read {
            file: self.input.source_name.clone(),
            source,
        }
    }
}

fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// A reader's error; its line numbers are made the file's by `first_line`,
/// the line the reader started on.
fn read_error(file: &str, first_line: u64, e: RecordError) -> CleanError {
    match e {
        RecordError::Io(source) => CleanError::Read {
            file: file.to_string(),
            source,
        },
        RecordError::TooLong { line } => CleanError::Malformed {
            file: file.to_string(),
            line: first_line + line - 1,
            message: e.to_string(),
        },
    }
}

fn open_stream(input: &CleanInput, compressed: bool) -> Result<Box<dyn Read + Send>, CleanError> {
    let file = File::open(&input.path).map_err(|source| CleanError::Read {
        file: input.source_name.clone(),
        source,
    })?;
    if compressed {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(
            BufReader::with_capacity(1 << 18, file),
        )))
    } else {
        Ok(Box::new(file))
    }
}

/// A range parsed once: where it ended, where its batches wait, and its
/// counts before dedupe.
struct ParsedRange {
    end: RangeEnd,
    spilled: spill::Spilled,
    stats: CleanStats,
}

/// What pass 1 leaves for pass 2: the ranges (line numbers filled in), the
/// winning rows, and every range's batches on scratch disk.
struct Pass1 {
    ranges: Vec<Range>,
    winners: dedupe::Winners,
    parsed: Vec<ParsedRange>,
    spills: Vec<spill::SpillFile>,
}

/// Pass 1: cut the files into ranges, parse them once on `threads` threads
/// (spilling the batches to `scratch`), and resolve which row wins per key.
fn find_winners(
    plan: &CleanPlan,
    files: &[SourceFile<'_>],
    opts: &CleanOptions,
    scratch: &Path,
) -> Result<Pass1, CleanError> {
    let threads = opts.threads.max(1);
    let mut per_file = files
        .iter()
        .enumerate()
        .map(|(i, f)| f.ranges(i, opts.range_bytes.max(1)))
        .collect::<Result<Vec<_>, _>>()?;
    // Sampled once: a re-scan with files read whole holds the same rows.
    let rows = files
        .iter()
        .map(SourceFile::estimated_rows)
        .sum::<u64>()
        .min(1 << 32) as usize;
    loop {
        let ranges: Vec<Range> = per_file.iter().flatten().cloned().collect();
        let (results, buffers, spills) = scan_ranges(plan, files, &ranges, rows, opts, scratch)?;
        // A range that did not end exactly where the next one starts means
        // a quoted line break spans the cut: read that file whole.
        let mut misaligned = Vec::new();
        for (i, pair) in ranges.windows(2).enumerate() {
            if pair[0].file == pair[1].file {
                if let Ok(parsed) = &results[i] {
                    if parsed.end.end != pair[1].start {
                        misaligned.push(pair[0].file);
                    }
                }
            }
        }
        if !misaligned.is_empty() {
            for f in misaligned {
                per_file[f] = vec![files[f].whole_range(f)];
            }
            continue;
        }
        // Every range's first line, counted from the ranges before it in
        // its file; the first error is reported at its line in the file.
        let mut ranges = ranges;
        let mut parsed: Vec<ParsedRange> = Vec::with_capacity(results.len());
        for (i, result) in results.into_iter().enumerate() {
            if i > 0 && ranges[i].file == ranges[i - 1].file {
                // Range i - 1 parsed: an error would have returned.
                ranges[i].first_line = ranges[i - 1].first_line + parsed[i - 1].end.lines;
            }
            match result {
                Ok(range) => parsed.push(range),
                Err(CleanError::Malformed {
                    file,
                    line,
                    message,
                }) => {
                    return Err(CleanError::Malformed {
                        file,
                        line: ranges[i].first_line + line,
                        message,
                    })
                }
                Err(e) => return Err(e),
            }
        }
        let valid_rows: Vec<u64> = parsed.iter().map(|p| p.stats.kept).collect();
        let winners = dedupe::Winners::resolve(buffers, &valid_rows, threads);
        return Ok(Pass1 {
            ranges,
            winners,
            parsed,
            spills,
        });
    }
}

type ScanResult = (
    Vec<Result<ParsedRange, CleanError>>,
    Vec<Candidates>,
    Vec<spill::SpillFile>,
);

/// Parse every range, each thread taking the next one and spilling it to
/// its own scratch file; every range's result is kept (an error in a range
/// that turns out misaligned is not real). Lines are counted from 0 in
/// every range, as its first line is not known yet. The dedupe candidates
/// are sized for about `rows` rows in all.
fn scan_ranges(
    plan: &CleanPlan,
    files: &[SourceFile<'_>],
    ranges: &[Range],
    rows: usize,
    opts: &CleanOptions,
    scratch: &Path,
) -> Result<ScanResult, CleanError> {
    let threads = opts.threads.max(1);
    // Each thread takes ranges as it frees up, so one may get more than its
    // share; a partition that outgrows its reservation grows as usual.
    let share = match threads {
        1 => rows,
        n => rows / n * 5 / 4,
    };
    let spills = (0..threads)
        .map(|_| spill::SpillFile::create(scratch).map(std::sync::Mutex::new))
        .collect::<Result<Vec<_>, _>>()?;
    let kept_schema = plan.kept_schema();
    let reject_schema = RejectBuilders::schema(plan, opts.reject_provenance);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<ParsedRange, CleanError>>>> =
        ranges.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let scan = |thread: usize| {
        let mut candidates = Candidates::new(rows, share);
        let mut packer = KeyPacker::default();
        loop {
            let r = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if r >= ranges.len() {
                return candidates;
            }
            let offer = |fields: &[Option<&[u8]>], cells: &[Cell], ordinal: u64| {
                let key = packer.pack(plan.key.iter().map(|&k| fields[k].unwrap_or_default()));
                let time = plan.event_time_of(cells).unwrap_or(0);
                candidates.offer(key, time, row_id(r, ordinal));
            };
            let result =
                parse_range(plan, files, &ranges[r], 0, opts, offer).and_then(|(out, end)| {
                    let mut spill = spills[thread]
                        .lock()
                        .map_err(|_| CleanError::Plan("a scratch file was poisoned".into()))?;
                    let spilled = spill.append(
                        thread,
                        (&kept_schema, &out.kept),
                        (&reject_schema, &out.rejects),
                    )?;
                    Ok(ParsedRange {
                        end,
                        spilled,
                        stats: out.stats,
                    })
                });
            if let Ok(mut slot) = results[r].lock() {
                *slot = Some(result);
            }
        }
    };
    let buffers = on_threads(threads, scan);
    let results = results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(CleanError::Plan("a range was not scanned".into())))
        })
        .collect();
    let spills = spills
        .into_iter()
        .map(|m| {
            m.into_inner()
                .map_err(|_| CleanError::Plan("a scratch file was poisoned".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((results, buffers, spills))
}

/// Parse one range: every valid row into kept batches (and offered to
/// `on_valid` with its position among the range's valid rows), every
/// rejected row with its reason into reject batches. Lines are numbered
/// from `first_line`.
fn parse_range(
    plan: &CleanPlan,
    files: &[SourceFile<'_>],
    range: &Range,
    first_line: u64,
    opts: &CleanOptions,
    mut on_valid: impl FnMut(&[Option<&[u8]>], &[Cell], u64),
) -> Result<(encode::RangeOutput, RangeEnd), CleanError> {
    let mut out = encode::RangeOutput::default();
    let stats = &mut out.stats;
    let mut kept = KeptBuilders::new(plan, opts.batch_rows);
    let mut rejects = RejectBuilders::new(plan, opts.reject_provenance, 1024);
    let mut cells: Vec<Cell> = Vec::with_capacity(plan.columns.len());
    let source = files[range.file].input.source_name.as_str();
    let end = read_range(plan, files, range, first_line, |row| {
        stats.input += 1;
        let outcome = match row.fields {
            RowFields::Fields(fields) => match plan.evaluate(fields, &mut cells) {
                Ok(()) => {
                    on_valid(fields, &cells, stats.kept);
                    kept.append(plan, fields, &cells);
                    stats.kept += 1;
                    if kept.is_full(opts.batch_rows) {
                        out.kept.push(kept.finish());
                    }
                    return Ok(());
                }
                Err(cause) => (
                    plan.explain(cause, fields, &cells, opts.reject_provenance),
                    fields.to_vec(),
                ),
            },
            RowFields::Unusable { rejection, fields } => (rejection, fields),
        };
        let (rejection, fields) = outcome;
        match stats.rejected.get_mut(&rejection.reason) {
            Some(n) => *n += 1,
            None => {
                stats.rejected.insert(rejection.reason.clone(), 1);
            }
        }
        stats.rejected_total += 1;
        rejects.append(&fields, &rejection, source, row.line);
        if rejects.is_full(opts.batch_rows) {
            out.rejects.push(rejects.finish());
        }
        Ok(())
    })?;
    if kept.len() > 0 {
        out.kept.push(kept.finish());
    }
    if rejects.len() > 0 {
        out.rejects.push(rejects.finish());
    }
    Ok((out, end))
}

/// Pass 2 for one range: its spilled batches, the kept ones narrowed to
/// the rows that won their key, the rejects' lines made absolute.
fn unspill_range(
    pass1: &Pass1,
    r: usize,
    opts: &CleanOptions,
) -> Result<encode::RangeOutput, CleanError> {
    let parsed = &pass1.parsed[r];
    let (candidates, rejects) = spill::read(&pass1.spills, &parsed.spilled)?;
    let mut stats = parsed.stats.clone();
    let mut kept = Vec::with_capacity(candidates.len());
    let mut ordinal = 0u64;
    for batch in candidates {
        let rows = batch.num_rows() as u64;
        let first = ordinal;
        let mask = arrow_array::BooleanArray::new(
            arrow_buffer::BooleanBuffer::collect_bool(rows as usize, |i| {
                pass1.winners.is_winner(r, first + i as u64)
            }),
            None,
        );
        ordinal += rows;
        let winning = mask.true_count() as u64;
        stats.duplicates += rows - winning;
        if winning == rows {
            kept.push(batch);
        } else if winning > 0 {
            kept.push(
                arrow_select::filter::filter_record_batch(&batch, &mask)
                    .map_err(|e| CleanError::Plan(format!("filtering duplicates: {e}")))?,
            );
        }
    }
    stats.kept -= stats.duplicates;
    let first_line = pass1.ranges[r].first_line;
    let rejects = if opts.reject_provenance {
        rejects
            .iter()
            .map(|b| RejectBuilders::shift_lines(b, first_line))
            .collect()
    } else {
        rejects
    };
    Ok(encode::RangeOutput {
        kept,
        rejects,
        stats,
    })
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
    line: u64,
}

#[derive(Default)]
struct FileStats {
    files: u64,
    bytes: u64,
    dropped_columns: BTreeMap<String, Vec<String>>,
}

/// Read every row of one range, mapped onto the plan's columns, numbering
/// its lines from `first_line`. A plain
/// range stops at the first record starting at or after its end; a
/// compressed one is the whole file after its header.
fn read_range(
    plan: &CleanPlan,
    files: &[SourceFile<'_>],
    range: &Range,
    first_line: u64,
    mut on_row: impl FnMut(Row<'_>) -> Result<(), CleanError>,
) -> Result<RangeEnd, CleanError> {
    let source = &files[range.file];
    let file = source.input.source_name.as_str();
    let stream: Box<dyn Read + Send> = if source.compressed {
        open_stream(source.input, true)?
    } else {
        use std::io::{Seek, SeekFrom};
        let mut handle = File::open(&source.input.path).map_err(|e| source.read_err(e))?;
        handle
            .seek(SeekFrom::Start(range.start))
            .map_err(|e| source.read_err(e))?;
        Box::new(handle)
    };
    let mut reader = RecordReader::new(stream);
    if source.compressed {
        // The header again: a compressed stream can only be read from its start.
        reader
            .next_record()
            .map_err(|e| read_error(file, first_line, e))?;
    }
    let limit = range.end.saturating_sub(range.start);
    let width = source.header.len();
    let header = &source.header;
    let source_index = &source.source_index;
    let mut spare_fields: Vec<Option<&[u8]>> = Vec::with_capacity(source_index.len());
    loop {
        if reader.position() >= limit {
            break;
        }
        let Some(record) = reader
            .next_record()
            .map_err(|e| read_error(file, first_line, e))?
        else {
            break;
        };
        let line = first_line + record.line - 1;
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
        if source.in_plan_order && record.len() == width {
            // No column to look up per field, and the trim test out of the
            // loop (one shared closure measured 0.5 % more instructions):
            // this runs for every field of the file.
            if plan.trim {
                fields.extend(record.iter().map(|v| Some(plan::trim_space_tab(v))));
            } else {
                fields.extend(record.iter().map(Some));
            }
        } else {
            fields.extend(source_index.iter().map(mapped));
        }
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
            let (col, at) = first_invalid_utf8(header, &record);
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
            line,
        })?;
        spare_fields = reuse_allocation(fields);
    }
    Ok(RangeEnd {
        lines: reader.lines_consumed(),
        end: range.start.saturating_add(reader.position()),
    })
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
