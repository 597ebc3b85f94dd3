//! Secrets read once at cold start from Secrets Manager.

use crate::port_error;
use aws_sdk_secretsmanager::Client;
use tributary_core::ports::{PortError, PortResult};

/// The current string value of a secret.
pub async fn secret_string(config: &aws_config::SdkConfig, arn: &str) -> PortResult<String> {
    let out = Client::new(config)
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| port_error(format!("reading secret {arn}"), arn, e))?;
    match out.secret_string() {
        Some(value) if !value.is_empty() => Ok(value.to_string()),
        _ => Err(PortError::permanent(
            format!("reading secret {arn}"),
            "the secret has no string value: store the signing key as a string",
            "empty secret",
        )),
    }
}
