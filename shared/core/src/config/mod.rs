//! `pipeline.toml`: datasets and pipelines, validated at load so that a typo
//! fails before any data moves, with an error naming the file, the field and
//! the fix.

mod dataset;
mod features;
mod labeling;
mod pipeline;
mod retention;
mod stream;

pub use dataset::*;
pub use features::*;
pub use labeling::*;
pub use pipeline::*;
pub use retention::{
    RetentionTarget, DATASET_LAYERS, FEATURE_LAYERS, LABELING_LAYERS, MAX_RETENTION_DAYS,
    STREAM_LAYERS,
};
pub use stream::*;

use crate::layout::valid_name;
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

/// What each section's validation builds its errors with: (field, problem,
/// fix) → the error naming the file.
pub(crate) type Invalid<'a> = &'a dyn Fn(String, String, String) -> ConfigError;

/// What a section's validation may look at besides itself: the whole file
/// (a pipeline names datasets) and the error builder.
#[derive(Clone, Copy)]
pub(crate) struct Within<'a> {
    pub config: &'a Config,
    pub invalid: Invalid<'a>,
}

/// A section's name becomes part of S3 prefixes, Glue tables or execution
/// names (`why`), so it is letters, digits, `_` and `-` only.
fn check_name(section: &str, name: &str, why: &str, invalid: Invalid) -> Result<(), ConfigError> {
    if valid_name(name) {
        return Ok(());
    }
    Err(invalid(
        format!("{section}.{name}"),
        why.to_string(),
        "use only letters, digits, '_' and '-'".into(),
    ))
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

/// The longest a person can be waited for: a year (Step Functions' limit
/// for a task token).
pub const MAX_WAIT_HOURS: u64 = 8_760;

/// Limits of the stream durations: the arithmetic on them (micro-seconds,
/// epoch seconds) stays far from overflow, and they mean something.
pub const MAX_ALLOWED_LATENESS_SECS: u64 = 7 * 86_400;
pub const MAX_DEDUPE_HORIZON_SECS: u64 = 366 * 86_400;

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
        let within = Within {
            config: self,
            invalid: &invalid,
        };
        for (name, ds) in &self.datasets {
            check_name(
                "datasets",
                name,
                "dataset names become S3 prefixes and Glue tables",
                &invalid,
            )?;
            ds.validate(name, &invalid)?;
        }
        for (name, p) in &self.pipelines {
            check_name(
                "pipelines",
                name,
                "pipeline names become execution names",
                &invalid,
            )?;
            p.validate(name, &within)?;
        }
        for (name, f) in &self.features {
            check_name(
                "features",
                name,
                "feature set names become S3 prefixes",
                &invalid,
            )?;
            f.validate(name, &within)?;
        }
        for (name, st) in &self.streams {
            check_name("streams", name, "stream names become S3 prefixes", &invalid)?;
            st.validate(name, &invalid)?;
        }
        for (name, l) in &self.labeling {
            check_name(
                "labeling",
                name,
                "labeling names become S3 prefixes",
                &invalid,
            )?;
            l.validate(name, &within)?;
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
    use std::collections::BTreeSet;

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

    /// The ```toml blocks of a Markdown document, in order, as one text.
    fn toml_blocks(markdown: &str) -> String {
        let mut out = String::new();
        let mut inside = false;
        for line in markdown.lines() {
            match (inside, line.trim_end()) {
                (false, "```toml") => inside = true,
                (true, "```") => inside = false,
                (true, _) => {
                    out.push_str(line);
                    out.push('\n');
                }
                _ => {}
            }
        }
        out
    }

    /// Every key path of a config, names of datasets (streams, …) as `*`,
    /// array elements as `[]`; retention tables by their own name only
    /// (their keys are layers).
    fn key_paths(value: &toml::Value, path: &str, depth: usize, out: &mut BTreeSet<String>) {
        match value {
            toml::Value::Table(table) => {
                for (key, v) in table {
                    let key = if depth == 1 { "*" } else { key.as_str() };
                    let here = if path.is_empty() {
                        key.to_string()
                    } else {
                        format!("{path}.{key}")
                    };
                    out.insert(here.clone());
                    if key != "retention_days" {
                        key_paths(v, &here, depth + 1, out);
                    }
                }
            }
            toml::Value::Array(items) => {
                for item in items {
                    key_paths(item, &format!("{path}[]"), depth, out);
                }
            }
            _ => {}
        }
    }

    /// docs/CONFIG.md cannot drift from the code: its examples load (an
    /// unknown or misspelled key is refused), they show every kind of
    /// section, and every key the bundled sample uses is documented.
    #[test]
    fn docs_config_examples_load() {
        let documented = toml_blocks(include_str!("../../../../docs/CONFIG.md"));
        let config = Config::parse(&documented, "docs/CONFIG.md").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !config.datasets.is_empty()
                && !config.pipelines.is_empty()
                && !config.streams.is_empty()
                && !config.features.is_empty()
                && !config.labeling.is_empty(),
            "docs/CONFIG.md shows every kind of section"
        );
        let paths_of = |text: &str| {
            let mut paths = BTreeSet::new();
            let value: toml::Value = toml::from_str(text).expect("TOML");
            key_paths(&value, "", 0, &mut paths);
            paths
        };
        let sample = paths_of(include_str!("../../../../samplelocal/pipeline.toml"));
        let shown = paths_of(&documented);
        let undocumented: Vec<_> = sample.difference(&shown).collect();
        assert!(
            undocumented.is_empty(),
            "keys of samplelocal/pipeline.toml that docs/CONFIG.md does not show: {undocumented:?}"
        );
    }
}
