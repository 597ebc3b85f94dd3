//! The local Glue catalog: a table per dataset, kept in a state store so it
//! shares its atomicity and multi-process safety.

use async_trait::async_trait;
use chrono::NaiveDate;
use tributary_core::ports::{
    Catalog, CatalogPartition, Condition, PortError, PortResult, StateStore,
};

use crate::FileStateStore;

pub struct FileCatalog {
    store: FileStateStore,
}

impl FileCatalog {
    pub fn new(store: FileStateStore) -> FileCatalog {
        FileCatalog { store }
    }
}

fn decode(v: serde_json::Value) -> PortResult<CatalogPartition> {
    serde_json::from_value(v)
        .map_err(|e| PortError::permanent("reading catalog", "catalog file is corrupt", e))
}

#[async_trait]
impl Catalog for FileCatalog {
    async fn get_partition(
        &self,
        table: &str,
        date: NaiveDate,
    ) -> PortResult<Option<CatalogPartition>> {
        self.store
            .get(table, &date.to_string())
            .await?
            .map(|v| decode(v.value))
            .transpose()
    }

    async fn put_partition(&self, partition: CatalogPartition) -> PortResult<()> {
        let value = serde_json::to_value(&partition)
            .map_err(|e| PortError::permanent("catalog", "a bug", e))?;
        self.store
            .put(
                &partition.table,
                &partition.date.to_string(),
                value,
                Condition::Always,
            )
            .await
            .map(|_| ())
    }

    async fn delete_partition(&self, table: &str, date: NaiveDate) -> PortResult<()> {
        self.store
            .delete(table, &date.to_string(), Condition::Always)
            .await
    }

    async fn list_partitions(&self, table: &str) -> PortResult<Vec<CatalogPartition>> {
        self.store
            .query(table)
            .await?
            .into_iter()
            .map(|(_, v)| decode(v.value))
            .collect()
    }
}
