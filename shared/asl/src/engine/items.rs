//! A distributed Map's ItemReader: the items come from an S3 listing or
//! from one JSON, JSON Lines or CSV object, read through the host.

use super::{Failure, Host};
use crate::definition::ItemReader;
use crate::errors::ITEM_READER_FAILED;
use serde_json::{Map, Value};

fn failed(message: impl Into<String>) -> Failure {
    Failure::new(ITEM_READER_FAILED, message)
}

fn param<'a>(params: &'a Value, name: &str) -> Result<&'a str, Failure> {
    params.get(name).and_then(|v| v.as_str()).ok_or_else(|| {
        failed(format!(
            "ItemReader.Parameters.{name} is missing or not a string"
        ))
    })
}

pub fn read(
    host: &mut dyn Host,
    reader: &ItemReader,
    params: &Value,
) -> Result<Vec<Value>, Failure> {
    let config = &reader.reader_config;
    let mut items = match reader.resource.as_str() {
        "arn:aws:states:::s3:listObjectsV2" => {
            let prefix = params
                .get("Prefix")
                .and_then(|p| p.as_str())
                .unwrap_or_default();
            host.list_objects(param(params, "Bucket")?, prefix)?
        }
        "arn:aws:states:::s3:getObject" => {
            let (bucket, key) = (param(params, "Bucket")?, param(params, "Key")?);
            let text = host.get_object(bucket, key)?;
            let input_type = config
                .get("InputType")
                .and_then(|t| t.as_str())
                .unwrap_or("JSON");
            parse(&text, input_type, config)
                .map_err(|m| failed(format!("s3://{bucket}/{key}: {m}")))?
        }
        other => return Err(failed(format!("unsupported ItemReader resource {other}"))),
    };
    if let Some(max) = config.get("MaxItems").and_then(|m| m.as_u64()) {
        items.truncate(max as usize);
    }
    Ok(items)
}

fn parse(text: &str, input_type: &str, config: &Value) -> Result<Vec<Value>, String> {
    match input_type {
        "JSON" => match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => Ok(items),
            Ok(_) => Err("InputType JSON needs the object to hold a JSON array".into()),
            Err(e) => Err(format!(
                "not JSON (line {}, column {}): {e}",
                e.line(),
                e.column()
            )),
        },
        "JSONL" => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| format!("line {}: not JSON: {e}", i + 1))
            })
            .collect(),
        "CSV" => csv_items(text, config),
        other => Err(format!(
            "InputType {other} is not supported (JSON, JSONL, CSV)"
        )),
    }
}

/// Each row becomes an object of strings keyed by the header, as Step
/// Functions does (FIRST_ROW, or GIVEN with CSVHeaders).
fn csv_items(text: &str, config: &Value) -> Result<Vec<Value>, String> {
    let delimiter = match config
        .get("CSVDelimiter")
        .and_then(|d| d.as_str())
        .unwrap_or("COMMA")
    {
        "COMMA" => b',',
        "PIPE" => b'|',
        "SEMICOLON" => b';',
        "SPACE" => b' ',
        "TAB" => b'\t',
        other => {
            return Err(format!(
                "CSVDelimiter {other} is not one of COMMA, PIPE, SEMICOLON, SPACE, TAB"
            ))
        }
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let headers: Vec<String> = match config
        .get("CSVHeaderLocation")
        .and_then(|h| h.as_str())
        .unwrap_or("FIRST_ROW")
    {
        "FIRST_ROW" => match records.next() {
            Some(Ok(r)) => r.iter().map(str::to_string).collect(),
            Some(Err(e)) => return Err(format!("header row: {e}")),
            None => return Ok(Vec::new()),
        },
        "GIVEN" => config
            .get("CSVHeaders")
            .and_then(|h| h.as_array())
            .map(|h| {
                h.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .ok_or("CSVHeaderLocation GIVEN needs CSVHeaders")?,
        other => {
            return Err(format!(
                "CSVHeaderLocation {other} is not FIRST_ROW or GIVEN"
            ))
        }
    };
    let mut items = Vec::new();
    for (i, record) in records.enumerate() {
        let record = record.map_err(|e| format!("row {}: {e}", i + 1))?;
        if record.len() != headers.len() {
            return Err(format!(
                "row {} has {} fields but the header has {}",
                i + 1,
                record.len(),
                headers.len()
            ));
        }
        let mut item = Map::new();
        for (h, v) in headers.iter().zip(record.iter()) {
            item.insert(h.clone(), Value::String(v.to_string()));
        }
        items.push(Value::Object(item));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_input_type() {
        assert_eq!(
            parse("[1, {\"a\": 2}]", "JSON", &json!({})),
            Ok(vec![json!(1), json!({"a": 2})])
        );
        assert!(parse("{\"a\": 1}", "JSON", &json!({}))
            .unwrap_err()
            .contains("JSON array"));
        assert_eq!(
            parse("{\"a\":1}\n\n{\"a\":2}\n", "JSONL", &json!({})),
            Ok(vec![json!({"a": 1}), json!({"a": 2})])
        );
        assert_eq!(
            parse("date,rows\n2026-01-01,\"1,000\"\n", "CSV", &json!({})),
            Ok(vec![json!({"date": "2026-01-01", "rows": "1,000"})])
        );
        assert_eq!(
            parse(
                "a|b\n",
                "CSV",
                &json!({"CSVHeaderLocation": "GIVEN", "CSVHeaders": ["x", "y"], "CSVDelimiter": "PIPE"})
            ),
            Ok(vec![json!({"x": "a", "y": "b"})])
        );
        assert!(parse("a,b\n1\n", "CSV", &json!({}))
            .unwrap_err()
            .contains("row 1 has 1 fields"));
        assert!(parse("x", "XML", &json!({}))
            .unwrap_err()
            .contains("not supported"));
    }
}
