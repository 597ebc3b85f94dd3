//! Pass 2's scheduler: ranges are parsed on every thread, committed in input
//! order, and the kept file's columns are encoded as separate tasks, so two
//! threads share parsing, Arrow building, Parquet encoding and zstd by
//! whatever is waiting rather than by a fixed split.
//!
//! Each column has one writer ([`ArrowColumnWriter`]) per row group and a
//! queue of arrays committed for it; a thread takes a column that nobody is
//! encoding and drains its queue. Threads parse until the queues hold
//! enough, so each column is encoded in long runs, and then encode, which
//! bounds memory to a few ranges. Row groups are cut at the
//! writer properties' row limit, exactly where [`parquet::arrow::ArrowWriter`]
//! would cut them, and appended to the file in order.

use super::{CleanError, CleanStats};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory,
};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

/// What parsing one range produced.
#[derive(Default)]
pub(crate) struct RangeOutput {
    pub kept: Vec<RecordBatch>,
    pub rejects: Vec<RecordBatch>,
    pub stats: CleanStats,
}

/// Pieces waiting per column (or reject batches waiting), above which
/// threads encode instead of parse.
const QUEUED_BATCHES_PER_THREAD: usize = 6;

enum Piece {
    Array(ArrayRef),
    EndOfGroup,
}

pub(crate) struct ColumnParallelWriter {
    file: SerializedFileWriter<File>,
    target: Target,
}

/// What every thread needs to know about the kept file.
struct Target {
    path: PathBuf,
    schema: SchemaRef,
    factory: ArrowRowGroupWriterFactory,
    max_group_rows: usize,
}

impl Target {
    fn parquet_err(&self, source: parquet::errors::ParquetError) -> CleanError {
        CleanError::Parquet {
            path: self.path.clone(),
            source,
        }
    }
}

struct State {
    next_parse: usize,
    parsed: BTreeMap<usize, RangeOutput>,
    next_commit: usize,
    queues: Vec<VecDeque<Piece>>,
    queued: usize,
    /// Buffer bytes waiting in each column's queue: how long its encoding
    /// will take, roughly.
    queued_bytes: Vec<usize>,
    /// The writer of each column (absent while a thread encodes with it),
    /// and the row group it writes.
    writers: Vec<Option<ArrowColumnWriter>>,
    writer_group: Vec<usize>,
    /// Writers made for row groups not started yet, by group.
    spare: BTreeMap<usize, Vec<Option<ArrowColumnWriter>>>,
    /// Closed column chunks of row groups not yet appended.
    chunks: BTreeMap<usize, Vec<Option<ArrowColumnChunk>>>,
    group_rows: usize,
    groups_closed: usize,
    next_append: usize,
    all_committed: bool,
    file: Option<SerializedFileWriter<File>>,
    /// The rejects file's writer (absent while a thread writes with it,
    /// and once closed) and the batches committed for it.
    rejects: Option<ArrowWriter<File>>,
    rejects_closed: bool,
    reject_queue: VecDeque<RecordBatch>,
    stats: CleanStats,
    error: Option<CleanError>,
}

enum Task {
    Encode(usize, Box<ArrowColumnWriter>, Vec<Piece>),
    WriteRejects(Box<ArrowWriter<File>>, Vec<RecordBatch>),
    CloseRejects(Box<ArrowWriter<File>>),
    Parse(usize),
    Done,
}

impl ColumnParallelWriter {
    pub fn create(
        path: &Path,
        schema: SchemaRef,
        props: WriterProperties,
    ) -> Result<ColumnParallelWriter, CleanError> {
        let parquet_err = |source| CleanError::Parquet {
            path: path.to_path_buf(),
            source,
        };
        let max_group_rows = props.max_row_group_row_count().unwrap_or(usize::MAX);
        let handle = File::create(path).map_err(|source| CleanError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        // ArrowWriter sets up the file exactly as it would write it itself
        // (the Arrow schema in the footer included); its column writers are
        // then driven one by one.
        let (file, factory) = ArrowWriter::try_new(handle, schema.clone(), Some(props))
            .and_then(|w| w.into_serialized_writer())
            .map_err(parquet_err)?;
        Ok(ColumnParallelWriter {
            file,
            target: Target {
                path: path.to_path_buf(),
                schema,
                factory,
                max_group_rows,
            },
        })
    }

    /// Parse `ranges` ranges with `parse` on `threads` threads, write their
    /// kept batches here and their rejected batches to `rejects`, both in
    /// range order, and close the rejects file. Returns the summed counts.
    pub fn run(
        self,
        ranges: usize,
        threads: usize,
        parse: impl Fn(usize) -> Result<RangeOutput, CleanError> + Sync,
        rejects: ArrowWriter<File>,
        rejects_path: &Path,
    ) -> Result<CleanStats, CleanError> {
        let ColumnParallelWriter { file, target } = self;
        let writers = target
            .factory
            .create_column_writers(0)
            .map_err(|e| target.parquet_err(e))?;
        let columns = writers.len();
        if columns != target.schema.fields().len() {
            return Err(CleanError::Plan("kept columns must be flat".into()));
        }
        let state = Mutex::new(State {
            next_parse: 0,
            parsed: BTreeMap::new(),
            next_commit: 0,
            queues: (0..columns).map(|_| VecDeque::new()).collect(),
            queued: 0,
            queued_bytes: vec![0; columns],
            writers: writers.into_iter().map(Some).collect(),
            writer_group: vec![0; columns],
            spare: BTreeMap::new(),
            chunks: BTreeMap::new(),
            group_rows: 0,
            groups_closed: 0,
            next_append: 0,
            all_committed: ranges == 0,
            file: Some(file),
            rejects: Some(rejects),
            rejects_closed: false,
            reject_queue: VecDeque::new(),
            stats: CleanStats::default(),
            error: None,
        });
        let wake = Condvar::new();
        let run = Run {
            target: &target,
            rejects_path,
            ranges,
            threads,
            columns,
            state: &state,
            wake: &wake,
        };
        super::on_threads(threads, |_| run.work(&parse));
        let mut st = state
            .into_inner()
            .map_err(|_| CleanError::Plan("a cleaning thread panicked".into()))?;
        if let Some(e) = st.error.take() {
            return Err(e);
        }
        let file = st
            .file
            .take()
            .ok_or_else(|| CleanError::Plan("no file".into()))?;
        file.close().map_err(|e| target.parquet_err(e))?;
        if !st.rejects_closed {
            return Err(CleanError::Plan("the rejects file was not closed".into()));
        }
        Ok(st.stats)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A poisoned lock means a thread panicked; the panic is re-raised when
    // the threads are joined, so the state is only read to stop.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Run<'a> {
    target: &'a Target,
    rejects_path: &'a Path,
    ranges: usize,
    threads: usize,
    columns: usize,
    state: &'a Mutex<State>,
    wake: &'a Condvar,
}

impl Run<'_> {
    fn work(&self, parse: &(impl Fn(usize) -> Result<RangeOutput, CleanError> + Sync)) {
        loop {
            let task = self.next_task();
            let outcome = match task {
                Task::Done => return,
                Task::Parse(r) => parse(r).map(|out| {
                    let mut st = lock(self.state);
                    st.parsed.insert(r, out);
                    self.commit(&mut st);
                }),
                Task::Encode(c, writer, pieces) => self.encode(c, *writer, pieces),
                Task::WriteRejects(writer, batches) => self.write_rejects(*writer, batches),
                Task::CloseRejects(writer) => self.close_rejects(*writer),
            };
            let mut st = lock(self.state);
            if let Err(e) = outcome {
                st.error.get_or_insert(e);
            }
            drop(st);
            self.wake.notify_all();
        }
    }

    fn next_task(&self) -> Task {
        let mut st = lock(self.state);
        loop {
            if st.error.is_some() {
                return Task::Done;
            }
            // Parse while the queues have room, then encode the column with
            // the most waiting that nobody holds. Encoding after every range
            // instead would visit each column for a range's two or three
            // batches, and every visit brings that column's dictionary and
            // zstd state back into cache: draining longer queues measured
            // 10 % faster at one thread, with less memory.
            let limit = QUEUED_BATCHES_PER_THREAD * self.threads;
            let rejects_full = st.reject_queue.len() >= limit;
            let room = st.queued < self.columns * limit
                && !rejects_full
                && st.parsed.len() < 2 * self.threads;
            if st.next_parse < self.ranges && room {
                st.next_parse += 1;
                return Task::Parse(st.next_parse - 1);
            }
            // Once everything is committed, the column with the most bytes
            // waiting goes first, so that what is left for one thread at
            // the end is a short task (ties went to the last, cheapest,
            // columns).
            let column = (0..self.columns)
                .filter(|&c| st.writers[c].is_some() && !st.queues[c].is_empty())
                .max_by_key(|&c| {
                    let length = if st.all_committed {
                        0
                    } else {
                        st.queues[c].len()
                    };
                    (length, st.queued_bytes[c])
                });
            // Rejects go before the columns once their queue is full,
            // otherwise when no column is waiting.
            if (rejects_full || column.is_none()) && !st.reject_queue.is_empty() {
                if let Some(writer) = st.rejects.take() {
                    let batches = st.reject_queue.drain(..).collect();
                    return Task::WriteRejects(Box::new(writer), batches);
                }
            }
            // Closing encodes the rejects' last pages and dictionaries: done
            // here, it overlaps the kept columns' last encoding instead of
            // following it on one thread (13 ms of zstd alone at the end,
            // at 1M rows and two threads).
            if st.all_committed && st.reject_queue.is_empty() {
                if let Some(writer) = st.rejects.take() {
                    return Task::CloseRejects(Box::new(writer));
                }
            }
            if let Some(c) = column {
                let Some(writer) = st.writers[c].take() else {
                    continue;
                };
                // Up to and including the end of its row group.
                let mut pieces = Vec::new();
                while let Some(p) = st.queues[c].pop_front() {
                    let end = match &p {
                        Piece::EndOfGroup => true,
                        Piece::Array(array) => {
                            st.queued_bytes[c] -= array.get_buffer_memory_size();
                            false
                        }
                    };
                    pieces.push(p);
                    if end {
                        break;
                    }
                }
                st.queued -= pieces.len();
                return Task::Encode(c, Box::new(writer), pieces);
            }
            let encoding = st.writers.iter().any(Option::is_none)
                || (st.rejects.is_none() && !st.rejects_closed);
            if st.all_committed && st.queued == 0 && st.reject_queue.is_empty() && !encoding {
                return Task::Done;
            }
            st = self
                .wake
                .wait(st)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Move parsed ranges, in order, into the column queues and the rejects
    /// file, cutting row groups at the row limit.
    fn commit(&self, st: &mut State) {
        while let Some(out) = st.parsed.remove(&st.next_commit) {
            st.next_commit += 1;
            merge(&mut st.stats, &out.stats);
            for batch in out.kept {
                let mut rest = batch;
                while rest.num_rows() > 0 {
                    let take = rest
                        .num_rows()
                        .min(self.target.max_group_rows - st.group_rows);
                    let part = rest.slice(0, take);
                    rest = rest.slice(take, rest.num_rows() - take);
                    for (c, array) in part.columns().iter().enumerate() {
                        st.queued_bytes[c] += array.get_buffer_memory_size();
                        st.queues[c].push_back(Piece::Array(array.clone()));
                    }
                    st.queued += self.columns;
                    st.group_rows += take;
                    if st.group_rows == self.target.max_group_rows {
                        self.end_group(st);
                    }
                }
            }
            st.reject_queue.extend(out.rejects);
        }
        if st.next_commit == self.ranges && !st.all_committed {
            st.all_committed = true;
            if st.group_rows > 0 {
                self.end_group(st);
            }
        }
    }

    fn write_rejects(
        &self,
        mut writer: ArrowWriter<File>,
        batches: Vec<RecordBatch>,
    ) -> Result<(), CleanError> {
        for batch in &batches {
            writer.write(batch).map_err(|source| CleanError::Parquet {
                path: self.rejects_path.to_path_buf(),
                source,
            })?;
        }
        lock(self.state).rejects = Some(writer);
        Ok(())
    }

    fn close_rejects(&self, writer: ArrowWriter<File>) -> Result<(), CleanError> {
        writer.close().map_err(|source| CleanError::Parquet {
            path: self.rejects_path.to_path_buf(),
            source,
        })?;
        lock(self.state).rejects_closed = true;
        Ok(())
    }

    fn end_group(&self, st: &mut State) {
        for q in &mut st.queues {
            q.push_back(Piece::EndOfGroup);
        }
        st.queued += self.columns;
        st.group_rows = 0;
        st.groups_closed += 1;
    }

    fn encode(
        &self,
        c: usize,
        mut writer: ArrowColumnWriter,
        pieces: Vec<Piece>,
    ) -> Result<(), CleanError> {
        let field = &self.target.schema.fields()[c];
        let err = |e| self.target.parquet_err(e);
        let mut ends_group = false;
        for piece in pieces {
            match piece {
                Piece::Array(array) => {
                    for leaf in compute_leaves(field, &array).map_err(err)? {
                        writer.write(&leaf).map_err(err)?;
                    }
                }
                Piece::EndOfGroup => {
                    ends_group = true;
                    break;
                }
            }
        }
        if !ends_group {
            lock(self.state).writers[c] = Some(writer);
            return Ok(());
        }
        let chunk = writer.close().map_err(err)?;
        let mut st = lock(self.state);
        let group = st.writer_group[c];
        let columns = self.columns;
        st.chunks
            .entry(group)
            .or_insert_with(|| (0..columns).map(|_| None).collect())[c] = Some(chunk);
        // The next row group's writer for this column.
        let next = group + 1;
        if let std::collections::btree_map::Entry::Vacant(slot) = st.spare.entry(next) {
            let made = self
                .target
                .factory
                .create_column_writers(next)
                .map_err(err)?;
            slot.insert(made.into_iter().map(Some).collect());
        }
        let fresh = st.spare.get_mut(&next).and_then(|w| w[c].take());
        if st
            .spare
            .get(&next)
            .is_some_and(|w| w.iter().all(Option::is_none))
        {
            st.spare.remove(&next);
        }
        st.writers[c] = fresh;
        st.writer_group[c] = next;
        self.append_ready_groups(st)
    }

    /// Append every complete row group, in order, to the file. The copy
    /// into the file (a row group's compressed pages) is made without the
    /// lock, so other threads go on parsing and encoding meanwhile; a
    /// thread finding the file taken leaves its group to the one holding
    /// it, which looks again before it puts the file back.
    fn append_ready_groups<'s>(&'s self, mut st: MutexGuard<'s, State>) -> Result<(), CleanError> {
        let err = |e| self.target.parquet_err(e);
        loop {
            let group = st.next_append;
            let complete = st
                .chunks
                .get(&group)
                .is_some_and(|chunks| chunks.iter().all(Option::is_some));
            if !complete {
                return Ok(());
            }
            let Some(mut file) = st.file.take() else {
                return Ok(());
            };
            let chunks = st.chunks.remove(&group).unwrap_or_default();
            st.next_append += 1;
            drop(st);
            let appended = file.next_row_group().and_then(|mut row_group| {
                for chunk in chunks.into_iter().flatten() {
                    chunk.append_to_row_group(&mut row_group)?;
                }
                row_group.close().map(|_| ())
            });
            st = lock(self.state);
            st.file = Some(file);
            appended.map_err(err)?;
        }
    }
}

fn merge(total: &mut CleanStats, part: &CleanStats) {
    total.input += part.input;
    total.kept += part.kept;
    total.duplicates += part.duplicates;
    total.rejected_total += part.rejected_total;
    for (reason, n) in &part.rejected {
        *total.rejected.entry(reason.clone()).or_default() += n;
    }
}
