//! Window aggregates: count, sum, min and max per measure, grouped by the
//! stream's dimensions, and the stored window items that carry them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub count: u64,
    pub sum: Vec<f64>,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
}

impl Aggregate {
    pub fn add(&mut self, measures: &[f64]) {
        if self.count == 0 {
            self.sum = measures.to_vec();
            self.min = measures.to_vec();
            self.max = measures.to_vec();
        } else {
            for (i, m) in measures.iter().enumerate() {
                self.sum[i] += m;
                self.min[i] = self.min[i].min(*m);
                self.max[i] = self.max[i].max(*m);
            }
        }
        self.count += 1;
    }

    pub fn merge(&mut self, other: &Aggregate) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        for i in 0..self.sum.len().min(other.sum.len()) {
            self.sum[i] += other.sum[i];
            self.min[i] = self.min[i].min(other.min[i]);
            self.max[i] = self.max[i].max(other.max[i]);
        }
        self.count += other.count;
    }

    /// The figure deviations are measured on: the first measure's sum, or
    /// the count when the stream has no measure.
    pub fn headline(&self) -> f64 {
        self.sum.first().copied().unwrap_or(self.count as f64)
    }
}

/// Aggregates by dimension values (a JSON array of strings as the key, so
/// any value is unambiguous).
pub type Groups = BTreeMap<String, Aggregate>;

pub fn group_key(dims: &[String]) -> String {
    serde_json::to_string(dims).unwrap_or_default()
}

pub fn group_dims(key: &str) -> Vec<String> {
    serde_json::from_str(key).unwrap_or_default()
}

pub fn merge_groups(into: &mut Groups, from: &Groups) {
    for (k, a) in from {
        into.entry(k.clone()).or_default().merge(a);
    }
}

pub fn total(groups: &Groups) -> Aggregate {
    let mut t = Aggregate::default();
    for a in groups.values() {
        t.merge(a);
    }
    t
}

/// Where a window item's contributions came from.
pub const SOURCE_DLQ: &str = "dlq-replay";
/// A window rebuilt from the archive by reconciliation: it replaces every
/// other source of the same window.
pub const SOURCE_RECONCILED: &str = "reconciled";

/// One window's contributions from one source (a shard, DLQ replays, or a
/// reconciliation), stored at `<window start>#<source>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowItem {
    /// Microseconds since the epoch.
    pub window_start: i64,
    pub source: String,
    /// Shards: the highest sequence number counted here. Every record of
    /// this shard and window at or below it is already in `groups`, so a
    /// redelivered record is recognised and not counted twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sequence: Option<String>,
    /// DLQ replays (no order): the records counted, as `<shard>/<sequence>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied: Vec<String>,
    pub groups: Groups,
}

pub fn window_sk(window_start_micros: i64, source: &str) -> String {
    format!("{}#{source}", rfc3339(window_start_micros))
}

pub fn window_start(time_micros: i64, window_secs: u64) -> i64 {
    let w = window_secs as i64 * 1_000_000;
    time_micros.div_euclid(w) * w
}

pub fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

pub fn date_of(micros: i64) -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

/// Windows of one date merged over their sources: a reconciled item
/// replaces the others of its window.
pub fn merge_window_items(items: impl IntoIterator<Item = WindowItem>) -> BTreeMap<i64, Groups> {
    let mut merged: BTreeMap<i64, (bool, Groups)> = BTreeMap::new();
    for item in items {
        let entry = merged.entry(item.window_start).or_default();
        let reconciled = item.source == SOURCE_RECONCILED;
        match (entry.0, reconciled) {
            (true, false) => {}
            (false, true) => *entry = (true, item.groups),
            _ => merge_groups(&mut entry.1, &item.groups),
        }
    }
    merged.into_iter().map(|(k, (_, g))| (k, g)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_add_and_merge() {
        let mut a = Aggregate::default();
        a.add(&[2.0]);
        a.add(&[5.0]);
        let mut b = Aggregate::default();
        b.add(&[1.0]);
        a.merge(&b);
        assert_eq!(a.count, 3);
        assert_eq!((a.sum[0], a.min[0], a.max[0]), (8.0, 1.0, 5.0));
    }

    #[test]
    fn windows_align_to_their_size() {
        let t = 1_764_763_385_500_000; // 2025-12-03T12:03:05.5Z
        assert_eq!(rfc3339(window_start(t, 60)), "2025-12-03T12:03:00Z");
        assert_eq!(rfc3339(window_start(t, 3600)), "2025-12-03T12:00:00Z");
        assert_eq!(window_start(-1, 60), -60_000_000);
    }

    #[test]
    fn a_reconciled_item_replaces_the_shards_of_its_window() {
        let groups = |n: u64| {
            let mut g = Groups::new();
            g.insert(
                "[\"p\"]".into(),
                Aggregate {
                    count: n,
                    ..Default::default()
                },
            );
            g
        };
        let item = |w: i64, source: &str, n: u64| WindowItem {
            window_start: w,
            source: source.into(),
            groups: groups(n),
            ..Default::default()
        };
        let merged = merge_window_items(vec![
            item(0, "shard-1", 2),
            item(0, "shard-2", 3),
            item(60, "shard-1", 4),
            item(60, SOURCE_RECONCILED, 10),
            item(60, "shard-2", 1),
        ]);
        assert_eq!(total(&merged[&0]).count, 5);
        assert_eq!(total(&merged[&60]).count, 10);
    }
}
