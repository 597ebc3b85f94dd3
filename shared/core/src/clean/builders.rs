//! Arrow builders for kept rows (typed) and rejected rows (trimmed strings
//! plus reason and provenance).

use super::plan::{Cell, CleanPlan, Rejection};
use crate::config::ColumnType;
use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;

/// A batch is finished once any of its string columns holds this much, not
/// only at its row count: memory stays bounded by the batch even when
/// fields are huge, and Arrow's i32 offsets cannot overflow (a record is at
/// most 64 MiB, so a column stops below 320 MiB).
pub(crate) const BATCH_STRING_BYTES: usize = 256 << 20;

enum ColumnBuilder {
    /// Raw bytes, validated as UTF-8 once per batch in `finish`.
    Str(BinaryBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl ColumnBuilder {
    fn new(t: ColumnType, capacity: usize) -> ColumnBuilder {
        match t {
            ColumnType::String => {
                ColumnBuilder::Str(BinaryBuilder::with_capacity(capacity, capacity * 8))
            }
            ColumnType::Int => ColumnBuilder::Int(Int64Builder::with_capacity(capacity)),
            ColumnType::Float => ColumnBuilder::Float(Float64Builder::with_capacity(capacity)),
            ColumnType::Bool => ColumnBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
            ColumnType::Date => ColumnBuilder::Date(Date32Builder::with_capacity(capacity)),
            ColumnType::Timestamp => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            ),
        }
    }

    /// The column so far; the builder starts again with room for `rows`
    /// rows (and as many string bytes as this batch held), since Arrow's
    /// own `finish` leaves it with none and the next batch would grow it
    /// by doubling, copying every value again.
    fn finish(&mut self, rows: usize) -> ArrayRef {
        match self {
            ColumnBuilder::Str(b) => {
                let bytes = b.values_slice().len();
                let array = utf8_column(b.finish());
                *b = BinaryBuilder::with_capacity(rows, bytes + bytes / 8);
                Arc::new(array)
            }
            ColumnBuilder::Int(b) => {
                Arc::new(std::mem::replace(b, Int64Builder::with_capacity(rows)).finish())
            }
            ColumnBuilder::Float(b) => {
                Arc::new(std::mem::replace(b, Float64Builder::with_capacity(rows)).finish())
            }
            ColumnBuilder::Bool(b) => {
                Arc::new(std::mem::replace(b, BooleanBuilder::with_capacity(rows)).finish())
            }
            ColumnBuilder::Date(b) => {
                Arc::new(std::mem::replace(b, Date32Builder::with_capacity(rows)).finish())
            }
            ColumnBuilder::Timestamp(b) => {
                let fresh = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
                Arc::new(std::mem::replace(b, fresh).finish())
            }
        }
    }
}

/// Rows reach the builders only after their record passed the UTF-8 check,
/// so the lossy branch is a safety net, not a path data takes. The check is
/// Arrow's own (the values are UTF-8 and every offset is on a character
/// boundary), done with a SIMD validator.
fn utf8_column(bytes: BinaryArray) -> StringArray {
    let values = bytes.values();
    let on_boundary = |o: &i32| {
        values.get(*o as usize).is_none_or(|b| (*b as i8) >= -0x40) // not a continuation byte
    };
    if simdutf8::basic::from_utf8(values).is_ok() && bytes.value_offsets().iter().all(on_boundary) {
        let (offsets, values, nulls) = bytes.into_parts();
        // SAFETY: just checked: the values are valid UTF-8 and every
        // offset falls on a character boundary, which is all
        // StringArray requires beyond BinaryArray's own invariants.
        return unsafe { StringArray::new_unchecked(offsets, values, nulls) };
    }
    bytes
        .iter()
        .map(|v| v.map(String::from_utf8_lossy))
        .collect()
}

pub(crate) struct KeptBuilders {
    columns: Vec<ColumnBuilder>,
    derived: Vec<Date32Builder>,
    schema: SchemaRef,
    len: usize,
    capacity: usize,
    /// A string column reached [`BATCH_STRING_BYTES`] in this batch.
    strings_full: bool,
}

impl KeptBuilders {
    pub fn new(plan: &CleanPlan, capacity: usize) -> KeptBuilders {
        KeptBuilders {
            columns: plan
                .columns
                .iter()
                .map(|c| ColumnBuilder::new(c.column_type, capacity))
                .collect(),
            derived: plan
                .derived
                .iter()
                .map(|_| Date32Builder::with_capacity(capacity))
                .collect(),
            schema: plan.kept_schema(),
            len: 0,
            capacity,
            strings_full: false,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch should be finished now: `rows` rows, or a string
    /// column at [`BATCH_STRING_BYTES`].
    pub fn is_full(&self, rows: usize) -> bool {
        self.len >= rows || self.strings_full
    }

    /// Append an evaluated, valid row. String fields are valid UTF-8 (checked
    /// per record before evaluation).
    pub fn append(&mut self, plan: &CleanPlan, fields: &[Option<&[u8]>], cells: &[Cell]) {
        for ((b, cell), field) in self.columns.iter_mut().zip(cells).zip(fields) {
            match (b, *cell) {
                (ColumnBuilder::Str(b), Cell::Str) => {
                    b.append_value(field.unwrap_or_default());
                    self.strings_full |= b.values_slice().len() >= BATCH_STRING_BYTES;
                }
                (ColumnBuilder::Int(b), Cell::Int(v)) => b.append_value(v),
                (ColumnBuilder::Float(b), Cell::Float(v)) => b.append_value(v),
                (ColumnBuilder::Bool(b), Cell::Bool(v)) => b.append_value(v),
                (ColumnBuilder::Date(b), Cell::Date(v)) => b.append_value(v),
                (ColumnBuilder::Timestamp(b), Cell::Timestamp(v)) => b.append_value(v),
                (ColumnBuilder::Str(b), _) => b.append_null(),
                (ColumnBuilder::Int(b), _) => b.append_null(),
                (ColumnBuilder::Float(b), _) => b.append_null(),
                (ColumnBuilder::Bool(b), _) => b.append_null(),
                (ColumnBuilder::Date(b), _) => b.append_null(),
                (ColumnBuilder::Timestamp(b), _) => b.append_null(),
            }
        }
        for (b, (_, src)) in self.derived.iter_mut().zip(&plan.derived) {
            b.append_option(plan.derived_day(cells, *src));
        }
        self.len += 1;
    }

    pub fn finish(&mut self) -> RecordBatch {
        let rows = self.capacity;
        let mut arrays: Vec<ArrayRef> = self.columns.iter_mut().map(|b| b.finish(rows)).collect();
        arrays.extend(self.derived.iter_mut().map(|b| {
            Arc::new(std::mem::replace(b, Date32Builder::with_capacity(rows)).finish()) as ArrayRef
        }));
        self.len = 0;
        self.strings_full = false;
        // The builders were made from the same plan as the schema, and
        // required columns never receive nulls (evaluation rejects them).
        RecordBatch::try_new(self.schema.clone(), arrays)
            .expect("kept builders always match the plan's schema")
    }
}

pub(crate) struct RejectBuilders {
    /// Raw bytes, validated as UTF-8 once per batch in `finish` (lossy for
    /// a batch holding a row that was not UTF-8, which its reason says).
    columns: Vec<BinaryBuilder>,
    reason: StringBuilder,
    provenance: Option<(StringBuilder, StringBuilder, Int64Builder)>,
    schema: SchemaRef,
    len: usize,
}

impl RejectBuilders {
    pub fn schema(plan: &CleanPlan, provenance: bool) -> SchemaRef {
        let mut fields: Vec<Field> = plan
            .column_names()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect();
        fields.push(Field::new("reject_reason", DataType::Utf8, false));
        if provenance {
            fields.push(Field::new("reject_detail", DataType::Utf8, false));
            fields.push(Field::new("source_file", DataType::Utf8, false));
            fields.push(Field::new("source_line", DataType::Int64, false));
        }
        Arc::new(Schema::new(fields))
    }

    pub fn new(plan: &CleanPlan, provenance: bool, capacity: usize) -> RejectBuilders {
        RejectBuilders {
            columns: plan
                .columns
                .iter()
                .map(|_| BinaryBuilder::with_capacity(capacity, capacity * 8))
                .collect(),
            reason: StringBuilder::new(),
            provenance: provenance.then(|| {
                (
                    StringBuilder::new(),
                    StringBuilder::new(),
                    Int64Builder::new(),
                )
            }),
            schema: RejectBuilders::schema(plan, provenance),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch should be finished now (see [`KeptBuilders::is_full`]).
    pub fn is_full(&self, rows: usize) -> bool {
        self.len >= rows
            || self
                .columns
                .iter()
                .any(|c| c.values_slice().len() >= BATCH_STRING_BYTES)
            || self
                .provenance
                .as_ref()
                .is_some_and(|(detail, _, _)| detail.values_slice().len() >= BATCH_STRING_BYTES)
    }

    /// Rejected values are kept as trimmed text (lossy only where the input
    /// was not UTF-8, which the reason then says), null where empty.
    pub fn append(
        &mut self,
        fields: &[Option<&[u8]>],
        rejection: &Rejection,
        source: &str,
        line: u64,
    ) {
        for (b, f) in self.columns.iter_mut().zip(fields) {
            match f {
                Some(v) if !v.is_empty() => b.append_value(v),
                _ => b.append_null(),
            }
        }
        self.reason.append_value(&rejection.reason);
        if let Some((detail, file, line_b)) = &mut self.provenance {
            detail.append_value(&rejection.detail);
            file.append_value(source);
            line_b.append_value(line as i64);
        }
        self.len += 1;
    }

    /// A batch built with provenance, its `source_line`s moved on by
    /// `by`: ranges are parsed before the line they start on is known.
    pub fn shift_lines(batch: &RecordBatch, by: u64) -> RecordBatch {
        let last = batch.num_columns().saturating_sub(1);
        let Some(lines) = batch
            .columns()
            .get(last)
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        else {
            return batch.clone();
        };
        let shifted: Int64Array = lines.unary(|line| line + by as i64);
        let mut columns = batch.columns().to_vec();
        columns[last] = Arc::new(shifted);
        RecordBatch::try_new(batch.schema(), columns)
            .expect("the same schema with one column replaced by its own type")
    }

    pub fn finish(&mut self) -> RecordBatch {
        let mut arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|b| Arc::new(utf8_column(b.finish())) as ArrayRef)
            .collect();
        arrays.push(Arc::new(self.reason.finish()));
        if let Some((detail, file, line)) = &mut self.provenance {
            arrays.push(Arc::new(detail.finish()));
            arrays.push(Arc::new(file.finish()));
            arrays.push(Arc::new(line.finish()));
        }
        self.len = 0;
        RecordBatch::try_new(self.schema.clone(), arrays)
            .expect("reject builders always match their schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_string_column() -> CleanPlan {
        let config = crate::config::Config::parse(
            "[datasets.t]\n[[datasets.t.columns]]\nname = \"note\"\ntype = \"string\"\n",
            "t.toml",
        )
        .unwrap();
        CleanPlan::compile(config.datasets.values().next().unwrap()).unwrap()
    }

    #[test]
    fn a_kept_batch_is_full_at_its_rows_or_at_its_string_bytes() {
        let plan = one_string_column();
        let mut cells = Vec::new();
        let big = vec![b'x'; 1 << 20];
        let fields = [Some(big.as_slice())];
        plan.evaluate(&fields, &mut cells).unwrap();
        let mut kept = KeptBuilders::new(&plan, 16);
        let mut rows = 0;
        while !kept.is_full(1 << 20) {
            kept.append(&plan, &fields, &cells);
            rows += 1;
        }
        assert_eq!(rows, BATCH_STRING_BYTES >> 20);

        let mut small = KeptBuilders::new(&plan, 16);
        let fields = [Some(b"a".as_slice())];
        plan.evaluate(&fields, &mut cells).unwrap();
        for _ in 0..3 {
            assert!(!small.is_full(3));
            small.append(&plan, &fields, &cells);
        }
        assert!(small.is_full(3));
    }

    #[test]
    fn a_reject_batch_is_full_at_its_string_bytes() {
        let plan = one_string_column();
        let big = vec![b'y'; 1 << 20];
        let rejection = Rejection {
            reason: "too_long".into(),
            detail: String::new(),
        };
        let mut rejects = RejectBuilders::new(&plan, true, 16);
        let mut rows = 0;
        while !rejects.is_full(1 << 20) {
            rejects.append(&[Some(big.as_slice())], &rejection, "raw/t/f.csv", rows + 2);
            rows += 1;
        }
        assert_eq!(rows, (BATCH_STRING_BYTES >> 20) as u64);
    }
}
