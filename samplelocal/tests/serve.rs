//! `tributary serve`: an approval link opened (nothing decided), then the
//! button pressed (decided, execution resumed); replayed and forged links
//! refused with no state change.

mod common;
use common::*;

#[test]
fn approval_links_show_then_decide_once() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let url = pending_approval_link(&ws);
    // Minus its host: the server below listens on a port of its own.
    let link = url[url.find("/approvals/").unwrap()..].to_string();
    let (path, query) = link.split_once('?').unwrap();

    let (server, addr) = serve(&ws);
    // Opening the link (a mail scanner would too) decides nothing.
    let (status, page) = http(&addr, "GET", &link, "");
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Nothing has been decided yet") && page.contains("user_events"),
        "{page}"
    );
    let pending = json_of(&tributary(&ws, &["--json", "approvals", "list"]));
    assert_eq!(pending["pending"].as_array().unwrap().len(), 1);
    // The pending page lists it.
    let (status, list) = http(&addr, "GET", "/", "");
    assert!(status == 200 && list.contains("approve…"), "{list}");

    // A forged signature and a swapped decision are refused.
    let forged = format!("{path}?{}", query.replace("signature=", "signature=00"));
    assert_eq!(http(&addr, "GET", &forged, "").0, 403);
    let swapped = format!(
        "{path}?{}",
        query.replace("decision=approve", "decision=reject")
    );
    assert_eq!(
        http(&addr, "POST", path, swapped.split_once('?').unwrap().1).0,
        403
    );

    // The button: decided, and the execution resumes and publishes.
    let (status, done) = http(
        &addr,
        "POST",
        path,
        &format!("{query}&decider=Ana+Lima&reason=vendor+confirmed"),
    );
    assert_eq!(status, 200, "{done}");
    assert!(
        done.contains("Approved") && done.contains("Ana Lima"),
        "{done}"
    );
    let ours = execution_named(&ws, "2025-12-07");
    assert_eq!(ours["status"], "SUCCEEDED", "{ours}");

    // Replaying the same link changes nothing.
    let (status, again) = http(&addr, "POST", path, &format!("{query}&decider=Eve"));
    assert_eq!(status, 409, "{again}");
    drop(server);
    let shown = json_of(&tributary(
        &ws,
        &["executions", "show", ours["name"].as_str().unwrap()],
    ));
    assert_eq!(shown["output"]["approval"]["decider"], "Ana Lima (link)");
}

/// A link opened after its request expired, through `tributary serve` on
/// the real clock: refused as expired (410), nothing decided, and the
/// pending list and page no longer offer it.
#[test]
fn an_expired_link_decides_nothing_through_serve() {
    use tributary_core::approvals::{self, ApprovalRequest, ApprovalStatus};
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));
    let config = tributary_core::config::Config::load(&ws.join("pipeline.toml")).unwrap();
    let adapters = tributary_local::Workspace::new(&ws).adapters();
    let svc = adapters.services(&config);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (approval, links) = rt
        .block_on(approvals::request(
            &adapters.state,
            &svc.links,
            ApprovalRequest {
                token: "token-of-nothing".into(),
                execution: "exec-1".into(),
                purpose: "publish orders 2025-12-09 (expires in a second)".into(),
                summary: serde_json::json!({"pipeline": "orders_daily", "date": "2025-12-09", "run_id": "r", "held": []}),
                ttl: chrono::Duration::seconds(1),
            },
            chrono::Utc::now(),
        ))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let link = links.approve[links.approve.find("/approvals/").unwrap()..].to_string();
    let (path, query) = link.split_once('?').unwrap();
    let (server, addr) = serve(&ws);
    let (status, page) = http(&addr, "GET", &link, "");
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("expired"), "{page}");
    let (status, page) = http(&addr, "POST", path, &format!("{query}&decider=Ana"));
    assert_eq!(status, 410, "{page}");
    let (_, listing) = http(&addr, "GET", "/", "");
    assert!(!listing.contains(&approval.id), "{listing}");
    drop(server);
    let pending = json_of(&tributary(&ws, &["--json", "approvals", "list"]));
    assert!(!pending.to_string().contains(&approval.id), "{pending}");
    let stored = rt
        .block_on(approvals::get(&adapters.state, &approval.id))
        .unwrap();
    assert_eq!(
        stored.status,
        ApprovalStatus::Pending,
        "nothing was decided"
    );
}
