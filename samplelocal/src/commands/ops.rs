//! Operations on a local workspace: upload, invoke, partitions, watermark,
//! retention.

use crate::local::LocalRuntime;
use anyhow::{Context, Result};
use chrono::Utc;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tributary_core::config::Config;
use tributary_core::layout::parse_date;
use tributary_core::ports::StateStore;
use tributary_core::retention;
use tributary_core::state::{self, PartitionState};

use super::report::{print_json, runs_table};

pub async fn upload(
    rt: &LocalRuntime,
    file: &Path,
    dataset: &str,
    date: &str,
    json_out: bool,
) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .context("the file needs a UTF-8 name")?;
    let result = rt.upload(bytes, dataset, date, name).await?;
    if json_out {
        return print_json(
            &json!({ "key": result.key, "event_response": result.response, "runs": result.runs }),
        );
    }
    println!("uploaded {}", result.key);
    for o in result.response["objects"].as_array().into_iter().flatten() {
        for (pipeline, missing) in o["waiting"].as_object().into_iter().flatten() {
            println!("  pipeline {pipeline}: waiting for {missing}");
        }
        for s in o["started"].as_array().into_iter().flatten() {
            let how = if s["newly_started"].as_bool() == Some(true) {
                "started"
            } else {
                "already started"
            };
            println!(
                "  pipeline {}: data ready, run {} {how}",
                s["pipeline"], s["execution_name"]
            );
        }
    }
    if !result.runs.is_empty() {
        let reports: Vec<_> = result
            .runs
            .iter()
            .flat_map(|r| r.datasets.clone())
            .collect();
        print!("{}", runs_table(&reports));
        for r in &result.runs {
            println!(
                "execution {}: {}{}",
                r.execution["name"].as_str().unwrap_or_default(),
                r.execution["status"].as_str().unwrap_or_default(),
                match r.execution["waitingFor"]["state"].as_str() {
                    Some(state) => format!(" (waiting at {state}: see the approval message above, or `tributary approvals`)"),
                    None => String::new(),
                }
            );
        }
    }
    Ok(())
}

pub async fn invoke(rt: &LocalRuntime, function: &str, event_file: &Path) -> Result<()> {
    let response = invoke_function(&rt.services(), function, read_event(event_file)?).await?;
    let queued = rt.run_queued().await?;
    let out = if queued.pipelines.is_empty() && queued.others.is_empty() {
        response
    } else {
        let mut out = json!({ "response": response });
        if !queued.pipelines.is_empty() {
            out["runs"] = json!(queued.pipelines);
        }
        if !queued.others.is_empty() {
            out["executions"] = json!(queued.others);
        }
        out
    };
    print_json(&out)
}

/// An event file of `tributary invoke`.
pub fn read_event(event_file: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(event_file)
        .with_context(|| format!("reading {}", event_file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", event_file.display()))
}

/// One function on one event through the given adapters (a workspace's or
/// a stack's). A failure prints what Lambda reports (errorType,
/// errorMessage, and whether a retry helps) and fails the command.
pub async fn invoke_function(
    svc: &tributary_core::services::Services<'_>,
    function: &str,
    event: Value,
) -> Result<Value> {
    match tributary_handlers::invoke(svc, function, event).await {
        Ok(response) => Ok(response),
        Err(e) => {
            print_json(
                &json!({ "errorType": e.error_type, "errorMessage": e.message, "retryable": e.retryable }),
            )?;
            anyhow::bail!("{function} failed: {}", e.message)
        }
    }
}

/// The partitions and watermarks of a state store: a workspace's, or a
/// deployed stack's (`--stack`), printed the same way.
pub async fn partitions(
    config: &Config,
    store: &dyn StateStore,
    dataset: Option<&str>,
    unprocessed: bool,
    json_out: bool,
) -> Result<()> {
    let names: Vec<String> = match dataset {
        Some(d) => {
            config.dataset(d).with_context(|| {
                format!("unknown dataset {d:?} (known: {})", config.dataset_names())
            })?;
            vec![d.to_string()]
        }
        None => config.datasets.keys().cloned().collect(),
    };
    let mut rows = Vec::new();
    for name in &names {
        for p in state::all_partitions(store, name).await? {
            if unprocessed && p.state == PartitionState::Published {
                continue;
            }
            rows.push(p);
        }
    }
    let mut watermarks = serde_json::Map::new();
    for pipeline in config.pipelines.keys() {
        let w = state::watermark(store, pipeline).await?;
        watermarks.insert(pipeline.clone(), serde_json::to_value(w)?);
    }
    if json_out {
        return print_json(&json!({ "partitions": rows, "watermarks": watermarks }));
    }
    println!(
        "{:<26} {:<10} {:<10} {:>6} {:>6} {:>8} {:>5} {:>7}  error",
        "dataset", "date", "state", "in", "kept", "rejected", "dups", "quality"
    );
    for p in &rows {
        let c = p.clean.clone().unwrap_or_default();
        println!(
            "{:<26} {:<10} {:<10} {:>6} {:>6} {:>8} {:>5} {:>7}  {}",
            p.dataset,
            p.date,
            p.state.name(),
            c.input,
            c.kept,
            c.rejected_total,
            c.duplicates,
            p.quality_score.map_or("-".into(), |s| format!("{s:.3}")),
            p.error.clone().unwrap_or_default()
        );
    }
    println!("\nwatermarks:");
    for (pipeline, w) in &watermarks {
        let date = w
            .get("date")
            .and_then(Value::as_str)
            .unwrap_or("(none yet)");
        println!("  {pipeline:<20} {date}");
    }
    Ok(())
}

/// Move a pipeline's watermark by hand, in a workspace or a deployed stack.
pub async fn watermark_set(
    config: &Config,
    store: &dyn StateStore,
    pipeline: &str,
    date: &str,
    reason: &str,
    json_out: bool,
) -> Result<()> {
    if !config.pipelines.contains_key(pipeline) {
        anyhow::bail!(
            "unknown pipeline {pipeline:?} (known: {})",
            config
                .pipelines
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let d = parse_date(date).with_context(|| format!("--date {date:?} is not YYYY-MM-DD"))?;
    let by = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let w = state::set_watermark(store, pipeline, d, &by, reason).await?;
    if json_out {
        return print_json(&w);
    }
    println!(
        "watermark of {pipeline} set to {} by {by} at {}",
        w.date, w.updated_at
    );
    Ok(())
}

/// The retention sweep over a workspace's or a stack's services.
pub async fn retention(
    svc: &tributary_core::services::Services<'_>,
    dry_run: bool,
    today: Option<&str>,
    json_out: bool,
) -> Result<()> {
    let today = match today {
        Some(t) => parse_date(t).with_context(|| format!("--today {t:?} is not YYYY-MM-DD"))?,
        None => Utc::now().date_naive(),
    };
    let deletions = retention::retention_sweep(svc, today, dry_run).await?;
    if json_out {
        return print_json(&json!({ "today": today, "dry_run": dry_run, "deletions": deletions }));
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    if deletions.is_empty() {
        println!("nothing past retention as of {today}");
    }
    for d in &deletions {
        println!(
            "{verb} {:<9} {:<26} {}  {} ({} objects, {} bytes)",
            d.layer, d.dataset, d.date, d.what, d.objects, d.bytes
        );
    }
    Ok(())
}

pub fn outputs_hint(root: &Path) -> Vec<(String, PathBuf)> {
    let bucket = root.join("bucket");
    vec![
        (
            "cleaned Parquet (published runs)".into(),
            bucket.join("cleaned"),
        ),
        ("rejected rows with reasons".into(), bucket.join("rejects")),
        ("quality reports".into(), bucket.join("quality")),
        ("state (status, watermarks)".into(), root.join("state")),
        ("catalog partitions".into(), root.join("catalog")),
    ]
}
