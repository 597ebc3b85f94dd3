//! The distributed clean end to end: the orders benchmark workload (with
//! duplicates across files and ranges, every reject reason, and quoted line
//! breaks that land on cuts) cleaned by the partition pipeline once on the
//! one-function path and once, with 64 KiB ranges and four buckets, on the
//! distributed path, through the interpreter running the state machine
//! files Terraform deploys. Both publish the same rows and rejects with the
//! same counts and quality.

mod common;

use arrow_cast::display::{ArrayFormatter, FormatOptions};
use common::{json_of, tributary};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use std::path::{Path, PathBuf};

const DATE: &str = "2025-01-01";

/// The benchmark's dataset in a pipeline of its own, completed by a marker
/// so the three files are cleaned together.
fn config(dir: &Path, name: &str, scale: &str) -> PathBuf {
    config_with(dir, name, scale, "")
}

/// The same, with more keys of the dataset's own table (`output_mode`).
fn config_with(dir: &Path, name: &str, scale: &str, dataset_keys: &str) -> PathBuf {
    let bench = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/orders-clean.toml"),
    )
    .unwrap();
    let text = format!(
        "{bench}\n{scale}\n\n[[datasets.orders.expectations]]\nkind = \"row_count_between\"\nmin = 1\n\n[[datasets.orders.expectations]]\nkind = \"between\"\ncolumn = \"amount\"\nmin = 0.5\nmostly = 0.5\n\n[[datasets.orders.expectations]]\nkind = \"unique\"\ncolumn = \"user_id\"\nmostly = 0.1\n\n[[datasets.orders.expectations]]\nkind = \"unique\"\ncolumn = \"order_id\"\n\n[pipelines.orders_daily]\ndatasets = [\"orders\"]\ntimezone = \"UTC\"\n"
    );
    // `complete_when` belongs to the dataset table, before its sub-tables.
    let text = text.replacen(
        "trim = true\n",
        &format!("trim = true\ncomplete_when = \"marker\"\n{dataset_keys}"),
        1,
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The workload cut into three files, every 40th line of the second
/// followed by an order whose product holds a quoted line break.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    inputs_of(dir, 200_000)
}

fn inputs_of(dir: &Path, rows: u32) -> Vec<PathBuf> {
    let data = dir.join("orders.csv");
    let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/peers/workload.py");
    let made = std::process::Command::new("python3")
        .arg(&generator)
        .args(["--rows", &rows.to_string(), "--out"])
        .arg(&data)
        .output()
        .expect("run python3 workload.py");
    assert!(made.status.success(), "{made:?}");
    let text = std::fs::read_to_string(&data).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    let lines: Vec<&str> = body.lines().collect();
    let third = lines.len() / 3;
    let mut files = Vec::new();
    for (i, chunk) in [
        &lines[..third],
        &lines[third..2 * third],
        &lines[2 * third..],
    ]
    .into_iter()
    .enumerate()
    {
        let mut out = format!("{header}\n");
        for (n, line) in chunk.iter().enumerate() {
            out.push_str(line);
            out.push('\n');
            if i == 1 && n % 40 == 0 {
                out.push_str(&format!(
                    "QN-{n},7,\"P-{n}\nsecond line\",12.5,EUR,2025-01-01T10:00:00Z,paid,DE\n"
                ));
            }
        }
        let path = dir.join(format!("orders-{i}.csv"));
        std::fs::write(&path, out).unwrap();
        files.push(path);
    }
    files
}

fn run(dir: &Path, config: &Path, ws: &Path, files: &[PathBuf]) -> Value {
    run_round(dir, config, ws, files, 1)
}

/// Upload `files` and a marker that differs each round. Once a date has
/// its marker, every new file starts the date's run again; the last run
/// started in the round must succeed.
fn run_round(dir: &Path, config: &Path, ws: &Path, files: &[PathBuf], round: u32) -> Value {
    let cli = |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        json_of(&tributary(ws, &all))
    };
    let marker = dir.join("_SUCCESS");
    std::fs::write(&marker, format!("round {round}\n")).unwrap();
    let mut last_run = Value::Null;
    for f in files.iter().chain([&marker]) {
        let up = cli(&[
            "--json",
            "upload",
            f.to_str().unwrap(),
            "--dataset",
            "orders",
            "--date",
            DATE,
        ]);
        if let Some(run) = up["runs"].as_array().and_then(|r| r.last()) {
            last_run = run.clone();
        }
    }
    assert_eq!(
        last_run["execution"]["status"], "SUCCEEDED",
        "round {round}: {last_run}"
    );
    cli(&["--json", "partitions", "--dataset", "orders"])
}

fn find_under(root: &Path, part: &str) -> PathBuf {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(part) {
                return p;
            }
        }
    }
    panic!("no {part} under {}", root.display())
}

fn parquet_under(root: &Path, part: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains(part)
                && p.extension().is_some_and(|x| x == "parquet")
            {
                found.push(p);
            }
        }
    }
    found
}

/// Every row of the files as text, sorted (`drop` leaves a column out).
fn rows(files: &[PathBuf], drop: &[&str]) -> Vec<String> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for f in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let schema = batch.schema();
            let columns: Vec<_> = batch
                .columns()
                .iter()
                .zip(schema.fields())
                .filter(|(_, f)| !drop.contains(&f.name().as_str()))
                .map(|(c, _)| match c.data_type() {
                    arrow_schema::DataType::Timestamp(..) => {
                        arrow_cast::cast(c, &arrow_schema::DataType::Int64).unwrap()
                    }
                    _ => c.clone(),
                })
                .collect();
            let formatters: Vec<_> = columns
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
                .collect();
            for i in 0..batch.num_rows() {
                let row: Vec<String> = formatters.iter().map(|f| f.value(i).to_string()).collect();
                rows.push(row.join("|"));
            }
        }
    }
    rows.sort();
    rows
}

#[test]
fn a_large_date_cleaned_in_ranges_publishes_what_one_function_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let files = inputs(dir.path());
    let single_config = config(dir.path(), "single.toml", "");
    let distributed_config = config(
        dir.path(),
        "distributed.toml",
        "[datasets.orders.scale]\nmax_single_bytes = 4096\nrange_bytes = \"64KiB\"\nbuckets = 4\n",
    );
    let (single_ws, distributed_ws) = (dir.path().join("single"), dir.path().join("distributed"));
    let single = run(dir.path(), &single_config, &single_ws, &files);
    let distributed = run(dir.path(), &distributed_config, &distributed_ws, &files);
    let partition = |p: &Value| p["partitions"][0].clone();
    let (s, d) = (partition(&single), partition(&distributed));
    assert_eq!(s["state"], "published", "{s}");
    assert_eq!(d["state"], "published", "{d}");
    for field in [
        "input",
        "kept",
        "rejected",
        "rejected_total",
        "duplicates",
        "files",
        "bytes",
    ] {
        assert_eq!(
            s["clean"][field], d["clean"][field],
            "{field}: {s} against {d}"
        );
    }
    assert!(s["clean"]["duplicates"].as_u64().unwrap() > 0);
    assert_eq!(s["quality_score"], d["quality_score"]);
    // Many ranges really ran (one per 64 KiB).
    assert!(d["clean"]["ranges"].as_u64().unwrap() > 100, "{d}");
    let published = |ws: &Path| parquet_under(ws, &format!("cleaned/orders/date={DATE}/run="));
    let (single_rows, distributed_rows) = (
        rows(&published(&single_ws), &[]),
        rows(&published(&distributed_ws), &[]),
    );
    assert_eq!(
        single_rows.len() as u64,
        s["clean"]["kept"].as_u64().unwrap()
    );
    assert!(single_rows == distributed_rows, "the kept rows differ");
    // The quality report, examples included: one pass over the partition
    // against tallies merged from the buckets and the unique shards.
    let report = |ws: &Path| -> Value {
        let mut r: Value = serde_json::from_str(
            &std::fs::read_to_string(find_under(
                ws,
                &format!("quality/orders/date={DATE}/report.json"),
            ))
            .unwrap(),
        )
        .unwrap();
        r["run_id"] = Value::Null;
        r
    };
    let (single_report, distributed_report) = (report(&single_ws), report(&distributed_ws));
    assert!(
        single_report["expectations"][2]["unexpected_count"]
            .as_u64()
            .unwrap()
            > 0,
        "{single_report}"
    );
    assert_eq!(single_report, distributed_report);
    // Validate read tallies, not the partition: one per bucket and per
    // unique shard on the distributed path, one on the other.
    find_under(&single_ws, "/quality/single.json");
    find_under(&distributed_ws, "/quality/b0003.json");
    find_under(&distributed_ws, "/quality/u0003.json");
    let rejects = |ws: &Path| parquet_under(ws, &format!("rejects/orders/date={DATE}/run="));
    let (single_rejects, distributed_rejects) = (
        rows(&rejects(&single_ws), &[]),
        rows(&rejects(&distributed_ws), &[]),
    );
    assert_eq!(
        single_rejects.len() as u64,
        s["clean"]["rejected_total"].as_u64().unwrap()
    );
    assert!(single_rejects == distributed_rejects, "the rejects differ");
}

/// Append and merge modes on both paths: a first delivery, then a new
/// file and a new version of an old one. The published rows after each
/// round are the same multiset on both paths.
#[test]
fn append_and_merge_publish_the_same_rows_on_both_paths() {
    let dir = tempfile::tempdir().unwrap();
    let files = inputs_of(dir.path(), 60_000);
    // Round 2: orders-1.csv again, its first half only (a new version).
    let second = dir.path().join("v2");
    std::fs::create_dir_all(&second).unwrap();
    let first_version = std::fs::read_to_string(&files[1]).unwrap();
    let lines: Vec<&str> = first_version.lines().collect();
    let half = lines[..lines.len() / 2].join("\n") + "\n";
    let renewed = second.join("orders-1.csv");
    std::fs::write(&renewed, half).unwrap();
    for mode in ["append", "merge"] {
        let keys = format!("output_mode = \"{mode}\"\n");
        let single_config = config_with(dir.path(), &format!("{mode}-single.toml"), "", &keys);
        let distributed_config = config_with(
            dir.path(),
            &format!("{mode}-distributed.toml"),
            "[datasets.orders.scale]\nmax_single_bytes = 4096\nrange_bytes = \"64KiB\"\nbuckets = 3\n",
            &keys,
        );
        let single_ws = dir.path().join(format!("{mode}-single"));
        let distributed_ws = dir.path().join(format!("{mode}-distributed"));
        for (config, ws) in [
            (&single_config, &single_ws),
            (&distributed_config, &distributed_ws),
        ] {
            let one = run_round(dir.path(), config, ws, &files[..2], 1);
            assert_eq!(one["partitions"][0]["state"], "published", "{mode}: {one}");
            let two = run_round(
                dir.path(),
                config,
                ws,
                &[files[2].clone(), renewed.clone()],
                2,
            );
            assert_eq!(two["partitions"][0]["state"], "published", "{mode}: {two}");
        }
        let manifest = |ws: &Path| -> Value {
            serde_json::from_str(
                &std::fs::read_to_string(find_under(
                    ws,
                    &format!("cleaned/orders/date={DATE}/_manifest.json"),
                ))
                .unwrap(),
            )
            .unwrap()
        };
        // The published run only: older runs' files stay until retention.
        let published = |ws: &Path| {
            let location = manifest(ws)["location"].as_str().unwrap().to_string();
            parquet_under(ws, &location)
        };
        let (single_rows, distributed_rows) = (
            rows(&published(&single_ws), &[]),
            rows(&published(&distributed_ws), &[]),
        );
        assert!(!single_rows.is_empty(), "{mode}");
        assert!(
            single_rows == distributed_rows,
            "{mode}: {} rows against {}",
            single_rows.len(),
            distributed_rows.len()
        );
        for ws in [&single_ws, &distributed_ws] {
            assert_eq!(
                manifest(ws)["rows"].as_u64(),
                Some(single_rows.len() as u64),
                "{mode}: the manifest counts what it publishes"
            );
        }
        if mode == "merge" {
            // The buckets merged the published rows: one part per bucket,
            // no merged file written at publish.
            let names: Vec<String> = published(&distributed_ws)
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            assert!(names.iter().all(|n| n.starts_with("part-b")), "{names:?}");
            assert_eq!(names.len(), 3, "{names:?}");
        }
    }
}

/// A gzip file cannot be cut into ranges: one larger than a single clean
/// may take is refused before any work, with what to do, and the date is
/// marked failed rather than retried.
#[test]
fn a_gzip_file_too_large_for_one_worker_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let files = inputs_of(dir.path(), 5_000);
    let gz = dir.path().join("orders-0.csv.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::Write::write_all(&mut encoder, &std::fs::read(&files[0]).unwrap()).unwrap();
    encoder.finish().unwrap();
    let config = config(
        dir.path(),
        "gz.toml",
        "[datasets.orders.scale]\nmax_single_bytes = 4096\nrange_bytes = \"64KiB\"\n",
    );
    let ws = dir.path().join("ws");
    let cli = |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        json_of(&tributary(&ws, &all))
    };
    cli(&[
        "--json",
        "upload",
        gz.to_str().unwrap(),
        "--dataset",
        "orders",
        "--date",
        DATE,
    ]);
    let marker = dir.path().join("_SUCCESS");
    std::fs::write(&marker, "").unwrap();
    let done = cli(&[
        "--json",
        "upload",
        marker.to_str().unwrap(),
        "--dataset",
        "orders",
        "--date",
        DATE,
    ]);
    assert_eq!(done["runs"][0]["execution"]["status"], "FAILED", "{done}");
    let parts = cli(&["--json", "partitions", "--dataset", "orders"]);
    let p = &parts["partitions"][0];
    assert_eq!(p["state"], "failed", "{p}");
    let error = p["error"].as_str().unwrap_or_default();
    assert!(error.contains("cannot be cut into ranges"), "{error}");
    assert!(
        error.contains("split it into smaller files") || error.contains("split"),
        "{error}"
    );
    // Refused once, not retried: the plan step ran one time.
    let history = done.to_string();
    assert!(!history.contains("Tributary.Retryable"), "{history}");
}
