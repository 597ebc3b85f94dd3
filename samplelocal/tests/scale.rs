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
        "trim = true\ncomplete_when = \"marker\"\n",
        1,
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The workload cut into three files, every 40th line of the second
/// followed by an order whose product holds a quoted line break.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let data = dir.join("orders.csv");
    let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/peers/workload.py");
    let made = std::process::Command::new("python3")
        .arg(&generator)
        .args(["--rows", "200000", "--out"])
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
    let cli = |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        json_of(&tributary(ws, &all))
    };
    for f in files {
        cli(&[
            "--json",
            "upload",
            f.to_str().unwrap(),
            "--dataset",
            "orders",
            "--date",
            DATE,
        ]);
    }
    let marker = dir.join("_SUCCESS");
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
    assert_eq!(
        done["runs"][0]["execution"]["status"], "SUCCEEDED",
        "{done}"
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
