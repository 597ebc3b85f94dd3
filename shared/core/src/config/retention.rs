//! Retention across the config's sections: which section owns each
//! layer's retention, the limits, and every prefix the sweep expires.

use super::{Config, ConfigError, Invalid};
use crate::layout::Layer;
use std::collections::BTreeMap;

/// Which layers each part of the config keeps its retention for: every
/// prefix the system writes by date has exactly one owner, and models are
/// kept (a rollback needs the previous version).
pub const DATASET_LAYERS: [Layer; 4] = [Layer::Raw, Layer::Cleaned, Layer::Rejects, Layer::Quality];
pub const STREAM_LAYERS: [Layer; 4] = [Layer::Stream, Layer::Late, Layer::Dlq, Layer::Views];
pub const FEATURE_LAYERS: [Layer; 1] = [Layer::Features];
pub const LABELING_LAYERS: [Layer; 1] = [Layer::Labels];

/// The longest retention accepted: a hundred years (date arithmetic on
/// anything larger could overflow).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

pub(super) fn typed_retention(days: &BTreeMap<String, u32>) -> Vec<(Layer, u32)> {
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

/// A retention table may name only the layers its section owns, for at most
/// [`MAX_RETENTION_DAYS`].
pub(super) fn check_retention(
    section: &str,
    days: &BTreeMap<String, u32>,
    owned: &[Layer],
    invalid: Invalid,
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
}
