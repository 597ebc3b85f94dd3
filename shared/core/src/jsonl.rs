//! JSON-lines objects in the bucket: labels, features and their stages.

use crate::error::{UseCaseError, UseCaseResult};
use crate::ports::{ObjectStore, PortError};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Write `items` as one JSON object per line, in one put.
pub async fn put<T: Serialize>(
    objects: &dyn ObjectStore,
    key: &str,
    items: &[T],
) -> UseCaseResult<()> {
    let mut body = Vec::new();
    for item in items {
        serde_json::to_writer(&mut body, item)
            .map_err(|e| PortError::permanent(format!("encoding {key}"), "a bug", e))?;
        body.push(b'\n');
    }
    objects.put_bytes(key, body).await?;
    Ok(())
}

/// Every line of a JSON-lines object; `None` when there is no such object.
/// A line that does not parse is an error naming the object and line.
pub async fn get<T: DeserializeOwned>(
    objects: &dyn ObjectStore,
    key: &str,
) -> UseCaseResult<Option<Vec<T>>> {
    let bytes = match objects.get_bytes(key).await {
        Ok(b) => b,
        Err(PortError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    String::from_utf8_lossy(&bytes)
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l)
                .map_err(|e| UseCaseError::BadRequest(format!("{key} line {}: {e}", n + 1)))
        })
        .collect::<UseCaseResult<Vec<T>>>()
        .map(Some)
}

/// One pretty JSON document.
pub async fn put_json<T: Serialize>(
    objects: &dyn ObjectStore,
    key: &str,
    value: &T,
) -> UseCaseResult<()> {
    let body = serde_json::to_vec_pretty(value)
        .map_err(|e| PortError::permanent(format!("encoding {key}"), "a bug", e))?;
    objects.put_bytes(key, body).await?;
    Ok(())
}
