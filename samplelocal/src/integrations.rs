//! The Step Functions service integrations our state machines use, served
//! locally from the workspace: `dynamodb:getItem|putItem|updateItem|
//! deleteItem` on the state store, `sns:publish` into an outbox (and on
//! stderr, so a person sees approval links), and S3 reads for a Map's
//! ItemReader from the workspace bucket.
//!
//! DynamoDB items keep their attribute-value JSON (`{"S": …}`, `{"N": …}`);
//! tables are keyed by the attributes `pk` and, optionally, `sk` — the
//! single-table design the Terraform tables use (infra/modules/tributary/state.tf).

use serde_json::{json, Map, Value};
use tributary_asl::{Failure, TaskOutcome};
use tributary_core::ports::{Condition, ObjectStore, PortError, StateStore};

pub struct LocalServices<'a> {
    pub state: &'a dyn StateStore,
    pub objects: &'a dyn ObjectStore,
    pub runtime: &'a tokio::runtime::Runtime,
}

fn port_failure(e: PortError) -> Failure {
    let name = match &e {
        PortError::Transient { .. } => "DynamoDB.InternalServerErrorException",
        PortError::ConditionFailed { .. } => "DynamoDB.ConditionalCheckFailedException",
        _ => "DynamoDB.AmazonDynamoDBException",
    };
    Failure::new(name, e.to_string())
}

impl LocalServices<'_> {
    /// `None` when the resource is not an integration served here.
    pub fn call(&self, resource: &str, payload: &Value) -> Option<TaskOutcome> {
        let action = resource.strip_prefix("arn:aws:states:::")?;
        let outcome = match action {
            "dynamodb:getItem" => self.dynamodb(payload, Op::Get),
            "dynamodb:putItem" => self.dynamodb(payload, Op::Put),
            "dynamodb:updateItem" => self.dynamodb(payload, Op::Update),
            "dynamodb:deleteItem" => self.dynamodb(payload, Op::Delete),
            "sns:publish" => self.sns_publish(payload),
            _ => return None,
        };
        Some(match outcome {
            Ok(v) => TaskOutcome::ok(v),
            Err(f) => TaskOutcome {
                result: Err(f),
                elapsed_ms: 0,
            },
        })
    }

    fn sns_publish(&self, payload: &Value) -> Result<Value, Failure> {
        let topic = payload
            .get("TopicArn")
            .or_else(|| payload.get("TargetArn"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| {
                Failure::new(
                    "SNS.InvalidParameterException",
                    "sns:publish needs TopicArn",
                )
            })?;
        let message = match payload.get("Message") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => {
                return Err(Failure::new(
                    "SNS.InvalidParameterException",
                    "sns:publish needs Message",
                ))
            }
        };
        let now = chrono::Utc::now();
        let id = format!(
            "{}-{:08x}",
            now.timestamp_micros(),
            xxhash_rust::xxh3::xxh3_64(message.as_bytes()) as u32
        );
        let record = json!({"TopicArn": topic, "Subject": payload.get("Subject"), "Message": message, "Timestamp": now.to_rfc3339()});
        self.runtime
            .block_on(
                self.state
                    .put(&format!("sns#{topic}"), &id, record, Condition::NotExists),
            )
            .map_err(|e| Failure::new("SNS.InternalErrorException", e.to_string()))?;
        eprintln!("sns {topic}: {message}");
        Ok(json!({"MessageId": id}))
    }

    fn dynamodb(&self, p: &Value, op: Op) -> Result<Value, Failure> {
        let bad = |m: String| Failure::new("DynamoDB.ValidationException", m);
        let table = p
            .get("TableName")
            .and_then(|t| t.as_str())
            .ok_or_else(|| bad("TableName is missing".into()))?;
        let key_source = match op {
            Op::Put => p.get("Item"),
            _ => p.get("Key"),
        };
        let key_source = key_source.and_then(|k| k.as_object()).ok_or_else(|| {
            bad(format!(
                "{} is missing",
                if op == Op::Put { "Item" } else { "Key" }
            ))
        })?;
        let pk = format!(
            "ddb#{table}#{}",
            key_part(key_source, "pk")
                .ok_or_else(|| bad("the key attribute pk (S or N) is missing".into()))?
        );
        let sk = key_part(key_source, "sk").unwrap_or_default();
        let names = p
            .get("ExpressionAttributeNames")
            .and_then(|n| n.as_object())
            .cloned()
            .unwrap_or_default();
        let values = p
            .get("ExpressionAttributeValues")
            .and_then(|n| n.as_object())
            .cloned()
            .unwrap_or_default();
        let expr = Expr {
            names: &names,
            values: &values,
        };
        for _ in 0..10 {
            let current = self
                .runtime
                .block_on(self.state.get(&pk, &sk))
                .map_err(port_failure)?;
            let item = current.as_ref().map(|v| v.value.clone());
            if op == Op::Get {
                return Ok(match item {
                    Some(i) => json!({"Item": i}),
                    None => json!({}),
                });
            }
            if let Some(cond) = p.get("ConditionExpression").and_then(|c| c.as_str()) {
                if !expr.condition(cond, item.as_ref()).map_err(bad)? {
                    return Err(Failure::new(
                        "DynamoDB.ConditionalCheckFailedException",
                        format!("The conditional request failed ({cond})"),
                    ));
                }
            }
            let write_condition = match &current {
                Some(v) => Condition::VersionIs(v.version),
                None => Condition::NotExists,
            };
            let result = match op {
                Op::Put => {
                    let item = p.get("Item").cloned().unwrap_or_default();
                    self.runtime
                        .block_on(self.state.put(&pk, &sk, item, write_condition))
                        .map(|_| json!({}))
                }
                Op::Delete => match &current {
                    Some(_) => self
                        .runtime
                        .block_on(self.state.delete(&pk, &sk, write_condition))
                        .map(|_| json!({})),
                    None => return Ok(json!({})),
                },
                Op::Update => {
                    let update = p
                        .get("UpdateExpression")
                        .and_then(|u| u.as_str())
                        .ok_or_else(|| bad("UpdateExpression is missing".into()))?;
                    let mut new_item = item
                        .clone()
                        .unwrap_or_else(|| Value::Object(key_source.clone()));
                    expr.update(update, &mut new_item).map_err(bad)?;
                    let returned = match p.get("ReturnValues").and_then(|r| r.as_str()) {
                        Some("ALL_NEW") | Some("UPDATED_NEW") => json!({"Attributes": new_item}),
                        Some("ALL_OLD") | Some("UPDATED_OLD") => {
                            item.map(|i| json!({"Attributes": i})).unwrap_or(json!({}))
                        }
                        _ => json!({}),
                    };
                    self.runtime
                        .block_on(self.state.put(&pk, &sk, new_item, write_condition))
                        .map(|_| returned)
                }
                Op::Get => unreachable!("returned above"),
            };
            match result {
                Ok(v) => return Ok(v),
                // Another writer got in between: read again and re-check.
                Err(PortError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(port_failure(e)),
            }
        }
        Err(Failure::new(
            "DynamoDB.TransactionConflictException",
            format!("{table}: too many concurrent writers on one item"),
        ))
    }

    /// S3 ListObjectsV2 on the workspace bucket (the one local bucket
    /// stands in for every bucket name).
    pub fn list_objects(&self, prefix: &str) -> Result<Vec<Value>, Failure> {
        let objects = self
            .runtime
            .block_on(self.objects.list(prefix))
            .map_err(|e| Failure::new(tributary_asl::errors::ITEM_READER_FAILED, e.to_string()))?;
        Ok(objects
            .into_iter()
            .map(|o| {
                json!({"Key": o.key, "Size": o.size, "ETag": format!("\"{}\"", o.etag),
                       "LastModified": o.last_modified.to_rfc3339(), "StorageClass": "STANDARD"})
            })
            .collect())
    }

    pub fn get_object(&self, key: &str) -> Result<String, Failure> {
        let bytes = self
            .runtime
            .block_on(self.objects.get_bytes(key))
            .map_err(|e| Failure::new(tributary_asl::errors::ITEM_READER_FAILED, e.to_string()))?;
        String::from_utf8(bytes).map_err(|_| {
            Failure::new(
                tributary_asl::errors::ITEM_READER_FAILED,
                format!("{key} is not UTF-8 text"),
            )
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Get,
    Put,
    Update,
    Delete,
}

fn key_part(item: &Map<String, Value>, name: &str) -> Option<String> {
    let attr = item.get(name)?;
    attr.get("S")
        .or_else(|| attr.get("N"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

struct Expr<'a> {
    names: &'a Map<String, Value>,
    values: &'a Map<String, Value>,
}

impl Expr<'_> {
    fn name(&self, token: &str) -> Result<String, String> {
        let token = token.trim();
        if token.starts_with('#') {
            self.names
                .get(token)
                .and_then(|n| n.as_str())
                .map(str::to_string)
                .ok_or_else(|| format!("{token} is not in ExpressionAttributeNames"))
        } else if token.is_empty() || token.contains(['.', '[']) {
            Err(format!(
                "attribute '{token}': only top-level attribute names are supported locally"
            ))
        } else {
            Ok(token.to_string())
        }
    }

    fn value(&self, token: &str) -> Result<Value, String> {
        let token = token.trim();
        self.values
            .get(token)
            .cloned()
            .ok_or_else(|| format!("{token} is not in ExpressionAttributeValues"))
    }

    /// attribute_exists(a), attribute_not_exists(a), a = :v, a <> :v,
    /// a < :v, <=, >, >=, joined by AND / OR (AND binds tighter).
    fn condition(&self, text: &str, item: Option<&Value>) -> Result<bool, String> {
        for alternative in split_keyword(text, "OR") {
            let mut all = true;
            for part in split_keyword(&alternative, "AND") {
                if !self.atom(part.trim(), item)? {
                    all = false;
                    break;
                }
            }
            if all {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn atom(&self, text: &str, item: Option<&Value>) -> Result<bool, String> {
        let attr = |name: &str| item.and_then(|i| i.get(name)).cloned();
        for (func, want) in [
            ("attribute_not_exists(", false),
            ("attribute_exists(", true),
        ] {
            if let Some(rest) = text.strip_prefix(func) {
                let name = self.name(
                    rest.strip_suffix(')')
                        .ok_or_else(|| format!("missing ')' in {text}"))?,
                )?;
                return Ok(attr(&name).is_some() == want);
            }
        }
        for op in ["<>", "<=", ">=", "=", "<", ">"] {
            if let Some((l, r)) = text.split_once(op) {
                let left = attr(&self.name(l)?);
                let right = self.value(r)?;
                let ord = left.as_ref().and_then(|l| compare(l, &right));
                return Ok(match op {
                    "=" => left.as_ref() == Some(&right),
                    "<>" => left.as_ref() != Some(&right),
                    "<" => ord == Some(std::cmp::Ordering::Less),
                    "<=" => matches!(
                        ord,
                        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
                    ),
                    ">" => ord == Some(std::cmp::Ordering::Greater),
                    _ => matches!(
                        ord,
                        Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
                    ),
                });
            }
        }
        Err(format!("condition '{text}' is not supported locally"))
    }

    /// SET a = :v, b = if_not_exists(b, :z), c = c + :n; REMOVE x; ADD n :inc
    fn update(&self, text: &str, item: &mut Value) -> Result<(), String> {
        let Some(map) = item.as_object_mut() else {
            return Err("the item is not an object".into());
        };
        for (keyword, body) in clauses(text)? {
            for action in split_top_level_commas(&body) {
                let action = action.trim();
                match keyword.as_str() {
                    "SET" => {
                        let (lhs, rhs) = action
                            .split_once('=')
                            .ok_or_else(|| format!("SET action '{action}' has no '='"))?;
                        let name = self.name(lhs)?;
                        let value = self.operand(rhs.trim(), map)?;
                        map.insert(name, value);
                    }
                    "REMOVE" => {
                        map.remove(&self.name(action)?);
                    }
                    "ADD" => {
                        let (lhs, rhs) =
                            action
                                .trim()
                                .split_once(char::is_whitespace)
                                .ok_or_else(|| {
                                    format!("ADD action '{action}' needs a name and a value")
                                })?;
                        let name = self.name(lhs)?;
                        let add = self.value(rhs)?;
                        let sum = match map.get(&name) {
                            Some(current) => arithmetic(current, &add, 1)?,
                            None => add,
                        };
                        map.insert(name, sum);
                    }
                    other => return Err(format!("{other} clauses are not supported locally")),
                }
            }
        }
        Ok(())
    }

    fn operand(&self, text: &str, item: &Map<String, Value>) -> Result<Value, String> {
        if let Some(inner) = text
            .strip_prefix("if_not_exists(")
            .and_then(|r| r.strip_suffix(')'))
        {
            let (name, default) = inner.split_once(',').ok_or("if_not_exists(name, :value)")?;
            return match item.get(&self.name(name)?) {
                Some(v) => Ok(v.clone()),
                None => self.value(default),
            };
        }
        for (op, sign) in [(" + ", 1), (" - ", -1)] {
            if let Some((l, r)) = text.split_once(op) {
                let left = self.operand(l.trim(), item)?;
                let right = self.operand(r.trim(), item)?;
                return arithmetic(&left, &right, sign);
            }
        }
        if text.starts_with(':') {
            self.value(text)
        } else {
            item.get(&self.name(text)?)
                .cloned()
                .ok_or_else(|| format!("attribute {text} does not exist"))
        }
    }
}

fn number(v: &Value) -> Option<&str> {
    v.get("N").and_then(|n| n.as_str())
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.parse::<f64>().ok()?.partial_cmp(&y.parse::<f64>().ok()?),
        _ => Some(a.get("S")?.as_str()?.cmp(b.get("S")?.as_str()?)),
    }
}

fn arithmetic(a: &Value, b: &Value, sign: i64) -> Result<Value, String> {
    let (Some(x), Some(y)) = (number(a), number(b)) else {
        return Err("arithmetic needs numbers ({\"N\": …})".into());
    };
    let text = match (x.parse::<i128>(), y.parse::<i128>()) {
        (Ok(x), Ok(y)) => (x + i128::from(sign) * y).to_string(),
        _ => {
            let (x, y) = (
                x.parse::<f64>().map_err(|e| e.to_string())?,
                y.parse::<f64>().map_err(|e| e.to_string())?,
            );
            (x + sign as f64 * y).to_string()
        }
    };
    Ok(json!({"N": text}))
}

/// Split on a keyword surrounded by whitespace (case-insensitive).
fn split_keyword(text: &str, keyword: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    for word in text.split_whitespace() {
        if word.eq_ignore_ascii_case(keyword) {
            parts.push(String::new());
        } else {
            let last = parts.last_mut().expect("never empty");
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    parts
}

/// "SET a = :a, b = :b REMOVE c" → [("SET", "a = :a, b = :b"), ("REMOVE", "c")]
fn clauses(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for word in text.split_whitespace() {
        let upper = word.to_ascii_uppercase();
        if ["SET", "REMOVE", "ADD", "DELETE"].contains(&upper.as_str()) {
            out.push((upper, String::new()));
        } else {
            let (_, body) = out.last_mut().ok_or_else(|| {
                format!("UpdateExpression must start with SET, REMOVE or ADD: '{text}'")
            })?;
            if !body.is_empty() {
                body.push(' ');
            }
            body.push_str(word);
        }
    }
    Ok(out)
}

fn split_top_level_commas(text: &str) -> Vec<String> {
    let (mut parts, mut depth, mut current) = (Vec::new(), 0i32, String::new());
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_local::Workspace;

    fn with_services(f: impl FnOnce(&LocalServices<'_>)) {
        let dir = tempfile::tempdir().unwrap();
        let adapters = Workspace::new(dir.path()).adapters();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        f(&LocalServices {
            state: &adapters.state,
            objects: &adapters.objects,
            runtime: &runtime,
        });
    }

    fn ok(o: Option<TaskOutcome>) -> Value {
        o.expect("an integration").result.expect("succeeds")
    }

    fn err(o: Option<TaskOutcome>) -> String {
        o.expect("an integration").result.expect_err("fails").error
    }

    #[test]
    fn dynamodb_put_get_update_delete_with_conditions() {
        with_services(|s| {
            let key = json!({"pk": {"S": "approval#1"}});
            let put = json!({"TableName": "state", "Item": {"pk": {"S": "approval#1"}, "status": {"S": "pending"}, "n": {"N": "1"}},
                             "ConditionExpression": "attribute_not_exists(pk)"});
            ok(s.call("arn:aws:states:::dynamodb:putItem", &put));
            assert_eq!(
                err(s.call("arn:aws:states:::dynamodb:putItem", &put)),
                "DynamoDB.ConditionalCheckFailedException"
            );
            let got = ok(s.call(
                "arn:aws:states:::dynamodb:getItem",
                &json!({"TableName": "state", "Key": key}),
            ));
            assert_eq!(got["Item"]["status"], json!({"S": "pending"}));
            let update = json!({"TableName": "state", "Key": key,
                "UpdateExpression": "SET #s = :done, decided_by = if_not_exists(decided_by, :who), n = n + :one ADD hits :one REMOVE nothing",
                "ConditionExpression": "#s = :pending", "ReturnValues": "ALL_NEW",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":done": {"S": "approved"}, ":pending": {"S": "pending"}, ":who": {"S": "ana"}, ":one": {"N": "1"}}});
            let new = ok(s.call("arn:aws:states:::dynamodb:updateItem", &update));
            assert_eq!(new["Attributes"]["status"], json!({"S": "approved"}));
            assert_eq!(new["Attributes"]["n"], json!({"N": "2"}));
            assert_eq!(new["Attributes"]["hits"], json!({"N": "1"}));
            assert_eq!(new["Attributes"]["decided_by"], json!({"S": "ana"}));
            // Deciding twice fails the condition: only one approver wins.
            assert_eq!(
                err(s.call("arn:aws:states:::dynamodb:updateItem", &update)),
                "DynamoDB.ConditionalCheckFailedException"
            );
            ok(s.call(
                "arn:aws:states:::dynamodb:deleteItem",
                &json!({"TableName": "state", "Key": key}),
            ));
            let gone = ok(s.call(
                "arn:aws:states:::dynamodb:getItem",
                &json!({"TableName": "state", "Key": key}),
            ));
            assert_eq!(gone, json!({}));
            assert_eq!(
                err(s.call(
                    "arn:aws:states:::dynamodb:getItem",
                    &json!({"TableName": "state", "Key": {"id": {"S": "x"}}})
                )),
                "DynamoDB.ValidationException"
            );
            assert!(s
                .call("arn:aws:states:::glue:startJobRun", &json!({}))
                .is_none());
        });
    }

    #[test]
    fn sns_publish_lands_in_the_outbox() {
        with_services(|s| {
            let out = ok(s.call("arn:aws:states:::sns:publish", &json!({"TopicArn": "arn:aws:sns:us-east-1:1:approvals", "Message": {"approve": "https://x"}})));
            assert!(out["MessageId"].is_string());
            let items = s
                .runtime
                .block_on(s.state.query("sns#arn:aws:sns:us-east-1:1:approvals"))
                .unwrap();
            assert_eq!(items.len(), 1);
            assert_eq!(
                items[0].1.value["Message"],
                json!("{\"approve\":\"https://x\"}")
            );
            assert_eq!(
                err(s.call("arn:aws:states:::sns:publish", &json!({"Message": "x"}))),
                "SNS.InvalidParameterException"
            );
        });
    }
}
