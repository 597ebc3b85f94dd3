//! A dataset's cleaning rules compiled once into what the row loop needs, and
//! the row evaluation itself: trim → null → required → types → value rules.

use crate::config::{ColumnType, DatasetConfig, DerivedKind, NaiveTimestamps};
use crate::timestamps::{parse_date_days, parse_timestamp_micros, utc_day_of_micros};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::Arc;

/// Reject reasons the cleaner itself assigns (rules add their own).
pub const REASON_NULL_REQUIRED: &str = "null_required";
pub const REASON_RAGGED_ROW: &str = "ragged_row";
pub const REASON_INVALID_UTF8: &str = "invalid_utf8";

pub(crate) struct CompiledColumn {
    pub name: String,
    pub column_type: ColumnType,
    pub required: bool,
    pub invalid_reason: String,
    pub naive: NaiveTimestamps,
}

pub(crate) enum Check {
    Range {
        min: Option<f64>,
        max: Option<f64>,
        min_exclusive: bool,
        max_exclusive: bool,
    },
    Allowed(Vec<Box<[u8]>>),
    Regex(regex::bytes::Regex),
}

pub(crate) struct CompiledRule {
    pub column: usize,
    pub check: Check,
    pub reason: String,
    pub reject_null: bool,
}

/// Everything the cleaner needs to know about one dataset, compiled.
pub struct CleanPlan {
    pub(crate) columns: Vec<CompiledColumn>,
    pub(crate) rules: Vec<CompiledRule>,
    /// (output name, source column index) of each `date_of` derived column.
    pub(crate) derived: Vec<(String, usize)>,
    pub(crate) key: Vec<usize>,
    pub(crate) event_time: Option<usize>,
    pub(crate) null_markers: Vec<Box<[u8]>>,
    pub(crate) trim: bool,
    pub(crate) fail_on_extra_columns: bool,
    kept_schema: SchemaRef,
}

impl CleanPlan {
    /// Compile a dataset config. The config was validated at load, so
    /// references resolve; a failure here is a bug, reported as such.
    pub fn compile(ds: &DatasetConfig) -> Result<CleanPlan, String> {
        let index = |name: &str| {
            ds.columns
                .iter()
                .position(|c| c.name == name)
                .ok_or_else(|| format!("column {name:?} is not declared"))
        };
        let columns = ds
            .columns
            .iter()
            .map(|c| CompiledColumn {
                name: c.name.clone(),
                column_type: c.column_type,
                required: c.required,
                invalid_reason: c.invalid_reason(),
                naive: c.naive_timestamps,
            })
            .collect::<Vec<_>>();
        let mut rules = Vec::new();
        for r in &ds.rules {
            let check = if let Some(allowed) = &r.allowed {
                Check::Allowed(allowed.iter().map(|a| a.as_bytes().into()).collect())
            } else if let Some(re) = &r.regex {
                Check::Regex(regex::bytes::Regex::new(re).map_err(|e| e.to_string())?)
            } else {
                Check::Range {
                    min: r.min,
                    max: r.max,
                    min_exclusive: r.min_exclusive,
                    max_exclusive: r.max_exclusive,
                }
            };
            rules.push(CompiledRule {
                column: index(&r.column)?,
                check,
                reason: r.reason.clone(),
                reject_null: r.reject_null,
            });
        }
        let derived = ds
            .derived
            .iter()
            .map(|d| match d.kind {
                DerivedKind::DateOf => index(&d.from).map(|i| (d.name.clone(), i)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key = ds
            .key
            .iter()
            .map(|k| index(k))
            .collect::<Result<Vec<_>, _>>()?;
        let event_time = ds.event_time.as_deref().map(index).transpose()?;
        let mut fields: Vec<Field> = columns
            .iter()
            .map(|c| Field::new(&c.name, arrow_type(c.column_type), !c.required))
            .collect();
        for (name, src) in &derived {
            fields.push(Field::new(name, DataType::Date32, !columns[*src].required));
        }
        Ok(CleanPlan {
            columns,
            rules,
            derived,
            key,
            event_time,
            null_markers: ds
                .null_markers
                .iter()
                .map(|m| m.as_bytes().into())
                .collect(),
            trim: ds.trim,
            fail_on_extra_columns: ds.extra_columns == crate::config::ExtraColumns::Fail,
            kept_schema: Arc::new(Schema::new(fields)),
        })
    }

    pub fn kept_schema(&self) -> SchemaRef {
        self.kept_schema.clone()
    }

    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    pub(crate) fn is_null(&self, v: &[u8]) -> bool {
        v.is_empty() || self.null_markers.iter().any(|m| **m == *v)
    }
}

pub fn arrow_type(t: ColumnType) -> DataType {
    match t {
        ColumnType::String => DataType::Utf8,
        ColumnType::Int => DataType::Int64,
        ColumnType::Float => DataType::Float64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    }
}

/// Remove leading and trailing ASCII space and tab — nothing else, so that
/// meaningful Unicode whitespace is not silently eaten.
#[inline]
pub fn trim_space_tab(v: &[u8]) -> &[u8] {
    let padding = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    // Almost no field is padded: two byte checks settle it.
    if !padding(v.first()) && !padding(v.last()) {
        return v;
    }
    trim_padding(v)
}

#[cold]
fn trim_padding(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// One parsed cell of a row being evaluated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cell {
    Null,
    Str,
    Int(i64),
    Float(f64),
    Bool(bool),
    Date(i32),
    Timestamp(i64),
}

/// Which check refused a row (a column or rule index), before it is worded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RejectCause {
    NullRequired,
    Invalid(usize),
    RuleOnEmpty(usize),
    Rule(usize),
}

/// Why a row was rejected: a stable reason code and a human detail.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub reason: String,
    pub detail: String,
}

fn parse_bool(v: &[u8]) -> Option<bool> {
    match v.to_ascii_lowercase().as_slice() {
        b"true" | b"t" | b"yes" | b"y" | b"1" => Some(true),
        b"false" | b"f" | b"no" | b"n" | b"0" => Some(false),
        _ => None,
    }
}

/// What `i64::from_str` accepts (an optional sign, then ASCII digits, no
/// overflow), without first checking the bytes are UTF-8.
fn parse_int(v: &[u8]) -> Option<i64> {
    let (negative, digits) = match v {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, v),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?;
        n = if negative {
            n.checked_sub(d as i64)?
        } else {
            n.checked_add(d as i64)?
        };
    }
    Some(n)
}

fn parse_float(v: &[u8]) -> Option<f64> {
    if let Some(f) = plain_decimal(v) {
        return Some(f);
    }
    // Rust accepts "inf" and "NaN"; a data platform must not.
    let f = std::str::from_utf8(v).ok()?.parse::<f64>().ok()?;
    f.is_finite().then_some(f)
}

/// The common shape of amounts, `[-+]digits[.digits]` with at most 15
/// digits in all, converted exactly: the digits as an integer and the power
/// of ten are both exact doubles, so one division is correctly rounded
/// (Clinger's fast path) and the result is what `f64::from_str` gives.
/// Anything else goes to the full parser.
fn plain_decimal(v: &[u8]) -> Option<f64> {
    const POWERS: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (negative, body) = match v {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, v),
    };
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    let mut fraction_digits = None;
    for (i, &b) in body.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + (b - b'0') as u64;
                digits += 1;
                if let Some(f) = fraction_digits.as_mut() {
                    *f += 1;
                }
            }
            b'.' if fraction_digits.is_none() && i > 0 && i + 1 < body.len() => {
                fraction_digits = Some(0usize)
            }
            _ => return None,
        }
        if digits > 15 {
            return None;
        }
    }
    if digits == 0 {
        return None;
    }
    let value = mantissa as f64 / POWERS[fraction_digits.unwrap_or(0)];
    Some(if negative { -value } else { value })
}

/// A non-null value as its column's type; `None` when it does not parse.
#[inline]
fn parse_cell(c: &CompiledColumn, v: &[u8]) -> Option<Cell> {
    match c.column_type {
        ColumnType::String => Some(Cell::Str),
        ColumnType::Int => parse_int(v).map(Cell::Int),
        ColumnType::Float => parse_float(v).map(Cell::Float),
        ColumnType::Bool => parse_bool(v).map(Cell::Bool),
        ColumnType::Date => parse_date_days(v).map(Cell::Date),
        ColumnType::Timestamp => parse_timestamp_micros(v, c.naive).map(Cell::Timestamp),
    }
}

impl CleanPlan {
    /// Evaluate one row whose fields (already trimmed, in config column
    /// order; `None` for a column missing from the file) are given. Fills
    /// `cells` and returns the first failing rule, if any, as a cause that
    /// costs nothing to make: pass 1 only needs to know a row failed, and
    /// [`CleanPlan::explain`] words it for the rows that are kept.
    pub(crate) fn evaluate(
        &self,
        fields: &[Option<&[u8]>],
        cells: &mut Vec<Cell>,
    ) -> Result<(), RejectCause> {
        // One pass over the columns: a null required column outranks an
        // unparseable one wherever each sits, so the first invalid column is
        // remembered rather than returned.
        let n = self.columns.len();
        cells.resize(n, Cell::Null);
        let mut missing = false;
        let mut invalid = None;
        let columns = self.columns.iter().zip(fields).zip(cells.iter_mut());
        for (i, ((c, f), cell)) in columns.enumerate() {
            *cell = match f {
                Some(v) if !self.is_null(v) => match parse_cell(c, v) {
                    Some(parsed) => parsed,
                    None => {
                        invalid = invalid.or(Some(i));
                        Cell::Str
                    }
                },
                _ => {
                    missing |= c.required;
                    Cell::Null
                }
            };
        }
        if missing {
            return Err(RejectCause::NullRequired);
        }
        if let Some(i) = invalid {
            return Err(RejectCause::Invalid(i));
        }
        for (index, r) in self.rules.iter().enumerate() {
            let cell = cells[r.column];
            if cell == Cell::Null {
                if r.reject_null {
                    return Err(RejectCause::RuleOnEmpty(index));
                }
                continue;
            }
            let v = fields[r.column].unwrap_or_default();
            let ok = match &r.check {
                Check::Range {
                    min,
                    max,
                    min_exclusive,
                    max_exclusive,
                } => {
                    let x = match cell {
                        Cell::Int(i) => i as f64,
                        Cell::Float(f) => f,
                        _ => f64::NAN,
                    };
                    let above = min.is_none_or(|m| if *min_exclusive { x > m } else { x >= m });
                    let below = max.is_none_or(|m| if *max_exclusive { x < m } else { x <= m });
                    above && below
                }
                // Lengths first: most candidates differ in length, and
                // a call to memcmp per candidate costs more than the row.
                Check::Allowed(set) => set.iter().any(|a| a.len() == v.len() && **a == *v),
                Check::Regex(re) => re.is_match(v),
            };
            if !ok {
                return Err(RejectCause::Rule(index));
            }
        }
        Ok(())
    }

    /// The reason and, when `with_detail`, a human detail for a row
    /// `evaluate` refused. The detail is only written with provenance, and
    /// formatting it costs more than the rest of the row.
    pub(crate) fn explain(
        &self,
        cause: RejectCause,
        fields: &[Option<&[u8]>],
        cells: &[Cell],
        with_detail: bool,
    ) -> Rejection {
        let reason = match cause {
            RejectCause::NullRequired => REASON_NULL_REQUIRED,
            RejectCause::Invalid(i) => &self.columns[i].invalid_reason,
            RejectCause::RuleOnEmpty(r) | RejectCause::Rule(r) => &self.rules[r].reason,
        };
        let detail = if with_detail {
            self.detail(cause, fields, cells)
        } else {
            String::new()
        };
        Rejection {
            reason: reason.to_string(),
            detail,
        }
    }

    fn detail(&self, cause: RejectCause, fields: &[Option<&[u8]>], cells: &[Cell]) -> String {
        let text = |i: usize| String::from_utf8_lossy(fields[i].unwrap_or_default()).into_owned();
        match cause {
            RejectCause::NullRequired => {
                let missing: Vec<&str> = self
                    .columns
                    .iter()
                    .zip(cells)
                    .filter(|(c, cell)| c.required && **cell == Cell::Null)
                    .map(|(c, _)| c.name.as_str())
                    .collect();
                format!("required column(s) empty: {}", missing.join(", "))
            }
            RejectCause::Invalid(i) => {
                let c = &self.columns[i];
                format!(
                    "{}: {:?} is not a valid {}",
                    c.name,
                    text(i),
                    c.column_type.name()
                )
            }
            RejectCause::RuleOnEmpty(r) => {
                format!("{}: empty", self.columns[self.rules[r].column].name)
            }
            RejectCause::Rule(r) => {
                let rule = &self.rules[r];
                format!(
                    "{}: {:?} fails rule {}",
                    self.columns[rule.column].name,
                    text(rule.column),
                    rule.reason
                )
            }
        }
    }

    /// The event time of an evaluated row (for dedupe), if configured.
    pub(crate) fn event_time_of(&self, cells: &[Cell]) -> Option<i64> {
        match self.event_time.map(|i| cells[i]) {
            Some(Cell::Timestamp(t)) => Some(t),
            _ => None,
        }
    }

    pub(crate) fn derived_day(&self, cells: &[Cell], source: usize) -> Option<i32> {
        match cells[source] {
            Cell::Timestamp(t) => Some(utc_day_of_micros(t)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parse_float_agrees_with_the_standard_library() {
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "-0.00",
            "+1.5",
            "12.34",
            "0.1",
            "0.3",
            "123456789012345",
            "1234567890123456",
            "99999.99999",
            "1.",
            ".5",
            "1e5",
            "1.2.3",
            "",
            "-",
            ".",
            "inf",
            "NaN",
            "0x1",
            "1_0",
            "00012.50",
            "9007199254740993",
            "3.141592653589793",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Every amount a generator writes: up to 6 integer and 2 fraction digits.
        for i in (0..2_000_000u64).step_by(997) {
            cases.push(format!("{}.{:02}", i / 100, i % 100));
            cases.push(format!("-{}.{:03}", i, i % 1000));
        }
        for c in &cases {
            let ours = super::parse_float(c.as_bytes());
            let std = c.parse::<f64>().ok().filter(|f| f.is_finite());
            assert_eq!(
                ours.map(f64::to_bits),
                std.map(f64::to_bits),
                "{c:?}: {ours:?} vs {std:?}"
            );
        }
    }

    #[test]
    fn parse_int_agrees_with_the_standard_library() {
        let cases = [
            "0",
            "-0",
            "+7",
            "42",
            "-42",
            "007",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "-9223372036854775809",
            "",
            "-",
            "+",
            "1.0",
            " 1",
            "1 ",
            "1_000",
            "0x10",
            "٣",
            "12a",
        ];
        for c in cases {
            assert_eq!(
                super::parse_int(c.as_bytes()),
                c.parse::<i64>().ok(),
                "{c:?}"
            );
        }
    }
}
