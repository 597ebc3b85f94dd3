//! A rejects file read back for a person: its rows grouped by reason, each
//! reason with how many rows it turned away and a few of them with the
//! file and line they came from, the detail and the values as delivered.

use arrow_array::{Array, Int64Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;
use std::collections::BTreeMap;

/// The columns every rejects file adds after the dataset's own.
const PROVENANCE: [&str; 4] = [
    "reject_reason",
    "reject_detail",
    "source_file",
    "source_line",
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectExample {
    pub detail: Option<String>,
    pub file: Option<String>,
    pub line: Option<i64>,
    /// The row's columns as delivered (absent where the line had none).
    pub values: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectGroup {
    pub reason: String,
    pub rows: u64,
    pub examples: Vec<RejectExample>,
}

/// Every reason in `bytes` (one rejects Parquet file) with its row count
/// and its first `per_reason` rows, reasons in order of most rows.
pub fn group_by_reason(
    bytes: bytes::Bytes,
    per_reason: usize,
) -> Result<Vec<RejectGroup>, parquet::errors::ParquetError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    let mut groups: BTreeMap<String, RejectGroup> = BTreeMap::new();
    for batch in reader {
        let batch = batch?;
        let schema = batch.schema();
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        };
        let Some(reasons) = text("reject_reason") else {
            return Err(parquet::errors::ParquetError::General(
                "not a rejects file: it has no reject_reason column".into(),
            ));
        };
        let details = text("reject_detail");
        let files = text("source_file");
        let lines = batch
            .column_by_name("source_line")
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>());
        let data: Vec<(String, &StringArray)> = schema
            .fields()
            .iter()
            .zip(batch.columns())
            .filter(|(f, _)| !PROVENANCE.contains(&f.name().as_str()))
            .filter_map(|(f, c)| {
                Some((f.name().clone(), c.as_any().downcast_ref::<StringArray>()?))
            })
            .collect();
        let value = |array: &StringArray, row: usize| {
            (!array.is_null(row)).then(|| array.value(row).to_string())
        };
        for row in 0..batch.num_rows() {
            let reason = reasons.value(row).to_string();
            let group = groups.entry(reason.clone()).or_insert_with(|| RejectGroup {
                reason,
                rows: 0,
                examples: Vec::new(),
            });
            group.rows += 1;
            if group.examples.len() < per_reason {
                group.examples.push(RejectExample {
                    detail: details.and_then(|d| value(d, row)),
                    file: files.and_then(|f| value(f, row)),
                    line: lines.and_then(|l| (!l.is_null(row)).then(|| l.value(row))),
                    values: data
                        .iter()
                        .map(|(name, array)| (name.clone(), value(array, row)))
                        .collect(),
                });
            }
        }
    }
    let mut out: Vec<RejectGroup> = groups.into_values().collect();
    out.sort_by(|a, b| b.rows.cmp(&a.rows).then_with(|| a.reason.cmp(&b.reason)));
    Ok(out)
}
