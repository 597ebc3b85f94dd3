//! `[datasets.<name>]`: a dataset's columns, rules, derived columns,
//! expectations, output mode, completion and retention.

use super::retention::{check_retention, typed_retention, DATASET_LAYERS};
use super::{parse_duration_secs, ConfigError, Invalid};
use crate::layout::Layer;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    Int,
    Float,
    Bool,
    Date,
    Timestamp,
}

impl ColumnType {
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Int => "int",
            ColumnType::Float => "float",
            ColumnType::Bool => "bool",
            ColumnType::Date => "date",
            ColumnType::Timestamp => "timestamp",
        }
    }
}

/// How a timestamp without a UTC offset is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NaiveTimestamps {
    /// Refuse it: the instant is ambiguous.
    #[default]
    Reject,
    /// Read it as UTC.
    AssumeUtc,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    #[serde(default)]
    pub required: bool,
    /// Reject reason when the value does not parse as the column's type.
    pub invalid_reason: Option<String>,
    #[serde(default)]
    pub naive_timestamps: NaiveTimestamps,
}

impl ColumnConfig {
    pub fn invalid_reason(&self) -> String {
        self.invalid_reason
            .clone()
            .unwrap_or_else(|| format!("bad_{}", self.column_type.name()))
    }
}

/// A value rule, evaluated in the order written; the first failing rule is
/// the row's reject reason.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub column: String,
    pub reason: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    #[serde(default)]
    pub min_exclusive: bool,
    #[serde(default)]
    pub max_exclusive: bool,
    pub allowed: Option<Vec<String>>,
    pub regex: Option<String>,
    /// A null value fails this rule instead of passing it.
    #[serde(default)]
    pub reject_null: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DerivedKind {
    /// The UTC calendar date of a timestamp column.
    DateOf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerivedConfig {
    pub name: String,
    pub kind: DerivedKind,
    pub from: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OutputMode {
    #[default]
    Overwrite,
    Append,
    Merge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExtraColumns {
    /// Drop them and report their names in the clean summary.
    #[default]
    Drop,
    /// Refuse the file.
    Fail,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExpectationConfig {
    RowCountBetween {
        min: Option<u64>,
        max: Option<u64>,
    },
    NotNull {
        column: String,
        mostly: Option<f64>,
    },
    Unique {
        column: String,
        mostly: Option<f64>,
    },
    Between {
        column: String,
        min: Option<f64>,
        max: Option<f64>,
        mostly: Option<f64>,
    },
    InSet {
        column: String,
        values: Vec<String>,
        mostly: Option<f64>,
    },
    MatchesRegex {
        column: String,
        regex: String,
        mostly: Option<f64>,
    },
}

impl ExpectationConfig {
    pub fn column(&self) -> Option<&str> {
        match self {
            ExpectationConfig::RowCountBetween { .. } => None,
            ExpectationConfig::NotNull { column, .. }
            | ExpectationConfig::Unique { column, .. }
            | ExpectationConfig::Between { column, .. }
            | ExpectationConfig::InSet { column, .. }
            | ExpectationConfig::MatchesRegex { column, .. } => Some(column),
        }
    }

    pub fn mostly(&self) -> Option<f64> {
        match self {
            ExpectationConfig::RowCountBetween { .. } => None,
            ExpectationConfig::NotNull { mostly, .. }
            | ExpectationConfig::Unique { mostly, .. }
            | ExpectationConfig::Between { mostly, .. }
            | ExpectationConfig::InSet { mostly, .. }
            | ExpectationConfig::MatchesRegex { mostly, .. } => *mostly,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    #[serde(default)]
    pub description: String,
    pub columns: Vec<ColumnConfig>,
    /// Columns that identify a row, for dedupe and merge.
    #[serde(default)]
    pub key: Vec<String>,
    /// Timestamp column; among duplicates the latest event time wins.
    pub event_time: Option<String>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    #[serde(default)]
    pub derived: Vec<DerivedConfig>,
    /// Values that mean null besides the empty field (after trimming).
    #[serde(default)]
    pub null_markers: Vec<String>,
    #[serde(default = "default_true")]
    pub trim: bool,
    #[serde(default)]
    pub extra_columns: ExtraColumns,
    #[serde(default)]
    pub expectations: Vec<ExpectationConfig>,
    #[serde(default = "default_threshold")]
    pub quality_threshold: f64,
    #[serde(default)]
    pub output_mode: OutputMode,
    /// Days to keep each layer's partitions; a layer not listed is kept forever.
    #[serde(default)]
    pub retention_days: BTreeMap<String, u32>,
    /// When a date's files are all there: on any data file (the default), on
    /// a marker file, or once no file arrived for `quiet_for`.
    #[serde(default)]
    pub complete_when: CompleteWhen,
    /// The marker file `complete_when = "marker"` waits for.
    #[serde(default = "default_marker")]
    pub marker: String,
    /// How long without a new file makes a date complete (`"quiet"`).
    #[serde(default)]
    pub quiet_for: Option<String>,
    /// How a date too large for one clean function is cleaned.
    #[serde(default)]
    pub scale: ScaleConfig,
}

/// `[datasets.<name>.scale]`: when the distributed clean takes over, and
/// how it spreads. Sizes are bytes, or text with a unit ("1536MiB").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleConfig {
    /// Raw bytes of one date up to which one clean function cleans it.
    #[serde(default = "default_max_single_bytes", deserialize_with = "byte_size")]
    pub max_single_bytes: u64,
    /// The byte range one range worker cleans.
    #[serde(default = "default_range_bytes", deserialize_with = "byte_size")]
    pub range_bytes: u64,
    /// Dedupe buckets (0: one per range's worth of raw bytes, at most 1000).
    #[serde(default)]
    pub buckets: u32,
    /// Range or bucket workers running at once.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: u32,
}

impl Default for ScaleConfig {
    fn default() -> Self {
        ScaleConfig {
            max_single_bytes: default_max_single_bytes(),
            range_bytes: default_range_bytes(),
            buckets: 0,
            max_concurrency: default_max_concurrency(),
        }
    }
}

impl ScaleConfig {
    /// Buckets for a date of `raw_bytes`: the configured number, or about
    /// one range's worth of raw bytes each.
    pub fn buckets_for(&self, raw_bytes: u64) -> u32 {
        if self.buckets > 0 {
            return self.buckets;
        }
        raw_bytes
            .div_ceil(self.range_bytes.max(1))
            .clamp(1, MAX_BUCKETS) as u32
    }
}

/// A Step Functions Map item payload and the S3 request rate per prefix
/// both stay comfortable at this many buckets.
pub const MAX_BUCKETS: u64 = 1000;

/// The clean function has 4 GiB of scratch and needs about 2.5 times the
/// raw bytes there (the raw files, their spilled batches, the Parquet).
fn default_max_single_bytes() -> u64 {
    1536 << 20
}
/// A range worker at 1,769 MB (two vCPUs) holds a range in Arrow and its
/// split into buckets at once: about three times the range.
fn default_range_bytes() -> u64 {
    128 << 20
}
fn default_max_concurrency() -> u32 {
    100
}

/// Bytes as a number or as text with a unit: B, KiB, MiB, GiB, TiB.
pub fn parse_byte_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        "TiB" => 40,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

fn byte_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Bytes(b) => Ok(b),
        Size::Text(t) => parse_byte_size(&t).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{t:?} is not a size: write a number of bytes or a number and B, KiB, MiB, GiB or TiB"
            ))
        }),
    }
}

/// The completion rule of a dataset's date (`complete_when`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CompleteWhen {
    /// Every data file starts a run of the date (a date is one file).
    #[default]
    AnyFile,
    /// The date is complete when the marker file arrives (`_SUCCESS`).
    Marker,
    /// The date is complete once no data file arrived for `quiet_for`.
    Quiet,
}

/// A dataset's completion rule with its parameter, validated at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    AnyFile,
    Marker(String),
    Quiet(chrono::Duration),
}

fn default_marker() -> String {
    "_SUCCESS".into()
}

fn default_true() -> bool {
    true
}
fn default_threshold() -> f64 {
    0.95
}

impl DatasetConfig {
    pub fn column(&self, name: &str) -> Option<&ColumnConfig> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn completion(&self) -> Completion {
        match self.complete_when {
            CompleteWhen::AnyFile => Completion::AnyFile,
            CompleteWhen::Marker => Completion::Marker(self.marker.clone()),
            CompleteWhen::Quiet => Completion::Quiet(chrono::Duration::seconds(
                // Validated at load to parse and to fit.
                self.quiet_for
                    .as_deref()
                    .and_then(parse_duration_secs)
                    .map_or(0, |s| s as i64),
            )),
        }
    }

    /// Retention per layer, typed (validated at load).
    pub fn retention(&self) -> Vec<(Layer, u32)> {
        typed_retention(&self.retention_days)
    }
}

/// Upstream markers and hidden files (`_SUCCESS`, `_manifest`, `.part`) are
/// never data.
pub fn is_marker_name(file_name: &str) -> bool {
    file_name.starts_with('_') || file_name.starts_with('.')
}

impl DatasetConfig {
    pub(super) fn validate(&self, name: &str, invalid: Invalid) -> Result<(), ConfigError> {
        let ds = self;
        let at = |f: &str| format!("datasets.{name}.{f}");
        if ds.columns.is_empty() {
            return Err(invalid(
                at("columns"),
                "no columns".into(),
                "declare each column with [[datasets.<name>.columns]] name and type".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let partition_key = ds
            .columns
            .iter()
            .map(|c| (&c.name, "columns"))
            .chain(ds.derived.iter().map(|d| (&d.name, "derived")))
            .find(|(n, _)| n.as_str() == "date");
        if let Some((_, section)) = partition_key {
            return Err(invalid(
                format!("datasets.{name}.{section}"),
                "\"date\" is the partition key of every catalog table, so no column may be named so".into(),
                "rename the column (for example order_date)".into(),
            ));
        }
        for (i, c) in ds.columns.iter().enumerate() {
            if c.name.trim().is_empty() || !seen.insert(c.name.as_str()) {
                return Err(invalid(
                    format!("datasets.{name}.columns[{i}].name"),
                    format!("column name {:?} is empty or repeated", c.name),
                    "give every column a unique, non-empty name".into(),
                ));
            }
        }
        let known_columns = ds
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let need_column = |field: String, col: &str| -> Result<&ColumnConfig, ConfigError> {
            ds.column(col).ok_or_else(|| {
                invalid(
                    field,
                    format!("column {col:?} is not declared"),
                    format!("use one of: {known_columns}"),
                )
            })
        };
        for k in &ds.key {
            need_column(at("key"), k)?;
        }
        if let Some(et) = &ds.event_time {
            let c = need_column(at("event_time"), et)?;
            if c.column_type != ColumnType::Timestamp {
                return Err(invalid(
                    at("event_time"),
                    format!("column {et:?} is a {}", c.column_type.name()),
                    "point event_time at a timestamp column".into(),
                ));
            }
        }
        for (i, r) in ds.rules.iter().enumerate() {
            let field = format!("datasets.{name}.rules[{i}]");
            let c = need_column(format!("{field}.column"), &r.column)?;
            let checks = [
                r.min.is_some() || r.max.is_some(),
                r.allowed.is_some(),
                r.regex.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if checks != 1 {
                return Err(invalid(
                    field,
                    format!("a rule needs exactly one check, found {checks}"),
                    "give it min/max, or allowed, or regex (one rule per check)".into(),
                ));
            }
            if (r.min.is_some() || r.max.is_some())
                && !matches!(c.column_type, ColumnType::Int | ColumnType::Float)
            {
                return Err(invalid(
                    format!("{field}.min"),
                    format!("column {:?} is a {}", r.column, c.column_type.name()),
                    "use min/max only on int or float columns".into(),
                ));
            }
            if (r.allowed.is_some() || r.regex.is_some()) && c.column_type != ColumnType::String {
                return Err(invalid(
                    field,
                    format!("column {:?} is a {}", r.column, c.column_type.name()),
                    "use allowed/regex only on string columns".into(),
                ));
            }
            if let Some(re) = &r.regex {
                regex::Regex::new(re).map_err(|e| {
                    invalid(
                        format!("{field}.regex"),
                        format!("not a valid regular expression: {e}"),
                        "fix the pattern (Rust regex syntax)".into(),
                    )
                })?;
            }
        }
        for (i, d) in ds.derived.iter().enumerate() {
            let field = format!("datasets.{name}.derived[{i}]");
            let c = need_column(format!("{field}.from"), &d.from)?;
            if c.column_type != ColumnType::Timestamp {
                return Err(invalid(
                    format!("{field}.from"),
                    format!(
                        "date_of needs a timestamp, {:?} is a {}",
                        d.from,
                        c.column_type.name()
                    ),
                    "derive from a timestamp column".into(),
                ));
            }
            if ds.column(&d.name).is_some() {
                return Err(invalid(
                    format!("{field}.name"),
                    format!("{:?} is already a column", d.name),
                    "choose a new name for the derived column".into(),
                ));
            }
        }
        if !(0.0..=1.0).contains(&ds.quality_threshold) {
            return Err(invalid(
                at("quality_threshold"),
                format!("{} is outside [0, 1]", ds.quality_threshold),
                "use a fraction such as 0.95".into(),
            ));
        }
        for (i, e) in ds.expectations.iter().enumerate() {
            let field = format!("datasets.{name}.expectations[{i}]");
            if let Some(col) = e.column() {
                let derived = ds.derived.iter().any(|d| d.name == col);
                if !derived {
                    need_column(format!("{field}.column"), col)?;
                }
            }
            if let Some(m) = e.mostly() {
                if !(0.0..=1.0).contains(&m) {
                    return Err(invalid(
                        format!("{field}.mostly"),
                        format!("{m} is outside [0, 1]"),
                        "use the fraction of rows that must pass, e.g. 0.99".into(),
                    ));
                }
            }
            if let ExpectationConfig::MatchesRegex { regex, .. } = e {
                regex::Regex::new(regex).map_err(|err| {
                    invalid(
                        format!("{field}.regex"),
                        format!("not a valid regular expression: {err}"),
                        "fix the pattern (Rust regex syntax)".into(),
                    )
                })?;
            }
        }
        if ds.output_mode == OutputMode::Merge && ds.key.is_empty() {
            return Err(invalid(
                at("output_mode"),
                "merge upserts on the dataset's key, and no key is set".into(),
                "set key = [\"<column>\"] or use output_mode = \"overwrite\"".into(),
            ));
        }
        match ds.complete_when {
            CompleteWhen::Marker if !is_marker_name(&ds.marker) => {
                return Err(invalid(
                    at("marker"),
                    format!("{:?} would be read as a data file", ds.marker),
                    "name a marker starting with '_' or '.', such as \"_SUCCESS\"".into(),
                ));
            }
            CompleteWhen::Quiet => {
                let quiet = ds.quiet_for.as_deref().and_then(parse_duration_secs);
                if !quiet.is_some_and(|s| (1..=7 * 86_400).contains(&s)) {
                    return Err(invalid(
                        at("quiet_for"),
                        format!(
                            "complete_when = \"quiet\" needs a duration of 1s to 7d, found {:?}",
                            ds.quiet_for
                        ),
                        "set quiet_for = \"30m\" (a number and s, m, h or d)".into(),
                    ));
                }
            }
            _ => {}
        }
        let scale = &ds.scale;
        if scale.range_bytes < 4096 {
            return Err(invalid(
                at("scale.range_bytes"),
                format!(
                    "{} bytes: a range must hold at least 4 KiB",
                    scale.range_bytes
                ),
                "set range_bytes = \"128MiB\" (the default)".into(),
            ));
        }
        if u64::from(scale.buckets) > MAX_BUCKETS || !(1..=10_000).contains(&scale.max_concurrency)
        {
            return Err(invalid(
                at("scale"),
                format!(
                    "buckets = {} and max_concurrency = {}: buckets go up to {MAX_BUCKETS}, max_concurrency from 1 to 10000",
                    scale.buckets, scale.max_concurrency
                ),
                "leave buckets = 0 to size them from the date, and max_concurrency within the account's Lambda concurrency".into(),
            ));
        }
        check_retention(
            &format!("datasets.{name}"),
            &ds.retention_days,
            &DATASET_LAYERS,
            invalid,
        )?;
        Ok(())
    }
}
