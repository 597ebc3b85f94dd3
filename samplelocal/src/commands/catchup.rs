//! `tributary backfill` and `tributary schedule tick`: the catchup state
//! machine started by a person or by the (local) schedule.

use super::report::{print_json, runs_table};
use crate::local::{LocalRuntime, PipelineRun};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

pub async fn backfill(
    rt: &LocalRuntime,
    pipeline: &str,
    start: &str,
    end: &str,
    force: bool,
    json_out: bool,
) -> Result<()> {
    let (name, input) = backfill_execution(pipeline, start, end, force);
    let (execution, runs) = rt.run_catchup(&name, input).await?;
    report(&execution, &runs, json_out)
}

/// The catchup execution of a backfill: its name and input. Every backfill
/// is its own execution: a person may run the same range again on purpose.
pub(crate) fn backfill_execution(
    pipeline: &str,
    start: &str,
    end: &str,
    force: bool,
) -> (String, Value) {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3f");
    (
        format!("backfill-{pipeline}-{start}-{end}-{stamp}"),
        json!({"pipeline": pipeline, "start": start, "end": end, "force": force}),
    )
}

pub async fn tick(
    rt: &LocalRuntime,
    at: Option<&str>,
    only: Option<&str>,
    json_out: bool,
) -> Result<()> {
    let at = match at {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .with_context(|| format!("--at {t} is not an RFC 3339 time"))?
            .with_timezone(&chrono::Utc),
        None => chrono::Utc::now(),
    };
    let pipelines: Vec<String> = match only {
        Some(p) if rt.config.pipelines.contains_key(p) => vec![p.to_string()],
        Some(p) => bail!("unknown pipeline {p:?}"),
        None => rt.config.pipelines.keys().cloned().collect(),
    };
    let mut all = Vec::new();
    for pipeline in pipelines {
        // One execution per pipeline and scheduled time: a re-delivered
        // schedule invocation starts nothing new.
        let name = format!("catchup-{pipeline}-{}", at.format("%Y%m%dT%H%M%SZ"));
        let input = json!({"pipeline": pipeline, "scheduled_time": at.to_rfc3339()});
        let (execution, runs) = rt.run_catchup(&name, input).await?;
        all.push((execution, runs));
    }
    if json_out {
        let out: Vec<Value> = all
            .iter()
            .map(|(e, r)| json!({"execution": e, "runs": r}))
            .collect();
        print_json(&json!({ "catchups": out }))?;
        return all.iter().try_for_each(|(e, _)| succeeded(e));
    }
    for (execution, runs) in &all {
        report(execution, runs, false)?;
    }
    Ok(())
}

pub(crate) fn report(execution: &Value, runs: &[PipelineRun], json_out: bool) -> Result<()> {
    if json_out {
        print_json(&json!({"execution": execution, "runs": runs}))?;
        return succeeded(execution);
    }
    let out = &execution["output"];
    println!(
        "{} {}: {} date(s) planned up to {}, {} skipped (already published)",
        execution["name"].as_str().unwrap_or_default(),
        execution["status"].as_str().unwrap_or_default(),
        out["plan"]["dates"].as_array().map_or(0, |d| d.len()),
        out["plan"]["execution_date"].as_str().unwrap_or("?"),
        out["plan"]["skipped"].as_array().map_or(0, |d| d.len()),
    );
    for (key, label) in tributary_core::orchestration::CATCHUP_GROUPS {
        let dates: Vec<&str> = out["report"][key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str())
            .collect();
        if !dates.is_empty() {
            println!("  {label}: {}", dates.join(", "));
        }
    }
    if execution["status"] != "SUCCEEDED" {
        println!(
            "  error: {} {}",
            execution["error"].as_str().unwrap_or_default(),
            execution["cause"].as_str().unwrap_or_default()
        );
    }
    let reports: Vec<_> = runs.iter().flat_map(|r| r.datasets.clone()).collect();
    if !reports.is_empty() {
        print!("{}", runs_table(&reports));
    }
    succeeded(execution)
}

fn succeeded(execution: &Value) -> Result<()> {
    if execution["status"] == "SUCCEEDED" {
        return Ok(());
    }
    bail!(
        "{} {}: {}",
        execution["name"].as_str().unwrap_or("catchup"),
        execution["status"].as_str().unwrap_or("?"),
        execution["cause"].as_str().unwrap_or_default()
    )
}
