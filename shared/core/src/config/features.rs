//! `[features.<set>]`: a feature set's source datasets, windows, quality
//! threshold and retention.

use super::retention::{check_retention, FEATURE_LAYERS};
use super::{ConfigError, Within};
use serde::Deserialize;
use std::collections::BTreeMap;

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

impl FeatureSetConfig {
    pub(super) fn validate(&self, name: &str, within: &Within) -> Result<(), ConfigError> {
        let Within { config, invalid } = *within;
        let f = self;
        let at = |x: &str| format!("features.{name}.{x}");
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
            let Some(d) = config.datasets.get(ds) else {
                return Err(invalid(
                    at(field),
                    format!("unknown dataset {ds:?}"),
                    format!("use one of: {}", config.dataset_names()),
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
            invalid,
        )?;
        Ok(())
    }
}
