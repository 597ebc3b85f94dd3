//! `pipeline.toml`: datasets and pipelines, validated at load so that a typo
//! fails before any data moves, with an error naming the file, the field and
//! the fix.

use crate::layout::{valid_name, Layer};
use chrono::NaiveDate;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: {field}: {problem}. Fix: {fix}")]
    Invalid {
        file: String,
        field: String,
        problem: String,
        fix: String,
    },
}

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    #[serde(default)]
    pub description: String,
    /// The datasets that must all have arrived for a date to be data_ready.
    pub datasets: Vec<String>,
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// The first date the pipeline is responsible for (as Airflow's
    /// start_date): the watermark begins the day before it, and catchup
    /// covers every date from it.
    #[serde(default, deserialize_with = "optional_date")]
    pub start_date: Option<NaiveDate>,
}

/// A date written either as a TOML date (`2025-12-01`) or a string.
fn optional_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    use serde::de::Error;
    let text = match Option::<toml::Value>::deserialize(d)? {
        None => return Ok(None),
        Some(toml::Value::String(s)) => s,
        Some(toml::Value::Datetime(dt)) => dt.to_string(),
        Some(other) => {
            return Err(D::Error::custom(format!(
                "expected a date such as \"2025-12-01\", found {}",
                other.type_str()
            )))
        }
    };
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map(Some)
        .map_err(|e| D::Error::custom(format!("{text:?} is not a date YYYY-MM-DD: {e}")))
}

fn default_tz() -> String {
    "UTC".to_string()
}

impl PipelineConfig {
    /// The watermark a pipeline has before any date completed: the day
    /// before its start_date, if it has one.
    pub fn initial_watermark(&self) -> Option<NaiveDate> {
        self.start_date.and_then(|d| d.pred_opt())
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        // Validated at load; UTC is only reached for a config built in code.
        self.timezone.parse().unwrap_or(chrono_tz::UTC)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub datasets: BTreeMap<String, DatasetConfig>,
    #[serde(default)]
    pub pipelines: BTreeMap<String, PipelineConfig>,
    #[serde(default)]
    pub labeling: BTreeMap<String, LabelingConfig>,
    #[serde(default)]
    pub features: BTreeMap<String, FeatureSetConfig>,
    #[serde(default)]
    pub streams: BTreeMap<String, StreamConfig>,
}

/// A Kinesis stream of JSON events for the speed layer: its schema, the
/// tumbling windows it is aggregated into, and how late data is treated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    #[serde(default)]
    pub description: Option<String>,
    /// The field that identifies an event (dedupe key).
    pub event_id: String,
    /// The timestamp field windows are cut by.
    pub event_time: String,
    /// Fields every aggregate is grouped by.
    #[serde(default)]
    pub dimensions: Vec<String>,
    /// Numeric fields summed, minimised and maximised (count is always kept).
    #[serde(default)]
    pub measures: Vec<String>,
    /// Tumbling window size: "10s", "1m", "5m", "1h" (divides an hour).
    #[serde(default = "default_stream_window")]
    pub window: String,
    /// How far behind the newest event time an event may be and still count
    /// in realtime; older events are archived as late for the batch layer.
    #[serde(default = "default_allowed_lateness")]
    pub allowed_lateness: String,
    /// How long an event id is remembered to drop re-sent events.
    #[serde(default = "default_dedupe_horizon")]
    pub dedupe_horizon: String,
    /// The serving name: the query API answers `/<serve_as>` and the batch
    /// views are `daily_<serve_as>` and `hourly_<serve_as>`.
    #[serde(default)]
    pub serve_as: Option<String>,
    /// Reconciliation alerts above this deviation (percent).
    #[serde(default = "default_deviation_threshold")]
    pub deviation_threshold_pct: f64,
    /// How long each reconciliation check is kept (the deviation trend).
    #[serde(default = "default_reconcile_history")]
    pub reconcile_history: String,
    /// Days to keep the archive (stream), late events (late), dead letters
    /// (dlq) and batch views (views); a layer not listed is kept forever.
    #[serde(default)]
    pub retention_days: BTreeMap<String, u32>,
    /// The event schema.
    pub fields: Vec<ColumnConfig>,
}

fn default_stream_window() -> String {
    "1m".into()
}
fn default_allowed_lateness() -> String {
    "5m".into()
}
fn default_dedupe_horizon() -> String {
    "1h".into()
}
fn default_reconcile_history() -> String {
    "30d".into()
}
fn default_deviation_threshold() -> f64 {
    10.0
}

/// Which layers each part of the config keeps its retention for: every
/// prefix the system writes by date has exactly one owner, and models are
/// kept (a rollback needs the previous version).
pub const DATASET_LAYERS: [Layer; 4] = [Layer::Raw, Layer::Cleaned, Layer::Rejects, Layer::Quality];
pub const STREAM_LAYERS: [Layer; 4] = [Layer::Stream, Layer::Late, Layer::Dlq, Layer::Views];
pub const FEATURE_LAYERS: [Layer; 1] = [Layer::Features];
pub const LABELING_LAYERS: [Layer; 1] = [Layer::Labels];

/// The longest a person can be waited for: a year (Step Functions' limit
/// for a task token).
pub const MAX_WAIT_HOURS: u64 = 8_760;

/// Limits of the stream durations: the arithmetic on them (micro-seconds,
/// epoch seconds) stays far from overflow, and they mean something.
pub const MAX_ALLOWED_LATENESS_SECS: u64 = 7 * 86_400;
pub const MAX_DEDUPE_HORIZON_SECS: u64 = 366 * 86_400;

/// The longest retention accepted: a hundred years (date arithmetic on
/// anything larger could overflow).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

fn typed_retention(days: &BTreeMap<String, u32>) -> Vec<(Layer, u32)> {
    days.iter()
        .filter_map(|(layer, days)| Layer::from_prefix(layer).map(|l| (l, *days)))
        .collect()
}

/// One prefix the retention sweep expires, and the S3 lifecycle backstop
/// for it: `<layer>/<name>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionTarget {
    pub layer: Layer,
    /// The dataset, stream, view, feature set or labeling name.
    pub name: String,
    pub days: u32,
    /// For views: the stream whose publications they are.
    pub stream: Option<String>,
}

/// Where to set retention for a layer, for the error that refuses it
/// somewhere else.
fn retention_home(layer: &str) -> &'static str {
    match Layer::from_prefix(layer) {
        Some(l) if DATASET_LAYERS.contains(&l) => "[datasets.<name>.retention_days]",
        Some(l) if STREAM_LAYERS.contains(&l) => "[streams.<name>.retention_days]",
        Some(Layer::Features) => "[features.<set>.retention_days]",
        Some(Layer::Labels) => "[labeling.<name>.retention_days]",
        Some(_) => "nowhere: model versions are kept, since a rollback needs them",
        None => "nowhere: it is not a layer (raw, cleaned, rejects, quality, stream, late, dlq, views, features, labels)",
    }
}

/// Upstream markers and hidden files (`_SUCCESS`, `_manifest`, `.part`) are
/// never data.
pub fn is_marker_name(file_name: &str) -> bool {
    file_name.starts_with('_') || file_name.starts_with('.')
}

/// "90s", "1m", "15m", "2h", "1d" as seconds.
pub fn parse_duration_secs(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(unit)
}

impl StreamConfig {
    /// Validated at load: these never fall back.
    pub fn window_secs(&self) -> u64 {
        parse_duration_secs(&self.window).unwrap_or(60)
    }
    pub fn allowed_lateness_secs(&self) -> u64 {
        parse_duration_secs(&self.allowed_lateness).unwrap_or(300)
    }
    pub fn dedupe_horizon_secs(&self) -> u64 {
        parse_duration_secs(&self.dedupe_horizon).unwrap_or(3600)
    }
    pub fn reconcile_history_secs(&self) -> u64 {
        parse_duration_secs(&self.reconcile_history).unwrap_or(30 * 86_400)
    }
    pub fn field(&self, name: &str) -> Option<&ColumnConfig> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The stream's batch views, hourly and daily: `hourly_<serve_as>` and
    /// `daily_<serve_as>` (the stream's own name without serve_as).
    pub fn view_names(&self, stream: &str) -> (String, String) {
        let name = self.serve_as.as_deref().unwrap_or(stream);
        (format!("hourly_{name}"), format!("daily_{name}"))
    }
}

/// A feature set (scenarios 1 and 5): user, item and behaviour features over
/// sliding windows of published partitions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSetConfig {
    /// Orders: user_id, product_id, amount, order_ts.
    pub orders_dataset: String,
    /// Behaviour events: user_id, event_type, event_ts.
    pub events_dataset: String,
    #[serde(default = "default_windows")]
    pub windows_days: Vec<u32>,
    /// At or above: published without a person.
    #[serde(default = "default_feature_threshold")]
    pub quality_threshold: f64,
    /// Days to keep published feature partitions (`features`).
    #[serde(default)]
    pub retention_days: BTreeMap<String, u32>,
}

fn default_windows() -> Vec<u32> {
    vec![7, 30]
}
fn default_feature_threshold() -> f64 {
    0.9
}

/// A labeling workflow over a dataset's published partitions: rules propose
/// a label with a confidence; low-confidence labels go to a person.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelingConfig {
    pub dataset: String,
    /// The column that identifies a row (labels are keyed by it).
    pub id_column: String,
    /// Labels at or above this confidence are accepted without review.
    #[serde(default = "default_accept_confidence")]
    pub accept_confidence: f64,
    /// How long a review request waits for a person.
    #[serde(default = "default_review_hours")]
    pub review_hours: u64,
    /// Review rounds before what is left keeps its proposed label.
    #[serde(default = "default_max_rounds")]
    pub max_rounds: u32,
    pub default_label: String,
    #[serde(default = "default_default_confidence")]
    pub default_confidence: f64,
    /// Tried in order; the first rule whose conditions all hold labels a row.
    #[serde(default)]
    pub rules: Vec<LabelRule>,
    /// Days to keep label partitions (`labels`).
    #[serde(default)]
    pub retention_days: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelRule {
    pub label: String,
    pub column: String,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default, rename = "in")]
    pub in_set: Option<Vec<String>>,
    pub confidence: f64,
}

fn default_accept_confidence() -> f64 {
    0.8
}
fn default_review_hours() -> u64 {
    24
}
fn default_max_rounds() -> u32 {
    3
}
fn default_default_confidence() -> f64 {
    0.5
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parse and validate; `file` names the source in error messages.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.to_string(),
            message: describe_toml_error(text, &e),
        })?;
        config.validate(file)?;
        Ok(config)
    }

    pub fn dataset(&self, name: &str) -> Option<&DatasetConfig> {
        self.datasets.get(name)
    }

    pub fn dataset_names(&self) -> String {
        self.datasets.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// What is allowed but probably not meant, said when the config is
    /// loaded. Every pipeline gets the nightly catchup schedule.
    pub fn warnings(&self, file: &str) -> Vec<String> {
        self.pipelines
            .iter()
            .filter(|(_, p)| p.start_date.is_none())
            .map(|(name, _)| {
                format!(
                    "{file}: pipelines.{name}: no start_date, so the first date that completes becomes the watermark and no earlier date is ever planned or reported missing. Set start_date = \"YYYY-MM-DD\" to the first date the pipeline is responsible for"
                )
            })
            .collect()
    }

    /// Pipelines a dataset takes part in.
    pub fn pipelines_of<'a>(
        &'a self,
        dataset: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a PipelineConfig)> + 'a {
        self.pipelines
            .iter()
            .filter(move |(_, p)| p.datasets.iter().any(|d| d == dataset))
    }

    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |field: String, problem: String, fix: String| ConfigError::Invalid {
            file: file.to_string(),
            field,
            problem,
            fix,
        };
        if self.datasets.is_empty() {
            return Err(invalid(
                "datasets".into(),
                "no dataset is defined".into(),
                "add a [datasets.<name>] table with its columns".into(),
            ));
        }
        for (name, ds) in &self.datasets {
            let at = |f: &str| format!("datasets.{name}.{f}");
            if !valid_name(name) {
                return Err(invalid(
                    format!("datasets.{name}"),
                    "dataset names become S3 prefixes and Glue tables".into(),
                    "use only letters, digits, '_' and '-'".into(),
                ));
            }
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
                if (r.allowed.is_some() || r.regex.is_some()) && c.column_type != ColumnType::String
                {
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
            check_retention(
                &format!("datasets.{name}"),
                &ds.retention_days,
                &DATASET_LAYERS,
                &invalid,
            )?;
        }
        for (name, p) in &self.pipelines {
            let plausible =
                NaiveDate::from_ymd_opt(1970, 1, 1).zip(NaiveDate::from_ymd_opt(9999, 12, 31));
            if let (Some(d), Some((first, last))) = (p.start_date, plausible) {
                if d < first || d > last {
                    return Err(invalid(
                        format!("pipelines.{name}.start_date"),
                        format!("{d} is outside {first} to {last}"),
                        "give the first date the pipeline owns".into(),
                    ));
                }
            }
            if !valid_name(name) {
                return Err(invalid(
                    format!("pipelines.{name}"),
                    "pipeline names become execution names".into(),
                    "use only letters, digits, '_' and '-'".into(),
                ));
            }
            if p.datasets.is_empty() {
                return Err(invalid(
                    format!("pipelines.{name}.datasets"),
                    "a pipeline needs at least one dataset".into(),
                    "list the datasets whose arrival makes a date ready".into(),
                ));
            }
            for d in &p.datasets {
                if !self.datasets.contains_key(d) {
                    return Err(invalid(
                        format!("pipelines.{name}.datasets"),
                        format!("unknown dataset {d:?}"),
                        format!("use one of: {}", self.dataset_names()),
                    ));
                }
            }
            if p.timezone.parse::<chrono_tz::Tz>().is_err() {
                return Err(invalid(
                    format!("pipelines.{name}.timezone"),
                    format!("{:?} is not an IANA time zone", p.timezone),
                    "use a name such as \"UTC\" or \"Europe/Berlin\"".into(),
                ));
            }
        }
        for (name, f) in &self.features {
            let at = |x: &str| format!("features.{name}.{x}");
            if !valid_name(name) {
                return Err(invalid(
                    format!("features.{name}"),
                    "feature set names become S3 prefixes".into(),
                    "use only letters, digits, '_' and '-'".into(),
                ));
            }
            for (field, ds, needed) in [
                (
                    "orders_dataset",
                    &f.orders_dataset,
                    &["user_id", "product_id", "amount", "order_ts"][..],
                ),
                (
                    "events_dataset",
                    &f.events_dataset,
                    &["user_id", "event_type", "event_ts"][..],
                ),
            ] {
                let Some(d) = self.datasets.get(ds) else {
                    return Err(invalid(
                        at(field),
                        format!("unknown dataset {ds:?}"),
                        format!("use one of: {}", self.dataset_names()),
                    ));
                };
                let missing: Vec<&str> = needed
                    .iter()
                    .copied()
                    .filter(|c| !d.columns.iter().any(|col| col.name == *c))
                    .collect();
                if !missing.is_empty() {
                    return Err(invalid(
                        at(field),
                        format!("{ds} lacks column(s) {missing:?}"),
                        format!("point {field} at a dataset with columns {needed:?}"),
                    ));
                }
            }
            if f.windows_days.is_empty() || f.windows_days.iter().any(|w| *w == 0 || *w > 366) {
                return Err(invalid(
                    at("windows_days"),
                    format!("{:?} is not a list of 1..366 days", f.windows_days),
                    "for example [7, 30]".into(),
                ));
            }
            if !(0.0..=1.0).contains(&f.quality_threshold) {
                return Err(invalid(
                    at("quality_threshold"),
                    format!("{} is outside 0..1", f.quality_threshold),
                    "use a fraction such as 0.9".into(),
                ));
            }
            check_retention(
                &format!("features.{name}"),
                &f.retention_days,
                &FEATURE_LAYERS,
                &invalid,
            )?;
        }
        for (name, st) in &self.streams {
            self.validate_stream(name, st, &invalid)?;
            check_retention(
                &format!("streams.{name}"),
                &st.retention_days,
                &STREAM_LAYERS,
                &invalid,
            )?;
        }
        for (name, l) in &self.labeling {
            let at = |f: &str| format!("labeling.{name}.{f}");
            if !valid_name(name) {
                return Err(invalid(
                    format!("labeling.{name}"),
                    "labeling names become S3 prefixes".into(),
                    "use only letters, digits, '_' and '-'".into(),
                ));
            }
            let Some(ds) = self.datasets.get(&l.dataset) else {
                return Err(invalid(
                    at("dataset"),
                    format!("unknown dataset {:?}", l.dataset),
                    format!("use one of: {}", self.dataset_names()),
                ));
            };
            check_retention(
                &format!("labeling.{name}"),
                &l.retention_days,
                &LABELING_LAYERS,
                &invalid,
            )?;
            let has = |c: &str| ds.columns.iter().any(|col| col.name == c);
            if !has(&l.id_column) {
                return Err(invalid(
                    at("id_column"),
                    format!("{:?} is not a column of {}", l.id_column, l.dataset),
                    "name the column that identifies a row".into(),
                ));
            }
            for (conf, field) in [
                (l.accept_confidence, "accept_confidence"),
                (l.default_confidence, "default_confidence"),
            ] {
                if !(0.0..=1.0).contains(&conf) {
                    return Err(invalid(
                        at(field),
                        format!("{conf} is outside 0..1"),
                        "use a fraction between 0 and 1".into(),
                    ));
                }
            }
            if l.max_rounds == 0 || l.max_rounds > 100 {
                return Err(invalid(
                    at("max_rounds"),
                    format!("{} is not 1 to 100 review rounds", l.max_rounds),
                    "allow at least one review round, for example 3".into(),
                ));
            }
            // A task token waits at most a year on Step Functions.
            if !(1..=MAX_WAIT_HOURS).contains(&l.review_hours) {
                return Err(invalid(
                    at("review_hours"),
                    format!("{} is not 1 to {MAX_WAIT_HOURS} hours", l.review_hours),
                    "give a person at least an hour and at most a year, for example 24".into(),
                ));
            }
            for (i, r) in l.rules.iter().enumerate() {
                let rule_at = at(&format!("rules[{i}]"));
                if !has(&r.column) {
                    return Err(invalid(
                        rule_at,
                        format!("{:?} is not a column of {}", r.column, l.dataset),
                        "name a column of the dataset".into(),
                    ));
                }
                if r.min.is_none() && r.max.is_none() && r.in_set.is_none() {
                    return Err(invalid(
                        rule_at,
                        "a rule without a condition labels every row".into(),
                        "give min, max or in".into(),
                    ));
                }
                if !(0.0..=1.0).contains(&r.confidence) {
                    return Err(invalid(
                        rule_at,
                        format!("confidence {} is outside 0..1", r.confidence),
                        "use a fraction between 0 and 1".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A retention table may name only the layers its section owns, for at most
/// [`MAX_RETENTION_DAYS`].
fn check_retention(
    section: &str,
    days: &BTreeMap<String, u32>,
    owned: &[Layer],
    invalid: &dyn Fn(String, String, String) -> ConfigError,
) -> Result<(), ConfigError> {
    let names = owned
        .iter()
        .map(|l| l.prefix())
        .collect::<Vec<_>>()
        .join(", ");
    for (layer, n) in days {
        let field = format!("{section}.retention_days.{layer}");
        if !Layer::from_prefix(layer).is_some_and(|l| owned.contains(&l)) {
            return Err(invalid(
                field,
                format!("{layer:?} is not a layer this section writes ({names})"),
                format!("set its retention in {}", retention_home(layer)),
            ));
        }
        if *n > MAX_RETENTION_DAYS {
            return Err(invalid(
                field,
                format!("{n} days is more than {MAX_RETENTION_DAYS}"),
                "use at most 36500 days, or leave the layer out to keep it forever".into(),
            ));
        }
    }
    Ok(())
}

impl Config {
    /// Every prefix with a retention, with its days: what the sweep
    /// expires and what Terraform's lifecycle rules back up.
    pub fn retention_targets(&self) -> Vec<RetentionTarget> {
        let target = |layer, name: &str, days, stream: Option<&str>| RetentionTarget {
            layer,
            name: name.to_string(),
            days,
            stream: stream.map(str::to_string),
        };
        let mut out = Vec::new();
        for (name, ds) in &self.datasets {
            for (layer, days) in ds.retention() {
                out.push(target(layer, name, days, None));
            }
        }
        for (name, st) in &self.streams {
            for (layer, days) in typed_retention(&st.retention_days) {
                if layer == Layer::Views {
                    let (hourly, daily) = st.view_names(name);
                    out.push(target(layer, &hourly, days, Some(name)));
                    out.push(target(layer, &daily, days, Some(name)));
                } else {
                    out.push(target(layer, name, days, None));
                }
            }
        }
        for (name, f) in &self.features {
            for (layer, days) in typed_retention(&f.retention_days) {
                out.push(target(layer, name, days, None));
            }
        }
        for (name, l) in &self.labeling {
            for (layer, days) in typed_retention(&l.retention_days) {
                out.push(target(layer, name, days, None));
            }
        }
        out
    }

    fn validate_stream(
        &self,
        name: &str,
        st: &StreamConfig,
        invalid: &dyn Fn(String, String, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let at = |f: &str| format!("streams.{name}.{f}");
        if !valid_name(name) {
            return Err(invalid(
                format!("streams.{name}"),
                "stream names become S3 prefixes".into(),
                "use only letters, digits, '_' and '-'".into(),
            ));
        }
        let known = st
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let need = |field: String, f: &str| {
            st.field(f).ok_or_else(|| {
                invalid(
                    field,
                    format!("field {f:?} is not declared"),
                    format!("declare it under [[streams.{name}.fields]] or use one of: {known}"),
                )
            })
        };
        need(at("event_id"), &st.event_id)?;
        let time = need(at("event_time"), &st.event_time)?;
        if time.column_type != ColumnType::Timestamp {
            return Err(invalid(
                at("event_time"),
                format!("field {:?} is a {}", st.event_time, time.column_type.name()),
                "point event_time at a timestamp field".into(),
            ));
        }
        for d in &st.dimensions {
            need(at("dimensions"), d)?;
            // A view row holds period_start, the dimensions, event_count and
            // <measure>_sum/_min/_max; the partition key is date.
            let taken = ["date", "period_start", "event_count"].contains(&d.as_str())
                || st.measures.iter().any(|m| {
                    ["sum", "min", "max"]
                        .iter()
                        .any(|a| *d == format!("{m}_{a}"))
                });
            if taken {
                return Err(invalid(
                    at("dimensions"),
                    format!("{d:?} is also a column of the batch views (date, period_start, event_count, <measure>_sum/_min/_max)"),
                    "rename the field".into(),
                ));
            }
        }
        for m in &st.measures {
            let f = need(at("measures"), m)?;
            if !matches!(f.column_type, ColumnType::Int | ColumnType::Float) {
                return Err(invalid(
                    at("measures"),
                    format!("field {m:?} is a {}", f.column_type.name()),
                    "measures must be int or float fields".into(),
                ));
            }
        }
        let window = parse_duration_secs(&st.window).filter(|w| *w > 0 && 3600 % w == 0);
        if window.is_none() {
            return Err(invalid(
                at("window"),
                format!("{:?} is not a window size that divides an hour", st.window),
                "use for example \"10s\", \"1m\", \"5m\" or \"1h\"".into(),
            ));
        }
        let history = parse_duration_secs(&st.reconcile_history);
        if !history.is_some_and(|h| (3600..=3660 * 86_400).contains(&h)) {
            return Err(invalid(
                at("reconcile_history"),
                format!(
                    "{:?} is not a duration of 1h to 3660d",
                    st.reconcile_history
                ),
                "keep reconciliation checks for example \"30d\"".into(),
            ));
        }
        for (field, value, max, example) in [
            (
                "allowed_lateness",
                &st.allowed_lateness,
                MAX_ALLOWED_LATENESS_SECS,
                "7d",
            ),
            (
                "dedupe_horizon",
                &st.dedupe_horizon,
                MAX_DEDUPE_HORIZON_SECS,
                "366d",
            ),
        ] {
            match parse_duration_secs(value) {
                None => {
                    return Err(invalid(
                        at(field),
                        format!("{value:?} is not a duration"),
                        "write a number and a unit: s, m, h or d (\"5m\")".into(),
                    ))
                }
                Some(secs) if secs > max => {
                    return Err(invalid(
                        at(field),
                        format!("{value:?} is longer than {example}"),
                        format!("use at most {example}"),
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some(serve) = &st.serve_as {
            if !valid_name(serve) {
                return Err(invalid(
                    at("serve_as"),
                    format!("{serve:?} becomes a URL path and view names"),
                    "use only letters, digits, '_' and '-'".into(),
                ));
            }
        }
        if st.deviation_threshold_pct.is_nan() || st.deviation_threshold_pct <= 0.0 {
            return Err(invalid(
                at("deviation_threshold_pct"),
                format!(
                    "{} is not a positive percentage",
                    st.deviation_threshold_pct
                ),
                "use for example 10.0".into(),
            ));
        }
        Ok(())
    }

    /// The stream served as `/<name>` (or named so).
    pub fn served_stream(&self, name: &str) -> Option<(&String, &StreamConfig)> {
        self.streams
            .iter()
            .find(|(n, s)| s.serve_as.as_deref() == Some(name) || n.as_str() == name)
    }
}

/// toml's messages say what was expected; add the line text so the reader
/// does not have to count.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let mut msg = e.message().to_string();
    if let Some(span) = e.span() {
        let line_no = text[..span.start.min(text.len())].matches('\n').count() + 1;
        let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
        msg = format!("line {line_no}: {msg} (at `{line}`)");
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[datasets.orders]
key = ["order_id"]
event_time = "ts"
[[datasets.orders.columns]]
name = "order_id"
type = "string"
required = true
[[datasets.orders.columns]]
name = "ts"
type = "timestamp"

[pipelines.daily]
datasets = ["orders"]
timezone = "Europe/Berlin"
"#;

    fn err(text: &str) -> String {
        Config::parse(text, "pipeline.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn loads_minimal() {
        let c = Config::parse(MINIMAL, "pipeline.toml").unwrap();
        assert_eq!(c.datasets["orders"].columns.len(), 2);
        assert_eq!(c.pipelines["daily"].tz(), chrono_tz::Europe::Berlin);
        assert_eq!(c.pipelines_of("orders").count(), 1);
    }

    #[test]
    fn typo_names_line_and_expected_fields() {
        let e = err(&MINIMAL.replace("required = true", "requried = true"));
        assert!(e.contains("pipeline.toml"), "{e}");
        assert!(e.contains("requried"), "{e}");
        assert!(e.contains("line 8"), "{e}");
        assert!(e.contains("required"), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let e = err(&MINIMAL.replace("required = true", "required = \"yes\""));
        assert!(e.contains("line 8") && e.contains("bool"), "{e}");
        let e = err(&MINIMAL.replace("type = \"timestamp\"", "type = \"datetime\""));
        assert!(e.contains("datetime") && e.contains("timestamp"), "{e}");
    }

    #[test]
    fn semantic_errors_name_field_and_fix() {
        let e = err(&MINIMAL.replace("key = [\"order_id\"]", "key = [\"id\"]"));
        assert!(
            e.contains("datasets.orders.key") && e.contains("use one of: order_id, ts"),
            "{e}"
        );
        let e = err(&MINIMAL.replace("datasets = [\"orders\"]", "datasets = [\"order\"]"));
        assert!(
            e.contains("pipelines.daily.datasets") && e.contains("unknown dataset"),
            "{e}"
        );
        let e = err(&MINIMAL.replace("Europe/Berlin", "Mars/Olympus"));
        assert!(e.contains("pipelines.daily.timezone"), "{e}");
        let e = err(&MINIMAL.replace("event_time = \"ts\"", "event_time = \"order_id\""));
        assert!(e.contains("timestamp column"), "{e}");
        let e = err(&format!(
            "{MINIMAL}\n[[datasets.orders.rules]]\ncolumn = \"order_id\"\nreason = \"x\"\nregex = \"([\"\n"
        ));
        assert!(e.contains("rules[0].regex"), "{e}");
        let e = err(&format!(
            "{MINIMAL}\n[datasets.orders.retention_days]\nrw = 3\n"
        ));
        assert!(e.contains("retention_days.rw"), "{e}");
        let e = err(&format!(
            "{MINIMAL}\n[datasets.orders.retention_days]\nviews = 3\n"
        ));
        assert!(
            e.contains("datasets.orders.retention_days.views")
                && e.contains("[streams.<name>.retention_days]"),
            "{e}"
        );
        let e = err(&format!(
            "{MINIMAL}\n[datasets.orders.retention_days]\nraw = 1000000000\n"
        ));
        assert!(e.contains("at most 36500"), "{e}");
    }

    #[test]
    fn numbers_whose_arithmetic_could_overflow_are_refused_at_load() {
        let stream = |field: &str| {
            format!(
                "{MINIMAL}\n[streams.s]\nevent_id = \"order_id\"\nevent_time = \"ts\"\n{field}\n[[streams.s.fields]]\nname = \"order_id\"\ntype = \"string\"\n[[streams.s.fields]]\nname = \"ts\"\ntype = \"timestamp\"\n"
            )
        };
        for (field, named) in [
            (
                "allowed_lateness = \"99999999999d\"",
                "streams.s.allowed_lateness",
            ),
            ("allowed_lateness = \"8d\"", "streams.s.allowed_lateness"),
            ("dedupe_horizon = \"400d\"", "streams.s.dedupe_horizon"),
            (
                "reconcile_history = \"99999999999999999999d\"",
                "streams.s.reconcile_history",
            ),
        ] {
            let e = err(&stream(field));
            assert!(e.contains(named) && e.contains("Fix:"), "{field}: {e}");
        }
        Config::parse(&stream("allowed_lateness = \"7d\""), "pipeline.toml").unwrap();
        let labeling = |field: &str| {
            format!(
                "{MINIMAL}\n[labeling.l]\ndataset = \"orders\"\nid_column = \"order_id\"\ndefault_label = \"x\"\n{field}\n"
            )
        };
        let e = err(&labeling("review_hours = 18446744073709551615"));
        assert!(e.contains("labeling.l.review_hours"), "{e}");
        let e = err(&labeling("review_hours = 8761"));
        assert!(e.contains("labeling.l.review_hours"), "{e}");
        let e = err(&labeling("max_rounds = 4000000000"));
        assert!(e.contains("labeling.l.max_rounds"), "{e}");
        let e = err(&MINIMAL.replace(
            "timezone = \"Europe/Berlin\"",
            "timezone = \"Europe/Berlin\"\nstart_date = \"1066-10-14\"",
        ));
        assert!(e.contains("pipelines.daily.start_date"), "{e}");
    }
}
