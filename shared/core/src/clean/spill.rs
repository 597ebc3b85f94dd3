//! Parsed ranges kept on scratch disk until dedupe has decided which rows
//! win, so that every row is parsed and evaluated once.
//!
//! Each scanning thread appends the ranges it parsed to its own scratch
//! file, as two Arrow IPC streams per range (kept candidates, then rejects),
//! uncompressed: each is written once and read back once, usually from the
//! page cache. Memory stays bounded by a few ranges. The scratch files are
//! unlinked from the start, so the space (about the size of the kept data
//! in Arrow form) is freed when they close, even if the process dies.

use super::CleanError;
use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::SchemaRef;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// One thread's scratch file.
pub(crate) struct SpillFile {
    file: File,
    len: u64,
    dir: PathBuf,
}

/// Where one range's batches are: which scratch file, and the byte spans
/// of its kept and rejected streams.
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
        let kept_span = self.append_stream(kept.0, kept.1)?;
        let rejects_span = self.append_stream(rejects.0, rejects.1)?;
        Ok(Spilled {
            file: index,
            kept: kept_span,
            rejects: rejects_span,
        })
    }

    fn append_stream(
        &mut self,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<(u64, u64), CleanError> {
        let start = self.len;
        let mut counted = Counted {
            inner: BufWriter::with_capacity(1 << 20, &self.file),
            written: 0,
        };
        let mut writer = StreamWriter::try_new(&mut counted, schema).map_err(|e| self.err(e))?;
        for batch in batches {
            writer.write(batch).map_err(|e| self.err(e))?;
        }
        writer.finish().map_err(|e| self.err(e))?;
        drop(writer);
        counted.inner.flush().map_err(|e| self.io_err(e))?;
        self.len += counted.written;
        Ok((start, counted.written))
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

/// The kept and rejected batches of one spilled range.
pub(crate) fn read(
    files: &[SpillFile],
    at: &Spilled,
) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>), CleanError> {
    let spill = files
        .get(at.file)
        .ok_or_else(|| CleanError::Plan("a spilled range names no scratch file".into()))?;
    let read_stream = |(offset, len): (u64, u64)| -> Result<Vec<RecordBatch>, CleanError> {
        let span = Span {
            file: &spill.file,
            offset,
            remaining: len,
        };
        // Small reads (message headers) go through the buffer; bodies are
        // larger and are read straight into the arrays' own buffers.
        let reader = StreamReader::try_new(BufReader::with_capacity(64 << 10, span), None)
            .map_err(|e| spill.err(e))?;
        // SAFETY: the stream was written by `append` in this process, from
        // arrays Arrow had built and checked, to an unlinked file no other
        // process can name; validating it again would check our own work
        // (DataFusion reads its own spill files the same way).
        let reader = unsafe { reader.with_skip_validation(true) };
        reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| spill.err(e))
    };
    Ok((read_stream(at.kept)?, read_stream(at.rejects)?))
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

/// A byte span of a file, read with positioned reads so that threads
/// share the file without a cursor.
struct Span<'a> {
    file: &'a File,
    offset: u64,
    remaining: u64,
}

impl Read for Span<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.offset)?;
        self.offset += n as u64;
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;

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
        let kept: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
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
