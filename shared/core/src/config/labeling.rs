//! `[labeling.<name>]`: rule-based labels for a dataset, the review a
//! person gives the uncertain ones, and retention.

use super::retention::{check_retention, LABELING_LAYERS};
use super::{ConfigError, Within, MAX_WAIT_HOURS};
use serde::Deserialize;
use std::collections::BTreeMap;

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

impl LabelingConfig {
    pub(super) fn validate(&self, name: &str, within: &Within) -> Result<(), ConfigError> {
        let Within { config, invalid } = *within;
        let l = self;
        let at = |f: &str| format!("labeling.{name}.{f}");
        let Some(ds) = config.datasets.get(&l.dataset) else {
            return Err(invalid(
                at("dataset"),
                format!("unknown dataset {:?}", l.dataset),
                format!("use one of: {}", config.dataset_names()),
            ));
        };
        check_retention(
            &format!("labeling.{name}"),
            &l.retention_days,
            &LABELING_LAYERS,
            invalid,
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
        Ok(())
    }
}
