//! Reading a published partition the way a downstream consumer does:
//! through its manifest, never by listing a prefix (which could catch a
//! half-written run).

use crate::error::{UseCaseError, UseCaseResult};
use crate::ports::PortError;
use crate::publish::read_manifest;
use crate::services::{scratch_dir, Services};
use arrow_array::Array;
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeMap;

/// A column as UTF-8 text. Timestamps become RFC 3339 in UTC here, because
/// arrow's cast cannot name the time zone without chrono-tz.
fn column_text(
    col: &arrow_array::ArrayRef,
) -> Result<arrow_array::ArrayRef, arrow_schema::ArrowError> {
    use arrow_schema::{DataType, TimeUnit};
    let DataType::Timestamp(unit, _) = col.data_type() else {
        return arrow_cast::cast(col, &DataType::Utf8);
    };
    let per_second: i64 = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let raw = arrow_cast::cast(col, &DataType::Int64)?;
    let ints = raw
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .ok_or_else(|| arrow_schema::ArrowError::CastError("timestamp as int64".into()))?;
    let text: arrow_array::StringArray = ints
        .iter()
        .map(|v| {
            v.and_then(|v| {
                chrono::DateTime::from_timestamp(
                    v.div_euclid(per_second),
                    (v.rem_euclid(per_second) * (1_000_000_000 / per_second)) as u32,
                )
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            })
        })
        .collect();
    Ok(std::sync::Arc::new(text))
}

/// One row as text, by column name (`None`: null).
pub type TextRow = BTreeMap<String, Option<String>>;

/// The given columns of every row of a published partition, as text;
/// `None` when the date is not published.
pub async fn rows(
    svc: &Services<'_>,
    dataset: &str,
    date: NaiveDate,
    columns: &[&str],
) -> UseCaseResult<Option<Vec<TextRow>>> {
    let Some(manifest) = read_manifest(svc.objects, dataset, date).await? else {
        return Ok(None);
    };
    let scratch = scratch_dir(svc.scratch)?;
    let mut out = Vec::new();
    for (i, f) in manifest.files.iter().enumerate() {
        let path = scratch.path().join(format!("{i}.parquet"));
        svc.objects.get_to_file(&f.key, &path).await?;
        let file = std::fs::File::open(&path)
            .map_err(|e| PortError::from_io("reading a published file", e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(8192).build())
            .map_err(|e| {
                UseCaseError::BadRequest(format!("{}: not readable Parquet: {e}", f.key))
            })?;
        for batch in reader {
            let batch = batch.map_err(|e| UseCaseError::BadRequest(format!("{}: {e}", f.key)))?;
            let mut as_text = Vec::with_capacity(columns.len());
            for c in columns {
                let col = batch.column_by_name(c).ok_or_else(|| {
                    UseCaseError::BadRequest(format!("{}: column {c} is missing", f.key))
                })?;
                let text = column_text(col)
                    .map_err(|e| UseCaseError::BadRequest(format!("{}: column {c}: {e}", f.key)))?;
                as_text.push((c.to_string(), text));
            }
            for r in 0..batch.num_rows() {
                out.push(
                    as_text
                        .iter()
                        .map(|(c, a)| {
                            let s = a.as_any().downcast_ref::<arrow_array::StringArray>();
                            (
                                c.clone(),
                                s.filter(|s| !s.is_null(r)).map(|s| s.value(r).to_string()),
                            )
                        })
                        .collect(),
                );
            }
        }
    }
    Ok(Some(out))
}
