//! The catalog on Glue: one table per dataset (or view) in one database,
//! partitioned by `date`. Publishing switches a partition's location with
//! UpdatePartition (CreatePartition the first time), so Athena readers move
//! from one complete run to the next.

use crate::port_error;
use async_trait::async_trait;
use aws_sdk_glue::types::{Column, PartitionInput, StorageDescriptor, TableInput};
use aws_sdk_glue::Client;
use chrono::NaiveDate;
use std::collections::HashMap;
use std::sync::Mutex;
use tributary_core::ports::{Catalog, CatalogPartition, PortError, PortResult};
use tributary_core::table_schema::{TableDefinition, TableFormat};

pub struct GlueCatalog {
    client: Client,
    database: String,
    /// Partition locations are prefixes of this bucket.
    bucket: String,
    /// The tables' storage descriptors, copied into their partitions so
    /// Athena reads each partition with its table's format.
    descriptors: Mutex<HashMap<String, StorageDescriptor>>,
}

impl GlueCatalog {
    pub fn new(config: &aws_config::SdkConfig, database: &str, bucket: &str) -> GlueCatalog {
        GlueCatalog {
            client: Client::new(config),
            database: database.to_string(),
            bucket: bucket.to_string(),
            descriptors: Mutex::new(HashMap::new()),
        }
    }

    fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{}", self.bucket, prefix)
    }

    fn prefix(&self, url: &str) -> String {
        url.strip_prefix(&format!("s3://{}/", self.bucket))
            .unwrap_or(url)
            .to_string()
    }

    /// For tests and bootstrap (Terraform owns them in an account, from the
    /// same definitions): the database and the table, partitioned by
    /// `date`, with its columns and its files' SerDe.
    pub async fn ensure_table(&self, table: &TableDefinition) -> PortResult<()> {
        let database = aws_sdk_glue::types::DatabaseInput::builder()
            .name(&self.database)
            .build()
            .map_err(|e| PortError::permanent("building a database input", "a bug", e))?;
        match self
            .client
            .create_database()
            .database_input(database)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) => {}
            Err(e) => {
                return Err(port_error(
                    format!("creating database {}", self.database),
                    &self.database,
                    e,
                ))
            }
        }
        let date = Column::builder()
            .name("date")
            .r#type("string")
            .build()
            .map_err(|e| PortError::permanent("building a column", "a bug", e))?;
        let column = |name: &str, t: &str| {
            Column::builder()
                .name(name)
                .r#type(t)
                .build()
                .map_err(|e| PortError::permanent("building a column", "a bug", e))
        };
        let columns = table
            .columns
            .iter()
            .map(|(n, t)| column(n, t))
            .collect::<PortResult<Vec<_>>>()?;
        let (input_format, output_format, serde) = match table.format {
            TableFormat::Parquet => (
                "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
            ),
            TableFormat::JsonLines => (
                "org.apache.hadoop.mapred.TextInputFormat",
                "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                "org.openx.data.jsonserde.JsonSerDe",
            ),
        };
        let input = TableInput::builder()
            .name(&table.name)
            .partition_keys(date)
            .storage_descriptor(
                StorageDescriptor::builder()
                    .location(self.url(&format!("{}/{}/", table.layer.prefix(), table.name)))
                    .input_format(input_format)
                    .output_format(output_format)
                    .serde_info(
                        aws_sdk_glue::types::SerDeInfo::builder()
                            .serialization_library(serde)
                            .build(),
                    )
                    .set_columns(Some(columns))
                    .build(),
            )
            .build()
            .map_err(|e| PortError::permanent("building a table input", "a bug", e))?;
        match self
            .client
            .create_table()
            .database_name(&self.database)
            .table_input(input)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(port_error(
                format!("creating table {}", table.name),
                &self.database,
                e,
            )),
        }
    }

    async fn descriptor(&self, table: &str) -> PortResult<StorageDescriptor> {
        if let Some(d) = self
            .descriptors
            .lock()
            .ok()
            .and_then(|d| d.get(table).cloned())
        {
            return Ok(d);
        }
        let out = self
            .client
            .get_table()
            .database_name(&self.database)
            .name(table)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_entity_not_found_exception()) {
                    PortError::permanent(
                        format!("reading Glue table {}.{table}", self.database),
                        format!(
                            "the table does not exist: apply the Terraform in infra/ (it creates one per dataset) or check TRIBUTARY_GLUE_DATABASE={}",
                            self.database
                        ),
                        e,
                    )
                } else {
                    port_error(format!("reading Glue table {table}"), &self.database, e)
                }
            })?;
        let descriptor = out
            .table()
            .and_then(|t| t.storage_descriptor())
            .cloned()
            .unwrap_or_else(|| StorageDescriptor::builder().build());
        if let Ok(mut d) = self.descriptors.lock() {
            d.insert(table.to_string(), descriptor.clone());
        }
        Ok(descriptor)
    }

    async fn input(&self, p: &CatalogPartition) -> PortResult<PartitionInput> {
        let mut descriptor = self.descriptor(&p.table).await?;
        descriptor.location = Some(self.url(&p.location));
        Ok(PartitionInput::builder()
            .values(p.date.to_string())
            .storage_descriptor(descriptor)
            .build())
    }

    fn partition(
        &self,
        table: &str,
        p: &aws_sdk_glue::types::Partition,
    ) -> Option<CatalogPartition> {
        let date = p
            .values()
            .first()
            .and_then(|d| tributary_core::layout::parse_date(d))?;
        Some(CatalogPartition {
            table: table.to_string(),
            date,
            location: self.prefix(
                p.storage_descriptor()
                    .and_then(|s| s.location())
                    .unwrap_or_default(),
            ),
        })
    }
}

#[async_trait]
impl Catalog for GlueCatalog {
    async fn get_partition(
        &self,
        table: &str,
        date: NaiveDate,
    ) -> PortResult<Option<CatalogPartition>> {
        match self
            .client
            .get_partition()
            .database_name(&self.database)
            .table_name(table)
            .partition_values(date.to_string())
            .send()
            .await
        {
            Ok(out) => Ok(out.partition().and_then(|p| self.partition(table, p))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(port_error(
                format!("reading partition {table}/{date}"),
                &self.database,
                e,
            )),
        }
    }

    async fn put_partition(&self, partition: CatalogPartition) -> PortResult<()> {
        let op = || {
            format!(
                "registering partition {}/{}",
                partition.table, partition.date
            )
        };
        let input = self.input(&partition).await?;
        let updated = self
            .client
            .update_partition()
            .database_name(&self.database)
            .table_name(&partition.table)
            .partition_value_list(partition.date.to_string())
            .partition_input(input.clone())
            .send()
            .await;
        match updated {
            Ok(_) => return Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) => {}
            Err(e) => return Err(port_error(op(), &self.database, e)),
        }
        match self
            .client
            .create_partition()
            .database_name(&self.database)
            .table_name(&partition.table)
            .partition_input(input.clone())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Another writer created it between our two calls: switch it.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) =>
            {
                self.client
                    .update_partition()
                    .database_name(&self.database)
                    .table_name(&partition.table)
                    .partition_value_list(partition.date.to_string())
                    .partition_input(input)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| port_error(op(), &self.database, e))
            }
            Err(e) => Err(port_error(op(), &self.database, e)),
        }
    }

    async fn delete_partition(&self, table: &str, date: NaiveDate) -> PortResult<()> {
        match self
            .client
            .delete_partition()
            .database_name(&self.database)
            .table_name(table)
            .partition_values(date.to_string())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(port_error(
                format!("deleting partition {table}/{date}"),
                &self.database,
                e,
            )),
        }
    }

    /// BatchCreatePartition, 100 at a time (Glue's limit); those that
    /// already exist are switched one by one with UpdatePartition.
    async fn put_partitions(&self, partitions: Vec<CatalogPartition>) -> PortResult<()> {
        const GLUE_BATCH: usize = 100;
        let mut by_table: std::collections::BTreeMap<String, Vec<CatalogPartition>> =
            std::collections::BTreeMap::new();
        for p in partitions {
            by_table.entry(p.table.clone()).or_default().push(p);
        }
        for (table, partitions) in by_table {
            for batch in partitions.chunks(GLUE_BATCH) {
                let mut inputs = Vec::with_capacity(batch.len());
                for p in batch {
                    inputs.push(self.input(p).await?);
                }
                let out = self
                    .client
                    .batch_create_partition()
                    .database_name(&self.database)
                    .table_name(&table)
                    .set_partition_input_list(Some(inputs))
                    .send()
                    .await
                    .map_err(|e| {
                        port_error(
                            format!("registering {} partitions of {table}", batch.len()),
                            &self.database,
                            e,
                        )
                    })?;
                let mut failed = Vec::new();
                for error in out.errors() {
                    let value = error
                        .partition_values()
                        .first()
                        .cloned()
                        .unwrap_or_default();
                    let code = error
                        .error_detail()
                        .and_then(|d| d.error_code())
                        .unwrap_or_default();
                    let Some(p) = batch.iter().find(|p| p.date.to_string() == value) else {
                        failed.push(format!("{value}: {code}"));
                        continue;
                    };
                    if code == "AlreadyExistsException" {
                        self.put_partition(p.clone()).await?;
                    } else {
                        let message = error
                            .error_detail()
                            .and_then(|d| d.error_message())
                            .unwrap_or_default();
                        failed.push(format!("{value}: {code} {message}"));
                    }
                }
                if !failed.is_empty() {
                    return Err(PortError::permanent(
                        format!("registering partitions of {table}"),
                        format!("Glue refused {}: {}", failed.len(), failed.join("; ")),
                        "BatchCreatePartition errors",
                    ));
                }
            }
        }
        Ok(())
    }

    async fn list_partitions(&self, table: &str) -> PortResult<Vec<CatalogPartition>> {
        let mut pages = self
            .client
            .get_partitions()
            .database_name(&self.database)
            .table_name(table)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                port_error(format!("listing partitions of {table}"), &self.database, e)
            })?;
            out.extend(
                page.partitions()
                    .iter()
                    .filter_map(|p| self.partition(table, p)),
            );
        }
        out.sort_by_key(|p| p.date);
        Ok(out)
    }
}
