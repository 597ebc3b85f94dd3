//! `tributary infra vars`: what Terraform needs to know of pipeline.toml
//! (it cannot read TOML), as a `*.auto.tfvars.json` file: the Glue tables
//! with their columns, the retention of every prefix that has one (S3
//! lifecycle rules on `<layer>/<name>/`), the Kinesis streams and the pipelines (catchup
//! schedules).

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use std::path::Path;
use tributary_core::config::Config;
use tributary_core::table_schema::catalog_tables;

/// The variables, deterministic (sorted maps) so the committed file can be
/// checked for drift.
pub fn vars(config: &Config) -> Result<Value> {
    let mut tables = Map::new();
    let mut retention = Map::new();
    for t in catalog_tables(config).map_err(anyhow::Error::msg)? {
        let columns: Vec<Value> = t
            .columns
            .iter()
            .map(|(name, t)| json!({"name": name, "type": t}))
            .collect();
        tables.insert(
            t.name.clone(),
            json!({"layer": t.layer.prefix(), "format": t.format.name(), "columns": columns}),
        );
    }
    let mut streams = Map::new();
    for (name, stream) in &config.streams {
        streams.insert(
            name.clone(),
            json!({
                "serve_as": stream.serve_as.clone().unwrap_or_else(|| name.clone()),
                "deviation_threshold_pct": stream.deviation_threshold_pct,
            }),
        );
    }
    // Every prefix with a retention (`<layer>/<name>/`): the lifecycle rules
    // back up the sweep on exactly the prefixes it expires.
    for target in config.retention_targets() {
        let layers = retention
            .entry(target.name.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(layers) = layers {
            layers.insert(target.layer.to_string(), json!(target.days));
        }
    }
    // Catchup runs per pipeline, at night in the pipeline's own time zone.
    let pipelines: Map<String, Value> = config
        .pipelines
        .iter()
        .map(|(name, p)| (name.clone(), json!({"timezone": p.timezone})))
        .collect();
    Ok(json!({
        "glue_tables": tables,
        "retention_days": retention,
        "streams": streams,
        "pipelines": pipelines,
    }))
}

pub fn run(config_path: Option<&Path>, out: Option<&Path>) -> Result<()> {
    let path = config_path.context(
        "pass --config pipeline.toml (the configuration the deployed functions will use)",
    )?;
    let config = Config::load(path)?;
    let text = format!("{}\n", serde_json::to_string_pretty(&vars(&config)?)?);
    match out {
        Some(file) => {
            std::fs::write(file, text).with_context(|| format!("writing {}", file.display()))?
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// Values of a stack the functions need, whatever else the outputs hold.
const REQUIRED_OUTPUTS: &[&str] = &[
    "TRIBUTARY_BUCKET",
    "TRIBUTARY_TABLE",
    "TRIBUTARY_GLUE_DATABASE",
    "TRIBUTARY_STATE_MACHINE_ARN",
    "TRIBUTARY_FEATURES_STATE_MACHINE_ARN",
    "TRIBUTARY_LABELING_STATE_MACHINE_ARN",
    "TRIBUTARY_TOPIC_ARN",
];

/// The `--env-vars` file of `sam local invoke`: the functions' environment
/// for a deployed stack (its `terraform output -json`), or for an emulator
/// at `endpoint` with the names samplelocal/template.yaml gives by default.
pub fn sam_env(outputs: Option<&Path>, endpoint: Option<&str>) -> Result<Value> {
    let mut vars = serde_json::Map::new();
    vars.insert("TRIBUTARY_CONFIG".into(), json!("/var/task/pipeline.toml"));
    match outputs {
        Some(path) => {
            let parsed = super::stack::read_outputs(path)?;
            for (name, output_path) in super::stack::OUTPUTS {
                match super::stack::output(&parsed, output_path) {
                    Some(v) => {
                        vars.insert((*name).into(), json!(v));
                    }
                    None if REQUIRED_OUTPUTS.contains(name) => anyhow::bail!(
                        "{}: no output {output_path} (the functions' {name}): is it the `terraform output -json` of infra/envs/<env>?",
                        path.display()
                    ),
                    None => {}
                }
            }
        }
        None => {
            // samplelocal/template.yaml's defaults: an emulator's names.
            let arn = |service: &str, what: &str| {
                format!("arn:aws:{service}:us-east-1:123456789012:{what}")
            };
            for (name, value) in [
                ("TRIBUTARY_BUCKET", "tributary-local-data".to_string()),
                ("TRIBUTARY_TABLE", "tributary-local-state".to_string()),
                (
                    "TRIBUTARY_GLUE_DATABASE",
                    "tributary_local_catalog".to_string(),
                ),
                (
                    "TRIBUTARY_STATE_MACHINE_ARN",
                    arn("states", "stateMachine:tributary-local-partition_pipeline"),
                ),
                (
                    "TRIBUTARY_FEATURES_STATE_MACHINE_ARN",
                    arn("states", "stateMachine:tributary-local-feature_pipeline"),
                ),
                (
                    "TRIBUTARY_LABELING_STATE_MACHINE_ARN",
                    arn("states", "stateMachine:tributary-local-labeling"),
                ),
                (
                    "TRIBUTARY_TOPIC_ARN",
                    arn("sns", "tributary-local-notifications"),
                ),
                (
                    "TRIBUTARY_CLICK_INFERENCE_FUNCTION",
                    "tributary-local-click-inference".to_string(),
                ),
            ] {
                vars.insert(name.into(), json!(value));
            }
        }
    }
    if let Some(url) = endpoint {
        vars.insert("AWS_ENDPOINT_URL".into(), json!(url));
    }
    // "Parameters" applies to every function of the template.
    Ok(json!({ "Parameters": vars }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every lifecycle rule's prefix `<layer>/<name>/` is one the system
    /// writes: a dataset layer of a dataset, a stream layer of a stream, a
    /// view of a stream, a feature set's or a labeling's own prefix.
    #[test]
    fn lifecycle_rules_name_only_prefixes_the_system_writes() {
        let config = Config::parse(crate::sample::PIPELINE_TOML, "pipeline.toml").unwrap();
        let v = vars(&config).unwrap();
        let mut rules = 0;
        for (name, layers) in v["retention_days"].as_object().unwrap() {
            for layer in layers.as_object().unwrap().keys() {
                rules += 1;
                let written = match layer.as_str() {
                    "raw" | "cleaned" | "rejects" | "quality" => config.datasets.contains_key(name),
                    "stream" | "late" | "dlq" => config.streams.contains_key(name),
                    "views" => config.streams.iter().any(|(s, st)| {
                        let (hourly, daily) = st.view_names(s);
                        *name == hourly || *name == daily
                    }),
                    "features" => config.features.contains_key(name),
                    "labels" => config.labeling.contains_key(name),
                    _ => false,
                };
                assert!(written, "{layer}/{name}/ is not a prefix the system writes");
            }
        }
        assert!(
            rules > 10,
            "the sample sets retention on every kind of layer"
        );
    }
}

#[cfg(test)]
mod alarm_tests {
    use super::*;

    /// The deviation alarm fires above each stream's own threshold: the
    /// vars carry it and the alarm reads it (not a fixed number).
    #[test]
    fn the_deviation_alarm_uses_each_streams_threshold() {
        let text = crate::sample::PIPELINE_TOML.replace(
            "deviation_threshold_pct = 10.0",
            "deviation_threshold_pct = 7.5",
        );
        let config = Config::parse(&text, "pipeline.toml").unwrap();
        let v = vars(&config).unwrap();
        assert_eq!(v["streams"]["orders"]["deviation_threshold_pct"], 7.5);
        assert_eq!(v["streams"]["clicks"]["deviation_threshold_pct"], 10.0);
        let monitoring = include_str!("../../../infra/modules/tributary/monitoring.tf");
        let alarm = monitoring
            .split("resource \"aws_cloudwatch_metric_alarm\" \"reconciliation_deviation\"")
            .nth(1)
            .and_then(|rest| rest.split("\n}\n").next())
            .expect("the deviation alarm");
        assert!(
            alarm.contains("threshold           = each.value.deviation_threshold_pct"),
            "{alarm}"
        );
    }
}
