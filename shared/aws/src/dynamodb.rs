//! The state store on DynamoDB: one table, `pk` (S) and `sk` (S) keys,
//! the item's JSON in `value` (S), its optimistic-concurrency `version`
//! (N), and `expires_at` (N, the table's TTL attribute) when the value has
//! one. Conditions are evaluated by DynamoDB with the write, so they hold
//! under any number of concurrent writers, as the local store's lock does.

use crate::port_error;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use tributary_core::ports::{
    check_transaction, Condition, PortError, PortResult, StateStore, TransactWrite, Versioned,
};

pub struct DynamoStateStore {
    client: Client,
    table: String,
}

type Item = HashMap<String, AttributeValue>;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl DynamoStateStore {
    /// The live (unexpired) items among `indices` of `items`, by key, read
    /// consistently; unprocessed keys are asked again.
    async fn live_items<'a>(
        &self,
        items: &'a [(String, String, serde_json::Value)],
        indices: &[usize],
        now_epoch_secs: i64,
    ) -> PortResult<HashMap<(&'a str, &'a str), serde_json::Value>> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let bug = |e| PortError::permanent("building a batch read", "a bug", e);
        let mut keys: Vec<Item> = indices
            .iter()
            .map(|&i| {
                HashMap::from([
                    ("pk".to_string(), s(&items[i].0)),
                    ("sk".to_string(), s(&items[i].1)),
                ])
            })
            .collect();
        let mut live = HashMap::new();
        for _ in 0..8 {
            if keys.is_empty() {
                return Ok(live);
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut keys)))
                .consistent_read(true)
                .build()
                .map_err(bug)?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| {
                    port_error(format!("reading {} claims", indices.len()), &self.table, e)
                })?;
            for item in out
                .responses()
                .and_then(|r| r.get(&self.table))
                .into_iter()
                .flatten()
            {
                let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) =
                    (item.get("pk"), item.get("sk"))
                else {
                    continue;
                };
                let value = self.decode(pk, sk, item)?.value;
                if tributary_core::ports::expired(&value, now_epoch_secs) {
                    continue;
                }
                if let Some(&i) = indices
                    .iter()
                    .find(|&&i| &items[i].0 == pk && &items[i].1 == sk)
                {
                    live.insert((items[i].0.as_str(), items[i].1.as_str()), value);
                }
            }
            keys = out
                .unprocessed_keys()
                .and_then(|u| u.get(&self.table))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
        }
        Err(PortError::transient(
            format!("reading {} claims", indices.len()),
            "DynamoDB left keys unprocessed 8 times",
        ))
    }

    /// Insert every item of `indices` in one transaction, each on condition
    /// that its key is absent or expired. `false`: a condition failed (a
    /// claim made in between) and nothing was written.
    async fn insert_all(
        &self,
        items: &[(String, String, serde_json::Value)],
        indices: &[usize],
        now_epoch_secs: i64,
    ) -> PortResult<bool> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
        let bug = |e| PortError::permanent("building a claim transaction", "a bug", e);
        let mut writes = Vec::with_capacity(indices.len());
        for &i in indices {
            let (pk, sk, value) = &items[i];
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(claim_item(pk, sk, value)))
                .condition_expression(CLAIM_CONDITION)
                .expression_attribute_names("#expires", "expires_at")
                .expression_attribute_values(":now", n(now_epoch_secs));
            writes.push(
                TransactWriteItem::builder()
                    .put(put.build().map_err(bug)?)
                    .build(),
            );
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c))
                    if c.cancellation_reasons()
                        .iter()
                        .any(|r| r.code() == Some("ConditionalCheckFailed")) =>
                {
                    Ok(false)
                }
                _ => Err(port_error(
                    format!("claiming {} items", indices.len()),
                    &self.table,
                    e,
                )),
            },
        }
    }

    /// One conditional claim, returning the stored item when it is held.
    async fn put_new_item(
        &self,
        pk: &str,
        sk: &str,
        value: &serde_json::Value,
        now_epoch_secs: i64,
    ) -> PortResult<Option<serde_json::Value>> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(claim_item(pk, sk, value)))
            .condition_expression(CLAIM_CONDITION)
            .expression_attribute_names("#expires", "expires_at")
            .expression_attribute_values(":now", n(now_epoch_secs))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match put.send().await {
            Ok(_) => Ok(None),
            Err(e) => {
                let existing = e.as_service_error().and_then(|s| match s {
                    aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => {
                        Some(c.item().cloned())
                    }
                    _ => None,
                });
                match existing {
                    Some(Some(item)) => Ok(Some(self.decode(pk, sk, &item)?.value)),
                    // The service did not return the old item: read it.
                    Some(None) => Ok(self.get(pk, sk).await?.map(|v| v.value)),
                    None => Err(port_error(format!("claiming {pk}/{sk}"), &self.table, e)),
                }
            }
        }
    }

    pub fn new(config: &aws_config::SdkConfig, table: &str) -> DynamoStateStore {
        DynamoStateStore {
            client: Client::new(config),
            table: table.to_string(),
        }
    }

    /// For tests and bootstrap: create the table (pay per request) if it is
    /// not there. Terraform owns it in an account.
    pub async fn ensure_table(&self) -> PortResult<()> {
        let result = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("pk")?)
            .attribute_definitions(attribute("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(port_error(
                format!("creating table {}", self.table),
                &self.table,
                e,
            )),
        }
    }

    fn decode(&self, pk: &str, sk: &str, item: &Item) -> PortResult<Versioned> {
        let bad = |what: &str| {
            PortError::permanent(
                format!("reading {}/{pk}/{sk}", self.table),
                format!("the item's {what} is missing or malformed; was it written by tributary?"),
                "malformed item",
            )
        };
        let value = match item.get("value") {
            Some(AttributeValue::S(text)) => {
                serde_json::from_str(text).map_err(|_| bad("value"))?
            }
            _ => return Err(bad("value")),
        };
        let version = match item.get("version") {
            Some(AttributeValue::N(v)) => v.parse().map_err(|_| bad("version"))?,
            _ => return Err(bad("version")),
        };
        Ok(Versioned { value, version })
    }

    fn condition_failed(pk: &str, sk: &str, condition: Condition) -> PortError {
        PortError::ConditionFailed {
            what: format!("{pk}/{sk}"),
            detail: condition_detail(condition),
        }
    }
}

fn attribute(name: &str) -> PortResult<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| PortError::permanent("building the table definition", "a bug", e))
}

fn key(name: &str, kind: KeyType) -> PortResult<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| PortError::permanent("building the table definition", "a bug", e))
}

fn expires_at(value: &serde_json::Value) -> Option<i64> {
    value.get("expires_at").and_then(serde_json::Value::as_i64)
}

/// A claim is inserted only where no live one is: absent, or its TTL passed
/// (DynamoDB's TTL sweep runs late).
const CLAIM_CONDITION: &str = "attribute_not_exists(pk) OR #expires <= :now";

/// A claim as stored, with its TTL attribute when the value has one.
fn claim_item(pk: &str, sk: &str, value: &serde_json::Value) -> Item {
    let mut item = HashMap::from([
        ("pk".to_string(), s(pk)),
        ("sk".to_string(), s(sk)),
        ("value".to_string(), s(&value.to_string())),
        ("version".to_string(), n(1)),
    ]);
    if let Some(t) = expires_at(value) {
        item.insert("expires_at".to_string(), n(t));
    }
    item
}

fn condition_detail(condition: Condition) -> String {
    match condition {
        Condition::Always => "unconditional write refused".into(),
        Condition::NotExists => "item exists".into(),
        Condition::VersionIs(v) => format!("expected version {v}, found another or none"),
    }
}

/// The expression parts of one conditional write, shared by UpdateItem,
/// DeleteItem and the same operations inside a transaction.
#[derive(Default)]
struct WriteExpression {
    update: Option<String>,
    condition: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl WriteExpression {
    /// Store the value and bump the version; set or clear the TTL.
    fn put(value: &serde_json::Value, condition: Condition) -> WriteExpression {
        let mut e = WriteExpression::default();
        e.name("#value", "value").name("#version", "version");
        e.values.insert(":value".into(), s(&value.to_string()));
        e.values.insert(":one".into(), n(1));
        e.values.insert(":zero".into(), n(0));
        let mut set =
            "SET #value = :value, #version = if_not_exists(#version, :zero) + :one".to_string();
        e.name("#expires", "expires_at");
        match expires_at(value) {
            Some(t) => {
                set.push_str(", #expires = :expires");
                e.values.insert(":expires".into(), n(t));
            }
            None => set.push_str(" REMOVE #expires"),
        }
        e.update = Some(set);
        e.condition(condition);
        e
    }

    fn delete(condition: Condition) -> WriteExpression {
        let mut e = WriteExpression::default();
        e.condition(condition);
        e
    }

    fn name(&mut self, placeholder: &str, attribute: &str) -> &mut Self {
        self.names.insert(placeholder.into(), attribute.into());
        self
    }

    fn condition(&mut self, condition: Condition) {
        match condition {
            Condition::Always => {}
            Condition::NotExists => self.condition = Some("attribute_not_exists(pk)".into()),
            Condition::VersionIs(v) => {
                self.name("#version", "version");
                self.values.insert(":expected".into(), n(v));
                self.condition = Some("#version = :expected".into());
            }
        }
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

#[async_trait]
impl StateStore for DynamoStateStore {
    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Versioned>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(format!("reading {pk}/{sk}"), &self.table, e))?;
        out.item().map(|i| self.decode(pk, sk, i)).transpose()
    }

    async fn put(
        &self,
        pk: &str,
        sk: &str,
        value: serde_json::Value,
        condition: Condition,
    ) -> PortResult<u64> {
        let expression = WriteExpression::put(&value, condition);
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .set_update_expression(expression.update.clone())
            .set_condition_expression(expression.condition.clone())
            .set_expression_attribute_names(expression.names())
            .set_expression_attribute_values(expression.values())
            .return_values(ReturnValue::UpdatedNew);
        let out = update.send().await.map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception())
            {
                Self::condition_failed(pk, sk, condition)
            } else {
                port_error(format!("writing {pk}/{sk}"), &self.table, e)
            }
        })?;
        match out.attributes().and_then(|a| a.get("version")) {
            Some(AttributeValue::N(v)) => v.parse().map_err(|e| {
                PortError::permanent(
                    format!("writing {pk}/{sk}"),
                    "the version came back malformed",
                    e,
                )
            }),
            _ => Err(PortError::permanent(
                format!("writing {pk}/{sk}"),
                "DynamoDB returned no version",
                "missing attribute",
            )),
        }
    }

    async fn delete(&self, pk: &str, sk: &str, condition: Condition) -> PortResult<()> {
        let expression = WriteExpression::delete(condition);
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .set_condition_expression(expression.condition.clone())
            .set_expression_attribute_names(expression.names())
            .set_expression_attribute_values(expression.values());
        delete.send().await.map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception())
            {
                Self::condition_failed(pk, sk, condition)
            } else {
                port_error(format!("deleting {pk}/{sk}"), &self.table, e)
            }
        })?;
        Ok(())
    }

    async fn transact(&self, writes: Vec<TransactWrite>) -> PortResult<()> {
        use aws_sdk_dynamodb::types::{Delete, TransactWriteItem, Update};
        check_transaction(&writes)?;
        let bug = |e| PortError::permanent("building a transaction", "a bug", e);
        let mut items = Vec::with_capacity(writes.len());
        for w in &writes {
            let key = HashMap::from([("pk".to_string(), s(&w.pk)), ("sk".to_string(), s(&w.sk))]);
            let item = match &w.value {
                Some(value) => {
                    let e = WriteExpression::put(value, w.condition);
                    let update = Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(key))
                        .set_update_expression(e.update.clone())
                        .set_condition_expression(e.condition.clone())
                        .set_expression_attribute_names(e.names())
                        .set_expression_attribute_values(e.values())
                        .build()
                        .map_err(bug)?;
                    TransactWriteItem::builder().update(update).build()
                }
                None => {
                    let e = WriteExpression::delete(w.condition);
                    let delete = Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key))
                        .set_condition_expression(e.condition.clone())
                        .set_expression_attribute_names(e.names())
                        .set_expression_attribute_values(e.values())
                        .build()
                        .map_err(bug)?;
                    TransactWriteItem::builder().delete(delete).build()
                }
            };
            items.push(item);
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let Err(e) = result else {
            return Ok(());
        };
        // Cancelled: the reasons line up with the writes. A failed
        // condition is named; a conflict with another transaction is worth
        // retrying.
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        let operation = format!("a transaction of {} writes", writes.len());
        match e.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                let failed = c
                    .cancellation_reasons()
                    .iter()
                    .position(|r| r.code() == Some("ConditionalCheckFailed"));
                match failed.and_then(|i| writes.get(i).map(|w| (i, w))) {
                    Some((i, w)) => Err(PortError::ConditionFailed {
                        what: format!("{}/{}", w.pk, w.sk),
                        detail: format!(
                            "{} (write {i} of the transaction; nothing was written)",
                            condition_detail(w.condition)
                        ),
                    }),
                    None => Err(PortError::transient(operation, e)),
                }
            }
            _ => Err(port_error(operation, &self.table, e)),
        }
    }

    async fn query(&self, pk: &str) -> PortResult<Vec<(String, Versioned)>> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(true)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| port_error(format!("querying {pk}"), &self.table, e))?;
            for item in page.items() {
                let sk = match item.get("sk") {
                    Some(AttributeValue::S(sk)) => sk.clone(),
                    _ => continue,
                };
                out.push((sk.clone(), self.decode(pk, &sk, item)?));
            }
        }
        // DynamoDB orders sort keys by UTF-8 bytes, as the local store does.
        Ok(out)
    }

    /// A batch of claims in two requests per 100 items: one BatchGetItem
    /// finds the live ones, one TransactWriteItems inserts the rest, each
    /// under `attribute_not_exists` or expired. A transaction cancelled by
    /// a claim another writer made in between writes nothing; that chunk
    /// then goes item by item.
    async fn put_new_items(
        &self,
        items: Vec<(String, String, serde_json::Value)>,
        now_epoch_secs: i64,
    ) -> PortResult<Vec<Option<serde_json::Value>>> {
        let mut found: Vec<Option<serde_json::Value>> = vec![None; items.len()];
        // A key claimed earlier in the same call answers later repeats.
        let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
        let mut unique = Vec::with_capacity(items.len());
        for (i, (pk, sk, _)) in items.iter().enumerate() {
            match first_of.get(&(pk.as_str(), sk.as_str())) {
                Some(&first) => found[i] = Some(items[first].2.clone()),
                None => {
                    first_of.insert((pk, sk), i);
                    unique.push(i);
                }
            }
        }
        for chunk in unique.chunks(100) {
            let live = self.live_items(&items, chunk, now_epoch_secs).await?;
            let mut absent = Vec::with_capacity(chunk.len());
            for &i in chunk {
                match live.get(&(items[i].0.as_str(), items[i].1.as_str())) {
                    Some(value) => found[i] = Some(value.clone()),
                    None => absent.push(i),
                }
            }
            if absent.is_empty() || self.insert_all(&items, &absent, now_epoch_secs).await? {
                continue;
            }
            for &i in &absent {
                let (pk, sk, value) = &items[i];
                found[i] = self.put_new_item(pk, sk, value, now_epoch_secs).await?;
            }
        }
        // Repeats whose first occurrence was already held answer with it.
        for i in 0..items.len() {
            let first = first_of[&(items[i].0.as_str(), items[i].1.as_str())];
            if first != i && found[first].is_some() {
                found[i] = found[first].clone();
            }
        }
        Ok(found)
    }
}
