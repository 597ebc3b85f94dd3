//! `tributary bench asl`: the interpreter's cost per state transition and a
//! year of daily catchup on the virtual clock.
//!
//! No peer runs here (Step Functions Local needs a JVM or Docker), so the
//! figures are reported against the targets: ≤ 20 µs per
//! transition, and a 365-date Map with a Wait in each in under a second.

use anyhow::Result;
use serde_json::{json, Value};
use std::time::Instant;
use tributary_asl::{Host, RunOptions, Status, TaskCall, TaskOutcome};

struct EchoHost;

impl Host for EchoHost {
    fn invoke(&mut self, call: &TaskCall<'_>) -> TaskOutcome {
        TaskOutcome::ok(json!({"ok": true, "echo": call.payload}))
    }
}

/// Per item: Pass with Parameters, Choice, a lambda:invoke Task with
/// ResultSelector and ResultPath, and a final Pass.
fn transitions_machine() -> Value {
    json!({"StartAt": "Each", "States": {"Each": {
        "Type": "Map", "ItemsPath": "$.items", "End": true,
        "ItemSelector": {"date.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index", "pipeline.$": "$.pipeline"},
        "ItemProcessor": {"StartAt": "Prepare", "States": {
            "Prepare": {"Type": "Pass", "Parameters": {"date.$": "$.date", "key.$": "States.Format('{}/{}', $.pipeline, $.date)"}, "Next": "Route"},
            "Route": {"Type": "Choice", "Choices": [{"Variable": "$.date", "StringMatches": "2026-*", "Next": "Work"}], "Default": "Done"},
            "Work": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                     "Parameters": {"FunctionName": "clean-partition", "Payload": {"date.$": "$.date"}},
                     "ResultSelector": {"ok.$": "$.Payload.ok"}, "ResultPath": "$.result",
                     "Retry": [{"ErrorEquals": ["Tributary.Retryable"], "MaxAttempts": 3}], "Next": "Done"},
            "Done": {"Type": "Pass", "End": true}
        }}
    }}})
}

fn catchup_machine() -> Value {
    json!({"StartAt": "Days", "States": {"Days": {
        "Type": "Map", "ItemsPath": "$.dates", "MaxConcurrency": 1, "End": true,
        "ItemSelector": {"date.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"StartAt": "WaitForData", "States": {
            "WaitForData": {"Type": "Wait", "Seconds": 86400, "Next": "Run"},
            "Run": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:tributary-clean-partition", "End": true}
        }}
    }}})
}

fn dates(n: usize) -> Vec<String> {
    let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid date");
    (0..n)
        .map(|d| (start + chrono::Duration::days(d as i64)).to_string())
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(json_output: bool) -> Result<()> {
    let machine = tributary_asl::load(&transitions_machine().to_string())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let input = json!({"pipeline": "orders_daily", "items": dates(2000)});
    let mut per_transition = Vec::new();
    let mut transitions = 0;
    for i in 0..5 {
        let options = RunOptions::new("bench", &format!("bench-{i}"), 1_767_225_600_000);
        let t = Instant::now();
        let exec = tributary_asl::run(&machine, input.clone(), &options, &mut EchoHost);
        let elapsed = t.elapsed().as_secs_f64();
        anyhow::ensure!(
            exec.status == Status::Succeeded,
            "benchmark machine failed: {:?}",
            exec.cause
        );
        transitions = exec.transitions;
        per_transition.push(elapsed * 1e6 / exec.transitions as f64);
    }
    let micros = median(per_transition);

    let catchup =
        tributary_asl::load(&catchup_machine().to_string()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut walls = Vec::new();
    let mut virtual_days = 0.0;
    for i in 0..5 {
        let options = RunOptions::new("catchup", &format!("catchup-{i}"), 1_767_225_600_000);
        let t = Instant::now();
        let exec = tributary_asl::run(
            &catchup,
            json!({"dates": dates(365)}),
            &options,
            &mut EchoHost,
        );
        walls.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(
            exec.status == Status::Succeeded,
            "catchup machine failed: {:?}",
            exec.cause
        );
        virtual_days =
            (exec.stop_ms.unwrap_or(exec.start_ms) - exec.start_ms) as f64 / 86_400_000.0;
    }
    let wall = median(walls);
    let report = json!({
        "transitions_per_run": transitions,
        "micros_per_transition": micros,
        "target_micros_per_transition": 20.0,
        "catchup_365_wall_seconds": wall,
        "catchup_365_virtual_days": virtual_days,
        "target_catchup_wall_seconds": 1.0,
    });
    if json_output {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("ASL interpreter (median of 5, this build; no peer runs locally)");
        println!("  state transitions: {micros:.2} µs each over {transitions} transitions (target ≤ 20 µs)");
        println!("  Map over 365 dates with a 1-day Wait each: {:.3} s wall for {virtual_days:.0} virtual days (target < 1 s)", wall);
    }
    Ok(())
}
