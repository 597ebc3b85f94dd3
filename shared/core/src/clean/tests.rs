use super::*;
use crate::config::Config;
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::io::Write;

const CONFIG: &str = r#"
[datasets.t]
key = ["id"]
event_time = "ts"
null_markers = ["NULL"]
[[datasets.t.columns]]
name = "id"
type = "string"
required = true
[[datasets.t.columns]]
name = "n"
type = "int"
[[datasets.t.columns]]
name = "x"
type = "float"
[[datasets.t.columns]]
name = "ok"
type = "bool"
[[datasets.t.columns]]
name = "d"
type = "date"
[[datasets.t.columns]]
name = "ts"
type = "timestamp"
required = true
invalid_reason = "bad_ts"
[[datasets.t.columns]]
name = "s"
type = "string"
[[datasets.t.rules]]
column = "x"
min = 0.0
max = 10.0
max_exclusive = true
reason = "x_range"
[[datasets.t.rules]]
column = "s"
allowed = ["a", "b"]
reason = "s_set"
[[datasets.t.rules]]
column = "s"
regex = "^[a-z]$"
reason = "s_regex"
[[datasets.t.derived]]
name = "day"
kind = "date_of"
from = "ts"
"#;

const HEADER: &str = "id,n,x,ok,d,ts,s\n";
const TS: &str = "2025-01-02T03:04:05Z";

#[derive(Debug)]
struct Run {
    stats: CleanStats,
    kept: Vec<RecordBatch>,
    rejects: Vec<RecordBatch>,
}

impl Run {
    fn kept_rows(&self) -> usize {
        self.kept.iter().map(|b| b.num_rows()).sum()
    }
    fn kept_strings(&self, col: &str) -> Vec<Option<String>> {
        self.kept
            .iter()
            .flat_map(|b| {
                let a = b.column_by_name(col).unwrap().as_string::<i32>().clone();
                (0..a.len()).map(move |i| a.is_valid(i).then(|| a.value(i).to_string()))
            })
            .collect()
    }
    fn reject_column(&self, col: &str) -> Vec<Option<String>> {
        self.rejects
            .iter()
            .flat_map(|b| {
                let a = b.column_by_name(col).unwrap().as_string::<i32>().clone();
                (0..a.len()).map(move |i| a.is_valid(i).then(|| a.value(i).to_string()))
            })
            .collect()
    }
    fn reasons(&self) -> Vec<String> {
        self.reject_column("reject_reason")
            .into_iter()
            .flatten()
            .collect()
    }
}

fn read(path: &Path) -> Vec<RecordBatch> {
    let f = File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

fn clean_with(config: &str, files: &[(&str, &[u8])], threads: usize) -> Result<Run, CleanError> {
    clean_with_options(
        config,
        files,
        CleanOptions {
            threads,
            batch_rows: 3, // several batches even for tiny inputs
            ..CleanOptions::default()
        },
    )
}

fn clean_with_options(
    config: &str,
    files: &[(&str, &[u8])],
    opts: CleanOptions,
) -> Result<Run, CleanError> {
    let c = Config::parse(config, "test.toml").unwrap();
    let plan = CleanPlan::compile(c.datasets.values().next().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let inputs: Vec<CleanInput> = files
        .iter()
        .map(|(name, bytes)| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            CleanInput {
                path,
                source_name: format!("raw/t/date=2025-01-02/{name}"),
            }
        })
        .collect();
    let kept = dir.path().join("kept.parquet");
    let rejects = dir.path().join("rejects.parquet");
    let stats = clean_files(&plan, &inputs, &kept, &rejects, &opts)?;
    assert!(stats.balanced(), "{stats:?}");
    Ok(Run {
        stats,
        kept: read(&kept),
        rejects: read(&rejects),
    })
}

fn clean(body: &str) -> Run {
    clean_with(
        CONFIG,
        &[("f.csv", format!("{HEADER}{body}").as_bytes())],
        1,
    )
    .unwrap()
}

#[test]
fn types_parse_and_derive() {
    let r = clean("k1,42,1.5,yes,2025-02-28,2025-01-02T23:30:00-01:00,a\n");
    assert_eq!(r.stats.kept, 1);
    let b = &r.kept[0];
    assert_eq!(
        b.column_by_name("n")
            .unwrap()
            .as_primitive::<Int64Type>()
            .value(0),
        42
    );
    assert_eq!(
        b.column_by_name("x")
            .unwrap()
            .as_primitive::<Float64Type>()
            .value(0),
        1.5
    );
    assert!(b.column_by_name("ok").unwrap().as_boolean().value(0));
    let d = b
        .column_by_name("d")
        .unwrap()
        .as_primitive::<Date32Type>()
        .value(0);
    assert_eq!(d, 20147); // 2025-02-28
    let ts = b
        .column_by_name("ts")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>()
        .value(0);
    assert_eq!(ts, 1_735_864_200_000_000); // 2025-01-03T00:30:00Z
    let day = b
        .column_by_name("day")
        .unwrap()
        .as_primitive::<Date32Type>()
        .value(0);
    assert_eq!(day, 20091); // 2025-01-03: the UTC date, not the local one
}

#[test]
fn trims_spaces_and_tabs_only_and_honours_null_markers() {
    let r = clean(&format!(
        " k1\t,\t7 ,,,,{TS},  a \nk2,NULL,,,,{TS},\u{a0}a\n"
    ));
    assert_eq!(r.kept_strings("id"), vec![Some("k1".into())]);
    assert_eq!(r.kept_strings("s"), vec![Some("a".into())]);
    // A non-breaking space is data, not padding: 'Â a' is not in the set.
    assert_eq!(r.reasons(), vec!["s_set"]);
    let n = r.kept[0]
        .column_by_name("n")
        .unwrap()
        .as_primitive::<Int64Type>()
        .clone();
    assert_eq!(n.value(0), 7);
}

#[test]
fn each_rule_rejects_with_its_reason_in_order() {
    let body = [
        format!(",1,1,,,{TS},a"),                     // required null
        "k2,1,1,,,,a".to_string(),                    // required null (ts)
        format!("k3,x,1,,,{TS},a"),                   // bad int
        format!("k4,1,NaN,,,{TS},a"),                 // non-finite float
        format!("k5,1,inf,,,{TS},a"),                 // non-finite float
        format!("k6,1,1,maybe,,{TS},a"),              // bad bool
        format!("k7,1,1,,2025-02-29,{TS},a"),         // bad date
        "k8,1,1,,,2025-01-02T03:04:05,a".to_string(), // naive timestamp refused
        format!("k9,1,10,,,{TS},a"),                  // max exclusive
        format!("k10,1,-0.5,,,{TS},a"),               // below min
        format!("k11,1,1,,,{TS},c"),                  // not in set
        "k12,1,-1,,,garbage,zz".to_string(),          // several faults: type error first
        format!("k13,1,-1,,,{TS},zz"),                // range before set
        format!("k14,1,1,,,{TS},"),                   // null passes value rules
    ]
    .join("\n");
    let r = clean(&format!("{body}\n"));
    assert_eq!(
        r.reasons(),
        vec![
            "null_required",
            "null_required",
            "bad_int",
            "bad_float",
            "bad_float",
            "bad_bool",
            "bad_date",
            "bad_ts",
            "x_range",
            "x_range",
            "s_set",
            "bad_ts",
            "x_range",
        ]
    );
    assert_eq!(r.kept_strings("id"), vec![Some("k14".into())]);
    assert_eq!(r.stats.rejected["x_range"], 3);
    let details = r.reject_column("reject_detail");
    assert!(
        details[2]
            .as_deref()
            .unwrap()
            .contains("n: \"x\" is not a valid int"),
        "{details:?}"
    );
    let lines = r.reject_column("source_file");
    assert!(lines[0].as_deref().unwrap().ends_with("f.csv"));
}

#[test]
fn regex_rule() {
    let cfg = CONFIG.replace(
        "allowed = [\"a\", \"b\"]",
        "allowed = [\"a\", \"b\", \"ab\"]",
    );
    let r = clean_with(
        &cfg,
        &[("f.csv", format!("{HEADER}k1,1,1,,,{TS},ab\n").as_bytes())],
        1,
    )
    .unwrap();
    assert_eq!(r.reasons(), vec!["s_regex"]);
}

#[test]
fn dedupe_keeps_latest_event_time_and_first_on_ties_across_files() {
    let a = format!("{HEADER}k1,1,1,,,2025-01-02T10:00:00Z,a\nk2,1,1,,,2025-01-02T10:00:00Z,a\nk3,1,1,,,2025-01-02T10:00:00Z,a\n");
    // k1: later instant written with an offset that sorts earlier as text.
    // k2: equal instant → the first (file a) stays. k3: earlier → loses.
    let b = format!("{HEADER}k1,2,1,,,2025-01-02T11:00:00+01:00,b\nk1,3,1,,,2025-01-02T10:30:00Z,b\nk2,2,1,,,2025-01-02T12:00:00+02:00,b\nk3,2,1,,,2025-01-02T09:00:00Z,b\n");
    let r = clean_with(
        CONFIG,
        &[("a.csv", a.as_bytes()), ("b.csv", b.as_bytes())],
        1,
    )
    .unwrap();
    assert_eq!(r.stats.duplicates, 4);
    assert_eq!(
        r.kept_strings("id"),
        vec![Some("k2".into()), Some("k3".into()), Some("k1".into())]
    );
    let ns: Vec<i64> = r
        .kept
        .iter()
        .flat_map(|b| {
            b.column_by_name("n")
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(ns, vec![1, 1, 3]);
}

#[test]
fn rfc4180_quoting_bom_crlf_and_gzip() {
    let body = format!(
        "\u{feff}{}\"k,1\",1,1,,,{TS},\"a\"\r\n\"k\"\"2\",1,1,,,{TS},\"b\"\r\n\"k\n3\",1,1,,,{TS},a\r\nk4,1,1,,,{TS},\"\"\r\n",
        HEADER.replace('\n', "\r\n")
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let plain = clean_with(CONFIG, &[("f.csv", body.as_bytes())], 1).unwrap();
    let zipped = clean_with(CONFIG, &[("f.csv.gz", &gz)], 1).unwrap();
    for r in [&plain, &zipped] {
        assert_eq!(
            r.kept_strings("id"),
            vec![
                Some("k,1".into()),
                Some("k\"2".into()),
                Some("k\n3".into()),
                Some("k4".into())
            ]
        );
        assert_eq!(r.kept_strings("s")[3], None, "empty quoted field is null");
    }
    assert_eq!(zipped.stats.bytes, gz.len() as u64);
}

#[test]
fn ragged_rows_and_invalid_utf8_are_rejected_with_line_numbers() {
    let mut body = format!("{HEADER}k1,1,1,,,{TS},a\nk2,1\nk3,1,1,,,{TS},a,extra\n").into_bytes();
    body.extend_from_slice(b"k4\xff,1,1,,,2025-01-02T03:04:05Z,a\n");
    let r = clean_with(CONFIG, &[("f.csv", &body)], 1).unwrap();
    assert_eq!(
        r.reasons(),
        vec!["ragged_row", "ragged_row", "invalid_utf8"]
    );
    let lines: Vec<i64> = r
        .rejects
        .iter()
        .flat_map(|b| {
            b.column_by_name("source_line")
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(lines, vec![3, 4, 5]);
    let detail = r.reject_column("reject_detail");
    assert!(
        detail[2].as_deref().unwrap().contains("column id"),
        "{detail:?}"
    );
    // Nothing lost: the raw text of the ragged row is in the detail.
    assert!(detail[0].as_deref().unwrap().contains("found 2"));
    // The rejected values themselves: the bytes that were not UTF-8 are
    // replaced in that row only, the batch's other rows keep their text.
    assert_eq!(
        r.reject_column("id"),
        vec![
            Some("k2".to_string()),
            Some("k3".to_string()),
            Some("k4\u{fffd}".to_string())
        ]
    );
}

#[test]
fn file_level_errors_name_the_file_and_problem() {
    let err = clean_with(CONFIG, &[("empty.csv", b"")], 1).unwrap_err();
    assert!(matches!(err, CleanError::EmptyFile { .. }), "{err}");
    assert!(err.to_string().contains("empty.csv"));
    let err = clean_with(CONFIG, &[("f.csv", b"id,n,x\nk1,1,1\n")], 1).unwrap_err();
    assert!(
        err.to_string()
            .contains("lacks required column(s) [\"ts\"]"),
        "{err}"
    );
    assert!(!err.retryable());
    let err = clean_with(CONFIG, &[("bad.csv.gz", b"not gzip at all")], 1).unwrap_err();
    assert!(err.to_string().contains("bad.csv.gz"), "{err}");
}

#[test]
fn header_only_gives_an_empty_partition() {
    let r = clean_with(CONFIG, &[("f.csv", HEADER.as_bytes())], 1).unwrap();
    assert_eq!((r.stats.input, r.kept_rows()), (0, 0));
}

#[test]
fn extra_and_missing_optional_columns() {
    let body = format!("id,ts,surprise\nk1,{TS},zzz\n");
    let r = clean_with(CONFIG, &[("f.csv", body.as_bytes())], 1).unwrap();
    assert_eq!(r.stats.kept, 1);
    assert_eq!(r.kept_strings("s"), vec![None]);
    assert_eq!(
        r.stats.dropped_columns.values().next().unwrap(),
        &vec!["surprise".to_string()]
    );
    let strict = CONFIG.replace(
        "null_markers = [\"NULL\"]",
        "null_markers = [\"NULL\"]\nextra_columns = \"fail\"",
    );
    let err = clean_with(&strict, &[("f.csv", body.as_bytes())], 1).unwrap_err();
    assert!(matches!(err, CleanError::ExtraColumns { .. }), "{err}");
}

#[test]
fn two_threads_write_the_same_output() {
    let mut body = String::from(HEADER);
    for i in 0..500 {
        let s = if i % 7 == 0 { "q" } else { "a" };
        body.push_str(&format!(
            "k{},{i},{},,,2025-01-02T{:02}:00:00Z,{s}\n",
            i % 400,
            i % 12,
            i % 24
        ));
    }
    let one = clean_with(CONFIG, &[("f.csv", body.as_bytes())], 1).unwrap();
    let two = clean_with(CONFIG, &[("f.csv", body.as_bytes())], 2).unwrap();
    assert_eq!(one.stats, two.stats);
    assert_eq!(one.kept_strings("id"), two.kept_strings("id"));
    assert_eq!(one.reasons(), two.reasons());
    assert!(one.stats.duplicates > 0 && one.stats.rejected_total > 0);
}

/// A file with dirty rows, duplicates across the whole file, quoted commas,
/// a quoted line break in the middle, CRLF and empty lines.
fn awkward_body(rows: usize) -> String {
    let mut body = String::from(HEADER);
    for i in 0..rows {
        let s = match i % 11 {
            0 => "q",
            _ => "a",
        };
        match i % 97 {
            13 => body.push_str(&format!("\"k{},x\",{i},1,,,{TS},a\r\n", i % 300)),
            29 => body.push_str(&format!("\"k{}\nsecond line\",{i},1,,,{TS},a\n", i % 300)),
            41 => body.push('\n'),
            53 => body.push_str(&format!("k{},{i},1\n", i % 300)), // ragged
            _ => body.push_str(&format!(
                "k{},{i},{},,,2025-01-02T{:02}:00:00Z,{s}\n",
                i % 300,
                i % 12,
                i % 24
            )),
        }
    }
    body
}

/// What one sequential reader makes of `files`: the reference.
fn clean_in_one_range(files: &[(&str, &[u8])]) -> Run {
    clean_with_options(
        CONFIG,
        files,
        CleanOptions {
            range_bytes: u64::MAX,
            ..CleanOptions::default()
        },
    )
    .unwrap()
}

fn assert_same_output(a: &Run, b: &Run) {
    // The same data whatever the number of ranges it was parsed in.
    let data = |r: &Run| CleanStats {
        ranges: 0,
        ..r.stats.clone()
    };
    assert_eq!(data(a), data(b));
    assert_eq!(a.kept_strings("id"), b.kept_strings("id"));
    assert_eq!(a.reasons(), b.reasons());
    let lines = |r: &Run| -> Vec<i64> {
        r.rejects
            .iter()
            .flat_map(|b| {
                let a = b
                    .column_by_name("source_line")
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .clone();
                a.values().to_vec()
            })
            .collect()
    };
    assert_eq!(lines(a), lines(b));
}

#[test]
fn byte_ranges_on_any_number_of_threads_match_one_sequential_reader() {
    let body = awkward_body(3000);
    let files: &[(&str, &[u8])] = &[("a.csv", body.as_bytes()), ("b.csv", body.as_bytes())];
    let sequential = clean_in_one_range(files);
    assert!(sequential.stats.duplicates > 0 && sequential.stats.rejected_total > 0);
    assert!(sequential.reasons().iter().any(|r| r == "ragged_row"));
    // Cuts every few hundred bytes land in quoted line breaks too, which
    // makes that file fall back to one range; the output is the same.
    for (range_bytes, threads) in [(300, 1), (300, 2), (1000, 3), (7, 2)] {
        let ranged = clean_with_options(
            CONFIG,
            files,
            CleanOptions {
                threads,
                range_bytes,
                batch_rows: 50,
                ..CleanOptions::default()
            },
        )
        .unwrap();
        assert_same_output(&sequential, &ranged);
    }
}

#[test]
fn ranges_without_quoted_line_breaks_keep_their_cuts_and_line_numbers() {
    let body = awkward_body(3000).replace("\nsecond line", " second line");
    let files: &[(&str, &[u8])] = &[("a.csv", body.as_bytes())];
    let whole = clean_in_one_range(files);
    assert_eq!(whole.stats.ranges, 1);
    // Really ranged: every cut holds (no quoted line break to fall back
    // for), so there are about as many ranges as the size allows.
    for (range_bytes, threads) in [(256, 2), (300, 1), (300, 2), (300, 3)] {
        let ranged = clean_with_options(
            CONFIG,
            files,
            CleanOptions {
                threads,
                range_bytes,
                ..CleanOptions::default()
            },
        )
        .unwrap();
        let expected = body.len() as u64 / range_bytes;
        assert!(
            ranged.stats.ranges >= expected / 2 && ranged.stats.ranges <= expected + 1,
            "{range_bytes} bytes: {} ranges for {} bytes",
            ranged.stats.ranges,
            body.len()
        );
        assert_same_output(&whole, &ranged);
    }
}

#[test]
fn row_groups_are_cut_at_the_row_limit_on_every_thread_count() {
    let body = awkward_body(2000);
    let files: &[(&str, &[u8])] = &[("a.csv", body.as_bytes())];
    let mut outputs = Vec::new();
    for threads in [1, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::parse(CONFIG, "test.toml").unwrap();
        let plan = CleanPlan::compile(c.datasets.values().next().unwrap()).unwrap();
        let path = dir.path().join("a.csv");
        std::fs::write(&path, files[0].1).unwrap();
        let input = CleanInput {
            path,
            source_name: "a.csv".into(),
        };
        let kept = dir.path().join("kept.parquet");
        let opts = CleanOptions {
            threads,
            range_bytes: 500,
            batch_rows: 64,
            row_group_rows: Some(100),
            ..CleanOptions::default()
        };
        let stats =
            clean_files(&plan, &[input], &kept, &dir.path().join("r.parquet"), &opts).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&kept).unwrap()).unwrap();
        let groups: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(groups.iter().sum::<i64>() as u64, stats.kept);
        assert!(groups.len() > 2);
        assert!(
            groups[..groups.len() - 1].iter().all(|&n| n == 100),
            "{groups:?}"
        );
        let ids: Vec<String> = reader
            .build()
            .unwrap()
            .flat_map(|b| {
                let b = b.unwrap();
                let a = b.column_by_name("id").unwrap().as_string::<i32>().clone();
                (0..a.len()).map(move |i| a.value(i).to_string())
            })
            .collect();
        outputs.push(ids);
    }
    // 2 and 3 threads write what 1 thread writes.
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
}

#[test]
fn an_unterminated_quote_is_reported_at_its_line_in_the_file() {
    let mut body = String::from(HEADER);
    for i in 0..2000 {
        body.push_str(&format!("k{i},{i},1,,,{TS},a\n"));
    }
    // Line 2002: a quote that never closes swallows the rest of the file.
    body.push_str("bad,1,\"");
    body.push_str(&"x".repeat(records::MAX_RECORD_BYTES + 10));
    let files: &[(&str, &[u8])] = &[("f.csv", body.as_bytes())];
    // One range, and ranges cut every 4 KiB (the quote is in a late one).
    for range_bytes in [u64::MAX, 4096] {
        let err = clean_with_options(
            CONFIG,
            files,
            CleanOptions {
                range_bytes,
                ..CleanOptions::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(err, CleanError::Malformed { line: 2002, .. }),
            "{range_bytes}: {err}"
        );
        let text = err.to_string();
        assert!(text.contains("f.csv: line 2002: "), "{text}");
        assert!(text.contains("unterminated quote"), "{text}");
        assert!(!err.retryable());
    }
}

#[test]
fn a_file_with_its_columns_in_another_order_gives_the_same_rows() {
    // The plan's order takes each field as it comes; any other order (or an
    // extra column, dropped) looks every column up. Both must agree.
    let ordered = format!(
        "{HEADER}k1,1,2.5,true,2025-01-01,{TS}, a \nk2,2,3.5,false,,{TS},b\nk3,x,1,,,{TS},a\n"
    );
    let shuffled = format!(
        "s,ts,extra,d,ok,x,n,id\n a ,{TS},zz,2025-01-01,true,2.5,1,k1\nb,{TS},zz,,false,3.5,2,k2\na,{TS},zz,,,1,x,k3\n"
    );
    let a = clean_with(CONFIG, &[("a.csv", ordered.as_bytes())], 1).unwrap();
    let b = clean_with(CONFIG, &[("b.csv", shuffled.as_bytes())], 1).unwrap();
    assert_eq!(a.kept_rows(), 2);
    assert_eq!(a.reasons(), vec!["bad_int"]);
    assert_eq!(a.reasons(), b.reasons());
    for col in ["id", "s"] {
        assert_eq!(a.kept_strings(col), b.kept_strings(col), "{col}");
    }
    assert_eq!(
        a.kept_strings("s"),
        vec![Some("a".into()), Some("b".into())]
    );
    let ints = |r: &Run| -> Vec<Option<i64>> {
        r.kept
            .iter()
            .flat_map(|b| {
                b.column_by_name("n")
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .iter()
            })
            .collect()
    };
    assert_eq!(ints(&a), vec![Some(1), Some(2)]);
    assert_eq!(ints(&a), ints(&b));
    assert_eq!(a.reject_column("id"), b.reject_column("id"));
}

#[test]
fn the_row_estimate_runs_a_little_over_what_a_plain_file_holds() {
    let c = Config::parse(CONFIG, "test.toml").unwrap();
    let plan = CleanPlan::compile(c.datasets.values().next().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let estimate = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let input = CleanInput {
            source_name: name.to_string(),
            path,
        };
        SourceFile::open(&plan, &input, &mut FileStats::default())
            .unwrap()
            .estimated_rows()
    };
    let rows = 20_000;
    let body: String = (0..rows)
        .map(|i| format!("id{i},{},1.5,true,2025-01-02,{TS},a\n", i % 7))
        .collect();
    let plain = estimate("a.csv", format!("{HEADER}{body}").as_bytes());
    assert!(
        (rows..=rows * 6 / 5 + 1024).contains(&plain),
        "{plain} for {rows} rows"
    );
    // Too few lines to sample: the short-row guess.
    let header_only = estimate("h.csv", HEADER.as_bytes());
    assert_eq!(header_only, 1024);
    // A compressed file's size is taken at 64 bytes a row.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(format!("{HEADER}{body}").as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let compressed = estimate("a.csv.gz", &gz);
    assert_eq!(compressed, gz.len() as u64 / 64 + 1024);
}

// ------------------------------------------------- the distributed clean

/// The distributed clean run here, step by step, as the state machine runs
/// it: every range cleaned from a sparse copy holding only its fetched
/// bytes (fetching more when a record runs on), the boundaries checked and
/// merged ranges cleaned again until they meet, every bucket resolved from
/// its IPC files, the rejects' lines made absolute.
fn clean_distributed(
    config: &str,
    files: &[(&str, &[u8])],
    range_bytes: u64,
    buckets: u32,
    tail: u64,
) -> Result<Run, CleanError> {
    use distributed::*;
    let c = Config::parse(config, "test.toml").unwrap();
    let plan = CleanPlan::compile(c.datasets.values().next().unwrap()).unwrap();
    let opts = CleanOptions {
        batch_rows: 97,
        ..CleanOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let name = |f: &str| format!("raw/t/date=2025-01-02/{f}");
    let listing: Vec<(String, u64)> = files
        .iter()
        .map(|(f, bytes)| (name(f), bytes.len() as u64))
        .collect();
    let bytes_of = |key: &str| files.iter().find(|(f, _)| name(f) == key).unwrap().1;
    let tasks = cut_ranges(&listing, range_bytes);
    let planned = tasks.len() as u32;
    let schema = bucket_schema(&plan);
    let mut outputs = std::collections::HashMap::new();
    let mut summaries = Vec::new();
    let clean_one = |task: &RangeTask| {
        let bytes = bytes_of(&task.key);
        let (from, mut to) = task.fetch_span(tail);
        loop {
            let local = dir.path().join(format!("range-{}", task.id()));
            let header = &bytes[..(HEADER_PROBE_BYTES as usize).min(bytes.len())];
            write_local_copy(&local, header, &bytes[from as usize..to as usize], from).unwrap();
            let read = clean_range(&plan, task, &local, (from, to), buckets, &opts).unwrap();
            std::fs::remove_file(&local).unwrap();
            match read {
                RangeRead::NeedBytes { through } => {
                    assert!(through > to, "{through} after {to}");
                    to = through;
                }
                RangeRead::Cleaned(cleaned) => {
                    let ipc: Vec<Vec<u8>> = cleaned
                        .buckets
                        .iter()
                        .map(|b| to_ipc(&schema, b).unwrap())
                        .collect();
                    return (ipc, cleaned);
                }
            }
        }
    };
    let mut pending = tasks;
    let (accepted, mut stats) = loop {
        for t in &pending {
            let (ipc, cleaned) = clean_one(t);
            summaries.push(cleaned.summary.clone());
            outputs.insert(t.id(), (ipc, cleaned));
        }
        match check_boundaries(&summaries, planned) {
            Boundaries::Accepted { ranges, stats } => break (ranges, stats),
            Boundaries::Reclean(merged) => pending = merged,
            Boundaries::Failed(e) => return Err(e),
        }
    };
    let mut kept = Vec::new();
    for b in 0..buckets as usize {
        let batches: Vec<RecordBatch> = accepted
            .iter()
            .flat_map(|a| from_ipc(outputs[&a.task.id()].0[b].clone(), "bucket").unwrap())
            .collect();
        let resolved = resolve_bucket(&plan, &batches).unwrap();
        stats.duplicates += resolved.duplicates;
        kept.extend(resolved.kept);
    }
    stats.kept -= stats.duplicates;
    let rejects = accepted
        .iter()
        .flat_map(|a| absolute_rejects(&outputs[&a.task.id()].1.rejects, a.first_line, true))
        .collect();
    assert!(stats.balanced(), "{stats:?}");
    Ok(Run {
        stats,
        kept,
        rejects,
    })
}

/// Every kept row as text, sorted: the same multiset whatever the order.
fn kept_multiset(run: &Run) -> Vec<String> {
    use arrow_cast::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for b in &run.kept {
        // Timestamps as their numbers: the formatter has no named zones.
        let columns: Vec<_> = b
            .columns()
            .iter()
            .map(|c| match c.data_type() {
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
        for i in 0..b.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| f.value(i).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    rows.sort();
    rows
}

fn assert_same_partition(single: &Run, distributed: &Run) {
    let data = |r: &Run| CleanStats {
        ranges: 0,
        ..r.stats.clone()
    };
    assert_eq!(data(single), data(distributed));
    assert_eq!(kept_multiset(single), kept_multiset(distributed));
    for column in ["reject_reason", "source_file", "reject_detail"] {
        assert_eq!(
            single.reject_column(column),
            distributed.reject_column(column),
            "{column}"
        );
    }
    let lines = |r: &Run| -> Vec<i64> {
        r.rejects
            .iter()
            .flat_map(|b| {
                b.column_by_name("source_line")
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect()
    };
    assert_eq!(lines(single), lines(distributed));
}

#[test]
fn the_distributed_clean_keeps_and_rejects_exactly_what_one_process_does() {
    let body = awkward_body(3000);
    // The second file repeats the first's keys (duplicates across files)
    // with a gzip third: one range, never split.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(awkward_body(500).as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let files: &[(&str, &[u8])] = &[
        ("a.csv", body.as_bytes()),
        ("b.csv", body.as_bytes()),
        ("c.csv.gz", &gz),
    ];
    let single = clean_in_one_range(files);
    assert!(single.stats.duplicates > 0 && single.stats.rejected_total > 0);
    // Tiny ranges cut inside quoted line breaks and inside records longer
    // than a range; a short tail makes workers fetch more.
    for (range_bytes, buckets, tail) in [
        (300, 4, 64),
        (31, 3, 1),
        (1000, 1, 1 << 20),
        (u64::MAX, 2, 0),
    ] {
        let distributed = clean_distributed(CONFIG, files, range_bytes, buckets, tail).unwrap();
        assert_same_partition(&single, &distributed);
    }
}

#[test]
fn a_cut_inside_a_quoted_line_break_merges_the_ranges_around_it() {
    // One quoted line break, and a cut right after it.
    let mut body = String::from(HEADER);
    for i in 0..40 {
        body.push_str(&format!("k{i},{i},1,,,{TS},a\n"));
    }
    let quoted_at = body.len();
    body.push_str("\"k40\nk41,41,1,,,2025-01-02T03:04:05Z,a\",40,1,,,2025-01-02T03:04:05Z,a\n");
    for i in 42..80 {
        body.push_str(&format!("k{i},{i},1,,,{TS},a\n"));
    }
    let files: &[(&str, &[u8])] = &[("f.csv", body.as_bytes())];
    let single = clean_in_one_range(files);
    // Cut just after the quoted line break: the range there starts inside
    // the field and reads a row that is not one.
    let range_bytes = (quoted_at + 5) as u64;
    let distributed = clean_distributed(CONFIG, files, range_bytes, 2, 16).unwrap();
    assert_same_partition(&single, &distributed);
    assert_eq!(single.kept_rows(), 79);
    // The two ranges around the cut were cleaned again as one.
    let planned = distributed::cut_ranges(&[("f".into(), body.len() as u64)], range_bytes).len();
    assert_eq!((planned, distributed.stats.ranges), (2, 1));
}

#[test]
fn distributed_input_errors_are_reported_where_one_process_reports_them() {
    let mut body = String::from(HEADER);
    for i in 0..2000 {
        body.push_str(&format!("k{i},{i},1,,,{TS},a\n"));
    }
    body.push_str("bad,1,\"");
    body.push_str(&"x".repeat(records::MAX_RECORD_BYTES + 10));
    let files: &[(&str, &[u8])] = &[("f.csv", body.as_bytes())];
    let err = clean_distributed(CONFIG, files, 1 << 20, 2, 1024)
        .err()
        .unwrap();
    assert!(
        matches!(err, CleanError::Malformed { line: 2002, .. }),
        "{err}"
    );
    assert!(!err.retryable());
    let missing = clean_distributed(CONFIG, &[("g.csv", b"id,n\nk1,1\n")], 4, 2, 4)
        .err()
        .unwrap();
    assert!(
        missing.to_string().contains("lacks required column"),
        "{missing}"
    );
    assert!(!missing.retryable());
}

/// Merge in ranges: a published file read back one span of row groups at a
/// time, from a copy holding only those bytes and the footer, gives every
/// row once; bucketed by stored values, a new row and the published row it
/// replaces meet in one bucket, whatever spelling the raw key had.
#[test]
fn published_rows_come_back_by_row_group_spans_and_meet_their_replacements() {
    use distributed::*;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;
    let published = clean(
        &(0..500)
            .map(|i| format!("k{i},{i},1,,,{TS},a\n"))
            .collect::<String>(),
    );
    let c = Config::parse(CONFIG, "test.toml").unwrap();
    let plan = CleanPlan::compile(c.datasets.values().next().unwrap()).unwrap();
    let schema = plan.kept_schema();
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("published.parquet");
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(40))
        .build();
    let mut writer =
        ArrowWriter::try_new(File::create(&whole).unwrap(), schema.clone(), Some(props)).unwrap();
    for b in &published.kept {
        writer.write(b).unwrap();
    }
    writer.close().unwrap();
    let bytes = std::fs::read(&whole).unwrap();
    let size = bytes.len() as u64;
    let footer = parquet_footer_bytes(&bytes[bytes.len() - 8..]).unwrap();
    let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&File::open(&whole).unwrap())
        .unwrap();
    assert_eq!(metadata.num_row_groups(), 13);
    let budget = size / 5;
    let spans = row_group_spans(&metadata, budget);
    assert!(spans.len() > 1 && spans.len() < 13, "{spans:?}");
    let mut rows = 0;
    for (i, span) in spans.iter().enumerate() {
        assert!(span.end - span.start <= budget || span.first == span.last);
        if i > 0 {
            assert_eq!(span.first, spans[i - 1].last + 1);
        }
        let local = dir.path().join(format!("span-{i}.parquet"));
        let at = (size - footer) as usize;
        write_sparse(
            &local,
            &[
                (span.start, &bytes[span.start as usize..span.end as usize]),
                (size - footer, &bytes[at..]),
            ],
        )
        .unwrap();
        let batches = read_row_groups(&local, Some(*span), &schema, "p.parquet").unwrap();
        rows += batches.iter().map(|b| b.num_rows()).sum::<usize>();
    }
    assert_eq!(rows, 500);
    // Another schema is a clear error, not rows in the wrong columns.
    let other = std::sync::Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
        "id",
        arrow_schema::DataType::Utf8,
        false,
    )]));
    let err = read_row_groups(&whole, None, &other, "p.parquet").unwrap_err();
    assert!(err.to_string().contains("differ in schema"), "{err}");

    // New rows k7 and k9 replace their published rows, in the same bucket.
    let new_rows = clean(&format!(
        "k7,70,2,,,{TS},b\nk9,90,2,,,{TS},b\nnew,1,1,,,{TS},a\n"
    ));
    let key = vec!["id".to_string()];
    let old_buckets = bucket_by_values(&read(&whole), &key, 4).unwrap();
    let new_buckets = bucket_by_values(&new_rows.kept, &key, 4).unwrap();
    let (mut kept_old, mut replaced) = (0u64, 0u64);
    for (old, new) in old_buckets.iter().zip(&new_buckets) {
        let old_rows: u64 = old.iter().map(|b| b.num_rows() as u64).sum();
        let (_, kept) = previous_rows_kept(new, old, &key).unwrap();
        kept_old += kept;
        replaced += old_rows - kept;
    }
    assert_eq!((kept_old, replaced), (498, 2));
}

#[test]
fn a_rejects_file_reads_back_grouped_by_reason_with_file_and_line() {
    let c = Config::parse(CONFIG, "test.toml").unwrap();
    let plan = CleanPlan::compile(c.datasets.values().next().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.csv");
    let body = format!("{HEADER}k1,1,1,,,{TS},a\nk2,1\nk3,1,99,,,{TS},a\nk4,1,1,,,nope,a\nk5\n");
    std::fs::write(&path, body).unwrap();
    let inputs = [CleanInput {
        path,
        source_name: "raw/t/date=2025-01-02/f.csv".into(),
    }];
    let rejects = dir.path().join("rejects.parquet");
    let opts = CleanOptions {
        batch_rows: 2,
        ..CleanOptions::default()
    };
    clean_files(
        &plan,
        &inputs,
        &dir.path().join("kept.parquet"),
        &rejects,
        &opts,
    )
    .unwrap();
    let bytes = bytes::Bytes::from(std::fs::read(&rejects).unwrap());
    let groups = rejects::group_by_reason(bytes, 1).unwrap();
    let summary: Vec<(&str, u64)> = groups.iter().map(|g| (g.reason.as_str(), g.rows)).collect();
    assert_eq!(summary, [("ragged_row", 2), ("bad_ts", 1), ("x_range", 1)]);
    let ragged = &groups[0].examples;
    assert_eq!(ragged.len(), 1, "one example per reason asked for");
    assert_eq!(ragged[0].line, Some(3));
    assert_eq!(
        ragged[0].file.as_deref(),
        Some("raw/t/date=2025-01-02/f.csv")
    );
    assert_eq!(
        ragged[0].values[0],
        ("id".to_string(), Some("k2".to_string()))
    );
    let x = &groups[2].examples[0];
    assert_eq!(x.line, Some(4));
    assert!(
        x.values
            .contains(&("x".to_string(), Some("99".to_string()))),
        "{x:?}"
    );
    assert!(rejects::group_by_reason(bytes::Bytes::from_static(b"PAR1"), 1).is_err());
}
