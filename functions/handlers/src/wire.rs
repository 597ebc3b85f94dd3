//! Events in, responses out: decoding a function's input into its typed
//! input (every field it needs required, dates and run ids checked while
//! decoding) and encoding what a use case returns.

use chrono::NaiveDate;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;
use serde_json::Value;
use tributary_core::layout::{parse_date, valid_name};

use crate::error::{bad_event, HandlerError};

/// Decode an event into a function's input; `shape` names the fields the
/// function expects, for the message when the event is not that.
pub fn decode<T: DeserializeOwned>(event: Value, shape: &str) -> Result<T, HandlerError> {
    serde_json::from_value(event).map_err(|e| bad_event(format!("expected {shape}: {e}")))
}

/// What a `.waitForTaskToken` Task passes besides its own input: the token
/// to answer and the execution waiting on it.
#[derive(Debug, Deserialize)]
pub struct Waiting {
    pub token: String,
    pub execution: String,
}

impl Waiting {
    pub fn asking(&self) -> tributary_core::orchestration::TaskAsking<'_> {
        tributary_core::orchestration::TaskAsking {
            token: &self.token,
            execution: &self.execution,
        }
    }
}

/// A use case's answer as the function's response.
pub fn encode<T: serde::Serialize>(v: &T) -> Result<Value, HandlerError> {
    serde_json::to_value(v).map_err(|e| HandlerError {
        error_type: "Tributary.Failed".into(),
        message: format!("encoding the response: {e}"),
        retryable: false,
    })
}

fn not_a_date(text: &str) -> String {
    format!("date {text:?} is not YYYY-MM-DD")
}

/// A partition date, `YYYY-MM-DD` exactly.
pub fn parse_day(text: &str) -> Result<NaiveDate, HandlerError> {
    parse_date(text).ok_or_else(|| bad_event(not_a_date(text)))
}

/// `#[serde(deserialize_with = "wire::date")]`: a field holding a partition
/// date.
pub fn date<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    let text = String::deserialize(d)?;
    parse_date(&text).ok_or_else(|| D::Error::custom(not_a_date(&text)))
}

/// `#[serde(default, deserialize_with = "wire::optional_date")]`.
pub fn optional_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(text) => parse_date(&text)
            .map(Some)
            .ok_or_else(|| D::Error::custom(not_a_date(&text))),
    }
}

/// `#[serde(deserialize_with = "wire::run_id")]`: a run id becomes part of
/// object keys, so it is letters, digits, `_` or `-` only.
pub fn run_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() || !valid_name(&text) {
        return Err(D::Error::custom(format!(
            "run_id {text:?} must be letters, digits, '_' or '-'"
        )));
    }
    Ok(text)
}

/// A count given as a number or as its decimal text (what a template
/// placeholder inside a JSON string becomes).
pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Count {
        Number(usize),
        Text(String),
    }
    match Count::deserialize(d)? {
        Count::Number(n) => Ok(n),
        Count::Text(t) => t.trim().parse().map_err(|_| {
            serde::de::Error::custom(format!("{t:?} is not a count (a whole number)"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    struct Dated {
        #[serde(deserialize_with = "date")]
        date: NaiveDate,
        #[serde(deserialize_with = "run_id")]
        run_id: String,
    }

    #[test]
    fn dates_and_run_ids_are_checked_while_decoding() {
        let err = decode::<Dated>(
            json!({"date": "2025-02-30", "run_id": "r"}),
            "{date, run_id}",
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "expected {date, run_id}: date \"2025-02-30\" is not YYYY-MM-DD"
        );
        let err = decode::<Dated>(
            json!({"date": "2025-02-03", "run_id": "../x"}),
            "{date, run_id}",
        )
        .unwrap_err();
        assert!(err.message.contains("must be letters"), "{}", err.message);
        let err = decode::<Dated>(json!({"date": "2025-02-03"}), "{date, run_id}").unwrap_err();
        assert!(
            err.message.contains("missing field `run_id`"),
            "{}",
            err.message
        );
        let ok = decode::<Dated>(
            json!({"date": "2025-02-03", "run_id": "r1"}),
            "{date, run_id}",
        )
        .unwrap();
        assert_eq!(
            (ok.date.to_string(), ok.run_id.as_str()),
            ("2025-02-03".into(), "r1")
        );
    }
}
