//! `tributary infra vars`: what Terraform needs to know of pipeline.toml
//! (it cannot read TOML), as a `*.auto.tfvars.json` file: the Glue tables
//! with their columns, the retention of every layer per dataset (S3
//! lifecycle rules), the Kinesis streams and the pipelines (catchup
//! schedules).

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use std::path::Path;
use tributary_core::config::{ColumnType, Config};
use tributary_core::stream::views::view_names;

fn glue_type(t: ColumnType) -> &'static str {
    match t {
        ColumnType::String => "string",
        ColumnType::Int => "bigint",
        ColumnType::Float => "double",
        ColumnType::Bool => "boolean",
        ColumnType::Date => "date",
        ColumnType::Timestamp => "timestamp",
    }
}

/// The variables, deterministic (sorted maps) so the committed file can be
/// checked for drift.
pub fn vars(config: &Config) -> Value {
    let mut tables = Map::new();
    let mut retention = Map::new();
    for (name, ds) in &config.datasets {
        let columns: Vec<Value> = ds
            .columns
            .iter()
            .filter(|c| c.name != "date")
            .map(|c| json!({"name": c.name, "type": glue_type(c.column_type)}))
            .collect();
        tables.insert(
            name.clone(),
            json!({"layer": "cleaned", "format": "parquet", "columns": columns}),
        );
        let days: Map<String, Value> = ds
            .retention()
            .into_iter()
            .map(|(layer, days)| (layer.to_string(), json!(days)))
            .collect();
        if !days.is_empty() {
            retention.insert(name.clone(), Value::Object(days));
        }
    }
    let mut streams = Map::new();
    for (name, stream) in &config.streams {
        let (hourly, daily) = view_names(name, stream);
        // Batch views are JSON documents (views/<view>/date=D/run=R/view.json).
        for view in [hourly, daily] {
            tables.insert(
                view,
                json!({"layer": "views", "format": "json", "columns": [
                    {"name": "view", "type": "string"},
                    {"name": "stream", "type": "string"},
                    {"name": "granularity", "type": "string"},
                    {"name": "dimensions", "type": "array<string>"},
                    {"name": "measures", "type": "array<string>"},
                    {"name": "periods", "type": "string"},
                    {"name": "events", "type": "bigint"},
                    {"name": "duplicates_dropped", "type": "bigint"},
                    {"name": "run_id", "type": "string"},
                    {"name": "built_at", "type": "string"},
                ]}),
            );
        }
        streams.insert(
            name.clone(),
            json!({"serve_as": stream.serve_as.clone().unwrap_or_else(|| name.clone())}),
        );
    }
    // Catchup runs per pipeline, at night in the pipeline's own time zone.
    let pipelines: Map<String, Value> = config
        .pipelines
        .iter()
        .map(|(name, p)| (name.clone(), json!({"timezone": p.timezone})))
        .collect();
    json!({
        "glue_tables": tables,
        "retention_days": retention,
        "streams": streams,
        "pipelines": pipelines,
    })
}

pub fn run(config_path: Option<&Path>, out: Option<&Path>) -> Result<()> {
    let path = config_path.context(
        "pass --config pipeline.toml (the configuration the deployed functions will use)",
    )?;
    let config = Config::load(path)?;
    let text = format!("{}\n", serde_json::to_string_pretty(&vars(&config))?);
    match out {
        Some(file) => {
            std::fs::write(file, text).with_context(|| format!("writing {}", file.display()))?
        }
        None => print!("{text}"),
    }
    Ok(())
}
