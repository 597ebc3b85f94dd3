//! The S3 layout contract: every layer's keys, parsed and formatted
//! in one place so no other module builds key strings by hand.
//!
//! ```text
//! raw/<dataset>/date=YYYY-MM-DD/<file>
//! cleaned/<dataset>/date=YYYY-MM-DD/...
//! rejects/<dataset>/date=YYYY-MM-DD/...
//! quality/<dataset>/date=YYYY-MM-DD/report.json
//! features/<feature_set>/date=YYYY-MM-DD/...
//! views/<view>/date=YYYY-MM-DD/...
//! stream/<stream>/date=YYYY-MM-DD/hour=HH/...
//! late/<stream>/date=YYYY-MM-DD/hour=HH/...   events too late for realtime
//! dlq/<stream>/date=YYYY-MM-DD/...
//! ```

use chrono::NaiveDate;
use std::fmt;

/// A prefix of the data bucket. The prefix *is* the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    Raw,
    Cleaned,
    Rejects,
    Quality,
    Features,
    Views,
    Stream,
    /// Events too late for the realtime windows, kept for the batch layer.
    Late,
    Dlq,
    Labels,
    Models,
    /// The distributed clean's intermediate files (ranges manifest, bucket
    /// files, summaries), expired by a lifecycle rule.
    Work,
}

impl Layer {
    pub const ALL: [Layer; 12] = [
        Layer::Raw,
        Layer::Cleaned,
        Layer::Rejects,
        Layer::Quality,
        Layer::Features,
        Layer::Views,
        Layer::Stream,
        Layer::Late,
        Layer::Dlq,
        Layer::Labels,
        Layer::Models,
        Layer::Work,
    ];

    pub fn prefix(self) -> &'static str {
        match self {
            Layer::Raw => "raw",
            Layer::Cleaned => "cleaned",
            Layer::Rejects => "rejects",
            Layer::Quality => "quality",
            Layer::Features => "features",
            Layer::Views => "views",
            Layer::Stream => "stream",
            Layer::Late => "late",
            Layer::Dlq => "dlq",
            Layer::Labels => "labels",
            Layer::Models => "models",
            Layer::Work => "work",
        }
    }

    pub fn from_prefix(prefix: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.prefix() == prefix)
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("object key {key:?} is not valid URL encoding: {reason}")]
    BadEncoding { key: String, reason: String },
    #[error("object key {key:?} is outside the bucket layout: {reason} (expected <layer>/<name>/date=YYYY-MM-DD/<file>, layer one of raw, cleaned, rejects, quality, features, views, stream, late, dlq, labels, models)")]
    OutsideLayout { key: String, reason: String },
    #[error("object key {key:?} has an unsafe path segment {segment:?}: empty, '.' and '..' segments are refused so no key can escape its prefix")]
    UnsafeSegment { key: String, segment: String },
    #[error("object key {key:?}: {value:?} is not a calendar date (expected date=YYYY-MM-DD)")]
    InvalidDate { key: String, value: String },
    #[error("object key {key:?} names dataset {dataset:?}, which pipeline.toml does not define (known: {known})")]
    UnknownDataset {
        key: String,
        dataset: String,
        known: String,
    },
}

/// A parsed key of any layer. `rest` is everything after the partition
/// segments (for raw objects, the upstream file name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionKey {
    pub layer: Layer,
    pub name: String,
    pub date: NaiveDate,
    pub hour: Option<u8>,
    pub rest: String,
}

/// S3 event notifications carry keys form-URL-encoded: `%XX` escapes and `+`
/// for space. Decoding must happen before any parsing.
pub fn decode_event_key(encoded: &str) -> Result<String, KeyError> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .ok_or_else(|| KeyError::BadEncoding {
                        key: encoded.to_string(),
                        reason: format!("truncated escape at byte {i}"),
                    })?;
                let hi = hex_val(hex[0]);
                let lo = hex_val(hex[1]);
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h * 16 + l),
                    _ => {
                        return Err(KeyError::BadEncoding {
                            key: encoded.to_string(),
                            reason: format!("invalid escape at byte {i}"),
                        })
                    }
                }
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|e| KeyError::BadEncoding {
        key: encoded.to_string(),
        reason: format!("decoded bytes are not UTF-8: {e}"),
    })
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Encode a key the way S3 does in event notifications.
pub fn encode_event_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 8);
    for &b in key.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub fn parse_date(value: &str) -> Option<NaiveDate> {
    // chrono accepts some non-canonical forms (e.g. "+2025-01-01"); the layout
    // is strictly YYYY-MM-DD so that one date has exactly one key.
    let b = value.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    if !b
        .iter()
        .enumerate()
        .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return None;
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()
}

impl PartitionKey {
    /// Parse an already-decoded key.
    pub fn parse(key: &str) -> Result<PartitionKey, KeyError> {
        let outside = |reason: &str| KeyError::OutsideLayout {
            key: key.to_string(),
            reason: reason.to_string(),
        };
        let segments: Vec<&str> = key.split('/').collect();
        for s in &segments {
            if s.is_empty() || *s == "." || *s == ".." {
                return Err(KeyError::UnsafeSegment {
                    key: key.to_string(),
                    segment: (*s).to_string(),
                });
            }
        }
        if segments.len() < 4 {
            return Err(outside("too few path segments"));
        }
        let layer = Layer::from_prefix(segments[0])
            .ok_or_else(|| outside(&format!("unknown layer {:?}", segments[0])))?;
        let name = segments[1].to_string();
        if !valid_name(&name) {
            return Err(outside(&format!(
                "name {name:?} must be letters, digits, '_' or '-'"
            )));
        }
        let date_seg = segments[2];
        let date_str = date_seg
            .strip_prefix("date=")
            .ok_or_else(|| outside("third segment must be date=YYYY-MM-DD"))?;
        let date = parse_date(date_str).ok_or_else(|| KeyError::InvalidDate {
            key: key.to_string(),
            value: date_str.to_string(),
        })?;
        let mut rest_start = 3;
        let mut hour = None;
        if matches!(layer, Layer::Stream | Layer::Late) {
            let h = segments[3]
                .strip_prefix("hour=")
                .and_then(|h| (h.len() == 2).then_some(h))
                .and_then(|h| h.parse::<u8>().ok())
                .filter(|h| *h < 24)
                .ok_or_else(|| {
                    outside("stream and late keys need hour=HH (00-23) after the date")
                })?;
            hour = Some(h);
            rest_start = 4;
        }
        if segments.len() <= rest_start {
            return Err(outside("no object name after the partition"));
        }
        Ok(PartitionKey {
            layer,
            name,
            date,
            hour,
            rest: segments[rest_start..].join("/"),
        })
    }

    /// Decode an S3 event key and parse it.
    pub fn from_event_key(encoded: &str) -> Result<PartitionKey, KeyError> {
        PartitionKey::parse(&decode_event_key(encoded)?)
    }

    pub fn to_key(&self) -> String {
        let mut k = partition_prefix(self.layer, &self.name, self.date);
        if let Some(h) = self.hour {
            k.push_str(&format!("hour={h:02}/"));
        }
        k.push_str(&self.rest);
        k
    }
}

pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `<layer>/<name>/date=YYYY-MM-DD/` — always with the trailing slash so that
/// a prefix listing of one date never matches another name sharing a prefix.
pub fn partition_prefix(layer: Layer, name: &str, date: NaiveDate) -> String {
    format!(
        "{}/{}/date={}/",
        layer.prefix(),
        name,
        date.format("%Y-%m-%d")
    )
}

pub fn dataset_prefix(layer: Layer, name: &str) -> String {
    format!("{}/{}/", layer.prefix(), name)
}

/// Where one run of the cleaner stages its output, invisible to readers until
/// the partition manifest is switched to it.
pub fn run_prefix(layer: Layer, name: &str, date: NaiveDate, run_id: &str) -> String {
    format!("{}run={run_id}/", partition_prefix(layer, name, date))
}

/// Where the cleaner stages a run before publication composes it.
pub fn staging_prefix(layer: Layer, name: &str, date: NaiveDate, run_id: &str) -> String {
    format!(
        "{}_staging/run={run_id}/",
        partition_prefix(layer, name, date)
    )
}

/// Where a run's cleaned parts are written. Overwrite and append runs
/// write them straight into the run's own prefix, which publishing then
/// points the manifest and catalog at without copying a byte (readers see
/// the prefix only once the manifest names it). A merge run cleaned by one
/// function stages them (`publish_merges`, see
/// [`crate::publish::publish_merges`]), because its published prefix holds
/// the merged file instead; one cleaned in ranges merges as it cleans.
pub fn cleaned_output_prefix(
    publish_merges: bool,
    name: &str,
    date: NaiveDate,
    run_id: &str,
) -> String {
    if publish_merges {
        staging_prefix(Layer::Cleaned, name, date, run_id)
    } else {
        run_prefix(Layer::Cleaned, name, date, run_id)
    }
}

/// The last segment of an object key.
pub fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or_default()
}

/// The pointer readers follow: the manifest a publish switches atomically
/// (see publish.rs).
pub fn manifest_key(layer: Layer, name: &str, date: NaiveDate) -> String {
    format!("{}_manifest.json", partition_prefix(layer, name, date))
}

pub fn quality_report_key(dataset: &str, date: NaiveDate) -> String {
    format!(
        "{}report.json",
        partition_prefix(Layer::Quality, dataset, date)
    )
}

/// Extract the `run=<id>` segment of a key below a partition, if any.
pub fn run_of_key(key: &str) -> Option<&str> {
    key.split('/')
        .find_map(|segment| segment.strip_prefix("run="))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    #[test]
    fn parses_raw_key() {
        let k = PartitionKey::parse("raw/orders/date=2025-12-03/orders_1.csv").unwrap();
        assert_eq!(k.layer, Layer::Raw);
        assert_eq!(k.name, "orders");
        assert_eq!(k.date, d("2025-12-03"));
        assert_eq!(k.rest, "orders_1.csv");
        assert_eq!(k.to_key(), "raw/orders/date=2025-12-03/orders_1.csv");
    }

    #[test]
    fn decodes_event_keys_before_parsing() {
        let k =
            PartitionKey::from_event_key("raw/orders/date%3D2025-12-03/my+file%2B1.csv").unwrap();
        assert_eq!(k.date, d("2025-12-03"));
        assert_eq!(k.rest, "my file+1.csv");
        assert_eq!(
            encode_event_key("raw/orders/date=2025-12-03/my file+1.csv"),
            "raw/orders/date%3D2025-12-03/my+file%2B1.csv"
        );
    }

    #[test]
    fn every_layer_round_trips() {
        for layer in Layer::ALL {
            let key = if matches!(layer, Layer::Stream | Layer::Late) {
                format!("{layer}/clicks/date=2025-01-02/hour=07/part.json")
            } else {
                format!("{layer}/x_1/date=2025-01-02/a/b.parquet")
            };
            let parsed = PartitionKey::parse(&key).unwrap();
            assert_eq!(parsed.layer, layer);
            assert_eq!(parsed.to_key(), key);
        }
    }

    #[test]
    fn refuses_escapes_and_empty_segments() {
        for bad in [
            "raw/orders/date=2025-12-03/../../etc/passwd",
            "raw/orders//date=2025-12-03/x.csv",
            "raw/orders/date=2025-12-03/./x.csv",
            "/raw/orders/date=2025-12-03/x.csv",
        ] {
            assert!(
                matches!(
                    PartitionKey::parse(bad),
                    Err(KeyError::UnsafeSegment { .. })
                ),
                "{bad}"
            );
        }
        // An encoded traversal is caught after decoding.
        assert!(matches!(
            PartitionKey::from_event_key("raw/orders/date%3D2025-12-03/%2E%2E/x.csv"),
            Err(KeyError::UnsafeSegment { .. })
        ));
    }

    #[test]
    fn refuses_invalid_dates_and_layouts() {
        assert!(matches!(
            PartitionKey::parse("raw/orders/date=2025-02-30/x.csv"),
            Err(KeyError::InvalidDate { .. })
        ));
        assert!(matches!(
            PartitionKey::parse("raw/orders/date=2025-2-3/x.csv"),
            Err(KeyError::InvalidDate { .. })
        ));
        assert!(matches!(
            PartitionKey::parse("incoming/orders/date=2025-02-03/x.csv"),
            Err(KeyError::OutsideLayout { .. })
        ));
        assert!(matches!(
            PartitionKey::parse("raw/orders/2025-02-03/x.csv"),
            Err(KeyError::OutsideLayout { .. })
        ));
        assert!(matches!(
            PartitionKey::parse("raw/orders/date=2025-02-03"),
            Err(KeyError::OutsideLayout { .. })
        ));
        assert!(matches!(
            decode_event_key("raw/%ZZ"),
            Err(KeyError::BadEncoding { .. })
        ));
    }

    #[test]
    fn run_prefixes_and_manifest() {
        let date = d("2025-01-02");
        assert_eq!(
            run_prefix(Layer::Cleaned, "orders", date, "r1"),
            "cleaned/orders/date=2025-01-02/run=r1/"
        );
        assert_eq!(
            manifest_key(Layer::Cleaned, "orders", date),
            "cleaned/orders/date=2025-01-02/_manifest.json"
        );
        assert_eq!(
            run_of_key("cleaned/orders/date=2025-01-02/run=r1/part-0.parquet"),
            Some("r1")
        );
    }
}
