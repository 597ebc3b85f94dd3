//! One event of a stream: decoded from JSON and checked against the
//! stream's schema. A record that fails is poison, with a reason that says
//! which field was wrong and how.

use crate::config::{ColumnConfig, ColumnType, NaiveTimestamps, StreamConfig};
use crate::timestamps::parse_timestamp_micros;
use serde_json::Value;

/// What the aggregates need of an event.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    pub id: String,
    /// Event time, microseconds since the epoch (UTC).
    pub time_micros: i64,
    /// Values of the configured dimensions, in order ("" when absent).
    pub dims: Vec<String>,
    /// Values of the configured measures, in order.
    pub measures: Vec<f64>,
}

/// Decode one record's bytes; `Err` says why it is poison.
pub fn decode(config: &StreamConfig, data: &[u8]) -> Result<(StreamEvent, Value), String> {
    let value: Value = serde_json::from_slice(data).map_err(|e| {
        if std::str::from_utf8(data).is_err() {
            "payload is not UTF-8 text".to_string()
        } else {
            format!("payload is not JSON: {e}")
        }
    })?;
    let event = from_value(config, &value)?;
    Ok((event, value))
}

/// Check an already parsed JSON event against the schema.
pub fn from_value(config: &StreamConfig, value: &Value) -> Result<StreamEvent, String> {
    let object = value
        .as_object()
        .ok_or_else(|| format!("payload is a JSON {}, not an object", kind(value)))?;
    for field in &config.fields {
        match object.get(&field.name) {
            None | Some(Value::Null) => {
                if field.required {
                    return Err(format!("required field {:?} is missing", field.name));
                }
            }
            Some(v) => check_type(field, v)?,
        }
    }
    let id = match object.get(&config.event_id) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(format!(
                "event id {:?} is missing or empty",
                config.event_id
            ))
        }
    };
    let naive = config
        .field(&config.event_time)
        .map(|f| f.naive_timestamps)
        .unwrap_or_default();
    let time_micros = match object.get(&config.event_time) {
        Some(Value::String(s)) => timestamp(&config.event_time, s, naive)?,
        _ => return Err(format!("event time {:?} is missing", config.event_time)),
    };
    let dims = config
        .dimensions
        .iter()
        .map(|d| match object.get(d) {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => String::new(),
            Some(other) => other.to_string(),
        })
        .collect();
    let measures = config
        .measures
        .iter()
        .map(|m| object.get(m).and_then(Value::as_f64).unwrap_or(0.0))
        .collect();
    Ok(StreamEvent {
        id,
        time_micros,
        dims,
        measures,
    })
}

fn timestamp(field: &str, text: &str, naive: NaiveTimestamps) -> Result<i64, String> {
    parse_timestamp_micros(text.as_bytes(), naive).ok_or_else(|| match naive {
        NaiveTimestamps::Reject => {
            format!("field {field:?}: {text:?} is not an ISO-8601 timestamp with a UTC offset")
        }
        NaiveTimestamps::AssumeUtc => {
            format!("field {field:?}: {text:?} is not an ISO-8601 timestamp")
        }
    })
}

fn check_type(field: &ColumnConfig, v: &Value) -> Result<(), String> {
    let (name, expected) = (&field.name, field.column_type);
    let ok = match expected {
        ColumnType::String => v.is_string(),
        ColumnType::Int => v.is_i64() || v.is_u64(),
        ColumnType::Float => v.is_number(),
        ColumnType::Bool => v.is_boolean(),
        ColumnType::Date => v
            .as_str()
            .is_some_and(|s| crate::layout::parse_date(s).is_some()),
        ColumnType::Timestamp => {
            return match v.as_str() {
                Some(s) => timestamp(name, s, field.naive_timestamps).map(|_| ()),
                None => Err(format!(
                    "field {name:?} is a JSON {}, not a timestamp",
                    kind(v)
                )),
            }
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "field {name:?} should be {} but is {}",
            expected.name(),
            short(v)
        ))
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 40 {
        format!("{}…", &text[..text.floor_char_boundary(40)])
    } else {
        text
    }
}
