//! `tributary model status|rollback|stop`: the active recommendation model
//! and the lifecycle of its streaming inference consumer.

use super::report::print_json;
use crate::cli::ModelCommand;
use crate::local::LocalRuntime;
use anyhow::Result;
use serde_json::json;
use tributary_core::{inference, model};

pub async fn run(rt: &LocalRuntime, command: &ModelCommand) -> Result<()> {
    let svc = rt.services();
    let out = match command {
        ModelCommand::Status { set } => json!({
            "active": model::active(&svc, set).await?,
            "consumer": inference::health(&svc, set).await?,
        }),
        ModelCommand::Rollback { set } => {
            let by = std::env::var("USER").unwrap_or_else(|_| "operator".into());
            inference::rollback(&svc, set, &format!("{by} (rollback)")).await?
        }
        ModelCommand::Stop { set } => json!({ "consumer": inference::stop(&svc, set).await? }),
    };
    print_json(&out)
}
