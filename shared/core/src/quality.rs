//! Expectations over a cleaned partition → a report, a score in [0, 1] and
//! pass/fail against the dataset's threshold.
//!
//! The score is the mean over expectations of 1 for a met expectation and of
//! its observed success fraction for a missed one (0 for a row count out of
//! range), so a slightly-missed `mostly` lowers the score slightly and a
//! broken column lowers it a lot.

use crate::config::{DatasetConfig, ExpectationConfig};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

const EXAMPLES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot decode Parquet {path}: {message}")]
    Decode { path: String, message: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExpectationResult {
    pub expectation: String,
    pub column: Option<String>,
    pub passed: bool,
    /// Fraction of the considered rows that met the expectation.
    pub success_fraction: f64,
    pub mostly: f64,
    pub unexpected_count: u64,
    pub unexpected_examples: Vec<String>,
    pub observed: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QualityReport {
    pub dataset: String,
    pub date: String,
    pub run_id: String,
    pub rows: u64,
    pub score: f64,
    pub threshold: f64,
    pub passed: bool,
    pub expectations: Vec<ExpectationResult>,
}

/// Running state of one expectation.
struct Tally {
    config: ExpectationConfig,
    considered: u64,
    unexpected: u64,
    examples: Vec<String>,
    seen: HashSet<String>,
    regex: Option<regex::Regex>,
}

impl Tally {
    fn note(&mut self, value: String) {
        self.unexpected += 1;
        if self.examples.len() < EXAMPLES && !self.examples.contains(&value) {
            self.examples.push(value);
        }
    }
}

/// Evaluate a dataset's expectations over Parquet files (streamed batch by
/// batch; `unique` keeps the distinct values of its column).
pub fn evaluate_files(
    ds: &DatasetConfig,
    files: &[&Path],
) -> Result<(u64, Vec<ExpectationResult>), QualityError> {
    let mut tallies: Vec<Tally> = ds
        .expectations
        .iter()
        .map(|e| Tally {
            regex: match e {
                // Validated at config load.
                ExpectationConfig::MatchesRegex { regex, .. } => regex::Regex::new(regex).ok(),
                _ => None,
            },
            config: e.clone(),
            considered: 0,
            unexpected: 0,
            examples: Vec::new(),
            seen: HashSet::new(),
        })
        .collect();
    let mut rows = 0u64;
    for path in files {
        let display = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| QualityError::Read {
            path: display.clone(),
            source,
        })?;
        let decode = |e: &dyn std::fmt::Display| QualityError::Decode {
            path: display.clone(),
            message: e.to_string(),
        };
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| decode(&e))?
            .build()
            .map_err(|e| decode(&e))?;
        for batch in reader {
            let batch = batch.map_err(|e| decode(&e))?;
            rows += batch.num_rows() as u64;
            for t in &mut tallies {
                tally_batch(t, &batch).map_err(|e| decode(&e))?;
            }
        }
    }
    Ok((rows, tallies.into_iter().map(|t| finish(t, rows)).collect()))
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a ArrayRef> {
    batch.schema().index_of(name).ok().map(|i| batch.column(i))
}

fn numeric(array: &ArrayRef, i: usize) -> Option<f64> {
    if let Some(a) = array.as_any().downcast_ref::<Float64Array>() {
        return Some(a.value(i));
    }
    array
        .as_any()
        .downcast_ref::<Int64Array>()
        .map(|a| a.value(i) as f64)
}

fn tally_batch(t: &mut Tally, batch: &RecordBatch) -> Result<(), arrow_schema::ArrowError> {
    let Some(name) = t.config.column().map(str::to_string) else {
        return Ok(());
    };
    let Some(array) = column(batch, &name) else {
        // A column missing from the data fails every row.
        t.considered += batch.num_rows() as u64;
        t.unexpected += batch.num_rows() as u64;
        return Ok(());
    };
    let options = FormatOptions::default();
    let fmt = ArrayFormatter::try_new(array.as_ref(), &options)?;
    for i in 0..array.len() {
        let null = array.is_null(i);
        match &t.config {
            ExpectationConfig::NotNull { .. } => {
                t.considered += 1;
                if null {
                    t.note("null".into());
                }
            }
            _ if null => {}
            ExpectationConfig::Unique { .. } => {
                t.considered += 1;
                let v = fmt.value(i).to_string();
                if !t.seen.insert(v.clone()) {
                    t.note(v);
                }
            }
            ExpectationConfig::Between { min, max, .. } => {
                t.considered += 1;
                let ok = numeric(array, i)
                    .is_some_and(|x| min.is_none_or(|m| x >= m) && max.is_none_or(|m| x <= m));
                if !ok {
                    t.note(fmt.value(i).to_string());
                }
            }
            ExpectationConfig::InSet { values, .. } => {
                t.considered += 1;
                let v = fmt.value(i).to_string();
                if !values.contains(&v) {
                    t.note(v);
                }
            }
            ExpectationConfig::MatchesRegex { .. } => {
                t.considered += 1;
                let v = fmt.value(i).to_string();
                if !t.regex.as_ref().is_some_and(|r| r.is_match(&v)) {
                    t.note(v);
                }
            }
            ExpectationConfig::RowCountBetween { .. } => {}
        }
    }
    Ok(())
}

fn finish(t: Tally, rows: u64) -> ExpectationResult {
    let kind = match &t.config {
        ExpectationConfig::RowCountBetween { .. } => "row_count_between",
        ExpectationConfig::NotNull { .. } => "not_null",
        ExpectationConfig::Unique { .. } => "unique",
        ExpectationConfig::Between { .. } => "between",
        ExpectationConfig::InSet { .. } => "in_set",
        ExpectationConfig::MatchesRegex { .. } => "matches_regex",
    };
    if let ExpectationConfig::RowCountBetween { min, max } = &t.config {
        let ok = min.is_none_or(|m| rows >= m) && max.is_none_or(|m| rows <= m);
        return ExpectationResult {
            expectation: kind.into(),
            column: None,
            passed: ok,
            success_fraction: if ok { 1.0 } else { 0.0 },
            mostly: 1.0,
            unexpected_count: u64::from(!ok),
            unexpected_examples: vec![],
            observed: format!(
                "{rows} rows (expected between {} and {})",
                min.map_or("-".into(), |m| m.to_string()),
                max.map_or("-".into(), |m| m.to_string())
            ),
        };
    }
    let mostly = t.config.mostly().unwrap_or(1.0);
    let fraction = if t.considered == 0 {
        1.0
    } else {
        (t.considered - t.unexpected) as f64 / t.considered as f64
    };
    ExpectationResult {
        expectation: kind.into(),
        column: t.config.column().map(str::to_string),
        passed: fraction >= mostly,
        success_fraction: fraction,
        mostly,
        unexpected_count: t.unexpected,
        unexpected_examples: t.examples,
        observed: format!("{} of {} values unexpected", t.unexpected, t.considered),
    }
}

/// The score of a set of results (1.0 when there are no expectations).
pub fn score(results: &[ExpectationResult]) -> f64 {
    if results.is_empty() {
        return 1.0;
    }
    results
        .iter()
        .map(|r| if r.passed { 1.0 } else { r.success_fraction })
        .sum::<f64>()
        / results.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use std::sync::Arc;

    fn write(path: &Path, ids: Vec<Option<&str>>, amounts: Vec<i64>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("amount", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(ids)),
                Arc::new(Int64Array::from(amounts)),
            ],
        )
        .unwrap();
        let mut w =
            ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    const CONFIG: &str = r#"
[datasets.t]
quality_threshold = 0.9
[[datasets.t.columns]]
name = "id"
type = "string"
[[datasets.t.columns]]
name = "amount"
type = "int"
[[datasets.t.expectations]]
kind = "row_count_between"
min = 1
max = 10
[[datasets.t.expectations]]
kind = "not_null"
column = "id"
mostly = 0.7
[[datasets.t.expectations]]
kind = "unique"
column = "id"
[[datasets.t.expectations]]
kind = "between"
column = "amount"
min = 0
max = 100
[[datasets.t.expectations]]
kind = "in_set"
column = "id"
values = ["a", "b", "c"]
[[datasets.t.expectations]]
kind = "matches_regex"
column = "id"
regex = "^[a-z]$"
"#;

    #[test]
    fn each_expectation_counts_and_scores() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.parquet");
        write(
            &p,
            vec![Some("a"), Some("b"), None, Some("b"), Some("Z")],
            vec![1, 2, 3, 500, 4],
        );
        let c = Config::parse(CONFIG, "t.toml").unwrap();
        let (rows, r) = evaluate_files(&c.datasets["t"], &[&p]).unwrap();
        assert_eq!(rows, 5);
        assert!(r[0].passed, "row count");
        assert!(
            r[1].passed && r[1].unexpected_count == 1,
            "not_null 4/5 >= 0.7"
        );
        assert!(
            !r[2].passed && r[2].unexpected_examples == vec!["b"],
            "unique"
        );
        assert!(
            !r[3].passed && r[3].unexpected_examples == vec!["500"],
            "between"
        );
        assert_eq!(r[4].unexpected_examples, vec!["Z"], "in_set");
        assert_eq!(r[5].unexpected_count, 1, "regex");
        let s = score(&r);
        let want = (1.0 + 1.0 + 0.75 + 0.8 + 0.75 + 0.75) / 6.0;
        assert!((s - want).abs() < 1e-9, "{s} vs {want}");
        assert_eq!(score(&[]), 1.0);
    }

    #[test]
    fn row_count_out_of_range_scores_zero() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.parquet");
        write(&p, vec![], vec![]);
        let c = Config::parse(CONFIG, "t.toml").unwrap();
        let (_, r) = evaluate_files(&c.datasets["t"], &[&p]).unwrap();
        assert!(!r[0].passed && r[0].success_fraction == 0.0);
    }
}
