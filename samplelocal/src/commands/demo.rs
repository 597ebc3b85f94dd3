//! `tributary demo`: the sample, end to end, on a fresh workspace.

use crate::local::LocalRuntime;
use crate::sample;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::path::Path;
use std::time::Instant;
use tributary_core::{approvals, orchestration};

use super::ops::outputs_hint;
use super::report::{print_json, runs_table};

pub async fn run(root: &Path, json_out: bool, interactive: bool) -> Result<()> {
    let started = Instant::now();
    let rt = LocalRuntime::fresh(root, sample::PIPELINE_TOML)?;
    let progress = if json_out || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(sample::FILES.len() as u64)
    };
    progress.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut runs = Vec::new();
    let mut waiting = Vec::new();
    for f in sample::FILES {
        progress.set_message(format!("{} {}", f.dataset, f.date));
        let result = rt
            .upload(f.bytes.to_vec(), f.dataset, f.date, f.name)
            .await?;
        for o in result.response["objects"].as_array().into_iter().flatten() {
            for (pipeline, missing) in o["waiting"].as_object().into_iter().flatten() {
                waiting
                    .push(json!({ "pipeline": pipeline, "date": f.date, "waiting_for": missing }));
            }
        }
        runs.extend(result.runs);
        progress.inc(1);
    }
    progress.finish_and_clear();
    // Partitions held for low quality wait for a person. By default the
    // demo plays the approver, through the same decide-and-answer path a
    // click on the signed link takes; --interactive waits for your click.
    let mut decided = Vec::new();
    let pending = approvals::pending(&rt.adapters.state, chrono::Utc::now()).await?;
    if interactive && !pending.is_empty() {
        eprintln!(
            "\n{} approval request(s) wait for you: open http://127.0.0.1:8765/ (or the links above) and decide; the demo continues when all are decided.",
            pending.len()
        );
        super::serve::until_decided(&rt, 8765).await?;
    }
    for approval in pending {
        let execution = if interactive {
            let name = approval.execution.rsplit(':').next().unwrap_or_default();
            rt.describe_execution(name)?
        } else {
            rt.decide_approval(
                &approval.id,
                approvals::Decision::Approve,
                "tributary demo (automatic)",
                Some("the demo approves every request; `tributary demo --interactive` lets you decide".into()),
                None,
            )
            .await?
        };
        let decision = approvals::get(&rt.adapters.state, &approval.id).await?;
        decided.push(json!({"approval": approval.id, "purpose": approval.purpose,
                            "summary": approval.summary, "status": decision.status,
                            "decider": decision.decider, "execution": execution}));
    }
    // Where every execution ended, after the approvals.
    for r in &mut runs {
        if let Some(name) = r.execution["name"].as_str() {
            r.execution = rt.describe_execution(name)?;
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut reports = Vec::new();
    for r in &runs {
        for d in orchestration::partition_reports(&rt.services(), &r.pipeline, r.date).await? {
            if seen.insert((d.dataset.clone(), d.date)) {
                reports.push(d);
            }
        }
    }
    // Only what is still waiting at the end matters to the reader.
    let still_waiting: Vec<_> = waiting
        .into_iter()
        .filter(|w| {
            !runs.iter().any(|r| {
                r.date.to_string() == w["date"].as_str().unwrap_or_default()
                    && r.pipeline == w["pipeline"].as_str().unwrap_or_default()
            })
        })
        .collect();
    let mut watermarks = serde_json::Map::new();
    for pipeline in rt.config.pipelines.keys() {
        let w = tributary_core::state::watermark(&rt.adapters.state, pipeline).await?;
        watermarks.insert(pipeline.clone(), json!(w.map(|w| w.date)));
    }
    let (stream, reconciled) = stream_part(&rt).await?;
    if json_out {
        return print_json(&json!({
            "workspace": root, "runs": reports, "executions": runs.iter().map(|r| &r.execution).collect::<Vec<_>>(),
            "approvals": decided, "waiting": still_waiting,
            "watermarks": watermarks, "stream": stream, "reconcile": reconciled,
            "seconds": started.elapsed().as_secs_f64(),
        }));
    }
    println!(
        "tributary demo: {} sample files uploaded to {}\n",
        sample::FILES.len(),
        root.display()
    );
    print!("{}", runs_table(&reports));
    let (input, kept, rejected, dups) =
        reports
            .iter()
            .filter_map(|r| r.stats.as_ref())
            .fold((0, 0, 0, 0), |a, s| {
                (
                    a.0 + s.input,
                    a.1 + s.kept,
                    a.2 + s.rejected_total,
                    a.3 + s.duplicates,
                )
            });
    println!("\nrows: {input} in = {kept} kept + {rejected} rejected + {dups} duplicates");
    for w in &still_waiting {
        println!(
            "waiting: pipeline {} on {} needs {}",
            w["pipeline"].as_str().unwrap_or_default(),
            w["date"].as_str().unwrap_or_default(),
            w["waiting_for"]
        );
    }
    for d in &decided {
        println!(
            "approval: {} -> {} by {}; execution {} {}",
            d["purpose"].as_str().unwrap_or_default(),
            d["status"].as_str().unwrap_or_default(),
            d["decider"].as_str().unwrap_or_default(),
            d["execution"]["name"].as_str().unwrap_or_default(),
            d["execution"]["status"].as_str().unwrap_or_default()
        );
    }
    let executions: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.execution["name"].as_str().unwrap_or_default(),
                r.execution["status"].as_str().unwrap_or_default()
            )
        })
        .collect();
    println!(
        "executions (partition_pipeline.asl.json): {}",
        executions.len()
    );
    println!(
        "watermarks: {}",
        watermarks
            .iter()
            .map(|(p, d)| format!("{p}={}", d.as_str().unwrap_or("none")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let n = |k: &str| stream[k].as_u64().unwrap_or(0);
    println!(
        "\nstream orders: {} events = {} aggregated + {} dead-lettered + {} late + {} duplicates (2 shards, {} invocations of stream-aggregate)",
        n("input"), n("aggregated"), n("dlq"), n("late"), n("duplicates"), n("invocations")
    );
    println!(
        "reconcile {} (realtime vs batch views, {}; alert above {} %):",
        sample::ORDER_EVENTS_DATE,
        reconciled.compared,
        reconciled.threshold_pct
    );
    for d in &reconciled.deviations {
        println!(
            "  {:<4} {}  batch {:>10.2}  realtime {:>10.2}  deviation {:>6.2} %{}",
            d.granularity,
            d.period_start,
            d.batch,
            d.realtime,
            d.deviation_pct,
            if d.alert { "  ALERT" } else { "" }
        );
    }
    println!(
        "  {} realtime windows rebuilt from the archive ({} backfilled); late data windows cleared: {}",
        reconciled.corrected_windows, reconciled.backfilled_windows, reconciled.dirty_windows_cleared
    );
    println!("\noutputs:");
    for (what, path) in outputs_hint(root) {
        println!("  {what:<34} {}", path.display());
    }
    println!("\nnext: tributary partitions | tributary executions list | tributary query --start 2025-12-03 --end 2025-12-04 | tributary dlq list | tributary serve (the console: http://127.0.0.1:8765/)");
    println!("done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The speed layer on the sample events: replayed over two shards, batch
/// views built for their date, and reconciled (late events make one hour
/// deviate; reconciliation alerts and corrects it).
async fn stream_part(
    rt: &LocalRuntime,
) -> Result<(
    serde_json::Value,
    tributary_core::stream::reconcile::ReconcileReport,
)> {
    use super::stream::{deliver_all, keyed_records, Totals};
    let config = rt
        .config
        .streams
        .get("orders")
        .ok_or_else(|| anyhow::anyhow!("the sample pipeline.toml lacks [streams.orders]"))?;
    let lines: Vec<&str> = sample::ORDER_EVENTS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let kinesis = tributary_local::kinesis::KinesisStandIn::new("orders", 2, &rt.adapters.state);
    let mut totals = Totals::default();
    deliver_all(
        rt,
        &kinesis,
        keyed_records(config, &lines),
        100,
        &mut totals,
    )
    .await?;
    let svc = rt.services();
    let date = tributary_core::layout::parse_date(sample::ORDER_EVENTS_DATE)
        .ok_or_else(|| anyhow::anyhow!("bad sample date"))?;
    tributary_core::stream::views::build_views(&svc, "orders", date, chrono::Utc::now()).await?;
    let report = tributary_core::stream::reconcile::reconcile(
        &svc,
        "orders",
        Some(vec![date]),
        chrono::Utc::now(),
    )
    .await?;
    let mut stream = serde_json::Value::Object(totals.outcome);
    stream["invocations"] = json!(totals.invocations);
    Ok((stream, report))
}
