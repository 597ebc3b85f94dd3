//! Running the `tributary` binary as a user does, for every CLI test file.

#![allow(dead_code)]

pub mod events;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

pub fn tributary(ws: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .arg("--workspace")
        .arg(ws)
        .args(args)
        .output()
        .expect("run tributary")
}

/// Run a command whose stdout reader has already gone (as `| head` does
/// once it has its lines): its exit status and stderr.
pub fn with_stdout_closed(ws: &Path, args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .arg("--workspace")
        .arg(ws)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tributary");
    drop(child.stdout.take());
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    (child.wait().expect("wait"), stderr)
}

/// Stdout as one JSON document, whatever the exit code.
pub fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Stdout as JSON of a command that must succeed.
pub fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}\nstdout: {}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    stdout_json(out)
}

/// A child process killed when dropped, so a failing test leaves none behind.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn serve(ws: &Path) -> (Server, String) {
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

/// (status, body) of one HTTP/1.1 request with a form body.
pub fn http(addr: &str, method: &str, target: &str, form: &str) -> (u16, String) {
    request(
        addr,
        method,
        target,
        "application/x-www-form-urlencoded",
        form,
    )
}

/// (status, body) of one HTTP/1.1 request.
pub fn request(
    addr: &str,
    method: &str,
    target: &str,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Read by content-length: not every server closes the connection when
    // asked to (chromedriver keeps it open).
    let mut reader = BufReader::new(s);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut length = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap() == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            reader.read_exact(&mut body).unwrap();
        }
        None => {
            reader.read_to_end(&mut body).unwrap();
        }
    }
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Runs the demo, then uploads a degraded day (2025-12-07) whose run waits
/// for approval, and returns the approve link from the message sent for it.
pub fn pending_approval_link(ws: &Path) -> String {
    json_of(&tributary(ws, &["--json", "demo"]));
    let degraded = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample/raw/user_events/date=2025-12-02/events.csv");
    let up = json_of(&tributary(
        ws,
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

    // The approve link from the message in the outbox.
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
    url.to_string()
}

/// The execution whose name contains `part`, as `executions list` shows it.
pub fn execution_named(ws: &Path, part: &str) -> Value {
    let list = json_of(&tributary(ws, &["--json", "executions", "list"]));
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str().unwrap().contains(part))
        .unwrap_or_else(|| panic!("no execution named *{part}* in {list}"))
        .clone()
}

/// `tributary --stack STACK --config CONFIG ARGS` against an emulator at
/// `endpoint`, signing with `key` (access key id, secret) as the usual AWS
/// credential chain reads it from the environment.
pub fn on_stack_as(
    endpoint: &str,
    stack: &Path,
    config: &Path,
    key: (&str, &str),
    args: &[&str],
) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .arg("--stack")
        .arg(stack)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", key.0)
        .env("AWS_SECRET_ACCESS_KEY", key.1)
        .env("TRIBUTARY_APPROVAL_SECRET", "stack-test-signing-key")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("TRIBUTARY_WORKSPACE")
        .output()
        .expect("run tributary --stack")
}
