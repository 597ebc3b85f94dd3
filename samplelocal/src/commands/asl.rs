//! `tributary asl validate|run`, `executions …` and `task-success|failure|
//! heartbeat`: the ASL interpreter on the command line, with executions
//! kept in the workspace's state store so another process can answer a
//! task token and resume them.

use crate::local::LocalRuntime;
use crate::stepfunctions::{Answer, StartRequest, StepFunctions};
use crate::workflows::substitute;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tributary_asl::ClockMode;
use tributary_core::services::Services;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The state machine definition (*.asl.json).
    pub file: PathBuf,
    /// Execution input: JSON text, or @FILE.
    #[arg(long, default_value = "{}")]
    pub input: String,
    /// Canned result for a Task state: NAME=@result.json or NAME=JSON. A
    /// {"Error": …, "Cause": …} object makes the task fail with that error;
    /// for a .waitForTaskToken task it is the callback's answer.
    #[arg(long = "task", value_name = "NAME=@FILE")]
    pub tasks: Vec<String>,
    /// Substitute ${NAME} in the definition (as Terraform's templatefile does);
    /// `${<function>_function}` defaults to the in-process function.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Execution name (default: derived from the file and the input, so a
    /// repeated run returns the existing execution, as StartExecution does).
    #[arg(long)]
    pub name: Option<String>,
    /// Start time, RFC 3339 or `now`. Virtual time runs from here; a token
    /// still unanswered when its deadline has passed in real time times out.
    #[arg(long, default_value = "now")]
    pub start_time: String,
    /// Include the history events in the output.
    #[arg(long)]
    pub history: bool,
    /// What a task token nobody has answered does: `pause` the execution
    /// (answer later with `tributary task-success`), or `timeout` at its
    /// TimeoutSeconds/HeartbeatSeconds in virtual time.
    #[arg(long, default_value = "pause", value_parser = ["pause", "timeout"])]
    pub unanswered: String,
    /// Sleep through Wait states and back-off for real.
    #[arg(long)]
    pub real_time: bool,
}

fn json_arg(text: &str, what: &str) -> Result<Value> {
    let (source, body) = match text.strip_prefix('@') {
        Some(file) => (
            file.to_string(),
            std::fs::read_to_string(file).with_context(|| format!("reading {what} file {file}"))?,
        ),
        None => ("the command line".to_string(), text.to_string()),
    };
    serde_json::from_str(&body).with_context(|| format!("{what} from {source} is not valid JSON"))
}

fn pairs(args: &[String], flag: &str) -> Result<Vec<(String, String)>> {
    args.iter()
        .map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("{flag} {a}: expected NAME=VALUE"))
        })
        .collect()
}

pub fn validate(files: &[PathBuf], json_out: bool) -> Result<()> {
    let mut report = Vec::new();
    let mut invalid = 0;
    for file in files {
        let errors: Vec<String> = match std::fs::read_to_string(file) {
            Err(e) => vec![format!("cannot read: {e}")],
            Ok(text) => match tributary_asl::load(&text) {
                Ok(_) => vec![],
                Err(errs) => errs.0.iter().map(|e| e.to_string()).collect(),
            },
        };
        if !errors.is_empty() {
            invalid += 1;
        }
        if !json_out {
            if errors.is_empty() {
                println!("{}: valid", file.display());
            }
            for e in &errors {
                println!("{}: {e}", file.display());
            }
        }
        report.push(json!({"file": file, "valid": errors.is_empty(), "errors": errors}));
    }
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"files": report}))?
        );
    }
    if invalid > 0 {
        bail!("{invalid} of {} definition(s) invalid", files.len());
    }
    Ok(())
}

/// Print the one JSON object and turn the status into the exit code.
fn finish(out: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(out)?);
    let status = out["status"].as_str().unwrap_or_default();
    if status == "SUCCEEDED" {
        Ok(())
    } else if status == "RUNNING" {
        bail!(
            "execution paused at state '{}': answer with `tributary task-success --token {}` (or task-failure)",
            out["waitingFor"]["state"].as_str().unwrap_or_default(),
            out["waitingFor"]["taskToken"].as_str().unwrap_or_default()
        )
    } else {
        bail!(
            "execution {}: {} {}",
            status,
            out["error"].as_str().unwrap_or_default(),
            out["cause"].as_str().unwrap_or_default()
        )
    }
}

/// The workspace's functions when it has a configuration: Tasks naming
/// them run in-process.
fn functions_for(workspace: &Path, config: Option<&Path>) -> Option<LocalRuntime> {
    let has_config = config.is_some() || workspace.join("pipeline.toml").exists();
    has_config
        .then(|| LocalRuntime::open(workspace, config).ok())
        .flatten()
}

pub fn run(args: &RunArgs, workspace: &Path, config: Option<&Path>) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    // `${clean_partition_function}` and friends default to the in-process
    // functions; --var overrides or adds.
    let mut vars = crate::workflows::function_vars();
    vars.extend(pairs(&args.vars, "--var")?);
    let definition = substitute(&text, &vars, &args.file)?;
    if let Err(errors) = tributary_asl::load(&definition) {
        bail!(
            "{} is not a valid state machine:\n{errors}",
            args.file.display()
        );
    }
    let input = json_arg(&args.input, "--input")?;
    let mut canned = BTreeMap::new();
    for (state, value) in pairs(&args.tasks, "--task")? {
        let result = json_arg(&value, &format!("--task {state}"))?;
        canned.insert(state, result);
    }
    let state_machine = args
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| {
            n.trim_end_matches(".json")
                .trim_end_matches(".asl")
                .to_string()
        })
        .unwrap_or_else(|| "state-machine".into());
    let name = match &args.name {
        Some(n) => n.clone(),
        None => {
            let digest = xxhash_rust::xxh3::xxh3_64(
                format!("{definition}\u{1f}{input}\u{1f}{:?}", canned).as_bytes(),
            );
            format!("{state_machine}-{digest:016x}")
        }
    };
    let start_ms = match args.start_time.as_str() {
        "now" => chrono::Utc::now().timestamp_millis(),
        t => chrono::DateTime::parse_from_rfc3339(t)
            .with_context(|| format!("--start-time {t} is neither RFC 3339 nor `now`"))?
            .timestamp_millis(),
    };
    let request = StartRequest {
        state_machine,
        definition,
        name,
        input,
        start_ms,
        canned,
        unanswered_timeout: args.unanswered == "timeout",
        clock: if args.real_time {
            ClockMode::Real
        } else {
            ClockMode::Virtual
        },
    };
    let (out, _) = with_service(workspace, config, |service, functions| {
        service.start(functions, request, args.history)
    })?;
    finish(&out)
}

/// The workspace's Step Functions service: the functions' own when the
/// workspace has them, else one of its own.
fn with_service<T>(
    workspace: &Path,
    config: Option<&Path>,
    work: impl FnOnce(&StepFunctions, Option<&Services<'_>>) -> Result<T>,
) -> Result<T> {
    match functions_for(workspace, config) {
        Some(rt) => work(&rt.executions, Some(&rt.services())),
        None => work(&StepFunctions::open(workspace)?, None),
    }
}

pub fn stop(workspace: &Path, name: &str) -> Result<()> {
    let summary = StepFunctions::open(workspace)?.stop(name)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

pub fn list(workspace: &Path, json_out: bool) -> Result<()> {
    print_executions(&StepFunctions::open(workspace)?.list()?, json_out)
}

/// Executions as `executions list` prints them, a workspace's or a stack's.
pub fn print_executions(rows: &[Value], json_out: bool) -> Result<()> {
    if json_out {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{:<48} {:<10} {:<26} STOP", "NAME", "STATUS", "START");
        for r in rows {
            println!(
                "{:<48} {:<10} {:<26} {}",
                r["name"].as_str().unwrap_or_default(),
                r["status"].as_str().unwrap_or_default(),
                r["startDate"].as_str().unwrap_or_default(),
                r["stopDate"].as_str().unwrap_or("-")
            );
        }
    }
    Ok(())
}

pub fn show(workspace: &Path, name: &str, history: bool) -> Result<()> {
    let service = StepFunctions::open(workspace)?;
    let out = if history {
        json!({"name": name, "events": service.history(name)?})
    } else {
        service.describe(name)?
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// The CLI's task-success / task-failure / task-heartbeat.
pub fn answer(workspace: &Path, config: Option<&Path>, token: &str, answer: Answer) -> Result<()> {
    let out = with_service(workspace, config, |service, functions| {
        service.send_answer(functions, token, answer)
    })?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    match out["status"].as_str() {
        Some("SUCCEEDED") | Some("RUNNING") => Ok(()),
        Some(other) => bail!(
            "execution {} is now {other}",
            out["name"].as_str().unwrap_or("?")
        ),
        None => Ok(()),
    }
}
