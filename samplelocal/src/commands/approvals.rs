//! `tributary approvals list|approve|reject`: the same decision a click on a
//! signed link makes, for a person at the terminal.

use super::report::print_json;
use crate::local::LocalRuntime;
use anyhow::Result;
use serde_json::json;
use tributary_core::approvals::{self, Decision};
use tributary_core::ports::StateStore;

/// The approval requests waiting in a state store: a workspace's, or a
/// deployed stack's (`--stack`).
pub async fn list(store: &dyn StateStore, json_out: bool) -> Result<()> {
    let pending = approvals::pending(store, chrono::Utc::now()).await?;
    if json_out {
        let rows: Vec<_> = pending
            .iter()
            .map(|a| {
                json!({"id": a.id, "purpose": a.purpose, "summary": a.summary,
                            "execution": a.execution, "expires_at": a.expires_at})
            })
            .collect();
        return print_json(&json!({ "pending": rows }));
    }
    if pending.is_empty() {
        println!("no approval requests are waiting");
    }
    // One field a line: the request, then where it waits and until when.
    for a in &pending {
        println!(
            "{}\n  {}\n  expires    {}\n  execution  {}\n  decide     tributary approvals approve|reject {}\n",
            a.id,
            a.purpose,
            a.expires_at.format("%Y-%m-%d %H:%M UTC"),
            a.execution,
            a.id
        );
    }
    Ok(())
}

pub async fn decide(
    rt: &LocalRuntime,
    id: &str,
    decision: Decision,
    reason: Option<String>,
    by: Option<String>,
    corrections: Option<&std::path::Path>,
    again: bool,
) -> Result<()> {
    let details = decision_details(&rt.services(), id, corrections, again).await?;
    let execution = rt
        .decide_approval(id, decision, &decider(by), reason, details)
        .await?;
    print_json(&execution)
}

/// Who decided, as the approval record and the execution's answer say.
pub(crate) fn decider(by: Option<String>) -> String {
    let who = by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".into());
    format!("{who} (tributary approvals)")
}

/// What a label review's answer carries besides the decision: corrections
/// (id,label lines, each checked against the review's page) and whether to
/// see the rest again.
pub(crate) async fn decision_details(
    svc: &tributary_core::services::Services<'_>,
    id: &str,
    corrections: Option<&std::path::Path>,
    again: bool,
) -> Result<Option<serde_json::Value>> {
    Ok(match corrections {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading corrections {}: {e}", path.display()))?;
            let parsed = tributary_core::labeling::parse_corrections(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let approval = approvals::get(svc.state, id).await?;
            tributary_core::labeling::check_corrections(svc, &approval.summary, &parsed).await?;
            Some(json!({"corrections": parsed, "again": again}))
        }
        None if again => Some(json!({"corrections": {}, "again": true})),
        None => None,
    })
}
