//! `tributary demo`: the sample, end to end, on a fresh workspace.

use crate::local::LocalRuntime;
use crate::sample;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

use super::ops::outputs_hint;
use super::report::{print_json, runs_table};

pub async fn run(root: &Path, json_out: bool) -> Result<()> {
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
    // Only what is still waiting at the end matters to the reader.
    let still_waiting: Vec<_> = waiting
        .into_iter()
        .filter(|w| {
            !runs.iter().any(|r| {
                r.date.to_string() == w["date"].as_str().unwrap_or_default()
                    && rt
                        .config
                        .pipelines
                        .get(w["pipeline"].as_str().unwrap_or_default())
                        .is_some_and(|p| p.datasets.contains(&r.dataset))
            })
        })
        .collect();
    let mut watermarks = serde_json::Map::new();
    for pipeline in rt.config.pipelines.keys() {
        let w = tributary_core::state::watermark(&rt.adapters.state, pipeline).await?;
        watermarks.insert(pipeline.clone(), json!(w.map(|w| w.date)));
    }
    if json_out {
        return print_json(&json!({
            "workspace": root, "runs": runs, "waiting": still_waiting,
            "watermarks": watermarks, "seconds": started.elapsed().as_secs_f64(),
        }));
    }
    println!(
        "tributary demo: {} sample files uploaded to {}\n",
        sample::FILES.len(),
        root.display()
    );
    print!("{}", runs_table(&runs));
    let (input, kept, rejected, dups) =
        runs.iter()
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
    println!(
        "watermarks: {}",
        watermarks
            .iter()
            .map(|(p, d)| format!("{p}={}", d.as_str().unwrap_or("none")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("\noutputs:");
    for (what, path) in outputs_hint(root) {
        println!("  {what:<34} {}", path.display());
    }
    println!("\nnext: tributary partitions | tributary retention --dry-run | tributary upload FILE --dataset orders --date 2025-12-04");
    println!("done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
