//! Wiring shared by the Lambda binaries: configuration read once at cold
//! start, adapters built from it, and the Lambda runtime loop around a
//! handler from `tributary-handlers`.
//!
//! Backends: the AWS adapters (S3, DynamoDB, Glue, Step Functions, SNS) by
//! default, configured from `TRIBUTARY_*` variables (see
//! `tributary_aws::ENVIRONMENT`; `AWS_ENDPOINT_URL` points them at an
//! emulator); `TRIBUTARY_BACKEND=local` wires the embedded adapters on a
//! workspace folder (for `cargo lambda watch` on a laptop).

use anyhow::{bail, Context, Result};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
pub use serde_json::Value;
use std::sync::Arc;
use tributary_core::config::Config;
pub use tributary_core::services::{Ports, Services};
use tributary_local::{LocalAdapters, Workspace};

enum Adapters {
    Local(LocalAdapters),
    Aws(tributary_aws::AwsAdapters),
}

/// Everything a handler needs, built once per cold start.
pub struct Runtime {
    config: Config,
    adapters: Adapters,
}

fn required_env(name: &str, what: &str) -> Result<String> {
    std::env::var(name)
        .with_context(|| format!("environment variable {name} is not set: set it to {what}"))
}

impl Runtime {
    pub async fn from_env() -> Result<Runtime> {
        let backend = std::env::var("TRIBUTARY_BACKEND").unwrap_or_else(|_| "aws".into());
        let config_path = required_env("TRIBUTARY_CONFIG", "the path of pipeline.toml")?;
        let config = Config::load(config_path.as_ref())?;
        for warning in config.warnings(&config_path) {
            tracing::warn!("{warning}");
        }
        match backend.as_str() {
            "aws" => {
                let adapters = tributary_aws::AwsAdapters::from_env(|n| std::env::var(n).ok())
                    .await
                    .context("wiring the AWS adapters")?;
                return Ok(Runtime {
                    config,
                    adapters: Adapters::Aws(adapters),
                });
            }
            "local" => {}
            other => bail!("TRIBUTARY_BACKEND={other:?}: use aws (the default) or local"),
        }
        let ws = Workspace::new(required_env(
            "TRIBUTARY_WORKSPACE",
            "the local workspace folder",
        )?);
        let mut adapters = ws.adapters();
        // Lambda's writable scratch space is /tmp, not the workspace.
        adapters.scratch = std::env::temp_dir().join("tributary");
        Ok(Runtime {
            config,
            adapters: Adapters::Local(adapters),
        })
    }

    /// The services of a function granted the ports `PORTS` (bits of a
    /// `Ports`): the binary links only their adapters.
    pub fn services<const PORTS: u8>(&self) -> Services<'_> {
        match &self.adapters {
            Adapters::Local(a) => a.granted_services::<PORTS>(&self.config),
            Adapters::Aws(a) => a.granted_services::<PORTS>(&self.config),
        }
    }
}

/// A Lambda binary:
/// `tributary_functions::lambda!(Light, partition::mark_failed, STATE | NOTIFIER);`
/// is its whole source (the workload, the handler and the ports granted).
/// The binary calls its handler directly instead of
/// looking its name up in `tributary_handlers::FUNCTIONS`, because the
/// table reaches every handler, and so every binary would link all of
/// them (arrow, parquet and all); a test checks each binary names the
/// handler and workload the table gives its name.
#[macro_export]
macro_rules! lambda {
    ($workload:ident, $($handler:ident)::+, $($port:ident)|+) => {
        fn main() -> $crate::anyhow::Result<()> {
            fn handler<'a>(
                svc: &'a $crate::Services<'a>,
                event: $crate::Value,
            ) -> tributary_handlers::HandlerFuture<'a> {
                Box::pin(tributary_handlers::$($handler)::+(svc, event))
            }
            const PORTS: u8 = $crate::Ports::NONE$(.union($crate::Ports::$port))+.bits();
            $crate::run::<PORTS>(tributary_handlers::Workload::$workload, handler)
        }
    };
}

pub use anyhow;

/// A Lambda binary's `main`: the process set-up the CLI has too, the async
/// runtime, then [`serve`].
pub fn run<const PORTS: u8>(
    workload: tributary_handlers::Workload,
    handler: tributary_handlers::Handler,
) -> Result<()> {
    tributary_process::set_up(workload);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(serve::<PORTS>(handler))
}

/// Serve one handler from `tributary-handlers` on the Lambda runtime API.
pub async fn serve<const PORTS: u8>(handler: tributary_handlers::Handler) -> Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .without_time()
        .init();
    let runtime = Arc::new(Runtime::from_env().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let runtime = runtime.clone();
        async move {
            handler(&runtime.services::<PORTS>(), event.payload)
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Every function of the table has its binary and every binary is a
    /// function of the table (a binary's function is its name).
    #[test]
    fn one_binary_per_function() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin");
        let mut binaries = BTreeSet::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let text: String = std::fs::read_to_string(&path)
                .unwrap()
                .split_whitespace()
                .collect();
            if let Some(f) = tributary_handlers::function(&name) {
                let expected = format!(
                    "tributary_functions::lambda!({:?},{},{});",
                    f.workload,
                    f.handler_path.split_whitespace().collect::<String>(),
                    f.ports.names().join("|")
                );
                assert!(
                    text.contains(&expected),
                    "{} must serve the function of its name: {expected}",
                    path.display()
                );
            }
            binaries.insert(name);
        }
        let functions: BTreeSet<String> = tributary_handlers::function_names()
            .map(String::from)
            .collect();
        assert_eq!(binaries, functions);
    }
}
