//! `tributary bench range`: one worker of the distributed clean on one
//! range of a file, as a range worker runs it (a sparse copy of the header
//! and of the range's bytes, valid rows split into bucket files), reporting
//! its time, peak memory and scratch: what sizes a range worker's Lambda.

use super::bench::{peak_rss_kb, ORDERS_BENCH_CONFIG};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Instant;
use tributary_core::clean::distributed::{self as pure, RangeRead};
use tributary_core::clean::{CleanOptions, CleanPlan};
use tributary_core::config::Config;

#[derive(clap::Args, Debug)]
pub struct BenchRangeArgs {
    /// The CSV file whose middle range is cleaned.
    #[arg(long = "in")]
    pub input: PathBuf,
    /// The range size, in MiB (the dataset's scale.range_bytes).
    #[arg(long, default_value_t = 128)]
    pub range_mib: u64,
    /// Dedupe buckets the valid rows are split into.
    #[arg(long, default_value_t = 64)]
    pub buckets: u32,
    /// A pipeline.toml to take the dataset from (default: the orders-clean workload).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, default_value = "orders")]
    pub dataset: String,
}

/// Bytes past the range a worker fetches first (as the deployed worker).
const TAIL_BYTES: u64 = 1 << 20;

fn read_span(file: &mut std::fs::File, from: u64, to: u64) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; (to - from) as usize];
    file.seek(SeekFrom::Start(from))?;
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

pub fn run(args: &BenchRangeArgs) -> Result<()> {
    let config = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::parse(ORDERS_BENCH_CONFIG, "bench/orders-clean.toml")?,
    };
    let ds = config
        .dataset(&args.dataset)
        .with_context(|| format!("dataset {} is not in the configuration", args.dataset))?;
    let plan = CleanPlan::compile(ds).map_err(anyhow::Error::msg)?;
    let size = std::fs::metadata(&args.input)
        .with_context(|| format!("reading {}", args.input.display()))?
        .len();
    let tasks = pure::cut_ranges(
        &[(args.input.display().to_string(), size)],
        args.range_mib.max(1) << 20,
    );
    let Some(task) = tasks.get(tasks.len() / 2) else {
        bail!("{} is empty", args.input.display());
    };
    let started = Instant::now();
    let mut file = std::fs::File::open(&args.input)?;
    let header = read_span(&mut file, 0, pure::HEADER_PROBE_BYTES.min(size))?;
    let (from, mut to) = task.fetch_span(TAIL_BYTES);
    let mut body = read_span(&mut file, from, to)?;
    let scratch = tempfile::tempdir()?;
    let local = scratch.path().join("range");
    let opts = CleanOptions::default();
    let cleaned = loop {
        pure::write_local_copy(&local, &header, &body, from)?;
        match pure::clean_range(&plan, task, &local, (from, to), args.buckets, &opts)? {
            RangeRead::Cleaned(c) => break c,
            RangeRead::NeedBytes { through } => {
                body.extend(read_span(&mut file, to, through)?);
                to = through;
            }
        }
    };
    let scratch_bytes = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&local)?.blocks() * 512
    };
    drop(body);
    let schema = pure::bucket_schema(&plan);
    let mut shuffle_bytes = 0u64;
    for b in &cleaned.buckets {
        shuffle_bytes += pure::to_ipc(&schema, b)?.len() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    let range_bytes = task.end - task.start;
    let report = json!({
        "file_bytes": size,
        "ranges_in_file": tasks.len(),
        "range": task.id(),
        "range_bytes": range_bytes,
        "rows": cleaned.summary.stats.input,
        "valid_rows": cleaned.summary.stats.kept,
        "buckets": args.buckets,
        "seconds": seconds,
        "mb_per_s": range_bytes as f64 / 1e6 / seconds,
        "peak_rss_kb": peak_rss_kb(),
        "scratch_bytes": scratch_bytes,
        "shuffle_bytes": shuffle_bytes,
    });
    println!("{report}");
    Ok(())
}
