//! A real browser on an approval link: headless Chromium (Debian's
//! `chromium` and `chromium-driver`, which `scripts/test.sh` installs) opens
//! the link from the approval message, sees the confirmation page, types a
//! name, clicks Approve; the paused execution resumes and succeeds.
//!
//! Driven through chromedriver's W3C WebDriver API on loopback, so the test
//! needs no browser-automation library.

mod common;
use common::*;

use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn installed(name: &str, fallbacks: &[&str]) -> PathBuf {
    std::env::var_os(format!(
        "TRIBUTARY_{}",
        name.to_uppercase().replace('-', "_")
    ))
    .map(PathBuf::from)
    .into_iter()
    .chain(fallbacks.iter().map(PathBuf::from))
    .find(|p| p.exists())
    .unwrap_or_else(|| {
        panic!(
            "{name} is not installed: run `bash scripts/test.sh` (it installs Debian's \
             chromium and chromium-driver) or `apt-get install chromium chromium-driver`"
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One WebDriver session; deleted (browser closed) when dropped.
struct Browser {
    driver: String,
    session: String,
    _chromedriver: Server,
}

impl Browser {
    fn start(profile: &Path) -> Browser {
        let chromium = installed("chromium", &["/usr/bin/chromium"]);
        let chromedriver = installed("chromedriver", &["/usr/bin/chromedriver"]);
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let server = Server(child);
        let driver = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&driver).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The flags keep Chromium off the network this machine does not have.
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage",
                         format!("--user-data-dir={}", profile.display())],
            }
        }}});
        let (status, body) = request(
            &driver,
            "POST",
            "/session",
            "application/json",
            &capabilities.to_string(),
        );
        assert_eq!(status, 200, "new session: {body}");
        let reply: Value = serde_json::from_str(&body).unwrap();
        let session = reply["value"]["sessionId"].as_str().unwrap().to_string();
        Browser {
            driver,
            session,
            _chromedriver: server,
        }
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let target = format!("/session/{}{path}", self.session);
        let (status, text) = request(
            &self.driver,
            method,
            &target,
            "application/json",
            &body.to_string(),
        );
        assert_eq!(status, 200, "{method} {path}: {text}");
        serde_json::from_str::<Value>(&text).unwrap()["value"].take()
    }

    fn open(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    fn element(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/click"), json!({}));
    }

    /// The visible text of the page once it contains `wanted`.
    fn wait_for_text(&self, wanted: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.call(
                "POST",
                "/execute/sync",
                json!({"script": "return document.body ? document.body.innerText : ''", "args": []}),
            );
            let text = text.as_str().unwrap_or_default().to_string();
            if text.contains(wanted) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let target = format!("/session/{}", self.session);
        let _ = request(&self.driver, "DELETE", &target, "application/json", "");
    }
}

#[test]
fn a_browser_approves_through_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let url = pending_approval_link(&ws);
    let (server, addr) = serve(&ws);
    // The message's link, pointed at this test's server.
    let link = format!("http://{addr}{}", &url[url.find("/approvals/").unwrap()..]);

    let browser = Browser::start(&dir.path().join("chromium-profile"));
    browser.open(&link);
    let page = browser.wait_for_text("Nothing has been decided yet");
    assert!(
        page.contains("Nothing has been decided yet") && page.contains("user_events"),
        "confirmation page: {page}"
    );
    assert_eq!(
        execution_named(&ws, "2025-12-07")["status"],
        "RUNNING",
        "opening the link must decide nothing"
    );

    browser.type_into("input[name=decider]", "Ana Lima");
    browser.click("button[type=submit]");
    let done = browser.wait_for_text("Approved");
    assert!(
        done.contains("Approved") && done.contains("Ana Lima"),
        "page after the click: {done}"
    );
    drop(browser);
    drop(server);

    let ours = execution_named(&ws, "2025-12-07");
    assert_eq!(ours["status"], "SUCCEEDED", "{ours}");
    let shown = json_of(&tributary(
        &ws,
        &["executions", "show", ours["name"].as_str().unwrap()],
    ));
    assert_eq!(shown["output"]["approval"]["decider"], "Ana Lima (link)");
}
