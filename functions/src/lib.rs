//! Wiring shared by the Lambda binaries: configuration read once at cold
//! start, adapters built from it, and the Lambda runtime loop around a
//! handler from `tributary-handlers`.
//!
//! Backends: `TRIBUTARY_BACKEND=local` wires the embedded adapters on a
//! workspace folder (for `cargo lambda watch` on a laptop). The AWS adapters
//! (S3, DynamoDB, Glue, Step Functions) arrive with `shared/aws`; until then
//! any other backend fails fast at cold start, saying so.

use anyhow::{bail, Context, Result};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;
use std::sync::Arc;
use tributary_core::config::Config;
use tributary_core::usecases::Services;
use tributary_local::{LocalAdapters, Workspace};

/// Everything a handler needs, built once per cold start.
pub struct Runtime {
    config: Config,
    adapters: LocalAdapters,
}

fn required_env(name: &str, what: &str) -> Result<String> {
    std::env::var(name)
        .with_context(|| format!("environment variable {name} is not set: set it to {what}"))
}

impl Runtime {
    pub fn from_env() -> Result<Runtime> {
        let backend = std::env::var("TRIBUTARY_BACKEND").unwrap_or_else(|_| "aws".into());
        if backend != "local" {
            bail!(
                "TRIBUTARY_BACKEND={backend:?}: the AWS adapters (shared/aws) are not built yet; \
                 set TRIBUTARY_BACKEND=local and TRIBUTARY_WORKSPACE to run against a local workspace"
            );
        }
        let config_path = required_env("TRIBUTARY_CONFIG", "the path of pipeline.toml")?;
        let config = Config::load(config_path.as_ref())?;
        let ws = Workspace::new(required_env(
            "TRIBUTARY_WORKSPACE",
            "the local workspace folder",
        )?);
        let mut adapters = ws.adapters();
        // Lambda's writable scratch space is /tmp, not the workspace.
        adapters.scratch = std::env::temp_dir().join("tributary");
        Ok(Runtime { config, adapters })
    }

    pub fn services(&self) -> Services<'_> {
        self.adapters.services(&self.config)
    }
}

/// Serve one function from `tributary-handlers` on the Lambda runtime API.
pub async fn serve(function: &'static str) -> Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .without_time()
        .init();
    let runtime = Arc::new(Runtime::from_env()?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let runtime = runtime.clone();
        async move {
            tributary_handlers::invoke(&runtime.services(), function, event.payload)
                .await
                .map_err(|e| Diagnostic {
                    error_type: e.error_type,
                    error_message: e.message,
                })
        }
    }))
    .await
    .map_err(|e| anyhow::anyhow!("lambda runtime: {e}"))
}
