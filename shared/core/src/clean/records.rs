//! RFC 4180 record splitting tuned for the common case.
//!
//! Almost every line of an upstream export has no quotes and ends in `\n`:
//! those are split with `memchr` straight out of the read buffer, without
//! copying. So are lines whose quotes only wrap whole fields (`"a, b",c`),
//! the fields taken from inside the quotes. Any other line with a quote, or
//! with a bare `\r`, goes through a state machine
//! (runs inside a field copied whole, quotes and delimiters a byte at a time)
//! with the csv crate's semantics (a quote opens a quoted field
//! only at the start of a field, `""` inside one is a quote, `\r`, `\n` and
//! `\r\n` all end a record, empty lines are skipped), so quoted commas and
//! newlines, CRLF files and stray quotes come out exactly as before.
//!
//! UTF-8 is validated once per buffer fill rather than once per record; only
//! a record that overlaps an invalid stretch is checked on its own.

use std::io::Read;
use std::ops::Range;

const READ_SIZE: usize = 1 << 20;
/// A record this long is almost certainly an unterminated quote swallowing
/// the rest of the file; stop before it swallows the machine's memory too.
pub(crate) const MAX_RECORD_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// `line` counts from the reader's first line, 1.
    #[error("a record is longer than {} MiB; an unterminated quote (\") probably runs to the end of the file", MAX_RECORD_BYTES >> 20)]
    TooLong { line: u64 },
}

pub(crate) struct Record<'a> {
    data: &'a [u8],
    fields: &'a [Range<usize>],
    /// 1-based line the record starts on.
    pub line: u64,
    pub utf8: bool,
}

impl<'a> Record<'a> {
    pub fn len(&self) -> usize {
        self.fields.len()
    }
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        self.fields.get(i).map(|r| &self.data[r.clone()])
    }
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.fields.iter().map(|r| &self.data[r.clone()])
    }
}

pub(crate) struct RecordReader<R> {
    source: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    /// Bytes `pos..utf8_valid_until` are known to be valid UTF-8.
    utf8_valid_until: usize,
    /// Line number of the byte at `pos`.
    line: u64,
    fields: Vec<Range<usize>>,
    /// Unescaped bytes of a record that took the slow path.
    unescaped: Vec<u8>,
    /// Bytes read from `source` so far.
    read_total: u64,
}

impl<R: Read> RecordReader<R> {
    pub fn new(source: R) -> Self {
        RecordReader {
            source,
            buf: vec![0; READ_SIZE],
            pos: 0,
            end: 0,
            eof: false,
            utf8_valid_until: 0,
            line: 1,
            fields: Vec::with_capacity(32),
            unescaped: Vec::new(),
            read_total: 0,
        }
    }

    /// Bytes of the source consumed by the records returned so far (and the
    /// empty lines before them): where the next record starts.
    pub fn position(&self) -> u64 {
        self.read_total - (self.end - self.pos) as u64
    }

    /// Line breaks consumed so far.
    pub fn lines_consumed(&self) -> u64 {
        self.line - 1
    }

    /// Read more input, keeping `pos..end`; false at end of input.
    fn fill(&mut self) -> Result<bool, RecordError> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.utf8_valid_until -= self.pos.min(self.utf8_valid_until);
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_RECORD_BYTES {
                return Err(RecordError::TooLong { line: self.line });
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = loop {
            match self.source.read(&mut self.buf[self.end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.end += n;
        self.read_total += n as u64;
        self.revalidate_utf8();
        Ok(true)
    }

    /// Extend the known-valid stretch as far as it goes; an incomplete
    /// character at the end of the buffer is left for the next fill.
    fn revalidate_utf8(&mut self) {
        let from = self.utf8_valid_until.max(self.pos);
        self.utf8_valid_until = match simdutf8::compat::from_utf8(&self.buf[from..self.end]) {
            Ok(_) => self.end,
            Err(e) => from + e.valid_up_to(),
        };
    }

    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, RecordError> {
        loop {
            if self.pos == self.end && !self.fill()? {
                return Ok(None);
            }
            // Empty lines are not records.
            match self.buf[self.pos] {
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    continue;
                }
                b'\r' => {
                    if self.pos + 1 == self.end && self.fill()? {
                        continue; // maybe the first half of a CRLF split by the read
                    }
                    self.pos += 1;
                    if self.pos < self.end && self.buf[self.pos] == b'\n' {
                        self.pos += 1;
                    }
                    self.line += 1;
                    continue;
                }
                _ => {}
            }
            let Some(nl) = memchr::memchr(b'\n', &self.buf[self.pos..self.end]) else {
                if self.eof {
                    return self.slow_record();
                }
                self.fill()?;
                continue;
            };
            let line_end = self.pos + nl;
            let content_end = if line_end > self.pos && self.buf[line_end - 1] == b'\r' {
                line_end - 1
            } else {
                line_end
            };
            // One scan finds the commas and whether the line has a quote or
            // a bare CR; such a line is tried as simply quoted before it
            // goes to the state machine.
            self.fields.clear();
            let line_bytes = &self.buf[self.pos..content_end];
            if !split_plain_line(line_bytes, self.pos, &mut self.fields)
                && !split_simply_quoted_line(line_bytes, self.pos, &mut self.fields)
            {
                return self.slow_record();
            }
            let record_start = self.pos;
            let line = self.line;
            self.pos = line_end + 1;
            self.line += 1;
            let utf8 = content_end <= self.utf8_valid_until
                || simdutf8::basic::from_utf8(&self.buf[record_start..content_end]).is_ok();
            if line_end >= self.utf8_valid_until {
                self.revalidate_utf8_after(line_end + 1);
            }
            return Ok(Some(Record {
                data: &self.buf,
                fields: &self.fields,
                line,
                utf8,
            }));
        }
    }

    /// After a record that overlapped invalid bytes, resume bulk validation
    /// from the next record.
    fn revalidate_utf8_after(&mut self, from: usize) {
        if from <= self.end && self.utf8_valid_until < from {
            self.utf8_valid_until = from;
            self.revalidate_utf8();
        }
    }

    /// The full state machine, for records with quotes or bare `\r`.
    fn slow_record(&mut self) -> Result<Option<Record<'_>>, RecordError> {
        #[derive(PartialEq, Clone, Copy)]
        enum State {
            FieldStart,
            Unquoted,
            Quoted,
            /// Saw a `"` inside a quoted field: `""` or the closing quote.
            QuoteInQuoted,
        }
        self.unescaped.clear();
        self.fields.clear();
        let line = self.line;
        let mut state = State::FieldStart;
        let mut field_start = 0usize;
        let mut i = self.pos;
        loop {
            if i == self.end {
                // Everything so far is copied out: let the buffer be reused.
                self.pos = i;
                if !self.fill()? {
                    // End of input ends the record (even inside quotes, as
                    // the csv crate does).
                    break;
                }
                i = self.pos;
                continue;
            }
            // Runs inside a field are copied whole; only quotes and
            // delimiters go through the byte-at-a-time match below.
            let run = &self.buf[i..self.end];
            let run_len = match state {
                State::Quoted => memchr::memchr(b'"', run).unwrap_or(run.len()),
                State::Unquoted => memchr::memchr3(b',', b'\n', b'\r', run).unwrap_or(run.len()),
                State::FieldStart | State::QuoteInQuoted => 0,
            };
            if run_len > 0 {
                let run = &run[..run_len];
                if state == State::Quoted {
                    self.line += memchr::memchr_iter(b'\n', run).count() as u64;
                }
                self.unescaped.extend_from_slice(run);
                i += run_len;
                if self.unescaped.len() > MAX_RECORD_BYTES {
                    return Err(RecordError::TooLong { line });
                }
                continue;
            }
            let b = self.buf[i];
            i += 1;
            match (state, b) {
                (State::Quoted, b'"') => state = State::QuoteInQuoted,
                (State::Quoted, _) => {
                    if b == b'\n' {
                        self.line += 1;
                    }
                    self.unescaped.push(b);
                }
                (State::QuoteInQuoted, b'"') => {
                    self.unescaped.push(b'"');
                    state = State::Quoted;
                }
                (State::FieldStart, b'"') => state = State::Quoted,
                (_, b',') => {
                    self.fields.push(field_start..self.unescaped.len());
                    field_start = self.unescaped.len();
                    state = State::FieldStart;
                }
                (_, b'\n') => {
                    self.line += 1;
                    self.pos = i;
                    break;
                }
                (_, b'\r') => {
                    if i == self.end {
                        self.pos = i;
                        self.fill()?;
                        i = self.pos;
                    }
                    if i < self.end && self.buf[i] == b'\n' {
                        i += 1;
                    }
                    self.line += 1;
                    self.pos = i;
                    break;
                }
                (_, _) => {
                    self.unescaped.push(b);
                    state = State::Unquoted;
                }
            }
            if self.unescaped.len() > MAX_RECORD_BYTES {
                return Err(RecordError::TooLong { line });
            }
        }
        self.fields.push(field_start..self.unescaped.len());
        let utf8 = simdutf8::basic::from_utf8(&self.unescaped).is_ok();
        if self.utf8_valid_until < self.pos {
            self.revalidate_utf8_after(self.pos);
        }
        Ok(Some(Record {
            data: &self.unescaped,
            fields: &self.fields,
            line,
            utf8,
        }))
    }
}

/// Push the field ranges (offset by `base`) of a line without a quote or a
/// CR and return true; return false, with `fields` unspecified, when the
/// line has one and needs the state machine.
fn split_plain_line(line: &[u8], base: usize, fields: &mut Vec<Range<usize>>) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { split_plain_line_avx2(line, base, fields) };
    }
    split_plain_line_scalar(line, 0, base, base, fields)
}

/// A line whose quotes only wrap whole fields (`"a, b",c,""`), the usual
/// shape of exports that quote their text: fields are ranges inside the
/// quotes, nothing is copied. Anything else is left to the state machine
/// (false): `""` inside a field (it needs unescaping), a quote that does
/// not open a field or is not followed by a comma or the line's end, a
/// quoted field running past the line (its line break is data), a `\r`.
fn split_simply_quoted_line(line: &[u8], base: usize, fields: &mut Vec<Range<usize>>) -> bool {
    fields.clear();
    if memchr::memchr(b'\r', line).is_some() {
        return false;
    }
    let mut at = 0;
    loop {
        if line.get(at) == Some(&b'"') {
            let Some(close) = memchr::memchr(b'"', &line[at + 1..]).map(|c| at + 1 + c) else {
                return false;
            };
            fields.push(base + at + 1..base + close);
            match line.get(close + 1) {
                None => return true,
                Some(b',') => at = close + 2,
                Some(_) => return false,
            }
        } else {
            let end = memchr::memchr2(b',', b'"', &line[at..]).map(|c| at + c);
            match end {
                None => {
                    fields.push(base + at..base + line.len());
                    return true;
                }
                Some(comma) if line[comma] == b',' => {
                    fields.push(base + at..base + comma);
                    at = comma + 1;
                }
                Some(_) => return false,
            }
        }
        if at == line.len() {
            // A comma ended the line: one more, empty field.
            fields.push(base + at..base + at);
            return true;
        }
    }
}

/// From `from` on; `start` is where the current field began.
fn split_plain_line_scalar(
    line: &[u8],
    from: usize,
    base: usize,
    mut start: usize,
    fields: &mut Vec<Range<usize>>,
) -> bool {
    for hit in memchr::memchr3_iter(b',', b'"', b'\r', &line[from..]) {
        let at = from + hit;
        if line[at] != b',' {
            return false;
        }
        fields.push(start..base + at);
        start = base + at + 1;
    }
    fields.push(start..base + line.len());
    true
}

/// 32 bytes at a time: one compare per byte class, then a walk over the
/// commas' bits. Lines of an export are short and comma-dense, where
/// restarting a search per comma costs more than the comparisons.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn split_plain_line_avx2(line: &[u8], base: usize, fields: &mut Vec<Range<usize>>) -> bool {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
        _mm256_set1_epi8,
    };
    let comma = _mm256_set1_epi8(b',' as i8);
    let quote = _mm256_set1_epi8(b'"' as i8);
    let cr = _mm256_set1_epi8(b'\r' as i8);
    let mut start = base;
    let mut i = 0;
    while i + 32 <= line.len() {
        // SAFETY: i + 32 <= line.len(): the 32 bytes are inside the line;
        // loadu has no alignment requirement.
        let chunk = unsafe { _mm256_loadu_si256(line.as_ptr().add(i) as *const __m256i) };
        let special = _mm256_or_si256(
            _mm256_cmpeq_epi8(chunk, quote),
            _mm256_cmpeq_epi8(chunk, cr),
        );
        if _mm256_movemask_epi8(special) != 0 {
            return false;
        }
        let mut commas = _mm256_movemask_epi8(_mm256_cmpeq_epi8(chunk, comma)) as u32;
        while commas != 0 {
            let at = i + commas.trailing_zeros() as usize;
            fields.push(start..base + at);
            start = base + at + 1;
            commas &= commas - 1;
        }
        i += 32;
    }
    // The rest: the line's last 32 bytes again (when it has 32), minus
    // those already walked; a short line byte by byte.
    if i < line.len() && line.len() >= 32 {
        let last = line.len() - 32;
        // SAFETY: last + 32 == line.len().
        let chunk = unsafe { _mm256_loadu_si256(line.as_ptr().add(last) as *const __m256i) };
        // 1..=31 bytes of this chunk were walked in the loop.
        let seen = (1u32 << (i - last)) - 1;
        let special = _mm256_or_si256(
            _mm256_cmpeq_epi8(chunk, quote),
            _mm256_cmpeq_epi8(chunk, cr),
        );
        if (_mm256_movemask_epi8(special) as u32) & !seen != 0 {
            return false;
        }
        let mut commas = (_mm256_movemask_epi8(_mm256_cmpeq_epi8(chunk, comma)) as u32) & !seen;
        while commas != 0 {
            let at = last + commas.trailing_zeros() as usize;
            fields.push(start..base + at);
            start = base + at + 1;
            commas &= commas - 1;
        }
        i = line.len();
    }
    for (j, &b) in line[i..].iter().enumerate() {
        match b {
            b',' => {
                fields.push(start..base + i + j);
                start = base + i + j + 1;
            }
            b'"' | b'\r' => return false,
            _ => {}
        }
    }
    fields.push(start..base + line.len());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record as (line, fields) with both the chunked reader and a
    /// 1-byte-at-a-time source, so buffer boundaries fall everywhere.
    fn split(input: &[u8]) -> Vec<(u64, Vec<String>, bool)> {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() || out.is_empty() {
                    return Ok(0);
                }
                out[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let collect = |mut r: RecordReader<Box<dyn Read + '_>>| {
            let mut all = Vec::new();
            while let Some(rec) = r.next_record().unwrap() {
                let fields = rec
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect();
                all.push((rec.line, fields, rec.utf8));
            }
            all
        };
        let whole = collect(RecordReader::new(Box::new(input)));
        let trickled = collect(RecordReader::new(Box::new(Trickle(input))));
        assert_eq!(whole, trickled, "buffer boundaries change the result");
        whole
    }

    fn rec(line: u64, fields: &[&str]) -> (u64, Vec<String>, bool) {
        (line, fields.iter().map(|s| s.to_string()).collect(), true)
    }

    #[test]
    fn the_vector_splitter_agrees_with_the_scalar_one() {
        let mut lines: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b",".to_vec(),
            b",,,".to_vec(),
            b"a,b,c".to_vec(),
            [b'x'; 31].to_vec(),
            [b','; 32].to_vec(),
            [b','; 33].to_vec(),
        ];
        for len in [31usize, 32, 33, 63, 64, 65, 100, 200] {
            let mut line: Vec<u8> = (0..len)
                .map(|i| {
                    if i % 7 == 3 {
                        b','
                    } else {
                        b'a' + (i % 26) as u8
                    }
                })
                .collect();
            lines.push(line.clone());
            for special in [b'"', b'\r'] {
                for at in [0, len / 2, len - 1] {
                    let keep = line[at];
                    line[at] = special;
                    lines.push(line.clone());
                    line[at] = keep;
                }
            }
        }
        for line in lines {
            let mut scalar = Vec::new();
            let plain_scalar = split_plain_line_scalar(&line, 0, 10, 10, &mut scalar);
            let mut any = Vec::new();
            let plain_any = split_plain_line(&line, 10, &mut any);
            assert_eq!(plain_scalar, plain_any, "{line:?}");
            if plain_scalar {
                assert_eq!(scalar, any, "{line:?}");
            }
        }
    }

    /// The fields the state machine gives one line (no line break in it).
    fn state_machine_fields(line: &[u8]) -> Vec<Vec<u8>> {
        let mut reader = RecordReader::new(line);
        match reader.slow_record().unwrap() {
            Some(rec) => rec.iter().map(<[u8]>::to_vec).collect(),
            None => Vec::new(),
        }
    }

    #[test]
    fn simply_quoted_lines_split_as_the_state_machine_does() {
        // Every line of up to seven characters over an alphabet with
        // quotes, commas and spaces: where the fast split accepts a line,
        // it must give the state machine's fields.
        let alphabet = [b'a', b',', b'"', b' '];
        let mut accepted = 0;
        for len in 0..=7u32 {
            for n in 0..alphabet.len().pow(len) {
                let line: Vec<u8> = (0..len)
                    .map(|i| alphabet[n / alphabet.len().pow(i) % alphabet.len()])
                    .collect();
                let mut fields = Vec::new();
                if !split_simply_quoted_line(&line, 0, &mut fields) || line.is_empty() {
                    continue;
                }
                accepted += 1;
                let fast: Vec<Vec<u8>> = fields.iter().map(|r| line[r.clone()].to_vec()).collect();
                assert_eq!(
                    fast,
                    state_machine_fields(&line),
                    "{}",
                    String::from_utf8_lossy(&line)
                );
            }
        }
        assert!(accepted > 5_000, "{accepted}");
        for (line, quoted) in [
            (&b"\"a, b\",c,\"\""[..], true),
            (b"x,\"y\",", true),
            (b"\"a\"\"b\",c", false),
            (b" \"a\",b", false),
            (b"\"a\"b,c", false),
            (b"\"open,c", false),
            (b"\"a\",b\rc", false),
        ] {
            let mut fields = Vec::new();
            assert_eq!(
                split_simply_quoted_line(line, 0, &mut fields),
                quoted,
                "{line:?}"
            );
        }
    }

    #[test]
    fn plain_lines_and_a_last_line_without_newline() {
        assert_eq!(
            split(b"a,b,c\n1,,3\n4,5,6"),
            vec![
                rec(1, &["a", "b", "c"]),
                rec(2, &["1", "", "3"]),
                rec(3, &["4", "5", "6"])
            ]
        );
    }

    #[test]
    fn quotes_escapes_and_embedded_newlines() {
        assert_eq!(
            split(b"id,note\n1,\"a,b\"\n2,\"say \"\"hi\"\"\"\n3,\"two\nlines\"\n4,x\"y\n5,\"\"\n"),
            vec![
                rec(1, &["id", "note"]),
                rec(2, &["1", "a,b"]),
                rec(3, &["2", "say \"hi\""]),
                rec(4, &["3", "two\nlines"]),
                rec(6, &["4", "x\"y"]),
                rec(7, &["5", ""]),
            ]
        );
    }

    #[test]
    fn crlf_bare_cr_and_empty_lines() {
        assert_eq!(
            split(b"a,b\r\n1,2\r\n\r\n3,4\r5,6\n\n"),
            vec![
                rec(1, &["a", "b"]),
                rec(2, &["1", "2"]),
                rec(4, &["3", "4"]),
                rec(5, &["5", "6"]),
            ]
        );
    }

    #[test]
    fn invalid_utf8_is_flagged_per_record() {
        let got = split(b"a,b\n1,\xff\n\xc3\xa9,2\n");
        assert_eq!(got.len(), 3);
        assert!(got[0].2 && !got[1].2 && got[2].2);
        assert_eq!(got[2].1, vec!["é", "2"]);
    }

    #[test]
    fn agrees_with_the_csv_crate_on_awkward_input() {
        let input: &[u8] =
            b"h1,h2,h3\n\"a\"b,c,\"d\n\"\"e\"\"\"\r\n x ,\"\" , \"q\"\n,,\n\"unterminated,1,2";
        let ours: Vec<Vec<String>> = split(input).into_iter().map(|(_, f, _)| f).collect();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(input);
        let theirs: Vec<Vec<String>> = reader
            .byte_records()
            .map(|r| {
                r.unwrap()
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect()
            })
            .collect();
        assert_eq!(ours, theirs);
    }
}
