//! A real browser on an approval link: headless Chromium (Debian's
//! `chromium` and `chromium-driver`, which `scripts/test.sh` installs) opens
//! the link from the approval message, sees the confirmation page, types a
//! name, clicks Approve; the paused execution resumes and succeeds.
//!
//! The console of `tributary serve`, clicked through after the demo: the
//! grid, a partition, an execution's report, a held partition approved from
//! its page. Screenshots of each page land in the target directory's
//! `console-screenshots/`.
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
                         "--disable-dev-shm-usage", "--window-size=1400,1000",
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
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let (status, text) = request(&self.driver, method, &target, "application/json", &body);
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

    /// What a script run in the page returns (the pages have none of
    /// their own; the test reads their data attributes this way).
    fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    /// A PNG of the viewport, saved under the target directory.
    fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let png = self.call("GET", "/screenshot", Value::Null);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
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

/// The grid's cells as the page shows them: (dataset, date) → state.
fn grid_cells(browser: &Browser) -> std::collections::BTreeMap<(String, String), String> {
    let cells = browser.script(
        "return Array.from(document.querySelectorAll('td.cell')).map(c => \
         [c.dataset.dataset, c.dataset.date, c.dataset.state])",
    );
    cells
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let text = |i: usize| c[i].as_str().unwrap().to_string();
            ((text(0), text(1)), text(2))
        })
        .collect()
}

#[test]
fn the_console_shows_the_demo_and_publishes_a_held_partition_from_its_page() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    // The demo, then a degraded day held for approval (2025-12-07).
    pending_approval_link(&ws);
    let listed = json_of(&tributary(&ws, &["--json", "partitions"]));
    let partitions = listed["partitions"].as_array().unwrap();
    let (server, addr) = serve(&ws);
    let browser = Browser::start(&dir.path().join("chromium-profile"));

    // The grid: every dataset and date of the sample, in its state.
    browser.open(&format!("http://{addr}/"));
    let home = browser.wait_for_text("watermarks and freshness");
    let cells = grid_cells(&browser);
    for p in partitions {
        let key = (
            p["dataset"].as_str().unwrap().to_string(),
            p["date"].as_str().unwrap().to_string(),
        );
        let expected = match p["state"].as_str().unwrap() {
            "arrived" => "waiting",
            "running" | "cleaned" | "validated" => "running",
            other => other,
        };
        assert_eq!(
            cells.get(&key).map(String::as_str),
            Some(expected),
            "cell {key:?}"
        );
    }
    let sample_dates = ["2025-12-01", "2025-12-02", "2025-12-03"];
    for dataset in [
        "orders",
        "user_events",
        "customer_base",
        "customer_behavior_assets",
    ] {
        assert!(home.contains(dataset), "{home}");
        for date in sample_dates {
            assert!(
                cells.contains_key(&(dataset.to_string(), date.to_string())),
                "no cell {dataset} {date}"
            );
        }
    }
    assert_eq!(
        cells[&("user_events".to_string(), "2025-12-07".to_string())],
        "held"
    );
    assert_eq!(
        cells[&(
            "customer_behavior_assets".to_string(),
            "2025-12-03".to_string()
        )],
        "none",
        "the sample has no behaviour file for the 3rd"
    );
    browser.screenshot("1-grid");

    // A click on a cell: the partition, its counts those of `partitions`.
    browser.click("td[data-dataset='orders'][data-date='2025-12-01'] a");
    let page = browser.wait_for_text("Rejected rows, by reason");
    let orders = partitions
        .iter()
        .find(|p| p["dataset"] == "orders" && p["date"] == "2025-12-01")
        .unwrap();
    let counts = browser.script(
        "return Object.fromEntries(Array.from(document.querySelectorAll('[data-count]')) \
         .map(c => [c.dataset.count, Number(c.textContent)]))",
    );
    assert_eq!(counts["input"], orders["clean"]["input"], "{page}");
    assert_eq!(counts["kept"], orders["clean"]["kept"]);
    assert_eq!(counts["rejected"], orders["clean"]["rejected_total"]);
    assert_eq!(counts["duplicates"], orders["clean"]["duplicates"]);
    for part in [
        "raw/orders/date=2025-12-01/orders.csv",
        "row_count_between",
        "ragged_row",
        "orders_daily-2025-12-01-",
        "part-00000.parquet",
    ] {
        assert!(page.contains(part), "partition page lacks {part}: {page}");
    }
    browser.screenshot("2-partition");

    // Executions, and one of them opened: the run report in the page.
    browser.open(&format!("http://{addr}/executions"));
    browser.wait_for_text("newest first");
    browser.click("tr[data-execution^='user_events_daily-2025-12-02-'] a");
    let report = browser.wait_for_text("States, in the order they ran");
    for part in ["SUCCEEDED", "RequestApproval", "Publish", "user_events"] {
        assert!(report.contains(part), "report lacks {part}: {report}");
    }
    let drawn = browser.script("return document.querySelectorAll('main svg rect').length");
    assert!(drawn.as_u64().unwrap() > 5, "the state machine is drawn");
    browser.screenshot("3-execution");

    browser.open(&format!("http://{addr}/streams"));
    let streams = browser.wait_for_text("Dead letters");
    assert!(
        streams.contains("ALERT") && streams.contains("payload is not JSON"),
        "{streams}"
    );
    browser.screenshot("4-streams");

    // The held partition, approved from its page through the signed link.
    browser.open(&format!("http://{addr}/"));
    browser.wait_for_text("watermarks and freshness");
    browser.click("td[data-dataset='user_events'][data-date='2025-12-07'] a");
    browser.wait_for_text("Held for a decision");
    browser.screenshot("5-held");
    browser.click("a.approve");
    browser.wait_for_text("Nothing has been decided yet");
    browser.type_into("input[name=decider]", "Ana Lima");
    browser.click("button[type=submit]");
    browser.wait_for_text("Approved");
    browser.open(&format!("http://{addr}/"));
    browser.wait_for_text("watermarks and freshness");
    assert_eq!(
        grid_cells(&browser)[&("user_events".to_string(), "2025-12-07".to_string())],
        "published"
    );
    browser.screenshot("6-published");
    browser.open(&format!("http://{addr}/approvals"));
    let decided = browser.wait_for_text("Decided and expired");
    assert!(
        decided.contains("Ana Lima") && decided.contains("Nothing is waiting for a decision"),
        "{decided}"
    );
    browser.screenshot("7-approvals");
    drop(browser);
    drop(server);
    let after = json_of(&tributary(
        &ws,
        &["--json", "partitions", "--dataset", "user_events"],
    ));
    assert!(
        after["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["date"] == "2025-12-07" && p["state"] == "published"),
        "{after}"
    );
}
