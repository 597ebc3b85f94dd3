//! `tributary serve`: an approval link opened (nothing decided), then the
//! button pressed (decided, execution resumed); replayed and forged links
//! refused with no state change.

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(ws: &Path) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .arg("--workspace")
        .arg(ws)
        .args(["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tributary serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (Server(child), addr)
}

/// (status, body) of one HTTP/1.1 request.
fn http(addr: &str, method: &str, target: &str, form: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|b| b.1.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn approval_links_show_then_decide_once() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    json_of(&tributary(&ws, &["--json", "demo"]));
    let degraded = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample/raw/user_events/date=2025-12-02/events.csv");
    let up = json_of(&tributary(
        &ws,
        &[
            "--json",
            "upload",
            degraded.to_str().unwrap(),
            "--dataset",
            "user_events",
            "--date",
            "2025-12-07",
        ],
    ));
    assert_eq!(up["runs"][0]["execution"]["status"], "RUNNING");

    // The approve link from the message in the outbox, minus its host.
    let outbox = std::fs::read_to_string(ws.join("outbox.jsonl")).unwrap();
    let message: serde_json::Value = outbox
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.contains("2025-12-07"))
        })
        .expect("an approval message for 2025-12-07");
    let text = message["message"].as_str().unwrap();
    let url = text
        .split("Review and approve: ")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap();
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
    let list = json_of(&tributary(&ws, &["--json", "executions", "list"]));
    let ours = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str().unwrap().contains("2025-12-07"))
        .unwrap()
        .clone();
    assert_eq!(ours["status"], "SUCCEEDED", "{list}");

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
