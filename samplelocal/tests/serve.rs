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
    // The console's approvals page lists it.
    let (status, list) = http(&addr, "GET", "/approvals", "");
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
    // Listed as expired, with no link to decide it.
    let (_, listing) = http(&addr, "GET", "/approvals", "");
    assert!(
        !listing.contains(&format!("/approvals/{}?", approval.id)),
        "{listing}"
    );
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

/// The console shows what the data holds, escaped: a rejected row carrying
/// markup appears as text on its partition's page, never as markup.
#[test]
fn the_console_escapes_what_the_data_holds_and_refuses_bad_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));
    let hostile = dir.path().join("orders.csv");
    let mut csv =
        String::from("order_id,user_id,product_id,amount,currency,order_ts,status,country\n");
    for i in 0..60 {
        csv.push_str(&format!(
            "O{i},1,SKU-1,10.00,USD,2025-12-09T10:00:00Z,created,US\n"
        ));
    }
    csv.push_str("O99,1,SKU-1,<script>alert(1)</script>,USD,2025-12-09T10:00:00Z,created,US\n");
    std::fs::write(&hostile, csv).unwrap();
    json_of(&tributary(
        &ws,
        &[
            "--json",
            "upload",
            hostile.to_str().unwrap(),
            "--dataset",
            "orders",
            "--date",
            "2025-12-09",
        ],
    ));
    let (server, addr) = serve(&ws);
    let (status, page) = http(&addr, "GET", "/partitions/orders/2025-12-09", "");
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains("<script>"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(page.contains("bad_float"), "{page}");

    let (status, grid) = http(&addr, "GET", "/?days=3&end=2025-12-09", "");
    assert_eq!(status, 200);
    assert!(
        grid.contains("data-dataset='orders' data-date='2025-12-09' data-state='published'"),
        "{grid}"
    );
    assert!(!grid.contains("data-date='2025-12-06'"), "three days only");
    for (target, expected) in [
        ("/?end=yesterday", 400),
        ("/partitions/orders/someday", 400),
        ("/partitions/no_such_dataset/2025-12-01", 404),
        ("/executions/no-such-execution", 404),
        ("/executions?page=999", 200),
        ("/streams?page=-3", 200),
        ("/nothing-here", 404),
    ] {
        let (status, body) = http(&addr, "GET", target, "");
        assert_eq!(status, expected, "{target}: {body}");
    }
    drop(server);
}
