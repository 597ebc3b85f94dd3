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

/// What evaluating a part of a partition found, mergeable with the other
/// parts': per expectation, the values considered, the unexpected ones and
/// the first distinct unexpected values with their positions in the input,
/// so merged parts give the report one pass over the whole would.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct QualityTally {
    pub rows: u64,
    pub expectations: Vec<PartialTally>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PartialTally {
    pub considered: u64,
    pub unexpected: u64,
    /// (position, value), in position order, distinct values, at most
    /// `EXAMPLES`: a part's first five distinct include every value among
    /// the merged first five, whose earlier occurrences are all earlier.
    pub examples: Vec<(u64, String)>,
}

impl PartialTally {
    fn note(&mut self, position: u64, value: String) {
        self.unexpected += 1;
        if self.examples.len() < EXAMPLES && !self.examples.iter().any(|(_, v)| *v == value) {
            self.examples.push((position, value));
        }
    }

    fn merge(&mut self, other: &PartialTally) {
        self.considered += other.considered;
        self.unexpected += other.unexpected;
        let mut all: Vec<(u64, String)> = self
            .examples
            .drain(..)
            .chain(other.examples.iter().cloned())
            .collect();
        all.sort();
        for (position, value) in all {
            if self.examples.len() < EXAMPLES && !self.examples.iter().any(|(_, v)| *v == value) {
                self.examples.push((position, value));
            }
        }
    }
}

impl QualityTally {
    /// An empty tally for a dataset's expectations.
    pub fn empty(ds: &DatasetConfig) -> QualityTally {
        QualityTally {
            rows: 0,
            expectations: vec![PartialTally::default(); ds.expectations.len()],
        }
    }

    pub fn merge(&mut self, other: &QualityTally) {
        self.rows += other.rows;
        if self.expectations.len() < other.expectations.len() {
            self.expectations
                .resize(other.expectations.len(), PartialTally::default());
        }
        for (mine, theirs) in self.expectations.iter_mut().zip(&other.expectations) {
            mine.merge(theirs);
        }
    }

    /// The expectations' results over everything merged.
    pub fn results(&self, ds: &DatasetConfig) -> Vec<ExpectationResult> {
        ds.expectations
            .iter()
            .zip(
                self.expectations
                    .iter()
                    .chain(std::iter::repeat(&PartialTally::default())),
            )
            .map(|(config, part)| finish(config, part, self.rows))
            .collect()
    }
}

/// Evaluates a dataset's expectations batch by batch.
pub struct Tallier {
    configs: Vec<ExpectationConfig>,
    regexes: Vec<Option<regex::Regex>>,
    /// `unique` is counted here (every row of the partition passes through
    /// this tallier) or by a shuffle of its values ([`unique_values`]).
    unique_here: bool,
    seen: Vec<HashSet<String>>,
    tally: QualityTally,
}

impl Tallier {
    pub fn new(ds: &DatasetConfig, unique_here: bool) -> Tallier {
        Tallier {
            regexes: ds
                .expectations
                .iter()
                .map(|e| match e {
                    // Validated at config load.
                    ExpectationConfig::MatchesRegex { regex, .. } => regex::Regex::new(regex).ok(),
                    _ => None,
                })
                .collect(),
            configs: ds.expectations.clone(),
            unique_here,
            seen: vec![HashSet::new(); ds.expectations.len()],
            tally: QualityTally::empty(ds),
        }
    }

    /// Count a batch whose row `i` is at `position(i)` in the input.
    pub fn observe(
        &mut self,
        batch: &RecordBatch,
        position: impl Fn(usize) -> u64,
    ) -> Result<(), arrow_schema::ArrowError> {
        self.tally.rows += batch.num_rows() as u64;
        for (e, config) in self.configs.iter().enumerate() {
            if matches!(config, ExpectationConfig::Unique { .. }) && !self.unique_here {
                continue;
            }
            tally_batch(
                config,
                self.regexes[e].as_ref(),
                &mut self.seen[e],
                &mut self.tally.expectations[e],
                batch,
                &position,
            )?;
        }
        Ok(())
    }

    pub fn finish(self) -> QualityTally {
        self.tally
    }
}

/// Values with their positions in the input.
pub type PositionedValues = Vec<(String, u64)>;

/// The non-null values of each `unique` expectation's column in a batch,
/// with their positions: what a shuffle by value brings together.
pub fn unique_values(
    ds: &DatasetConfig,
    batch: &RecordBatch,
    position: impl Fn(usize) -> u64,
) -> Result<Vec<(usize, PositionedValues)>, arrow_schema::ArrowError> {
    let options = FormatOptions::default();
    let mut out = Vec::new();
    for (e, config) in ds.expectations.iter().enumerate() {
        let ExpectationConfig::Unique { column: name, .. } = config else {
            continue;
        };
        let mut values = Vec::new();
        if let Some(array) = column(batch, name) {
            let fmt = ArrayFormatter::try_new(array.as_ref(), &options)?;
            for i in 0..array.len() {
                if !array.is_null(i) {
                    values.push((fmt.value(i).to_string(), position(i)));
                }
            }
        }
        out.push((e, values));
    }
    Ok(out)
}

/// Count one shard of a `unique` expectation's values (every occurrence
/// of a value is in the same shard): in position order, each repeat is
/// unexpected, as one pass over the partition counts it.
pub fn tally_unique_shard(mut values: Vec<(String, u64)>) -> PartialTally {
    values.sort_by_key(|(_, position)| *position);
    let mut seen = HashSet::new();
    let mut part = PartialTally::default();
    for (value, position) in values {
        part.considered += 1;
        if !seen.insert(value.clone()) {
            part.note(position, value);
        }
    }
    part
}

/// Tally Parquet files read in order, rows numbered from 0 across them.
pub fn tally_files(ds: &DatasetConfig, files: &[&Path]) -> Result<QualityTally, QualityError> {
    let mut tallier = Tallier::new(ds, true);
    let mut next = 0u64;
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
            let first = next;
            tallier
                .observe(&batch, |i| first + i as u64)
                .map_err(|e| decode(&e))?;
            next += batch.num_rows() as u64;
        }
    }
    Ok(tallier.finish())
}

/// Evaluate a dataset's expectations over Parquet files (streamed batch by
/// batch; `unique` keeps the distinct values of its column).
pub fn evaluate_files(
    ds: &DatasetConfig,
    files: &[&Path],
) -> Result<(u64, Vec<ExpectationResult>), QualityError> {
    let tally = tally_files(ds, files)?;
    Ok((tally.rows, tally.results(ds)))
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a ArrayRef> {
    batch
        .schema_ref()
        .index_of(name)
        .ok()
        .map(|i| batch.column(i))
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

fn tally_batch(
    config: &ExpectationConfig,
    regex: Option<&regex::Regex>,
    seen: &mut HashSet<String>,
    t: &mut PartialTally,
    batch: &RecordBatch,
    position: &impl Fn(usize) -> u64,
) -> Result<(), arrow_schema::ArrowError> {
    let Some(name) = config.column() else {
        return Ok(());
    };
    let Some(array) = column(batch, name) else {
        // A column missing from the data fails every row.
        t.considered += batch.num_rows() as u64;
        t.unexpected += batch.num_rows() as u64;
        return Ok(());
    };
    let options = FormatOptions::default();
    let fmt = ArrayFormatter::try_new(array.as_ref(), &options)?;
    for i in 0..array.len() {
        let null = array.is_null(i);
        match config {
            ExpectationConfig::NotNull { .. } => {
                t.considered += 1;
                if null {
                    t.note(position(i), "null".into());
                }
            }
            _ if null => {}
            ExpectationConfig::Unique { .. } => {
                t.considered += 1;
                let v = fmt.value(i).to_string();
                if !seen.insert(v.clone()) {
                    t.note(position(i), v);
                }
            }
            ExpectationConfig::Between { min, max, .. } => {
                t.considered += 1;
                let ok = numeric(array, i)
                    .is_some_and(|x| min.is_none_or(|m| x >= m) && max.is_none_or(|m| x <= m));
                if !ok {
                    t.note(position(i), fmt.value(i).to_string());
                }
            }
            ExpectationConfig::InSet { values, .. } => {
                t.considered += 1;
                let v = fmt.value(i).to_string();
                if !values.contains(&v) {
                    t.note(position(i), v);
                }
            }
            ExpectationConfig::MatchesRegex { .. } => {
                t.considered += 1;
                let v = fmt.value(i).to_string();
                if !regex.is_some_and(|r| r.is_match(&v)) {
                    t.note(position(i), v);
                }
            }
            ExpectationConfig::RowCountBetween { .. } => {}
        }
    }
    Ok(())
}

fn finish(config: &ExpectationConfig, t: &PartialTally, rows: u64) -> ExpectationResult {
    let kind = match config {
        ExpectationConfig::RowCountBetween { .. } => "row_count_between",
        ExpectationConfig::NotNull { .. } => "not_null",
        ExpectationConfig::Unique { .. } => "unique",
        ExpectationConfig::Between { .. } => "between",
        ExpectationConfig::InSet { .. } => "in_set",
        ExpectationConfig::MatchesRegex { .. } => "matches_regex",
    };
    if let ExpectationConfig::RowCountBetween { min, max } = config {
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
    let mostly = config.mostly().unwrap_or(1.0);
    let fraction = if t.considered == 0 {
        1.0
    } else {
        (t.considered - t.unexpected) as f64 / t.considered as f64
    };
    ExpectationResult {
        expectation: kind.into(),
        column: config.column().map(str::to_string),
        passed: fraction >= mostly,
        success_fraction: fraction,
        mostly,
        unexpected_count: t.unexpected,
        unexpected_examples: t.examples.iter().map(|(_, v)| v.clone()).collect(),
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

    /// Rows split among workers however (here by row number modulo 3),
    /// each tallied with its positions, `unique` shuffled by value into
    /// two shards: the merged report is the one pass's, examples included.
    #[test]
    fn parts_merged_report_exactly_what_one_pass_reports() {
        let ids = vec![
            Some("a"),
            Some("b"),
            None,
            Some("b"),
            Some("Z"),
            Some("c"),
            Some("a"),
            Some("a"),
            Some("Z"),
            Some("q"),
            Some("r"),
            Some("s"),
            Some("t"),
            Some("b"),
            None,
            Some("u"),
        ];
        let amounts: Vec<i64> = (0..ids.len() as i64).map(|i| i * 37 % 150).collect();
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole.parquet");
        write(&whole, ids.clone(), amounts.clone());
        let c = Config::parse(CONFIG, "t.toml").unwrap();
        let ds = &c.datasets["t"];
        let (rows, single) = evaluate_files(ds, &[&whole]).unwrap();
        assert!(single[2].unexpected_count >= 3 && single[3].unexpected_count > 0);
        let mut merged = QualityTally::empty(ds);
        let mut shards: Vec<Vec<Vec<(String, u64)>>> = vec![vec![vec![]; 2]; ds.expectations.len()];
        for part in 0..3 {
            let rows_of: Vec<usize> = (0..ids.len()).filter(|i| i % 3 == part).collect();
            let path = dir.path().join(format!("part{part}.parquet"));
            write(
                &path,
                rows_of.iter().map(|&i| ids[i]).collect(),
                rows_of.iter().map(|&i| amounts[i]).collect(),
            );
            let file = std::fs::File::open(&path).unwrap();
            let mut tallier = Tallier::new(ds, false);
            for batch in ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap()
            {
                let batch = batch.unwrap();
                tallier.observe(&batch, |i| rows_of[i] as u64).unwrap();
                for (e, values) in unique_values(ds, &batch, |i| rows_of[i] as u64).unwrap() {
                    for (v, p) in values {
                        let shard = usize::from(v.as_bytes()[0] % 2);
                        shards[e][shard].push((v, p));
                    }
                }
            }
            merged.merge(&tallier.finish());
        }
        for (e, per_shard) in shards.into_iter().enumerate() {
            for values in per_shard {
                let mut shard = QualityTally::empty(ds);
                shard.expectations[e] = tally_unique_shard(values);
                merged.merge(&shard);
            }
        }
        assert_eq!(merged.rows, rows);
        assert_eq!(merged.results(ds), single);
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
