//! Parsed ranges kept on scratch disk until dedupe has decided which rows
//! win, so that every row is parsed and evaluated once.
//!
//! Each scanning thread appends the ranges it parsed to its own scratch
//! file, as two Arrow IPC files per range (kept candidates, then rejects),
//! uncompressed: each is written once and read back once, usually from the
//! page cache. Reading maps the range's bytes and decodes the arrays in
//! place, so the data is neither copied out of the page cache nor zeroed
//! first. Memory stays bounded by a few ranges. The scratch files are
//! unlinked from the start, so the space (about the size of the kept data
//! in Arrow form) is freed when they close, even if the process dies; a
//! range's pages are given back as soon as its batches are dropped.

use super::CleanError;
use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::{read_footer_length, FileDecoder};
use arrow_ipc::writer::FileWriter;
use arrow_schema::SchemaRef;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;

/// Every IPC file in the scratch file starts at a multiple of this, so the
/// arrays' buffers keep the alignment the IPC writer gave them.
const SPAN_ALIGN: u64 = 64;

/// One thread's scratch file.
pub(crate) struct SpillFile {
    file: File,
    len: u64,
    dir: PathBuf,
}

/// Where one range's batches are: which scratch file, and the byte spans
/// (offset, length) of its kept and rejected IPC files, the rejects after
/// the kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spilled {
    file: usize,
    kept: (u64, u64),
    rejects: (u64, u64),
}

impl SpillFile {
    pub fn create(dir: &Path) -> Result<SpillFile, CleanError> {
        let file = tempfile::tempfile_in(dir).map_err(|source| CleanError::Scratch {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(SpillFile {
            file,
            len: 0,
            dir: dir.to_path_buf(),
        })
    }

    /// Append one range's kept and rejected batches; `index` is this
    /// file's position in the slice later given to [`read`].
    pub fn append(
        &mut self,
        index: usize,
        kept: (&SchemaRef, &[RecordBatch]),
        rejects: (&SchemaRef, &[RecordBatch]),
    ) -> Result<Spilled, CleanError> {
        let kept_span = self.append_ipc_file(kept.0, kept.1)?;
        let rejects_span = self.append_ipc_file(rejects.0, rejects.1)?;
        Ok(Spilled {
            file: index,
            kept: kept_span,
            rejects: rejects_span,
        })
    }

    fn append_ipc_file(
        &mut self,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<(u64, u64), CleanError> {
        let start = self.len.next_multiple_of(SPAN_ALIGN);
        let padding = (start - self.len) as usize;
        // A small buffer: headers and padding are gathered, while the
        // arrays' buffers, larger than it, go straight to the file.
        let mut counted = Counted {
            inner: BufWriter::with_capacity(64 << 10, &self.file),
            written: 0,
        };
        counted
            .write_all(&[0u8; SPAN_ALIGN as usize][..padding])
            .map_err(|e| self.io_err(e))?;
        let mut writer = FileWriter::try_new(&mut counted, schema).map_err(|e| self.err(e))?;
        for batch in batches {
            writer.write(batch).map_err(|e| self.err(e))?;
        }
        writer.finish().map_err(|e| self.err(e))?;
        drop(writer);
        counted.inner.flush().map_err(|e| self.io_err(e))?;
        self.len += counted.written;
        Ok((start, counted.written - padding as u64))
    }

    /// Map `len` bytes from `offset` as one Arrow buffer, for [`decode`] to
    /// read in place. Each span is read once: when the last array using it
    /// is dropped, its pages are given back.
    fn map(&self, offset: u64, len: u64) -> Result<Buffer, CleanError> {
        let byte_len = usize::try_from(len)
            .map_err(|_| CleanError::Plan("a spilled range is larger than memory".into()))?;
        // SAFETY: the file is this process's own, unlinked from the start, so
        // no other process can name it to change it while it is mapped; this
        // process only appends to it, past every span already handed out,
        // and only punches out a span once nothing maps it.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(byte_len)
                .map(&self.file)
        }
        .map_err(|e| self.io_err(e))?;
        let ptr = NonNull::new(map.as_ptr().cast_mut())
            .ok_or_else(|| CleanError::Plan("a spilled range mapped to nothing".into()))?;
        let owner = ReadOnce {
            map: Some(map),
            file: self.file.try_clone().ok(),
            offset,
            len,
        };
        // SAFETY: the mapping is `byte_len` bytes from `ptr` and lives as
        // long as the buffer's owner, which holds it.
        Ok(unsafe { Buffer::from_custom_allocation(ptr, byte_len, Arc::new(owner)) })
    }

    /// The batches of one IPC file written by [`append_ipc_file`], the
    /// whole of `buffer`.
    fn decode(&self, buffer: &Buffer) -> Result<Vec<RecordBatch>, CleanError> {
        let len = buffer.len();
        let corrupt = |what: &str| self.err(arrow_schema::ArrowError::IpcError(what.into()));
        let trailer = len
            .checked_sub(10)
            .ok_or_else(|| corrupt("scratch span shorter than an IPC trailer"))?;
        let trailer_bytes: [u8; 10] = buffer[trailer..]
            .try_into()
            .map_err(|_| corrupt("scratch span has no IPC trailer"))?;
        let footer_len = read_footer_length(trailer_bytes).map_err(|e| self.err(e))?;
        let footer_start = trailer
            .checked_sub(footer_len)
            .ok_or_else(|| corrupt("scratch span's IPC footer is longer than the span"))?;
        let footer = arrow_ipc::root_as_footer(&buffer[footer_start..trailer])
            .map_err(|e| corrupt(&e.to_string()))?;
        let schema = footer
            .schema()
            .ok_or_else(|| corrupt("scratch span's IPC footer has no schema"))?;
        let schema =
            Arc::new(arrow_ipc::convert::try_fb_to_schema(schema).map_err(|e| self.err(e))?);
        let decoder = FileDecoder::new(schema, footer.version());
        // SAFETY: the span was written by `append_ipc_file` in this process,
        // from arrays Arrow had built and checked, to a file no other process
        // can name; validating it again would check our own work (DataFusion
        // reads its own spill files the same way).
        let decoder = unsafe { decoder.with_skip_validation(true) };
        let blocks = footer
            .recordBatches()
            .map(|b| b.iter())
            .into_iter()
            .flatten();
        let mut batches = Vec::new();
        for block in blocks {
            let block_len = block.bodyLength() as usize + block.metaDataLength() as usize;
            let start = block.offset() as usize;
            if start
                .checked_add(block_len)
                .is_none_or(|end| end > footer_start)
            {
                return Err(corrupt("scratch span's IPC block lies outside it"));
            }
            let data = buffer.slice_with_length(start, block_len);
            if let Some(batch) = decoder
                .read_record_batch(block, &data)
                .map_err(|e| self.err(e))?
            {
                batches.push(batch);
            }
        }
        Ok(batches)
    }

    fn err(&self, e: arrow_schema::ArrowError) -> CleanError {
        self.io_err(std::io::Error::other(e))
    }

    fn io_err(&self, source: std::io::Error) -> CleanError {
        CleanError::Scratch {
            path: self.dir.clone(),
            source,
        }
    }
}

/// A span's mapping that, once dropped, frees the span's whole pages from
/// the page cache and the scratch disk. Without it, all of them were freed
/// when the file closed, after pass 2, on one thread: a fifth of the last
/// 100 ms at 1M rows and two threads. Now each goes with its batches, on
/// whichever thread drops them, and the scratch space shrinks as pass 2
/// goes.
struct ReadOnce {
    map: Option<memmap2::Mmap>,
    /// Another handle on the scratch file (none if it could not be made:
    /// then the pages are freed at close, as before).
    file: Option<File>,
    offset: u64,
    len: u64,
}

impl Drop for ReadOnce {
    fn drop(&mut self) {
        // Unmapped first: punching a hole in pages still mapped would hand
        // the mapping zeros.
        drop(self.map.take());
        if let Some(file) = &self.file {
            give_back(file, self.offset, self.len);
        }
    }
}

/// Free the whole pages of `offset..offset + len` (best effort: a file
/// system without punch-hole keeps them until the file closes). Partial
/// pages at the ends are left for the close: the neighbouring spans still
/// use the rest of them.
fn give_back(file: &File, offset: u64, len: u64) {
    const PAGE: u64 = 4096;
    let start = offset.next_multiple_of(PAGE);
    let end = (offset + len) / PAGE * PAGE;
    if end > start {
        punch_hole(file, start, end - start);
    }
}

/// Free `len` bytes from `start` of `file`, keeping its size; best effort.
#[cfg(target_os = "linux")]
fn punch_hole(file: &File, start: u64, len: u64) {
    use rustix::fs::FallocateFlags;
    let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
    let _ = rustix::fs::fallocate(file, flags, start, len);
}

#[cfg(not(target_os = "linux"))]
fn punch_hole(_file: &File, _start: u64, _len: u64) {}

/// The kept and rejected batches of one spilled range.
pub(crate) fn read(
    files: &[SpillFile],
    at: &Spilled,
) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>), CleanError> {
    let spill = files
        .get(at.file)
        .ok_or_else(|| CleanError::Plan("a spilled range names no scratch file".into()))?;
    // Two mappings, not one: a mapped page counts in the process's RSS for
    // as long as anything maps it. The kept candidates are filtered (copied)
    // right away and their mapping goes with them, while reject batches
    // wait in their queue for up to a dozen ranges; one mapping shared by
    // both kept every waiting range's kept pages resident too (48 MB of a
    // 159 MB peak at 1M rows and two threads).
    let kept = spill.decode(&spill.map(at.kept.0, at.kept.1)?)?;
    let rejects = spill.decode(&spill.map(at.rejects.0, at.rejects.1)?)?;
    Ok((kept, rejects))
}

struct Counted<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn batch(schema: &SchemaRef, from: i64, n: i64) -> RecordBatch {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(from..from + n));
        let names: ArrayRef = Arc::new(StringArray::from_iter(
            (from..from + n).map(|i| (i % 3 != 0).then(|| format!("row {i}"))),
        ));
        RecordBatch::try_new(schema.clone(), vec![ids, names]).unwrap()
    }

    #[test]
    fn ranges_come_back_as_written_from_any_file() {
        let dir = tempfile::tempdir().unwrap();
        let kept = schema();
        let rejects = kept.clone();
        let mut files = vec![
            SpillFile::create(dir.path()).unwrap(),
            SpillFile::create(dir.path()).unwrap(),
        ];
        let mut spilled = Vec::new();
        for r in 0..6i64 {
            let f = (r % 2) as usize;
            let k = vec![batch(&kept, r * 100, 10 + r), batch(&kept, r * 100 + 50, 3)];
            let j = if r == 3 {
                vec![]
            } else {
                vec![batch(&rejects, -r, 1)]
            };
            let at = files[f].append(f, (&kept, &k), (&rejects, &j)).unwrap();
            spilled.push((at, k, j));
        }
        // Scratch files are anonymous: nothing is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        for (at, k, j) in spilled.iter().rev() {
            let (k2, j2) = read(&files, at).unwrap();
            assert_eq!(&k2, k);
            assert_eq!(&j2, j);
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_read_span_gives_its_pages_back_and_leaves_its_neighbours_whole() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let schema = schema();
        let mut file = SpillFile::create(dir.path()).unwrap();
        // Spans of a few pages each, their ends sharing pages.
        let spans: Vec<_> = (0..8i64)
            .map(|r| {
                let k = vec![batch(&schema, r * 10_000, 3_000 + r)];
                let j = vec![batch(&schema, -r, 1 + r)];
                (file.append(0, (&schema, &k), (&schema, &j)).unwrap(), k, j)
            })
            .collect();
        let files = vec![file];
        let blocks = || files[0].file.metadata().unwrap().blocks();
        let before = blocks();
        for (at, k, j) in spans.iter().step_by(2) {
            let (k2, j2) = read(&files, at).unwrap();
            assert_eq!((&k2, &j2), (k, j));
        }
        let after = blocks();
        // Every other span is given back; the rest still read whole.
        for (at, k, j) in spans.iter().skip(1).step_by(2) {
            let (k2, j2) = read(&files, at).unwrap();
            assert_eq!((&k2, &j2), (k, j));
        }
        if punch_hole_works(dir.path()) {
            assert!(after < before, "{after} blocks after, {before} before");
        }
    }

    #[cfg(target_os = "linux")]
    /// Whether this file system frees blocks on punch-hole (tmpfs, ext4 and
    /// xfs do), asked of the kernel directly, not through the code under
    /// test: a `punch_hole` that did nothing must fail the test, not skip it.
    fn punch_hole_works(dir: &Path) -> bool {
        use rustix::fs::FallocateFlags;
        use std::os::unix::fs::MetadataExt;
        let mut probe = tempfile::tempfile_in(dir).unwrap();
        probe.write_all(&[1u8; 1 << 16]).unwrap();
        probe.sync_all().unwrap();
        let before = probe.metadata().unwrap().blocks();
        let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        rustix::fs::fallocate(&probe, flags, 0, 1 << 16).is_ok()
            && probe.metadata().unwrap().blocks() < before
    }

    #[test]
    fn missing_scratch_space_is_a_retryable_error_naming_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("not-there");
        let Err(err) = SpillFile::create(&gone) else {
            panic!("a scratch file in a missing directory");
        };
        assert!(matches!(err, CleanError::Scratch { .. }), "{err}");
        assert!(err.to_string().contains("not-there"), "{err}");
        assert!(err.retryable());
    }
}
