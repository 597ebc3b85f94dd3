//! `tributary bench clean`: the cleaner on one file, as a benchmark peer.
//!
//! With `--threads N` it is one peer run in the orders-clean harness's
//! contract (`--in`, `--out-dir`, `--threads`; writes `<dataset>_clean.parquet`,
//! `<dataset>_rejected.parquet` and `counts.json`, and prints the counts).
//! Without `--threads` it runs itself as a child once per thread count and
//! reports throughput and peak RSS of each whole process.

use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;
use tributary_core::clean::{clean_files, CleanInput, CleanOptions, CleanPlan};
use tributary_core::config::Config;

/// The orders-clean workload (samplelocal/bench/peers/workload.py), as a
/// dataset config.
pub const ORDERS_BENCH_CONFIG: &str = include_str!("../../bench/orders-clean.toml");

#[derive(clap::Args, Debug)]
pub struct BenchCleanArgs {
    /// The CSV (or .csv.gz) file to clean.
    #[arg(long = "in")]
    pub input: PathBuf,
    /// Where the outputs go (default: a temporary folder).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Run once with this many threads (the harness's peer mode).
    #[arg(long)]
    pub threads: Option<usize>,
    /// A pipeline.toml to take the dataset from (default: the orders-clean workload).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, default_value = "orders")]
    pub dataset: String,
    /// Repetitions per thread count when comparing (median reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Rows per Arrow batch (default: the cleaner's own, 16384), to try
    /// other sizes on your data.
    #[arg(long)]
    pub batch_rows: Option<usize>,
    /// Bytes per range a plain file is cut into, in KiB (default: the
    /// cleaner's own, 4096).
    #[arg(long)]
    pub range_kib: Option<u64>,
}

impl BenchCleanArgs {
    /// The cleaner's options for one peer run with `threads` threads.
    fn clean_options(&self, threads: usize) -> CleanOptions {
        let defaults = CleanOptions::default();
        CleanOptions {
            threads,
            // The harness compares rejected rows column for column with the
            // peers, which keep only the input columns and the reason.
            reject_provenance: false,
            batch_rows: self.batch_rows.unwrap_or(defaults.batch_rows).max(1),
            range_bytes: self
                .range_kib
                .map_or(defaults.range_bytes, |kib| kib.max(1) << 10),
            ..defaults
        }
    }
}

pub fn run(args: &BenchCleanArgs, json_output: bool) -> Result<()> {
    match args.threads {
        Some(t) => peer_run(args, t),
        None => compare(args, json_output),
    }
}

fn load_plan(args: &BenchCleanArgs) -> Result<CleanPlan> {
    let config = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::parse(ORDERS_BENCH_CONFIG, "bench/orders-clean.toml")?,
    };
    let ds = config.dataset(&args.dataset).with_context(|| {
        format!(
            "dataset {:?} is not in the config (known: {})",
            args.dataset,
            config.dataset_names()
        )
    })?;
    CleanPlan::compile(ds).map_err(anyhow::Error::msg)
}

fn peer_run(args: &BenchCleanArgs, threads: usize) -> Result<()> {
    let started = Instant::now();
    let plan = load_plan(args)?;
    let out_dir = args
        .out_dir
        .clone()
        .context("--out-dir is required with --threads")?;
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let input = CleanInput {
        path: args.input.clone(),
        source_name: args.input.display().to_string(),
    };
    let opts = args.clean_options(threads);
    let stats = clean_files(
        &plan,
        &[input],
        &out_dir.join(format!("{}_clean.parquet", args.dataset)),
        &out_dir.join(format!("{}_rejected.parquet", args.dataset)),
        &opts,
    )?;
    let counts = json!({
        "peer": "tributary",
        "threads": threads,
        "input": stats.input,
        "kept": stats.kept,
        "rejected": stats.rejected,
        "rejected_total": stats.rejected_total,
        "duplicates": stats.duplicates,
        "seconds_in_script": started.elapsed().as_secs_f64(),
        "peak_rss_kb": peak_rss_kb(),
    });
    std::fs::write(
        out_dir.join("counts.json"),
        serde_json::to_vec_pretty(&counts)?,
    )?;
    println!("{counts}");
    Ok(())
}

/// Peak resident set size of this process (Linux), in KiB.
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn compare(args: &BenchCleanArgs, json_output: bool) -> Result<()> {
    let bytes = std::fs::metadata(&args.input)
        .with_context(|| format!("reading {}", args.input.display()))?
        .len();
    let exe = std::env::current_exe()?;
    let tmp = tempfile::tempdir()?;
    let base = args
        .out_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let mut results = Vec::new();
    for threads in [1usize, 2] {
        let mut walls = Vec::new();
        let mut rss = Vec::new();
        for run in 0..args.runs.max(1) {
            let out = base.join(format!("t{threads}_run{run}"));
            let mut cmd = std::process::Command::new(&exe);
            cmd.args(["bench", "clean", "--in"])
                .arg(&args.input)
                .arg("--out-dir")
                .arg(&out);
            cmd.args([
                "--threads",
                &threads.to_string(),
                "--dataset",
                &args.dataset,
            ]);
            if let Some(c) = &args.config {
                cmd.arg("--config").arg(c);
            }
            if let Some(rows) = args.batch_rows {
                cmd.arg("--batch-rows").arg(rows.to_string());
            }
            if let Some(kib) = args.range_kib {
                cmd.arg("--range-kib").arg(kib.to_string());
            }
            let started = Instant::now();
            let output = cmd.output()?;
            let wall = started.elapsed().as_secs_f64();
            if !output.status.success() {
                bail!(
                    "bench run failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            let counts: serde_json::Value = serde_json::from_slice(&output.stdout)?;
            walls.push(wall);
            rss.push(counts["peak_rss_kb"].as_u64().unwrap_or(0));
        }
        walls.sort_by(f64::total_cmp);
        rss.sort();
        let wall = walls[walls.len() / 2];
        let mb_s = bytes as f64 / 1e6 / wall;
        results.push(json!({
            "threads": threads, "wall_s": wall, "mb_per_s": mb_s,
            "peak_rss_mib": rss[rss.len() / 2] as f64 / 1024.0,
        }));
    }
    let report = json!({ "input": args.input, "bytes": bytes, "results": results });
    if json_output {
        println!("{report}");
    } else {
        println!(
            "cleaner on {} ({:.1} MB), median of {} runs, whole process:",
            args.input.display(),
            bytes as f64 / 1e6,
            args.runs
        );
        for r in &results {
            println!(
                "  {} thread(s): {:>7.1} MB/s  {:>6.2} s  peak RSS {:>7.1} MiB",
                r["threads"],
                r["mb_per_s"].as_f64().unwrap_or(0.0),
                r["wall_s"].as_f64().unwrap_or(0.0),
                r["peak_rss_mib"].as_f64().unwrap_or(0.0)
            );
        }
        println!(
            "peers in the same run: samplelocal/bench/compare_peers.sh {}",
            args.input.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Args {
        #[command(flatten)]
        clean: BenchCleanArgs,
    }

    fn options(args: &[&str]) -> CleanOptions {
        let base = ["bench", "--in", "orders.csv"];
        let parsed = Args::try_parse_from(base.iter().chain(args)).expect("valid flags");
        parsed.clean.clean_options(1)
    }

    #[test]
    fn tuning_flags_reach_the_cleaner_and_default_to_its_own_sizes() {
        let defaults = CleanOptions::default();
        let plain = options(&[]);
        assert_eq!(
            (plain.batch_rows, plain.range_bytes, plain.reject_provenance),
            (defaults.batch_rows, defaults.range_bytes, false)
        );
        let tuned = options(&["--batch-rows", "32768", "--range-kib", "16384"]);
        assert_eq!((tuned.batch_rows, tuned.range_bytes), (32768, 16 << 20));
        let floor = options(&["--batch-rows", "0", "--range-kib", "0"]);
        assert_eq!((floor.batch_rows, floor.range_bytes), (1, 1024));
    }
}
