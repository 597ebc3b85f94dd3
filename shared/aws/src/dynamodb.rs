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
use tributary_core::ports::{Condition, PortError, PortResult, StateStore, Versioned};

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
            detail: match condition {
                Condition::Always => "unconditional write refused".into(),
                Condition::NotExists => "item exists".into(),
                Condition::VersionIs(v) => format!("expected version {v}, found another or none"),
            },
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
        let text = value.to_string();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .expression_attribute_names("#value", "value")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":value", s(&text))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":zero", n(0))
            .return_values(ReturnValue::UpdatedNew);
        let mut set =
            "SET #value = :value, #version = if_not_exists(#version, :zero) + :one".to_string();
        match expires_at(&value) {
            Some(t) => {
                set.push_str(", #expires = :expires");
                update = update
                    .expression_attribute_names("#expires", "expires_at")
                    .expression_attribute_values(":expires", n(t));
            }
            None => {
                set.push_str(" REMOVE #expires");
                update = update.expression_attribute_names("#expires", "expires_at");
            }
        }
        update = update.update_expression(set);
        update = match condition {
            Condition::Always => update,
            Condition::NotExists => update.condition_expression("attribute_not_exists(pk)"),
            Condition::VersionIs(v) => update
                .condition_expression("#version = :expected")
                .expression_attribute_values(":expected", n(v)),
        };
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
        let mut delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk));
        delete = match condition {
            Condition::Always => delete,
            Condition::NotExists => delete.condition_expression("attribute_not_exists(pk)"),
            Condition::VersionIs(v) => delete
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", n(v)),
        };
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

    /// One conditional put per item (`attribute_not_exists` or expired),
    /// returning the stored item when the condition fails.
    async fn put_new_items(
        &self,
        pk: &str,
        items: Vec<(String, serde_json::Value)>,
        now_epoch_secs: i64,
    ) -> PortResult<Vec<Option<serde_json::Value>>> {
        let mut found = Vec::with_capacity(items.len());
        for (sk, value) in items {
            let mut put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(pk))
                .item("sk", s(&sk))
                .item("value", s(&value.to_string()))
                .item("version", n(1))
                .condition_expression("attribute_not_exists(pk) OR #expires <= :now")
                .expression_attribute_names("#expires", "expires_at")
                .expression_attribute_values(":now", n(now_epoch_secs))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            if let Some(t) = expires_at(&value) {
                put = put.item("expires_at", n(t));
            }
            match put.send().await {
                Ok(_) => found.push(None),
                Err(e) => {
                    let existing = e
                        .as_service_error()
                        .and_then(|s| match s {
                            aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => {
                                Some(c.item().cloned())
                            }
                            _ => None,
                        });
                    match existing {
                        Some(Some(item)) => found.push(Some(self.decode(pk, &sk, &item)?.value)),
                        // The service did not return the old item: read it.
                        Some(None) => found.push(self.get(pk, &sk).await?.map(|v| v.value)),
                        None => {
                            return Err(port_error(format!("claiming {pk}/{sk}"), &self.table, e))
                        }
                    }
                }
            }
        }
        Ok(found)
    }
}
