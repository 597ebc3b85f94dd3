//! `tributary model status|rollback|stop`: the active recommendation model
//! and the lifecycle of its streaming inference consumer.

use super::report::print_json;
use crate::local::LocalRuntime;
use anyhow::Result;
use clap::Subcommand;
use serde_json::json;
use tributary_core::services::Services;
use tributary_core::{inference, model};

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// The active version and the consumer's health.
    Status {
        #[arg(long)]
        set: String,
    },
    /// Activate the previous version and restart the consumer on it.
    Rollback {
        #[arg(long)]
        set: String,
    },
    /// Stop the streaming inference consumer.
    Stop {
        #[arg(long)]
        set: String,
    },
}

/// On a workspace: the click stream's local mapping delivers what waits
/// for the consumer first, as the deployed one would have by now.
pub async fn run(rt: &LocalRuntime, command: &ModelCommand) -> Result<()> {
    let svc = rt.services();
    if matches!(command, ModelCommand::Status { .. }) {
        crate::mappings::deliver_waiting(&svc).await?;
    }
    run_on(&svc, command).await
}

/// The same on any adapters (a workspace's or a stack's).
pub async fn run_on(svc: &Services<'_>, command: &ModelCommand) -> Result<()> {
    let out = match command {
        ModelCommand::Status { set } => json!({
            "active": model::active(svc, set).await?,
            "consumer": inference::health(svc, set).await?,
        }),
        ModelCommand::Rollback { set } => {
            let by = std::env::var("USER").unwrap_or_else(|_| "operator".into());
            inference::rollback(svc, set, &format!("{by} (rollback)")).await?
        }
        ModelCommand::Stop { set } => json!({ "consumer": inference::stop(svc, set).await? }),
    };
    print_json(&out)
}
