//! The columns of every table the catalog registers, as the files hold
//! them: what `tributary infra vars` gives Terraform for the Glue tables,
//! and what the tests compare against the files written. Types are Hive's
//! (Athena reads Glue tables with them).

use crate::clean::CleanPlan;
use crate::config::{Config, DatasetConfig, StreamConfig};
use crate::layout::Layer;
use arrow_schema::DataType;

/// A column name and its Hive type.
pub type TableColumn = (String, &'static str);

/// The Hive type an Arrow column of a cleaned file is read as.
pub fn hive_type(t: &DataType) -> Option<&'static str> {
    Some(match t {
        DataType::Utf8 | DataType::LargeUtf8 => "string",
        DataType::Int64 => "bigint",
        DataType::Int32 => "int",
        DataType::Float64 => "double",
        DataType::Boolean => "boolean",
        DataType::Date32 => "date",
        DataType::Timestamp(_, _) => "timestamp",
        _ => return None,
    })
}

/// A cleaned dataset's columns: its declared columns, then derived ones
/// (the cleaner's kept schema, which every published Parquet file has).
pub fn dataset_columns(ds: &DatasetConfig) -> Result<Vec<TableColumn>, String> {
    let plan = CleanPlan::compile(ds).map_err(|e| e.to_string())?;
    arrow_columns(&plan.kept_schema())
}

/// An Arrow schema's columns with their Hive types, in order.
fn arrow_columns(schema: &arrow_schema::Schema) -> Result<Vec<TableColumn>, String> {
    schema
        .fields()
        .iter()
        .map(|f| {
            hive_type(f.data_type())
                .map(|t| (f.name().clone(), t))
                .ok_or_else(|| format!("column {} has no catalog type", f.name()))
        })
        .collect()
}

/// A batch view's row (one per period and dimension values, JSON Lines):
/// the period's start, the dimensions, the event count, and sum, min and
/// max of every measure.
pub fn view_columns(config: &StreamConfig) -> Vec<TableColumn> {
    let mut columns = vec![("period_start".to_string(), "string")];
    columns.extend(config.dimensions.iter().map(|d| (d.clone(), "string")));
    columns.push(("event_count".to_string(), "bigint"));
    for m in &config.measures {
        for aggregate in VIEW_AGGREGATES {
            columns.push((format!("{m}_{aggregate}"), "double"));
        }
    }
    columns
}

pub const VIEW_AGGREGATES: [&str; 3] = ["sum", "min", "max"];

/// How a table's files are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Parquet,
    /// One JSON object per line (Athena's JSON SerDe).
    JsonLines,
}

impl TableFormat {
    /// The name Terraform's module keys its SerDe settings by.
    pub fn name(self) -> &'static str {
        match self {
            TableFormat::Parquet => "parquet",
            TableFormat::JsonLines => "json",
        }
    }
}

/// One table the catalog registers, partitioned by `date`, at
/// `<layer>/<name>/`.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDefinition {
    pub name: String,
    pub layer: Layer,
    pub format: TableFormat,
    pub columns: Vec<TableColumn>,
}

/// Every table: one per cleaned dataset (Parquet) and two per stream (its
/// hourly and daily batch views, JSON Lines). Rejects are not registered.
pub fn catalog_tables(config: &Config) -> Result<Vec<TableDefinition>, String> {
    let mut tables = Vec::new();
    for (name, ds) in &config.datasets {
        tables.push(TableDefinition {
            name: name.clone(),
            layer: Layer::Cleaned,
            format: TableFormat::Parquet,
            columns: dataset_columns(ds).map_err(|e| format!("dataset {name}: {e}"))?,
        });
    }
    for (name, stream) in &config.streams {
        let (hourly, daily) = stream.view_names(name);
        for view in [hourly, daily] {
            tables.push(TableDefinition {
                name: view,
                layer: Layer::Views,
                format: TableFormat::JsonLines,
                columns: view_columns(stream),
            });
        }
    }
    Ok(tables)
}

/// The columns a written file holds, by its kind (`.parquet`: the schema
/// in its footer, in order; `.jsonl`: every key of its records, typed by
/// their values, by name — the JSON SerDe matches columns by name, so a
/// JSON table's column order is free), to check a table against its files.
pub fn file_columns(key: &str, bytes: Vec<u8>) -> Result<Vec<TableColumn>, String> {
    if key.ends_with(".parquet") {
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(bytes),
        )
        .map_err(|e| format!("{key}: {e}"))?;
        return arrow_columns(builder.schema()).map_err(|e| format!("{key}: {e}"));
    }
    let mut columns: Vec<TableColumn> = Vec::new();
    for (n, line) in String::from_utf8_lossy(&bytes).lines().enumerate() {
        let record: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).map_err(|e| format!("{key} line {}: {e}", n + 1))?;
        for (name, value) in record {
            let t = match value {
                serde_json::Value::String(_) => "string",
                serde_json::Value::Bool(_) => "boolean",
                serde_json::Value::Number(n) if n.is_f64() => "double",
                serde_json::Value::Number(_) => "bigint",
                _ => "string",
            };
            match columns.iter().find(|(c, _)| *c == name) {
                Some((_, seen)) if *seen != t => {
                    return Err(format!(
                        "{key} line {}: {name} is a {t} here, a {seen} before",
                        n + 1
                    ))
                }
                Some(_) => {}
                None => columns.push((name, t)),
            }
        }
    }
    Ok(columns)
}
